// weights_row__avx2 (ops/weights.h, a weights_row kernel): fast rows for the types embedding
// lookups and whole-tensor conversions meet most: f16, bf16, q8_0, q4_0.
// Bit-identical to the portable path: f16/bf16 widening is exact (F16C's
// vcvtph2ps), and a q8_0/q4_0 value is the single f32 product d·q as in
// quant/dequantize.cpp.
#include <immintrin.h>

#include <cstring>

#include "quant/formats.h"
#include "runtime/dtype.h"

namespace glimpse {

bool weights_row_avx2(const void* w, DType type, int64_t n, int64_t row, float* out) {
    const uint8_t* base = static_cast<const uint8_t*>(w) + row * dtype_row_bytes(type, n);
    switch (type) {
        case DType::f16: {
            const uint16_t* src = reinterpret_cast<const uint16_t*>(base);
            int64_t i = 0;
            for (; i + 8 <= n; i += 8)
                _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
            for (; i < n; ++i) {
                uint16_t h;  // memcpy: the row may be misaligned (see weights.cpp)
                std::memcpy(&h, src + i, 2);
                out[i] = _cvtsh_ss(h);
            }
            return true;
        }
        case DType::bf16: {
            const uint16_t* src = reinterpret_cast<const uint16_t*>(base);
            int64_t i = 0;
            for (; i + 8 <= n; i += 8) {
                const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
                _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
            }
            for (; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, src + i, 2);
                const uint32_t bits = static_cast<uint32_t>(h) << 16;
                std::memcpy(out + i, &bits, 4);
            }
            return true;
        }
        case DType::q8_0: {
            const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(base);
            for (int64_t i = 0; i < n / kQK; ++i) {
                const __m256 d = _mm256_set1_ps(_cvtsh_ss(b[i].d));
                for (int j = 0; j < kQK; j += 8) {
                    int64_t q8;
                    std::memcpy(&q8, b[i].qs + j, 8);
                    const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(q8)));
                    _mm256_storeu_ps(out + i * kQK + j, _mm256_mul_ps(d, q));
                }
            }
            return true;
        }
        case DType::q4_0: {
            const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(base);
            const __m128i lo4 = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
            for (int64_t i = 0; i < n / kQK; ++i) {
                const __m256 d = _mm256_set1_ps(_cvtsh_ss(b[i].d));
                const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
                const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, lo4), eight);                     // values 0..15
                const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), lo4), eight);  // values 16..31
                const __m128i halves[2] = {lo, hi};
                for (int h = 0; h < 2; ++h) {
                    const __m128i v = halves[h];
                    _mm256_storeu_ps(out + i * kQK + 16 * h, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))));
                    _mm256_storeu_ps(out + i * kQK + 16 * h + 8,
                                     _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)))));
                }
            }
            return true;
        }
        default:
            return false;
    }
}

}  // namespace glimpse
