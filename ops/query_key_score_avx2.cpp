// avx2 query-key score (contract: ops/query_key_score.h): the width-generic algorithm of
// ops/simd/query_key_score.h on VecAvx2.
#include "ops/simd/vec_avx2.h"
#include "ops/simd/query_key_score.h"

namespace glimpse {

void query_key_score_avx2(const QueryKeyScoreArgs& args, float* scratch, ThreadPool* pool) {
    simd::QueryKeyScore<simd::VecAvx2>::run(args, scratch, pool);
}

}  // namespace glimpse
