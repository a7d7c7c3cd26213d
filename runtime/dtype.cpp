#include "runtime/dtype.h"

#include "quant/type_traits.h"
#include "runtime/status.h"

namespace glimpse {

// The sizes and names are the type-trait table's (quant/type_traits.cpp), the one
// place that describes each type.
const DTypeInfo* dtype_info(uint32_t ggml_type_id) {
    const TypeTraits* t = type_traits_of_id(ggml_type_id);
    return t ? &t->info : nullptr;
}

const DTypeInfo& dtype_info(DType type) {
    const DTypeInfo* info = dtype_info(static_cast<uint32_t>(type));
    GLIMPSE_ASSERT(info != nullptr);
    return *info;
}

bool dtype_is_quantized(DType type) { return dtype_info(type).block_size > 1; }

}  // namespace glimpse
