// Reference quantizers: f32 rows -> GGUF storage types.
//
// Each follows ggml's reference quantizer for its format (quantize_row_*_ref,
// which is what llama-quantize runs when no importance matrix is given),
// operation for operation in single precision, so on the same input the blocks
// are identical to the bit to what llama-quantize writes from an x86-64 build
// (ggml-base is compiled without FMA there; glimpse never fuses a*b+c here).
//
//   q8_0  d = amax/127, q = round(x/d)                       (round half away from zero)
//   q4_0  d = -m/8 with m the value of largest |x|, q = trunc(x/d + 8.5) clamped to 15
//   q5_0  same with 16 / 16.5 / 31
//   q4_1  d = (max-min)/15, m = min, q = trunc((x-min)/d + 0.5) clamped to 15
//   q5_1  same with 31
//   q4_k  per 32-value sub-block a weighted least-squares scale/min search
//         (ggml's make_qkx2_quants: weights av|x| + |x|, 21 candidate scales),
//         scales and mins then quantized to 6 bits against f16 super-scales
//   q5_k  same search with 31 levels (16 candidates)
//   q6_k  per 16-value sub-block a signed scale search (ggml's make_qx_quants,
//         weights x^2, 19 candidates), scales quantized to int8 against an f16 d
//   f16 / bf16  round to nearest even (NaN stays a quiet NaN)
//
// Inputs must be finite; values whose block scale overflows f16 (|x| beyond
// ~65504 * 127 for q8_0, less for the others) produce inf scales, exactly as in
// ggml (glimpse-quantize checks both and reports the tensor).
#pragma once

#include <cstdint>

#include "quant/formats.h"
#include "runtime/dtype.h"

namespace glimpse {

// f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k: the types whose row of
// the type-trait table (quant/type_traits.h) has a writer.
bool quantize_supported(DType type);

// x: n values (n a multiple of the type's block size) -> dtype_row_bytes(type, n)
// bytes at `out` (no alignment required).
void quantize_row(DType type, const float* x, void* out, int64_t n);

// The same, per format; n is a multiple of 32 (legacy formats) or 256 (k-quants).
// (ops/quantize_activations.h has the activation quantizers, which round differently.)
void quantize_row_f32(const float* x, void* out, int64_t n);
void quantize_row_f16(const float* x, void* out, int64_t n);   // round to nearest even
void quantize_row_bf16(const float* x, void* out, int64_t n);  // round to nearest even
void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n);
void quantize_row_q4_1_ref(const float* x, BlockQ4_1* y, int64_t n);
void quantize_row_q5_0_ref(const float* x, BlockQ5_0* y, int64_t n);
void quantize_row_q5_1_ref(const float* x, BlockQ5_1* y, int64_t n);
void quantize_row_q4_k_ref(const float* x, BlockQ4K* y, int64_t n);
void quantize_row_q5_k_ref(const float* x, BlockQ5K* y, int64_t n);
void quantize_row_q6_k_ref(const float* x, BlockQ6K* y, int64_t n);

// True when every f16 scale of the n values of quantized `type` data is finite
// (what ggml_validate_row_data checks after llama-quantize quantizes a tensor).
// Plain types: true when every value is finite.
bool quantized_scales_finite(DType type, const void* data, int64_t n);

}  // namespace glimpse
