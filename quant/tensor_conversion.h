// Converting a whole tensor from one stored type to another, with the rules glimpse quantize
// (tools/quantize) and --numerics fast (models/gguf_weights.h: f16/bf16/f32 encoder matrices
// requantized to Q8_0 at load) both follow, so the two refuse the same tensors with the same
// reasons and write the same bytes.
#pragma once

#include <cstdint>

#include "runtime/dtype.h"
#include "runtime/status.h"

namespace glimpse {

class ThreadPool;

// Whether a tensor already stored in a quantized type may be converted to another type.
// llama-quantize refuses it unless --allow-requantize: the second rounding stacks on the
// first, and a higher-precision target cannot restore what the first lost.
enum class Requantize { refuse, allow };

// Decides whether a tensor of type `from` whose rows hold `row_length` values may be converted
// to `to`: ok, or the reason it may not (no tensor name: callers add it as context):
//   - `to` has no writer (quantize_supported)                              -> unsupported
//   - row_length not a multiple of `to`'s block size                       -> invalid_argument
//   - `from` is quantized and requantize == Requantize::refuse             -> invalid_argument
//   - `from` has no reader (dequantize_supported)                          -> unsupported
// from == to is always ok (nothing to convert). Reads no tensor data.
Status check_tensor_conversion(DType from, DType to, int64_t row_length, Requantize requantize);

// src: `rows` rows of `row_length` values stored as `from` -> the same rows as `to` at `out`
// (rows * dtype_row_bytes(to, row_length) bytes). Each row is widened to f32 (exact for
// f16/bf16/f32) and written with quantize_row, ggml's reference rounding. The conversion must
// have passed check_tensor_conversion. Refuses (invalid_argument, naming the first such row)
// a NaN or infinite value, and output whose f16 block scales overflow (values too large for
// `to`). Rows are spread over `pool`'s threads (nullptr: the calling thread); each row is
// converted on its own, so the bytes do not depend on the thread count. No alignment needed.
Status convert_tensor_rows(DType from, const void* src, DType to, void* out, int64_t rows, int64_t row_length,
                           ThreadPool* pool);

}  // namespace glimpse
