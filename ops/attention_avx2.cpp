// AVX2 + FMA + F16C attention (same contract as attention_ref, ops/attention.h).
//
// The algorithms of ops/attention_avx512.cpp on 8-lane vectors:
//   blocked (T >= kMinBlockedRows, head_dim <= kMaxBlockedD): items (query head,
//     block of kBq = 16 query rows, the lanes of two ymm vectors); per block of
//     kBk = 64 keys (f16 K/V converted to f32 first): Pt = scale·K·Qᵀ with a 6 keys ×
//     2 vectors register tile, causal mask, online softmax (running max and sum per
//     lane), Ot = Ot·e^{m−m'} + Vᵀ·Pt with a 6 dims × 2 vectors tile; out = Ot / l.
//   row kernel (decode, few rows, large head_dim): per (row, head) scores of 8 keys
//     at a time reduced 8-to-1 with horizontal adds, a vectorised softmax, Σ p_s·V_s.
// Items are split over threads; each output element is computed by one item with
// the same arithmetic for any thread count. The column-mean tap is accumulated per
// head in row order (blocked: a second pass over each block's scores with the final
// max and sum), thread-count invariant, and leaves the attention output unchanged.
#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ops/exp_avx2.h"
#include "ops/op_variants_x86.h"
#include "runtime/fp16.h"

// Arithmetic is exactly as written: explicit FMAs only, no contraction of a·b + c.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace glimpse {
namespace {

using avx2_math::exp8;

constexpr int kBq = 16;                 // query rows per block: two 8-lane vectors
constexpr int kBk = 64;                 // keys per block
constexpr int kJ = 6;                   // keys per QK register tile
constexpr int kDc = 6;                  // head dims per PV register tile
constexpr int64_t kMaxBlockedD = 128;   // scratch bound of the blocked kernel
constexpr int64_t kMinBlockedRows = 8;  // fewer query rows: the row kernel

constexpr int64_t kQtFloats = kMaxBlockedD * kBq;
constexpr int64_t kOtFloats = kMaxBlockedD * kBq;
constexpr int64_t kPFloats = kBk * kBq;
constexpr int64_t kKvFloats = kBk * kMaxBlockedD;
static_assert(kQtFloats + kOtFloats + kPFloats + 2 * kKvFloats + 2 * kBq + 16 <= kAttentionTileFloats,
              "attention tile region too small");


inline float* align64(float* p) {
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t{63});
}

