// W8A8 / W4A8 matmul with AVX-512 VNNI (vpdpbusd), for Q8_0 and Q4_0 weights.
//
//   x:(M,K) f32 -> q8_0 rows (ggml-cpu x86 rounding, ops/quantize_activations.h)
//   W:(N,K) repacked at load into groups of 16 rows (ops/matmul_quant_x86.h)
//   y:(M,N) = Σ_b fma-in-order( sumi(m,n,b), d_w(n,b)·d_x(m,b) ) + bias
//
// One zmm lane per weight row: for each 4-byte step c of a block, one 64-byte
// load holds 4 weights of each of 16 rows, the 4 activation bytes are
// broadcast, and vpdpbusd adds the 4 products into the row's lane. After a
// block (8 steps) the lane holds that block's integer dot product; it is
// corrected for the unsigned operand (Q8_0: weights stored +128, subtract
// 128·Σq; Q4_0: nibbles 0..15 are used directly, subtract 8·Σq), converted to
// f32 (exact) and accumulated with one FMA against d_w·d_x (exact). Blocks are
// accumulated in order, so every output equals the scalar oracle
// (ops/matmul_q8_scalar.cpp) bit for bit, whatever the tile, M or thread count.
//
// Decode (M = 1) streams the packed weights once at memory bandwidth; prefill
// (M > 1) runs a 6-row × 32-column register tile over all of K per weight
// panel (the 2-group panel stays in L1/L2 while activation rows stream by).
// Work is split over N (groups of 16 rows) with no allocation.
#include <immintrin.h>

#include "ops/matmul.h"
#include "ops/matmul_quant_x86.h"

namespace glimpse {
namespace {

constexpr int R = 16;

template <bool Q4>
inline __m512i load_step(const uint8_t* block, int c) {
    if constexpr (Q4) {
        const __m512i raw = _mm512_load_si512(block + (c & 3) * 64);
        const __m512i lo4 = _mm512_set1_epi8(0x0f);
        return c < 4 ? _mm512_and_si512(raw, lo4) : _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo4);
    } else {
        return _mm512_load_si512(block + c * 64);
    }
}

inline __m512i bcast4(const int8_t* p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

// Rows [m0, m0+MR) × groups [g0, g0+NG): all of K, then bias and a masked store.
template <bool Q4, int MR, int NG>
inline void tile(const uint8_t* packed, int64_t g0, int64_t nb, const Q8Rows& xq, int64_t m0, const MatmulArgs& a) {
    constexpr int64_t QB = Q4 ? 16 * R : 32 * R;
    constexpr int32_t kOffset = Q4 ? 8 : 128;
    const int64_t gb = x86q::group_bytes(Q4, R, a.K);
    const uint8_t* wg[NG];
    for (int g = 0; g < NG; ++g) wg[g] = packed + (g0 + g) * gb;
    const int8_t* xr[MR];
    const float* xd[MR];
    const int32_t* xs[MR];
    for (int m = 0; m < MR; ++m) {
        xr[m] = xq.qs(m0 + m);
        xd[m] = xq.d(m0 + m);
        xs[m] = xq.sum(m0 + m);
    }
    __m512 acc[MR][NG];
    for (int m = 0; m < MR; ++m)
        for (int g = 0; g < NG; ++g) acc[m][g] = _mm512_setzero_ps();

    for (int64_t b = 0; b < nb; ++b) {
        // Start each lane at -offset·Σq: after the 8 steps it holds the signed dot product.
        __m512i s[MR][NG];
        for (int m = 0; m < MR; ++m) {
            const __m512i start = _mm512_set1_epi32(-kOffset * xs[m][b]);
            for (int g = 0; g < NG; ++g) s[m][g] = start;
        }
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
            __m512i w[NG];
            for (int g = 0; g < NG; ++g) w[g] = load_step<Q4>(wg[g] + b * QB, c);
            for (int m = 0; m < MR; ++m) {
                const __m512i xv = bcast4(xr[m] + b * 32 + 4 * c);
                for (int g = 0; g < NG; ++g) s[m][g] = _mm512_dpbusd_epi32(s[m][g], w[g], xv);
            }
        }
        __m512 dw[NG];
        for (int g = 0; g < NG; ++g)
            dw[g] = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(wg[g] + nb * QB + b * 2 * R)));
        for (int m = 0; m < MR; ++m) {
            const __m512 dx = _mm512_set1_ps(xd[m][b]);
            for (int g = 0; g < NG; ++g) {
                const __m512 si = _mm512_cvtepi32_ps(s[m][g]);
                acc[m][g] = _mm512_fmadd_ps(si, _mm512_mul_ps(dw[g], dx), acc[m][g]);
            }
        }
    }
    for (int g = 0; g < NG; ++g) {
        const int64_t n0 = (g0 + g) * R;
        const int64_t valid = a.N - n0 < R ? a.N - n0 : R;
        const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
        const __m512 bias = a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + n0) : _mm512_setzero_ps();
        for (int m = 0; m < MR; ++m) {
            // acc + bias, the same single rounding as the oracle's acc + bias[n]
            _mm512_mask_storeu_ps(a.y + (m0 + m) * a.ldy + n0, mask, a.bias ? _mm512_add_ps(acc[m][g], bias) : acc[m][g]);
        }
    }
}

