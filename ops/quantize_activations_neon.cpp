// See ops/quantize_activations_neon.h for the semantics (ggml's ARM quantize_row_q8_0).
#include "ops/quantize_activations_neon.h"

#include <arm_neon.h>

#include <cstring>

#include "runtime/fp16.h"

namespace glimpse {
namespace {

// One 32-value block: q:(32) int8 and the f16 scale bits.
inline uint16_t quantize_block(const float* x, int8_t* q) {
    float32x4_t v[8];
    for (int j = 0; j < 8; ++j) v[j] = vld1q_f32(x + 4 * j);
    float32x4_t m0 = vmaxq_f32(vabsq_f32(v[0]), vabsq_f32(v[1]));
    float32x4_t m1 = vmaxq_f32(vabsq_f32(v[2]), vabsq_f32(v[3]));
    float32x4_t m2 = vmaxq_f32(vabsq_f32(v[4]), vabsq_f32(v[5]));
    float32x4_t m3 = vmaxq_f32(vabsq_f32(v[6]), vabsq_f32(v[7]));
    const float amax = vmaxvq_f32(vmaxq_f32(vmaxq_f32(m0, m1), vmaxq_f32(m2, m3)));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 8; j += 2) {
        // round half to even, then narrow 32 -> 16 -> 8 (|x·id| <= 127, saturation never acts)
        const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[j], id));
        const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(v[j + 1], id));
        const int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
        vst1_s8(q + 4 * j, vqmovn_s16(ab));
    }
    return f32_to_f16(d);
}

}  // namespace

void quantize_row_q8_0_neon(const float* x, int64_t K, BlockQ8_0* y) {
    for (int64_t b = 0; b < K / kQK; ++b) y[b].d = quantize_block(x + b * kQK, y[b].qs);
}

void quantize_row_pair_q8_0_neon(const float* x0, const float* x1, int64_t K, BlockQ8_0x2* y) {
    for (int64_t b = 0; b < K / kQK; ++b) {
        int8_t q0[kQK], q1[kQK];
        const float d0 = f16_to_f32(quantize_block(x0 + b * kQK, q0));
        const float d1 = x1 == x0 ? d0 : f16_to_f32(quantize_block(x1 + b * kQK, q1));
        if (x1 == x0) std::memcpy(q1, q0, kQK);
        y[b].d[0] = y[b].d[1] = d0;
        y[b].d[2] = y[b].d[3] = d1;
        for (int j = 0; j < 4; ++j) {
            std::memcpy(y[b].qs + 16 * j, q0 + 8 * j, 8);
            std::memcpy(y[b].qs + 16 * j + 8, q1 + 8 * j, 8);
        }
    }
}

}  // namespace glimpse
