// AVX2 rope, llama "normal" mode (same contract as rope_norm_ref, ops/rope.h): the
// width-generic algorithm of ops/simd/rope.h on 8 lanes, bit-identical to the reference.
#include "ops/simd/vec_avx2.h"
#include "ops/op_variants_x86.h"
#include "ops/simd/rope.h"

namespace glimpse {

void rope_avx2(const float* x, const int32_t* pos, int64_t T, int64_t H, int64_t D, int64_t n_rot, float base, float* y,
               ThreadPool* pool) {
    simd::Rope<simd::VecAvx2>::run(x, pos, T, H, D, n_rot, base, y, pool);
}

}  // namespace glimpse