// Lanes [0, n) set (n clamped to [0, 8]).
inline __m256i tail_mask(int64_t n) {
    const int m = static_cast<int>(std::min<int64_t>(std::max<int64_t>(n, 0), 8));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 values of a K/V row from element `index`; n < 8 values (rest 0) when n < 8.
template <bool kF16>
inline __m256 load_kv(const void* base, int64_t index, int64_t n = 8) {
    if constexpr (kF16) {
        const uint16_t* p = static_cast<const uint16_t*>(base) + index;
        if (n >= 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        alignas(16) uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t i = 0; i < n; ++i) tmp[i] = p[i];
        return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
    } else {
        const float* p = static_cast<const float*>(base) + index;
        if (n >= 8) return _mm256_loadu_ps(p);
        return _mm256_maskload_ps(p, tail_mask(n));
    }
}

inline __m256 load_tail(const float* p, int64_t n) { return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(n)); }
inline void store_tail(float* p, int64_t n, __m256 v) {
    if (n >= 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, tail_mask(n), v);
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Σ over the 8 lanes of each a[i] -> lane i of the result.
inline __m256 reduce8(const __m256* a) {
    const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 lo = _mm256_hadd_ps(h01, h23), hi = _mm256_hadd_ps(h45, h67);  // per 128-bit lane: keys 0-3 | 4-7
    return _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
}

// ---------------------------------------------------------------------------
// Blocked kernel

template <int J>
inline void qk_tile(const float* qt, const float* k, int64_t ldk, int64_t D, float scale, float* pt) {
    __m256 acc0[J], acc1[J];
#pragma GCC unroll 16
    for (int j = 0; j < J; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; ++d) {
        const __m256 q0 = _mm256_load_ps(qt + d * kBq), q1 = _mm256_load_ps(qt + d * kBq + 8);
#pragma GCC unroll 16
        for (int j = 0; j < J; ++j) {
            const __m256 b = _mm256_broadcast_ss(k + j * ldk + d);
            acc0[j] = _mm256_fmadd_ps(q0, b, acc0[j]);
            acc1[j] = _mm256_fmadd_ps(q1, b, acc1[j]);
        }
    }
    const __m256 vs = _mm256_set1_ps(scale);
#pragma GCC unroll 16
    for (int j = 0; j < J; ++j) {
        _mm256_store_ps(pt + j * kBq, _mm256_mul_ps(acc0[j], vs));
        _mm256_store_ps(pt + j * kBq + 8, _mm256_mul_ps(acc1[j], vs));
    }
}

template <int DC>
inline void pv_tile(const float* pt, int64_t nk, const float* v, int64_t ldv, float* ot, __m256 alpha0,
                    __m256 alpha1) {
    __m256 acc0[DC], acc1[DC];
#pragma GCC unroll 16
    for (int d = 0; d < DC; ++d) {
        acc0[d] = _mm256_mul_ps(_mm256_load_ps(ot + d * kBq), alpha0);
        acc1[d] = _mm256_mul_ps(_mm256_load_ps(ot + d * kBq + 8), alpha1);
    }
    for (int64_t j = 0; j < nk; ++j) {
        const __m256 p0 = _mm256_load_ps(pt + j * kBq), p1 = _mm256_load_ps(pt + j * kBq + 8);
#pragma GCC unroll 16
        for (int d = 0; d < DC; ++d) {
            const __m256 b = _mm256_broadcast_ss(v + j * ldv + d);
            acc0[d] = _mm256_fmadd_ps(p0, b, acc0[d]);
            acc1[d] = _mm256_fmadd_ps(p1, b, acc1[d]);
        }
    }
#pragma GCC unroll 16
    for (int d = 0; d < DC; ++d) {
        _mm256_store_ps(ot + d * kBq, acc0[d]);
        _mm256_store_ps(ot + d * kBq + 8, acc1[d]);
    }
}

template <int N, class F>
inline void dispatch_tail(int64_t n, F&& f) {
    if constexpr (N > 1) {
        if (n == N - 1) {
            f(std::integral_constant<int, N - 1>{});
            return;
        }
        dispatch_tail<N - 1>(n, f);
    }
}

struct BlockTiles {
    float* qt;
    float* ot;
    float* pt;
    float* kc;
    float* vc;
    float* m;    // (16) final running max per lane, for the tap pass
    float* inv;  // (16) 1 / final sum per lane
};

inline BlockTiles block_tiles(float* thread_scratch, int64_t S) {
    BlockTiles b;
    b.qt = align64(thread_scratch + S);
    b.ot = b.qt + kQtFloats;
    b.pt = b.ot + kOtFloats;
    b.kc = b.pt + kPFloats;
    b.vc = b.kc + kKvFloats;
    b.m = b.vc + kKvFloats;
    b.inv = b.m + kBq;
    return b;
}

template <bool kF16>
inline void convert_rows(const void* src, int64_t ld, int64_t offset, int64_t kb, int64_t nk, int64_t D, float* dst) {
    for (int64_t j = 0; j < nk; ++j) {
        const int64_t base = (kb + j) * ld + offset;
        for (int64_t d = 0; d < D; d += 8) store_tail(dst + j * D + d, D - d, load_kv<kF16>(src, base + d, D - d));
    }
}

template <bool kF16>
inline void kv_block(const AttentionArgs& a, const BlockTiles& tl, int64_t hk, int64_t kb, int64_t nk, bool need_v,
                     const float** kp, const float** vp, int64_t* ld) {
    const int64_t D = a.head_dim;
    if constexpr (kF16) {
        convert_rows<true>(a.k, a.kv_ld, hk * D, kb, nk, D, tl.kc);
        if (need_v) convert_rows<true>(a.v, a.kv_ld, hk * D, kb, nk, D, tl.vc);
        *kp = tl.kc;
        *vp = tl.vc;
        *ld = D;
    } else {
        *kp = static_cast<const float*>(a.k) + kb * a.kv_ld + hk * D;
        *vp = static_cast<const float*>(a.v) + kb * a.kv_ld + hk * D;
        *ld = a.kv_ld;
    }
}

inline void block_scores(const AttentionArgs& a, const BlockTiles& tl, const float* kp, int64_t ldk, int64_t t0,
                         int64_t kb, int64_t nk) {
    const int64_t D = a.head_dim;
    int64_t j = 0;
    for (; j + kJ <= nk; j += kJ) qk_tile<kJ>(tl.qt, kp + j * ldk, ldk, D, a.scale, tl.pt + j * kBq);
    if (j < nk) {
        dispatch_tail<kJ>(nk - j, [&](auto n) {
            qk_tile<decltype(n)::value>(tl.qt, kp + j * ldk, ldk, D, a.scale, tl.pt + j * kBq);
        });
    }
    const int64_t first_masked = a.causal ? a.causal_offset + t0 + 1 : INT64_MAX;
    if (kb + nk > first_masked) {
        const __m256i lane_lo = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i lane_hi = _mm256_add_epi32(lane_lo, _mm256_set1_epi32(8));
        const __m256 ninf = _mm256_set1_ps(-INFINITY);
        for (int64_t jj = std::max<int64_t>(0, first_masked - kb); jj < nk; ++jj) {
            const __m256i thr = _mm256_set1_epi32(static_cast<int>(kb + jj - a.causal_offset - t0));
            float* row = tl.pt + jj * kBq;
            // lanes l < thr are hidden
            _mm256_store_ps(row, _mm256_blendv_ps(_mm256_load_ps(row), ninf,
                                                  _mm256_castsi256_ps(_mm256_cmpgt_epi32(thr, lane_lo))));
            _mm256_store_ps(row + 8, _mm256_blendv_ps(_mm256_load_ps(row + 8), ninf,
                                                      _mm256_castsi256_ps(_mm256_cmpgt_epi32(thr, lane_hi))));
        }
    }
}

inline int64_t block_keys(const AttentionArgs& a, int64_t t0, int64_t nt) {
    return a.causal ? std::min<int64_t>(a.S, a.causal_offset + t0 + nt) : a.S;
}

template <bool kF16>
void attend_block(const AttentionArgs& a, const BlockTiles& tl, int64_t h, int64_t t0, int64_t nt) {
    const int64_t D = a.head_dim;
    const int64_t hk = h / (a.n_head / a.n_head_kv);
    for (int64_t d = 0; d < D; ++d) {
        for (int64_t l = 0; l < kBq; ++l) tl.qt[d * kBq + l] = l < nt ? a.q[(t0 + l) * a.q_ld + h * D + d] : 0.0f;
    }
    for (int64_t i = 0; i < D * kBq; i += 8) _mm256_store_ps(tl.ot + i, _mm256_setzero_ps());

    const int64_t n_keys = block_keys(a, t0, nt);
    __m256 m0 = _mm256_set1_ps(-FLT_MAX), m1 = m0;
    __m256 l0 = _mm256_setzero_ps(), l1 = l0;
    for (int64_t kb = 0; kb < n_keys; kb += kBk) {
        const int64_t nk = std::min<int64_t>(kBk, n_keys - kb);
        const float *kp, *vp;
        int64_t ldk;
        kv_block<kF16>(a, tl, hk, kb, nk, true, &kp, &vp, &ldk);
        block_scores(a, tl, kp, ldk, t0, kb, nk);
        __m256 b0 = m0, b1 = m1;
        for (int64_t jj = 0; jj < nk; ++jj) {
            b0 = _mm256_max_ps(b0, _mm256_load_ps(tl.pt + jj * kBq));
            b1 = _mm256_max_ps(b1, _mm256_load_ps(tl.pt + jj * kBq + 8));
        }
        const __m256 alpha0 = exp8(_mm256_sub_ps(m0, b0)), alpha1 = exp8(_mm256_sub_ps(m1, b1));
        m0 = b0;
        m1 = b1;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0;
        for (int64_t jj = 0; jj < nk; ++jj) {
            float* row = tl.pt + jj * kBq;
            const __m256 e0 = exp8(_mm256_sub_ps(_mm256_load_ps(row), m0));
            const __m256 e1 = exp8(_mm256_sub_ps(_mm256_load_ps(row + 8), m1));
            _mm256_store_ps(row, e0);
            _mm256_store_ps(row + 8, e1);
            s0 = _mm256_add_ps(s0, e0);
            s1 = _mm256_add_ps(s1, e1);
        }
        l0 = _mm256_fmadd_ps(l0, alpha0, s0);
        l1 = _mm256_fmadd_ps(l1, alpha1, s1);
        int64_t d = 0;
        for (; d + kDc <= D; d += kDc) pv_tile<kDc>(tl.pt, nk, vp + d, ldk, tl.ot + d * kBq, alpha0, alpha1);
        if (d < D) {
            dispatch_tail<kDc>(D - d, [&](auto n) {
                pv_tile<decltype(n)::value>(tl.pt, nk, vp + d, ldk, tl.ot + d * kBq, alpha0, alpha1);
            });
        }
    }
    _mm256_store_ps(tl.m, m0);
    _mm256_store_ps(tl.m + 8, m1);
    _mm256_store_ps(tl.inv, _mm256_div_ps(_mm256_set1_ps(1.0f), l0));
    _mm256_store_ps(tl.inv + 8, _mm256_div_ps(_mm256_set1_ps(1.0f), l1));
    for (int64_t l = 0; l < nt; ++l) {
        float* orow = a.out + (t0 + l) * a.out_ld + h * D;
        for (int64_t d = 0; d < D; ++d) orow[d] = tl.ot[d * kBq + l] * tl.inv[l];
    }
}

template <bool kF16>
void tap_block(const AttentionArgs& a, const BlockTiles& tl, int64_t h, int64_t t0, int64_t nt, float* col) {
    const int64_t hk = h / (a.n_head / a.n_head_kv);
    const int64_t n_keys = block_keys(a, t0, nt);
    const __m256 m0 = _mm256_load_ps(tl.m), m1 = _mm256_load_ps(tl.m + 8);
    const __m256 i0 = _mm256_and_ps(_mm256_load_ps(tl.inv), _mm256_castsi256_ps(tail_mask(nt)));
    const __m256 i1 = _mm256_and_ps(_mm256_load_ps(tl.inv + 8), _mm256_castsi256_ps(tail_mask(nt - 8)));
    for (int64_t kb = 0; kb < n_keys; kb += kBk) {
        const int64_t nk = std::min<int64_t>(kBk, n_keys - kb);
        const float *kp, *vp;
        int64_t ldk;
        kv_block<kF16>(a, tl, hk, kb, nk, false, &kp, &vp, &ldk);
        block_scores(a, tl, kp, ldk, t0, kb, nk);
        for (int64_t jj = 0; jj < nk; ++jj) {
            const float* row = tl.pt + jj * kBq;
            const __m256 p0 = _mm256_mul_ps(exp8(_mm256_sub_ps(_mm256_load_ps(row), m0)), i0);
            const __m256 p1 = _mm256_mul_ps(exp8(_mm256_sub_ps(_mm256_load_ps(row + 8), m1)), i1);
            col[kb + jj] += hsum(_mm256_add_ps(p0, p1));
        }
    }
}

template <bool kF16>
void attend_blocked(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    const int64_t n_blocks = (a.T + kBq - 1) / kBq;
    if (a.col_mean) {
        auto body = [&](int64_t h0, int64_t h1, int thread) {
            const BlockTiles tl = block_tiles(scratch + thread * attention_scratch_floats(a.S), a.S);
            for (int64_t h = h0; h < h1; ++h) {
                float* col = a.col_mean + h * a.S;
                std::fill(col, col + a.S, 0.0f);
                for (int64_t b = 0; b < n_blocks; ++b) {
                    const int64_t t0 = b * kBq, nt = std::min<int64_t>(kBq, a.T - t0);
                    attend_block<kF16>(a, tl, h, t0, nt);
                    tap_block<kF16>(a, tl, h, t0, nt, col);
                }
                const float inv_t = 1.0f / static_cast<float>(a.T);
                for (int64_t s = 0; s < a.S; ++s) col[s] *= inv_t;
            }
        };
        if (pool) pool->parallel_for(a.n_head, body);
        else body(0, a.n_head, 0);
        return;
    }
    auto body = [&](int64_t i0, int64_t i1, int thread) {
        const BlockTiles tl = block_tiles(scratch + thread * attention_scratch_floats(a.S), a.S);
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t h = i % a.n_head, z = i / a.n_head;
            const int64_t b = (z & 1) ? n_blocks - 1 - z / 2 : z / 2;
            const int64_t t0 = b * kBq;
            attend_block<kF16>(a, tl, h, t0, std::min<int64_t>(kBq, a.T - t0));
        }
    };
    if (pool) pool->parallel_for(n_blocks * a.n_head, body);
    else body(0, n_blocks * a.n_head, 0);
}

