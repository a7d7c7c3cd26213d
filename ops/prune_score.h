// Score and merge ops of visual-token pruning (issue 23): what the selection references of
// ops/prune_select.h take as input, computed by registered kernels (ops/kernel_registry.h) so
// the model calls them through select_kernel and never knows an ISA.
//
// Three families, each with a scalar reference (the oracle of its variants, below) and one
// width-generic algorithm (ops/simd/prune_score.h) instantiated for AVX2, AVX-512 and NEON:
//
//   cosine_similarity  a:(n,C), b:(m,C) -> sim:(n,m), sim[i][j] = cos(a_i, b_j).
//                      Self-similarity (DivPrune, DART, CDPruner) passes b = a; text relevance
//                      (CDPruner) passes the visual rows as a and the instruction's token
//                      embeddings as b, then cdpruner_relevance_ref reduces (n,m) -> (n).
//   tap_scores         an encoder attention tap (n_head, n_pos) -> one score per visual token:
//                      mean over heads, then over each s x s pixel-shuffle block (SmolVLM: one
//                      language-model token is 4 x 4 encoder patches); accumulate = add to the
//                      scores already there (VTC-CLS sums the [CLS] row over layers).
//   merge_rows         x:(n,C), assign:(n) -> y:(k,C), the size-weighted average of the rows
//                      assigned to each slot (VisionZip's contextual tokens, ToMe-style merges).
//   attention_row      the [CLS] tap: one query row's attention per head, q_row:(Hq*D),
//                      k:(S, kv_ld) -> out:(Hq, S) = softmax over the S keys (FasterVLM, VTC-CLS,
//                      VisionZip on CLIP). Threaded: the logits over (head, key block), then the
//                      softmax over heads.
//
// Exact definitions (the references implement them literally; variants differ only where said):
//   cosine_similarity: u_i = a_i * fl32(1 / sqrt(sum_c a_ic^2)) with the sum in f64 (a zero
//     row gives u = 0, so its similarities are 0); sim[i][j] = fl32(sum_c u_ic * v_jc), the
//     products and the sum in f64 (so picks depend on the rows, not on a summation order).
//     Variants sum in f64 lanes in another order: at most 1 ulp of f32 from the reference on
//     sim and on u (tests/test_op_variants.cpp states the bound). NaN in a row: its row and
//     column of sim are NaN (the selection references rank NaN last).
//   tap_scores: hs[p] = sum_h tap[h][p] (f64, heads ascending) for every patch p of the
//     h x w grid (a trailing [CLS] position, n_pos = h*w + 1, is not a token and is skipped);
//     block[by][bx] = sum over the block's patch rows i ascending, then columns j ascending, of
//     hs (f64); score = fl32(block / (n_head * s * s)) (accumulate: fl32(score + that)).
//     Variants: bit-identical (the same f64 additions in the same order per element).
//   merge_rows: for each slot t < k, over i ascending with assign[i] == t (assign[i] = -1:
//     not merged anywhere): wsum_t = sum w_i, acc_t = sum fl32(w_i * x_i) (f32, in that
//     order), y_t = acc_t / wsum_t; a slot with no row gets y_t = 0, wsum_t = 0. weight null =
//     every w_i = 1. sizes_out (optional): wsum_t. Variants: bit-identical (no contraction:
//     ops/simd is compiled with the arithmetic as written).
//   attention_row: logit[h][s] = fl32(sum_d q_row[h*D + d] * k[s*kv_ld + (h/group)*D + d]) * scale
//     (group = n_head / n_head_kv; the products exact in f64, summed in f64, d ascending), then
//     each head's row through softmax_row_ref (ops/attention.h: f32 max and exp, f64 sum). Every
//     element is computed by one thread with the same code whatever the split, so the result has
//     the same bits for any thread count. Variants: the f64 sums in lanes (another order), so a
//     logit may differ by 1 ulp of f32 (more only under cancellation: |error| <= 2*D*2^-53 *
//     sum_d |q*k| before the scale); the softmax is the reference's own code. NaN in q or k: the
//     head's row is NaN.
// Callers validate shapes (C >= 1, n, m, k >= 1, assign in [-1, k), h and w multiples of s);
// kernels do not check. Every buffer, scratch included, is the caller's: a call allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/threadpool.h"

