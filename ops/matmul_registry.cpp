// The list of matmul implementations. Adding a kernel: define its MatmulKernel
// in its translation unit and add one line below; the dispatch, the
// reference-vs-variant tests (tests/test_matmul_kernels.cpp) and the benchmark
// (tools/bench) all iterate this list.
#include <cstring>

#include "ops/matmul.h"
#include "ops/weights.h"

namespace glimpse {

// The reference accepts every type weights_row_to_f32 reads, at the lowest priority.
static const MatmulKernel kRefKernels[] = {
    {"f32_ref", Isa::scalar, DType::f32, 0, MatmulActivations::f32, nullptr, nullptr, nullptr, nullptr, matmul_ref, nullptr},
    {"f16_ref", Isa::scalar, DType::f16, 0, MatmulActivations::f32, nullptr, nullptr, nullptr, nullptr, matmul_ref, nullptr},
    {"bf16_ref", Isa::scalar, DType::bf16, 0, MatmulActivations::f32, nullptr, nullptr, nullptr, nullptr, matmul_ref, nullptr},
    {"q8_0_ref", Isa::scalar, DType::q8_0, 0, MatmulActivations::f32, nullptr, nullptr, nullptr, nullptr, matmul_ref, nullptr},
    {"q4_0_ref", Isa::scalar, DType::q4_0, 0, MatmulActivations::f32, nullptr, nullptr, nullptr, nullptr, matmul_ref, nullptr},
};

#define GLIMPSE_MATMUL_KERNEL(symbol) extern const MatmulKernel symbol;
#include "ops/matmul_kernels.inc"
#undef GLIMPSE_MATMUL_KERNEL

const std::vector<const MatmulKernel*>& matmul_kernels() {
    static const std::vector<const MatmulKernel*> all = [] {
        std::vector<const MatmulKernel*> v;
        for (const MatmulKernel& k : kRefKernels) v.push_back(&k);
#define GLIMPSE_MATMUL_KERNEL(symbol) v.push_back(&symbol);
#include "ops/matmul_kernels.inc"
#undef GLIMPSE_MATMUL_KERNEL
        return v;
    }();
    return all;
}

const MatmulKernel* find_matmul_kernel(const char* name) {
    for (const MatmulKernel* k : matmul_kernels()) {
        if (std::strcmp(k->name, name) == 0) return k;
    }
    return nullptr;
}

const MatmulKernel* select_matmul_kernel(DType w_type, int64_t M_max, int64_t K, int64_t N) {
    const MatmulKernel* best = nullptr;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (k->w_type != w_type || !isa_usable(k->isa)) continue;
        if (k->supports && !k->supports(M_max, K, N)) continue;
        if (k->available && !k->available()) continue;
        if (!best || k->priority >= best->priority) best = k;
    }
    return best;
}

}  // namespace glimpse
