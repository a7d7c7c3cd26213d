// q8_0 activation quantization for the aarch64 matmul kernels (ops/matmul_*_neon.cpp,
// *_dotprod.cpp, *_i8mm.cpp). Baseline NEON only, so every ARM kernel may call it.
//
// Semantics are ggml's ARM quantize_row_q8_0, block by block (32 values):
//   amax = max |x_k|,  d = amax / 127,  id = d ? 1/d : 0,
//   stored scale = f16(d) (round to nearest even),  q_k = round_half_even(x_k · id)
// computed with f32 arithmetic (vcvtnq_s32_f32 rounds to nearest, ties to even; the
// x86 AVX2 path of ggml rounds the same way). ggml's scalar quantize_row_q8_0_ref uses
// roundf (ties away from zero) instead: the two differ only when x_k · id is exactly
// k + 0.5, by one step on that value — inside the q8_0 tolerance of every test, and the
// same difference llama.cpp's own builds have between its NEON and scalar paths.
// Note q_k uses the f32 1/d while the dot products use the f16-rounded d, as in ggml.
// ggml's x86 path (ops/quantize_activations.h) uses id = 127/amax instead of 1/(amax/127):
// the two ids can differ in the last bit, which moves q_k by one step only when x_k·id
// lies within an ulp of a tie; both are within the q8_0 tolerance of the matmul tests.
#pragma once

#include <cstdint>

#include "quant/formats.h"

#if defined(__aarch64__)

namespace glimpse {

// x:(K) f32, K % 32 == 0  ->  y:(K/32) blocks.
void quantize_row_q8_0_neon(const float* x, int64_t K, BlockQ8_0* y);

// The i8mm kernels' activation layout: two rows, 8-byte chunks interleaved, so one
// 16-byte load is the 2x8 left operand of SMMLA. d = {d0, d0, d1, d1} as f32 values of
// the f16-rounded scales (lane order of a 2x2 SMMLA result row-major [m0n0 m0n1 m1n0 m1n1]).
struct BlockQ8_0x2 {
    float d[4];
    int8_t qs[2 * kQK];  // chunk j (k = 8j..8j+7): row 0 at 16j, row 1 at 16j + 8
};
static_assert(sizeof(BlockQ8_0x2) == 80, "q8_0x2 block size");

// Rows x0, x1:(K) -> y:(K/32) blocks; quantized exactly as quantize_row_q8_0_neon
// (x1 may equal x0 for an odd last row).
void quantize_row_pair_q8_0_neon(const float* x0, const float* x1, int64_t K, BlockQ8_0x2* y);

}  // namespace glimpse

#endif
