// Row gather: the rows of an activation named by an index value, for visual-token
// pruning (issue 23: keep the rows topk selected).
//
//   x:(T,C) f32, idx:(k) i32 with every idx[i] in [0, T) -> y:(k,C), y[i] = x[idx[i]]
//
// Callers guarantee the range (the graph checks input indices before a run, and
// indices from topk over T scores are in range by construction). y must not overlap x.
#pragma once

#include <cstdint>

#include "runtime/threadpool.h"

namespace glimpse {

// The reference: one row copy per index. A row gather is a memory copy, so no SIMD
// variant is registered; one would be one entry in ops/kernel_registry.cpp.
void gather_rows_ref(const float* x, int64_t C, const int32_t* idx, int64_t k, float* y, ThreadPool* pool);

}  // namespace glimpse
