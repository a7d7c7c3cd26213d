// Width-generic layer_norm and rms_norm (same contracts as ops/norm.h; y may alias x),
// written once against a vector-traits type V (ops/simd/vec_*.h) and instantiated by
// ops/norm_{avx2,avx512,neon}.cpp. The statistics are accumulated in f64
// lanes, as the references (and ggml-cpu) do, so mean and variance match the
// references up to the order of the f64 additions; the normalisation itself is the
// references' f32 arithmetic. Include only from an ISA translation unit, after its
// vec_<isa>.h, compiled without FMA contraction (the arithmetic is exactly as written).
#pragma once

#include <cmath>
#include <cstdint>

#include "runtime/threadpool.h"

#include "ops/simd/exact_fp.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse::simd {
namespace {

template <class V>
struct Norm {
    using F = typename V::F;
    using D = typename V::D;
    static constexpr int L = V::kLanes;

    // Σ x[c] in f64: x:(C) -> scalar
    static double sum_row(const float* x, int64_t C) {
        D s0 = V::zero_d(), s1 = s0, s2 = s0, s3 = s0;
        int64_t c = 0;
        for (; c + 2 * L <= C; c += 2 * L) {
            const F a = V::loadu(x + c), b = V::loadu(x + c + L);
            s0 = V::add_d(s0, V::lo_to_d(a));
            s1 = V::add_d(s1, V::hi_to_d(a));
            s2 = V::add_d(s2, V::lo_to_d(b));
            s3 = V::add_d(s3, V::hi_to_d(b));
        }
        for (; c < C; c += L) {
            const F a = V::load_tail(x + c, C - c);
            s0 = V::add_d(s0, V::lo_to_d(a));
            s1 = V::add_d(s1, V::hi_to_d(a));
        }
        return V::reduce_add_d(V::add_d(V::add_d(s0, s1), V::add_d(s2, s3)));
    }

    // Σ (x[c] - mean)² in f64, each difference rounded to f32 first (as the reference)
    static double sum_sq_row(const float* x, int64_t C, float mean) {
        const F vm = V::set1(mean);
        D s0 = V::zero_d(), s1 = s0, s2 = s0, s3 = s0;
        int64_t c = 0;
        for (; c + 2 * L <= C; c += 2 * L) {
            const F a = V::sub(V::loadu(x + c), vm), b = V::sub(V::loadu(x + c + L), vm);
            const D a0 = V::lo_to_d(a), a1 = V::hi_to_d(a), b0 = V::lo_to_d(b), b1 = V::hi_to_d(b);
            s0 = V::fmadd_d(a0, a0, s0);
            s1 = V::fmadd_d(a1, a1, s1);
            s2 = V::fmadd_d(b0, b0, s2);
            s3 = V::fmadd_d(b1, b1, s3);
        }
        for (; c < C; c += L) {
            const F a = V::zero_unless(V::first_lanes(C - c), V::sub(V::load_tail(x + c, C - c), vm));
            const D a0 = V::lo_to_d(a), a1 = V::hi_to_d(a);
            s0 = V::fmadd_d(a0, a0, s0);
            s1 = V::fmadd_d(a1, a1, s1);
        }
        return V::reduce_add_d(V::add_d(V::add_d(s0, s1), V::add_d(s2, s3)));
    }

    // y = (x - mean)·scale [·gamma] [+ beta]
    template <bool kGamma, bool kBeta>
    static void normalize_row(const float* x, int64_t C, float mean, float scale, const float* gamma,
                              const float* beta, float* y) {
        const F vm = V::set1(mean), vs = V::set1(scale);
        for (int64_t c = 0; c < C; c += L) {
            const int64_t w = C - c;
            F v = V::mul(V::sub(V::load_tail(x + c, w), vm), vs);
            if constexpr (kGamma) v = V::mul(v, V::load_tail(gamma + c, w));
            if constexpr (kBeta) v = V::add(v, V::load_tail(beta + c, w));
            V::store_tail(y + c, w, v);
        }
    }

    // x:(T,C) -> y:(T,C) = (x - mean) / sqrt(var + eps) * gamma + beta
    static void layer_norm(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps,
                           float* y, ThreadPool* pool) {
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

    // x:(T,C) -> y:(T,C) = x / sqrt(mean(x²) + eps) * gamma
    static void rms_norm(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y,
                         ThreadPool* pool) {
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
};

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END

// The family's kernels for one ISA unit, forwarding to Norm<V>: layer_norm_<isa> and
// rms_norm_<isa> (declared in ops/op_variants_x86.h, ops/norm_neon.h). Expanded in namespace
// glimpse by each ops/norm_<isa>.cpp, so the list is written once for every ISA.
#define GLIMPSE_NORM_KERNELS(isa, V)                                                                                 \
    void layer_norm_##isa(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps,    \
                          float* y, ThreadPool* pool) {                                                               \
        simd::Norm<V>::layer_norm(x, T, C, gamma, beta, eps, y, pool);                                                \
    }                                                                                                                 \
    void rms_norm_##isa(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y,               \
                        ThreadPool* pool) {                                                                           \
        simd::Norm<V>::rms_norm(x, T, C, gamma, eps, y, pool);                                                        \
    }
