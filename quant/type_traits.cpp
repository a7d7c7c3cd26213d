#include "quant/type_traits.h"

#include "quant/dequantize.h"
#include "quant/formats.h"
#include "quant/quantize.h"

namespace glimpse {

namespace {

// Adapts a typed block quantizer to the table's untyped writer.
template <class Block, void (*Quantize)(const float*, Block*, int64_t)>
void write_blocks(const float* x, void* blocks, int64_t n) {
    Quantize(x, static_cast<Block*>(blocks), n);
}

// Block sizes and byte counts follow ggml-common.h (QK_K = 256).
constexpr TypeTraits kTypes[] = {
    {DType::f32, {"f32", 1, 4}, dequantize_row_f32, quantize_row_f32},
    {DType::f16, {"f16", 1, 2}, dequantize_row_f16, quantize_row_f16},
    {DType::q4_0, {"q4_0", 32, 2 + 16}, dequantize_row_q4_0, write_blocks<BlockQ4_0, quantize_row_q4_0_ref>},
    {DType::q4_1, {"q4_1", 32, 2 + 2 + 16}, dequantize_row_q4_1, write_blocks<BlockQ4_1, quantize_row_q4_1_ref>},
    {DType::q5_0, {"q5_0", 32, 2 + 4 + 16}, dequantize_row_q5_0, write_blocks<BlockQ5_0, quantize_row_q5_0_ref>},
    {DType::q5_1, {"q5_1", 32, 2 + 2 + 4 + 16}, dequantize_row_q5_1, write_blocks<BlockQ5_1, quantize_row_q5_1_ref>},
    {DType::q8_0, {"q8_0", 32, 2 + 32}, dequantize_row_q8_0, write_blocks<BlockQ8_0, quantize_row_q8_0_ref>},
    {DType::q8_1, {"q8_1", 32, 2 + 2 + 32}, nullptr, nullptr},
    {DType::q2_k, {"q2_k", 256, 256 / 16 + 256 / 4 + 2 + 2}, dequantize_row_q2_k, nullptr},
    {DType::q3_k, {"q3_k", 256, 256 / 8 + 256 / 4 + 12 + 2}, dequantize_row_q3_k, nullptr},
    {DType::q4_k, {"q4_k", 256, 2 + 2 + 12 + 256 / 2}, dequantize_row_q4_k, write_blocks<BlockQ4K, quantize_row_q4_k_ref>},
    {DType::q5_k, {"q5_k", 256, 2 + 2 + 12 + 256 / 8 + 256 / 2}, dequantize_row_q5_k,
     write_blocks<BlockQ5K, quantize_row_q5_k_ref>},
    {DType::q6_k, {"q6_k", 256, 256 / 2 + 256 / 4 + 256 / 16 + 2}, dequantize_row_q6_k,
     write_blocks<BlockQ6K, quantize_row_q6_k_ref>},
    {DType::q8_k, {"q8_k", 256, 4 + 256 + 256 / 16 * 2}, nullptr, nullptr},
    {DType::i8, {"i8", 1, 1}, nullptr, nullptr},
    {DType::i16, {"i16", 1, 2}, nullptr, nullptr},
    {DType::i32, {"i32", 1, 4}, nullptr, nullptr},
    {DType::i64, {"i64", 1, 8}, nullptr, nullptr},
    {DType::f64, {"f64", 1, 8}, nullptr, nullptr},
    {DType::bf16, {"bf16", 1, 2}, dequantize_row_bf16, quantize_row_bf16},
};

}  // namespace

const TypeTraits* type_traits_of_id(uint32_t ggml_type_id) {
    for (const TypeTraits& t : kTypes) {
        if (static_cast<uint32_t>(t.type) == ggml_type_id) return &t;
    }
    return nullptr;
}

const TypeTraits* type_traits(DType type) { return type_traits_of_id(static_cast<uint32_t>(type)); }

}  // namespace glimpse
