// q8_0 activation quantization with AVX2: the arithmetic of
// ops/quantize_activations.h (ggml-cpu x86), one 32-block per four ymm.
#include <immintrin.h>

#include "ops/quantize_activations.h"

namespace glimpse {
namespace {

inline uint16_t quantize_block_avx2(const float* x, int8_t* q, int32_t* sum) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 a = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
    a = _mm256_max_ps(a, _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m256 mul = _mm256_set1_ps(id);
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (sum) {
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        *sum = _mm_cvtsi128_si32(s4);
    }
    // int32 -> int8 with saturating packs; the packs work per 128-bit lane, so fix the order.
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p);
    return static_cast<uint16_t>(_cvtss_sh(d, 0));
}

}  // namespace

void quantize_row_q8_0_avx2(const float* x, int64_t K, BlockQ8_0* y) {
    for (int64_t b = 0; b < K / 32; ++b) y[b].d = quantize_block_avx2(x + b * 32, y[b].qs, nullptr);
}

void quantize_rows_q8_0_avx2(const float* x, int64_t ldx, int64_t m0, int64_t m1, const Q8Rows& out) {
    const int64_t nb = out.K / 32;
    for (int64_t m = m0; m < m1; ++m) {
        int8_t* q = out.qs(m);
        float* d = out.d(m);
        int32_t* s = out.sum(m);
        for (int64_t b = 0; b < nb; ++b) {
            d[b] = _cvtsh_ss(quantize_block_avx2(x + m * ldx + b * 32, q + b * 32, s + b));
        }
    }
}

}  // namespace glimpse
