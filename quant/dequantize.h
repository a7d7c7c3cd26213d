// Reference dequantization of GGUF tensor storage types (ggml-common.h layouts),
// bit-exact with ggml's dequantize_row_* / fp16/bf16 row conversions: every
// value is computed with the same single-precision operations in the same
// order (and without FMA contraction, as ggml-base is built on x86-64).
#pragma once

#include <cstdint>

#include "runtime/dtype.h"

namespace glimpse {

// f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k: the types
// whose row of the type-trait table (quant/type_traits.h) has a reader.
bool dequantize_supported(DType type);
// n is a multiple of the type's block size; `blocks` points at n / block_size blocks
// (dtype_row_bytes(type, n) bytes, no alignment required).
void dequantize_row(DType type, const void* blocks, float* out, int64_t n);

// The readers of each type (the type-trait table's to_f32): n values (a multiple of
// the block size) of stored blocks -> out, no alignment required.
void dequantize_row_f32(const void* blocks, float* out, int64_t n);
void dequantize_row_f16(const void* blocks, float* out, int64_t n);
void dequantize_row_bf16(const void* blocks, float* out, int64_t n);
void dequantize_row_q4_0(const void* blocks, float* out, int64_t n);
void dequantize_row_q4_1(const void* blocks, float* out, int64_t n);
void dequantize_row_q5_0(const void* blocks, float* out, int64_t n);
void dequantize_row_q5_1(const void* blocks, float* out, int64_t n);
void dequantize_row_q8_0(const void* blocks, float* out, int64_t n);
void dequantize_row_q2_k(const void* blocks, float* out, int64_t n);
void dequantize_row_q3_k(const void* blocks, float* out, int64_t n);
void dequantize_row_q4_k(const void* blocks, float* out, int64_t n);
void dequantize_row_q5_k(const void* blocks, float* out, int64_t n);
void dequantize_row_q6_k(const void* blocks, float* out, int64_t n);

}  // namespace glimpse
