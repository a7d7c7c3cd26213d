// VecAvx2: the vector-traits layer (docs/conventions.md, "SIMD kernels") on 8 f32 lanes
// of a ymm register, AVX2 + FMA + F16C. Include only from *_avx2.cpp translation units
// (compiled with the AVX2 flags of cmake/GlimpseIsa.cmake). Same members and contracts
// as VecAvx512 (ops/simd/vec_avx512.h); AVX2 has no mask registers, so Mask is a lane
// vector of all-ones / all-zeros and the tails use vmaskmov.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace glimpse::simd {

struct VecAvx2 {
    using F = __m256;
    using D = __m256d;
    using Mask = __m256;
    static constexpr int kLanes = 8;

    static F zero() { return _mm256_setzero_ps(); }
    static F set1(float v) { return _mm256_set1_ps(v); }
    static F broadcast(const float* p) { return _mm256_broadcast_ss(p); }
    static F load(const float* p) { return _mm256_load_ps(p); }
    static F loadu(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, F v) { _mm256_store_ps(p, v); }
    static void storeu(float* p, F v) { _mm256_storeu_ps(p, v); }

    static __m256i lane_mask_i(int64_t n) {
        const int m = static_cast<int>(n < 0 ? 0 : n > 8 ? 8 : n);
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    // lanes [0, n) with n clamped to [0, kLanes]
    static Mask first_lanes(int64_t n) { return _mm256_castsi256_ps(lane_mask_i(n)); }
    static F load_tail(const float* p, int64_t n) {
        return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lane_mask_i(n));
    }
    static void store_tail(float* p, int64_t n, F v) {
        if (n >= 8) _mm256_storeu_ps(p, v);
        else _mm256_maskstore_ps(p, lane_mask_i(n), v);
    }
    static F load_masked(const float* p, Mask m) { return _mm256_maskload_ps(p, _mm256_castps_si256(m)); }
    static void store_masked(float* p, Mask m, F v) { _mm256_maskstore_ps(p, _mm256_castps_si256(m), v); }

