// Matrix multiply with a weight matrix in GGUF layout.
//
//   x:(M,K) f32, W:(N,K) stored as `w_type` (row n holds output n's K weights),
//   bias:(N) f32 or null  ->  y:(M,N) = x · Wᵀ + bias
//
// Rows of x and y may be strided (ldx, ldy in elements) so a kernel can read
// or write a slice of a wider tensor.
#pragma once

#include <cstdint>

#include "runtime/dtype.h"
#include "runtime/threadpool.h"

namespace glimpse {

struct MatmulArgs {
    const float* x = nullptr;
    int64_t ldx = 0;
    int64_t M = 0, K = 0, N = 0;
    const void* w = nullptr;
    DType w_type = DType::f32;
    const float* bias = nullptr;
    float* y = nullptr;
    int64_t ldy = 0;
};

// Reference: every output is a double-precision sum over k in order, rounded
// once to f32 — the oracle that faster variants are tested against.
void matmul_ref(const MatmulArgs& args, ThreadPool* pool);

}  // namespace glimpse
