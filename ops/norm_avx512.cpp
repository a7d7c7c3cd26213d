// AVX-512 layer_norm and rms_norm (same contracts as ops/norm.h; y may alias x): the
// width-generic algorithms of ops/simd/norm.h on 16 lanes (statistics in f64 lanes).
#include "ops/simd/vec_avx512.h"
#include "ops/op_variants_x86.h"
#include "ops/simd/norm.h"

namespace glimpse {

GLIMPSE_NORM_KERNELS(avx512, simd::VecAvx512)

}  // namespace glimpse
