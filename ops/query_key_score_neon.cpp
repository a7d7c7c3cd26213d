// neon query-key score (contract: ops/query_key_score.h): the width-generic algorithm of
// ops/simd/query_key_score.h on VecNeon.
#include "ops/simd/vec_neon.h"
#include "ops/simd/query_key_score.h"

namespace glimpse {

void query_key_score_neon(const QueryKeyScoreArgs& args, float* scratch, ThreadPool* pool) {
    simd::QueryKeyScore<simd::VecNeon>::run(args, scratch, pool);
}

}  // namespace glimpse
