// AVX-512 elementwise ops: unary (GELU tanh/quick, SiLU, and the f16 GELU forms),
// swiglu, add, mul. Same contracts as ops/unary.h; y may alias the inputs.
//
// The f16 GELU forms (how ggml evaluates GELU: x rounded to f16, the f32 formula,
// the result rounded to f16) go through a table of all 65536 f16 inputs, filled
// once from the scalar forms themselves (gelu_*_f16 semantics), so results are
// bit-identical to unary_ref: x -> vcvtps2ph (round to nearest even, the rounding
// of f32_to_f16) -> gather. GELU's x >= 10 / x <= -10 shortcuts are applied on the
// f32 input exactly as the scalar form does.
//
// The exact forms use a vectorised exp (relative error < 2^-22):
//   gelu_tanh(x) = 0.5·x·(1 + tanh(u)) = x / (1 + e^{-2u}),  u = √(2/π)·(x + 0.044715·x³)
//   gelu_quick(x) = x · 1/(1 + e^{-1.702·x}),  silu(x) = x / (1 + e^{-x})
#include <immintrin.h>

#include <cmath>

#include "ops/exp_avx512.h"
#include "ops/op_variants_x86.h"
#include "runtime/fp16.h"


// Arithmetic is exactly as written: explicit FMAs only, no contraction of a·b + c.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace glimpse {
namespace {

using avx512_math::exp16;

constexpr int64_t kParallelMin = 4096;  // elements below which one thread does it all (as the references)

inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u); }


const float* f16_table(UnaryOp op) {
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

inline __m512 table_lookup(const float* table, __m512 x) {
    const __m256i h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_i32gather_ps(_mm512_cvtepu16_epi32(h), table, 4);
}

template <UnaryOp kOp>
inline __m512 apply(__m512 x, const float* table) {
    if constexpr (kOp == UnaryOp::gelu_tanh) {
        // x / (1 + e^z), z = -2u = x·(k1 + k2·x²)
        const float c = 0.79788456080286535587989211986876f;
        const __m512 x2 = _mm512_mul_ps(x, x);
        const __m512 z = _mm512_mul_ps(x, _mm512_fmadd_ps(x2, _mm512_set1_ps(-2.0f * c * 0.044715f),
                                                          _mm512_set1_ps(-2.0f * c)));
        return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(z)));
    } else if constexpr (kOp == UnaryOp::gelu_quick) {
        const __m512 e = exp16(_mm512_mul_ps(x, _mm512_set1_ps(-1.702f)));
        return _mm512_mul_ps(x, _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    } else if constexpr (kOp == UnaryOp::silu) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
        return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    } else if constexpr (kOp == UnaryOp::gelu_tanh_f16) {
        __m512 y = table_lookup(table, x);
        y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-10.0f), _CMP_LE_OQ), _mm512_setzero_ps());
        return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(10.0f), _CMP_GE_OQ), x);
    } else {
        return table_lookup(table, x);
    }
}

template <UnaryOp kOp>
void unary_range(const float* x, int64_t i0, int64_t i1, float* y, const float* table) {
    int64_t i = i0;
    for (; i + 16 <= i1; i += 16) _mm512_storeu_ps(y + i, apply<kOp>(_mm512_loadu_ps(x + i), table));
    if (i < i1) {
        const __mmask16 m = tail_mask(i1 - i);
        _mm512_mask_storeu_ps(y + i, m, apply<kOp>(_mm512_maskz_loadu_ps(m, x + i), table));
    }
}

template <UnaryOp kOp>
void unary_run(const float* x, int64_t n, float* y, ThreadPool* pool) {
    const float* table = (kOp == UnaryOp::gelu_tanh_f16 || kOp == UnaryOp::gelu_quick_f16) ? f16_table(kOp) : nullptr;
    auto body = [&](int64_t i0, int64_t i1, int) { unary_range<kOp>(x, i0, i1, y, table); };
    if (pool && n >= kParallelMin) pool->parallel_for(n, body);
    else body(0, n, 0);
}

template <bool kAdd>
inline __m512 binop(__m512 a, __m512 b) {
    if constexpr (kAdd) return _mm512_add_ps(a, b);
    else return _mm512_mul_ps(a, b);
}

template <bool kAdd>
void binary_run(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    auto body = [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            const float* ar = a + t * C;
            const float* br = b + (b_rows == 1 ? 0 : t * C);
            float* yr = y + t * C;
            int64_t c = 0;
            for (; c + 16 <= C; c += 16) {
                _mm512_storeu_ps(yr + c, binop<kAdd>(_mm512_loadu_ps(ar + c), _mm512_loadu_ps(br + c)));
            }
            if (c < C) {
                const __mmask16 m = tail_mask(C - c);
                _mm512_mask_storeu_ps(yr + c, m,
                                      binop<kAdd>(_mm512_maskz_loadu_ps(m, ar + c), _mm512_maskz_loadu_ps(m, br + c)));
            }
        }
    };
    if (pool && T * C >= kParallelMin) pool->parallel_for(T, body);
    else body(0, T, 0);
}

}  // namespace

void unary_avx512(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool) {
    switch (op) {
        case UnaryOp::gelu_tanh: return unary_run<UnaryOp::gelu_tanh>(x, n, y, pool);
        case UnaryOp::gelu_quick: return unary_run<UnaryOp::gelu_quick>(x, n, y, pool);
        case UnaryOp::silu: return unary_run<UnaryOp::silu>(x, n, y, pool);
        case UnaryOp::gelu_tanh_f16: return unary_run<UnaryOp::gelu_tanh_f16>(x, n, y, pool);
        case UnaryOp::gelu_quick_f16: return unary_run<UnaryOp::gelu_quick_f16>(x, n, y, pool);
    }
}

void swiglu_avx512(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool) {
    auto body = [&](int64_t i0, int64_t i1, int) {
        int64_t i = i0;
        for (; i + 16 <= i1; i += 16) {
            const __m512 s = apply<UnaryOp::silu>(_mm512_loadu_ps(gate + i), nullptr);
            _mm512_storeu_ps(y + i, _mm512_mul_ps(s, _mm512_loadu_ps(up + i)));
        }
        if (i < i1) {
            const __mmask16 m = tail_mask(i1 - i);
            const __m512 s = apply<UnaryOp::silu>(_mm512_maskz_loadu_ps(m, gate + i), nullptr);
            _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
        }
    };
    if (pool && n >= kParallelMin) pool->parallel_for(n, body);
    else body(0, n, 0);
}

void add_avx512(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    binary_run<true>(a, b, T, C, b_rows, y, pool);
}

void mul_avx512(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    binary_run<false>(a, b, T, C, b_rows, y, pool);
}

}  // namespace glimpse