// ---------------------------------------------------------------------------
// Row kernel

template <bool kF16>
inline float dot_row(const float* q, const void* k, int64_t index, int64_t D) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; d += 8) acc = _mm256_fmadd_ps(load_tail(q + d, D - d), load_kv<kF16>(k, index + d, D - d), acc);
    return hsum(acc);
}

template <bool kF16>
void row_scores(const float* q, const void* k, int64_t ld, int64_t offset, int64_t n, int64_t D, float scale,
                float* scores) {
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t s = 0;
    if (D % 8 == 0) {
        for (; s + 8 <= n; s += 8) {
            __m256 acc[8];
            for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
            for (int64_t d = 0; d < D; d += 8) {
                const __m256 qv = _mm256_loadu_ps(q + d);
#pragma GCC unroll 8
                for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(qv, load_kv<kF16>(k, (s + i) * ld + offset + d), acc[i]);
            }
            _mm256_storeu_ps(scores + s, _mm256_mul_ps(reduce8(acc), vs));
        }
    }
    for (; s < n; ++s) scores[s] = dot_row<kF16>(q, k, s * ld + offset, D) * scale;
}

inline float exp_shifted_sum(float* x, int64_t n) {
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float max = hmax(vmax);
    for (; i < n; ++i) max = std::max(max, x[i]);
    const __m256 vm = _mm256_set1_ps(max);
    __m256 vsum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    if (i < n) {
        const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(load_tail(x + i, n - i), vm)),
                                       _mm256_castsi256_ps(tail_mask(n - i)));
        store_tail(x + i, n - i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    return hsum(vsum);
}

