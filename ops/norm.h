// Normalizations over the last dimension. Statistics are accumulated in double,
// as ggml-cpu does.
#pragma once

#include <cstdint>

#include "runtime/threadpool.h"

namespace glimpse {

// x:(T,C) -> y:(T,C) = (x - mean) / sqrt(var + eps) * gamma + beta; gamma/beta may be null.
void layer_norm_ref(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps, float* y,
                    ThreadPool* pool);

// x:(T,C) -> y:(T,C) = x / sqrt(mean(x²) + eps) * gamma; gamma may be null.
void rms_norm_ref(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y, ThreadPool* pool);

}  // namespace glimpse
