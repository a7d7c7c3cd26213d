#include "ops/quantize_activations.h"

#include <cmath>
#include <cstring>

#include "runtime/fp16.h"

namespace glimpse {
namespace {

// One block of 32: the ggml-cpu x86 arithmetic in scalar form (see the header).
// Returns the f16 bits of d; q receives the 32 values.
uint16_t quantize_block(const float* x, int8_t* q) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int j = 0; j < 32; ++j) {
        // nearbyint rounds in the current mode, round-to-nearest-even by default,
        // like _mm256_round_ps(v, _MM_ROUND_NEAREST).
        q[j] = static_cast<int8_t>(static_cast<int>(std::nearbyint(x[j] * id)));
    }
    return f32_to_f16(d);
}

}  // namespace

void quantize_row_q8_0(const float* x, int64_t K, BlockQ8_0* y) {
    for (int64_t b = 0; b < K / 32; ++b) y[b].d = quantize_block(x + b * 32, y[b].qs);
}

void quantize_rows_q8_0_scalar(const float* x, int64_t ldx, int64_t m0, int64_t m1, const Q8Rows& out) {
    const int64_t nb = out.K / 32;
    for (int64_t m = m0; m < m1; ++m) {
        int8_t* q = out.qs(m);
        float* d = out.d(m);
        int32_t* s = out.sum(m);
        for (int64_t b = 0; b < nb; ++b) {
            d[b] = f16_to_f32(quantize_block(x + m * ldx + b * 32, q + b * 32));
            int32_t sum = 0;
            for (int j = 0; j < 32; ++j) sum += q[b * 32 + j];
            s[b] = sum;
        }
    }
}

}  // namespace glimpse
