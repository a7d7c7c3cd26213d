// Elementwise ops. Shapes: x:(T,C) -> y:(T,C) unless stated; y may alias x.
#pragma once

#include <cstdint>

#include "runtime/threadpool.h"

namespace glimpse {

// GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
float gelu_tanh_scalar(float x);
// Quick GELU (CLIP): x·σ(1.702·x).
float gelu_quick_scalar(float x);
// SiLU: x·σ(x).
float silu_scalar(float x);

// The *_f16 forms are how ggml-cpu evaluates GELU (and hence how llama.cpp runs
// SigLIP/CLIP): x is rounded to f16 and the result of the f32 formula is rounded
// to f16 (a 64K-entry table in ggml; computed directly here, same values), with
// GELU passing x through for x ≥ 10 and giving 0 for x ≤ -10. Matching it keeps
// vision embeddings within 1e-4 of llama.cpp; the exact forms are the reference.
float gelu_tanh_f16_scalar(float x);
float gelu_quick_f16_scalar(float x);

enum class UnaryOp { gelu_tanh, gelu_quick, silu, gelu_tanh_f16, gelu_quick_f16 };

// y[i] = op(x[i]) over n elements.
void unary_ref(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool);

// gate:(T,F), up:(T,F) -> y:(T,F) = silu(gate) * up
void swiglu_ref(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool);

// a:(T,C) + b -> y:(T,C); b is (T,C), or (C) broadcast over rows when b_rows == 1.
void add_ref(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool);
// Same with multiplication.
void mul_ref(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool);

}  // namespace glimpse
