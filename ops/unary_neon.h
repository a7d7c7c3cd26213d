// NEON elementwise ops (aarch64, any core): unary (GELU tanh/quick, SiLU, the f16 GELU
// forms through the table of all 65536 f16 inputs, bit-identical to the scalar forms),
// swiglu, add, mul — the width-generic algorithms of ops/simd/unary.h on 4 lanes. Same
// contracts as the references (ops/unary.h, ops/kernel_registry.h).
#pragma once

#include <cstdint>

#include "ops/unary.h"
#include "runtime/threadpool.h"

#if defined(__aarch64__)

namespace glimpse {

void unary_neon(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool);
void swiglu_neon(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool);
void add_neon(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool);
void mul_neon(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool);

}  // namespace glimpse

#endif
