#include "ops/norm.h"

#include <cmath>

namespace glimpse {

void layer_norm_ref(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps, float* y,
                    ThreadPool* pool) {
    auto body = [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            const float* xr = x + t * C;
            float* yr = y + t * C;
            double sum = 0;
            for (int64_t c = 0; c < C; ++c) sum += xr[c];
            const float mean = static_cast<float>(sum / C);
            double sum2 = 0;
            for (int64_t c = 0; c < C; ++c) {
                const float d = xr[c] - mean;
                sum2 += static_cast<double>(d) * d;
            }
            const float scale = 1.0f / std::sqrt(static_cast<float>(sum2 / C) + eps);
            for (int64_t c = 0; c < C; ++c) {
                float v = (xr[c] - mean) * scale;
                if (gamma) v *= gamma[c];
                if (beta) v += beta[c];
                yr[c] = v;
            }
        }
    };
    if (pool) pool->parallel_for(T, body);
    else body(0, T, 0);
}

void rms_norm_ref(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y, ThreadPool* pool) {
    auto body = [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            const float* xr = x + t * C;
            float* yr = y + t * C;
            double sum2 = 0;
            for (int64_t c = 0; c < C; ++c) sum2 += static_cast<double>(xr[c]) * xr[c];
            const float scale = 1.0f / std::sqrt(static_cast<float>(sum2 / C) + eps);
            for (int64_t c = 0; c < C; ++c) {
                float v = xr[c] * scale;
                if (gamma) v *= gamma[c];
                yr[c] = v;
            }
        }
    };
    if (pool) pool->parallel_for(T, body);
    else body(0, T, 0);
}

}  // namespace glimpse
