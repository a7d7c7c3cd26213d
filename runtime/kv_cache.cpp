#include "runtime/kv_cache.h"

#include <cstring>

#include "runtime/aligned_buffer.h"
#include "quant/type_traits.h"
#include "runtime/fp16.h"

namespace glimpse {

Result<std::unique_ptr<KvCache>> KvCache::create(const std::vector<int64_t>& capacity_per_layer, int64_t row_elems,
                                                 DType type) {
    GLIMPSE_CHECK_OR_RETURN(kv_cache_type_supported(type), invalid_argument,
                            "KV cache type must be f16, f32, q8_0 or q4_0, not %s", dtype_name(type));
    GLIMPSE_CHECK_OR_RETURN(row_elems > 0, invalid_argument, "KV cache row size %lld", static_cast<long long>(row_elems));
    GLIMPSE_CHECK_OR_RETURN(row_elems % dtype_info(type).block_size == 0, invalid_argument,
                            "KV cache type %s stores blocks of %lld values; a row of %lld values is not a multiple",
                            dtype_name(type), static_cast<long long>(dtype_info(type).block_size),
                            static_cast<long long>(row_elems));
    std::unique_ptr<KvCache> cache(new KvCache());
    cache->row_elems_ = row_elems;
    cache->type_ = type;
    const int64_t row_bytes = kv_cache_row_bytes(type, row_elems);
    int64_t total = 0;
    for (int64_t cap : capacity_per_layer) {
        GLIMPSE_CHECK_OR_RETURN(cap >= 0 && cap <= (int64_t{1} << 24), invalid_argument,
                                "KV cache capacity %lld slots is out of range", static_cast<long long>(cap));
        total += 2 * align_up(cap * row_bytes, kBufferAlignment);
    }
    cache->storage_ = aligned_buffer_alloc(static_cast<size_t>(total));
    GLIMPSE_CHECK_OR_RETURN(total == 0 || cache->storage_, resource_exhausted,
                            "cannot allocate %lld bytes for the KV cache", static_cast<long long>(total));
    cache->bytes_ = total;
    int64_t offset = 0;
    for (int64_t cap : capacity_per_layer) {
        Layer layer;
        layer.capacity = cap;
        const int64_t bytes = align_up(cap * row_bytes, kBufferAlignment);
        layer.k = cache->storage_ + offset;
        layer.v = cache->storage_ + offset + bytes;
        offset += 2 * bytes;
        cache->layers_.push_back(layer);
    }
    return cache;
}

KvCache::~KvCache() { aligned_buffer_free(storage_); }

bool kv_cache_type_supported(DType type) {
    return type == DType::f16 || type == DType::f32 || type == DType::q8_0 || type == DType::q4_0;
}

int64_t kv_cache_row_bytes(DType type, int64_t row_elems) { return dtype_row_bytes(type, row_elems); }

void KvCache::store_quantized(void* base, int64_t slot0, const float* x, int64_t T, int64_t x_ld) {
    // ggml's reference quantizer (quantize_row_q8_0_ref / _q4_0_ref), one row at a time:
    // the blocks run along the row, so with head_dim a multiple of 32 none spans two heads.
    const TypeTraits* traits = type_traits(type_);
    const int64_t row_bytes = kv_cache_row_bytes(type_, row_elems_);
    for (int64_t t = 0; t < T; ++t) {
        traits->from_f32(x + t * x_ld, static_cast<uint8_t*>(base) + (slot0 + t) * row_bytes, row_elems_);
    }
}

void KvCache::store(int layer, bool value_side, int64_t slot0, const float* x, int64_t T, int64_t x_ld) {
    void* base = value_side ? layers_[layer].v : layers_[layer].k;
    if (dtype_is_quantized(type_)) return store_quantized(base, slot0, x, T, x_ld);
    for (int64_t t = 0; t < T; ++t) {
        const float* src = x + t * x_ld;
        if (type_ == DType::f32) {
            std::memcpy(static_cast<float*>(base) + (slot0 + t) * row_elems_, src, row_elems_ * 4);
        } else {
            uint16_t* dst = static_cast<uint16_t*>(base) + (slot0 + t) * row_elems_;
            for (int64_t i = 0; i < row_elems_; ++i) dst[i] = f32_to_f16(src[i]);
        }
    }
}

}  // namespace glimpse
