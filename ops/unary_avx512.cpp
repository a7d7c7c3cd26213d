// AVX-512 elementwise ops: unary (GELU tanh/quick, SiLU, the f16 GELU forms), swiglu, add,
// mul. Same contracts as ops/unary.h; the width-generic algorithms of ops/simd/unary.h
// on 16 lanes.
#include "ops/simd/vec_avx512.h"
#include "ops/op_variants_x86.h"
#include "ops/simd/unary.h"

namespace glimpse {

GLIMPSE_ELEMENTWISE_KERNELS(avx512, simd::VecAvx512)

}  // namespace glimpse
