// AVX-512 attention (same contract as attention_ref, ops/attention.h): the width-generic
// algorithm of ops/simd/attention.h on 16 lanes. Blocks of 32 query rows (two zmm), QK
// and PV register tiles of 8 keys / 8 dims × 2 vectors (16 accumulators of 32 zmm).
#include "ops/simd/vec_avx512.h"
#include "ops/op_variants_x86.h"
#include "ops/simd/attention.h"
#include "ops/simd/exp.h"

namespace glimpse {

void exp_avx512(const float* x, int64_t n, float* y) { simd::exp_array<simd::VecAvx512>(x, n, y); }

void attention_avx512(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    simd::Attention<simd::VecAvx512, /*kJ=*/8, /*kDc=*/8>::run(a, scratch, pool);
}

}  // namespace glimpse
