// NEON layer_norm and rms_norm (aarch64, any core): ops/simd/norm.h on 4 lanes. Same
// contracts as layer_norm_ref / rms_norm_ref (ops/norm.h); the statistics are
// accumulated in f64 lanes, as the references do.
#pragma once

#include <cstdint>

#include "runtime/threadpool.h"

#if defined(__aarch64__)

namespace glimpse {

// x:(T,C) -> y:(T,C) = (x - mean) / sqrt(var + eps) * gamma + beta; gamma, beta may be null.
void layer_norm_neon(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps, float* y,
                     ThreadPool* pool);
// x:(T,C) -> y:(T,C) = x / sqrt(mean(x²) + eps) * gamma; gamma may be null; y may alias x.
void rms_norm_neon(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y, ThreadPool* pool);

}  // namespace glimpse

#endif
