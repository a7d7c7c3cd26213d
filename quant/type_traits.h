// The type-trait table: one row per element type glimpse knows, with everything
// the layers ask about it — name, elements per block, bytes per block (the GGUF
// layout, runtime/dtype.h reads them from here), how a row of it becomes f32 and
// how f32 values become it. dtype_info, dequantize_row / dequantize_supported,
// quantize_row / quantize_supported, weights_row_to_f32 and the matmul reference
// all read this one table (quant/type_traits.cpp) instead of switching on the type.
#pragma once

#include <cstdint>

#include "runtime/dtype.h"

namespace glimpse {

struct TypeTraits {
    DType type;
    DTypeInfo info;  // {name, block_size, block_bytes}
    // n values (a multiple of block_size) of stored blocks -> out:(n) f32, bit-exact with
    // ggml's readers; nullptr: not readable (index and f64 types, q8_1/q8_k activations).
    void (*to_f32)(const void* blocks, float* out, int64_t n);
    // x:(n) f32 -> blocks, as ggml's reference quantizers; nullptr: glimpse does not write it.
    void (*from_f32)(const float* x, void* blocks, int64_t n);
};

// nullptr for types (GGML type ids) glimpse does not know.
const TypeTraits* type_traits(DType type);
const TypeTraits* type_traits_of_id(uint32_t ggml_type_id);

// The traits of `type` when it has the row converter `converter` (&TypeTraits::to_f32
// or &TypeTraits::from_f32), else nullptr.
template <class Converter>
const TypeTraits* type_traits_with(DType type, Converter TypeTraits::*converter) {
    const TypeTraits* t = type_traits(type);
    return t && t->*converter ? t : nullptr;
}

}  // namespace glimpse
