// Top-k selection with NEON (ops/topk.h): the radix select of ops/simd/topk.h on 4
// lanes (keys and compares vectorised; survivors written by walking a lane bitmask).
#include "ops/simd/vec_neon.h"
#include "ops/simd/topk.h"
#include "ops/topk.h"

namespace glimpse {

void topk_neon(const float* scores, int64_t n, int64_t k, int32_t* indices, void* scratch) {
    simd::Topk<simd::VecNeon>::select(scores, n, k, indices, scratch);
}

}  // namespace glimpse
