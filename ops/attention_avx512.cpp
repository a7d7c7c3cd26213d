// AVX-512 attention (same contract as attention_ref, ops/attention.h).
//
// Blocked kernel (T >= kMinBlockedRows, head_dim <= kMaxBlockedD), flash-style with
// an online softmax. One work item is (query head h, block of kBq = 32 query rows);
// its rows are the 32 lanes of two zmm vectors, so every per-row quantity (score,
// running max m, running sum l, rescale factor) is a vertical vector operation and
// nothing is ever reduced horizontally:
//   Qt:(D, 32)    the block's queries, transposed once
//   for each block of kBk = 64 keys (K/V f16 blocks converted to f32 first):
//     Pt:(64, 32)   = scale · K_blk · Qᵀ        (8 keys × 2 vectors register tile; each
//                                               K element broadcast from memory)
//     causal mask, m' = max(m, max_j Pt), Pt = exp(Pt − m'), l = l·e^{m−m'} + Σ_j Pt
//     Ot:(D, 32)    = Ot · e^{m−m'} + V_blkᵀ · Pt  (8 dims × 2 vectors register tile)
//   out[t][h·D + d] = Ot[d][t] / l[t]
// Flops: 4·T·S·D per head (vision tile: 1024 queries × 1024 keys × 64 dims × 12
// heads = 3.2 GFLOP per layer); exps: T·S per head.
//
// Row kernel (decode, T < kMinBlockedRows, or large head_dim): per (row, head) the
// scores of 16 keys at a time (D-wide dot products, reduced 16-to-1 with a shuffle
// tree), a vectorised softmax, then Σ_s p_s·V_s with 16 accumulators, from f16 or
// f32 K/V read directly.
//
// Work is split over (head, block) or (row, head) items; each output element is
// computed by one item with the same arithmetic whatever the thread count, so
// outputs are identical for any pool size. The column-mean tap (AttentionArgs::col_mean)
// is accumulated per head in row order — a second pass over each block's scores with
// the final max and sum — so it too is thread-count invariant, and the attention
// output is the same with and without it.
#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ops/exp_avx512.h"
#include "ops/op_variants_x86.h"


// Arithmetic is exactly as written: explicit FMAs only, no contraction of a·b + c.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace glimpse {
namespace {

using avx512_math::exp16;

constexpr int kBq = 32;                 // query rows per block: two 16-lane vectors
constexpr int kBk = 64;                 // keys per block
constexpr int kJ = 8;                   // keys per QK register tile
constexpr int kDc = 8;                  // head dims per PV register tile
constexpr int64_t kMaxBlockedD = 128;   // scratch bound of the blocked kernel
constexpr int64_t kMinBlockedRows = 8;  // fewer query rows: the row kernel

// Tile region (floats) of the blocked kernel, 64-byte aligned inside the thread's
// kAttentionTileFloats.
constexpr int64_t kQtFloats = kMaxBlockedD * kBq;
constexpr int64_t kOtFloats = kMaxBlockedD * kBq;
constexpr int64_t kPFloats = kBk * kBq;
constexpr int64_t kKvFloats = kBk * kMaxBlockedD;
static_assert(kQtFloats + kOtFloats + kPFloats + 2 * kKvFloats + 2 * kBq + 16 <= kAttentionTileFloats,
              "attention tile region too small");


inline float* align64(float* p) {
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t{63});
}

inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u); }

// 16 values of a K/V row from element `index` (masked to n < 16 values).
template <bool kF16>
inline __m512 load_kv(const void* base, int64_t index, __mmask16 m) {
    if constexpr (kF16) {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + index));
    } else {
        return _mm512_maskz_loadu_ps(m, static_cast<const float*>(base) + index);
    }
}

