// VecAvx512: the vector-traits layer (ops/simd/README in docs/conventions.md, "SIMD
// kernels") on 16 f32 lanes of a zmm register. Include only from *_avx512.cpp / *_amx.cpp
// translation units (compiled with the AVX-512 flags of cmake/GlimpseIsa.cmake).
//
// Every member is a thin inline wrapper over one intrinsic (or a short fixed sequence),
// so an algorithm written against the traits compiles to the code the intrinsics would
// give; the names are the ones the width-generic algorithms in ops/simd/*.h use:
//   F      f32 vector          D      f64 vector (half the lanes)     Mask  lane predicate
//   load/store aligned, loadu/storeu unaligned, *_tail(p, n): the first min(n, kLanes)
//   lanes (the rest read as 0, left unwritten); fmadd(a, b, c) = a·b + c, fnmadd = c − a·b.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace glimpse::simd {

struct VecAvx512 {
    using F = __m512;
    using D = __m512d;
    using Mask = __mmask16;
    static constexpr int kLanes = 16;

    static F zero() { return _mm512_setzero_ps(); }
    static F set1(float v) { return _mm512_set1_ps(v); }
    static F broadcast(const float* p) { return _mm512_set1_ps(*p); }
    static F load(const float* p) { return _mm512_load_ps(p); }
    static F loadu(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, F v) { _mm512_store_ps(p, v); }
    static void storeu(float* p, F v) { _mm512_storeu_ps(p, v); }

