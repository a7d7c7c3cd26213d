// See ops/quantize_activations_neon.h for the semantics (ggml's ARM quantize_row_q8_0):
// the width-generic block of ops/simd/quantize_activations.h on 4 lanes, with ARM's
// inverse scale 1/d.
#include "ops/quantize_activations_neon.h"

#include <cstring>

#include "ops/simd/vec_neon.h"
#include "ops/simd/quantize_activations.h"

namespace glimpse {
namespace {

using QuantizeNeon = simd::QuantizeQ8<simd::VecNeon, simd::Q8Inverse::arm_one_over_d>;

}  // namespace

void quantize_row_q8_0_neon(const float* x, int64_t K, BlockQ8_0* y) { QuantizeNeon::row(x, K, y); }

void quantize_row_pair_q8_0_neon(const float* x0, const float* x1, int64_t K, BlockQ8_0x2* y) {
    for (int64_t b = 0; b < K / kQK; ++b) {
        int8_t q0[kQK], q1[kQK];
        const float d0 = simd::VecNeon::from_f16_bits(QuantizeNeon::block(x0 + b * kQK, q0, nullptr));
        const float d1 = x1 == x0 ? d0 : simd::VecNeon::from_f16_bits(QuantizeNeon::block(x1 + b * kQK, q1, nullptr));
        if (x1 == x0) std::memcpy(q1, q0, kQK);
        y[b].d[0] = y[b].d[1] = d0;
        y[b].d[2] = y[b].d[3] = d1;
        for (int j = 0; j < 4; ++j) {
            std::memcpy(y[b].qs + 16 * j, q0 + 8 * j, 8);
            std::memcpy(y[b].qs + 16 * j + 8, q1 + 8 * j, 8);
        }
    }
}

}  // namespace glimpse
