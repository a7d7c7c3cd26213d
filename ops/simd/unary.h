// Width-generic elementwise ops (same contracts as ops/unary.h; y may alias the inputs),
// written once against a vector-traits type V (ops/simd/vec_*.h) and instantiated by
// ops/unary_{avx2,avx512,neon}.cpp: unary (GELU tanh/quick, SiLU, and the
// f16 GELU forms), swiglu, add, mul.
//
// The f16 GELU forms (how ggml evaluates GELU: x rounded to f16, the f32 formula,
// the result rounded to f16) go through a table of all 65536 f16 inputs, filled
// once from the scalar forms themselves (gelu_*_f16 semantics), so results are
// bit-identical to unary_ref: x -> f16 round to nearest even (the rounding of
// f32_to_f16) -> gather (V::lookup_f16). GELU's x >= 10 / x <= -10 shortcuts are
// applied on the f32 input exactly as the scalar form does.
//
// The exact forms use the vectorised exp of ops/simd/exp.h (relative error < 2^-22):
//   gelu_tanh(x) = 0.5·x·(1 + tanh(u)) = x / (1 + e^{-2u}),  u = √(2/π)·(x + 0.044715·x³)
//   gelu_quick(x) = x · 1/(1 + e^{-1.702·x}),  silu(x) = x / (1 + e^{-x})
//
// Include only from an ISA translation unit, after its vec_<isa>.h (internal linkage:
// each unit keeps its own copy, and its own tables, compiled with its own flags).
#pragma once

#include <cstdint>

#include "ops/simd/exp.h"
#include "ops/unary.h"
#include "runtime/fp16.h"
#include "runtime/threadpool.h"

#include "ops/simd/exact_fp.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse::simd {
namespace {

template <class V>
struct Elementwise {
    using F = typename V::F;
    static constexpr int L = V::kLanes;
    static constexpr int64_t kParallelMin = 4096;  // elements below which one thread does it all (as the references)

    static const float* f16_table(UnaryOp op) {
        // table[h] = op applied to the f16 value h (a 256 KiB static array each, filled once)
        static float tanh_table[65536];
        static float quick_table[65536];
        if (op == UnaryOp::gelu_tanh_f16) {
            static const bool built = [] {
                for (uint32_t h = 0; h < 65536; ++h) tanh_table[h] = round_to_f16(gelu_tanh_scalar(f16_to_f32(uint16_t(h))));
                return true;
            }();
            (void)built;
            return tanh_table;
        }
        static const bool built = [] {
            for (uint32_t h = 0; h < 65536; ++h) quick_table[h] = round_to_f16(gelu_quick_scalar(f16_to_f32(uint16_t(h))));
            return true;
        }();
        (void)built;
        return quick_table;
    }

    template <UnaryOp kOp>
    static F apply(F x, const float* table) {
        if constexpr (kOp == UnaryOp::gelu_tanh) {
            // x / (1 + e^z), z = -2u = x·(k1 + k2·x²)
            const float c = 0.79788456080286535587989211986876f;
            const F x2 = V::mul(x, x);
            const F z = V::mul(x, V::fmadd(x2, V::set1(-2.0f * c * 0.044715f), V::set1(-2.0f * c)));
            return V::div(x, V::add(V::set1(1.0f), vexp<V>(z)));
        } else if constexpr (kOp == UnaryOp::gelu_quick) {
            const F e = vexp<V>(V::mul(x, V::set1(-1.702f)));
            return V::mul(x, V::div(V::set1(1.0f), V::add(V::set1(1.0f), e)));
        } else if constexpr (kOp == UnaryOp::silu) {
            const F e = vexp<V>(V::sub(V::zero(), x));
            return V::div(x, V::add(V::set1(1.0f), e));
        } else if constexpr (kOp == UnaryOp::gelu_tanh_f16) {
            F y = V::lookup_f16(table, x);
            y = V::select(V::le(x, V::set1(-10.0f)), V::zero(), y);
            return V::select(V::ge(x, V::set1(10.0f)), x, y);
        } else {
            return V::lookup_f16(table, x);
        }
    }

