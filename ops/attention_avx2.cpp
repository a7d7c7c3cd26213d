// AVX2 + FMA + F16C attention (same contract as attention_ref, ops/attention.h): the
// width-generic algorithm of ops/simd/attention.h on 8 lanes. Blocks of 16 query rows
// (two ymm), QK and PV register tiles of 6 keys / 6 dims × 2 vectors (24 of the 16 ymm
// registers would spill with 8: 12 accumulators + 2 operands + broadcast fit).
#include "ops/simd/vec_avx2.h"
#include "ops/op_variants_x86.h"
#include "ops/simd/attention.h"
#include "ops/simd/exp.h"

namespace glimpse {

void exp_avx2(const float* x, int64_t n, float* y) { simd::exp_array<simd::VecAvx2>(x, n, y); }

void attention_avx2(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    simd::Attention<simd::VecAvx2, /*kJ=*/6, /*kDc=*/6>::run(a, scratch, pool);
}

}  // namespace glimpse
