// AVX2 pruning score and merge ops (contracts: ops/prune_score.h): the width-generic
// algorithms of ops/simd/prune_score.h instantiated with simd::VecAvx2.
#include "ops/simd/vec_avx2.h"
#include "ops/prune_score.h"
#include "ops/simd/prune_score.h"

namespace glimpse {

GLIMPSE_PRUNE_SCORE_KERNELS(avx2, simd::VecAvx2)

}  // namespace glimpse
