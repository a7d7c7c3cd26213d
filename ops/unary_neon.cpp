// NEON elementwise ops: ops/simd/unary.h on 4 lanes (contracts in ops/unary_neon.h).
#include "ops/unary_neon.h"

#include "ops/simd/vec_neon.h"
#include "ops/simd/unary.h"

namespace glimpse {

using ElementwiseNeon = simd::Elementwise<simd::VecNeon>;

void unary_neon(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool) {
    ElementwiseNeon::unary(op, x, n, y, pool);
}

void swiglu_neon(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool) {
    ElementwiseNeon::swiglu(gate, up, n, y, pool);
}

void add_neon(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    ElementwiseNeon::binary<true>(a, b, T, C, b_rows, y, pool);
}

void mul_neon(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    ElementwiseNeon::binary<false>(a, b, T, C, b_rows, y, pool);
}

}  // namespace glimpse