template <bool kF16>
void row_weighted_sum(const float* p, int64_t n, const void* v, int64_t ld, int64_t offset, int64_t D, float inv,
                      float* out) {
    for (int64_t d = 0; d < D; d += 8) {
        const int64_t w = D - d;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t s = 0;
        for (; s + 4 <= n; s += 4) {
            const int64_t i = s * ld + offset + d;
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[s]), load_kv<kF16>(v, i, w), a0);
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(p[s + 1]), load_kv<kF16>(v, i + ld, w), a1);
            a2 = _mm256_fmadd_ps(_mm256_set1_ps(p[s + 2]), load_kv<kF16>(v, i + 2 * ld, w), a2);
            a3 = _mm256_fmadd_ps(_mm256_set1_ps(p[s + 3]), load_kv<kF16>(v, i + 3 * ld, w), a3);
        }
        for (; s < n; ++s) a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[s]), load_kv<kF16>(v, s * ld + offset + d, w), a0);
        const __m256 sum = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        store_tail(out + d, w, _mm256_mul_ps(sum, _mm256_set1_ps(inv)));
    }
}

template <bool kF16>
inline void attend_row(const AttentionArgs& a, int64_t t, int64_t h, float* scores, float* col) {
    const int64_t D = a.head_dim, hk = h / (a.n_head / a.n_head_kv);
    const int64_t n = a.causal ? std::min<int64_t>(a.S, a.causal_offset + t + 1) : a.S;
    float* orow = a.out + t * a.out_ld + h * D;
    if (n <= 0) {
        std::fill(orow, orow + D, 0.0f);
        return;
    }
    row_scores<kF16>(a.q + t * a.q_ld + h * D, a.k, a.kv_ld, hk * D, n, D, a.scale, scores);
    const float inv = 1.0f / exp_shifted_sum(scores, n);
    row_weighted_sum<kF16>(scores, n, a.v, a.kv_ld, hk * D, D, inv, orow);
    if (col) {
        for (int64_t s = 0; s < n; ++s) col[s] += scores[s] * inv;
    }
}