    // f16 / bf16 bits -> f32
    static F load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
    static F load_f16_aligned(const uint16_t* p) {
        return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
    }
    static F load_f16_tail(const uint16_t* p, int64_t n) {
        if (n >= 8) return load_f16(p);
        alignas(16) uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t i = 0; i < n; ++i) tmp[i] = p[i];
        return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
    }
    static F load_bf16_aligned(const uint16_t* p) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }

    // table[f16 bits of x] (x rounded to f16 to nearest even, then a gather)
    static F lookup_f16(const float* table, F x) {
        const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        return _mm256_i32gather_ps(table, _mm256_cvtepu16_epi32(h), 4);
    }

    static F add(F a, F b) { return _mm256_add_ps(a, b); }
    static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    static F div(F a, F b) { return _mm256_div_ps(a, b); }
    static F min(F a, F b) { return _mm256_min_ps(a, b); }
    static F max(F a, F b) { return _mm256_max_ps(a, b); }
    static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
    static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
    static F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
    static F round_nearest(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    // p · 2^n for integral n in [-127, 128], as p · 2^n1 · 2^n2 with n1 = n/2, n2 = n − n1
    // (both normal powers of two: 2^128 alone is not a float, exp(88.5) = 2^127.7 is)
    static F mul_pow2(F p, F n) {
        const __m256i ni = _mm256_cvtps_epi32(n);
        const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
        const __m256i bias = _mm256_set1_epi32(127);
        const __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
        const __m256 e2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
        return _mm256_mul_ps(_mm256_mul_ps(p, e1), e2);
    }
    // (x1, x0, x3, x2, ...)
    static F swap_pairs(F a) { return _mm256_permute_ps(a, 0xb1); }

    static Mask ge(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
    static Mask gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
    static Mask le(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
    static F select(Mask m, F yes, F no) { return _mm256_blendv_ps(no, yes, m); }
    static F zero_unless(Mask m, F v) { return _mm256_and_ps(v, m); }

    static float reduce_add(F v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    static float reduce_max(F v) {
        __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        s = _mm_max_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    // a[0..8) -> lane i = Σ over the lanes of a[i] (horizontal adds, then the two halves)
    static F reduce_lanes(const F* a) {
        const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
        const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
        const __m256 lo = _mm256_hadd_ps(h01, h23), hi = _mm256_hadd_ps(h45, h67);  // per 128-bit lane: rows 0-3 | 4-7
        return _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
    }

    // int32 lanes (activation quantization)
    using I = __m256i;
    // round to nearest even, then exact conversion (the values are integers in int32 range)
    static I round_to_i32(F a) { return _mm256_cvtps_epi32(round_nearest(a)); }
    static I add_i(I a, I b) { return _mm256_add_epi32(a, b); }
    static int32_t reduce_add_i(I v) {
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        return _mm_cvtsi128_si32(s4);
    }
    // 32 int32 in 32 / kLanes vectors -> 32 int8 (saturating packs; they work per 128-bit
    // lane, so the order is fixed with one permute)
    static void store_32_as_i8(int8_t* q, const I* v) {
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p);
    }

    // u32 lanes (top-k keys, ops/simd/topk.h); MaskU is a lane vector of all-ones / all-zeros
    using U = __m256i;
    using MaskU = __m256i;
    static MaskU first_lanes_u(int64_t n) { return lane_mask_i(n); }
    static U set1_u(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }
    static U float_bits_tail(const float* p, int64_t n) { return _mm256_castps_si256(load_tail(p, n)); }
    static U load_u_tail(const uint32_t* p, int64_t n) {
        const int* q = reinterpret_cast<const int*>(p);
        return n >= 8 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)) : _mm256_maskload_epi32(q, lane_mask_i(n));
    }
    static void store_u_tail(uint32_t* p, int64_t n, U v) {
        if (n >= 8) _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
        else _mm256_maskstore_epi32(reinterpret_cast<int*>(p), lane_mask_i(n), v);
    }
    static U and_u(U a, U b) { return _mm256_and_si256(a, b); }
    static U or_u(U a, U b) { return _mm256_or_si256(a, b); }
    static U xor_u(U a, U b) { return _mm256_xor_si256(a, b); }
    static U sign_fill(U a) { return _mm256_srai_epi32(a, 31); }  // each lane: its sign bit 32 times
    static MaskU eq_u(U a, U b) { return _mm256_cmpeq_epi32(a, b); }
    // unsigned a > b: AVX2 compares signed only, so both are offset by 2^31 first
    static MaskU gt_u(U a, U b) {
        const __m256i bias = _mm256_set1_epi32(static_cast<int>(0x80000000u));
        return _mm256_cmpgt_epi32(_mm256_xor_si256(a, bias), _mm256_xor_si256(b, bias));
    }
    static MaskU and_mask(MaskU a, MaskU b) { return _mm256_and_si256(a, b); }
    static U zero_where(MaskU m, U v) { return _mm256_andnot_si256(m, v); }
    static unsigned mask_bits(MaskU m) { return static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(m))); }

    // f32 <-> f16 bits of one scalar (round to nearest even), for block scales
    static uint16_t f16_bits(float x) { return static_cast<uint16_t>(_cvtss_sh(x, 0)); }
    static float from_f16_bits(uint16_t h) { return _cvtsh_ss(h); }

    // f64 lanes (statistics of the norms)
    static D zero_d() { return _mm256_setzero_pd(); }
    static D lo_to_d(F v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
    static D hi_to_d(F v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
    static D add_d(D a, D b) { return _mm256_add_pd(a, b); }
    static D fmadd_d(D a, D b, D c) { return _mm256_fmadd_pd(a, b, c); }
    static double reduce_add_d(D v) {
        __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    }
};

}  // namespace glimpse::simd
