// VecNeon: the vector-traits layer (docs/conventions.md, "SIMD kernels") on 4 f32 lanes
// of a 128-bit NEON register (aarch64 baseline, any core). Same members and contracts
// as VecAvx512 (ops/simd/vec_avx512.h). NEON has no masked loads or stores: Mask is a
// lane vector of all-ones / all-zeros and the tails go through a small stack buffer.
#pragma once

#include <arm_neon.h>

#include <cstdint>

namespace glimpse::simd {

struct VecNeon {
    using F = float32x4_t;
    using D = float64x2_t;
    using Mask = uint32x4_t;
    static constexpr int kLanes = 4;

    static F zero() { return vdupq_n_f32(0.0f); }
    static F set1(float v) { return vdupq_n_f32(v); }
    static F broadcast(const float* p) { return vld1q_dup_f32(p); }
    static F load(const float* p) { return vld1q_f32(p); }
    static F loadu(const float* p) { return vld1q_f32(p); }
    static void store(float* p, F v) { vst1q_f32(p, v); }
    static void storeu(float* p, F v) { vst1q_f32(p, v); }

    // lanes [0, n) with n clamped to [0, kLanes]
    static Mask first_lanes(int64_t n) {
        const uint32_t m = static_cast<uint32_t>(n < 0 ? 0 : n > 4 ? 4 : n);
        const uint32_t lanes[4] = {0, 1, 2, 3};
        return vcltq_u32(vld1q_u32(lanes), vdupq_n_u32(m));
    }
    // The first min(n, 4) elements of p through a zeroed 4-element stack buffer.
    template <class T, class Load>
    static auto load_first(const T* p, int64_t n, Load load) {
        if (n >= 4) return load(p);
        T tmp[4] = {};
        for (int64_t i = 0; i < n; ++i) tmp[i] = p[i];
        return load(tmp);
    }
    template <class T, class Vec, class Store>
    static void store_first(T* p, int64_t n, Vec v, Store store) {
        if (n >= 4) return store(p, v);
        T tmp[4];
        store(tmp, v);
        for (int64_t i = 0; i < n; ++i) p[i] = tmp[i];
    }
    static F load_tail(const float* p, int64_t n) { return load_first(p, n, [](const float* q) { return vld1q_f32(q); }); }
    static void store_tail(float* p, int64_t n, F v) { store_first(p, n, v, [](float* q, F w) { vst1q_f32(q, w); }); }

    // f16 bits -> f32
    static F load_f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
    static F load_f16_aligned(const uint16_t* p) { return load_f16(p); }
    static F load_f16_tail(const uint16_t* p, int64_t n) { return load_first(p, n, load_f16); }
    // table[f16 bits of x] (x rounded to f16 to nearest even by FCVTN, then 4 lane loads:
    // NEON has no gather)
    static F lookup_f16(const float* table, F x) {
        const uint16x4_t h = vreinterpret_u16_f16(vcvt_f16_f32(x));
        F y = vld1q_dup_f32(table + vget_lane_u16(h, 0));
        y = vld1q_lane_f32(table + vget_lane_u16(h, 1), y, 1);
        y = vld1q_lane_f32(table + vget_lane_u16(h, 2), y, 2);
        return vld1q_lane_f32(table + vget_lane_u16(h, 3), y, 3);
    }

    static F add(F a, F b) { return vaddq_f32(a, b); }
    static F sub(F a, F b) { return vsubq_f32(a, b); }
    static F mul(F a, F b) { return vmulq_f32(a, b); }
    static F div(F a, F b) { return vdivq_f32(a, b); }
    static F min(F a, F b) { return vminq_f32(a, b); }
    static F max(F a, F b) { return vmaxq_f32(a, b); }
    static F abs(F a) { return vabsq_f32(a); }
    static F fmadd(F a, F b, F c) { return vfmaq_f32(c, a, b); }
    static F fnmadd(F a, F b, F c) { return vfmsq_f32(c, a, b); }
    static F round_nearest(F a) { return vrndnq_f32(a); }
    // p · 2^n for integral n in [-127, 128], as p · 2^n1 · 2^n2 with n1 = n/2, n2 = n − n1
    // (both normal powers of two: 2^128 alone is not a float, exp(88.5) = 2^127.7 is)
    static F mul_pow2(F p, F n) {
        const int32x4_t ni = vcvtq_s32_f32(n);
        const int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
        const int32x4_t bias = vdupq_n_s32(127);
        const float32x4_t e1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
        const float32x4_t e2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
        return vmulq_f32(vmulq_f32(p, e1), e2);
    }
    // (x1, x0, x3, x2)
    static F swap_pairs(F a) { return vrev64q_f32(a); }

