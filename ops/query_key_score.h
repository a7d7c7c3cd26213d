// Query-key score: how much attention a few query rows (the "raters") pay each key, per
// head, reduced over heads, computed from q and k without materialising the T x T
// attention matrix. The score of in-LLM visual-token pruning (issue 24): FastV and
// PyramidDrop rate with the prompt's last row, SparseVLM with a few text rows.
//
//   q:(R, Hq·D) the raters' query rows (after RoPE), row stride q_ld floats
//   k:(S, Hkv·D) the key rows (after RoPE), row stride k_ld floats; head h reads kv head
//       h / (Hq / Hkv) (grouped-query attention)
//   -> out:(S) f32,
//      P[r,h,s] = softmax_s(scale · q[r,h,:]·k[s,kv(h),:])    (over all S keys)
//      out[s]   = reduce_h( mean_r P[r,h,s] )                  reduce: mean or max over Hq heads
//
// Every rater sees all S keys: the caller passes the causal prefix of its raters (the
// prompt's last row sees every row; raters earlier in the prompt see S = their own row + 1
// only if the caller calls once per rater). Scratch: query_key_score_scratch_floats floats
// (the R·Hq probability rows). Deterministic: the output does not depend on the thread count
// (each probability row and each output element is computed by one fixed sequence of
// operations). Variants differ from the reference by their exp (relative error ≤ 2^-22) and
// summation order; the variant tests state the tolerance.
#pragma once

#include <cstdint>

#include "runtime/threadpool.h"

namespace glimpse {

enum class HeadReduce : uint8_t { mean, max };

struct QueryKeyScoreArgs {
    const float* q = nullptr;
    int64_t q_ld = 0;
    int64_t n_raters = 0;  // R >= 1
    const float* k = nullptr;
    int64_t k_ld = 0;
    int64_t n_keys = 0;  // S >= 1
    int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
    float scale = 1.0f;
    HeadReduce reduce = HeadReduce::mean;
    float* out = nullptr;  // (S)
};

int64_t query_key_score_scratch_floats(int64_t n_raters, int64_t n_head, int64_t n_keys);

// The reference (the oracle of the variants): dot products and sums in double, std::exp.
void query_key_score_ref(const QueryKeyScoreArgs& args, float* scratch, ThreadPool* pool);

#if defined(__x86_64__)
void query_key_score_avx2(const QueryKeyScoreArgs& args, float* scratch, ThreadPool* pool);
void query_key_score_avx512(const QueryKeyScoreArgs& args, float* scratch, ThreadPool* pool);
#endif
#if defined(__aarch64__)
void query_key_score_neon(const QueryKeyScoreArgs& args, float* scratch, ThreadPool* pool);
#endif

}  // namespace glimpse
