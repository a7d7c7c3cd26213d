// Activation staging for the oneDNN provider (ops/providers/onednn.cpp), AVX-512:
//   rows of x:(rows, K) f32 (row stride ldx) -> bf16 (round to nearest even, as
//   f32_to_bf16), or -> int8 per row with scale amax/127 (round to nearest even, as
//   std::lrint in the default rounding mode, then saturate: |q| <= 127 by construction).
// Results are identical to the scalar loops in onednn.cpp; these only run faster.
#if defined(GLIMPSE_HAVE_ONEDNN)

#include <immintrin.h>

#include <cmath>
#include <cstdint>

namespace glimpse {

// Needs AVX512-BF16 (vcvtne2ps2bf16).
void onednn_stage_bf16_avx512(const float* x, int64_t ldx, int64_t rows, int64_t K, uint16_t* out) {
    for (int64_t i = 0; i < rows; ++i) {
        const float* xr = x + i * ldx;
        uint16_t* o = out + i * K;
        int64_t k = 0;
        for (; k + 32 <= K; k += 32) {
            const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + k + 16), _mm512_loadu_ps(xr + k));
            _mm512_storeu_si512(o + k, reinterpret_cast<const __m512i&>(v));
        }
        if (k < K) {
            const __mmask16 m0 = static_cast<__mmask16>(K - k >= 16 ? 0xffff : (1u << (K - k)) - 1);
            const __mmask16 m1 = static_cast<__mmask16>(K - k > 16 ? (1u << (K - k - 16)) - 1 : 0);
            const __m256bh lo = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m0, xr + k));
            _mm256_mask_storeu_epi16(o + k, m0, reinterpret_cast<const __m256i&>(lo));
            if (m1) {
                const __m256bh hi = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m1, xr + k + 16));
                _mm256_mask_storeu_epi16(o + k + 16, m1, reinterpret_cast<const __m256i&>(hi));
            }
        }
    }
}

void onednn_stage_s8_avx512(const float* x, int64_t ldx, int64_t rows, int64_t K, int8_t* out, float* scales) {
    const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t i = 0; i < rows; ++i) {
        const float* xr = x + i * ldx;
        __m512 vmax = _mm512_setzero_ps();
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) vmax = _mm512_max_ps(vmax, _mm512_and_ps(_mm512_loadu_ps(xr + k), abs_mask));
        float amax = _mm512_reduce_max_ps(vmax);
        for (; k < K; ++k) amax = std::fmax(amax, std::fabs(xr[k]));
        const float d = amax / 127.0f, inv = d > 0 ? 1.0f / d : 0.0f;
        scales[i] = d;
        const __m512 vinv = _mm512_set1_ps(inv);
        int8_t* q = out + i * K;
        for (k = 0; k + 16 <= K; k += 16) {
            const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + k), vinv));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k), _mm512_cvtsepi32_epi8(v));
        }
        for (; k < K; ++k) q[k] = static_cast<int8_t>(std::lrint(xr[k] * inv));
    }
}

}  // namespace glimpse

#endif  // GLIMPSE_HAVE_ONEDNN
