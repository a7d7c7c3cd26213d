// q8_0 and q4_0 weights x q8_0 activations with baseline NEON (no dot-product
// instructions): the kernels a Raspberry Pi 4 (Cortex-A72) runs.
//
// Weights are repacked once at load into groups of 4 rows (ops/matmul_q8_arm.h), per
// 32-value block:
//   d[4]  f16 scales of rows n..n+3
//   qs    q8_0: row r's 32 quants at 32r (two 64-byte loads fetch all 4 rows);
//         q4_0: row r's 16 bytes at 16r, nibbles XOR 8 (one 64-byte load), split by
//         q8_arm::split_q4 into 16·(q-8) of values j (low nibbles) and j+16 (high)
// A tile is up to 4 activation rows x those 4 weight rows: per block the weights are
// loaded once for the 4 rows and each activation block once for the 4 weight rows.
//
// Without SDOT, an int8 dot product of 16 values is SMULL (8 products to int16), SMLAL2
// (8 more, added lane-wise: each int16 lane then holds two products) and SADALP
// (pairwise into int32): 3 instructions per 16 multiply-adds. That int16 lane cannot
// overflow: the activation quantizer (ops/quantize_activations_neon.h) gives quants in
// [-127, 127] for every input (round(x/d) with |x| <= amax = 127·d; NaN and inf quantize
// to 0; VecNeon::store_32_as_i8 never writes -128, which only a block whose 1/d overflows
// would reach), weights from a file are int8 in [-128, 127] (q4_0: 16·[-8, 7]), so a lane
// is at most 2·128·127 = 32512 < 2^15 in magnitude. The 4 rows' block sums are reduced with two
// ADDP levels into one int32x4 (lane j = weight row j), converted once, and one FMA per
// block applies the 4 scales dw_j·dx in f32 — the dotprod kernel's epilogue
// (ops/matmul_q8_dotprod.cpp), so the two differ only in how the int32 sums are formed.
//
// Per block and 4x4 tile: 8 weight loads (q4_0: 4 loads and 8 splits) and the 4 scales,
// then per activation row 2 loads and its f16 scale, 16 multiplies, 8 pairwise adds,
// 3 ADDP, a convert, an FMUL and an FMA: GCC 12 makes it a loop of 160 instructions
// (q4_0: 164) for 16 block products, about 10 per product where the unpacked kernel this
// replaced (one weight row x 4 activation rows, both f16 scales converted in software and
// one convert + FMA per product) took about 30.
//
//   x:(M,K) f32 -> xq:(M,K/32) q8_0 (scratch, quantize_row_q8_0_neon)
//   packed W -> y:(M,N) = Σ_blocks dx·dw·(qx·qw) + bias
#include <arm_neon.h>

#include <cstring>

#include "ops/matmul.h"
#include "ops/matmul_q8_arm.h"
#include "ops/matmul_q8_rows.h"
#include "ops/quantize_activations_neon.h"
#include "quant/formats.h"

