#include "ops/attention_kvq.h"

#include <algorithm>
#include <cmath>

#include "quant/formats.h"
#include "runtime/fp16.h"

namespace glimpse {

bool attention_kvq_type(DType type) { return type == DType::q8_0 || type == DType::q4_0; }

namespace {

// Value `index` of a row-major array of q8_0 / q4_0 blocks, by the format's definition
// (quant/formats.h): the f32 product of the block's scale and the integer, as ggml's
// dequantize_row_q8_0 / q4_0 compute it.
float kvq_value(const void* base, DType type, int64_t index) {
    const int64_t block = index / kQK, i = index % kQK;
    if (type == DType::q8_0) {
        const BlockQ8_0& b = static_cast<const BlockQ8_0*>(base)[block];
        return f16_to_f32(b.d) * static_cast<float>(b.qs[i]);
    }
    const BlockQ4_0& b = static_cast<const BlockQ4_0*>(base)[block];
    const int nibble = i < kQK / 2 ? (b.qs[i] & 0x0f) : (b.qs[i - kQK / 2] >> 4);
    return f16_to_f32(b.d) * static_cast<float>(nibble - 8);
}

// Value d of head hk of K (value_side false) or V of key s, resolving a mixed cache's slot
// map (AttentionArgs::mixed_rows): q8_0 rows of k/v, or q4_0 rows of k_low/v_low.
float kv_value(const AttentionArgs& a, bool value_side, int64_t s, int64_t hk, int64_t d) {
    const int64_t offset = hk * a.head_dim + d;
    if (!a.mixed_rows) return kvq_value(value_side ? a.v : a.k, a.kv_type, s * a.kv_ld + offset);
    const int32_t row = a.mixed_rows[s];
    if (row >= 0) return kvq_value(value_side ? a.v : a.k, DType::q8_0, row * a.kv_ld + offset);
    return kvq_value(value_side ? a.v_low : a.k_low, DType::q4_0, static_cast<int64_t>(~row) * a.kv_ld + offset);
}

}  // namespace

void attention_kvq_ref(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    const int64_t group = a.n_head / a.n_head_kv;
    const int64_t D = a.head_dim;
    const int64_t stride = attention_kvq_scratch_floats(a.S, D);
    // One (query row, head) pair per step: scores:(n_keys) in double, softmax, Σ p·V.
    auto step = [&](int64_t t, int64_t h, float* scores) {
        const int64_t hk = h / group;
        const int64_t n_keys = a.causal ? std::min<int64_t>(a.S, a.causal_offset + t + 1) : a.S;
        const float* qr = a.q + t * a.q_ld + h * D;
        float* orow = a.out + t * a.out_ld + h * D;
        if (n_keys <= 0) {
            std::fill(orow, orow + D, 0.0f);
            return;
        }
        for (int64_t s = 0; s < n_keys; ++s) {
            double dot = 0;
            for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(qr[d]) * kv_value(a, false, s, hk, d);
            scores[s] = static_cast<float>(dot) * a.scale;
        }
        softmax_row_ref(scores, n_keys);
        for (int64_t d = 0; d < D; ++d) {
            double acc = 0;
            for (int64_t s = 0; s < n_keys; ++s) {
                acc += static_cast<double>(scores[s]) * kv_value(a, true, s, hk, d);
            }
            orow[d] = static_cast<float>(acc);
        }
    };
    auto body = [&](int64_t i0, int64_t i1, int thread) {
        float* scores = scratch + thread * stride;
        for (int64_t i = i0; i < i1; ++i) step(i / a.n_head, i % a.n_head, scores);
    };
    if (pool) pool->parallel_for(a.T * a.n_head, body);
    else body(0, a.T * a.n_head, 0);
}

}  // namespace glimpse
