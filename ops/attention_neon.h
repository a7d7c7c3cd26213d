// NEON attention and softmax (aarch64, any core). attention_neon is the width-generic
// attention of ops/simd/attention.h on 4 lanes (ops/attention_neon.cpp): the blocked
// flash-style kernel for prefill and vision rows, the row kernel for decode (each
// generated token attends over S keys in every layer, read from an f16 KV cache), in
// f32 with FCVTL conversions and a vectorised exp, where attention_ref works in double
// with a scalar f16 conversion per element.
//
// Same contract as attention_ref (ops/attention.h): f32 or f16 K/V, GQA broadcast,
// causal masks, per-thread scratch of attention_scratch_floats(S) floats, and the
// col_mean tap (column means of the probabilities, accumulated per head in row order:
// the same for any thread count, and the output is the same with and without it).
// Tested against attention_ref / softmax_row_ref in tests/test_ops_neon.cpp and
// tests/test_op_variants.cpp with tolerances derived from f32 rounding.
#pragma once

#include <cstdint>

#include "ops/attention.h"

#if defined(__aarch64__)

namespace glimpse {

// In-place softmax of one row, as softmax_row_ref, in f32 (exp within 2 ulp).
void softmax_row_neon(float* x, int64_t n);

// exp(x) for n values (x may alias y); relative error <= 2^-22, 0 below -87.3 (and
// for NaN), +inf above 88.72 (ops/simd/exp.h).
void exp_neon(const float* x, int64_t n, float* y);

void attention_neon(const AttentionArgs& args, float* scratch, ThreadPool* pool);

}  // namespace glimpse

#endif
