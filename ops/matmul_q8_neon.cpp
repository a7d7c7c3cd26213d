// q8_0 and q4_0 weights x q8_0 activations with baseline NEON (no dot-product
// instructions): the kernels a Raspberry Pi 4 (Cortex-A72) runs.
//
//   x:(M,K) f32 --quantize_row_q8_0_neon--> xq:(M,K/32) q8_0 blocks (scratch)
//   W:(N,K) as stored in the file (no repacking) -> y:(M,N) = Σ_blocks dx·dw·(qx·qw) + bias
//
// Without SDOT, an int8 dot product of 16 values is SMULL (8 products to int16),
// SMLAL2 (8 more, added lane-wise: each int16 lane holds two products, |·| <= 2·127·128
// < 2^15 since activations are within ±127) and SADALP (pairwise into int32): 3
// instructions per 16 multiply-adds. An A72 issues one integer SIMD multiply per cycle,
// so int8 is no faster than f32 FMA in arithmetic; the win on a Pi 4 is reading 1.06
// (q8_0) or 0.56 (q4_0) bytes per weight instead of 2 or 4.
#include <arm_neon.h>

#include <algorithm>

#include "ops/matmul.h"
#include "ops/matmul_q8_rows.h"
#include "ops/quantize_activations_neon.h"
#include "quant/formats.h"
#include "runtime/fp16.h"

namespace glimpse {
namespace {

// Σ_k w_k·x_k over 32 int8 values held as two 16-byte halves.
inline int32x4_t dot32(int8x16_t w0, int8x16_t w1, const int8_t* x) {
    const int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16);
    int16x8_t p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(x0));
    p0 = vmlal_high_s8(p0, w0, x0);
    int16x8_t p1 = vmull_s8(vget_low_s8(w1), vget_low_s8(x1));
    p1 = vmlal_high_s8(p1, w1, x1);
    return vpadalq_s16(vpaddlq_s16(p0), p1);
}

// One weight row n against MR quantized activation rows (the weights are loaded
// once per block for all MR rows). kQ4: q4_0 weights (value j in the low nibble of
// byte j, value j+16 in the high nibble, both offset by 8).
template <bool kQ4, int MR>
void row_tile(const MatmulArgs& a, const BlockQ8_0* xq, int64_t m, int64_t n) {
    const int64_t nb = a.K / kQK;
    float32x4_t acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
        int8x16_t w0, w1;
        float dw;
        if constexpr (kQ4) {
            const BlockQ4_0& blk = static_cast<const BlockQ4_0*>(a.w)[n * nb + b];
            const uint8x16_t v = vld1q_u8(blk.qs);
            const int8x16_t eight = vdupq_n_s8(8);
            w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f))), eight);
            w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
            dw = f16_to_f32(blk.d);
        } else {
            const BlockQ8_0& blk = static_cast<const BlockQ8_0*>(a.w)[n * nb + b];
            w0 = vld1q_s8(blk.qs);
            w1 = vld1q_s8(blk.qs + 16);
            dw = f16_to_f32(blk.d);
        }
        for (int r = 0; r < MR; ++r) {
            const BlockQ8_0& xb = xq[(m + r) * nb + b];
            acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(dot32(w0, w1, xb.qs)), dw * f16_to_f32(xb.d));
        }
    }
    for (int r = 0; r < MR; ++r) {
        float s = vaddvq_f32(acc[r]);
        if (a.bias) s += a.bias[n];
        a.y[(m + r) * a.ldy + n] = s;
    }
}

template <bool kQ4>
void run_q(const MatmulArgs& a, ThreadPool* pool) {
    BlockQ8_0* xq = static_cast<BlockQ8_0*>(a.scratch);
    q8_rows::quantize_rows(a, xq, pool, quantize_row_q8_0_neon);
    q8_rows::for_each_index(a.N, pool, [&](int64_t n) {
        q8_rows::for_row_tiles<4>(a.M, [&]<int MR>(int64_t m) { row_tile<kQ4, MR>(a, xq, m, n); });
    });
}

void run_q8_0(const MatmulArgs& a, ThreadPool* pool) { run_q<false>(a, pool); }
void run_q4_0(const MatmulArgs& a, ThreadPool* pool) { run_q<true>(a, pool); }

}  // namespace

extern const MatmulKernel kMatmulQ8_0Q8_0Neon = {
    .name = "q8_0_q8_0__neon", .isa = Isa::neon, .w_type = DType::q8_0, .priority = KernelPriority::simd_narrow,
    .activations = MatmulActivations::q8_0, .supports = q8_rows::supports_whole_blocks,
    .scratch_bytes = q8_rows::scratch_q8_0, .run = run_q8_0};
extern const MatmulKernel kMatmulQ4_0Q8_0Neon = {
    .name = "q4_0_q8_0__neon", .isa = Isa::neon, .w_type = DType::q4_0, .priority = KernelPriority::simd_narrow,
    .activations = MatmulActivations::q8_0, .supports = q8_rows::supports_whole_blocks,
    .scratch_bytes = q8_rows::scratch_q8_0, .run = run_q4_0};

}  // namespace glimpse
