// How the vision encoder and its projector compute (glimpse --numerics; docs/benchmarks.md,
// "Issue 27, eighth session").
//
//   exact  the weights as the mmproj file stores them, with ggml's arithmetic: llama.cpp
//          parity (tests/data/golden holds its outputs). The default.
//   fast   f16, bf16 and f32 weight matrices of the encoder and projector whose rows are a
//          multiple of 32 long are quantized to Q8_0 when the model loads, with the quantizer
//          `glimpse quantize --type q8_0` writes mmproj files with, and by the same rules
//          (quant/tensor_conversion.h: which tensors may be converted, the refusals, ggml's
//          reference rounding; on the model's thread pool), so the encoder runs the W8A8 int8
//          kernels. An f16 mmproj under
//          `fast` computes exactly what the Q8_0 mmproj glimpse quantize writes from it computes,
//          bit for bit (tests/test_numerics_fast.cpp). The tensors llama-quantize keeps as they
//          are stay so: patch and position embeddings, norms, biases.
//
// The text model is not requantized: its file type is the user's explicit choice (llama.cpp's
// Q8_0/Q4 files are the common case and are used as they are), its token embedding is a row
// table and its output matrix the logits, where int8 rounding shows in the generated text
// directly, and its decode steps are bound by memory bandwidth, not by the arithmetic the
// int8 kernels speed up. A user who wants a Q8_0 text model quantizes it once with
// `glimpse quantize`.
#pragma once

#include <string_view>

#include "runtime/status.h"

namespace glimpse {

enum class Numerics { exact, fast };

// "exact" or "fast"; anything else is an invalid_argument error naming the value.
Result<Numerics> parse_numerics(std::string_view name);
const char* numerics_name(Numerics numerics);

}  // namespace glimpse
