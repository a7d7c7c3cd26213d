// quant/tensor_conversion.h: the one rule glimpse quantize and --numerics fast share for which
// tensors may be converted to which type, and the row conversion both run. Oracles: the rule
// stated by hand per case (block sizes and bits per value of the GGUF formats), Q8_0 blocks
// worked out by hand (amax 127 -> d = 1, q = x), and the single-threaded conversion for the
// threaded one.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "quant/formats.h"
#include "quant/tensor_conversion.h"
#include "runtime/fp16.h"
#include "runtime/threadpool.h"
#include "test_util.h"

using namespace glimpse;

namespace {

bool mentions(const Status& s, const std::string& part) { return s.message().find(part) != std::string::npos; }

}  // namespace

TEST_CASE("check_tensor_conversion: which conversions glimpse quantize and --numerics fast allow") {
    // Each verdict worked out from the formats: q8_0/q4_0 blocks hold 32 values (34 / 18 bytes),
    // q4_k 256, float types 1; q2_k has a reader but no writer in glimpse; i32 has no reader.
    const struct {
        DType from, to;
        int64_t row_length;
        Requantize requantize;
        StatusCode code;
        const char* says;  // part of the message, "" when ok
    } cases[] = {
        {DType::f16, DType::q8_0, 64, Requantize::refuse, StatusCode::ok, ""},
        {DType::bf16, DType::q8_0, 32, Requantize::refuse, StatusCode::ok, ""},
        {DType::f32, DType::q4_0, 96, Requantize::refuse, StatusCode::ok, ""},
        {DType::f16, DType::q4_k, 512, Requantize::refuse, StatusCode::ok, ""},
        {DType::bf16, DType::f32, 7, Requantize::refuse, StatusCode::ok, ""},  // widening: any length
        // 48 = 1.5 blocks of 32; 64 = a quarter of q4_k's super-block; no rows at all
        {DType::f16, DType::q8_0, 48, Requantize::refuse, StatusCode::invalid_argument,
         "row length 48 is not a multiple of the q8_0 block size 32"},
        {DType::f16, DType::q4_k, 64, Requantize::refuse, StatusCode::invalid_argument, "block size 256"},
        {DType::f16, DType::q8_0, 0, Requantize::refuse, StatusCode::invalid_argument, "row length 0"},
        // Already quantized: 4.5 bits per value up to 8.5 cannot restore them; down rounds twice.
        {DType::q4_0, DType::q8_0, 64, Requantize::refuse, StatusCode::invalid_argument,
         "already quantized to q4_0; converting it to q8_0 cannot restore the precision it lost"},
        {DType::q8_0, DType::q4_0, 64, Requantize::refuse, StatusCode::invalid_argument,
         "would stack a second rounding on the first"},
        {DType::q4_0, DType::q8_0, 64, Requantize::allow, StatusCode::ok, ""},
        {DType::q2_k, DType::q8_0, 256, Requantize::allow, StatusCode::ok, ""},
        {DType::f16, DType::q2_k, 256, Requantize::refuse, StatusCode::unsupported, "cannot write type q2_k"},
        {DType::i32, DType::f32, 4, Requantize::allow, StatusCode::unsupported, "cannot convert type i32 to f32"},
        {DType::q4_0, DType::q4_0, 64, Requantize::refuse, StatusCode::ok, ""},  // the same type: nothing to do
    };
    for (const auto& c : cases) {
        CAPTURE(dtype_name(c.from));
        CAPTURE(dtype_name(c.to));
        CAPTURE(c.row_length);
        const Status s = check_tensor_conversion(c.from, c.to, c.row_length, c.requantize);
        CHECK(s.code() == c.code);
        CHECK(mentions(s, c.says));
    }
}

