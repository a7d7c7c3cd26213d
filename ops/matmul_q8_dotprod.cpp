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
#include "ops/quantize_activations_neon.h"
#include "quant/formats.h"

namespace glimpse {
namespace arm_dotprod {
namespace {

struct Q8Group {  // 4 rows x 32 values of q8_0
    uint16_t d[4];
    int8_t qs[4 * kQK];
};
struct Q4Group {  // 4 rows x 32 values of q4_0 (nibbles XOR 8)
    uint16_t d[4];
    uint8_t qs[2 * kQK];
};
static_assert(sizeof(Q8Group) == 136 && sizeof(Q4Group) == 72, "packed group sizes");

inline float half_to_float(uint16_t bits) {
    __fp16 h;
    std::memcpy(&h, &bits, 2);
    return static_cast<float>(h);
}

bool supports_q(int64_t, int64_t K, int64_t) { return K % kQK == 0; }

int64_t scratch_q8(int64_t M_max, int64_t K, int64_t, int) {
    return M_max * (K / kQK) * static_cast<int64_t>(sizeof(BlockQ8_0));
}

template <class Group>
int64_t packed_bytes(int64_t N, int64_t K) {
    return (N + 3) / 4 * (K / kQK) * static_cast<int64_t>(sizeof(Group));
}

void pack_q8(const void* w, int64_t N, int64_t K, void* out) {
    const int64_t nb = K / kQK;
    const BlockQ8_0* src = static_cast<const BlockQ8_0*>(w);
    Q8Group* dst = static_cast<Q8Group*>(out);
    for (int64_t g = 0; g < (N + 3) / 4; ++g) {
        for (int64_t b = 0; b < nb; ++b) {
            Q8Group& o = dst[g * nb + b];
            std::memset(&o, 0, sizeof(o));
            for (int r = 0; r < 4 && g * 4 + r < N; ++r) {
                const BlockQ8_0& s = src[(g * 4 + r) * nb + b];
                o.d[r] = s.d;
                for (int c = 0; c < 8; ++c) std::memcpy(o.qs + 16 * c + 4 * r, s.qs + 4 * c, 4);
            }
        }
    }
}

void pack_q4(const void* w, int64_t N, int64_t K, void* out) {
    const int64_t nb = K / kQK;
    const BlockQ4_0* src = static_cast<const BlockQ4_0*>(w);
    Q4Group* dst = static_cast<Q4Group*>(out);
    for (int64_t g = 0; g < (N + 3) / 4; ++g) {
        for (int64_t b = 0; b < nb; ++b) {
            Q4Group& o = dst[g * nb + b];
            std::memset(&o, 0, sizeof(o));  // padding rows: zero bytes are zero values
            for (int r = 0; r < 4 && g * 4 + r < N; ++r) {
                const BlockQ4_0& s = src[(g * 4 + r) * nb + b];
                o.d[r] = s.d;
                for (int c = 0; c < 4; ++c) {
                    for (int i = 0; i < 4; ++i) o.qs[16 * c + 4 * r + i] = s.qs[4 * c + i] ^ 0x88;
                }
            }
        }
    }
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
        float32x4_t dw;
        if constexpr (kQ4) {
            const Q4Group& p = static_cast<const Q4Group*>(a.packed)[g * nb + b];
            for (int c = 0; c < 4; ++c) {
                const int8x16_t v = vld1q_s8(reinterpret_cast<const int8_t*>(p.qs) + 16 * c);
                w[c] = vshlq_n_s8(v, 4);                                  // 16·(q_k - 8), k = 4c..4c+3
                w[c + 4] = vandq_s8(v, vdupq_n_s8(static_cast<int8_t>(0xf0)));  // k = 16+4c..
            }
            dw = vmulq_n_f32(vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p.d))), 1.0f / 16);
        } else {
            const Q8Group& p = static_cast<const Q8Group*>(a.packed)[g * nb + b];
            for (int c = 0; c < 8; ++c) w[c] = vld1q_s8(p.qs + 16 * c);
            dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p.d)));
        }
        for (int r = 0; r < MR; ++r) {
            const BlockQ8_0& xb = xq[(m + r) * nb + b];
            acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(dot_4rows(w, xb.qs)), vmulq_n_f32(dw, half_to_float(xb.d)));
        }
    }
    const int64_t n = g * 4;
    float32x4_t bias = vdupq_n_f32(0.0f);
    if (a.bias && n + 4 <= a.N) bias = vld1q_f32(a.bias + n);
    for (int r = 0; r < MR; ++r) {
        float* yr = a.y + (m + r) * a.ldy + n;
        if (n + 4 <= a.N) {
            vst1q_f32(yr, vaddq_f32(acc[r], bias));
        } else {
            float out[4];
            vst1q_f32(out, acc[r]);
            for (int j = 0; n + j < a.N; ++j) yr[j] = out[j] + (a.bias ? a.bias[n + j] : 0.0f);
        }
    }
}

template <bool kQ4>
void run_q(const MatmulArgs& a, ThreadPool* pool) {
    const int64_t nb = a.K / kQK;
    BlockQ8_0* xq = static_cast<BlockQ8_0*>(a.scratch);
    auto quantize = [&](int64_t m0, int64_t m1, int) {
        for (int64_t m = m0; m < m1; ++m) quantize_row_q8_0_neon(a.x + m * a.ldx, a.K, xq + m * nb);
    };
    if (pool && a.M > 1) pool->parallel_for(a.M, quantize);
    else quantize(0, a.M, 0);

    auto body = [&](int64_t g0, int64_t g1, int) {
        for (int64_t g = g0; g < g1; ++g) {
            int64_t m = 0;
            for (; m + 4 <= a.M; m += 4) tile<kQ4, 4>(a, xq, m, g);
            switch (a.M - m) {
                case 3: tile<kQ4, 3>(a, xq, m, g); break;
                case 2: tile<kQ4, 2>(a, xq, m, g); break;
                case 1: tile<kQ4, 1>(a, xq, m, g); break;
                default: break;
            }
        }
    };
    const int64_t groups = (a.N + 3) / 4;
    if (pool) pool->parallel_for(groups, body);
    else body(0, groups, 0);
}

void run_q8_0(const MatmulArgs& a, ThreadPool* pool) { run_q<false>(a, pool); }
void run_q4_0(const MatmulArgs& a, ThreadPool* pool) { run_q<true>(a, pool); }

}  // namespace
}  // namespace arm_dotprod

extern const MatmulKernel kMatmulQ8_0Q8_0Dotprod = {
    .name = "q8_0_q8_0_4x4__dotprod", .isa = Isa::dotprod, .w_type = DType::q8_0, .priority = KernelPriority::simd,
    .activations = MatmulActivations::q8_0, .supports = arm_dotprod::supports_q,
    .packed_bytes = arm_dotprod::packed_bytes<arm_dotprod::Q8Group>, .pack = arm_dotprod::pack_q8,
    .scratch_bytes = arm_dotprod::scratch_q8, .run = arm_dotprod::run_q8_0};
extern const MatmulKernel kMatmulQ4_0Q8_0Dotprod = {
    .name = "q4_0_q8_0_4x4__dotprod", .isa = Isa::dotprod, .w_type = DType::q4_0, .priority = KernelPriority::simd,
    .activations = MatmulActivations::q8_0, .supports = arm_dotprod::supports_q,
    .packed_bytes = arm_dotprod::packed_bytes<arm_dotprod::Q4Group>, .pack = arm_dotprod::pack_q4,
    .scratch_bytes = arm_dotprod::scratch_q8, .run = arm_dotprod::run_q4_0};

}  // namespace glimpse
