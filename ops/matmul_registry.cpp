// Matmul dispatch over the matmul entries of the kernel registry
// (ops/kernel_registry.cpp): measured decisions first, then priority.
#include <cstdlib>
#include <cstring>

#include "ops/kernel_registry.h"
#include "ops/matmul.h"

namespace glimpse {

const std::vector<const MatmulKernel*>& matmul_kernels() {
    static const std::vector<const MatmulKernel*> all = [] {
        std::vector<const MatmulKernel*> v;
        for (const Kernel* k : kernels_of(OpFamily::matmul)) v.push_back(k->fn.matmul);
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

// Measured choices (ops/matmul_decisions.inc, from tools/bench; see docs/benchmarks.md)
// come before the priority rule: the first entry for this weight type, shape class
// and exactly the active ISA level whose kernel is usable for the shape wins.
// Entries are `exact` (the priority choice's numerics class or finer, and run()
// allocates nothing) or `fast` (coarser arithmetic, or a library whose run()
// allocates). GLIMPSE_MATMUL_DECISIONS=exact (default) applies the exact ones,
// =fast all of them, =off none.
namespace {

enum class MatmulShapeClass { tiny, decode, small, large };
enum class MatmulPolicy { exact, fast };

// decode: one row; small: up to 127 rows (connector, short prompts); large: encoder
// tiles and prefill. tiny (K·N < 2^16: test and toy models) is never decided.
MatmulShapeClass matmul_shape_class(int64_t M_max, int64_t K, int64_t N) {
    if (K * N < (int64_t{1} << 16)) return MatmulShapeClass::tiny;
    if (M_max <= 1) return MatmulShapeClass::decode;
    return M_max < 128 ? MatmulShapeClass::small : MatmulShapeClass::large;
}

struct MatmulDecision {
    DType w_type;
    MatmulShapeClass shape;
    Isa isa;
    const char* kernel;
    MatmulPolicy policy;
};

const MatmulDecision kMatmulDecisions[] = {
#define GLIMPSE_MATMUL_DECISION(type, shape, isa, kernel, policy) \
    {DType::type, MatmulShapeClass::shape, Isa::isa, kernel, MatmulPolicy::policy},
#include "ops/matmul_decisions.inc"
#undef GLIMPSE_MATMUL_DECISION
    {DType::f32, MatmulShapeClass::tiny, Isa::scalar, nullptr, MatmulPolicy::exact},  // end marker
};

const MatmulKernel* decided_matmul_kernel(DType w_type, int64_t M_max, int64_t K, int64_t N) {
    static const int mode = [] {  // 0 off, 1 exact, 2 fast
        const char* e = std::getenv("GLIMPSE_MATMUL_DECISIONS");
        if (!e || !*e) return 1;
        if (std::strcmp(e, "off") == 0) return 0;
        return std::strcmp(e, "fast") == 0 ? 2 : 1;
    }();
    if (mode == 0) return nullptr;
    const MatmulShapeClass shape = matmul_shape_class(M_max, K, N);
    if (shape == MatmulShapeClass::tiny) return nullptr;
    for (const MatmulDecision& d : kMatmulDecisions) {
        if (!d.kernel || d.w_type != w_type || d.shape != shape || d.isa != active_isa()) continue;
        if (mode == 1 && d.policy != MatmulPolicy::exact) continue;
        const MatmulKernel* k = find_matmul_kernel(d.kernel);
        if (!k || k->w_type != w_type || !isa_usable(k->isa)) continue;
        if (k->supports && !k->supports(M_max, K, N)) continue;
        if (k->available && !k->available()) continue;
        return k;
    }
    return nullptr;
}

}  // namespace

const MatmulKernel* select_matmul_kernel(DType w_type, int64_t M_max, int64_t K, int64_t N) {
    if (const MatmulKernel* k = decided_matmul_kernel(w_type, M_max, K, N)) return k;
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
