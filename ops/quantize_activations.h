// On-the-fly quantization of activations for integer dot products.
//
//   x:(M,K) f32 -> per row, K/32 blocks of 32 int8 with one scale each (q8_0)
//
// Rounding reproduces ggml-cpu's x86 quantize_row_q8_0 (arch/x86/quants.c,
// the AVX/AVX2 branch every x86-64 build of llama.cpp with AVX runs), so that
// glimpse feeds the same integers into the same dot products as llama.cpp:
//
//   amax = max_j |x_j|                      (f32)
//   d    = amax / 127                       (f32 division), stored as f16 (round to nearest even)
//   id   = amax != 0 ? 127 / amax : 0       (f32 division; NOT 1/d, and NOT 1/f16(d))
//   q_j  = round_half_even(x_j * id)        (f32 product; _mm256_round_ps(.., _MM_ROUND_NEAREST))
//
// Ties go to even (2.5 -> 2, -3.5 -> -4): this differs from ggml's portable
// quantize_row_q8_0_ref, which uses roundf (ties away from zero) and id = 1/d.
// |x_j·id| <= 127 up to one rounding of the product, so q_j is in [-127, 127].
//
// Two layouts:
//  - BlockQ8_0 (quant/formats.h): the GGUF/ggml block, used by the scalar
//    oracle kernels (ops/matmul_q8_scalar.cpp).
//  - Q8Rows: the split layout the SIMD kernels read. Per row: the K int8 values
//    contiguous (64-byte aligned, so a zmm load never splits a block), the
//    block scales as f32 (the f16 value widened exactly), and each block's sum
//    Σq as int32 (the correction term of unsigned-by-signed dot products:
//    Σ(w+c)·q = Σw·q + c·Σq). The values and scales are bit-identical to the
//    BlockQ8_0 ones.
#pragma once

#include <cstdint>

#include "quant/formats.h"

namespace glimpse {

// x:(K) -> K/32 blocks; K % 32 == 0. Scalar, bit-exact with ggml-cpu x86.
void quantize_row_q8_0(const float* x, int64_t K, BlockQ8_0* y);

// The split layout: M rows of K (K % 32 == 0) in one buffer of q8_rows_bytes(M, K).
struct Q8Rows {
    uint8_t* base = nullptr;
    int64_t K = 0;
    int64_t stride = 0;  // bytes per row (multiple of 64)

    static int64_t row_bytes(int64_t K) {
        const int64_t nb = K / 32;
        const int64_t q = (K + 63) / 64 * 64;
        return (q + nb * 8 + 63) / 64 * 64;
    }
    static int64_t bytes(int64_t M, int64_t K) { return M * row_bytes(K); }

    Q8Rows() = default;
    Q8Rows(void* buffer, int64_t K_) : base(static_cast<uint8_t*>(buffer)), K(K_), stride(row_bytes(K_)) {}

    int8_t* qs(int64_t m) const { return reinterpret_cast<int8_t*>(base + m * stride); }
    float* d(int64_t m) const { return reinterpret_cast<float*>(base + m * stride + (K + 63) / 64 * 64); }
    int32_t* sum(int64_t m) const { return reinterpret_cast<int32_t*>(d(m) + K / 32); }
};

// Rows [m0, m1) of x:(M,K) with row stride ldx -> rows [m0, m1) of `out`.
// Same integers and scales as quantize_row_q8_0.
void quantize_rows_q8_0_scalar(const float* x, int64_t ldx, int64_t m0, int64_t m1, const Q8Rows& out);
#if defined(__x86_64__)
void quantize_rows_q8_0_avx2(const float* x, int64_t ldx, int64_t m0, int64_t m1, const Q8Rows& out);
void quantize_rows_q8_0_avx512(const float* x, int64_t ldx, int64_t m0, int64_t m1, const Q8Rows& out);
void quantize_row_q8_0_avx2(const float* x, int64_t K, BlockQ8_0* y);
void quantize_row_q8_0_avx512(const float* x, int64_t K, BlockQ8_0* y);
#endif

}  // namespace glimpse
