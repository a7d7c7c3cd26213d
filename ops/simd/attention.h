// Width-generic attention (same contract as attention_ref, ops/attention.h), written once
// against a vector-traits type V (ops/simd/vec_*.h) and instantiated by each ISA
// translation unit: ops/attention_avx2.cpp (8 lanes), attention_avx512.cpp (16 lanes),
// attention_neon.cpp (4 lanes). L = V::kLanes below.
//
// Blocked kernel (T >= kMinBlockedRows, head_dim <= kMaxBlockedD), flash-style with
// an online softmax. One work item is (query head h, block of kBq = 2·L query rows);
// its rows are the lanes of two vectors, so every per-row quantity (score, running max
// m, running sum l, rescale factor) is a vertical vector operation and nothing is ever
// reduced horizontally:
//   Qt:(D, 2L)    the block's queries, transposed once
//   for each block of kBk = 64 keys (K/V f16 blocks converted to f32 first):
//     Pt:(64, 2L)   = scale · K_blk · Qᵀ        (kJ keys × 2 vectors register tile; each
//                                               K element broadcast from memory)
//     + key_bias[j] (optional), causal mask, m' = max(m, max_j Pt), Pt = exp(Pt − m'), l = l·e^{m−m'} + Σ_j Pt
//     Ot:(D, 2L)    = Ot · e^{m−m'} + V_blkᵀ · Pt  (kDc dims × 2 vectors register tile)
//   out[t][h·D + d] = Ot[d][t] / l[t]
// kJ and kDc are the ISA's choice (register count: 8 × 2 accumulators of 32 zmm / NEON
// registers, 6 × 2 of 16 ymm). Flops: 4·T·S·D per head (vision tile: 1024 queries ×
// 1024 keys × 64 dims × 12 heads = 3.2 GFLOP per layer); exps: T·S per head.
//
// Row kernel (decode, T < kMinBlockedRows, or large head_dim): per (row, head) the
// scores of L keys at a time (D-wide dot products, reduced L-to-1 by V::reduce_lanes),
// a vectorised softmax, then Σ_s p_s·V_s with 4 accumulators, from f16 or f32 K/V read
// directly.
//
// Work is split over (head, block) or (row, head) items; each output element is
// computed by one item with the same arithmetic whatever the thread count, so
// outputs are identical for any pool size. The column-mean tap (AttentionArgs::col_mean)
// is accumulated per head in row order — a second pass over each block's scores with
// the final max and sum — so it too is thread-count invariant, and the attention
// output is the same with and without it.
//
// Include only from an ISA translation unit, after its vec_<isa>.h; everything here has
// internal linkage, so each unit keeps its own copy compiled with its own flags.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ops/attention.h"
#include "ops/simd/exp.h"

#include "ops/simd/exact_fp.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse::simd {
namespace {

template <class V, int kJ_, int kDc_, int kVCols_ = 1>
struct Attention {
    using F = typename V::F;
    static constexpr int L = V::kLanes;
    static constexpr int kBq = 2 * L;                 // query rows per block: two vectors
    static constexpr int kBk = 64;                    // keys per block
    static constexpr int kJ = kJ_;                    // keys per QK register tile
    static constexpr int kDc = kDc_;                  // head dims per PV register tile
    static constexpr int kVCols = kVCols_;            // row kernel: vectors of output columns per pass over V
    static constexpr int64_t kMaxBlockedD = 128;      // scratch bound of the blocked kernel
    static constexpr int64_t kMinBlockedRows = 8;     // fewer query rows: the row kernel

    // Tile region (floats) of the blocked kernel, 64-byte aligned inside the thread's
    // kAttentionTileFloats: at the largest head_dim, room for at least one query sub-block
    // (block_tiles).
    static constexpr int64_t kQtFloats = kMaxBlockedD * kBq;
    static constexpr int64_t kOtFloats = kMaxBlockedD * kBq;
    static constexpr int64_t kPFloats = kBk * kBq;
    static constexpr int64_t kKvFloats = kBk * kMaxBlockedD;
    static_assert(kQtFloats + kOtFloats + kPFloats + 2 * kKvFloats + 2 * kBq + 16 <= kAttentionTileFloats,
                  "attention tile region too small");

    static float* align64(float* p) {
        return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t{63});
    }

