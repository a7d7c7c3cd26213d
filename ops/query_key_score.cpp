#include "ops/query_key_score.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace glimpse {

int64_t query_key_score_scratch_floats(int64_t n_raters, int64_t n_head, int64_t n_keys) {
    return n_raters * n_head * n_keys;
}

void query_key_score_ref(const QueryKeyScoreArgs& a, float* scratch, ThreadPool* pool) {
    const int64_t R = a.n_raters, H = a.n_head, S = a.n_keys, D = a.head_dim;
    const int64_t group = H / a.n_head_kv;
    // One probability row per (rater, head): scratch[(r*H + h)*S + s].
    auto rows = [&](int64_t b, int64_t e, int) {
        for (int64_t rh = b; rh < e; ++rh) {
            const int64_t r = rh / H, h = rh % H;
            const float* q = a.q + r * a.q_ld + h * D;
            float* p = scratch + rh * S;
            double max_logit = -std::numeric_limits<double>::infinity();
            for (int64_t s = 0; s < S; ++s) {
                const float* k = a.k + s * a.k_ld + (h / group) * D;
                double dot = 0;
                for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(q[d]) * k[d];
                const double logit = dot * a.scale;
                p[s] = static_cast<float>(logit);
                max_logit = std::max(max_logit, logit);
            }
            double sum = 0;
            for (int64_t s = 0; s < S; ++s) sum += std::exp(static_cast<double>(p[s]) - max_logit);
            for (int64_t s = 0; s < S; ++s) p[s] = static_cast<float>(std::exp(static_cast<double>(p[s]) - max_logit) / sum);
        }
    };
    auto reduce = [&](int64_t b, int64_t e, int) {
        for (int64_t s = b; s < e; ++s) {
            double acc = a.reduce == HeadReduce::max ? -std::numeric_limits<double>::infinity() : 0.0;
            for (int64_t h = 0; h < H; ++h) {
                double m = 0;
                for (int64_t r = 0; r < R; ++r) m += scratch[(r * H + h) * S + s];
                m /= static_cast<double>(R);
                acc = a.reduce == HeadReduce::max ? std::max(acc, m) : acc + m;
            }
            a.out[s] = static_cast<float>(a.reduce == HeadReduce::max ? acc : acc / static_cast<double>(H));
        }
    };
    if (pool) {
        pool->parallel_for(R * H, rows);
        pool->parallel_for(S, reduce);
    } else {
        rows(0, R * H, 0);
        reduce(0, S, 0);
    }
}

}  // namespace glimpse
