// Width-generic cosine_similarity, tap_scores and merge_rows (contracts and exact definitions:
// ops/prune_score.h), written once against a vector-traits type V (ops/simd/vec_*.h) and
// instantiated by ops/prune_score_avx2.cpp, _avx512.cpp and _neon.cpp. Include only from an
// ISA translation unit, after its vec_<isa>.h.
//
// cosine_similarity: the f32 products of the references are exact in f64, so the variants
// convert each f32 vector to two f64 halves and accumulate in f64 lanes (FMA in f64 is exact
// for products of two floats), four b rows per pass over a row of a so each a vector is
// loaded once; only the order of the f64 additions differs from the reference.
// tap_scores: the head sums are vertical (one f64 lane per patch, heads ascending, as the
// reference adds them); the block pooling is the reference's own code (ops/prune_score_shared.h).
// merge_rows: one pass per slot over the rows assigned to it, y += w * x in f32 lanes.
// attention_row: cosine_similarity's f64-lane dots over each head's keys, then the reference's
// frame (threads) and softmax (ops/prune_score_shared.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "runtime/threadpool.h"

#include "ops/prune_score_shared.h"
#include "ops/simd/exact_fp.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse::simd {
namespace {

template <class V>
struct PruneScore {
    using F = typename V::F;
    using D = typename V::D;
    static constexpr int L = V::kLanes;

    // x:(rows,C), rows [i0, i1) -> u = x * fl32(1 / ||x||), ||x||^2 summed in f64 lanes.
    static void unit_rows(const float* x, int64_t i0, int64_t i1, int64_t C, float* u) {
        for (int64_t i = i0; i < i1; ++i) {
            const float* xi = x + i * C;
            D s0 = V::zero_d(), s1 = s0, s2 = s0, s3 = s0;
            int64_t c = 0;
            for (; c + 2 * L <= C; c += 2 * L) {
                const F p = V::loadu(xi + c), q = V::loadu(xi + c + L);
                const D p0 = V::lo_to_d(p), p1 = V::hi_to_d(p), q0 = V::lo_to_d(q), q1 = V::hi_to_d(q);
                s0 = V::fmadd_d(p0, p0, s0);
                s1 = V::fmadd_d(p1, p1, s1);
                s2 = V::fmadd_d(q0, q0, s2);
                s3 = V::fmadd_d(q1, q1, s3);
            }
            for (; c < C; c += L) {
                const F p = V::load_tail(xi + c, C - c);
                const D p0 = V::lo_to_d(p), p1 = V::hi_to_d(p);
                s0 = V::fmadd_d(p0, p0, s0);
                s1 = V::fmadd_d(p1, p1, s1);
            }
            const double ss = V::reduce_add_d(V::add_d(V::add_d(s0, s1), V::add_d(s2, s3)));
            const float inv = ss > 0 ? static_cast<float>(1.0 / std::sqrt(ss)) : (ss == 0 ? 0.0f : static_cast<float>(ss));
            const F vi = V::set1(inv);
            for (c = 0; c < C; c += L) V::store_tail(u + i * C + c, C - c, V::mul(V::load_tail(xi + c, C - c), vi));
        }
    }

    // sim_row[j0 .. j0+R) = <ai, row j of ub> in f64 lanes, rows ld floats apart.
    template <int R>
    static void dots(const float* ai, const float* ub, int64_t ld, int64_t j0, int64_t C, float* sim_row) {
        D lo[R], hi[R];
        for (int r = 0; r < R; ++r) lo[r] = hi[r] = V::zero_d();
        for (int64_t c = 0; c < C; c += L) {
            const int64_t left = C - c;
            const F va = left >= L ? V::loadu(ai + c) : V::load_tail(ai + c, left);
            const D a0 = V::lo_to_d(va), a1 = V::hi_to_d(va);
            for (int r = 0; r < R; ++r) {
                const float* bj = ub + (j0 + r) * ld + c;
                const F vb = left >= L ? V::loadu(bj) : V::load_tail(bj, left);
                lo[r] = V::fmadd_d(a0, V::lo_to_d(vb), lo[r]);
                hi[r] = V::fmadd_d(a1, V::hi_to_d(vb), hi[r]);
            }
        }
        for (int r = 0; r < R; ++r) sim_row[j0 + r] = static_cast<float>(V::reduce_add_d(V::add_d(lo[r], hi[r])));
    }

    static void cosine_similarity(const float* a, int64_t n, const float* b, int64_t m, int64_t C, float* sim,
                                  void* scratch, ThreadPool* pool) {
        const auto dot_rows = [&](const float* ua, const float* ub, bool self, int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i) {
                const float* ai = ua + i * C;
                // Self-similarity is symmetric: row i computes j >= i and mirrors them (the f64
                // products commute and are summed in the same order, so sim[j][i] is the value
                // row j would compute). Rows own disjoint elements: (j, i) for j > i only row i's.
                int64_t j = self ? i : 0;
                for (; j + 4 <= m; j += 4) dots<4>(ai, ub, C, j, C, sim + i * m);
                for (; j < m; ++j) dots<1>(ai, ub, C, j, C, sim + i * m);
                if (self) {
                    for (int64_t jj = i + 1; jj < m; ++jj) sim[jj * m + i] = sim[i * m + jj];
                }
            }
        };
        cosine_similarity_frame(a, n, b, m, C, scratch, pool, unit_rows, dot_rows);
    }

