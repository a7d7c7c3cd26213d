#include "ops/rope.h"

#include <cmath>

namespace glimpse {

void rope_norm_ref(const float* x, const int32_t* pos, int64_t T, int64_t H, int64_t D, int64_t n_rot, float base,
                   float* y, ThreadPool* pool) {
    // θ is advanced by repeated multiplication in f32, as ggml does, so angles
    // agree with llama.cpp to the last bit instead of drifting by a few ulp.
    const float theta_scale = std::pow(base, -2.0f / static_cast<float>(n_rot));
    auto body = [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            for (int64_t h = 0; h < H; ++h) {
                const float* xr = x + t * H * D + h * D;
                float* yr = y + t * H * D + h * D;
                float theta = static_cast<float>(pos[t]);
                for (int64_t i = 0; i < n_rot; i += 2) {
                    const float c = std::cos(theta), s = std::sin(theta);
                    const float x0 = xr[i], x1 = xr[i + 1];
                    yr[i] = x0 * c - x1 * s;
                    yr[i + 1] = x0 * s + x1 * c;
                    theta *= theta_scale;
                }
                for (int64_t i = n_rot; i < D; ++i) yr[i] = xr[i];
            }
        }
    };
    if (pool && T > 1) pool->parallel_for(T, body);
    else body(0, T, 0);
}

}  // namespace glimpse
