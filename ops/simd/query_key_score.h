// The query-key score (ops/query_key_score.h) on any vector-traits type V: one
// probability row per (rater, head): dot products over D with V lanes (tails masked),
// a max-subtracted softmax with vexp (ops/simd/exp.h), then the head/rater reduction
// vectorised across keys. Include only from an ISA translation unit, after its vec_<isa>.h.
#pragma once

#include <cstdint>

#include "ops/query_key_score.h"
#include "ops/simd/exact_fp.h"
#include "ops/simd/exp.h"
#include "runtime/threadpool.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse::simd {
namespace {

template <class V>
struct QueryKeyScore {
    using F = typename V::F;

    // q:(D) · k:(D) with V lanes; tail lanes read as 0.
    static float dot(const float* q, const float* k, int64_t D) {
        F acc = V::zero();
        int64_t d = 0;
        for (; d + V::kLanes <= D; d += V::kLanes) acc = V::fmadd(V::loadu(q + d), V::loadu(k + d), acc);
        if (d < D) acc = V::fmadd(V::load_tail(q + d, D - d), V::load_tail(k + d, D - d), acc);
        return V::reduce_add(acc);
    }

    static void probability_row(const QueryKeyScoreArgs& a, int64_t rh, float* p) {
        const int64_t H = a.n_head, S = a.n_keys, D = a.head_dim;
        const int64_t r = rh / H, h = rh % H, kv = h / (H / a.n_head_kv);
        const float* q = a.q + r * a.q_ld + h * D;
        float max_logit = -INFINITY;
        for (int64_t s = 0; s < S; ++s) {
            p[s] = dot(q, a.k + s * a.k_ld + kv * D, D) * a.scale;
            max_logit = p[s] > max_logit ? p[s] : max_logit;
        }
        const F inv = V::set1(1.0f / exp_shifted<V>(p, S, max_logit));
        int64_t s = 0;
        for (; s + V::kLanes <= S; s += V::kLanes) V::storeu(p + s, V::mul(V::loadu(p + s), inv));
        if (s < S) V::store_tail(p + s, S - s, V::mul(V::load_tail(p + s, S - s), inv));
    }

    // out[s0 .. s0+n) from the probability rows; n <= kLanes.
    static F reduce_block(const QueryKeyScoreArgs& a, const float* prob, int64_t s0, int64_t n) {
        const int64_t R = a.n_raters, H = a.n_head, S = a.n_keys;
        const F inv_r = V::set1(1.0f / static_cast<float>(R));
        F acc = a.reduce == HeadReduce::max ? V::set1(-INFINITY) : V::zero();
        for (int64_t h = 0; h < H; ++h) {
            F m = V::zero();
            for (int64_t r = 0; r < R; ++r) {
                const float* p = prob + (r * H + h) * S + s0;
                m = V::add(m, n == V::kLanes ? V::loadu(p) : V::load_tail(p, n));
            }
            m = V::mul(m, inv_r);
            acc = a.reduce == HeadReduce::max ? V::max(acc, m) : V::add(acc, m);
        }
        return a.reduce == HeadReduce::max ? acc : V::mul(acc, V::set1(1.0f / static_cast<float>(H)));
    }

    static void run(const QueryKeyScoreArgs& a, float* scratch, ThreadPool* pool) {
        const int64_t RH = a.n_raters * a.n_head, S = a.n_keys;
        auto rows = [&](int64_t b, int64_t e, int) {
            for (int64_t rh = b; rh < e; ++rh) probability_row(a, rh, scratch + rh * S);
        };
        const int64_t blocks = (S + V::kLanes - 1) / V::kLanes;
        auto reduce = [&](int64_t b, int64_t e, int) {
            for (int64_t blk = b; blk < e; ++blk) {
                const int64_t s0 = blk * V::kLanes, n = S - s0 < V::kLanes ? S - s0 : V::kLanes;
                const F v = reduce_block(a, scratch, s0, n);
                if (n == V::kLanes) V::storeu(a.out + s0, v);
                else V::store_tail(a.out + s0, n, v);
            }
        };
        if (pool) {
            pool->parallel_for(RH, rows);
            pool->parallel_for(blocks, reduce);
        } else {
            rows(0, RH, 0);
            reduce(0, blocks, 0);
        }
    }
};

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END
