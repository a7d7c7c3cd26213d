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
    // Float rows into 32-value blocks: any multiple of 32.
    CHECK(check_tensor_conversion(DType::f16, DType::q8_0, 64, Requantize::refuse).is_ok());
    CHECK(check_tensor_conversion(DType::bf16, DType::q8_0, 32, Requantize::refuse).is_ok());
    CHECK(check_tensor_conversion(DType::f32, DType::q4_0, 96, Requantize::refuse).is_ok());
    // 48 = 1.5 blocks of 32; 64 = a quarter of q4_k's 256-value super-block.
    const Status odd = check_tensor_conversion(DType::f16, DType::q8_0, 48, Requantize::refuse);
    CHECK(odd.code() == StatusCode::invalid_argument);
    CHECK(mentions(odd, "row length 48 is not a multiple of the q8_0 block size 32"));
    const Status short_k = check_tensor_conversion(DType::f16, DType::q4_k, 64, Requantize::refuse);
    CHECK(short_k.code() == StatusCode::invalid_argument);
    CHECK(mentions(short_k, "block size 256"));
    CHECK(check_tensor_conversion(DType::f16, DType::q4_k, 512, Requantize::refuse).is_ok());
    CHECK_FALSE(check_tensor_conversion(DType::f16, DType::q8_0, 0, Requantize::refuse).is_ok());
    // Widening to a float type has 1-value blocks: any row length.
    CHECK(check_tensor_conversion(DType::bf16, DType::f32, 7, Requantize::refuse).is_ok());

    // Already quantized: refused unless requantizing is allowed. q4_0 holds 18 bytes per 32
    // values, q8_0 34: q4_0 -> q8_0 cannot restore the bits, q8_0 -> q4_0 rounds twice.
    const Status up = check_tensor_conversion(DType::q4_0, DType::q8_0, 64, Requantize::refuse);
    CHECK(up.code() == StatusCode::invalid_argument);
    CHECK(mentions(up, "already quantized to q4_0"));
    CHECK(mentions(up, "cannot restore the precision it lost"));
    const Status down = check_tensor_conversion(DType::q8_0, DType::q4_0, 64, Requantize::refuse);
    CHECK(down.code() == StatusCode::invalid_argument);
    CHECK(mentions(down, "would stack a second rounding on the first"));
    CHECK(check_tensor_conversion(DType::q4_0, DType::q8_0, 64, Requantize::allow).is_ok());
    // q2_k has a reader but no writer in glimpse.
    CHECK(check_tensor_conversion(DType::q2_k, DType::q8_0, 256, Requantize::allow).is_ok());
    const Status no_writer = check_tensor_conversion(DType::f16, DType::q2_k, 256, Requantize::refuse);
    CHECK(no_writer.code() == StatusCode::unsupported);
    CHECK(mentions(no_writer, "cannot write type q2_k"));
    // Integer tensors have no reader.
    const Status ints = check_tensor_conversion(DType::i32, DType::f32, 4, Requantize::allow);
    CHECK(ints.code() == StatusCode::unsupported);
    CHECK(mentions(ints, "cannot convert type i32 to f32"));
    // The same type is no conversion, even quantized.
    CHECK(check_tensor_conversion(DType::q4_0, DType::q4_0, 64, Requantize::refuse).is_ok());
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