namespace glimpse {
namespace arm_neon_q8 {
namespace {

using q8_arm::Q4Group;
using q8_arm::Q8Group;

// Row r's 32 quants at 32r.
void pack_q8(const void* w, int64_t N, int64_t K, void* out) {
    q8_arm::pack_groups<Q8Group, BlockQ8_0>(w, N, K, out, [](Q8Group& o, const BlockQ8_0& s, int r) {
        std::memcpy(o.qs + kQK * r, s.qs, kQK);
    });
}

// Row r's 16 bytes at 16r, nibbles XOR 8 (q - 8 as a signed nibble; see q8_arm::split_q4).
void pack_q4(const void* w, int64_t N, int64_t K, void* out) {
    q8_arm::pack_groups<Q4Group, BlockQ4_0>(w, N, K, out, [](Q4Group& o, const BlockQ4_0& s, int r) {
        for (int i = 0; i < kQK / 2; ++i) o.qs[16 * r + i] = s.qs[i] ^ 0x88;
    });
}

// Σ_k w_k·x_k of one row's block (values 0..15 in w_lo, 16..31 in w_hi) with the
// activations x_lo, x_hi: two products per int16 lane, 4 partial sums in int32 lanes.
inline int32x4_t block_dot(int8x16_t w_lo, int8x16_t w_hi, int8x16_t x_lo, int8x16_t x_hi) {
    int16x8_t p_lo = vmull_s8(vget_low_s8(w_lo), vget_low_s8(x_lo));
    p_lo = vmlal_high_s8(p_lo, w_lo, x_lo);  // |lane| <= 2·128·127 = 32512 (see the top)
    int16x8_t p_hi = vmull_s8(vget_low_s8(w_hi), vget_low_s8(x_hi));
    p_hi = vmlal_high_s8(p_hi, w_hi, x_hi);
    return vpadalq_s16(vpaddlq_s16(p_lo), p_hi);
}

// One weight group's block (4 rows; rows j's values 0..15 in w[2j], 16..31 in w[2j+1]).
// Named members rather than an array: GCC then keeps them in registers.
struct GroupBlock {
    int8x16_t r0lo, r0hi, r1lo, r1hi, r2lo, r2hi, r3lo, r3hi;
    float32x4_t d;  // the 4 rows' scales (q4_0: times 1/16)
};

template <bool kQ4>
inline GroupBlock load_group_block(const void* packed, int64_t i) {
    GroupBlock g;
    if constexpr (kQ4) {
        const Q4Group& p = static_cast<const Q4Group*>(packed)[i];
        const int8_t* q = reinterpret_cast<const int8_t*>(p.qs);
        q8_arm::split_q4(vld1q_s8(q), &g.r0lo, &g.r0hi);
        q8_arm::split_q4(vld1q_s8(q + 16), &g.r1lo, &g.r1hi);
        q8_arm::split_q4(vld1q_s8(q + 32), &g.r2lo, &g.r2hi);
        q8_arm::split_q4(vld1q_s8(q + 48), &g.r3lo, &g.r3hi);
        g.d = q8_arm::group_scales<true>(p.d);
    } else {
        const Q8Group& p = static_cast<const Q8Group*>(packed)[i];
        g.r0lo = vld1q_s8(p.qs), g.r0hi = vld1q_s8(p.qs + 16);
        g.r1lo = vld1q_s8(p.qs + 32), g.r1hi = vld1q_s8(p.qs + 48);
        g.r2lo = vld1q_s8(p.qs + 64), g.r2hi = vld1q_s8(p.qs + 80);
        g.r3lo = vld1q_s8(p.qs + 96), g.r3hi = vld1q_s8(p.qs + 112);
        g.d = q8_arm::group_scales<false>(p.d);
    }
    return g;
}

// acc + (the group's 4 block sums with activation block xb) · dw_j·dx, lane j = weight row j.
inline float32x4_t row_step(float32x4_t acc, const GroupBlock& g, const BlockQ8_0& xb) {
    const int8x16_t x_lo = vld1q_s8(xb.qs), x_hi = vld1q_s8(xb.qs + 16);
    const int32x4_t s0 = block_dot(g.r0lo, g.r0hi, x_lo, x_hi);
    const int32x4_t s1 = block_dot(g.r1lo, g.r1hi, x_lo, x_hi);
    const int32x4_t s2 = block_dot(g.r2lo, g.r2hi, x_lo, x_hi);
    const int32x4_t s3 = block_dot(g.r3lo, g.r3hi, x_lo, x_hi);
    const int32x4_t sums = vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3));
    return vfmaq_f32(acc, vcvtq_f32_s32(sums), vmulq_n_f32(g.d, q8_arm::half_to_float(xb.d)));
}

// Rows [m, m+MR) (MR <= 4) x group g (weight rows 4g..4g+3) -> y[m..m+MR)[4g..4g+3].
// The MR accumulators are named variables, not an array, for the same reason.
template <bool kQ4, int MR>
void tile(const MatmulArgs& a, const BlockQ8_0* xq, int64_t m, int64_t g) {
    static_assert(MR >= 1 && MR <= 4, "tile height");
    const int64_t nb = a.K / kQK;
    const BlockQ8_0* x0 = xq + m * nb;
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    for (int64_t b = 0; b < nb; ++b) {
        const GroupBlock w = load_group_block<kQ4>(a.packed, g * nb + b);
        acc0 = row_step(acc0, w, x0[b]);
        if constexpr (MR > 1) acc1 = row_step(acc1, w, x0[nb + b]);
        if constexpr (MR > 2) acc2 = row_step(acc2, w, x0[2 * nb + b]);
        if constexpr (MR > 3) acc3 = row_step(acc3, w, x0[3 * nb + b]);
    }
    const int64_t n = g * 4;
    const float32x4_t bias = q8_arm::group_bias(a, n);
    q8_arm::store_4_columns(a, m, n, acc0, bias);
    if constexpr (MR > 1) q8_arm::store_4_columns(a, m + 1, n, acc1, bias);
    if constexpr (MR > 2) q8_arm::store_4_columns(a, m + 2, n, acc2, bias);
    if constexpr (MR > 3) q8_arm::store_4_columns(a, m + 3, n, acc3, bias);
}

template <bool kQ4>
void run_q(const MatmulArgs& a, ThreadPool* pool) {
    q8_arm::run_row_tiles(a, pool, []<int MR>(const MatmulArgs& args, const BlockQ8_0* xq, int64_t m, int64_t g) {
        tile<kQ4, MR>(args, xq, m, g);
    });
}

}  // namespace
}  // namespace arm_neon_q8

extern const MatmulKernel kMatmulQ8_0Q8_0Neon = q8_arm::row_tile_kernel<false>(
    "q8_0_q8_0__neon", Isa::neon, KernelPriority::simd_narrow, arm_neon_q8::pack_q8, arm_neon_q8::run_q<false>);
extern const MatmulKernel kMatmulQ4_0Q8_0Neon = q8_arm::row_tile_kernel<true>(
    "q4_0_q8_0__neon", Isa::neon, KernelPriority::simd_narrow, arm_neon_q8::pack_q4, arm_neon_q8::run_q<true>);

}  // namespace glimpse