    // L values of a K/V row from element `index` (n < L: the first n, rest 0).
    template <bool kF16>
    static F load_kv(const void* base, int64_t index, int64_t n) {
        if constexpr (kF16) return V::load_f16_tail(static_cast<const uint16_t*>(base) + index, n);
        else return V::load_tail(static_cast<const float*>(base) + index, n);
    }
    template <bool kF16>
    static F load_kv_full(const void* base, int64_t index) {
        if constexpr (kF16) return V::load_f16(static_cast<const uint16_t*>(base) + index);
        else return V::loadu(static_cast<const float*>(base) + index);
    }

    // -----------------------------------------------------------------------
    // Blocked kernel

    // Pt[j][0..kBq) = scale · Σ_d Qt[d][0..kBq) · K[j][d] for J keys.
    template <int J>
    static void qk_tile(const float* qt, const float* k, int64_t ldk, int64_t D, float scale, float* pt) {
        F acc0[J], acc1[J];
#pragma GCC unroll 16
        for (int j = 0; j < J; ++j) acc0[j] = acc1[j] = V::zero();
        for (int64_t d = 0; d < D; ++d) {
            const F q0 = V::load(qt + d * kBq), q1 = V::load(qt + d * kBq + L);
#pragma GCC unroll 16
            for (int j = 0; j < J; ++j) {
                const F b = V::broadcast(k + j * ldk + d);
                acc0[j] = V::fmadd(q0, b, acc0[j]);
                acc1[j] = V::fmadd(q1, b, acc1[j]);
            }
        }
        const F vs = V::set1(scale);
#pragma GCC unroll 16
        for (int j = 0; j < J; ++j) {
            V::store(pt + j * kBq, V::mul(acc0[j], vs));
            V::store(pt + j * kBq + L, V::mul(acc1[j], vs));
        }
    }

    // Ot[d][0..kBq) = Ot[d][..] · alpha + Σ_j Pt[j][..] · V[j][d] for DC dims.
    template <int DC>
    static void pv_tile(const float* pt, int64_t nk, const float* v, int64_t ldv, float* ot, F alpha0, F alpha1) {
        F acc0[DC], acc1[DC];
#pragma GCC unroll 16
        for (int d = 0; d < DC; ++d) {
            acc0[d] = V::mul(V::load(ot + d * kBq), alpha0);
            acc1[d] = V::mul(V::load(ot + d * kBq + L), alpha1);
        }
        for (int64_t j = 0; j < nk; ++j) {
            const F p0 = V::load(pt + j * kBq), p1 = V::load(pt + j * kBq + L);
#pragma GCC unroll 16
            for (int d = 0; d < DC; ++d) {
                const F b = V::broadcast(v + j * ldv + d);
                acc0[d] = V::fmadd(p0, b, acc0[d]);
                acc1[d] = V::fmadd(p1, b, acc1[d]);
            }
        }
#pragma GCC unroll 16
        for (int d = 0; d < DC; ++d) {
            V::store(ot + d * kBq, acc0[d]);
            V::store(ot + d * kBq + L, acc1[d]);
        }
    }

    // f(std::integral_constant<int, n>) for 1 <= n < N
    template <int N, class Fn>
    static void dispatch_tail(int64_t n, Fn&& f) {
        if constexpr (N > 1) {
            if (n == N - 1) {
                f(std::integral_constant<int, N - 1>{});
                return;
            }
            dispatch_tail<N - 1>(n, f);
        }
    }

    // The tile region of one thread, laid out for head dim D: the shared score block and K/V
    // block, then n_sub query sub-blocks of kBq rows, each with its own Qt:(D, kBq),
    // Ot:(D, kBq) and running max / sum (as many as the region holds, up to kMaxSub).
    static constexpr int kMaxSub = 8;
    struct BlockTiles {
        float* pt;
        float* kc;
        float* vc;
        float* m;    // (kBq) final running max per lane of sub-block 0, for the tap pass
        float* inv;  // (kBq) 1 / final sum per lane of sub-block 0
        float* subs;
        int64_t D;
        int n_sub;
        float* qt(int i) const { return subs + i * 2 * D * kBq; }
        float* ot(int i) const { return qt(i) + D * kBq; }
    };

