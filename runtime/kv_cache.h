// The decoder's KV cache: per layer, K and V rows of n_head_kv·head_dim
// elements in f16 (llama.cpp's default), f32, or GGUF q8_0 / q4_0 blocks of 32
// values along the row (--kv-type; the attention_kvq kernels, ops/attention_kvq.h,
// read them), preallocated once.
//
// Each layer has its own capacity in slots, so a plan that drops visual tokens
// between layers can give later layers a smaller cache.
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
    ~KvCache();

    int n_layers() const { return static_cast<int>(layers_.size()); }
    int64_t capacity(int layer) const { return layers_[layer].capacity; }
    int64_t row_elems() const { return row_elems_; }
    DType type() const { return type_; }
    void* k(int layer) const { return layers_[layer].k; }
    void* v(int layer) const { return layers_[layer].v; }
    int64_t bytes() const { return bytes_; }

    // Stores rows x:(T, row_elems) f32 into slots [slot0, slot0+T) of `layer`'s K or V
    // (quantized types: each row quantized as ggml's reference quantizer does).
    void store(int layer, bool value_side, int64_t slot0, const float* x, int64_t T, int64_t x_ld);

private:
    struct Layer {
        int64_t capacity = 0;
        void* k = nullptr;
        void* v = nullptr;
    };
    KvCache() = default;
    void store_quantized(void* base, int64_t slot0, const float* x, int64_t T, int64_t x_ld);
    std::vector<Layer> layers_;
    int64_t row_elems_ = 0;
    DType type_ = DType::f16;
    int64_t bytes_ = 0;
    uint8_t* storage_ = nullptr;
};

}  // namespace glimpse
