// Scalar pieces that the references (ops/prune_score.cpp) and the width-generic variants
// (ops/simd/prune_score.h) run identically: the row-split rule, cosine_similarity's frame
// (scratch layout, which rows are normalised, the parallel loops) and tap_scores' block
// pooling, attention_row's split and softmax. The variants differ from the reference only in the arithmetic they pass in (unit
// rows, dot products, head sums); the rest is this one code, so it cannot drift.
//
// Anonymous namespace, as in ops/simd/: every ISA translation unit that includes this gets its
// own copy compiled with its own flags (an inline function with external linkage could be
// merged across units, and an AVX-512 copy could then run on an AVX2-only CPU).
#pragma once

#include <cstdint>

#include "ops/attention.h"
#include "ops/prune_score.h"
#include "runtime/threadpool.h"

namespace glimpse {
namespace {

// body(i0, i1, thread) over rows [0, n): split over the pool when the work is worth it.
template <class Body>
void prune_score_run_rows(ThreadPool* pool, int64_t n, int64_t work_per_row, const Body& body) {
    if (pool && n * work_per_row >= (int64_t{1} << 15)) pool->parallel_for(n, body);
    else body(0, n, 0);
}

// cosine_similarity's frame: unit rows of a:(n,C) into ua:(n,C) at the start of scratch and of
// b:(m,C) into ub:(m,C) after it (ub = ua when b is a: self-similarity), each by
// unit_rows(x, i0, i1, C, u); then sim_rows(ua, ub, self, i0, i1) for rows [i0, i1) of sim:(n,m).
template <class UnitRows, class SimRows>
void cosine_similarity_frame(const float* a, int64_t n, const float* b, int64_t m, int64_t C, void* scratch,
                             ThreadPool* pool, const UnitRows& unit_rows, const SimRows& sim_rows) {
    float* ua = static_cast<float*>(scratch);
    const bool self = a == b && n == m;
    float* ub = self ? ua : ua + n * C;
    prune_score_run_rows(pool, n, C, [&](int64_t i0, int64_t i1, int) { unit_rows(a, i0, i1, C, ua); });
    if (!self) prune_score_run_rows(pool, m, C, [&](int64_t i0, int64_t i1, int) { unit_rows(b, i0, i1, C, ub); });
    prune_score_run_rows(pool, n, m * C, [&](int64_t i0, int64_t i1, int) { sim_rows(ua, ub, self, i0, i1); });
}

// block:(w/s) += the sums of s consecutive patches of head_sum:(w), one patch row of a block row.
inline void tap_pool_row(const double* head_sum, int64_t bw, int64_t s, double* block) {
    for (int64_t bx = 0; bx < bw; ++bx) {
        for (int64_t j = 0; j < s; ++j) block[bx] += head_sum[bx * s + j];
    }
}

// One row of block scores from its sums: scores_row[bx] = block[bx] / denom, or with
// `accumulate` added to it in f64 and rounded once.
inline void tap_store_block_row(const double* block, int64_t bw, double denom, bool accumulate, float* scores_row) {
    for (int64_t bx = 0; bx < bw; ++bx) {
        float& out = scores_row[bx];
        const double v = block[bx] / denom;
        out = accumulate ? static_cast<float>(static_cast<double>(out) + v) : static_cast<float>(v);
    }
}

// attention_row's frame: logit_rows(h, s0, s1, row) writes the logits of keys [s0, s1) of head h
// into row:(S) (one task per head and key block of kAttentionRowKeyBlock), then every head's row
// goes through softmax_row_ref. Each element is written by one task whose bounds depend only on
// S, so any thread count gives the same bits.
template <class LogitRows>
void attention_row_frame(int64_t S, int64_t n_head, int64_t head_dim, float* out, ThreadPool* pool,
                         const LogitRows& logit_rows) {
    const int64_t blocks = (S + kAttentionRowKeyBlock - 1) / kAttentionRowKeyBlock;
    prune_score_run_rows(pool, n_head * blocks, kAttentionRowKeyBlock * head_dim, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t h = i / blocks, s0 = (i % blocks) * kAttentionRowKeyBlock;
            logit_rows(h, s0, s0 + kAttentionRowKeyBlock < S ? s0 + kAttentionRowKeyBlock : S, out + h * S);
        }
    });
    // The softmax costs an exp per element: worth threads from a few rows of a few hundred keys.
    prune_score_run_rows(pool, n_head, S * 32, [&](int64_t h0, int64_t h1, int) {
        for (int64_t h = h0; h < h1; ++h) softmax_row_ref(out + h * S, S);
    });
}

}  // namespace
}  // namespace glimpse