    static BlockTiles block_tiles(float* thread_scratch, int64_t S, int64_t D) {
        BlockTiles b;
        b.D = D;
        b.pt = align64(thread_scratch + S);
        b.kc = b.pt + kPFloats;
        b.vc = b.kc + kBk * D;
        b.m = b.vc + kBk * D;
        b.inv = b.m + kBq;
        b.subs = b.inv + kBq;
        const int64_t used = b.subs - b.pt + 16;  // + the alignment slack
        const int64_t fit = (kAttentionTileFloats - used) / (2 * D * kBq);
        b.n_sub = static_cast<int>(std::clamp<int64_t>(fit, 1, kMaxSub));
        return b;
    }

    // Rows [kb, kb+nk) of one K/V head (D elements at `offset` of each row) -> dst:(nk, D) f32.
    template <bool kF16>
    static void convert_rows(const void* src, int64_t ld, int64_t offset, int64_t kb, int64_t nk, int64_t D,
                             float* dst) {
        for (int64_t j = 0; j < nk; ++j) {
            const int64_t base = (kb + j) * ld + offset;
            int64_t d = 0;
            for (; d + L <= D; d += L) V::storeu(dst + j * D + d, load_kv_full<kF16>(src, base + d));
            if (d < D) V::store_tail(dst + j * D + d, D - d, load_kv<kF16>(src, base + d, D - d));
        }
    }

    // K and V of keys [kb, kb+nk) of kv head hk as contiguous f32 rows kc, vc:(nk, D), f16
    // converted, f32 copied. Why copy f32: read in place, the block's rows are kv_ld apart
    // (3 KiB for a 768-wide encoder), so its 64 × D/16 cache lines fall into a quarter of
    // the L1 sets and evict each other across the passes of the QK and PV tiles; the copy
    // pays off because attend_blocks shares it among up to kMaxSub query sub-blocks.
    template <bool kF16>
    static void kv_block(const AttentionArgs& a, const BlockTiles& tl, int64_t hk, int64_t kb, int64_t nk,
                         bool need_v, const float** kp, const float** vp, int64_t* ld) {
        const int64_t D = a.head_dim;
        convert_rows<kF16>(a.k, a.kv_ld, hk * D, kb, nk, D, tl.kc);
        if (need_v) convert_rows<kF16>(a.v, a.kv_ld, hk * D, kb, nk, D, tl.vc);
        *kp = tl.kc;
        *vp = tl.vc;
        *ld = D;
    }

    // Pt[j][l] = scale · q_{t0+l} · k_{kb+j} for j < nk, with the causal mask applied
    // (key s is hidden from lanes l < s − causal_offset − t0).
    static void block_scores(const AttentionArgs& a, const BlockTiles& tl, const float* qt, const float* kp,
                             int64_t ldk, int64_t t0, int64_t kb, int64_t nk) {
        const int64_t D = a.head_dim;
        int64_t j = 0;
        for (; j + kJ <= nk; j += kJ) qk_tile<kJ>(qt, kp + j * ldk, ldk, D, a.scale, tl.pt + j * kBq);
        if (j < nk) {
            dispatch_tail<kJ>(nk - j, [&](auto n) {
                qk_tile<decltype(n)::value>(qt, kp + j * ldk, ldk, D, a.scale, tl.pt + j * kBq);
            });
        }
        if (a.key_bias) {
            // Pt[j][..] += key_bias[kb + j]: the same scalar added to every lane of key j's row.
            for (int64_t jj = 0; jj < nk; ++jj) {
                const F b = V::set1(a.key_bias[kb + jj]);
                float* row = tl.pt + jj * kBq;
                V::store(row, V::add(V::load(row), b));
                V::store(row + L, V::add(V::load(row + L), b));
            }
        }
        const int64_t first_masked = a.causal ? a.causal_offset + t0 + 1 : INT64_MAX;
        if (kb + nk > first_masked) {
            const F ninf = V::set1(-INFINITY);
            for (int64_t jj = std::max<int64_t>(0, first_masked - kb); jj < nk; ++jj) {
                const int64_t hidden = kb + jj - a.causal_offset - t0;  // lanes l < hidden are masked
                float* row = tl.pt + jj * kBq;
                V::store(row, V::select(V::first_lanes(hidden), ninf, V::load(row)));
                V::store(row + L, V::select(V::first_lanes(hidden - L), ninf, V::load(row + L)));
            }
        }
    }

