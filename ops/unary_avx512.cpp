// AVX-512 elementwise ops: unary (GELU tanh/quick, SiLU, the f16 GELU forms), swiglu, add,
// mul. Same contracts as ops/unary.h; the width-generic algorithms of ops/simd/unary.h
// on 16 lanes.
#include "ops/simd/vec_avx512.h"
#include "ops/op_variants_x86.h"
#include "ops/simd/unary.h"

namespace glimpse {

using ElementwiseAvx512 = simd::Elementwise<simd::VecAvx512>;

void unary_avx512(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool) {
    ElementwiseAvx512::unary(op, x, n, y, pool);
}

void swiglu_avx512(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool) {
    ElementwiseAvx512::swiglu(gate, up, n, y, pool);
}

void add_avx512(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    ElementwiseAvx512::binary<true>(a, b, T, C, b_rows, y, pool);
}

void mul_avx512(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    ElementwiseAvx512::binary<false>(a, b, T, C, b_rows, y, pool);
}

}  // namespace glimpse
