// Reference dequantization of GGUF tensor storage types (ggml-common.h layouts),
// bit-exact with ggml's dequantize_row_* / fp16/bf16 row conversions: every
// value is computed with the same single-precision operations in the same
// order (and without FMA contraction, as ggml-base is built on x86-64).
#pragma once

#include <cstdint>

#include "runtime/dtype.h"

namespace glimpse {

// f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k.
bool dequantize_supported(DType type);
// n is a multiple of the type's block size; `blocks` points at n / block_size blocks
// (dtype_row_bytes(type, n) bytes, no alignment required).
void dequantize_row(DType type, const void* blocks, float* out, int64_t n);

}  // namespace glimpse
