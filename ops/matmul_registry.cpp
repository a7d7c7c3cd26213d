// Matmul dispatch over the matmul entries of the kernel registry
// (ops/kernel_registry.cpp): measured decisions first, then priority.
#include <cstdlib>
#include <cstring>

#include "ops/kernel_registry.h"
#include "ops/matmul.h"
#include "ops/matmul_decision_file.h"

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

const MatmulKernel* priority_matmul_kernel(DType w_type, int64_t M_max, int64_t K, int64_t N) {
    const MatmulKernel* best = nullptr;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (k->w_type != w_type || !isa_usable(k->isa)) continue;
        if (k->supports && !k->supports(M_max, K, N)) continue;
        if (k->available && !k->available()) continue;
        if (!best || k->priority >= best->priority) best = k;
    }
    return best;
}

// Measured choices (ops/matmul_decisions.inc, from tools/bench; see docs/benchmarks.md)
// come before the priority rule: the first entry for this weight type, shape class
// and exactly the active ISA level whose kernel is usable for the shape wins.
// Entries are `exact` (the priority choice's numerics class or finer, and run()
// allocates nothing) or `fast` (coarser arithmetic, or a library whose run()
// allocates). GLIMPSE_MATMUL_DECISIONS=exact (default) applies the exact ones,
// =fast all of them, =off none.
namespace {

struct BuiltinMatmulDecision {
    DType w_type;
    MatmulShapeClass shape;
    Isa isa;
    const char* kernel;
    MatmulPolicy policy;
};

const BuiltinMatmulDecision kMatmulDecisions[] = {
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
    auto usable = [&](const MatmulKernel* k) {
        return k && k->w_type == w_type && isa_usable(k->isa) && (!k->supports || k->supports(M_max, K, N)) &&
               (!k->available || k->available());
    };
    // Measured on this machine (`glimpse tune`, ops/matmul_decision_file.h) first. Its policy
    // is derived here from the kernels, not taken from the file.
    std::string measured;
    MatmulPolicy file_policy = MatmulPolicy::exact;
    if (installed_matmul_decision(w_type, shape, &measured, &file_policy)) {
        const MatmulKernel* k = find_matmul_kernel(measured.c_str());
        const MatmulKernel* prio = priority_matmul_kernel(w_type, M_max, K, N);
        if (usable(k) && prio && (mode == 2 || matmul_policy_of(*k, *prio) == MatmulPolicy::exact)) return k;
    }
    for (const BuiltinMatmulDecision& d : kMatmulDecisions) {
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
    return priority_matmul_kernel(w_type, M_max, K, N);
}

}  // namespace glimpse
