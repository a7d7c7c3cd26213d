// NEON pruning score and merge ops (contracts: ops/prune_score.h): the width-generic
// algorithms of ops/simd/prune_score.h instantiated with simd::VecNeon.
#include "ops/simd/vec_neon.h"
#include "ops/prune_score.h"
#include "ops/simd/prune_score.h"

namespace glimpse {

GLIMPSE_PRUNE_SCORE_KERNELS(neon, simd::VecNeon)

}  // namespace glimpse
