// AVX2 layer_norm and rms_norm (same contracts as ops/norm.h; y may alias x).
// As ops/norm_avx512.cpp on 8 lanes: statistics accumulated in double lanes (as the
// references and ggml-cpu), the normalisation in the references' f32 arithmetic.
#include <immintrin.h>

#include <algorithm>
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

inline __m256i tail_mask(int64_t n) {
    const int m = static_cast<int>(std::min<int64_t>(std::max<int64_t>(n, 0), 8));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256 load_tail(const float* p, int64_t n) { return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(n)); }
inline void store_tail(float* p, int64_t n, __m256 v) {
    if (n >= 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, tail_mask(n), v);
}

inline __m256d lo_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
inline __m256d hi_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }

inline double hsum_pd(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// Σ x[c] in double
inline double sum_row(const float* x, int64_t C) {
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    int64_t c = 0;
    for (; c + 16 <= C; c += 16) {
        const __m256 a = _mm256_loadu_ps(x + c), b = _mm256_loadu_ps(x + c + 8);
        s0 = _mm256_add_pd(s0, lo_pd(a));
        s1 = _mm256_add_pd(s1, hi_pd(a));
        s2 = _mm256_add_pd(s2, lo_pd(b));
        s3 = _mm256_add_pd(s3, hi_pd(b));
    }
    for (; c < C; c += 8) {
        const __m256 a = load_tail(x + c, C - c);
        s0 = _mm256_add_pd(s0, lo_pd(a));
        s1 = _mm256_add_pd(s1, hi_pd(a));
    }
    return hsum_pd(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
}

// Σ (x[c] - mean)² in double, each difference rounded to f32 first (as the reference)
inline double sum_sq_row(const float* x, int64_t C, float mean) {
    const __m256 vm = _mm256_set1_ps(mean);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    int64_t c = 0;
    for (; c + 16 <= C; c += 16) {
        const __m256 a = _mm256_sub_ps(_mm256_loadu_ps(x + c), vm), b = _mm256_sub_ps(_mm256_loadu_ps(x + c + 8), vm);
        const __m256d a0 = lo_pd(a), a1 = hi_pd(a), b0 = lo_pd(b), b1 = hi_pd(b);
        s0 = _mm256_fmadd_pd(a0, a0, s0);
        s1 = _mm256_fmadd_pd(a1, a1, s1);
        s2 = _mm256_fmadd_pd(b0, b0, s2);
        s3 = _mm256_fmadd_pd(b1, b1, s3);
    }
    for (; c < C; c += 8) {
        const __m256 a = _mm256_and_ps(_mm256_sub_ps(load_tail(x + c, C - c), vm), _mm256_castsi256_ps(tail_mask(C - c)));
        const __m256d a0 = lo_pd(a), a1 = hi_pd(a);
        s0 = _mm256_fmadd_pd(a0, a0, s0);
        s1 = _mm256_fmadd_pd(a1, a1, s1);
    }
    return hsum_pd(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
}

template <bool kGamma, bool kBeta>
inline void normalize_row(const float* x, int64_t C, float mean, float scale, const float* gamma, const float* beta,
                          float* y) {
    const __m256 vm = _mm256_set1_ps(mean), vs = _mm256_set1_ps(scale);
    for (int64_t c = 0; c < C; c += 8) {
        const int64_t w = C - c;
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(load_tail(x + c, w), vm), vs);
        if constexpr (kGamma) v = _mm256_mul_ps(v, load_tail(gamma + c, w));
        if constexpr (kBeta) v = _mm256_add_ps(v, load_tail(beta + c, w));
        store_tail(y + c, w, v);
    }
}

}  // namespace

void layer_norm_avx2(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps, float* y,
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

void rms_norm_avx2(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y, ThreadPool* pool) {
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
