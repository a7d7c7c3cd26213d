// AVX2 + FMA + F16C elementwise ops: unary (GELU tanh/quick, SiLU, and the f16 GELU
// forms), swiglu, add, mul. Same contracts as ops/unary.h; y may alias the inputs.
// The algorithms of ops/unary_avx512.cpp on 8 lanes: the f16 GELU forms through a
// table of all 65536 f16 inputs filled from the scalar forms (bit-identical to
// unary_ref; x -> vcvtps2ph round-to-nearest-even -> gather), the exact forms with a
// vectorised exp (relative error < 2^-22):
//   gelu_tanh(x) = x / (1 + e^{-2u}),  u = √(2/π)·(x + 0.044715·x³)
//   gelu_quick(x) = x · 1/(1 + e^{-1.702·x}),  silu(x) = x / (1 + e^{-x})
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "ops/exp_avx2.h"
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

using avx2_math::exp8;

constexpr int64_t kParallelMin = 4096;  // elements below which one thread does it all (as the references)

inline __m256i tail_mask(int64_t n) {
    const int m = static_cast<int>(std::min<int64_t>(std::max<int64_t>(n, 0), 8));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256 load_tail(const float* p, int64_t n) { return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(n)); }
inline void store_tail(float* p, int64_t n, __m256 v) {
    if (n >= 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, tail_mask(n), v);
}


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

inline __m256 table_lookup(const float* table, __m256 x) {
    const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_i32gather_ps(table, _mm256_cvtepu16_epi32(h), 4);
}

template <UnaryOp kOp>
inline __m256 apply(__m256 x, const float* table) {
    if constexpr (kOp == UnaryOp::gelu_tanh) {
        const float c = 0.79788456080286535587989211986876f;
        const __m256 x2 = _mm256_mul_ps(x, x);
        const __m256 z = _mm256_mul_ps(x, _mm256_fmadd_ps(x2, _mm256_set1_ps(-2.0f * c * 0.044715f),
                                                          _mm256_set1_ps(-2.0f * c)));
        return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(z)));
    } else if constexpr (kOp == UnaryOp::gelu_quick) {
        const __m256 e = exp8(_mm256_mul_ps(x, _mm256_set1_ps(-1.702f)));
        return _mm256_mul_ps(x, _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
    } else if constexpr (kOp == UnaryOp::silu) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    } else if constexpr (kOp == UnaryOp::gelu_tanh_f16) {
        __m256 y = table_lookup(table, x);
        y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(-10.0f), _CMP_LE_OQ));
        return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, _mm256_set1_ps(10.0f), _CMP_GE_OQ));
    } else {
        return table_lookup(table, x);
    }
}

template <UnaryOp kOp>
void unary_range(const float* x, int64_t i0, int64_t i1, float* y, const float* table) {
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(y + i, apply<kOp>(_mm256_loadu_ps(x + i), table));
    if (i < i1) store_tail(y + i, i1 - i, apply<kOp>(load_tail(x + i, i1 - i), table));
}

template <UnaryOp kOp>
void unary_run(const float* x, int64_t n, float* y, ThreadPool* pool) {
    const float* table = (kOp == UnaryOp::gelu_tanh_f16 || kOp == UnaryOp::gelu_quick_f16) ? f16_table(kOp) : nullptr;
    auto body = [&](int64_t i0, int64_t i1, int) { unary_range<kOp>(x, i0, i1, y, table); };
    if (pool && n >= kParallelMin) pool->parallel_for(n, body);
    else body(0, n, 0);
}

template <bool kAdd>
inline __m256 binop(__m256 a, __m256 b) {
    if constexpr (kAdd) return _mm256_add_ps(a, b);
    else return _mm256_mul_ps(a, b);
}

template <bool kAdd>
void binary_run(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    auto body = [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            const float* ar = a + t * C;
            const float* br = b + (b_rows == 1 ? 0 : t * C);
            float* yr = y + t * C;
            int64_t c = 0;
            for (; c + 8 <= C; c += 8) _mm256_storeu_ps(yr + c, binop<kAdd>(_mm256_loadu_ps(ar + c), _mm256_loadu_ps(br + c)));
            if (c < C) store_tail(yr + c, C - c, binop<kAdd>(load_tail(ar + c, C - c), load_tail(br + c, C - c)));
        }
    };
    if (pool && T * C >= kParallelMin) pool->parallel_for(T, body);
    else body(0, T, 0);
}

}  // namespace

void unary_avx2(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool) {
    switch (op) {
        case UnaryOp::gelu_tanh: return unary_run<UnaryOp::gelu_tanh>(x, n, y, pool);
        case UnaryOp::gelu_quick: return unary_run<UnaryOp::gelu_quick>(x, n, y, pool);
        case UnaryOp::silu: return unary_run<UnaryOp::silu>(x, n, y, pool);
        case UnaryOp::gelu_tanh_f16: return unary_run<UnaryOp::gelu_tanh_f16>(x, n, y, pool);
        case UnaryOp::gelu_quick_f16: return unary_run<UnaryOp::gelu_quick_f16>(x, n, y, pool);
    }
}

void swiglu_avx2(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool) {
    auto body = [&](int64_t i0, int64_t i1, int) {
        int64_t i = i0;
        for (; i + 8 <= i1; i += 8) {
            const __m256 s = apply<UnaryOp::silu>(_mm256_loadu_ps(gate + i), nullptr);
            _mm256_storeu_ps(y + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
        }
        if (i < i1) {
            const __m256 s = apply<UnaryOp::silu>(load_tail(gate + i, i1 - i), nullptr);
            store_tail(y + i, i1 - i, _mm256_mul_ps(s, load_tail(up + i, i1 - i)));
        }
    };
    if (pool && n >= kParallelMin) pool->parallel_for(n, body);
    else body(0, n, 0);
}

void add_avx2(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    binary_run<true>(a, b, T, C, b_rows, y, pool);
}

void mul_avx2(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    binary_run<false>(a, b, T, C, b_rows, y, pool);
}

}  // namespace glimpse
