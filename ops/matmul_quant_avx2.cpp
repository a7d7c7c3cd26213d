// W8A8 / W4A8 matmul with AVX2 (no VNNI: Haswell .. Zen 3), for Q8_0 and Q4_0 weights:
// the width-generic skeleton of ops/simd/matmul_quant.h (quantize, tiles, threading, the
// f32 epilogue) on 8 lanes — groups of 8 weight rows (ops/matmul_quant_x86.h), a 4-row
// register tile, two groups per pass only for decode — with the integer block product
// below. One ymm lane per row, a 4-byte activation broadcast per step. The int8
// products use vpmaddubsw (unsigned × signed -> saturating int16 pairs) and vpmaddwd
// with ones:
//  - Q8_0: the sign trick (|w| × sign(q, w)) keeps both operands in range:
//    |pair sum| <= 2·128·127 = 32512 < 32767, so nothing saturates (also for a
//    file's -128). No correction term.
//  - Q4_0: nibbles 0..15 × q: |pair| <= 2·15·127 = 3810, so the 8 steps of a
//    block are summed in int16 (<= 30480) before one vpmaddwd; the nibble
//    offset is removed with 8·Σq.
#include "ops/simd/vec_avx2.h"
#include "ops/matmul.h"
#include "ops/matmul_quant_x86.h"
#include "ops/simd/matmul_quant.h"

namespace glimpse {
namespace {

struct DotMaddubs {
    static constexpr int kQ8WeightOffset = 0;  // the file's signed bytes (the sign trick needs no offset)
    using I = __m256i;
    static __m256 to_f32(I s) { return _mm256_cvtepi32_ps(s); }

    static __m256i bcast4(const int8_t* p) {
        int32_t v;
        __builtin_memcpy(&v, p, 4);
        return _mm256_set1_epi32(v);
    }

    // s[m][g] lane r = Σ_k w[g][r][k]·x[m][k] over one block (signed)
    template <bool Q4, int MR, int NG>
    static void block(const uint8_t* const* w_block, const int8_t* const* x_block, const int32_t* x_sum, I (*s)[NG]) {
        const __m256i ones = _mm256_set1_epi16(1);
        for (int m = 0; m < MR; ++m)
            for (int g = 0; g < NG; ++g) s[m][g] = _mm256_setzero_si256();
        if constexpr (Q4) {
            const __m256i lo4 = _mm256_set1_epi8(0x0f);
            for (int c = 0; c < 4; ++c) {
                __m256i wl[NG], wh[NG];
                for (int g = 0; g < NG; ++g) {
                    const __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(w_block[g] + c * 32));
                    wl[g] = _mm256_and_si256(raw, lo4);
                    wh[g] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
                }
                for (int m = 0; m < MR; ++m) {
                    const __m256i xl = bcast4(x_block[m] + 4 * c), xh = bcast4(x_block[m] + 16 + 4 * c);
                    for (int g = 0; g < NG; ++g) {
                        s[m][g] = _mm256_add_epi16(s[m][g], _mm256_maddubs_epi16(wl[g], xl));
                        s[m][g] = _mm256_add_epi16(s[m][g], _mm256_maddubs_epi16(wh[g], xh));
                    }
                }
            }
            for (int m = 0; m < MR; ++m) {
                const __m256i offset = _mm256_set1_epi32(8 * x_sum[m]);
                for (int g = 0; g < NG; ++g) s[m][g] = _mm256_sub_epi32(_mm256_madd_epi16(s[m][g], ones), offset);
            }
        } else {
            for (int c = 0; c < 8; ++c) {
                __m256i w[NG], aw[NG];
                for (int g = 0; g < NG; ++g) {
                    w[g] = _mm256_load_si256(reinterpret_cast<const __m256i*>(w_block[g] + c * 32));
                    aw[g] = _mm256_sign_epi8(w[g], w[g]);
                }
                for (int m = 0; m < MR; ++m) {
                    const __m256i xv = bcast4(x_block[m] + 4 * c);
                    for (int g = 0; g < NG; ++g) {
                        const __m256i p = _mm256_maddubs_epi16(aw[g], _mm256_sign_epi8(xv, w[g]));
                        s[m][g] = _mm256_add_epi32(s[m][g], _mm256_madd_epi16(p, ones));
                    }
                }
            }
        }
    }
};

}  // namespace

using GemmAvx2 = simd::QuantGemm<simd::VecAvx2, DotMaddubs, /*kMR=*/4, /*kPairGroups=*/false>;

GLIMPSE_QUANT_GEMM_KERNELS(GemmAvx2, avx2, Isa::avx2, KernelPriority::simd)

}  // namespace glimpse