template <bool kF16>
void attend_rows(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    if (a.col_mean) {
        auto body = [&](int64_t h0, int64_t h1, int thread) {
            float* scores = scratch + thread * attention_scratch_floats(a.S);
            for (int64_t h = h0; h < h1; ++h) {
                float* col = a.col_mean + h * a.S;
                std::fill(col, col + a.S, 0.0f);
                for (int64_t t = 0; t < a.T; ++t) attend_row<kF16>(a, t, h, scores, col);
                const float inv_t = 1.0f / static_cast<float>(a.T);
                for (int64_t s = 0; s < a.S; ++s) col[s] *= inv_t;
            }
        };
        if (pool) pool->parallel_for(a.n_head, body);
        else body(0, a.n_head, 0);
        return;
    }
    auto body = [&](int64_t i0, int64_t i1, int thread) {
        float* scores = scratch + thread * attention_scratch_floats(a.S);
        for (int64_t i = i0; i < i1; ++i) attend_row<kF16>(a, i / a.n_head, i % a.n_head, scores, nullptr);
    };
    if (pool) pool->parallel_for(a.T * a.n_head, body);
    else body(0, a.T * a.n_head, 0);
}

}  // namespace

void exp_avx2(const float* x, int64_t n, float* y) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) store_tail(y + i, n - i, exp8(load_tail(x + i, n - i)));
}

void attention_avx2(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    const bool f16 = a.kv_type == DType::f16;
    const bool blocked = a.T >= kMinBlockedRows && a.head_dim <= kMaxBlockedD && (!a.causal || a.causal_offset >= 0);
    if (blocked) {
        if (f16) attend_blocked<true>(a, scratch, pool);
        else attend_blocked<false>(a, scratch, pool);
    } else {
        if (f16) attend_rows<true>(a, scratch, pool);
        else attend_rows<false>(a, scratch, pool);
    }
}

}  // namespace glimpse