    // Keys any lane of the block [t0, t0+nt) sees; lane l sees keys s <= causal_offset + t0 + l.
    static int64_t block_keys(const AttentionArgs& a, int64_t t0, int64_t nt) {
        return a.causal ? std::min<int64_t>(a.S, a.causal_offset + t0 + nt) : a.S;
    }

    // Output rows [t0, t0+nt) of head h, nt <= n_sub·kBq, as n_sub sub-blocks of kBq rows
    // that share each K/V block: it is copied once per kBk keys for all of them (with the
    // K/V of a wide model 3 KiB a row apart, the copy took ~30 % of this function's time in
    // a perf profile when every 2L rows made their own). Each sub-block's arithmetic is that of attending it alone,
    // so the output does not depend on n_sub. Leaves sub-block 0's final max and 1/sum per
    // lane in tl.m, tl.inv (the tap pass calls it with nt <= kBq).
    template <bool kF16>
    static void attend_blocks(const AttentionArgs& a, const BlockTiles& tl, int64_t h, int64_t t0, int64_t nt) {
        const int64_t D = a.head_dim;
        const int64_t hk = h / (a.n_head / a.n_head_kv);
        const int n_sub = static_cast<int>((nt + kBq - 1) / kBq);
        F m0[kMaxSub], m1[kMaxSub], l0[kMaxSub], l1[kMaxSub];
        int64_t sub_keys[kMaxSub];
        int64_t n_keys = 0;
        for (int i = 0; i < n_sub; ++i) {
            // Qt:(D, kBq), lanes >= the sub-block's rows zero; Ot = 0
            const int64_t s0 = t0 + i * kBq, ns = std::min<int64_t>(kBq, t0 + nt - s0);
            float* qt = tl.qt(i);
            for (int64_t d = 0; d < D; ++d) {
                for (int64_t l = 0; l < kBq; ++l) qt[d * kBq + l] = l < ns ? a.q[(s0 + l) * a.q_ld + h * D + d] : 0.0f;
            }
            for (int64_t j = 0; j < D * kBq; j += L) V::store(tl.ot(i) + j, V::zero());
            m0[i] = m1[i] = V::set1(-FLT_MAX);
            l0[i] = l1[i] = V::zero();
            sub_keys[i] = block_keys(a, s0, ns);
            n_keys = std::max(n_keys, sub_keys[i]);
        }
        for (int64_t kb = 0; kb < n_keys; kb += kBk) {
            const float *kp, *vp;
            int64_t ldk;
            kv_block<kF16>(a, tl, hk, kb, std::min<int64_t>(kBk, n_keys - kb), true, &kp, &vp, &ldk);
            for (int i = 0; i < n_sub; ++i) {
                if (kb >= sub_keys[i]) continue;  // causal: this sub-block sees no key of the block
                const int64_t nk = std::min<int64_t>(kBk, sub_keys[i] - kb);
                float* ot = tl.ot(i);
                block_scores(a, tl, tl.qt(i), kp, ldk, t0 + i * kBq, kb, nk);
                // online softmax
                F b0 = m0[i], b1 = m1[i];
                for (int64_t jj = 0; jj < nk; ++jj) {
                    b0 = V::max(b0, V::load(tl.pt + jj * kBq));
                    b1 = V::max(b1, V::load(tl.pt + jj * kBq + L));
                }
                const F alpha0 = vexp<V>(V::sub(m0[i], b0)), alpha1 = vexp<V>(V::sub(m1[i], b1));
                m0[i] = b0;
                m1[i] = b1;
                F s0 = V::zero(), s1 = s0;
                for (int64_t jj = 0; jj < nk; ++jj) {
                    float* row = tl.pt + jj * kBq;
                    const F e0 = vexp<V>(V::sub(V::load(row), b0));
                    const F e1 = vexp<V>(V::sub(V::load(row + L), b1));
                    V::store(row, e0);
                    V::store(row + L, e1);
                    s0 = V::add(s0, e0);
                    s1 = V::add(s1, e1);
                }
                l0[i] = V::fmadd(l0[i], alpha0, s0);
                l1[i] = V::fmadd(l1[i], alpha1, s1);
                // Ot = Ot·alpha + Vᵀ·Pt
                int64_t d = 0;
                for (; d + kDc <= D; d += kDc) pv_tile<kDc>(tl.pt, nk, vp + d, ldk, ot + d * kBq, alpha0, alpha1);
                if (d < D) {
                    dispatch_tail<kDc>(D - d, [&](auto n) {
                        pv_tile<decltype(n)::value>(tl.pt, nk, vp + d, ldk, ot + d * kBq, alpha0, alpha1);
                    });
                }
            }
        }
        // out = Ot / l, transposed back to rows
        for (int i = n_sub - 1; i >= 0; --i) {  // sub-block 0 last: its max and 1/sum stay in tl.m, tl.inv
            const int64_t s0 = t0 + i * kBq, ns = std::min<int64_t>(kBq, t0 + nt - s0);
            V::store(tl.m, m0[i]);
            V::store(tl.m + L, m1[i]);
            V::store(tl.inv, V::div(V::set1(1.0f), l0[i]));
            V::store(tl.inv + L, V::div(V::set1(1.0f), l1[i]));
            const float* ot = tl.ot(i);
            for (int64_t l = 0; l < ns; ++l) {
                float* orow = a.out + (s0 + l) * a.out_ld + h * D;
                for (int64_t d = 0; d < D; ++d) orow[d] = ot[d * kBq + l] * tl.inv[l];
            }
        }
    }

