// q8_0 and q4_0 weights x q8_0 activations with SDOT (Armv8.2 dot product):
// Raspberry Pi 5 (Cortex-A76), Jetson Orin (Cortex-A78AE).
//
// Weights are repacked once at load into groups of 4 rows ("4x4": 4 rows, 4-byte
// interleave), per 32-value block:
//   d[4]  f16 scales of rows n..n+3
//   qs    chunk c of 4 values (k = 4c..4c+3): 16 bytes = [row0 k..k+3][row1][row2][row3]
// so `SDOT v_acc.4s, v_w.16b, v_x.4b[lane]` multiplies chunk c of all 4 rows by the
// same 4 activation bytes (the lane) and leaves the 4 outputs side by side in one
// register: 16 useful multiply-adds per instruction, no horizontal reduction, and one
// FMA per block applies the 4 scales. A tile is up to 4 activation rows x 4 weight rows:
// per block 8 weight loads (q8_0; 4 for q4_0), 2 per activation row, 8 SDOT per row.
//
// q4_0 groups hold 16 bytes per row and block, byte j of each row in chunk j/4, with
// both nibbles XOR 8 at pack time: q-8 is then the nibble read as a signed 4-bit number,
// so SHL #4 gives 16·(q_j-8) (low nibble, k = j) and AND 0xf0 gives 16·(q_{j+16}-8)
// (high nibble) as int8 with no subtraction; the scale absorbs the exact factor 1/16.
//
//   x:(M,K) f32 -> xq:(M,K/32) q8_0 (scratch, ops/quantize_activations_neon.h)
//   packed W -> y:(M,N) = Σ_blocks dx·dw·(qx·qw) + bias
#include <arm_neon.h>

#include <cstring>

#include "ops/matmul.h"
#include "ops/matmul_q8_arm.h"
#include "ops/matmul_q8_rows.h"
#include "ops/quantize_activations_neon.h"
#include "quant/formats.h"

namespace glimpse {
namespace arm_dotprod {
namespace {

using q8_arm::Q4Group;
using q8_arm::Q8Group;

// Row r's 4-byte chunk c (k = 4c..4c+3) at 16c + 4r: one 16-byte load is chunk c of all 4 rows.
void pack_q8(const void* w, int64_t N, int64_t K, void* out) {
    q8_arm::pack_groups<Q8Group, BlockQ8_0>(w, N, K, out, [](Q8Group& o, const BlockQ8_0& s, int r) {
        for (int c = 0; c < 8; ++c) std::memcpy(o.qs + 16 * c + 4 * r, s.qs + 4 * c, 4);
    });
}

// Byte j of row r in chunk j/4, nibbles XOR 8 (see the top of the file).
void pack_q4(const void* w, int64_t N, int64_t K, void* out) {
    q8_arm::pack_groups<Q4Group, BlockQ4_0>(w, N, K, out, [](Q4Group& o, const BlockQ4_0& s, int r) {
        for (int c = 0; c < 4; ++c) {
            for (int i = 0; i < 4; ++i) o.qs[16 * c + 4 * r + i] = s.qs[4 * c + i] ^ 0x88;
        }
    });
}

// 32-value dot products of 4 weight rows with one activation block: chunk c of the
// weights pairs with activation bytes 4c..4c+3 (lane c of x0 for c < 4, of x1 after).
inline int32x4_t dot_4rows(const int8x16_t w[8], const int8_t* x) {
    const int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16);
    int32x4_t s = vdupq_n_s32(0);
    s = vdotq_laneq_s32(s, w[0], x0, 0);
    s = vdotq_laneq_s32(s, w[1], x0, 1);
    s = vdotq_laneq_s32(s, w[2], x0, 2);
    s = vdotq_laneq_s32(s, w[3], x0, 3);
    s = vdotq_laneq_s32(s, w[4], x1, 0);
    s = vdotq_laneq_s32(s, w[5], x1, 1);
    s = vdotq_laneq_s32(s, w[6], x1, 2);
    s = vdotq_laneq_s32(s, w[7], x1, 3);
    return s;
}

// Rows [m, m+MR) x group g (weight rows 4g..4g+3).
template <bool kQ4, int MR>
void tile(const MatmulArgs& a, const BlockQ8_0* xq, int64_t m, int64_t g) {
    const int64_t nb = a.K / kQK;
    float32x4_t acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
        int8x16_t w[8];
        const uint16_t* scales;
        if constexpr (kQ4) {
            const Q4Group& p = static_cast<const Q4Group*>(a.packed)[g * nb + b];
            scales = p.d;
            for (int c = 0; c < 4; ++c) {
                // k = 4c..4c+3 (low nibbles) and 16+4c.. (high nibbles)
                q8_arm::split_q4(vld1q_s8(reinterpret_cast<const int8_t*>(p.qs) + 16 * c), &w[c], &w[c + 4]);
            }
        } else {
            const Q8Group& p = static_cast<const Q8Group*>(a.packed)[g * nb + b];
            scales = p.d;
            for (int c = 0; c < 8; ++c) w[c] = vld1q_s8(p.qs + 16 * c);
        }
        const float32x4_t dw = q8_arm::group_scales<kQ4>(scales);
        for (int r = 0; r < MR; ++r) {
            const BlockQ8_0& xb = xq[(m + r) * nb + b];
            acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(dot_4rows(w, xb.qs)), vmulq_n_f32(dw, q8_arm::half_to_float(xb.d)));
        }
    }
    const int64_t n = g * 4;
    const float32x4_t bias = q8_arm::group_bias(a, n);
    for (int r = 0; r < MR; ++r) q8_arm::store_4_columns(a, m + r, n, acc[r], bias);
}

template <bool kQ4>
void run_q(const MatmulArgs& a, ThreadPool* pool) {
    q8_arm::run_row_tiles(a, pool, []<int MR>(const MatmulArgs& args, const BlockQ8_0* xq, int64_t m, int64_t g) {
        tile<kQ4, MR>(args, xq, m, g);
    });
}

}  // namespace
}  // namespace arm_dotprod

extern const MatmulKernel kMatmulQ8_0Q8_0Dotprod = q8_arm::row_tile_kernel<false>(
    "q8_0_q8_0_4x4__dotprod", Isa::dotprod, KernelPriority::simd, arm_dotprod::pack_q8, arm_dotprod::run_q<false>);
extern const MatmulKernel kMatmulQ4_0Q8_0Dotprod = q8_arm::row_tile_kernel<true>(
    "q4_0_q8_0_4x4__dotprod", Isa::dotprod, KernelPriority::simd, arm_dotprod::pack_q4, arm_dotprod::run_q<true>);

}  // namespace glimpse
