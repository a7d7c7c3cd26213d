// x86 SIMD variants of the non-matmul ops (AVX2 = AVX2+FMA+F16C, AVX-512 =
// F/BW/VL/DQ), one translation unit per op family and ISA:
//   ops/attention_{avx2,avx512}.cpp  blocked (flash-style) attention + row kernel for decode
//   ops/norm_{avx2,avx512}.cpp       layer_norm, rms_norm (statistics in double lanes)
//   ops/unary_{avx2,avx512}.cpp      unary (GELU/SiLU; the f16 GELU forms through a table
//                                    of all 65536 f16 inputs, bit-identical to the scalar
//                                    forms), swiglu, add, mul
//   ops/rope_{avx2,avx512}.cpp       rope (θ exactly as the reference, vectorised sin/cos)
// Each has its family's signature and contract (ops/kernel_registry.h) and is registered
// in ops/kernel_registry.cpp; tests/test_op_variants.cpp checks every one against the
// family's reference with tolerances derived in its header.
#pragma once

#include <cstdint>

#include "ops/attention.h"
#include "ops/unary.h"
#include "runtime/threadpool.h"

#if defined(__x86_64__)

namespace glimpse {

void layer_norm_avx2(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps, float* y,
                     ThreadPool* pool);
void layer_norm_avx512(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps,
                       float* y, ThreadPool* pool);
void rms_norm_avx2(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y, ThreadPool* pool);
void rms_norm_avx512(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y, ThreadPool* pool);

void unary_avx2(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool);
void unary_avx512(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool);
void swiglu_avx2(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool);
void swiglu_avx512(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool);
void add_avx2(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool);
void add_avx512(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool);
void mul_avx2(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool);
void mul_avx512(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool);

void rope_avx2(const float* x, const int32_t* pos, int64_t T, int64_t H, int64_t D, int64_t n_rot, float base, float* y,
               ThreadPool* pool);
void rope_avx512(const float* x, const int32_t* pos, int64_t T, int64_t H, int64_t D, int64_t n_rot, float base,
                 float* y, ThreadPool* pool);

void attention_avx2(const AttentionArgs& args, float* scratch, ThreadPool* pool);
void attention_avx512(const AttentionArgs& args, float* scratch, ThreadPool* pool);

// exp(x) for n values (y may alias x), for tests: relative error within 2^-22 of
// the exact value; 0 below -87.3, +inf above 88.72.
void exp_avx2(const float* x, int64_t n, float* y);
void exp_avx512(const float* x, int64_t n, float* y);

}  // namespace glimpse

#endif
