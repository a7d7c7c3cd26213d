// Token merging inside a ViT (ToMe, Bolya et al., ICLR 2023; the formula of the official
// facebookresearch/ToMe tome/merge.py bipartite_soft_matching, restated here; issue 27).
//
// Per merging layer, between the attention and the MLP:
//   tome_match:  keys:(T, H·D) (the layer's K projection) -> assign:(T) i32 in [0, T−r)
//   merge_rows:  x:(T,C), assign, sizes:(T) (null = all 1) -> x':(T−r, C), sizes':(T−r)
//                (ops/prune_score.h: the size-weighted mean of the rows sent to each slot)
// and once, before the connector:
//   tome_restore: x_L:(T_L, C), the L assigns -> y:(N, C): every original token gets the row it
//                 ended up in (each merged token's value copied back to every patch it absorbed).
//
// tome_match, exactly:
//   metric m_t = (1/H) · Σ_h keys[t][h·D .. h·D+D)     (f32, heads ascending): (T, D)
//   A = rows 0, 2, 4, ... (nA = ceil(T/2)), B = rows 1, 3, 5, ... (nB = floor(T/2))
//   sim[a][b] = cos(m_A[a], m_B[b])                    (the cosine_similarity kernel passed in,
//                                                       ops/prune_score.h's definition)
//   protected_row p (a [CLS] token, or -1): never merged. If p is in A it is no source; if it
//     is in B it is no destination (ToMe sets its row / column of sim to −inf).
//   dest[a] = argmax_b sim[a][b] over the eligible b; ties to the lower b, NaN never wins
//     (a row of NaN goes to the first eligible b).
//   The r sources are the eligible A tokens with the highest sim[a][dest[a]] (NaN ranks last),
//     ties to the lower a.
//   Kept tokens (every token that is not a source) are numbered 0 .. T−r−1 in ascending
//     original order: assign[t] = that number; a source gets assign[dest]'s number.
//   Output order is the original order of the kept tokens (the official code puts unmerged A
//   tokens first; a ViT block is permutation-equivariant once positions are added, and
//   tome_restore puts every token back, so only the grouping matters).
// Requires 0 <= r <= tome_max_merge(T, protected_row), H, D >= 1. Scratch: tome_match_scratch_bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/threadpool.h"

namespace glimpse {

// The most merging layers one restore follows (a ViT has at most a few dozen blocks).
inline constexpr int kMaxTomeMerges = 256;

// The cosine_similarity family's signature (ops/kernel_registry.h CosineSimilarityFn).
using TomeCosineFn = void (*)(const float* a, int64_t n, const float* b, int64_t m, int64_t C, float* sim,
                              void* scratch, ThreadPool* pool);

// The most tokens one tome_match over T tokens may merge: the eligible A tokens (ToMe caps r
// at (T − protected) / 2), and at least one eligible B token must remain.
int64_t tome_max_merge(int64_t T, int64_t protected_row);

size_t tome_match_scratch_bytes(int64_t T, int64_t head_dim);
void tome_match_ref(const float* keys, int64_t T, int64_t n_head, int64_t head_dim, int64_t r,
                    int64_t protected_row, TomeCosineFn cosine, int32_t* assign, void* scratch, ThreadPool* pool);

// x:(T_L, C), maps[i]:(n[i]) i32 with maps[0] over the N original tokens, n[i+1] = rows that
// maps[i] numbers into, n_maps >= 0 -> y:(N, C), y[p] = x[maps[L-1][...maps[0][p]]].
// With no maps y = x (N = T_L). Callers guarantee the ranges (tome_match produces them).
void tome_restore_ref(const float* x, int64_t C, const int32_t* const* maps, int n_maps, int64_t N, float* y,
                      ThreadPool* pool);

}  // namespace glimpse
