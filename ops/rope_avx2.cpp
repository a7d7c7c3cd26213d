// AVX2 rope, llama "normal" mode (same contract as rope_norm_ref, ops/rope.h).
//
// The reference evaluates cos/sin for every (row, head, pair); the angles depend
// only on the row, so here they are evaluated once per row — with the same f32
// θ recurrence and the same std::cos/std::sin — and applied to all heads with
// vector arithmetic (8 lanes): y = x·(c0,c0,c1,c1,…) + swap_pairs(x)·(−s0,s0,−s1,s1,…),
// which is the reference's (x₀c − x₁s, x₀s + x₁c) rounding for rounding (no
// contraction into FMAs in this file), so results are bit-identical to it.
#include <immintrin.h>

#include <cmath>

#include "ops/op_variants_x86.h"
#include "ops/rope.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace glimpse {
namespace {

constexpr int64_t kMaxRot = 1024;  // per-row angle tables live on the stack

inline __m256i tail_mask(int64_t n) {
    const int m = static_cast<int>(n < 8 ? n : 8);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

}  // namespace

void rope_avx2(const float* x, const int32_t* pos, int64_t T, int64_t H, int64_t D, int64_t n_rot, float base,
                 float* y, ThreadPool* pool) {
    if (n_rot > kMaxRot || n_rot % 2 != 0) return rope_norm_ref(x, pos, T, H, D, n_rot, base, y, pool);
    const float theta_scale = std::pow(base, -2.0f / static_cast<float>(n_rot));
    auto body = [&](int64_t t0, int64_t t1, int) {
        alignas(64) float cdup[kMaxRot];
        alignas(64) float sdup[kMaxRot];
        for (int64_t t = t0; t < t1; ++t) {
            float theta = static_cast<float>(pos[t]);
            for (int64_t i = 0; i < n_rot; i += 2) {
                const float c = std::cos(theta), s = std::sin(theta);
                cdup[i] = c;
                cdup[i + 1] = c;
                sdup[i] = -s;
                sdup[i + 1] = s;
                theta *= theta_scale;
            }
            for (int64_t h = 0; h < H; ++h) {
                const float* xr = x + t * H * D + h * D;
                float* yr = y + t * H * D + h * D;
                for (int64_t i = 0; i < n_rot; i += 8) {
                    const __m256i m = tail_mask(n_rot - i);
                    const __m256 v = _mm256_maskload_ps(xr + i, m);
                    const __m256 sw = _mm256_permute_ps(v, 0xb1);  // (x1, x0, x3, x2, ...)
                    const __m256 r = _mm256_add_ps(_mm256_mul_ps(v, _mm256_maskload_ps(cdup + i, m)),
                                                   _mm256_mul_ps(sw, _mm256_maskload_ps(sdup + i, m)));
                    _mm256_maskstore_ps(yr + i, m, r);
                }
                if (yr != xr) {
                    for (int64_t i = n_rot; i < D; ++i) yr[i] = xr[i];
                }
            }
        }
    };
    if (pool && T > 1) pool->parallel_for(T, body);
    else body(0, T, 0);
}

}  // namespace glimpse
