// Density-peak clustering with k-nearest-neighbour density (DPC-kNN), the clustering SparseVLM
// recycles its dropped visual tokens with (Gumpest/SparseVLMs utils.py cluster_and_merge, after
// TCFormer's cluster_dpc_knn; restated here, issue 24).
//
//   x:(n,C) rows, m clusters (1 <= m <= n) -> centres:(m) i32, assign:(n) i32 in [0,m)
//
// Exactly:
//   d[i][j]  = ||x_i − x_j|| / sqrt(C)  (Euclidean), from the cosine kernel passed in (the
//              registered cosine_similarity family: the hot O(n²·C) part runs its SIMD variant):
//              d² = max(0, |x_i|² + |x_j|² − 2·|x_i|·|x_j|·cos_ij) / C, norms in f64; d[i][i] = 0.
//   rho[i]   = exp(−mean of the m smallest d[i][j]², j over all n rows, i itself included)
//              (the official code's k = cluster_num).
//   denser(j, i): rho[j] > rho[i], or rho[j] == rho[i] and j < i. The official code breaks
//              ties with uniform noise of 1e-6; a fixed order gives the same result on every
//              platform and run.
//   delta[i] = min(d_max, min over denser j of d[i][j]), d_max = the largest d[i][j].
//   centres  = the m rows of largest delta·rho, in descending order of it (ties: lower row
//              first); cluster c is centres[c].
//   assign[i]= the c minimising d[centres[c]][i] (ties: the lower c); a centre is its own cluster.
//
// The merged token of cluster c is the plain mean of its rows (every row weight 1, so the
// weights of a cluster sum to exactly 1; the official code divides by count + 1e-6): the
// caller runs the registered merge_rows kernel with assign.
// Scratch: dpc_cluster_scratch_bytes(n, C) bytes, 64-byte aligned by the caller. Deterministic.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/threadpool.h"

namespace glimpse {

// The cosine_similarity family's signature (ops/kernel_registry.h CosineSimilarityFn).
using DpcCosineFn = void (*)(const float* a, int64_t n, const float* b, int64_t m, int64_t C, float* sim,
                             void* scratch, ThreadPool* pool);

size_t dpc_cluster_scratch_bytes(int64_t n, int64_t C);
// Requires n >= 1, C >= 1, 1 <= m <= n; callers validate.
void dpc_cluster_ref(const float* x, int64_t n, int64_t C, int64_t m, DpcCosineFn cosine, int32_t* centres,
                     int32_t* assign, void* scratch, ThreadPool* pool);

// SparseVLM's recycling counts for `dropped` visual tokens (modelling_sparse_llama.py): the
// top int(0.3·dropped) + 1 of them by score are clustered (0 when nothing is dropped), into
// int(recycled / 10) + 1 merged tokens (0 when nothing is recycled).
int64_t sparsevlm_recycled_rows(int64_t dropped);
int64_t sparsevlm_merged_rows(int64_t dropped);

}  // namespace glimpse
