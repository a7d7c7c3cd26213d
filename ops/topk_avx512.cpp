// Top-k selection with AVX-512 (ops/topk.h): the radix select of ops/simd/topk.h on 16
// lanes, with compress-stores for the candidate list and the output indices.
#include "ops/simd/vec_avx512.h"
#include "ops/simd/topk.h"
#include "ops/topk.h"

namespace glimpse {

void topk_avx512(const float* scores, int64_t n, int64_t k, int32_t* indices, void* scratch) {
    simd::Topk<simd::VecAvx512>::select(scores, n, k, indices, scratch);
}

}  // namespace glimpse
