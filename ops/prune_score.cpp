// Scalar references of the pruning score and merge ops (ops/prune_score.h): the definitions
// written out literally, the oracle of every variant.
#include "ops/prune_score.h"

#include <cmath>
#include <cstring>

#include "ops/prune_score_shared.h"

namespace glimpse {

namespace {

// Rows in [i0, i1) of x:(rows,C) -> u = x * fl32(1 / ||x||), the norm's square summed in f64.
void unit_rows_ref(const float* x, int64_t i0, int64_t i1, int64_t C, float* u) {
    for (int64_t i = i0; i < i1; ++i) {
        const float* xi = x + i * C;
        double ss = 0;
        for (int64_t c = 0; c < C; ++c) ss += static_cast<double>(xi[c]) * static_cast<double>(xi[c]);
        const float inv = ss > 0 ? static_cast<float>(1.0 / std::sqrt(ss)) : (ss == 0 ? 0.0f : ss);
        for (int64_t c = 0; c < C; ++c) u[i * C + c] = xi[c] * inv;
    }
}

}  // namespace

size_t cosine_similarity_scratch_bytes(int64_t n, int64_t m, int64_t C) {
    return static_cast<size_t>((n + m) * C) * sizeof(float);
}

void cosine_similarity_ref(const float* a, int64_t n, const float* b, int64_t m, int64_t C, float* sim, void* scratch,
                           ThreadPool* pool) {
    // sim[i][j] = <ua_i, ub_j>, each product exact in f64, summed in order of c.
    const auto dot_rows = [&](const float* ua, const float* ub, bool /*self*/, int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
            for (int64_t j = 0; j < m; ++j) {
                double dot = 0;
                for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(ua[i * C + c]) * static_cast<double>(ub[j * C + c]);
                sim[i * m + j] = static_cast<float>(dot);
            }
        }
    };
    cosine_similarity_frame(a, n, b, m, C, scratch, pool, unit_rows_ref, dot_rows);
}

size_t tap_scores_scratch_bytes(int64_t w, int64_t s) {
    return static_cast<size_t>(w + (s > 0 ? w / s : 0)) * sizeof(double);
}

void tap_scores_ref(const float* tap, int64_t n_head, int64_t n_pos, int64_t h, int64_t w, int64_t s, bool accumulate,
                    float* scores, void* scratch) {
    double* head_sum = static_cast<double*>(scratch);  // (w): one patch row summed over heads
    double* block = head_sum + w;                      // (w/s): one row of blocks
    const int64_t bw = w / s;
    const double denom = static_cast<double>(n_head) * static_cast<double>(s) * static_cast<double>(s);
    for (int64_t by = 0; by < h / s; ++by) {
        for (int64_t bx = 0; bx < bw; ++bx) block[bx] = 0;
        for (int64_t i = 0; i < s; ++i) {
            const int64_t py = by * s + i;
            for (int64_t x = 0; x < w; ++x) {
                double sum = 0;
                for (int64_t head = 0; head < n_head; ++head) sum += static_cast<double>(tap[head * n_pos + py * w + x]);
                head_sum[x] = sum;
            }
            tap_pool_row(head_sum, bw, s, block);
        }
        tap_store_block_row(block, bw, denom, accumulate, scores + by * bw);
    }
}

void merge_rows_ref(const float* x, int64_t n, int64_t C, const int32_t* assign, const float* weight, int64_t k,
                    float* y, float* sizes_out, ThreadPool* pool) {
    prune_score_run_rows(pool, k, n + C, [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            float* yt = y + t * C;
            std::memset(yt, 0, static_cast<size_t>(C) * sizeof(float));
            float wsum = 0;
            for (int64_t i = 0; i < n; ++i) {
                if (assign[i] != t) continue;
                const float wi = weight ? weight[i] : 1.0f;
                wsum += wi;
                for (int64_t c = 0; c < C; ++c) yt[c] += wi * x[i * C + c];
            }
            if (wsum != 0) {
                for (int64_t c = 0; c < C; ++c) yt[c] = yt[c] / wsum;
            }
            if (sizes_out) sizes_out[t] = wsum;
        }
    });
}

void attention_row_ref(const float* q_row, const float* k, int64_t S, int64_t kv_ld, int64_t n_head, int64_t n_head_kv,
                       int64_t head_dim, float scale, float* out, ThreadPool* pool) {
    const int64_t group = n_head / n_head_kv;
    attention_row_frame(S, n_head, head_dim, out, pool, [&](int64_t h, int64_t s0, int64_t s1, float* row) {
        const float* qh = q_row + h * head_dim;
        for (int64_t s = s0; s < s1; ++s) {
            const float* kr = k + s * kv_ld + (h / group) * head_dim;
            double dot = 0;
            for (int64_t d = 0; d < head_dim; ++d) dot += static_cast<double>(qh[d]) * kr[d];
            row[s] = static_cast<float>(dot) * scale;
        }
    });
}

}  // namespace glimpse
