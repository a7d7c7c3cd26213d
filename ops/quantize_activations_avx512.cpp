// q8_0 activation quantization with AVX-512: the arithmetic of
// ops/quantize_activations.h (ggml-cpu x86), one 32-block per two zmm.
#include <immintrin.h>

#include "ops/quantize_activations.h"
#include "runtime/fp16.h"

namespace glimpse {
namespace {

// One block: returns d as f16 bits; writes 32 int8 to q and (if sum) Σq.
inline uint16_t quantize_block_avx512(const float* x, int8_t* q, int32_t* sum) {
    const __m512 v0 = _mm512_loadu_ps(x);
    const __m512 v1 = _mm512_loadu_ps(x + 16);
    const __m512 a = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1));
    const float amax = _mm512_reduce_max_ps(a);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m512 mul = _mm512_set1_ps(id);
    // round to nearest even, then exact conversion (values are integers in [-127, 127])
    const __m512i i0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i i1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtsepi32_epi8(i0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtsepi32_epi8(i1));
    if (sum) *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
    return static_cast<uint16_t>(_cvtss_sh(d, 0));
}

}  // namespace

void quantize_row_q8_0_avx512(const float* x, int64_t K, BlockQ8_0* y) {
    for (int64_t b = 0; b < K / 32; ++b) y[b].d = quantize_block_avx512(x + b * 32, y[b].qs, nullptr);
}

void quantize_rows_q8_0_avx512(const float* x, int64_t ldx, int64_t m0, int64_t m1, const Q8Rows& out) {
    const int64_t nb = out.K / 32;
    for (int64_t m = m0; m < m1; ++m) {
        int8_t* q = out.qs(m);
        float* d = out.d(m);
        int32_t* s = out.sum(m);
        for (int64_t b = 0; b < nb; ++b) {
            d[b] = _cvtsh_ss(quantize_block_avx512(x + m * ldx + b * 32, q + b * 32, s + b));
        }
    }
}

}  // namespace glimpse