    static Mask ge(F a, F b) { return vcgeq_f32(a, b); }
    static Mask gt(F a, F b) { return vcgtq_f32(a, b); }
    static Mask le(F a, F b) { return vcleq_f32(a, b); }
    static F select(Mask m, F yes, F no) { return vbslq_f32(m, yes, no); }
    static F zero_unless(Mask m, F v) { return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), m)); }

    static float reduce_add(F v) { return vaddvq_f32(v); }
    static float reduce_max(F v) { return vmaxvq_f32(v); }
    // a[0..4) -> lane i = Σ over the lanes of a[i] (pairwise adds)
    static F reduce_lanes(const F* a) { return vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3])); }

    // int32 lanes (activation quantization)
    using I = int32x4_t;
    static I round_to_i32(F a) { return vcvtnq_s32_f32(a); }  // to nearest, ties to even
    static I add_i(I a, I b) { return vaddq_s32(a, b); }
    static int32_t reduce_add_i(I v) { return vaddvq_s32(v); }
    // 32 int32 in 8 vectors -> 32 int8 (saturating narrows 32 -> 16 -> 8), in order, and
    // never -128: the q8_0 quants stay within ±127 for every input, which the baseline-NEON
    // W8A8 kernel's int16 pair sums rely on (ops/matmul_q8_neon.cpp). Only a block with
    // 0 < amax < 127·2^-128 reaches -128 (1/d overflows to inf, -inf saturates); its f16
    // scale is 0, so raising that quant to -127 changes no product.
    static void store_32_as_i8(int8_t* q, const I* v) {
        const int8x8_t lowest = vdup_n_s8(-127);
        for (int j = 0; j < 8; j += 2) {
            vst1_s8(q + 4 * j, vmax_s8(vqmovn_s16(vcombine_s16(vqmovn_s32(v[j]), vqmovn_s32(v[j + 1]))), lowest));
        }
    }

    // f32 <-> f16 bits of one scalar (round to nearest even), for block scales
    static uint16_t f16_bits(float x) { return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(x))), 0); }
    static float from_f16_bits(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

    // u32 lanes (top-k keys, ops/simd/topk.h); MaskU is a lane vector of all-ones / all-zeros
    using U = uint32x4_t;
    using MaskU = uint32x4_t;
    static MaskU first_lanes_u(int64_t n) { return first_lanes(n); }
    static U set1_u(uint32_t v) { return vdupq_n_u32(v); }
    static U float_bits_tail(const float* p, int64_t n) { return vreinterpretq_u32_f32(load_tail(p, n)); }
    static U load_u_tail(const uint32_t* p, int64_t n) {
        return load_first(p, n, [](const uint32_t* q) { return vld1q_u32(q); });
    }
    static void store_u_tail(uint32_t* p, int64_t n, U v) {
        store_first(p, n, v, [](uint32_t* q, U w) { vst1q_u32(q, w); });
    }
    static U and_u(U a, U b) { return vandq_u32(a, b); }
    static U or_u(U a, U b) { return vorrq_u32(a, b); }
    static U xor_u(U a, U b) { return veorq_u32(a, b); }
    static U sign_fill(U a) { return vreinterpretq_u32_s32(vshrq_n_s32(vreinterpretq_s32_u32(a), 31)); }
    static MaskU eq_u(U a, U b) { return vceqq_u32(a, b); }
    static MaskU gt_u(U a, U b) { return vcgtq_u32(a, b); }
    static MaskU and_mask(MaskU a, MaskU b) { return vandq_u32(a, b); }
    static U zero_where(MaskU m, U v) { return vbicq_u32(v, m); }
    static unsigned mask_bits(MaskU m) {  // bit i = lane i
        const uint32_t weights[4] = {1, 2, 4, 8};
        return vaddvq_u32(vandq_u32(m, vld1q_u32(weights)));
    }

    // f64 lanes
    static D zero_d() { return vdupq_n_f64(0.0); }
    static D lo_to_d(F v) { return vcvt_f64_f32(vget_low_f32(v)); }
    static D hi_to_d(F v) { return vcvt_high_f64_f32(v); }
    static D add_d(D a, D b) { return vaddq_f64(a, b); }
    static D fmadd_d(D a, D b, D c) { return vfmaq_f64(c, a, b); }
    static double reduce_add_d(D v) { return vaddvq_f64(v); }
};

}  // namespace glimpse::simd
