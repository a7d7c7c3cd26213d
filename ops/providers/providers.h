// Library matmul providers (oneDNN, XNNPACK, Eigen): what the benchmark and the
// provider tests need to know beyond the MatmulKernel entries themselves.
//
// The entries live in ops/providers/{onednn,xnnpack,eigen*}.cpp and are listed in
// ops/kernel_registry.cpp under GLIMPSE_HAVE_ONEDNN / GLIMPSE_HAVE_XNNPACK /
// GLIMPSE_HAVE_EIGEN. They have KernelPriority::decisions_only (-1), so the priority rule alone never picks
// them over the scalar references: the plan uses a provider only where the decision
// table (ops/matmul_decisions.inc) names it.
#pragma once

#include <string>

#include "ops/matmul.h"

namespace glimpse {

// Whether `kernel` is a library provider entry (by name prefix).
bool is_matmul_provider(const MatmulKernel& kernel);

// What the library runs for packed weights `packed` of `kernel`: oneDNN's
// implementation name for the largest row bucket ("brg:avx512_core_amx_bf16"),
// "xnnpack f32 gemm, 2 column slices", "eigen gemm (avx512)". Empty for kernels
// that are not providers. For reports only.
std::string matmul_provider_impl(const MatmulKernel& kernel, const void* packed);

// Library versions compiled in, e.g. "onednn 2.6.3 (omp); xnnpack (2022 api); eigen 3.4.0".
std::string matmul_provider_versions();

// Heap allocations one run() of this provider kernel makes by design (0 for
// XNNPACK and Eigen). oneDNN 2.6's primitive execute builds a std::unordered_map of
// arguments per call (its exec_ctx_t), which the public API cannot avoid: see
// docs/benchmarks.md. Tests use this to tell the known cost from a regression.
bool matmul_provider_allocates_in_run(const MatmulKernel& kernel);

}  // namespace glimpse
