// avx512 query-key score (contract: ops/query_key_score.h): the width-generic algorithm of
// ops/simd/query_key_score.h on VecAvx512.
#include "ops/simd/vec_avx512.h"
#include "ops/simd/query_key_score.h"

namespace glimpse {

void query_key_score_avx512(const QueryKeyScoreArgs& args, float* scratch, ThreadPool* pool) {
    simd::QueryKeyScore<simd::VecAvx512>::run(args, scratch, pool);
}

}  // namespace glimpse
