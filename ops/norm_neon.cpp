// NEON layer_norm and rms_norm (same contracts as ops/norm.h; y may alias x): the
// width-generic algorithms of ops/simd/norm.h on 4 lanes (statistics in f64 lanes).
#include "ops/norm_neon.h"

#include "ops/simd/vec_neon.h"
#include "ops/simd/norm.h"

namespace glimpse {

GLIMPSE_NORM_KERNELS(neon, simd::VecNeon)

}  // namespace glimpse
