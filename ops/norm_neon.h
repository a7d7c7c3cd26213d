// NEON RMS normalisation (aarch64, any core). Same contract as rms_norm_ref
// (ops/norm.h); the sum of squares is accumulated in f32 lanes instead of double.
#pragma once

#include <cstdint>

#include "runtime/threadpool.h"

#if defined(__aarch64__)

namespace glimpse {

// x:(T,C) -> y:(T,C) = x / sqrt(mean(x²) + eps) * gamma; gamma may be null; y may alias x.
void rms_norm_neon(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y, ThreadPool* pool);

}  // namespace glimpse

#endif
