// NEON attention, softmax and exp (aarch64, any core). attention_neon is the
// width-generic algorithm of ops/simd/attention.h on 4 lanes: the blocked flash-style
// kernel for prefill / vision (blocks of 8 query rows in two q registers, 8 keys / 8
// dims × 2 vectors register tiles: 16 accumulators of the 32 NEON registers) and the
// row kernel for decode (16 output columns per pass over V), both with the
// column-mean tap. FMAs are explicit (vfmaq_f32 where the algorithm says fmadd;
// aarch64 builds use -ffp-contract=off).
#include "ops/simd/vec_neon.h"
#include "ops/attention_neon.h"
#include "ops/simd/attention.h"
#include "ops/simd/exp.h"

#include <algorithm>
#include <cmath>

namespace glimpse {

using simd::VecNeon;

void exp_neon(const float* x, int64_t n, float* y) { simd::exp_array<VecNeon>(x, n, y); }

void softmax_row_neon(float* x, int64_t n) {
    if (n <= 0) return;
    float32x4_t vmax = vdupq_n_f32(-INFINITY);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vmax = vmaxq_f32(vmax, vld1q_f32(x + i));
    float max = vmaxvq_f32(vmax);
    for (; i < n; ++i) max = std::max(max, x[i]);
    // exp(x - max), summed in 4 f32 lanes
    float32x4_t vsum = vdupq_n_f32(0.0f);
    const float32x4_t vm = vdupq_n_f32(max);
    for (i = 0; i + 4 <= n; i += 4) {
        const float32x4_t e = simd::vexp<VecNeon>(vsubq_f32(vld1q_f32(x + i), vm));
        vst1q_f32(x + i, e);
        vsum = vaddq_f32(vsum, e);
    }
    float sum = vaddvq_f32(vsum);
    if (i < n) {
        for (int64_t j = i; j < n; ++j) x[j] -= max;
        exp_neon(x + i, n - i, x + i);
        for (int64_t j = i; j < n; ++j) sum += x[j];
    }
    const float inv = 1.0f / sum;
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
    for (; i < n; ++i) x[i] *= inv;
}

void attention_neon(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    simd::Attention<VecNeon, /*kJ=*/8, /*kDc=*/8, /*kVCols=*/4>::run(a, scratch, pool);
}

}  // namespace glimpse
