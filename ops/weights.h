// Reading weight rows of any plain storage type as f32.
#pragma once

#include <cstdint>

#include "runtime/dtype.h"

namespace glimpse {

// Converts n elements of row `row` of a (rows, n) matrix stored as `type`
// into f32. Supports f32, f16, bf16 and the quantized types of quant/.
// f32, f16 and bf16 rows may start at any address; quantized rows need the alignment of
// their block struct (2 bytes), which models get from OwnedTensors::aligned_data.
// Runs the registered weights_row kernels (ops/kernel_registry.cpp), highest usable
// priority first, until one handles the type; all of them are bit-identical.
void weights_row_to_f32(const void* w, DType type, int64_t n, int64_t row, float* out);

// True for the storage types weights_row_to_f32 understands.
bool weights_type_supported(DType type);

// weights_row kernels (WeightsRowFn): true when they converted the row.
// The reference: every supported type, through the type-trait table (quant/type_traits.h).
bool weights_row_ref(const void* w, DType type, int64_t n, int64_t row, float* out);
#if defined(__x86_64__)
// ops/weights_avx2.cpp: f16, bf16, q8_0, q4_0 (false for other types).
bool weights_row_avx2(const void* w, DType type, int64_t n, int64_t row, float* out);
#endif

}  // namespace glimpse
