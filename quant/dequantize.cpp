#include "quant/dequantize.h"

#include <cstring>

#include "runtime/fp16.h"
#include "runtime/status.h"

namespace glimpse {
namespace {

// Q8_0: 32 values = f16 scale d + 32 int8; x = d * q.
void dequantize_q8_0(const uint8_t* b, float* out, int64_t n) {
    for (int64_t i = 0; i < n / 32; ++i, b += 34) {
        uint16_t dh;
        std::memcpy(&dh, b, 2);
        const float d = f16_to_f32(dh);
        const int8_t* q = reinterpret_cast<const int8_t*>(b + 2);
        for (int j = 0; j < 32; ++j) out[i * 32 + j] = d * static_cast<float>(q[j]);
    }
}

// Q4_0: 32 values = f16 scale d + 16 bytes; value j < 16 is the low nibble of
// byte j, value j + 16 its high nibble; x = d * (nibble - 8).
void dequantize_q4_0(const uint8_t* b, float* out, int64_t n) {
    for (int64_t i = 0; i < n / 32; ++i, b += 18) {
        uint16_t dh;
        std::memcpy(&dh, b, 2);
        const float d = f16_to_f32(dh);
        const uint8_t* q = b + 2;
        for (int j = 0; j < 16; ++j) {
            out[i * 32 + j] = d * static_cast<float>((q[j] & 0x0f) - 8);
            out[i * 32 + j + 16] = d * static_cast<float>((q[j] >> 4) - 8);
        }
    }
}

}  // namespace

bool dequantize_supported(DType type) { return type == DType::q8_0 || type == DType::q4_0; }

void dequantize_row(DType type, const void* blocks, float* out, int64_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(blocks);
    switch (type) {
        case DType::q8_0: dequantize_q8_0(b, out, n); return;
        case DType::q4_0: dequantize_q4_0(b, out, n); return;
        default: GLIMPSE_ASSERT(false && "dequantize_row: unsupported type");
    }
}

}  // namespace glimpse