    // The column-mean tap of a block attend_blocks has just computed: col[s] += Σ over its
    // nt rows of the final probability exp(x − m)/l, recomputing the scores.
    template <bool kF16>
    static void tap_block(const AttentionArgs& a, const BlockTiles& tl, int64_t h, int64_t t0, int64_t nt,
                          float* col) {
        const int64_t hk = h / (a.n_head / a.n_head_kv);
        const int64_t n_keys = block_keys(a, t0, nt);
        const F m0 = V::load(tl.m), m1 = V::load(tl.m + L);
        // 1/l on valid lanes, 0 on the padding lanes of a short last block
        const F i0 = V::zero_unless(V::first_lanes(nt), V::load(tl.inv));
        const F i1 = V::zero_unless(V::first_lanes(nt - L), V::load(tl.inv + L));
        for (int64_t kb = 0; kb < n_keys; kb += kBk) {
            const int64_t nk = std::min<int64_t>(kBk, n_keys - kb);
            const float *kp, *vp;
            int64_t ldk;
            kv_block<kF16>(a, tl, hk, kb, nk, false, &kp, &vp, &ldk);
            block_scores(a, tl, tl.qt(0), kp, ldk, t0, kb, nk);
            for (int64_t jj = 0; jj < nk; ++jj) {
                const float* row = tl.pt + jj * kBq;
                const F p0 = V::mul(vexp<V>(V::sub(V::load(row), m0)), i0);
                const F p1 = V::mul(vexp<V>(V::sub(V::load(row + L), m1)), i1);
                col[kb + jj] += V::reduce_add(V::add(p0, p1));
            }
        }
    }

    // The tap's work split: one head per item, so each head's column sums are accumulated
    // in the same order for any thread count. attend_head(h, thread_scratch, col) adds the
    // head's T rows of probabilities to col:(S); this turns the sums into means.
    template <class Fn>
    static void for_each_head_with_tap(const AttentionArgs& a, float* scratch, ThreadPool* pool, Fn&& attend_head) {
        auto body = [&](int64_t h0, int64_t h1, int thread) {
            float* thread_scratch = scratch + thread * attention_scratch_floats(a.S);
            for (int64_t h = h0; h < h1; ++h) {
                float* col = a.col_mean + h * a.S;
                std::fill(col, col + a.S, 0.0f);
                attend_head(h, thread_scratch, col);
                const float inv_t = 1.0f / static_cast<float>(a.T);
                for (int64_t s = 0; s < a.S; ++s) col[s] *= inv_t;
            }
        };
        if (pool) pool->parallel_for(a.n_head, body);
        else body(0, a.n_head, 0);
    }