TEST_CASE("convert_tensor_rows: hand-worked Q8_0 blocks from f16 rows") {
    // Row 0: integers with |x| up to 127 -> d = 127/127 = 1 (f16 0x3c00), q = x.
    // Row 1: even integers up to 254 -> d = 2 (f16 0x4000), q = x/2. All exact in f16.
    std::vector<uint16_t> f16(64);
    for (int i = 0; i < 32; ++i) {
        const int q = i == 3 ? -127 : (i * 7) % 120 - 60;
        f16[i] = f32_to_f16(static_cast<float>(q));
        f16[32 + i] = f32_to_f16(static_cast<float>(2 * q));
    }
    std::vector<BlockQ8_0> out(2);
    const Status s = convert_tensor_rows(DType::f16, f16.data(), DType::q8_0, out.data(), 2, 32, nullptr);
    REQUIRE_MESSAGE(s.is_ok(), s.to_string());
    CHECK(out[0].d == 0x3c00);
    CHECK(out[1].d == 0x4000);
    for (int i = 0; i < 32; ++i) {
        CAPTURE(i);
        const int q = i == 3 ? -127 : (i * 7) % 120 - 60;
        CHECK(out[0].qs[i] == q);
        CHECK(out[1].qs[i] == q);
    }
}

TEST_CASE("convert_tensor_rows: the bytes do not depend on the thread count") {
    const int64_t rows = 301, cols = 96;  // rows not a multiple of any chunk count
    test::Rng rng{2501};
    std::vector<uint16_t> f16(static_cast<size_t>(rows * cols));
    for (uint16_t& h : f16) h = f32_to_f16(rng.uniform(-3.0f, 3.0f));
    for (DType to : {DType::q8_0, DType::q4_0}) {
        CAPTURE(dtype_name(to));
        const size_t bytes = static_cast<size_t>(rows * dtype_row_bytes(to, cols));
        std::vector<uint8_t> one(bytes, 0xaa), three(bytes, 0x55);
        ThreadPool pool1(1), pool3(3);
        REQUIRE(convert_tensor_rows(DType::f16, f16.data(), to, one.data(), rows, cols, &pool1).is_ok());
        REQUIRE(convert_tensor_rows(DType::f16, f16.data(), to, three.data(), rows, cols, &pool3).is_ok());
        CHECK(one == three);
        std::vector<uint8_t> caller(bytes, 0);
        REQUIRE(convert_tensor_rows(DType::f16, f16.data(), to, caller.data(), rows, cols, nullptr).is_ok());
        CHECK(caller == one);
    }
}

TEST_CASE("convert_tensor_rows refuses NaN/inf and scales beyond f16, naming the first such row") {
    const int64_t rows = 200, cols = 64;
    ThreadPool pool(3);
    std::vector<float> x(static_cast<size_t>(rows * cols), 0.25f);
    std::vector<BlockQ8_0> out(static_cast<size_t>(rows * cols / 32));
    SUBCASE("NaN in rows 150 and 17: row 17, whichever thread meets it") {
        x[150 * cols + 3] = std::nanf("");
        x[17 * cols + 60] = INFINITY;
        const Status s = convert_tensor_rows(DType::f32, x.data(), DType::q8_0, out.data(), rows, cols, &pool);
        CHECK(s.code() == StatusCode::invalid_argument);
        CHECK(mentions(s, "NaN or infinite values (row 17)"));
    }
    SUBCASE("amax 1e9: d = 1e9/127 is above f16's largest finite value 65504") {
        x[99 * cols] = 1e9f;
        x[120 * cols + 1] = -1e9f;
        const Status s = convert_tensor_rows(DType::f32, x.data(), DType::q8_0, out.data(), rows, cols, &pool);
        CHECK(s.code() == StatusCode::invalid_argument);
        CHECK(mentions(s, "too large for q8_0's f16 scales (row 99)"));
        // 65504 * 127 still fits: d rounds to 65504 at most.
        x[99 * cols] = 8.0e6f;
        x[120 * cols + 1] = 0.0f;
        CHECK(convert_tensor_rows(DType::f32, x.data(), DType::q8_0, out.data(), rows, cols, &pool).is_ok());
    }
}
