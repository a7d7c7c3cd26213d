// W8A8 / W4A8 matmul with AVX2 (no VNNI: Haswell .. Zen 3), for Q8_0 and Q4_0 weights.
//
// Same scheme as ops/matmul_quant_avx512.cpp with ymm: weights repacked into
// groups of 8 rows (ops/matmul_quant_x86.h, R = 8), one ymm lane per row, a
// 4-byte activation broadcast per step. The int8 products use vpmaddubsw
// (unsigned × signed -> saturating int16 pairs) and vpmaddwd with ones:
//  - Q8_0: the sign trick (|w| × sign(q, w)) keeps both operands in range:
//    |pair sum| <= 2·128·127 = 32512 < 32767, so nothing saturates (also for a
//    file's -128). No correction term.
//  - Q4_0: nibbles 0..15 × q: |pair| <= 2·15·127 = 3810, so the 8 steps of a
//    block are summed in int16 (<= 30480) before one vpmaddwd; the nibble
//    offset is removed with 8·Σq.
// Blocks are accumulated in order with one FMA each against d_w·d_x (exact),
// so every output equals the scalar oracle (ops/matmul_q8_scalar.cpp) bit for bit.
#include <immintrin.h>

#include "ops/matmul.h"
#include "ops/matmul_quant_x86.h"

namespace glimpse {
namespace {

constexpr int R = 8;

inline __m256i bcast4(const int8_t* p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

template <bool Q4, int MR, int NG>
inline void tile(const uint8_t* packed, int64_t g0, int64_t nb, const Q8Rows& xq, int64_t m0, const MatmulArgs& a) {
    constexpr int64_t QB = Q4 ? 16 * R : 32 * R;
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
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[MR][NG];
    for (int m = 0; m < MR; ++m)
        for (int g = 0; g < NG; ++g) acc[m][g] = _mm256_setzero_ps();

    for (int64_t b = 0; b < nb; ++b) {
        __m256i s[MR][NG];
        for (int m = 0; m < MR; ++m)
            for (int g = 0; g < NG; ++g) s[m][g] = _mm256_setzero_si256();
        if constexpr (Q4) {
            const __m256i lo4 = _mm256_set1_epi8(0x0f);
            for (int c = 0; c < 4; ++c) {
                __m256i wl[NG], wh[NG];
                for (int g = 0; g < NG; ++g) {
                    const __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(wg[g] + b * QB + c * 32));
                    wl[g] = _mm256_and_si256(raw, lo4);
                    wh[g] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
                }
                for (int m = 0; m < MR; ++m) {
                    const __m256i xl = bcast4(xr[m] + b * 32 + 4 * c), xh = bcast4(xr[m] + b * 32 + 16 + 4 * c);
                    for (int g = 0; g < NG; ++g) {
                        s[m][g] = _mm256_add_epi16(s[m][g], _mm256_maddubs_epi16(wl[g], xl));
                        s[m][g] = _mm256_add_epi16(s[m][g], _mm256_maddubs_epi16(wh[g], xh));
                    }
                }
            }
            for (int m = 0; m < MR; ++m)
                for (int g = 0; g < NG; ++g) s[m][g] = _mm256_madd_epi16(s[m][g], ones);
        } else {
            for (int c = 0; c < 8; ++c) {
                __m256i w[NG], aw[NG];
                for (int g = 0; g < NG; ++g) {
                    w[g] = _mm256_load_si256(reinterpret_cast<const __m256i*>(wg[g] + b * QB + c * 32));
                    aw[g] = _mm256_sign_epi8(w[g], w[g]);
                }
                for (int m = 0; m < MR; ++m) {
                    const __m256i xv = bcast4(xr[m] + b * 32 + 4 * c);
                    for (int g = 0; g < NG; ++g) {
                        const __m256i p = _mm256_maddubs_epi16(aw[g], _mm256_sign_epi8(xv, w[g]));
                        s[m][g] = _mm256_add_epi32(s[m][g], _mm256_madd_epi16(p, ones));
                    }
                }
            }
        }
        __m256 dw[NG];
        for (int g = 0; g < NG; ++g)
            dw[g] = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(wg[g] + nb * QB + b * 2 * R)));
        for (int m = 0; m < MR; ++m) {
            const __m256 dx = _mm256_set1_ps(xd[m][b]);
            for (int g = 0; g < NG; ++g) {
                __m256i si = s[m][g];
                if constexpr (Q4) si = _mm256_sub_epi32(si, _mm256_set1_epi32(8 * xs[m][b]));
                acc[m][g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), _mm256_mul_ps(dw[g], dx), acc[m][g]);
            }
        }
    }
    for (int g = 0; g < NG; ++g) {
        const int64_t n0 = (g0 + g) * R;
        const int64_t valid = a.N - n0 < R ? a.N - n0 : R;
        alignas(32) float out[MR][R];
        for (int m = 0; m < MR; ++m) _mm256_store_ps(out[m], acc[m][g]);
        for (int m = 0; m < MR; ++m) {
            float* y = a.y + (m0 + m) * a.ldy + n0;
            for (int64_t j = 0; j < valid; ++j) y[j] = a.bias ? out[m][j] + a.bias[n0 + j] : out[m][j];
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
        default: break;
    }
}

