#include "ops/attention_neon.h"

#include <arm_neon.h>

#include <algorithm>
#include <cmath>

namespace glimpse {
namespace {

// exp(x) on 4 lanes. x = n·ln2 + r with n = round(x·log2 e) and |r| <= ln2/2 (ln2
// split in two so n·ln2 is exact), exp(r) by the degree-7 Taylor-like minimax
// polynomial of Cephes' expf, 2^n built in exponent fields. Lanes below -87.3
// (the result would be subnormal) give 0, lanes above 88.72 (past FLT_MAX) +inf.
inline float32x4_t exp4(float32x4_t x) {
    const float32x4_t hi = vdupq_n_f32(88.7f), lo = vdupq_n_f32(-87.3f);
    const uint32x4_t under = vcltq_f32(x, lo), over = vcgtq_f32(x, vdupq_n_f32(88.72f));
    x = vminq_f32(vmaxq_f32(x, lo), hi);
    const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    // 2^n for n in [-126, 128] as 2^n1 · 2^n2 with n1 = n/2, n2 = n - n1 (both normal:
    // 2^128 alone is not a float, yet exp(88.5) = 2^127.7 is)
    const int32x4_t ni = vcvtq_s32_f32(n);
    const int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    const int32x4_t bias = vdupq_n_s32(127);
    const float32x4_t e1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    const float32x4_t e2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    float32x4_t y = vmulq_f32(vmulq_f32(p, e1), e2);
    y = vbslq_f32(over, vdupq_n_f32(INFINITY), y);
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), under));
}

template <bool kF16>
inline float32x4_t load4(const void* base, int64_t index) {
    if constexpr (kF16) {
        return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(static_cast<const uint16_t*>(base) + index)));
    } else {
        return vld1q_f32(static_cast<const float*>(base) + index);
    }
}

template <bool kF16>
inline float load1(const void* base, int64_t index) {
    if constexpr (kF16) {
        return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vld1_dup_u16(static_cast<const uint16_t*>(base) + index))), 0);
    } else {
        return static_cast<const float*>(base)[index];
    }
}

// q:(D) · k[index .. index+D)
template <bool kF16>
inline float dot(const float* q, const void* k, int64_t index, int64_t D) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int64_t d = 0;
    for (; d + 16 <= D; d += 16) {
        a0 = vfmaq_f32(a0, vld1q_f32(q + d), load4<kF16>(k, index + d));
        a1 = vfmaq_f32(a1, vld1q_f32(q + d + 4), load4<kF16>(k, index + d + 4));
        a2 = vfmaq_f32(a2, vld1q_f32(q + d + 8), load4<kF16>(k, index + d + 8));
        a3 = vfmaq_f32(a3, vld1q_f32(q + d + 12), load4<kF16>(k, index + d + 12));
    }
    for (; d + 4 <= D; d += 4) a0 = vfmaq_f32(a0, vld1q_f32(q + d), load4<kF16>(k, index + d));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; d < D; ++d) s += q[d] * load1<kF16>(k, index + d);
    return s;
}

// out[0..D) = Σ_s p[s] · v[s·ld + base ..]; 16 columns of out stay in registers over all s.
template <bool kF16>
void weighted_sum(const float* p, int64_t n, const void* v, int64_t ld, int64_t base, int64_t D, float* out) {
    int64_t d = 0;
    for (; d + 16 <= D; d += 16) {
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t s = 0; s < n; ++s) {
            const int64_t i = s * ld + base + d;
            a0 = vfmaq_n_f32(a0, load4<kF16>(v, i), p[s]);
            a1 = vfmaq_n_f32(a1, load4<kF16>(v, i + 4), p[s]);
            a2 = vfmaq_n_f32(a2, load4<kF16>(v, i + 8), p[s]);
            a3 = vfmaq_n_f32(a3, load4<kF16>(v, i + 12), p[s]);
        }
        vst1q_f32(out + d, a0);
        vst1q_f32(out + d + 4, a1);
        vst1q_f32(out + d + 8, a2);
        vst1q_f32(out + d + 12, a3);
    }
    for (; d + 4 <= D; d += 4) {
        float32x4_t a0 = vdupq_n_f32(0.0f);
        for (int64_t s = 0; s < n; ++s) a0 = vfmaq_n_f32(a0, load4<kF16>(v, s * ld + base + d), p[s]);
        vst1q_f32(out + d, a0);
    }
    for (; d < D; ++d) {
        float acc = 0.0f;
        for (int64_t s = 0; s < n; ++s) acc += p[s] * load1<kF16>(v, s * ld + base + d);
        out[d] = acc;
    }
}

template <bool kF16>
void attend(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    const int64_t group = a.n_head / a.n_head_kv;
    const int64_t D = a.head_dim;
    auto body = [&](int64_t i0, int64_t i1, int thread) {
        float* scores = scratch + thread * attention_scratch_floats(a.S);
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t t = i / a.n_head, h = i % a.n_head, hk = h / group;
            const int64_t n_keys = a.causal ? std::min<int64_t>(a.S, a.causal_offset + t + 1) : a.S;
            const float* qr = a.q + t * a.q_ld + h * D;
            float* orow = a.out + t * a.out_ld + h * D;
            if (n_keys <= 0) {
                std::fill(orow, orow + D, 0.0f);
                continue;
            }
            for (int64_t s = 0; s < n_keys; ++s) scores[s] = dot<kF16>(qr, a.k, s * a.kv_ld + hk * D, D) * a.scale;
            softmax_row_neon(scores, n_keys);
            weighted_sum<kF16>(scores, n_keys, a.v, a.kv_ld, hk * D, D, orow);
        }
    };
    if (pool) pool->parallel_for(a.T * a.n_head, body);
    else body(0, a.T * a.n_head, 0);
}

}  // namespace

void exp_neon(const float* x, int64_t n, float* y) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, exp4(vld1q_f32(x + i)));
    if (i < n) {
        float tmp[4] = {0, 0, 0, 0};
        for (int64_t j = i; j < n; ++j) tmp[j - i] = x[j];
        vst1q_f32(tmp, exp4(vld1q_f32(tmp)));
        for (int64_t j = i; j < n; ++j) y[j] = tmp[j - i];
    }
}

void softmax_row_neon(float* x, int64_t n) {
    if (n <= 0) return;
    float32x4_t vmax = vdupq_n_f32(-INFINITY);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vmax = vmaxq_f32(vmax, vld1q_f32(x + i));
    float max = vmaxvq_f32(vmax);
    for (; i < n; ++i) max = std::max(max, x[i]);
    // exp(x - max), summed in 4 f32 lanes
    float32x4_t vsum = vdupq_n_f32(0.0f);
    const float32x4_t vm = vdupq_n_f32(max);
    for (i = 0; i + 4 <= n; i += 4) {
        const float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), vm));
        vst1q_f32(x + i, e);
        vsum = vaddq_f32(vsum, e);
    }
    float sum = vaddvq_f32(vsum);
    if (i < n) {
        for (int64_t j = i; j < n; ++j) x[j] -= max;
        exp_neon(x + i, n - i, x + i);
        for (int64_t j = i; j < n; ++j) sum += x[j];
    }
    const float inv = 1.0f / sum;
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
    for (; i < n; ++i) x[i] *= inv;
}

void attention_neon(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    // The pruning tap (column means of the probabilities) is an encoder-side, once-per-image
    // signal: it keeps the reference's exact accumulation.
    if (a.col_mean) return attention_ref(a, scratch, pool);
    if (a.kv_type == DType::f16) attend<true>(a, scratch, pool);
    else attend<false>(a, scratch, pool);
}

}  // namespace glimpse
