#include "ops/weights.h"

#include "quant/dequantize.h"
#include "runtime/fp16.h"
#include "targets/cpu_features.h"

namespace glimpse {

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
        case DType::f32: {
            const float* src = reinterpret_cast<const float*>(base);
            for (int64_t i = 0; i < n; ++i) out[i] = src[i];
            return;
        }
        case DType::f16: {
            const uint16_t* src = reinterpret_cast<const uint16_t*>(base);
            for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(src[i]);
            return;
        }
        case DType::bf16: {
            const uint16_t* src = reinterpret_cast<const uint16_t*>(base);
            for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(src[i]);
            return;
        }
        default:
            dequantize_row(type, base, out, n);
            return;
    }
}

bool weights_type_supported(DType type) {
    return type == DType::f32 || type == DType::f16 || type == DType::bf16 || dequantize_supported(type);
}

}  // namespace glimpse
