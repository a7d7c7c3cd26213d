#include "ops/weights.h"

#include <algorithm>
#include <vector>

#include "ops/kernel_registry.h"
#include "quant/dequantize.h"

namespace glimpse {

bool weights_row_ref(const void* w, DType type, int64_t n, int64_t row, float* out) {
    if (!dequantize_supported(type)) return false;
    // f32/f16/bf16 rows are read with memcpy there: the row may sit at any address
    // (GGUF files with general.alignment below 4 are legal).
    dequantize_row(type, static_cast<const uint8_t*>(w) + row * dtype_row_bytes(type, n), out, n);
    return true;
}

void weights_row_to_f32(const void* w, DType type, int64_t n, int64_t row, float* out) {
    // The family's kernels, highest priority first (stable: later entries first on ties).
    static const std::vector<const Kernel*> by_priority = [] {
        std::vector<const Kernel*> v = kernels_of(OpFamily::weights_row);
        std::reverse(v.begin(), v.end());
        std::stable_sort(v.begin(), v.end(), [](const Kernel* a, const Kernel* b) { return a->priority > b->priority; });
        return v;
    }();
    for (const Kernel* k : by_priority) {
        if (isa_usable(k->isa) && k->fn.weights_row(w, type, n, row, out)) return;
    }
}

bool weights_type_supported(DType type) { return dequantize_supported(type); }

}  // namespace glimpse
