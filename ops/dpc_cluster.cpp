#include "ops/dpc_cluster.h"

#include <algorithm>
#include <cmath>

#include "ops/prune_score.h"

namespace glimpse {
namespace {

size_t align64(size_t bytes) { return (bytes + 63) / 64 * 64; }

}  // namespace

size_t dpc_cluster_scratch_bytes(int64_t n, int64_t C) {
    const size_t nn = static_cast<size_t>(n) * static_cast<size_t>(n);
    // cosine (n,n) f32 -> reused as d; norms (n) f64; rho, delta, score (n) f64; one row (n) f32;
    // the cosine kernel's own scratch.
    return align64(nn * sizeof(float)) + align64(static_cast<size_t>(n) * sizeof(double)) * 4 +
           align64(static_cast<size_t>(n) * sizeof(float)) + align64(cosine_similarity_scratch_bytes(n, n, C));
}

void dpc_cluster_ref(const float* x, int64_t n, int64_t C, int64_t m, DpcCosineFn cosine, int32_t* centres,
                     int32_t* assign, void* scratch, ThreadPool* pool) {
    const size_t N = static_cast<size_t>(n);
    uint8_t* p = static_cast<uint8_t*>(scratch);
    float* d = reinterpret_cast<float*>(p);
    p += align64(N * N * sizeof(float));
    double* norm = reinterpret_cast<double*>(p);
    p += align64(N * sizeof(double));
    double* rho = reinterpret_cast<double*>(p);
    p += align64(N * sizeof(double));
    double* delta = reinterpret_cast<double*>(p);
    p += align64(N * sizeof(double));
    double* score = reinterpret_cast<double*>(p);
    p += align64(N * sizeof(double));
    float* row = reinterpret_cast<float*>(p);
    p += align64(N * sizeof(float));
    void* cos_scratch = p;

    // d:(n,n) = cos first, then the scaled Euclidean distance in place.
    cosine(x, n, x, n, C, d, cos_scratch, pool);
    for (int64_t i = 0; i < n; ++i) {
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += static_cast<double>(x[i * C + c]) * x[i * C + c];
        norm[i] = std::sqrt(s);
    }
    double d_max = 0;
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < n; ++j) {
            double sq = 0;
            if (i != j) {
                sq = norm[i] * norm[i] + norm[j] * norm[j] - 2.0 * norm[i] * norm[j] * d[i * n + j];
                sq = std::max(0.0, sq) / static_cast<double>(C);
            }
            d[i * n + j] = static_cast<float>(std::sqrt(sq));
            d_max = std::max(d_max, static_cast<double>(d[i * n + j]));
        }
    }
    // rho: the m nearest (self included, distance 0).
    for (int64_t i = 0; i < n; ++i) {
        std::copy(d + i * n, d + (i + 1) * n, row);
        std::partial_sort(row, row + m, row + n);
        double s = 0;
        for (int64_t j = 0; j < m; ++j) s += static_cast<double>(row[j]) * row[j];
        rho[i] = std::exp(-s / static_cast<double>(m));
    }
    for (int64_t i = 0; i < n; ++i) {
        double best = d_max;
        for (int64_t j = 0; j < n; ++j) {
            const bool denser = rho[j] > rho[i] || (rho[j] == rho[i] && j < i);
            if (denser) best = std::min(best, static_cast<double>(d[i * n + j]));
        }
        delta[i] = best;
        score[i] = best * rho[i];
    }
    // Centres: the m largest scores, descending, ties to the lower row (a selection pass per
    // centre: m is n/10 + 1 at most in SparseVLM's use, so O(m·n) is below the O(n²) above).
    for (int64_t c = 0; c < m; ++c) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; ++i) {
            bool taken = false;
            for (int64_t e = 0; e < c && !taken; ++e) taken = centres[e] == i;
            if (taken) continue;
            if (best < 0 || score[i] > score[best]) best = i;
        }
        centres[c] = static_cast<int32_t>(best);
    }
    for (int64_t i = 0; i < n; ++i) {
        int32_t best = 0;
        for (int64_t c = 1; c < m; ++c) {
            if (d[centres[c] * n + i] < d[centres[best] * n + i]) best = static_cast<int32_t>(c);
        }
        assign[i] = best;
    }
    for (int64_t c = 0; c < m; ++c) assign[centres[c]] = static_cast<int32_t>(c);
}

int64_t sparsevlm_recycled_rows(int64_t dropped) {
    if (dropped <= 0) return 0;
    return std::min<int64_t>(dropped, static_cast<int64_t>(static_cast<double>(dropped) * 0.3) + 1);
}

int64_t sparsevlm_merged_rows(int64_t dropped) {
    const int64_t recycled = sparsevlm_recycled_rows(dropped);
    return recycled == 0 ? 0 : recycled / 10 + 1;
}

}  // namespace glimpse
