// Attention over a block-quantized KV cache (--kv-type q8_0 | q4_0): the decoder's
// attention_kv reads K and V rows stored as GGUF Q8_0 / Q4_0 blocks (quant/formats.h:
// 32 values and one f16 scale d per block; q8_0 x = d·q, q4_0 x = d·(q − 8)) directly,
// without a dequantized copy of the cache.
//
// Contract: attention_ref's (ops/attention.h) with AttentionArgs::kv_type q8_0 or q4_0:
//   q:(T, Hq·D) f32, k, v:(S, Hkv·D) rows of blocks, kv_ld = values per row (a multiple
//   of 32; row r starts at byte r·kv_ld/32·block_bytes), D = head_dim a multiple of 32 so
//   each head is whole blocks, GQA broadcast, causal masks, T = 1 (decode) or many
//   (prefill). The column-mean tap (col_mean) is not supported: it must be nullptr.
//   A mixed cache (--kv-type mixed: AttentionArgs::mixed_rows set, kv_type q8_0) maps each
//   key slot s to a q8_0 row of k/v or a q4_0 row of k_low/v_low; one softmax runs over all
//   S keys whatever their precision.
// Each K/V value enters the arithmetic as the f32 product d·q ggml's dequantizer makes,
// so a kernel's output differs from attention_ref on the dequantized rows only by
// f32 rounding (tests/test_attention_kvq.cpp states the bound).
#pragma once

#include <cstdint>

#include "ops/attention.h"

namespace glimpse {

// True for the KV types the attention_kvq family reads (q8_0, q4_0).
bool attention_kvq_type(DType type);

// Per-thread scratch in floats of every kernel of the family: a score row of S floats
// (the reference) and the blocked kernels' tiles for head_dim D (keys per block 64,
// query slots per item 16): K and V tiles (64, D), outputs (16, D), scores, slot state.
inline constexpr int64_t kAttentionKvqKeysPerBlock = 64;
inline constexpr int64_t kAttentionKvqRowsPerItem = 16;  // (query row, head) slots per work item
inline int64_t attention_kvq_scratch_floats(int64_t S, int64_t head_dim) {
    return S + 16 + (2 * kAttentionKvqKeysPerBlock + kAttentionKvqRowsPerItem) * head_dim +
           kAttentionKvqKeysPerBlock + 2 * kAttentionKvqRowsPerItem + 32;
}

// The scalar reference, in double, with each K/V value dequantized from its block by the
// format's definition. `scratch`: n_threads · attention_kvq_scratch_floats(S, D) floats.
void attention_kvq_ref(const AttentionArgs& args, float* scratch, ThreadPool* pool);

#if defined(__x86_64__) || defined(_M_X64)
void attention_kvq_avx2(const AttentionArgs& args, float* scratch, ThreadPool* pool);
void attention_kvq_avx512(const AttentionArgs& args, float* scratch, ThreadPool* pool);
#endif
#if defined(__aarch64__)
void attention_kvq_neon(const AttentionArgs& args, float* scratch, ThreadPool* pool);
#endif

}  // namespace glimpse
