#include "runtime/kv_cache.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/aligned_buffer.h"
#include "quant/type_traits.h"
#include "runtime/fp16.h"
#include "quant/formats.h"

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
        layer.bytes = 2 * bytes;
        layer.k = cache->storage_ + offset;
        layer.v = cache->storage_ + offset + bytes;
        offset += 2 * bytes;
        cache->layers_.push_back(layer);
    }
    return cache;
}

// ⌈share·n⌉, with share·n a hair above an integer (0.1·30) not rounded up.
static int64_t high_rows_of(double share, int64_t n) {
    return std::min<int64_t>(n, static_cast<int64_t>(std::ceil(share * static_cast<double>(n) - 1e-9)));
}

namespace {

// Per layer: [K q8_0 | V q8_0 | K q4_0 | V q4_0 | slot map], each part 64-byte aligned:
// {bytes of K (or V) q8_0, of K (or V) q4_0, of the slot map}.
std::array<int64_t, 3> mixed_parts(int64_t row_elems, int64_t cap, int64_t high) {
    const int64_t high_row = kv_cache_row_bytes(DType::q8_0, row_elems), low_row = kv_cache_row_bytes(DType::q4_0, row_elems);
    return {align_up(high * high_row, kBufferAlignment), align_up((cap - high) * low_row, kBufferAlignment),
            align_up(cap * 4, kBufferAlignment)};
}

// The q8_0 rows of a mixed layer: its share of the planned prompt rows plus every other slot.
int64_t mixed_high_capacity(double share, int64_t cap, int64_t prompt) { return high_rows_of(share, prompt) + (cap - prompt); }

// Bytes of each mixed layer: K/V rows of both precisions and its slot map.
std::vector<int64_t> mixed_layer_bytes(const std::vector<int64_t>& capacity_per_layer,
                                       const std::vector<int64_t>& prompt_rows_per_layer, int64_t row_elems,
                                       const std::vector<double>& high_share_per_layer) {
    std::vector<int64_t> bytes;
    for (size_t l = 0; l < capacity_per_layer.size(); ++l) {
        const int64_t cap = capacity_per_layer[l];
        const auto p = mixed_parts(row_elems, cap, mixed_high_capacity(high_share_per_layer[l], cap, prompt_rows_per_layer[l]));
        bytes.push_back(2 * p[0] + 2 * p[1] + p[2]);
    }
    return bytes;
}

}  // namespace

Result<std::unique_ptr<KvCache>> KvCache::create_mixed(const std::vector<int64_t>& capacity_per_layer,
                                                       const std::vector<int64_t>& prompt_rows_per_layer,
                                                       int64_t row_elems, double high_share) {
    return create_mixed(capacity_per_layer, prompt_rows_per_layer, row_elems,
                        std::vector<double>(capacity_per_layer.size(), high_share));
}

Result<std::unique_ptr<KvCache>> KvCache::create_mixed(const std::vector<int64_t>& capacity_per_layer,
                                                       const std::vector<int64_t>& prompt_rows_per_layer,
                                                       int64_t row_elems, const std::vector<double>& high_share_per_layer) {
    GLIMPSE_CHECK_OR_RETURN(capacity_per_layer.size() == prompt_rows_per_layer.size(), invalid_argument,
                            "mixed KV cache: %zu layer capacities but %zu prompt row counts", capacity_per_layer.size(),
                            prompt_rows_per_layer.size());
    GLIMPSE_CHECK_OR_RETURN(high_share_per_layer.size() == capacity_per_layer.size(), invalid_argument,
                            "mixed KV cache: %zu high-precision shares for %zu layers (one per layer)",
                            high_share_per_layer.size(), capacity_per_layer.size());
    for (size_t l = 0; l < high_share_per_layer.size(); ++l) {
        const double share = high_share_per_layer[l];
        GLIMPSE_CHECK_OR_RETURN(std::isfinite(share) && share >= 0 && share <= 1, invalid_argument,
                                "mixed KV cache: layer %zu's high-precision share %g is outside [0, 1]", l, share);
    }
    GLIMPSE_CHECK_OR_RETURN(row_elems > 0 && row_elems % kQK == 0, invalid_argument,
                            "mixed KV cache (q8_0 and q4_0 blocks of %d values): a row of %lld values is not a multiple",
                            kQK, static_cast<long long>(row_elems));
    std::unique_ptr<KvCache> cache(new KvCache());
    cache->row_elems_ = row_elems;
    cache->type_ = DType::q8_0;
    cache->mixed_ = true;
    int64_t max_cap = 0;
    for (size_t l = 0; l < capacity_per_layer.size(); ++l) {
        const int64_t cap = capacity_per_layer[l], prompt = prompt_rows_per_layer[l];
        GLIMPSE_CHECK_OR_RETURN(cap >= 0 && cap <= (int64_t{1} << 24), invalid_argument,
                                "KV cache capacity %lld slots is out of range", static_cast<long long>(cap));
        GLIMPSE_CHECK_OR_RETURN(prompt >= 0 && prompt <= cap, invalid_argument,
                                "mixed KV cache: layer %zu plans %lld prompt rows in %lld slots", l,
                                static_cast<long long>(prompt), static_cast<long long>(cap));
        max_cap = std::max(max_cap, cap);
    }
    const std::vector<int64_t> layer_bytes =
        mixed_layer_bytes(capacity_per_layer, prompt_rows_per_layer, row_elems, high_share_per_layer);
    int64_t total = 0;
    for (int64_t b : layer_bytes) total += b;
    cache->order_.resize(static_cast<size_t>(max_cap));  // plan time: assign_mixed allocates nothing
    cache->storage_ = aligned_buffer_alloc(static_cast<size_t>(total));
    GLIMPSE_CHECK_OR_RETURN(total == 0 || cache->storage_, resource_exhausted,
                            "cannot allocate %lld bytes for the KV cache", static_cast<long long>(total));
    cache->bytes_ = total + max_cap * 4;
    int64_t offset = 0;
    for (size_t l = 0; l < capacity_per_layer.size(); ++l) {
        Layer layer;
        layer.capacity = capacity_per_layer[l];
        layer.bytes = layer_bytes[l];
        layer.high_share = high_share_per_layer[l];
        layer.high_capacity = mixed_high_capacity(layer.high_share, layer.capacity, prompt_rows_per_layer[l]);
        const auto p = mixed_parts(row_elems, layer.capacity, layer.high_capacity);
        uint8_t* base = cache->storage_ + offset;
        layer.k = base;
        layer.v = base + p[0];
        layer.k_low = base + 2 * p[0];
        layer.v_low = base + 2 * p[0] + p[1];
        layer.slot_rows = reinterpret_cast<int32_t*>(base + 2 * p[0] + 2 * p[1]);
        offset += layer_bytes[l];
        cache->layers_.push_back(layer);
    }
    return cache;
}

