// q8_0 activation quantization (ops/quantize_activations.h) against hand-worked
// blocks: the scale is amax/127 rounded to f16, the values are x·(127/amax)
// rounded half to even (ggml-cpu x86), an all-zero block gives d = 0 and q = 0.
// The SIMD quantizers and the split layout must give the same bytes.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "ops/quantize_activations.h"
#include "ops/weights.h"
#include "runtime/aligned_buffer.h"
#include "runtime/fp16.h"
#include "targets/cpu_features.h"

using namespace glimpse;

namespace {

struct Variant {
    const char* name;
    Isa isa;
    void (*row)(const float*, int64_t, BlockQ8_0*);
    void (*rows)(const float*, int64_t, int64_t, int64_t, const Q8Rows&);
};

std::vector<Variant> variants() {
    std::vector<Variant> v = {{"scalar", Isa::scalar, quantize_row_q8_0, quantize_rows_q8_0_scalar}};
#if defined(__x86_64__)
    v.push_back({"avx2", Isa::avx2, quantize_row_q8_0_avx2, quantize_rows_q8_0_avx2});
    v.push_back({"avx512", Isa::avx512, quantize_row_q8_0_avx512, quantize_rows_q8_0_avx512});
#endif
    return v;
}

// Quantizes one 32-block with every usable variant (both layouts) and checks
// d (f16 bits) and the 32 values against the hand-worked answer.
void check_block(const float (&x)[32], uint16_t want_d, const int (&want_q)[32]) {
    int32_t want_sum = 0;
    for (int q : want_q) want_sum += q;
    for (const Variant& v : variants()) {
        if (!isa_usable(v.isa)) continue;
        INFO(v.name);
        BlockQ8_0 b;
        v.row(x, 32, &b);
        CHECK(b.d == want_d);
        for (int j = 0; j < 32; ++j) CHECK_MESSAGE(b.qs[j] == want_q[j], "j=" << j << " x=" << x[j]);

        uint8_t* buf = aligned_buffer_alloc(static_cast<size_t>(Q8Rows::bytes(1, 32)));
        Q8Rows rows(buf, 32);
        v.rows(x, 32, 0, 1, rows);
        CHECK(*rows.d(0) == f16_to_f32(want_d));  // the same f16 value, widened
        for (int j = 0; j < 32; ++j) CHECK(rows.qs(0)[j] == want_q[j]);
        CHECK(*rows.sum(0) == want_sum);
        aligned_buffer_free(buf);
    }
}

}  // namespace

TEST_CASE("amax 127: d = 1 (f16 0x3c00), id = 1, ties round to even") {
    float x[32] = {127.0f, -127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 3.49f, -3.5f, 4.5f, 126.5f, -126.5f, 0.49f, -0.51f};
    int q[32] = {127, -127, 0, 2, 2, 0, -2, 3, -4, 4, 126, -126, 0, -1};
    for (int j = 14; j < 32; ++j) {
        x[j] = static_cast<float>(j - 20);  // exact integers
        q[j] = j - 20;
    }
    check_block(x, 0x3c00, q);
}

TEST_CASE("amax 63.5: d = 0.5 (f16 0x3800), id = 2 exactly") {
    float x[32] = {63.5f, -63.5f, 0.25f, 0.75f, 1.25f, -1.25f, -0.75f, 10.0f, 0.2f, -0.3f};
    int q[32] = {127, -127, 0, 2, 2, -2, -2, 20, 0, -1};
    // 0.2f·2 = 0.4 -> 0; -0.3f·2 = -0.6 -> -1
    for (int j = 10; j < 32; ++j) {
        x[j] = 0.5f * static_cast<float>(j - 21);  // ·2 = j - 21 exactly
        q[j] = j - 21;
    }
    check_block(x, 0x3800, q);
}

TEST_CASE("amax 1: d = 1/127 rounds to f16 0x2008; values use id = 127/amax, not 1/f16(d)") {
    // 1/127 = 2^-7 · 1.007874..; mantissa 1024·0.007874 = 8.06 -> 8: bits (15-7)<<10 | 8 = 0x2008.
    // x = 0.99605: x·127 = 126.498 -> 126, while x/f16(d) = x·127.0078 = 126.506 would give 127.
    float x[32] = {1.0f, -1.0f, 0.5f, -0.5f, 0.25f, 0.99605f, 0.00390625f, 0.01171875f};
    // 0.5·127 = 63.5 -> 64 (even); 0.25·127 = 31.75 -> 32; 2^-8·127 = 0.496 -> 0; 3·2^-8·127 = 1.488 -> 1
    int q[32] = {127, -127, 64, -64, 32, 126, 0, 1};
    check_block(x, 0x2008, q);
}