    template <UnaryOp kOp>
    static void unary_range(const float* x, int64_t i0, int64_t i1, float* y, const float* table) {
        int64_t i = i0;
        for (; i + L <= i1; i += L) V::storeu(y + i, apply<kOp>(V::loadu(x + i), table));
        if (i < i1) V::store_tail(y + i, i1 - i, apply<kOp>(V::load_tail(x + i, i1 - i), table));
    }

    template <UnaryOp kOp>
    static void unary_run(const float* x, int64_t n, float* y, ThreadPool* pool) {
        const float* table =
            (kOp == UnaryOp::gelu_tanh_f16 || kOp == UnaryOp::gelu_quick_f16) ? f16_table(kOp) : nullptr;
        auto body = [&](int64_t i0, int64_t i1, int) { unary_range<kOp>(x, i0, i1, y, table); };
        if (pool && n >= kParallelMin) pool->parallel_for(n, body);
        else body(0, n, 0);
    }

    static void unary(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool) {
        switch (op) {
            case UnaryOp::gelu_tanh: return unary_run<UnaryOp::gelu_tanh>(x, n, y, pool);
            case UnaryOp::gelu_quick: return unary_run<UnaryOp::gelu_quick>(x, n, y, pool);
            case UnaryOp::silu: return unary_run<UnaryOp::silu>(x, n, y, pool);
            case UnaryOp::gelu_tanh_f16: return unary_run<UnaryOp::gelu_tanh_f16>(x, n, y, pool);
            case UnaryOp::gelu_quick_f16: return unary_run<UnaryOp::gelu_quick_f16>(x, n, y, pool);
        }
    }

    // y = silu(gate) · up
    static void swiglu(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool) {
        auto body = [&](int64_t i0, int64_t i1, int) {
            int64_t i = i0;
            for (; i + L <= i1; i += L) {
                const F s = apply<UnaryOp::silu>(V::loadu(gate + i), nullptr);
                V::storeu(y + i, V::mul(s, V::loadu(up + i)));
            }
            if (i < i1) {
                const F s = apply<UnaryOp::silu>(V::load_tail(gate + i, i1 - i), nullptr);
                V::store_tail(y + i, i1 - i, V::mul(s, V::load_tail(up + i, i1 - i)));
            }
        };
        if (pool && n >= kParallelMin) pool->parallel_for(n, body);
        else body(0, n, 0);
    }

    // a:(T,C) ∘ b:(b_rows,C) -> y:(T,C), b broadcast over rows when b_rows == 1
    template <bool kAdd>
    static void binary(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y,
                       ThreadPool* pool) {
        auto op = [](F u, F v) { return kAdd ? V::add(u, v) : V::mul(u, v); };
        auto body = [&](int64_t t0, int64_t t1, int) {
            for (int64_t t = t0; t < t1; ++t) {
                const float* ar = a + t * C;
                const float* br = b + (b_rows == 1 ? 0 : t * C);
                float* yr = y + t * C;
                int64_t c = 0;
                for (; c + L <= C; c += L) V::storeu(yr + c, op(V::loadu(ar + c), V::loadu(br + c)));
                if (c < C) V::store_tail(yr + c, C - c, op(V::load_tail(ar + c, C - c), V::load_tail(br + c, C - c)));
            }
        };
        if (pool && T * C >= kParallelMin) pool->parallel_for(T, body);
        else body(0, T, 0);
    }
};

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END

// The family's kernels for one ISA unit, forwarding to Elementwise<V>: unary_<isa>,
// swiglu_<isa>, add_<isa>, mul_<isa> (declared in ops/op_variants_x86.h, ops/unary_neon.h).
// Expanded in namespace glimpse by each ops/unary_<isa>.cpp, so the list is written once for
// every ISA.
#define GLIMPSE_ELEMENTWISE_KERNELS(isa, V)                                                                          \
    void unary_##isa(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool) {                           \
        simd::Elementwise<V>::unary(op, x, n, y, pool);                                                               \
    }                                                                                                                 \
    void swiglu_##isa(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool) {                  \
        simd::Elementwise<V>::swiglu(gate, up, n, y, pool);                                                           \
    }                                                                                                                 \
    void add_##isa(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) { \
        simd::Elementwise<V>::binary<true>(a, b, T, C, b_rows, y, pool);                                     \
    }                                                                                                                 \
    void mul_##isa(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) { \
        simd::Elementwise<V>::binary<false>(a, b, T, C, b_rows, y, pool);                                    \
    }