    static void tap_scores(const float* tap, int64_t n_head, int64_t n_pos, int64_t h, int64_t w, int64_t s,
                           bool accumulate, float* scores, void* scratch) {
        double* head_sum = static_cast<double*>(scratch);  // (w)
        double* block = head_sum + w;                      // (w/s)
        const int64_t bw = w / s;
        const double denom = static_cast<double>(n_head) * static_cast<double>(s) * static_cast<double>(s);
        constexpr int64_t kHalf = static_cast<int64_t>(sizeof(D) / sizeof(double));  // f64 lanes per D
        for (int64_t by = 0; by < h / s; ++by) {
            for (int64_t bx = 0; bx < bw; ++bx) block[bx] = 0;
            for (int64_t i = 0; i < s; ++i) {
                const int64_t py = by * s + i;
                for (int64_t x = 0; x < w; x += L) {
                    const int64_t left = w - x;
                    D lo = V::zero_d(), hi = lo;
                    for (int64_t head = 0; head < n_head; ++head) {
                        const F v = V::load_tail(tap + head * n_pos + py * w + x, left);
                        lo = V::add_d(lo, V::lo_to_d(v));
                        hi = V::add_d(hi, V::hi_to_d(v));
                    }
                    double lanes[2 * kHalf];
                    std::memcpy(lanes, &lo, sizeof(D));
                    std::memcpy(lanes + kHalf, &hi, sizeof(D));
                    const int64_t count = left < L ? left : L;
                    for (int64_t l = 0; l < count; ++l) head_sum[x + l] = lanes[l];
                }
                tap_pool_row(head_sum, bw, s, block);
            }
            tap_store_block_row(block, bw, denom, accumulate, scores + by * bw);
        }
    }

    // The [CLS] tap: the reference's frame and softmax, the logits' f64 dots in lanes (four keys
    // per pass over q's head, as cosine_similarity's rows).
    static void attention_row(const float* q_row, const float* k, int64_t S, int64_t kv_ld, int64_t n_head,
                              int64_t n_head_kv, int64_t head_dim, float scale, float* out, ThreadPool* pool) {
        const int64_t group = n_head / n_head_kv;
        attention_row_frame(S, n_head, head_dim, out, pool, [&](int64_t h, int64_t s0, int64_t s1, float* row) {
            const float* qh = q_row + h * head_dim;
            const float* kh = k + (h / group) * head_dim;
            int64_t s = s0;
            for (; s + 4 <= s1; s += 4) dots<4>(qh, kh, kv_ld, s, head_dim, row);
            for (; s < s1; ++s) dots<1>(qh, kh, kv_ld, s, head_dim, row);
            for (s = s0; s < s1; ++s) row[s] *= scale;
        });
    }

    static void merge_rows(const float* x, int64_t n, int64_t C, const int32_t* assign, const float* weight, int64_t k,
                           float* y, float* sizes_out, ThreadPool* pool) {
        prune_score_run_rows(pool, k, n + C, [&](int64_t t0, int64_t t1, int) {
            for (int64_t t = t0; t < t1; ++t) {
                float* yt = y + t * C;
                for (int64_t c = 0; c < C; c += L) V::store_tail(yt + c, C - c, V::zero());
                float wsum = 0;
                for (int64_t i = 0; i < n; ++i) {
                    if (assign[i] != t) continue;
                    const float wi = weight ? weight[i] : 1.0f;
                    wsum += wi;
                    const F vw = V::set1(wi);
                    const float* xi = x + i * C;
                    for (int64_t c = 0; c < C; c += L) {
                        const int64_t left = C - c;
                        V::store_tail(yt + c, left, V::add(V::load_tail(yt + c, left), V::mul(vw, V::load_tail(xi + c, left))));
                    }
                }
                if (wsum != 0) {
                    const F vs = V::set1(wsum);
                    for (int64_t c = 0; c < C; c += L) {
                        V::store_tail(yt + c, C - c, V::div(V::load_tail(yt + c, C - c), vs));
                    }
                }
                if (sizes_out) sizes_out[t] = wsum;
            }
        });
    }
};

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END

// The family's kernels for one ISA unit, forwarding to PruneScore<V>: cosine_similarity_<isa>,
// tap_scores_<isa>, merge_rows_<isa>, attention_row_<isa> (declared by
// GLIMPSE_DECLARE_PRUNE_SCORE_VARIANTS in ops/prune_score.h). Expanded in namespace glimpse by
// each ops/prune_score_<isa>.cpp, so the list is written once for every ISA.
#define GLIMPSE_PRUNE_SCORE_KERNELS(isa, V)                                                                          \
    void cosine_similarity_##isa(const float* a, int64_t n, const float* b, int64_t m, int64_t C, float* sim,        \
                                 void* scratch, ThreadPool* pool) {                                                   \
        simd::PruneScore<V>::cosine_similarity(a, n, b, m, C, sim, scratch, pool);                                    \
    }                                                                                                                 \
    void tap_scores_##isa(const float* tap, int64_t n_head, int64_t n_pos, int64_t h, int64_t w, int64_t s,          \
                          bool accumulate, float* scores, void* scratch) {                                            \
        simd::PruneScore<V>::tap_scores(tap, n_head, n_pos, h, w, s, accumulate, scores, scratch);                    \
    }                                                                                                                 \
    void merge_rows_##isa(const float* x, int64_t n, int64_t C, const int32_t* assign, const float* weight,          \
                          int64_t k, float* y, float* sizes_out, ThreadPool* pool) {                                  \
        simd::PruneScore<V>::merge_rows(x, n, C, assign, weight, k, y, sizes_out, pool);                              \
    }                                                                                                                 \
    void attention_row_##isa(const float* q_row, const float* k, int64_t S, int64_t kv_ld, int64_t n_head,           \
                             int64_t n_head_kv, int64_t head_dim, float scale, float* out, ThreadPool* pool) {        \
        simd::PruneScore<V>::attention_row(q_row, k, S, kv_ld, n_head, n_head_kv, head_dim, scale, out, pool);        \
    }
