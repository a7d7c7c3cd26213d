// Top-k selection with AVX2 (ops/topk.h): the radix select of ops/simd/topk.h on 8
// lanes (keys and compares vectorised; survivors written by walking a lane bitmask).
#include "ops/simd/vec_avx2.h"
#include "ops/simd/topk.h"
#include "ops/topk.h"

namespace glimpse {

void topk_avx2(const float* scores, int64_t n, int64_t k, int32_t* indices, void* scratch) {
    simd::Topk<simd::VecAvx2>::select(scores, n, k, indices, scratch);
}

}  // namespace glimpse
