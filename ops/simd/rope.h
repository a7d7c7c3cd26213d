// Width-generic rope, llama "normal" mode (same contract as rope_norm_ref, ops/rope.h),
// written once against a vector-traits type V (ops/simd/vec_*.h) and instantiated by
// ops/rope_avx2.cpp and ops/rope_avx512.cpp.
//
// The reference evaluates cos/sin for every (row, head, pair); the angles depend
// only on the row, so here they are evaluated once per row — with the same f32
// θ recurrence and the same std::cos/std::sin — and applied to all heads with
// vector arithmetic: y = x·(c0,c0,c1,c1,…) + swap_pairs(x)·(−s0,s0,−s1,s1,…),
// which is the reference's (x₀c − x₁s, x₀s + x₁c) rounding for rounding (no
// contraction into FMAs), so results are bit-identical to it.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/rope.h"
#include "ops/simd/exact_fp.h"
#include "runtime/threadpool.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse::simd {
namespace {

template <class V>
struct Rope {
    using F = typename V::F;
    static constexpr int L = V::kLanes;
    static constexpr int64_t kMaxRot = 1024;  // per-row angle tables live on the stack

    // x:(T, H, D) -> y:(T, H, D), the first n_rot dims of each head rotated by pos[t]
    static void run(const float* x, const int32_t* pos, int64_t T, int64_t H, int64_t D, int64_t n_rot, float base,
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
                    for (int64_t i = 0; i < n_rot; i += L) {
                        const int64_t w = n_rot - i;
                        const F v = V::load_tail(xr + i, w);
                        const F sw = V::swap_pairs(v);  // (x1, x0, x3, x2, ...)
                        const F r = V::add(V::mul(v, V::load_tail(cdup + i, w)), V::mul(sw, V::load_tail(sdup + i, w)));
                        V::store_tail(yr + i, w, r);
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
};

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END