TEST_CASE("all-zero block: d = 0 and q = 0 (no division by zero); -0 counts as zero") {
    float x[32] = {};
    int q[32] = {};
    check_block(x, 0x0000, q);
    float nz[32];
    for (float& v : nz) v = -0.0f;
    check_block(nz, 0x0000, q);
}

TEST_CASE("SIMD quantizers give the scalar bytes on random rows, in both layouts and with strided rows") {
    const int64_t M = 5, K = 1536, ldx = K + 7;
    std::vector<float> x(static_cast<size_t>(M * ldx));
    uint64_t s = 12345;
    for (float& v : x) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const float u = static_cast<float>((s >> 40) & 0xffffff) / 16777216.0f;
        v = (u - 0.5f) * ((s >> 20) % 7 == 0 ? 100.0f : 2.0f);  // mixed magnitudes per block
    }
    std::vector<BlockQ8_0> want(static_cast<size_t>(M * K / 32));
    for (int64_t m = 0; m < M; ++m) quantize_row_q8_0(x.data() + m * ldx, K, want.data() + m * K / 32);
    for (const Variant& v : variants()) {
        if (!isa_usable(v.isa)) continue;
        INFO(v.name);
        std::vector<BlockQ8_0> got(want.size());
        for (int64_t m = 0; m < M; ++m) v.row(x.data() + m * ldx, K, got.data() + m * K / 32);
        CHECK(std::memcmp(got.data(), want.data(), want.size() * sizeof(BlockQ8_0)) == 0);
        uint8_t* buf = aligned_buffer_alloc(static_cast<size_t>(Q8Rows::bytes(M, K)));
        Q8Rows rows(buf, K);
        v.rows(x.data(), ldx, 1, M, rows);  // rows 1..M-1 only: row 0 stays untouched
        for (int64_t m = 1; m < M; ++m) {
            for (int64_t b = 0; b < K / 32; ++b) {
                const BlockQ8_0& w = want[m * K / 32 + b];
                int32_t sum = 0;
                for (int j = 0; j < 32; ++j) {
                    REQUIRE(rows.qs(m)[b * 32 + j] == w.qs[j]);
                    sum += w.qs[j];
                }
                REQUIRE(rows.sum(m)[b] == sum);
                REQUIRE(rows.d(m)[b] == f16_to_f32(w.d));
            }
        }
        for (int64_t j = 0; j < K; ++j) REQUIRE(rows.qs(0)[j] == 0);
        aligned_buffer_free(buf);
    }
}

// ops/weights.cpp's vectorized rows (ops/weights_avx2.cpp) against the portable
// conversion (runtime/fp16.h, quant/dequantize.cpp): bit-identical.
TEST_CASE("weights_row_to_f32: vectorized rows equal the portable conversion bit for bit") {
    const Isa saved = active_isa();
    uint64_t s = 777;
    auto next = [&] {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<uint32_t>(s >> 32);
    };
    const int64_t rows = 3;
    for (DType t : {DType::f16, DType::bf16, DType::q8_0, DType::q4_0}) {
        for (int64_t len : {int64_t{128}, int64_t{32}, int64_t{37}}) {  // 37: a tail below 8 lanes (f16/bf16 only)
            if (len % 32 != 0 && (t == DType::q8_0 || t == DType::q4_0)) continue;
            std::vector<uint8_t> w(static_cast<size_t>(dtype_row_bytes(t, len) * rows));
            for (uint8_t& b : w) b = static_cast<uint8_t>(next());
            if (t == DType::q8_0 || t == DType::q4_0) {
                // keep the f16 scales finite: exponent field below 31
                const int64_t bb = t == DType::q8_0 ? 34 : 18;
                for (size_t i = 0; i < w.size(); i += bb) w[i + 1] &= 0x7b;
            } else {
                for (size_t i = 1; i < w.size(); i += 2) w[i] &= 0x7b;  // finite f16/bf16 (no inf/nan payloads)
            }
            std::vector<float> fast(static_cast<size_t>(len)), portable(static_cast<size_t>(len));
            for (int64_t r = 0; r < rows; ++r) {
                set_active_isa_for_testing(saved);
                weights_row_to_f32(w.data(), t, len, r, fast.data());
                set_active_isa_for_testing(Isa::scalar);
                weights_row_to_f32(w.data(), t, len, r, portable.data());
                CHECK_MESSAGE(std::memcmp(fast.data(), portable.data(), fast.size() * 4) == 0, dtype_name(t) << " row " << r);
            }
        }
    }
    set_active_isa_for_testing(saved);
}
