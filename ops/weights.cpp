#include "ops/weights.h"

#include <cstring>

#include "quant/dequantize.h"
#include "runtime/fp16.h"
#include "targets/cpu_features.h"

namespace glimpse {

static inline uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

#if defined(__x86_64__)
// ops/weights_avx2.cpp: vectorized f16/bf16/q8_0/q4_0 rows (false for other types).
bool weights_row_to_f32_avx2(const void* w, DType type, int64_t n, int64_t row, float* out);
#endif

void weights_row_to_f32(const void* w, DType type, int64_t n, int64_t row, float* out) {
#if defined(__x86_64__)
    if (type != DType::f32 && isa_usable(Isa::avx2) && weights_row_to_f32_avx2(w, type, n, row, out)) return;
#endif
    const uint8_t* base = static_cast<const uint8_t*>(w) + row * dtype_row_bytes(type, n);
    switch (type) {
        // Elements are loaded with memcpy: the row may sit at any address (GGUF files with
        // general.alignment below 4 are legal), where a float or uint16_t load is undefined.
        case DType::f32:
            std::memcpy(out, base, static_cast<size_t>(n) * sizeof(float));
            return;
        case DType::f16:
            for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_u16(base + 2 * i));
            return;
        case DType::bf16:
            for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load_u16(base + 2 * i));
            return;
        default:
            dequantize_row(type, base, out, n);
            return;
    }
}

bool weights_type_supported(DType type) {
    return type == DType::f32 || type == DType::f16 || type == DType::bf16 || dequantize_supported(type);
}

}  // namespace glimpse
