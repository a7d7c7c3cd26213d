// W8A8 / W4A8 matmul with AVX-512 VNNI (vpdpbusd), for Q8_0 and Q4_0 weights: the
// width-generic skeleton of ops/simd/matmul_quant.h (quantize, tiles, threading, the
// f32 epilogue) on 16 lanes — groups of 16 weight rows (ops/matmul_quant_x86.h), a
// 6-row × 2-group register tile — with the VNNI integer block product below.
//
// One zmm lane per weight row: for each 4-byte step c of a block, one 64-byte load
// holds 4 weights of each of 16 rows, the 4 activation bytes are broadcast, and
// vpdpbusd adds the 4 products into the row's lane. After a block (8 steps) the lane
// holds that block's integer dot product, corrected for the unsigned operand by
// starting at −offset·Σq (Q8_0: weights stored +128, so 128·Σq; Q4_0: nibbles 0..15
// used directly, so 8·Σq).
#include "ops/simd/vec_avx512.h"
#include "ops/matmul.h"
#include "ops/matmul_quant_x86.h"
#include "ops/simd/matmul_quant.h"

namespace glimpse {
namespace {

struct DotVnni {
    static constexpr int kQ8WeightOffset = 128;  // weights stored +128: vpdpbusd multiplies unsigned by signed
    using I = __m512i;
    static __m512 to_f32(I s) { return _mm512_cvtepi32_ps(s); }

    template <bool Q4>
    static __m512i load_step(const uint8_t* block, int c) {
        if constexpr (Q4) {
            const __m512i raw = _mm512_load_si512(block + (c & 3) * 64);
            const __m512i lo4 = _mm512_set1_epi8(0x0f);
            return c < 4 ? _mm512_and_si512(raw, lo4) : _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo4);
        } else {
            return _mm512_load_si512(block + c * 64);
        }
    }

    static __m512i bcast4(const int8_t* p) {
        int32_t v;
        __builtin_memcpy(&v, p, 4);
        return _mm512_set1_epi32(v);
    }

    // s[m][g] lane r = Σ_k w[g][r][k]·x[m][k] over one block (signed)
    template <bool Q4, int MR, int NG>
    static void block(const uint8_t* const* w_block, const int8_t* const* x_block, const int32_t* x_sum, I (*s)[NG]) {
        constexpr int32_t kOffset = Q4 ? 8 : 128;
        // Start each lane at -offset·Σq: after the 8 steps it holds the signed dot product.
        for (int m = 0; m < MR; ++m) {
            const __m512i start = _mm512_set1_epi32(-kOffset * x_sum[m]);
            for (int g = 0; g < NG; ++g) s[m][g] = start;
        }
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
            __m512i w[NG];
            for (int g = 0; g < NG; ++g) w[g] = load_step<Q4>(w_block[g], c);
            for (int m = 0; m < MR; ++m) {
                const __m512i xv = bcast4(x_block[m] + 4 * c);
                for (int g = 0; g < NG; ++g) s[m][g] = _mm512_dpbusd_epi32(s[m][g], w[g], xv);
            }
        }
    }
};

}  // namespace

using GemmAvx512Vnni = simd::QuantGemm<simd::VecAvx512, DotVnni, /*kMR=*/6, /*kPairGroups=*/true>;

GLIMPSE_QUANT_GEMM_KERNELS(GemmAvx512Vnni, avx512vnni, Isa::avx512, KernelPriority::simd_wide)

}  // namespace glimpse
