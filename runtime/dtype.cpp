#include "runtime/dtype.h"

#include "runtime/status.h"

namespace glimpse {
namespace {

struct DTypeEntry {
    DType type;
    DTypeInfo info;
};

// Block sizes and byte counts follow ggml-common.h (QK_K = 256).
constexpr DTypeEntry kDTypes[] = {
    {DType::f32, {"f32", 1, 4}},
    {DType::f16, {"f16", 1, 2}},
    {DType::q4_0, {"q4_0", 32, 2 + 16}},
    {DType::q4_1, {"q4_1", 32, 2 + 2 + 16}},
    {DType::q5_0, {"q5_0", 32, 2 + 4 + 16}},
    {DType::q5_1, {"q5_1", 32, 2 + 2 + 4 + 16}},
    {DType::q8_0, {"q8_0", 32, 2 + 32}},
    {DType::q8_1, {"q8_1", 32, 2 + 2 + 32}},
    {DType::q2_k, {"q2_k", 256, 256 / 16 + 256 / 4 + 2 + 2}},
    {DType::q3_k, {"q3_k", 256, 256 / 8 + 256 / 4 + 12 + 2}},
    {DType::q4_k, {"q4_k", 256, 2 + 2 + 12 + 256 / 2}},
    {DType::q5_k, {"q5_k", 256, 2 + 2 + 12 + 256 / 8 + 256 / 2}},
    {DType::q6_k, {"q6_k", 256, 256 / 2 + 256 / 4 + 256 / 16 + 2}},
    {DType::q8_k, {"q8_k", 256, 4 + 256 + 256 / 16 * 2}},
    {DType::i8, {"i8", 1, 1}},
    {DType::i16, {"i16", 1, 2}},
    {DType::i32, {"i32", 1, 4}},
    {DType::i64, {"i64", 1, 8}},
    {DType::f64, {"f64", 1, 8}},
    {DType::bf16, {"bf16", 1, 2}},
};

}  // namespace

const DTypeInfo* dtype_info(uint32_t ggml_type_id) {
    for (const DTypeEntry& e : kDTypes) {
        if (static_cast<uint32_t>(e.type) == ggml_type_id) return &e.info;
    }
    return nullptr;
}

const DTypeInfo& dtype_info(DType type) {
    const DTypeInfo* info = dtype_info(static_cast<uint32_t>(type));
    GLIMPSE_ASSERT(info != nullptr);
    return *info;
}

bool dtype_is_quantized(DType type) { return dtype_info(type).block_size > 1; }

}  // namespace glimpse
