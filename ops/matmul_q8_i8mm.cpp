// q8_0 and q4_0 weights x q8_0 activations with SMMLA (Armv8.6 int8 matrix multiply,
// FEAT_I8MM: Cortex-A710/X2/A715, Neoverse V1/N2, Graviton 3, Apple M2+).
//
// `SMMLA v_acc.4s, v_a.16b, v_b.16b` treats each operand as a 2x8 int8 matrix (two
// 8-byte rows) and adds A·Bᵀ, a 2x2 int32 tile [a0·b0, a0·b1, a1·b0, a1·b1]: 32
// multiply-adds per instruction, twice SDOT's 16. Both operands are interleaved so one
// 16-byte load is a 2x8 operand:
//   weights (repacked at load), per group of 4 rows and 32-value block:
//     d[4] f16 scales, then for chunk c (k = 8c..8c+7): [row0 8B][row1 8B] [row2 8B][row3 8B]
//   activations (quantized per call into scratch, BlockQ8_0x2): rows in pairs,
//     chunk c: [m0 8B][m1 8B], scales {d0,d0,d1,d1}
// A tile is 2 row pairs x 4 weight rows: per block 8 weight + 8 activation loads and
// 16 SMMLA (q8_0); int32 tiles are scaled by dx ⊗ dw and accumulated in f32.
// An odd last row is paired with itself (half of those SMMLA are duplicates: the same
// useful work per instruction as SDOT, so a decode step (M = 1) is no slower than the
// dotprod kernel on the same core).
//
// q4_0 groups keep 4 bits per value: chunk c (c = 0, 1) holds bytes 8c..8c+7 of each
// row, nibbles XOR 8 at pack time, so SHL #4 gives 16·(q-8) for k = 8c.. (pairs with
// activation chunk c) and AND 0xf0 gives 16·(q-8) for k = 16+8c.. (activation chunk
// 2+c); the scale absorbs the exact factor 1/16.
#include <arm_neon.h>

#include <cstring>

#include "ops/matmul.h"
#include "ops/matmul_q8_arm.h"
#include "ops/matmul_q8_rows.h"
#include "ops/quantize_activations_neon.h"
#include "quant/formats.h"

