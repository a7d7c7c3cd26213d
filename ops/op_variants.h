// Variant lists of the non-matmul ops. Each op family has one list: the scalar
// reference first, then SIMD variants from their ISA translation units
// (registered in ops/op_variants.inc). A plan takes, per family, the usable
// variant of the highest level when it is compiled (op_kernels_for_active_isa);
// tests run every usable variant against the reference, and the benchmark
// times them, from the same lists.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/attention.h"
#include "ops/unary.h"
#include "runtime/threadpool.h"
#include "targets/cpu_features.h"

namespace glimpse {

// x:(T,C), gamma/beta:(C) or null -> y:(T,C)
using LayerNormFn = void (*)(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps,
                             float* y, ThreadPool* pool);
using RmsNormFn = void (*)(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y,
                           ThreadPool* pool);
// y[i] = op(x[i]) over n elements
using UnaryFn = void (*)(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool);
// y = silu(gate) * up over n elements
using SwigluFn = void (*)(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool);
// a:(T,C) op b:(T,C) or (C) when b_rows == 1 -> y:(T,C)
using BinaryFn = void (*)(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y,
                          ThreadPool* pool);
// x:(T,H·D), pos:(T) -> y (llama "normal" rope over the first n_rot dims of each head)
using RopeFn = void (*)(const float* x, const int32_t* pos, int64_t T, int64_t H, int64_t D, int64_t n_rot, float base,
                        float* y, ThreadPool* pool);
using AttentionFn = void (*)(const AttentionArgs& args, float* scratch, ThreadPool* pool);

template <class Fn>
struct OpVariant {
    const char* name;  // "<op>__<isa>", e.g. "attention__avx512"
    Isa isa;
    Fn fn;
};

const std::vector<OpVariant<LayerNormFn>>& layer_norm_variants();
const std::vector<OpVariant<RmsNormFn>>& rms_norm_variants();
const std::vector<OpVariant<UnaryFn>>& unary_variants();
const std::vector<OpVariant<SwigluFn>>& swiglu_variants();
const std::vector<OpVariant<BinaryFn>>& add_variants();
const std::vector<OpVariant<BinaryFn>>& mul_variants();
const std::vector<OpVariant<RopeFn>>& rope_variants();
const std::vector<OpVariant<AttentionFn>>& attention_variants();

// The kernels a plan uses for these families: per family, the usable variant of
// the highest level (later entries win ties).
struct OpKernels {
    const OpVariant<LayerNormFn>* layer_norm;
    const OpVariant<RmsNormFn>* rms_norm;
    const OpVariant<UnaryFn>* unary;
    const OpVariant<SwigluFn>* swiglu;
    const OpVariant<BinaryFn>* add;
    const OpVariant<BinaryFn>* mul;
    const OpVariant<RopeFn>* rope;
    const OpVariant<AttentionFn>* attention;
};
OpKernels op_kernels_for_active_isa();

template <class Fn>
const OpVariant<Fn>* select_op_variant(const std::vector<OpVariant<Fn>>& list) {
    const OpVariant<Fn>* best = nullptr;
    for (const OpVariant<Fn>& v : list) {
        if (isa_usable(v.isa) && (!best || static_cast<int>(v.isa) >= static_cast<int>(best->isa))) best = &v;
    }
    return best;
}

}  // namespace glimpse
