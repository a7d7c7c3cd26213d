// NEON layer_norm and rms_norm (same contracts as ops/norm.h; y may alias x): the
// width-generic algorithms of ops/simd/norm.h on 4 lanes (statistics in f64 lanes).
#include "ops/norm_neon.h"

#include "ops/simd/vec_neon.h"
#include "ops/simd/norm.h"

namespace glimpse {

void layer_norm_neon(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps, float* y,
                     ThreadPool* pool) {
    simd::Norm<simd::VecNeon>::layer_norm(x, T, C, gamma, beta, eps, y, pool);
}

void rms_norm_neon(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y, ThreadPool* pool) {
    simd::Norm<simd::VecNeon>::rms_norm(x, T, C, gamma, eps, y, pool);
}

}  // namespace glimpse
