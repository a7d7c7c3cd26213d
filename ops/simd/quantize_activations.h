// Width-generic q8_0 activation quantization: the arithmetic of
// ops/quantize_activations.h (ggml-cpu x86) or of ops/quantize_activations_neon.h
// (ggml-cpu ARM), one 32-block per 32 / L vectors, written once against a
// vector-traits type V (ops/simd/vec_*.h) and instantiated by
// ops/quantize_activations_avx2.cpp, _avx512.cpp and _neon.cpp.
#pragma once

#include <cstdint>

#include "ops/quantize_activations.h"
#include "ops/simd/exact_fp.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse::simd {
namespace {

// The inverse scale each value is multiplied by: ggml-cpu's x86 code takes 127/amax,
// its ARM code 1/d with d = amax/127. The two can differ in the last bit, which moves
// a quant by one step only within an ulp of a tie (ops/quantize_activations_neon.h).
enum class Q8Inverse { x86_127_over_amax, arm_one_over_d };

template <class V, Q8Inverse kInverse = Q8Inverse::x86_127_over_amax>
struct QuantizeQ8 {
    using F = typename V::F;
    using I = typename V::I;
    static constexpr int L = V::kLanes;
    static constexpr int kVecs = 32 / L;

    // One block x:(32) -> d as f16 bits; writes 32 int8 to q and (if sum) Σq.
    static uint16_t block(const float* x, int8_t* q, int32_t* sum) {
        F v[kVecs];
        for (int i = 0; i < kVecs; ++i) v[i] = V::loadu(x + i * L);
        F a = V::abs(v[0]);
        for (int i = 1; i < kVecs; ++i) a = V::max(a, V::abs(v[i]));
        const float amax = V::reduce_max(a);
        const float d = amax / 127.0f;
        float id;
        if constexpr (kInverse == Q8Inverse::x86_127_over_amax) id = amax != 0.0f ? 127.0f / amax : 0.0f;
        else id = d != 0.0f ? 1.0f / d : 0.0f;
        const F mul = V::set1(id);
        // round to nearest even, then exact conversion (values are integers in [-127, 127])
        I iv[kVecs];
        for (int i = 0; i < kVecs; ++i) iv[i] = V::round_to_i32(V::mul(v[i], mul));
        if (sum) {
            I s = iv[0];
            for (int i = 1; i < kVecs; ++i) s = V::add_i(s, iv[i]);
            *sum = V::reduce_add_i(s);
        }
        V::store_32_as_i8(q, iv);
        return V::f16_bits(d);
    }

    // x:(K) -> K/32 blocks
    static void row(const float* x, int64_t K, BlockQ8_0* y) {
        for (int64_t b = 0; b < K / 32; ++b) y[b].d = block(x + b * 32, y[b].qs, nullptr);
    }

    // rows [m0, m1) of x (row stride ldx) -> out (quants, f32 scales, block sums)
    static void rows(const float* x, int64_t ldx, int64_t m0, int64_t m1, const Q8Rows& out) {
        const int64_t nb = out.K / 32;
        for (int64_t m = m0; m < m1; ++m) {
            int8_t* q = out.qs(m);
            float* d = out.d(m);
            int32_t* s = out.sum(m);
            for (int64_t b = 0; b < nb; ++b) d[b] = V::from_f16_bits(block(x + m * ldx + b * 32, q + b * 32, s + b));
        }
    }
};

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END
