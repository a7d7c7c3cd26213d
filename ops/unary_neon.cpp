// NEON elementwise ops: ops/simd/unary.h on 4 lanes (contracts in ops/unary_neon.h).
#include "ops/unary_neon.h"

#include "ops/simd/vec_neon.h"
#include "ops/simd/unary.h"

namespace glimpse {

GLIMPSE_ELEMENTWISE_KERNELS(neon, simd::VecNeon)

}  // namespace glimpse
