// q8_0 activation quantization with AVX2: the arithmetic of ops/quantize_activations.h
// (ggml-cpu x86), the width-generic block of ops/simd/quantize_activations.h on 8 lanes.
#include "ops/simd/vec_avx2.h"
#include "ops/quantize_activations.h"
#include "ops/simd/quantize_activations.h"

namespace glimpse {

void quantize_row_q8_0_avx2(const float* x, int64_t K, BlockQ8_0* y) { simd::QuantizeQ8<simd::VecAvx2>::row(x, K, y); }

void quantize_rows_q8_0_avx2(const float* x, int64_t ldx, int64_t m0, int64_t m1, const Q8Rows& out) {
    simd::QuantizeQ8<simd::VecAvx2>::rows(x, ldx, m0, m1, out);
}

}  // namespace glimpse