namespace glimpse {

// ---- cosine_similarity --------------------------------------------------------------------------
// scratch: (n + m) * C f32 for the unit rows (64-byte aligned by the caller); unit rows of a are
// left in the first n*C floats (DivPrune's and VisionZip's metric). b == a (same pointer, m == n)
// normalises once.
size_t cosine_similarity_scratch_bytes(int64_t n, int64_t m, int64_t C);
void cosine_similarity_ref(const float* a, int64_t n, const float* b, int64_t m, int64_t C, float* sim, void* scratch,
                           ThreadPool* pool);

// ---- tap_scores -------------------------------------------------------------------------------
// tap:(n_head, n_pos), h x w patch grid, block side s -> scores:((h/s)*(w/s)).
// scratch: tap_scores_scratch_bytes(w, s) bytes.
size_t tap_scores_scratch_bytes(int64_t w, int64_t s);
void tap_scores_ref(const float* tap, int64_t n_head, int64_t n_pos, int64_t h, int64_t w, int64_t s, bool accumulate,
                    float* scores, void* scratch);

// ---- merge_rows -------------------------------------------------------------------------------
// x:(n,C), assign:(n) i32 in [-1, k), weight:(n) or null -> y:(k,C), sizes_out:(k) or null.
// y must not overlap x.
void merge_rows_ref(const float* x, int64_t n, int64_t C, const int32_t* assign, const float* weight, int64_t k,
                    float* y, float* sizes_out, ThreadPool* pool);

// ---- attention_row ----------------------------------------------------------------------------
// q_row:(n_head*head_dim), k:(S, kv_ld) f32 -> out:(n_head, S). No scratch: out holds the logits
// before the softmax. Threaded over (head, block of kAttentionRowKeyBlock keys), then heads.
inline constexpr int64_t kAttentionRowKeyBlock = 64;
void attention_row_ref(const float* q_row, const float* k, int64_t S, int64_t kv_ld, int64_t n_head, int64_t n_head_kv,
                       int64_t head_dim, float scale, float* out, ThreadPool* pool);

// ---- variants (ops/prune_score_<isa>.cpp, one algorithm: ops/simd/prune_score.h) ----------------
// One ISA's variants, with the references' signatures: cosine_similarity_<isa>, tap_scores_<isa>,
// merge_rows_<isa>, attention_row_<isa> (defined by GLIMPSE_PRUNE_SCORE_KERNELS).
#define GLIMPSE_DECLARE_PRUNE_SCORE_VARIANTS(isa)                                                                     \
    void cosine_similarity_##isa(const float* a, int64_t n, const float* b, int64_t m, int64_t C, float* sim,        \
                                 void* scratch, ThreadPool* pool);                                                    \
    void tap_scores_##isa(const float* tap, int64_t n_head, int64_t n_pos, int64_t h, int64_t w, int64_t s,          \
                          bool accumulate, float* scores, void* scratch);                                             \
    void merge_rows_##isa(const float* x, int64_t n, int64_t C, const int32_t* assign, const float* weight,          \
                          int64_t k, float* y, float* sizes_out, ThreadPool* pool);                                   \
    void attention_row_##isa(const float* q_row, const float* k, int64_t S, int64_t kv_ld, int64_t n_head,           \
                             int64_t n_head_kv, int64_t head_dim, float scale, float* out, ThreadPool* pool);
#if defined(__x86_64__)
GLIMPSE_DECLARE_PRUNE_SCORE_VARIANTS(avx2)
GLIMPSE_DECLARE_PRUNE_SCORE_VARIANTS(avx512)
#endif
#if defined(__aarch64__)
GLIMPSE_DECLARE_PRUNE_SCORE_VARIANTS(neon)
#endif

}  // namespace glimpse