template <bool Q4, int NG>
inline void rows_tail(const uint8_t* packed, int64_t g0, int64_t nb, const Q8Rows& xq, int64_t m0, int64_t mr,
                      const MatmulArgs& a) {
    switch (mr) {
        case 1: tile<Q4, 1, NG>(packed, g0, nb, xq, m0, a); break;
        case 2: tile<Q4, 2, NG>(packed, g0, nb, xq, m0, a); break;
        case 3: tile<Q4, 3, NG>(packed, g0, nb, xq, m0, a); break;
        case 4: tile<Q4, 4, NG>(packed, g0, nb, xq, m0, a); break;
        case 5: tile<Q4, 5, NG>(packed, g0, nb, xq, m0, a); break;
        default: break;
    }
}

// Groups [g0, g1) against all M rows of xq.
template <bool Q4>
void multiply_groups(const uint8_t* packed, int64_t g0, int64_t g1, const Q8Rows& xq, const MatmulArgs& a) {
    constexpr int MR = 6;
    const int64_t nb = a.K / 32;
    int64_t g = g0;
    for (; g + 2 <= g1; g += 2) {
        int64_t m = 0;
        for (; m + MR <= a.M; m += MR) tile<Q4, MR, 2>(packed, g, nb, xq, m, a);
        if (m < a.M) rows_tail<Q4, 2>(packed, g, nb, xq, m, a.M - m, a);
    }
    if (g < g1) {
        int64_t m = 0;
        for (; m + MR <= a.M; m += MR) tile<Q4, MR, 1>(packed, g, nb, xq, m, a);
        if (m < a.M) rows_tail<Q4, 1>(packed, g, nb, xq, m, a.M - m, a);
    }
}

template <bool Q4>
void run_q(const MatmulArgs& a, ThreadPool* pool) {
    const uint8_t* packed = static_cast<const uint8_t*>(a.packed);
    const int64_t G = x86q::groups(a.N, R);
    const int threads = pool ? pool->n_threads() : 1;
    if (a.M <= x86q::kSmallM || threads == 1) {
        // Decode: every thread quantizes the few rows itself (no barrier).
        auto body = [&](int64_t g0, int64_t g1, int t) {
            const Q8Rows xq = a.M <= x86q::kSmallM ? x86q::thread_rows(a.scratch, a.M, a.K, t)
                                                   : x86q::shared_rows(a.scratch, a.K);
            quantize_rows_q8_0_avx512(a.x, a.ldx, 0, a.M, xq);
            multiply_groups<Q4>(packed, g0, g1, xq, a);
        };
        if (pool) pool->parallel_for_grain(G, 2, body);
        else body(0, G, 0);
        return;
    }
    const Q8Rows xq = x86q::shared_rows(a.scratch, a.K);
    pool->parallel_for(a.M, [&](int64_t m0, int64_t m1, int) { quantize_rows_q8_0_avx512(a.x, a.ldx, m0, m1, xq); });
    pool->parallel_for_grain(G, 2, [&](int64_t g0, int64_t g1, int) { multiply_groups<Q4>(packed, g0, g1, xq, a); });
}

bool supports_q(int64_t, int64_t K, int64_t) { return K % 32 == 0; }
int64_t packed_bytes_q8(int64_t N, int64_t K) { return x86q::packed_bytes(false, R, N, K); }
int64_t packed_bytes_q4(int64_t N, int64_t K) { return x86q::packed_bytes(true, R, N, K); }
void pack_q8(const void* w, int64_t N, int64_t K, void* out) { x86q::pack_q8_0(w, N, K, R, 128, out); }
void pack_q4(const void* w, int64_t N, int64_t K, void* out) { x86q::pack_q4_0(w, N, K, R, out); }
int64_t scratch_q(int64_t M_max, int64_t K, int64_t, int n_threads) { return x86q::scratch_bytes(M_max, K, n_threads); }

}  // namespace

extern const MatmulKernel q8_0_q8_0__avx512vnni = {
    .name = "q8_0_q8_0__avx512vnni", .isa = Isa::avx512, .w_type = DType::q8_0,
    .priority = KernelPriority::simd_wide, .activations = MatmulActivations::q8_0, .supports = supports_q,
    .packed_bytes = packed_bytes_q8, .pack = pack_q8, .scratch_bytes = scratch_q, .run = run_q<false>};
extern const MatmulKernel q4_0_q8_0__avx512vnni = {
    .name = "q4_0_q8_0__avx512vnni", .isa = Isa::avx512, .w_type = DType::q4_0,
    .priority = KernelPriority::simd_wide, .activations = MatmulActivations::q8_0, .supports = supports_q,
    .packed_bytes = packed_bytes_q4, .pack = pack_q4, .scratch_bytes = scratch_q, .run = run_q<true>};

}  // namespace glimpse
