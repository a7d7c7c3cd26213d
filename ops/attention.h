// Scaled dot-product attention with grouped K/V heads.
#pragma once

#include <cstdint>

#include "runtime/dtype.h"
#include "runtime/threadpool.h"

namespace glimpse {

// In-place softmax of one row: x[i] = exp(x[i] - max) / Σ exp(x[j] - max).
void softmax_row_ref(float* x, int64_t n);

struct AttentionArgs {
    const float* q = nullptr;   // (T, Hq·D) f32, row stride q_ld elements
    int64_t q_ld = 0;
    const void* k = nullptr;    // (S, Hkv·D) rows of kv_type, row stride kv_ld elements
    const void* v = nullptr;    // (S, Hkv·D)
    int64_t kv_ld = 0;
    DType kv_type = DType::f32; // f32 or f16 (KV cache storage)
    float* out = nullptr;       // (T, Hq·D) f32, row stride out_ld elements
    int64_t out_ld = 0;
    int64_t T = 0, S = 0;
    int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
    float scale = 1.0f;         // applied to q·k, usually 1/√D
    // Causal: query row t sees keys [0, causal_offset + t]; otherwise all S keys.
    bool causal = false;
    int64_t causal_offset = 0;
    // Optional tap, (n_head, S): the post-softmax attention each key receives,
    // averaged over the T queries — the pruning signal of encoders without [CLS].
    // Accumulated while attending, so it costs no second pass and no T×S matrix.
    float* col_mean = nullptr;
    // Optional (S): added to the scaled logit of key s in every query row and head, before
    // the softmax: logit[t][s] = scale · q_t·k_s + key_bias[s]. ToMe's proportional attention
    // passes log(size_s), so a key that stands for n merged tokens weighs as n of them.
    // Null: the logits are exactly those of the unbiased kernel (same code path).
    const float* key_bias = nullptr;
    // Mixed-precision KV cache (--kv-type mixed; read by the attention_kvq family, kv_type
    // q8_0): key/value s is row mixed_rows[s] of k/v (q8_0 rows) when mixed_rows[s] >= 0, else
    // row ~mixed_rows[s] (= -1 - mixed_rows[s]) of k_low/v_low (q4_0 rows), both of kv_ld values.
    // The slot order is the sequence order, so causal masks keep their meaning. Null: row s of k/v.
    const int32_t* mixed_rows = nullptr;  // (S)
    const void* k_low = nullptr;
    const void* v_low = nullptr;
};

// Per-thread scratch in floats: one score row of S floats (row kernels: decode,
// the references), then a fixed region of kAttentionTileFloats for blocked kernels
// (a query tile, its output accumulator, a block of probabilities and K/V blocks
// converted from f16; ops/simd/attention.h sizes them for head_dim <= 128 and
// uses its row kernel beyond). A pure function of S, so a plan sizes it per node.
inline constexpr int64_t kAttentionTileFloats = 32768;
inline int64_t attention_scratch_floats(int64_t S) { return S + kAttentionTileFloats; }

// Query head h reads K/V head h / (n_head / n_head_kv), as llama.cpp broadcasts.
// `scratch` holds n_threads * attention_scratch_floats(S) floats for
// n_threads = pool ? pool->n_threads() : 1.
void attention_ref(const AttentionArgs& args, float* scratch, ThreadPool* pool);

// The attention distribution of one query row (the [CLS] tap) is the registered attention_row
// family of ops/prune_score.h.

}  // namespace glimpse
