// AVX2 layer_norm and rms_norm (same contracts as ops/norm.h; y may alias x): the
// width-generic algorithms of ops/simd/norm.h on 8 lanes (statistics in f64 lanes).
#include "ops/simd/vec_avx2.h"
#include "ops/op_variants_x86.h"
#include "ops/simd/norm.h"

namespace glimpse {

GLIMPSE_NORM_KERNELS(avx2, simd::VecAvx2)

}  // namespace glimpse
