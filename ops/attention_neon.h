// NEON attention and softmax (aarch64, any core): the non-matmul work of a decode
// step. With a long prompt (image tokens), each generated token attends over S keys in
// every layer: 2·n_head·S·D multiply-adds per layer plus S exponentials per head, read
// from an f16 KV cache. attention_ref does this in double precision with a scalar
// f16 conversion per element; this does it in f32 with FCVTL conversions and a
// vectorised exp.
//
// Same contract as attention_ref (ops/attention.h): f32 or f16 K/V, GQA broadcast,
// causal masks, per-thread scratch of attention_scratch_floats(S) floats. With the
// col_mean tap set it calls attention_ref (the tap's accumulation stays the reference's).
// Tested against attention_ref / softmax_row_ref in tests/test_ops_neon.cpp with
// tolerances derived from f32 rounding.
#pragma once

#include <cstdint>

#include "ops/attention.h"

#if defined(__aarch64__)

namespace glimpse {

// In-place softmax of one row, as softmax_row_ref, in f32 (exp within 2 ulp).
void softmax_row_neon(float* x, int64_t n);

// exp(x) for n values (x may alias y); relative error <= 2^-22, 0 below -87.
void exp_neon(const float* x, int64_t n, float* y);

void attention_neon(const AttentionArgs& args, float* scratch, ThreadPool* pool);

}  // namespace glimpse

#endif