// Σ over the 16 lanes of each a[i] -> lane i of the result (a shuffle tree, 15 adds).
inline __m512 reduce16(const __m512* a) {
    __m512 l1[8];
    for (int i = 0; i < 8; ++i) {
        // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] of a = a[2i], b = a[2i+1]
        l1[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    }
    __m512 l2[4];
    for (int i = 0; i < 4; ++i) {
        // per 128-bit lane: the 4 keys 4i..4i+3, each summed over that lane's 4 elements
        const __m512d x = _mm512_castps_pd(l1[2 * i]), y = _mm512_castps_pd(l1[2 * i + 1]);
        l2[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    // combine the four 128-bit lanes: [k0-3 | k4-7 | k8-11 | k12-15]
    const __m512 w0 = _mm512_add_ps(_mm512_shuffle_f32x4(l2[0], l2[1], 0x88), _mm512_shuffle_f32x4(l2[0], l2[1], 0xdd));
    const __m512 w1 = _mm512_add_ps(_mm512_shuffle_f32x4(l2[2], l2[3], 0x88), _mm512_shuffle_f32x4(l2[2], l2[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(w0, w1, 0x88), _mm512_shuffle_f32x4(w0, w1, 0xdd));
}

// ---------------------------------------------------------------------------
// Blocked kernel

// Pt[j][0..32) = scale · Σ_d Qt[d][0..32) · K[j][d] for J keys.
template <int J>
inline void qk_tile(const float* qt, const float* k, int64_t ldk, int64_t D, float scale, float* pt) {
    __m512 acc0[J], acc1[J];
#pragma GCC unroll 16
    for (int j = 0; j < J; ++j) acc0[j] = acc1[j] = _mm512_setzero_ps();
    for (int64_t d = 0; d < D; ++d) {
        const __m512 q0 = _mm512_load_ps(qt + d * kBq), q1 = _mm512_load_ps(qt + d * kBq + 16);
#pragma GCC unroll 16
        for (int j = 0; j < J; ++j) {
            const __m512 b = _mm512_set1_ps(k[j * ldk + d]);
            acc0[j] = _mm512_fmadd_ps(q0, b, acc0[j]);
            acc1[j] = _mm512_fmadd_ps(q1, b, acc1[j]);
        }
    }
    const __m512 vs = _mm512_set1_ps(scale);
#pragma GCC unroll 16
    for (int j = 0; j < J; ++j) {
        _mm512_store_ps(pt + j * kBq, _mm512_mul_ps(acc0[j], vs));
        _mm512_store_ps(pt + j * kBq + 16, _mm512_mul_ps(acc1[j], vs));
    }
}

// Ot[d][0..32) = Ot[d][..] · alpha + Σ_j Pt[j][..] · V[j][d] for DC dims.
template <int DC>
inline void pv_tile(const float* pt, int64_t nk, const float* v, int64_t ldv, float* ot, __m512 alpha0,
                    __m512 alpha1) {
    __m512 acc0[DC], acc1[DC];
#pragma GCC unroll 16
    for (int d = 0; d < DC; ++d) {
        acc0[d] = _mm512_mul_ps(_mm512_load_ps(ot + d * kBq), alpha0);
        acc1[d] = _mm512_mul_ps(_mm512_load_ps(ot + d * kBq + 16), alpha1);
    }
    for (int64_t j = 0; j < nk; ++j) {
        const __m512 p0 = _mm512_load_ps(pt + j * kBq), p1 = _mm512_load_ps(pt + j * kBq + 16);
#pragma GCC unroll 16
        for (int d = 0; d < DC; ++d) {
            const __m512 b = _mm512_set1_ps(v[j * ldv + d]);
            acc0[d] = _mm512_fmadd_ps(p0, b, acc0[d]);
            acc1[d] = _mm512_fmadd_ps(p1, b, acc1[d]);
        }
    }
#pragma GCC unroll 16
    for (int d = 0; d < DC; ++d) {
        _mm512_store_ps(ot + d * kBq, acc0[d]);
        _mm512_store_ps(ot + d * kBq + 16, acc1[d]);
    }
}

template <int N, class F>
inline void dispatch_tail(int64_t n, F&& f) {
    // f(std::integral_constant<int, n>) for 1 <= n < N
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
    float* m;    // (32) final running max per lane, for the tap pass
    float* inv;  // (32) 1 / final sum per lane
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

// Rows [kb, kb+nk) of one K/V head (D elements at `offset` of each row) -> dst:(nk, D) f32.
template <bool kF16>
inline void convert_rows(const void* src, int64_t ld, int64_t offset, int64_t kb, int64_t nk, int64_t D, float* dst) {
    for (int64_t j = 0; j < nk; ++j) {
        const int64_t base = (kb + j) * ld + offset;
        for (int64_t d = 0; d < D; d += 16) {
            const __mmask16 m = tail_mask(D - d);
            _mm512_mask_storeu_ps(dst + j * D + d, m, load_kv<kF16>(src, base + d, m));
        }
    }
}

// K and V of keys [kb, kb+nk) of kv head hk as f32 rows (f16 blocks converted into the tiles).
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

// Pt[j][l] = scale · q_{t0+l} · k_{kb+j} for j < nk, with the causal mask applied
// (key s is hidden from lanes l < s − causal_offset − t0).
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
        const __m512i lane_lo = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __m512i lane_hi = _mm512_add_epi32(lane_lo, _mm512_set1_epi32(16));
        for (int64_t jj = std::max<int64_t>(0, first_masked - kb); jj < nk; ++jj) {
            const __m512i thr = _mm512_set1_epi32(static_cast<int>(kb + jj - a.causal_offset - t0));
            float* row = tl.pt + jj * kBq;
            _mm512_store_ps(row, _mm512_mask_mov_ps(_mm512_load_ps(row), _mm512_cmplt_epi32_mask(lane_lo, thr),
                                                    _mm512_set1_ps(-INFINITY)));
            _mm512_store_ps(row + 16, _mm512_mask_mov_ps(_mm512_load_ps(row + 16), _mm512_cmplt_epi32_mask(lane_hi, thr),
                                                         _mm512_set1_ps(-INFINITY)));
        }
    }
}

// Keys any lane of the block [t0, t0+nt) sees; lane l sees keys s <= causal_offset + t0 + l.
inline int64_t block_keys(const AttentionArgs& a, int64_t t0, int64_t nt) {
    return a.causal ? std::min<int64_t>(a.S, a.causal_offset + t0 + nt) : a.S;
}

// Output rows [t0, t0+nt) of head h; leaves the final max and 1/sum per lane in tl.m, tl.inv.
template <bool kF16>
void attend_block(const AttentionArgs& a, const BlockTiles& tl, int64_t h, int64_t t0, int64_t nt) {
    const int64_t D = a.head_dim;
    const int64_t hk = h / (a.n_head / a.n_head_kv);
    // Qt:(D, 32), lanes >= nt zero; Ot = 0
    for (int64_t d = 0; d < D; ++d) {
        for (int64_t l = 0; l < kBq; ++l) tl.qt[d * kBq + l] = l < nt ? a.q[(t0 + l) * a.q_ld + h * D + d] : 0.0f;
    }
    for (int64_t i = 0; i < D * kBq; i += 16) _mm512_store_ps(tl.ot + i, _mm512_setzero_ps());

    const int64_t n_keys = block_keys(a, t0, nt);
    __m512 m0 = _mm512_set1_ps(-FLT_MAX), m1 = m0;
    __m512 l0 = _mm512_setzero_ps(), l1 = l0;
    for (int64_t kb = 0; kb < n_keys; kb += kBk) {
        const int64_t nk = std::min<int64_t>(kBk, n_keys - kb);
        const float *kp, *vp;
        int64_t ldk;
        kv_block<kF16>(a, tl, hk, kb, nk, true, &kp, &vp, &ldk);
        block_scores(a, tl, kp, ldk, t0, kb, nk);
        // online softmax
        __m512 b0 = m0, b1 = m1;
        for (int64_t jj = 0; jj < nk; ++jj) {
            b0 = _mm512_max_ps(b0, _mm512_load_ps(tl.pt + jj * kBq));
            b1 = _mm512_max_ps(b1, _mm512_load_ps(tl.pt + jj * kBq + 16));
        }
        const __m512 alpha0 = exp16(_mm512_sub_ps(m0, b0)), alpha1 = exp16(_mm512_sub_ps(m1, b1));
        m0 = b0;
        m1 = b1;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0;
        for (int64_t jj = 0; jj < nk; ++jj) {
            float* row = tl.pt + jj * kBq;
            const __m512 e0 = exp16(_mm512_sub_ps(_mm512_load_ps(row), m0));
            const __m512 e1 = exp16(_mm512_sub_ps(_mm512_load_ps(row + 16), m1));
            _mm512_store_ps(row, e0);
            _mm512_store_ps(row + 16, e1);
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
        }
        l0 = _mm512_fmadd_ps(l0, alpha0, s0);
        l1 = _mm512_fmadd_ps(l1, alpha1, s1);
        // Ot = Ot·alpha + Vᵀ·Pt
        int64_t d = 0;
        for (; d + kDc <= D; d += kDc) pv_tile<kDc>(tl.pt, nk, vp + d, ldk, tl.ot + d * kBq, alpha0, alpha1);
        if (d < D) {
            dispatch_tail<kDc>(D - d, [&](auto n) {
                pv_tile<decltype(n)::value>(tl.pt, nk, vp + d, ldk, tl.ot + d * kBq, alpha0, alpha1);
            });
        }
    }
    // out = Ot / l, transposed back to rows
    _mm512_store_ps(tl.m, m0);
    _mm512_store_ps(tl.m + 16, m1);
    _mm512_store_ps(tl.inv, _mm512_div_ps(_mm512_set1_ps(1.0f), l0));
    _mm512_store_ps(tl.inv + 16, _mm512_div_ps(_mm512_set1_ps(1.0f), l1));
    for (int64_t l = 0; l < nt; ++l) {
        float* orow = a.out + (t0 + l) * a.out_ld + h * D;
        for (int64_t d = 0; d < D; ++d) orow[d] = tl.ot[d * kBq + l] * tl.inv[l];
    }
}

// The column-mean tap of a block attend_block has just computed: col[s] += Σ over its
// nt rows of the final probability exp(x − m)/l, recomputing the scores.
template <bool kF16>
void tap_block(const AttentionArgs& a, const BlockTiles& tl, int64_t h, int64_t t0, int64_t nt, float* col) {
    const int64_t hk = h / (a.n_head / a.n_head_kv);
    const int64_t n_keys = block_keys(a, t0, nt);
    const __m512 m0 = _mm512_load_ps(tl.m), m1 = _mm512_load_ps(tl.m + 16);
    // 1/l on valid lanes, 0 on the padding lanes of a short last block
    const __m512 i0 = _mm512_maskz_mov_ps(tail_mask(nt), _mm512_load_ps(tl.inv));
    const __m512 i1 = _mm512_maskz_mov_ps(tail_mask(nt > 16 ? nt - 16 : 0), _mm512_load_ps(tl.inv + 16));
    for (int64_t kb = 0; kb < n_keys; kb += kBk) {
        const int64_t nk = std::min<int64_t>(kBk, n_keys - kb);
        const float *kp, *vp;
        int64_t ldk;
        kv_block<kF16>(a, tl, hk, kb, nk, false, &kp, &vp, &ldk);
        block_scores(a, tl, kp, ldk, t0, kb, nk);
        for (int64_t jj = 0; jj < nk; ++jj) {
            const float* row = tl.pt + jj * kBq;
            const __m512 p0 = _mm512_mul_ps(exp16(_mm512_sub_ps(_mm512_load_ps(row), m0)), i0);
            const __m512 p1 = _mm512_mul_ps(exp16(_mm512_sub_ps(_mm512_load_ps(row + 16), m1)), i1);
            col[kb + jj] += _mm512_reduce_add_ps(_mm512_add_ps(p0, p1));
        }
    }
}

template <bool kF16>
void attend_blocked(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    const int64_t n_blocks = (a.T + kBq - 1) / kBq;
    if (a.col_mean) {
        // With the tap, one head per item, its blocks in order, so the column sums
        // are the same for any thread count; the output is computed as without it.
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
    // Items in block order 0, n-1, 1, n-2, ... (heads innermost): with a causal mask
    // block b costs ~b+1, so any contiguous range of items has a balanced cost.
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
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < D; d += 16) {
        const __mmask16 m = tail_mask(D - d);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), load_kv<kF16>(k, index + d, m), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

// scores[s] = scale · q·K[s] for s < n
template <bool kF16>
void row_scores(const float* q, const void* k, int64_t ld, int64_t offset, int64_t n, int64_t D, float scale,
                float* scores) {
    const __m512 vs = _mm512_set1_ps(scale);
    int64_t s = 0;
    if (D % 16 == 0) {
        for (; s + 16 <= n; s += 16) {
            __m512 acc[16];
            for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
            for (int64_t d = 0; d < D; d += 16) {
                const __m512 qv = _mm512_loadu_ps(q + d);
#pragma GCC unroll 16
                for (int i = 0; i < 16; ++i) {
                    acc[i] = _mm512_fmadd_ps(qv, load_kv<kF16>(k, (s + i) * ld + offset + d, 0xffff), acc[i]);
                }
            }
            _mm512_storeu_ps(scores + s, _mm512_mul_ps(reduce16(acc), vs));
        }
    }
    for (; s < n; ++s) scores[s] = dot_row<kF16>(q, k, s * ld + offset, D) * scale;
}

// In place: x[i] = exp(x[i] - max); returns Σ x[i].
inline float exp_shifted_sum(float* x, int64_t n) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    if (i < n) vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(vmax, tail_mask(n - i), x + i));
    const __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(x + i, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)));
        _mm512_mask_storeu_ps(x + i, m, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    return _mm512_reduce_add_ps(vsum);
}

// out[d] = inv · Σ_s p[s]·V[s][offset + d]
template <bool kF16>
void row_weighted_sum(const float* p, int64_t n, const void* v, int64_t ld, int64_t offset, int64_t D, float inv,
                      float* out) {
    for (int64_t d = 0; d < D; d += 16) {
        const __mmask16 m = tail_mask(D - d);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t s = 0;
        for (; s + 4 <= n; s += 4) {
            const int64_t i = s * ld + offset + d;
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[s]), load_kv<kF16>(v, i, m), a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(p[s + 1]), load_kv<kF16>(v, i + ld, m), a1);
            a2 = _mm512_fmadd_ps(_mm512_set1_ps(p[s + 2]), load_kv<kF16>(v, i + 2 * ld, m), a2);
            a3 = _mm512_fmadd_ps(_mm512_set1_ps(p[s + 3]), load_kv<kF16>(v, i + 3 * ld, m), a3);
        }
        for (; s < n; ++s) a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[s]), load_kv<kF16>(v, s * ld + offset + d, m), a0);
        const __m512 sum = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
        _mm512_mask_storeu_ps(out + d, m, _mm512_mul_ps(sum, _mm512_set1_ps(inv)));
    }
}

// Output row t of head h; with `col`, adds its probabilities to col[0..n).
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
        // one head per item, rows in order: the tap is the same for any thread count
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

void exp_avx512(const float* x, int64_t n, float* y) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

void attention_avx512(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
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
