// exp on the f32 lanes of any vector-traits type V (ops/simd/vec_*.h), for the
// attention softmax, SiLU and GELU of every ISA:
//   x = n·ln2 + r, n = round(x·log2 e), |r| <= ln2/2 (ln2 split in two so n·ln2 is
//   exact), exp(r) by Cephes' expf polynomial, 2^n applied by V::mul_pow2.
// Relative error within 2^-22 of the exact value; lanes below -87.3 (and NaN) give 0,
// lanes above 88.72 give +inf. Include only from an ISA translation unit, after its
// vec_<isa>.h.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/simd/exact_fp.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse::simd {
namespace {

template <class V>
inline typename V::F vexp(typename V::F x) {
    using F = typename V::F;
    const auto keep = V::ge(x, V::set1(-87.3f));
    const auto over = V::gt(x, V::set1(88.72f));
    x = V::min(V::max(x, V::set1(-87.3f)), V::set1(88.72f));
    const F n = V::round_nearest(V::mul(x, V::set1(1.44269504088896341f)));
    F r = V::fnmadd(n, V::set1(0.693359375f), x);
    r = V::fnmadd(n, V::set1(-2.12194440e-4f), r);
    F p = V::set1(1.9875691500e-4f);
    p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
    p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
    p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
    p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
    p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
    p = V::fmadd(p, V::mul(r, r), V::add(r, V::set1(1.0f)));
    const F y = V::select(over, V::set1(INFINITY), V::mul_pow2(p, n));
    return V::zero_unless(keep, y);
}

// y[i] = exp(x[i]) for i < n (y may alias x)
template <class V>
inline void exp_array(const float* x, int64_t n, float* y) {
    int64_t i = 0;
    for (; i + V::kLanes <= n; i += V::kLanes) V::storeu(y + i, vexp<V>(V::loadu(x + i)));
    if (i < n) V::store_tail(y + i, n - i, vexp<V>(V::load_tail(x + i, n - i)));
}

// The largest of x[0..n) (-inf for n = 0): the softmax shift of the attention kernels.
template <class V>
inline float max_of(const float* x, int64_t n) {
    typename V::F vmax = V::set1(-INFINITY);
    int64_t i = 0;
    for (; i + V::kLanes <= n; i += V::kLanes) vmax = V::max(vmax, V::loadu(x + i));
    if (i < n) vmax = V::max(vmax, V::select(V::first_lanes(n - i), V::load_tail(x + i, n - i), vmax));
    return V::reduce_max(vmax);
}

// In place: x[i] = exp(x[i] - max) for i < n; returns their sum (lane sums, then V::reduce_add).
template <class V>
inline float exp_shifted(float* x, int64_t n, float max) {
    using F = typename V::F;
    const F vm = V::set1(max);
    F vsum = V::zero();
    int64_t i = 0;
    for (; i + V::kLanes <= n; i += V::kLanes) {
        const F e = vexp<V>(V::sub(V::loadu(x + i), vm));
        V::storeu(x + i, e);
        vsum = V::add(vsum, e);
    }
    if (i < n) {
        const F e = V::zero_unless(V::first_lanes(n - i), vexp<V>(V::sub(V::load_tail(x + i, n - i), vm)));
        V::store_tail(x + i, n - i, e);
        vsum = V::add(vsum, e);
    }
    return V::reduce_add(vsum);
}

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END