    // lanes [0, n) with n clamped to [0, kLanes]
    static Mask first_lanes(int64_t n) {
        return n >= 16 ? Mask(0xffff) : n <= 0 ? Mask(0) : Mask((1u << n) - 1u);
    }
    static F load_tail(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(first_lanes(n), p); }
    static void store_tail(float* p, int64_t n, F v) { _mm512_mask_storeu_ps(p, first_lanes(n), v); }
    static F load_masked(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
    static void store_masked(float* p, Mask m, F v) { _mm512_mask_storeu_ps(p, m, v); }

    // f16 / bf16 bits -> f32
    static F load_f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
    static F load_f16_aligned(const uint16_t* p) {
        return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p)));
    }
    static F load_f16_tail(const uint16_t* p, int64_t n) {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first_lanes(n), p));
    }
    static F load_bf16_aligned(const uint16_t* p) {
        const __m512i w = _mm512_cvtepu16_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(p)));
        return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
    }

    // table[f16 bits of x] (x rounded to f16 to nearest even, then a gather)
    static F lookup_f16(const float* table, F x) {
        const __m256i h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        return _mm512_i32gather_ps(_mm512_cvtepu16_epi32(h), table, 4);
    }

    static F add(F a, F b) { return _mm512_add_ps(a, b); }
    static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F div(F a, F b) { return _mm512_div_ps(a, b); }
    static F min(F a, F b) { return _mm512_min_ps(a, b); }
    static F max(F a, F b) { return _mm512_max_ps(a, b); }
    static F abs(F a) { return _mm512_abs_ps(a); }
    static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
    static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
    static F round_nearest(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    // p · 2^n for integral n in [-127, 128] (vscalefps: exact, no exponent-field overflow)
    static F mul_pow2(F p, F n) { return _mm512_scalef_ps(p, n); }
    // (x1, x0, x3, x2, ...)
    static F swap_pairs(F a) { return _mm512_permute_ps(a, 0xb1); }

    static Mask ge(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
    static Mask gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
    static Mask le(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
    static F select(Mask m, F yes, F no) { return _mm512_mask_mov_ps(no, m, yes); }
    static F zero_unless(Mask m, F v) { return _mm512_maskz_mov_ps(m, v); }

    static float reduce_add(F v) { return _mm512_reduce_add_ps(v); }
    static float reduce_max(F v) { return _mm512_reduce_max_ps(v); }
    // a[0..16) -> lane i = Σ over the lanes of a[i] (a shuffle tree, 15 adds)
    static F reduce_lanes(const F* a) {
        __m512 l1[8];
        for (int i = 0; i < 8; ++i) {
            // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] of a = a[2i], b = a[2i+1]
            l1[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
        }
        __m512 l2[4];
        for (int i = 0; i < 4; ++i) {
            // per 128-bit lane: the 4 rows 4i..4i+3, each summed over that lane's 4 elements
            const __m512d x = _mm512_castps_pd(l1[2 * i]), y = _mm512_castps_pd(l1[2 * i + 1]);
            l2[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
        }
        // combine the four 128-bit lanes: [r0-3 | r4-7 | r8-11 | r12-15]
        const __m512 w0 = _mm512_add_ps(_mm512_shuffle_f32x4(l2[0], l2[1], 0x88), _mm512_shuffle_f32x4(l2[0], l2[1], 0xdd));
        const __m512 w1 = _mm512_add_ps(_mm512_shuffle_f32x4(l2[2], l2[3], 0x88), _mm512_shuffle_f32x4(l2[2], l2[3], 0xdd));
        return _mm512_add_ps(_mm512_shuffle_f32x4(w0, w1, 0x88), _mm512_shuffle_f32x4(w0, w1, 0xdd));
    }

    // int32 lanes (activation quantization)
    using I = __m512i;
    // round to nearest even, then exact conversion (the values are integers in int32 range)
    static I round_to_i32(F a) { return _mm512_cvt_roundps_epi32(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    static I add_i(I a, I b) { return _mm512_add_epi32(a, b); }
    static int32_t reduce_add_i(I v) { return _mm512_reduce_add_epi32(v); }
    // 32 int32 in 32 / kLanes vectors -> 32 int8 (saturating), in order
    static void store_32_as_i8(int8_t* q, const I* v) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtsepi32_epi8(v[0]));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtsepi32_epi8(v[1]));
    }

    // u32 lanes (top-k keys, ops/simd/topk.h); MaskU is a lane predicate
    using U = __m512i;
    using MaskU = __mmask16;
    static MaskU first_lanes_u(int64_t n) { return first_lanes(n); }
    static U set1_u(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
    static U float_bits_tail(const float* p, int64_t n) { return _mm512_castps_si512(load_tail(p, n)); }
    static U load_u_tail(const uint32_t* p, int64_t n) { return _mm512_maskz_loadu_epi32(first_lanes(n), p); }
    static void store_u_tail(uint32_t* p, int64_t n, U v) { _mm512_mask_storeu_epi32(p, first_lanes(n), v); }
    static U and_u(U a, U b) { return _mm512_and_si512(a, b); }
    static U or_u(U a, U b) { return _mm512_or_si512(a, b); }
    static U xor_u(U a, U b) { return _mm512_xor_si512(a, b); }
    static U sign_fill(U a) { return _mm512_srai_epi32(a, 31); }  // each lane: its sign bit 32 times
    static U top_byte(U a) { return _mm512_srli_epi32(a, 24); }
    static MaskU eq_u(U a, U b) { return _mm512_cmpeq_epi32_mask(a, b); }
    static MaskU gt_u(U a, U b) { return _mm512_cmpgt_epu32_mask(a, b); }  // unsigned
    static MaskU and_mask(MaskU a, MaskU b) { return a & b; }
    static U zero_where(MaskU m, U v) { return _mm512_maskz_mov_epi32(static_cast<MaskU>(~m), v); }
    static unsigned mask_bits(MaskU m) { return m; }  // bit i = lane i
    static MaskU mask_from_bits(unsigned bits) { return static_cast<MaskU>(bits); }
    static U iota_u(uint32_t base) {  // base + lane index
        return _mm512_add_epi32(set1_u(base), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    }
    // the lanes of m, packed in lane order at out; returns how many
    static int64_t compress_store_u(uint32_t* out, MaskU m, U v) {
        _mm512_mask_compressstoreu_epi32(out, m, v);
        return __builtin_popcount(m);
    }

    // f32 <-> f16 bits of one scalar (round to nearest even), for block scales
    static uint16_t f16_bits(float x) { return static_cast<uint16_t>(_cvtss_sh(x, 0)); }
    static float from_f16_bits(uint16_t h) { return _cvtsh_ss(h); }

    // f64 lanes (statistics of the norms)
    static D zero_d() { return _mm512_setzero_pd(); }
    static D lo_to_d(F v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
    static D hi_to_d(F v) { return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))); }
    static D add_d(D a, D b) { return _mm512_add_pd(a, b); }
    static D fmadd_d(D a, D b, D c) { return _mm512_fmadd_pd(a, b, c); }
    static double reduce_add_d(D v) { return _mm512_reduce_add_pd(v); }
};

}  // namespace glimpse::simd
