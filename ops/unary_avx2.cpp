// AVX2 + FMA + F16C elementwise ops: unary (GELU tanh/quick, SiLU, the f16 GELU forms), swiglu, add,
// mul. Same contracts as ops/unary.h; the width-generic algorithms of ops/simd/unary.h
// on 8 lanes.
#include "ops/simd/vec_avx2.h"
#include "ops/op_variants_x86.h"
#include "ops/simd/unary.h"

namespace glimpse {

GLIMPSE_ELEMENTWISE_KERNELS(avx2, simd::VecAvx2)

}  // namespace glimpse
