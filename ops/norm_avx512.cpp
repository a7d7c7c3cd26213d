// AVX-512 layer_norm and rms_norm (same contracts as ops/norm.h; y may alias x).
// The statistics are accumulated in double lanes, as the references (and ggml-cpu)
// do, so mean and variance match the references up to the order of the double
// additions; the normalisation itself is the references' f32 arithmetic.
#include <immintrin.h>

#include <cmath>

#include "ops/op_variants_x86.h"


// Arithmetic is exactly as written: explicit FMAs only, no contraction of a·b + c.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace glimpse {
namespace {

inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u); }

inline __m512d lo_pd(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
inline __m512d hi_pd(__m512 v) { return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))); }

// Σ x[c] in double
inline double sum_row(const float* x, int64_t C) {
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    int64_t c = 0;
    for (; c + 32 <= C; c += 32) {
        const __m512 a = _mm512_loadu_ps(x + c), b = _mm512_loadu_ps(x + c + 16);
        s0 = _mm512_add_pd(s0, lo_pd(a));
        s1 = _mm512_add_pd(s1, hi_pd(a));
        s2 = _mm512_add_pd(s2, lo_pd(b));
        s3 = _mm512_add_pd(s3, hi_pd(b));
    }
    for (; c < C; c += 16) {
        const __m512 a = _mm512_maskz_loadu_ps(tail_mask(C - c), x + c);
        s0 = _mm512_add_pd(s0, lo_pd(a));
        s1 = _mm512_add_pd(s1, hi_pd(a));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
}

// Σ (x[c] - mean)² in double, each difference rounded to f32 first (as the reference)
inline double sum_sq_row(const float* x, int64_t C, float mean) {
    const __m512 vm = _mm512_set1_ps(mean);
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    int64_t c = 0;
    for (; c + 32 <= C; c += 32) {
        const __m512 a = _mm512_sub_ps(_mm512_loadu_ps(x + c), vm), b = _mm512_sub_ps(_mm512_loadu_ps(x + c + 16), vm);
        const __m512d a0 = lo_pd(a), a1 = hi_pd(a), b0 = lo_pd(b), b1 = hi_pd(b);
        s0 = _mm512_fmadd_pd(a0, a0, s0);
        s1 = _mm512_fmadd_pd(a1, a1, s1);
        s2 = _mm512_fmadd_pd(b0, b0, s2);
        s3 = _mm512_fmadd_pd(b1, b1, s3);
    }
    for (; c < C; c += 16) {
        const __mmask16 m = tail_mask(C - c);
        const __m512 a = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + c), vm);
        const __m512d a0 = lo_pd(a), a1 = hi_pd(a);
        s0 = _mm512_fmadd_pd(a0, a0, s0);
        s1 = _mm512_fmadd_pd(a1, a1, s1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
}

// y = (x - mean)·scale [·gamma] [+ beta]
template <bool kGamma, bool kBeta>
inline void normalize_row(const float* x, int64_t C, float mean, float scale, const float* gamma, const float* beta,
                          float* y) {
    const __m512 vm = _mm512_set1_ps(mean), vs = _mm512_set1_ps(scale);
    for (int64_t c = 0; c < C; c += 16) {
        const __mmask16 m = tail_mask(C - c);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + c), vm), vs);
        if constexpr (kGamma) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, gamma + c));
        if constexpr (kBeta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, beta + c));
        _mm512_mask_storeu_ps(y + c, m, v);
    }
}

}  // namespace

void layer_norm_avx512(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps, float* y,
                       ThreadPool* pool) {
    auto body = [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            const float* xr = x + t * C;
            float* yr = y + t * C;
            const float mean = static_cast<float>(sum_row(xr, C) / C);
            const float scale = 1.0f / std::sqrt(static_cast<float>(sum_sq_row(xr, C, mean) / C) + eps);
            if (gamma && beta) normalize_row<true, true>(xr, C, mean, scale, gamma, beta, yr);
            else if (gamma) normalize_row<true, false>(xr, C, mean, scale, gamma, beta, yr);
            else if (beta) normalize_row<false, true>(xr, C, mean, scale, gamma, beta, yr);
            else normalize_row<false, false>(xr, C, mean, scale, gamma, beta, yr);
        }
    };
    if (pool) pool->parallel_for(T, body);
    else body(0, T, 0);
}

void rms_norm_avx512(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y, ThreadPool* pool) {
    auto body = [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            const float* xr = x + t * C;
            float* yr = y + t * C;
            const float scale = 1.0f / std::sqrt(static_cast<float>(sum_sq_row(xr, C, 0.0f) / C) + eps);
            if (gamma) normalize_row<true, false>(xr, C, 0.0f, scale, gamma, nullptr, yr);
            else normalize_row<false, false>(xr, C, 0.0f, scale, nullptr, nullptr, yr);
        }
    };
    if (pool) pool->parallel_for(T, body);
    else body(0, T, 0);
}

}  // namespace glimpse