namespace glimpse {
namespace arm_i8mm {
namespace {

using q8_arm::Q4Group;
using q8_arm::Q8Group;

int64_t scratch_pairs(int64_t M_max, int64_t K, int64_t, int) {
    return (M_max + 1) / 2 * (K / kQK) * static_cast<int64_t>(sizeof(BlockQ8_0x2));
}

// Byte offset of 8-byte chunk c of row r (0..3) in a group's qs: rows (0,1) then (2,3)
// per chunk, so one 16-byte load is a 2x8 SMMLA operand.
inline int interleaved(int c, int r) { return 32 * c + 16 * (r / 2) + 8 * (r % 2); }

void pack_q8(const void* w, int64_t N, int64_t K, void* out) {
    q8_arm::pack_groups<Q8Group, BlockQ8_0>(w, N, K, out, [](Q8Group& o, const BlockQ8_0& s, int r) {
        for (int c = 0; c < 4; ++c) std::memcpy(o.qs + interleaved(c, r), s.qs + 8 * c, 8);
    });
}

// Bytes 8c..8c+7 of row r in chunk c (c = 0, 1), nibbles XOR 8 (see the top of the file).
void pack_q4(const void* w, int64_t N, int64_t K, void* out) {
    q8_arm::pack_groups<Q4Group, BlockQ4_0>(w, N, K, out, [](Q4Group& o, const BlockQ4_0& s, int r) {
        for (int c = 0; c < 2; ++c) {
            for (int i = 0; i < 8; ++i) o.qs[interleaved(c, r) + i] = s.qs[8 * c + i] ^ 0x88;
        }
    });
}

// Row pairs [p, p+P) x group g. xp: the pairs' blocks, (pairs, nb).
template <bool kQ4, int P>
void tile(const MatmulArgs& a, const BlockQ8_0x2* xp, int64_t p, int64_t g) {
    const int64_t nb = a.K / kQK;
    float32x4_t acc01[P], acc23[P];  // [m0n0 m0n1 m1n0 m1n1], [m0n2 m0n3 m1n2 m1n3]
    for (int i = 0; i < P; ++i) acc01[i] = acc23[i] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
        int8x16_t w01[4], w23[4];  // chunk c (k = 8c..8c+7) of rows (0,1) and (2,3)
        const uint16_t* scales;
        if constexpr (kQ4) {
            const Q4Group& q = static_cast<const Q4Group*>(a.packed)[g * nb + b];
            const int8_t* qs = reinterpret_cast<const int8_t*>(q.qs);
            scales = q.d;
            for (int c = 0; c < 2; ++c) {  // k = 8c.. (low nibbles) and 16+8c.. (high nibbles)
                q8_arm::split_q4(vld1q_s8(qs + 32 * c), &w01[c], &w01[c + 2]);
                q8_arm::split_q4(vld1q_s8(qs + 32 * c + 16), &w23[c], &w23[c + 2]);
            }
        } else {
            const Q8Group& q = static_cast<const Q8Group*>(a.packed)[g * nb + b];
            scales = q.d;
            for (int c = 0; c < 4; ++c) {
                w01[c] = vld1q_s8(q.qs + 32 * c);
                w23[c] = vld1q_s8(q.qs + 32 * c + 16);
            }
        }
        const float32x4_t dw = q8_arm::group_scales<kQ4>(scales);
        const float32x4_t dw01 = vcombine_f32(vget_low_f32(dw), vget_low_f32(dw));    // [dw0 dw1 dw0 dw1]
        const float32x4_t dw23 = vcombine_f32(vget_high_f32(dw), vget_high_f32(dw));  // [dw2 dw3 dw2 dw3]
        for (int i = 0; i < P; ++i) {
            const BlockQ8_0x2& xb = xp[(p + i) * nb + b];
            int32x4_t s01 = vdupq_n_s32(0), s23 = vdupq_n_s32(0);
            for (int c = 0; c < 4; ++c) {
                const int8x16_t x = vld1q_s8(xb.qs + 16 * c);
                s01 = vmmlaq_s32(s01, x, w01[c]);
                s23 = vmmlaq_s32(s23, x, w23[c]);
            }
            const float32x4_t dx = vld1q_f32(xb.d);  // [dx0 dx0 dx1 dx1]
            acc01[i] = vfmaq_f32(acc01[i], vcvtq_f32_s32(s01), vmulq_f32(dx, dw01));
            acc23[i] = vfmaq_f32(acc23[i], vcvtq_f32_s32(s23), vmulq_f32(dx, dw23));
        }
    }
    const int64_t n = g * 4;
    const float32x4_t bias = q8_arm::group_bias(a, n);
    for (int i = 0; i < P; ++i) {
        const float32x4_t row[2] = {vcombine_f32(vget_low_f32(acc01[i]), vget_low_f32(acc23[i])),
                                    vcombine_f32(vget_high_f32(acc01[i]), vget_high_f32(acc23[i]))};
        for (int h = 0; h < 2; ++h) {
            const int64_t m = 2 * (p + i) + h;
            if (m >= a.M) break;
            q8_arm::store_4_columns(a, m, n, row[h], bias);
        }
    }
}

template <bool kQ4>
void run_q(const MatmulArgs& a, ThreadPool* pool) {
    const int64_t nb = a.K / kQK;
    const int64_t pairs = (a.M + 1) / 2;
    BlockQ8_0x2* xp = static_cast<BlockQ8_0x2*>(a.scratch);
    auto quantize = [&](int64_t p0, int64_t p1, int) {
        for (int64_t p = p0; p < p1; ++p) {
            const float* x0 = a.x + 2 * p * a.ldx;
            const float* x1 = 2 * p + 1 < a.M ? x0 + a.ldx : x0;
            quantize_row_pair_q8_0_neon(x0, x1, a.K, xp + p * nb);
        }
    };
    if (pool && pairs > 1) pool->parallel_for(pairs, quantize);
    else quantize(0, pairs, 0);

    q8_rows::for_each_index((a.N + 3) / 4, pool, [&](int64_t g) {
        int64_t p = 0;
        for (; p + 2 <= pairs; p += 2) tile<kQ4, 2>(a, xp, p, g);
        if (p < pairs) tile<kQ4, 1>(a, xp, p, g);
    });
}

template <bool kQ4>
constexpr MatmulKernel kernel(const char* name) {
    return {.name = name, .isa = Isa::i8mm, .w_type = kQ4 ? DType::q4_0 : DType::q8_0,
            .priority = KernelPriority::simd_wide, .activations = MatmulActivations::q8_0,
            .supports = q8_rows::supports_whole_blocks, .packed_bytes = q8_arm::packed_bytes<q8_arm::Group<kQ4>>,
            .pack = kQ4 ? pack_q4 : pack_q8, .scratch_bytes = scratch_pairs, .run = run_q<kQ4>};
}

}  // namespace
}  // namespace arm_i8mm

extern const MatmulKernel kMatmulQ8_0Q8_0I8mm = arm_i8mm::kernel<false>("q8_0_q8_0_4x8__i8mm");
extern const MatmulKernel kMatmulQ4_0Q8_0I8mm = arm_i8mm::kernel<true>("q4_0_q8_0_4x8__i8mm");

}  // namespace glimpse
