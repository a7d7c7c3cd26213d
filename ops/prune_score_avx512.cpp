// AVX-512 pruning score and merge ops (contracts: ops/prune_score.h): the width-generic
// algorithms of ops/simd/prune_score.h instantiated with simd::VecAvx512.
#include "ops/simd/vec_avx512.h"
#include "ops/prune_score.h"
#include "ops/simd/prune_score.h"

namespace glimpse {

GLIMPSE_PRUNE_SCORE_KERNELS(avx512, simd::VecAvx512)

}  // namespace glimpse