void KvCache::assign_mixed(int layer, int64_t slot0, int64_t T, const float* importance) {
    GLIMPSE_ASSERT(mixed_ && slot0 >= 0 && T >= 0 && slot0 + T <= layers_[layer].capacity);
    Layer& L = layers_[layer];
    if (slot0 != L.assigned) {
        // A pass that rewrites from slot0 (a new prompt: slot0 0): rows are handed out in slot
        // order within each precision, so the slots before slot0 hold the first rows of each.
        L.high_used = L.low_used = 0;
        for (int64_t s = 0; s < std::min(slot0, L.assigned); ++s) (L.slot_rows[s] >= 0 ? L.high_used : L.low_used)++;
    }
    const int64_t high_free = L.high_capacity - L.high_used, low_free = (L.capacity - L.high_capacity) - L.low_used;
    int64_t n_high = T == 1 ? 1 : high_rows_of(L.high_share, T);
    n_high = std::max(std::min(n_high, high_free), T - low_free);
    int32_t* rows = L.slot_rows + slot0;
    if (n_high >= T || T == 1) {
        std::fill(rows, rows + T, 0);  // 0: high below
    } else {
        std::fill(rows, rows + T, -1);
        if (n_high > 0) {
            // The n_high rows of largest importance (a total order: NaN last, ties to the earlier row).
            auto key = [&](int32_t t) {
                const float x = importance[t];
                return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x;
            };
            int32_t* order = order_.data();
            for (int64_t t = 0; t < T; ++t) order[t] = static_cast<int32_t>(t);
            std::nth_element(order, order + (n_high - 1), order + T, [&](int32_t a, int32_t b) {
                const float ka = key(a), kb = key(b);
                return ka > kb || (ka == kb && a < b);
            });
            for (int64_t i = 0; i < n_high; ++i) rows[order[i]] = 0;
        }
    }
    if (T == 1 && n_high == 0) rows[0] = -1;
    for (int64_t t = 0; t < T; ++t) {
        rows[t] = rows[t] == 0 ? static_cast<int32_t>(L.high_used++) : ~static_cast<int32_t>(L.low_used++);
    }
    L.assigned = slot0 + T;
}

void KvCache::store_mixed(int layer, bool value_side, int64_t slot0, const float* x, int64_t T, int64_t x_ld) {
    const Layer& L = layers_[layer];
    GLIMPSE_ASSERT(slot0 + T <= L.assigned);  // assign_mixed gave these slots their rows
    const TypeTraits* high = type_traits(DType::q8_0);
    const TypeTraits* low = type_traits(DType::q4_0);
    const int64_t high_row = kv_cache_row_bytes(DType::q8_0, row_elems_), low_row = kv_cache_row_bytes(DType::q4_0, row_elems_);
    uint8_t* high_base = static_cast<uint8_t*>(value_side ? L.v : L.k);
    uint8_t* low_base = static_cast<uint8_t*>(value_side ? L.v_low : L.k_low);
    for (int64_t t = 0; t < T; ++t) {
        const int32_t r = L.slot_rows[slot0 + t];
        if (r >= 0) high->from_f32(x + t * x_ld, high_base + r * high_row, row_elems_);
        else low->from_f32(x + t * x_ld, low_base + static_cast<int64_t>(~r) * low_row, row_elems_);
    }
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
    if (mixed_) return store_mixed(layer, value_side, slot0, x, T, x_ld);
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