template <bool Q4>
void multiply_groups(const uint8_t* packed, int64_t g0, int64_t g1, const Q8Rows& xq, const MatmulArgs& a) {
    constexpr int MR = 4;
    const int64_t nb = a.K / 32;
    int64_t g = g0;
    if (a.M == 1) {
        // decode: two groups per pass, more loads in flight
        for (; g + 2 <= g1; g += 2) tile<Q4, 1, 2>(packed, g, nb, xq, 0, a);
        if (g < g1) tile<Q4, 1, 1>(packed, g, nb, xq, 0, a);
        return;
    }
    for (; g < g1; ++g) {
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
        auto body = [&](int64_t g0, int64_t g1, int t) {
            const Q8Rows xq = a.M <= x86q::kSmallM ? x86q::thread_rows(a.scratch, a.M, a.K, t)
                                                   : x86q::shared_rows(a.scratch, a.K);
            quantize_rows_q8_0_avx2(a.x, a.ldx, 0, a.M, xq);
            multiply_groups<Q4>(packed, g0, g1, xq, a);
        };
        if (pool) pool->parallel_for_grain(G, 2, body);
        else body(0, G, 0);
        return;
    }
    const Q8Rows xq = x86q::shared_rows(a.scratch, a.K);
    pool->parallel_for(a.M, [&](int64_t m0, int64_t m1, int) { quantize_rows_q8_0_avx2(a.x, a.ldx, m0, m1, xq); });
    pool->parallel_for_grain(G, 2, [&](int64_t g0, int64_t g1, int) { multiply_groups<Q4>(packed, g0, g1, xq, a); });
}

bool supports_q(int64_t, int64_t K, int64_t) { return K % 32 == 0; }
int64_t packed_bytes_q8(int64_t N, int64_t K) { return x86q::packed_bytes(false, R, N, K); }
int64_t packed_bytes_q4(int64_t N, int64_t K) { return x86q::packed_bytes(true, R, N, K); }
void pack_q8(const void* w, int64_t N, int64_t K, void* out) { x86q::pack_q8_0(w, N, K, R, 0, out); }
void pack_q4(const void* w, int64_t N, int64_t K, void* out) { x86q::pack_q4_0(w, N, K, R, out); }
int64_t scratch_q(int64_t M_max, int64_t K, int64_t, int n_threads) { return x86q::scratch_bytes(M_max, K, n_threads); }

}  // namespace

extern const MatmulKernel q8_0_q8_0__avx2 = {
    .name = "q8_0_q8_0__avx2", .isa = Isa::avx2, .w_type = DType::q8_0, .priority = KernelPriority::simd,
    .activations = MatmulActivations::q8_0, .supports = supports_q, .packed_bytes = packed_bytes_q8, .pack = pack_q8,
    .scratch_bytes = scratch_q, .run = run_q<false>};
extern const MatmulKernel q4_0_q8_0__avx2 = {
    .name = "q4_0_q8_0__avx2", .isa = Isa::avx2, .w_type = DType::q4_0, .priority = KernelPriority::simd,
    .activations = MatmulActivations::q8_0, .supports = supports_q, .packed_bytes = packed_bytes_q4, .pack = pack_q4,
    .scratch_bytes = scratch_q, .run = run_q<true>};

}  // namespace glimpse