    template <bool kF16>
    static void attend_blocked(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
        const int64_t n_blocks = (a.T + kBq - 1) / kBq;
        if (a.col_mean) {
            // With the tap, one head per item, its blocks in order; the output is computed
            // as without it.
            return for_each_head_with_tap(a, scratch, pool, [&](int64_t h, float* thread_scratch, float* col) {
                const BlockTiles tl = block_tiles(thread_scratch, a.S, a.head_dim);
                for (int64_t b = 0; b < n_blocks; ++b) {
                    const int64_t t0 = b * kBq, nt = std::min<int64_t>(kBq, a.T - t0);
                    attend_blocks<kF16>(a, tl, h, t0, nt);
                    tap_block<kF16>(a, tl, h, t0, nt, col);
                }
            });
        }
        // Causal: one item per block of kBq rows, in block order 0, n-1, 1, n-2, ... (heads
        // innermost): block b costs ~b+1, so any contiguous range of items has a balanced
        // cost. Otherwise every row costs the same: an item is n_sub blocks sharing each K/V
        // block copy (attend_blocks), a head's items are consecutive, so a thread's run of
        // items reads one head's K/V (2·S·D floats, 512 KiB for the vision encoder) from L2
        // instead of cycling through all heads; n_sub shrinks to leave >= 4 items per thread.
        const int threads = pool ? pool->n_threads() : 1;
        int64_t n_sub = 1;
        if (!a.causal) {
            n_sub = block_tiles(scratch, a.S, a.head_dim).n_sub;
            n_sub = std::clamp<int64_t>(n_blocks * a.n_head / (4 * threads), 1, n_sub);
        }
        const int64_t rows_per_item = n_sub * kBq, items_per_head = (a.T + rows_per_item - 1) / rows_per_item;
        auto body = [&](int64_t i0, int64_t i1, int thread) {
            const BlockTiles tl = block_tiles(scratch + thread * attention_scratch_floats(a.S), a.S, a.head_dim);
            for (int64_t i = i0; i < i1; ++i) {
                if (a.causal) {
                    const int64_t h = i % a.n_head, z = i / a.n_head;
                    const int64_t b = (z & 1) ? n_blocks - 1 - z / 2 : z / 2;
                    const int64_t t0 = b * kBq;
                    attend_blocks<kF16>(a, tl, h, t0, std::min<int64_t>(kBq, a.T - t0));
                } else {
                    const int64_t h = i / items_per_head, t0 = (i % items_per_head) * rows_per_item;
                    attend_blocks<kF16>(a, tl, h, t0, std::min<int64_t>(rows_per_item, a.T - t0));
                }
            }
        };
        const int64_t n_items = a.causal ? n_blocks * a.n_head : items_per_head * a.n_head;
        if (pool) pool->parallel_for(n_items, body);
        else body(0, n_items, 0);
    }

    // -----------------------------------------------------------------------
    // Row kernel

    template <bool kF16>
    static float dot_row(const float* q, const void* k, int64_t index, int64_t D) {
        F acc = V::zero();
        for (int64_t d = 0; d < D; d += L) acc = V::fmadd(V::load_tail(q + d, D - d), load_kv<kF16>(k, index + d, D - d), acc);
        return V::reduce_add(acc);
    }

    // scores[s] = scale · q·K[s] for s < n
    template <bool kF16>
    static void row_scores(const float* q, const void* k, int64_t ld, int64_t offset, int64_t n, int64_t D,
                           float scale, float* scores) {
        const F vs = V::set1(scale);
        int64_t s = 0;
        if (D % L == 0) {
            for (; s + L <= n; s += L) {
                F acc[L];
                for (int i = 0; i < L; ++i) acc[i] = V::zero();
                for (int64_t d = 0; d < D; d += L) {
                    const F qv = V::loadu(q + d);
#pragma GCC unroll 16
                    for (int i = 0; i < L; ++i) acc[i] = V::fmadd(qv, load_kv_full<kF16>(k, (s + i) * ld + offset + d), acc[i]);
                }
                V::storeu(scores + s, V::mul(V::reduce_lanes(acc), vs));
            }
        }
        for (; s < n; ++s) scores[s] = dot_row<kF16>(q, k, s * ld + offset, D) * scale;
    }

    // In place: x[i] = exp(x[i] - max); returns Σ x[i].
    static float exp_shifted_sum(float* x, int64_t n) { return exp_shifted<V>(x, n, max_of<V>(x, n)); }

