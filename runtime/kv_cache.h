// The decoder's KV cache: per layer, K and V rows of n_head_kv·head_dim
// elements in f16 (llama.cpp's default), f32, or GGUF q8_0 / q4_0 blocks of 32
// values along the row (--kv-type; the attention_kvq kernels, ops/attention_kvq.h,
// read them), preallocated once.
//
// Each layer has its own capacity in slots, so a plan that drops visual tokens
// between layers can give later layers a smaller cache.
//
// Mixed (--kv-type mixed, ZipVL / MiKV-style; create_mixed): per layer, q8_0 rows for the
// prompt tokens that received the most attention plus every decode token, q4_0 rows for the
// other prompt tokens. A slot map (one int32 per slot: >= 0 a q8_0 row, < 0 the q4_0 row ~r)
// keeps the sequence order, so causal masks mean what they did; the attention_kvq kernels read
// both parts through it (AttentionArgs::mixed_rows). The number of rows of each precision is
// fixed at plan time from the prompt rows the plan was made for and the layer's share (one per
// layer: MiKV / ZipVL choose it per layer; a plan's kv_cache.high_precision_share list):
//   high(l) = ⌈share(l)·prompt(l)⌉ + (capacity(l) − prompt(l)),  low(l) = prompt(l) − ⌈share(l)·prompt(l)⌉.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/status.h"

namespace glimpse {

// f16, f32, q8_0, q4_0.
bool kv_cache_type_supported(DType type);
// Bytes of one stored K or V row of row_elems values (a multiple of the block size):
// q8_0 34 per 32 values, q4_0 18 per 32, f16 2 per value, f32 4.
int64_t kv_cache_row_bytes(DType type, int64_t row_elems);

class KvCache {
public:
    static Result<std::unique_ptr<KvCache>> create(const std::vector<int64_t>& capacity_per_layer, int64_t row_elems,
                                                   DType type);
    // A mixed cache: layer l holds capacity_per_layer[l] slots, of which the plan expects
    // prompt_rows_per_layer[l] (<= capacity) to come from one prefill pass; high_share_per_layer[l]
    // in [0, 1] of each of its prefill passes' rows are kept in q8_0, the rest in q4_0 (row_elems a
    // multiple of 32). One share per layer; the double overload gives every layer the same one.
    static Result<std::unique_ptr<KvCache>> create_mixed(const std::vector<int64_t>& capacity_per_layer,
                                                         const std::vector<int64_t>& prompt_rows_per_layer,
                                                         int64_t row_elems, const std::vector<double>& high_share_per_layer);
    static Result<std::unique_ptr<KvCache>> create_mixed(const std::vector<int64_t>& capacity_per_layer,
                                                         const std::vector<int64_t>& prompt_rows_per_layer,
                                                         int64_t row_elems, double high_share);

    ~KvCache();

    int n_layers() const { return static_cast<int>(layers_.size()); }
    int64_t capacity(int layer) const { return layers_[layer].capacity; }
    int64_t row_elems() const { return row_elems_; }
    DType type() const { return type_; }  // mixed: q8_0, the type of k()/v() (the high-precision rows)
    bool mixed() const { return mixed_; }
    double high_share(int layer) const { return layers_[layer].high_share; }  // mixed only
    // Mixed only: the q4_0 rows, the rows of each precision, the slot map (capacity int32).
    void* k_low(int layer) const { return layers_[layer].k_low; }
    void* v_low(int layer) const { return layers_[layer].v_low; }
    int64_t high_capacity(int layer) const { return layers_[layer].high_capacity; }
    int64_t low_capacity(int layer) const { return layers_[layer].capacity - layers_[layer].high_capacity; }
    const int32_t* slot_rows(int layer) const { return layers_[layer].slot_rows; }

    // Mixed only, before store(): gives slots [slot0, slot0+T) of `layer` their precision and row
    // (slots from slot0 on that an earlier pass had are given up first). A pass of T > 1 rows
    // (prefill) keeps ⌈high_share(layer)·T⌉ of them in q8_0: those with the largest importance[t]
    // (ties: the earlier row; NaN ranks last); a single row (decode) is q8_0. Bounded by the rows
    // left of each precision: q8_0 while any remain, then q4_0 (with the plan made for this
    // prompt, never; the caller checks slot0 + T <= capacity). importance:(T), read only when T > 1.
    void assign_mixed(int layer, int64_t slot0, int64_t T, const float* importance);
    void* k(int layer) const { return layers_[layer].k; }
    void* v(int layer) const { return layers_[layer].v; }
    int64_t bytes() const { return bytes_; }
    // The bytes of one layer: its K and V rows (mixed: of both precisions, and its slot map). bytes()
    // is their sum, plus for a mixed cache the ranking scratch (4 bytes per slot of the largest layer).
    int64_t layer_bytes(int layer) const { return layers_[layer].bytes; }

    // Stores rows x:(T, row_elems) f32 into slots [slot0, slot0+T) of `layer`'s K or V
    // (quantized types: each row quantized as ggml's reference quantizer does).
    void store(int layer, bool value_side, int64_t slot0, const float* x, int64_t T, int64_t x_ld);

private:
    struct Layer {
        int64_t capacity = 0;
        int64_t bytes = 0;
        void* k = nullptr;
        void* v = nullptr;
        // mixed:
        double high_share = 0;
        int64_t high_capacity = 0;
        void* k_low = nullptr;
        void* v_low = nullptr;
        int32_t* slot_rows = nullptr;
        int64_t assigned = 0, high_used = 0, low_used = 0;  // slots [0, assigned) have rows
    };
    KvCache() = default;
    void store_quantized(void* base, int64_t slot0, const float* x, int64_t T, int64_t x_ld);
    std::vector<Layer> layers_;
    int64_t row_elems_ = 0;
    DType type_ = DType::f16;
    int64_t bytes_ = 0;
    uint8_t* storage_ = nullptr;
    bool mixed_ = false;
    std::vector<int32_t> order_;  // mixed: assign_mixed's ranking scratch, max capacity entries
    void store_mixed(int layer, bool value_side, int64_t slot0, const float* x, int64_t T, int64_t x_ld);
};

}  // namespace glimpse
