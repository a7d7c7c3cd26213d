// Element types of tensors. The numeric values are GGML's type ids, so a GGUF
// tensor's type field maps to a DType without a translation table.
#pragma once

#include <cstddef>
#include <cstdint>

namespace glimpse {

enum class DType : uint32_t {
    f32 = 0,
    f16 = 1,
    q4_0 = 2,
    q4_1 = 3,
    q5_0 = 6,
    q5_1 = 7,
    q8_0 = 8,
    q8_1 = 9,
    q2_k = 10,
    q3_k = 11,
    q4_k = 12,
    q5_k = 13,
    q6_k = 14,
    q8_k = 15,
    i8 = 24,
    i16 = 25,
    i32 = 26,
    i64 = 27,
    f64 = 28,
    bf16 = 30,
};

struct DTypeInfo {
    const char* name;     // "f32", "q4_0", ... (GGML's spelling, lower case)
    int64_t block_size;   // elements per block (1 for plain types)
    int64_t block_bytes;  // bytes per block
};

// Returns nullptr for ids glimpse does not know (the GGUF reader rejects them).
const DTypeInfo* dtype_info(uint32_t ggml_type_id);
const DTypeInfo& dtype_info(DType type);
inline const char* dtype_name(DType type) { return dtype_info(type).name; }

// Bytes of a row of `n` elements; n must be a multiple of the block size.
inline int64_t dtype_row_bytes(DType type, int64_t n) {
    const DTypeInfo& info = dtype_info(type);
    return n / info.block_size * info.block_bytes;
}

bool dtype_is_quantized(DType type);

}  // namespace glimpse
