#include "ops/attention.h"

#include <cmath>

#include "runtime/fp16.h"

namespace glimpse {

void softmax_row_ref(float* x, int64_t n) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max = x[i] > max ? x[i] : max;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - max);
        sum += x[i];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

namespace {
inline float kv_at(const void* base, DType type, int64_t index) {
    return type == DType::f16 ? f16_to_f32(static_cast<const uint16_t*>(base)[index])
                              : static_cast<const float*>(base)[index];
}
}  // namespace

void attention_ref(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    const int64_t group = a.n_head / a.n_head_kv;
    const int64_t D = a.head_dim;
    const bool tap = a.col_mean != nullptr;
    // One (query row, head) pair per step. With the column-mean tap, each head's
    // rows run in order on one thread and sum straight into col_mean[h], so the
    // tap is identical for any thread count.
    auto step = [&](int64_t t, int64_t h, float* scores) {
        const int64_t hk = h / group;
        const int64_t n_keys = a.causal ? std::min<int64_t>(a.S, a.causal_offset + t + 1) : a.S;
        const float* qr = a.q + t * a.q_ld + h * D;
        for (int64_t s = 0; s < n_keys; ++s) {
            double dot = 0;
            const int64_t kbase = s * a.kv_ld + hk * D;
            for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(qr[d]) * kv_at(a.k, a.kv_type, kbase + d);
            scores[s] = static_cast<float>(dot) * a.scale;
            if (a.key_bias) scores[s] += a.key_bias[s];
        }
        softmax_row_ref(scores, n_keys);
        if (tap) {
            float* sums = a.col_mean + h * a.S;
            for (int64_t s = 0; s < n_keys; ++s) sums[s] += scores[s];
        }
        float* orow = a.out + t * a.out_ld + h * D;
        for (int64_t d = 0; d < D; ++d) {
            double acc = 0;
            for (int64_t s = 0; s < n_keys; ++s) acc += static_cast<double>(scores[s]) * kv_at(a.v, a.kv_type, s * a.kv_ld + hk * D + d);
            orow[d] = static_cast<float>(acc);
        }
    };
    if (tap) {
        auto body = [&](int64_t h0, int64_t h1, int thread) {
            float* scores = scratch + thread * attention_scratch_floats(a.S);
            for (int64_t h = h0; h < h1; ++h) {
                float* sums = a.col_mean + h * a.S;
                for (int64_t s = 0; s < a.S; ++s) sums[s] = 0.0f;
                for (int64_t t = 0; t < a.T; ++t) step(t, h, scores);
                const float inv_t = 1.0f / static_cast<float>(a.T);
                for (int64_t s = 0; s < a.S; ++s) sums[s] *= inv_t;
            }
        };
        if (pool) pool->parallel_for(a.n_head, body);
        else body(0, a.n_head, 0);
        return;
    }
    auto body = [&](int64_t i0, int64_t i1, int thread) {
        float* scores = scratch + thread * attention_scratch_floats(a.S);
        for (int64_t i = i0; i < i1; ++i) step(i / a.n_head, i % a.n_head, scores);
    };
    if (pool) pool->parallel_for(a.T * a.n_head, body);
    else body(0, a.T * a.n_head, 0);
}

}  // namespace glimpse
