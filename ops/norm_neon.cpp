#include "ops/norm_neon.h"

#include <arm_neon.h>

#include <cmath>

namespace glimpse {

void rms_norm_neon(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y, ThreadPool* pool) {
    auto body = [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            const float* xr = x + t * C;
            float* yr = y + t * C;
            float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
            int64_t c = 0;
            for (; c + 8 <= C; c += 8) {
                const float32x4_t a = vld1q_f32(xr + c), b = vld1q_f32(xr + c + 4);
                s0 = vfmaq_f32(s0, a, a);
                s1 = vfmaq_f32(s1, b, b);
            }
            float sum2 = vaddvq_f32(vaddq_f32(s0, s1));
            for (; c < C; ++c) sum2 += xr[c] * xr[c];
            const float scale = 1.0f / std::sqrt(sum2 / static_cast<float>(C) + eps);
            c = 0;
            if (gamma) {
                for (; c + 4 <= C; c += 4) {
                    vst1q_f32(yr + c, vmulq_f32(vmulq_n_f32(vld1q_f32(xr + c), scale), vld1q_f32(gamma + c)));
                }
                for (; c < C; ++c) yr[c] = xr[c] * scale * gamma[c];
            } else {
                for (; c + 4 <= C; c += 4) vst1q_f32(yr + c, vmulq_n_f32(vld1q_f32(xr + c), scale));
                for (; c < C; ++c) yr[c] = xr[c] * scale;
            }
        }
    };
    if (pool) pool->parallel_for(T, body);
    else body(0, T, 0);
}

}  // namespace glimpse