    // out[d] = inv · Σ_s p[s]·V[s][offset + d]. With kVCols > 1 (narrow vectors), first
    // passes over V of kVCols·L columns, one FMA chain over s per vector (fewer passes
    // over a V that does not fit in L1); the rest L columns per pass, 4 chains over s.
    template <bool kF16>
    static void row_weighted_sum(const float* p, int64_t n, const void* v, int64_t ld, int64_t offset, int64_t D,
                                 float inv, float* out) {
        int64_t d0 = 0;
        if constexpr (kVCols > 1) {
            for (; d0 + kVCols * L <= D; d0 += kVCols * L) {
                F acc[kVCols];
                for (int c = 0; c < kVCols; ++c) acc[c] = V::zero();
                for (int64_t s = 0; s < n; ++s) {
                    const F ps = V::set1(p[s]);
#pragma GCC unroll 8
                    for (int c = 0; c < kVCols; ++c) acc[c] = V::fmadd(ps, load_kv_full<kF16>(v, s * ld + offset + d0 + c * L), acc[c]);
                }
                for (int c = 0; c < kVCols; ++c) V::storeu(out + d0 + c * L, V::mul(acc[c], V::set1(inv)));
            }
        }
        for (int64_t d = d0; d < D; d += L) {
            const int64_t w = D - d;
            F a0 = V::zero(), a1 = a0, a2 = a0, a3 = a0;
            int64_t s = 0;
            for (; s + 4 <= n; s += 4) {
                const int64_t i = s * ld + offset + d;
                a0 = V::fmadd(V::set1(p[s]), load_kv<kF16>(v, i, w), a0);
                a1 = V::fmadd(V::set1(p[s + 1]), load_kv<kF16>(v, i + ld, w), a1);
                a2 = V::fmadd(V::set1(p[s + 2]), load_kv<kF16>(v, i + 2 * ld, w), a2);
                a3 = V::fmadd(V::set1(p[s + 3]), load_kv<kF16>(v, i + 3 * ld, w), a3);
            }
            for (; s < n; ++s) a0 = V::fmadd(V::set1(p[s]), load_kv<kF16>(v, s * ld + offset + d, w), a0);
            const F sum = V::add(V::add(a0, a1), V::add(a2, a3));
            V::store_tail(out + d, w, V::mul(sum, V::set1(inv)));
        }
    }

    // Output row t of head h; with `col`, adds its probabilities to col[0..n).
    template <bool kF16>
    static void attend_row(const AttentionArgs& a, int64_t t, int64_t h, float* scores, float* col) {
        const int64_t D = a.head_dim, hk = h / (a.n_head / a.n_head_kv);
        const int64_t n = a.causal ? std::min<int64_t>(a.S, a.causal_offset + t + 1) : a.S;
        float* orow = a.out + t * a.out_ld + h * D;
        if (n <= 0) {
            std::fill(orow, orow + D, 0.0f);
            return;
        }
        row_scores<kF16>(a.q + t * a.q_ld + h * D, a.k, a.kv_ld, hk * D, n, D, a.scale, scores);
        if (a.key_bias) {
            for (int64_t s = 0; s < n; ++s) scores[s] += a.key_bias[s];
        }
        const float inv = 1.0f / exp_shifted_sum(scores, n);
        row_weighted_sum<kF16>(scores, n, a.v, a.kv_ld, hk * D, D, inv, orow);
        if (col) {
            for (int64_t s = 0; s < n; ++s) col[s] += scores[s] * inv;
        }
    }

    template <bool kF16>
    static void attend_rows(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
        if (a.col_mean) {
            // one head per item, rows in order
            return for_each_head_with_tap(a, scratch, pool, [&](int64_t h, float* scores, float* col) {
                for (int64_t t = 0; t < a.T; ++t) attend_row<kF16>(a, t, h, scores, col);
            });
        }
        auto body = [&](int64_t i0, int64_t i1, int thread) {
            float* scores = scratch + thread * attention_scratch_floats(a.S);
            for (int64_t i = i0; i < i1; ++i) attend_row<kF16>(a, i / a.n_head, i % a.n_head, scores, nullptr);
        };
        if (pool) pool->parallel_for(a.T * a.n_head, body);
        else body(0, a.T * a.n_head, 0);
    }

    static void run(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
        const bool f16 = a.kv_type == DType::f16;
        const bool blocked =
            a.T >= kMinBlockedRows && a.head_dim <= kMaxBlockedD && (!a.causal || a.causal_offset >= 0);
        if (blocked) {
            if (f16) attend_blocked<true>(a, scratch, pool);
            else attend_blocked<false>(a, scratch, pool);
        } else {
            if (f16) attend_rows<true>(a, scratch, pool);
            else attend_rows<false>(a, scratch, pool);
        }
    }
};

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END
