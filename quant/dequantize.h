// Reference dequantization of GGUF block formats (ggml-common.h layouts).
#pragma once

#include <cstdint>

#include "runtime/dtype.h"

namespace glimpse {

bool dequantize_supported(DType type);
// n is a multiple of the type's block size; `blocks` points at n / block_size blocks.
void dequantize_row(DType type, const void* blocks, float* out, int64_t n);

}  // namespace glimpse
