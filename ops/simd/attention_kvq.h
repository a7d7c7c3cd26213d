// Width-generic attention over a q8_0 / q4_0 KV cache (contract: ops/attention_kvq.h),
// written once against a vector-traits type V (ops/simd/vec_*.h) and instantiated by
// ops/attention_kvq_avx2.cpp (8 lanes), attention_kvq_avx512.cpp (16), attention_kvq_neon.cpp
// (4). L = V::kLanes below; D = head_dim, a multiple of 32, hence of L.
//
// One work item is (KV head, up to R = 16 query slots), a slot being a (query row, query
// head) pair reading that KV head, rows major: decode (T = 1) has the group's heads in one
// item, prefill up to 16 of them, so the dequantization of a K/V block is shared by every
// query that reads it. Flash-style, with an online softmax per slot:
//   for each block of B = 64 keys [kb, kb+nk) the item's slots see:
//     Kc, Vc:(nk, D) f32     = the item's KV head, dequantized (d·q, ggml's product)
//     for each slot r (keys its row sees: nr <= nk, causal):
//       p:(nr) = scale · Kc · q_r      (L keys at a time: D/L fmadds each, reduced L-to-1)
//       m' = max(m_r, max p), p = exp(p − m'), l_r = l_r·e^{m_r−m'} + Σ p
//       O_r:(D) = O_r·e^{m_r−m'} + Vcᵀ · p   (up to 4 vectors of columns per pass over Vc)
//   out_r = O_r / l_r
// Every output element is computed by one item with the same arithmetic whatever the
// thread count, so outputs are identical for any pool size.
//
// Include only from an ISA translation unit, after its vec_<isa>.h; everything here has
// internal linkage, so each unit keeps its own copy compiled with its own flags.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/attention_kvq.h"
#include "ops/simd/exp.h"
#include "quant/formats.h"
#include "runtime/fp16.h"

#include "ops/simd/exact_fp.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse::simd {
namespace {

template <class V>
struct AttentionKvq {
    using F = typename V::F;
    static constexpr int L = V::kLanes;
    static constexpr int64_t kB = kAttentionKvqKeysPerBlock;  // keys per block
    static constexpr int64_t kR = kAttentionKvqRowsPerItem;   // query slots per item
    static constexpr int kPvVectors = 4;                       // output vectors per pass over Vc

    struct Tiles {
        float* kc;  // (kB, D)
        float* vc;  // (kB, D)
        float* o;   // (kR, D) running numerators
        float* p;   // (kB) one row's scores / weights
        float* m;   // (kR) running max
        float* l;   // (kR) running sum
    };

    static Tiles tiles(float* thread_scratch, int64_t S, int64_t D) {
        Tiles t;
        t.kc = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(thread_scratch + S) + 63) & ~uintptr_t{63});
        t.vc = t.kc + kB * D;
        t.o = t.vc + kB * D;
        t.p = t.o + kR * D;
        t.m = t.p + kB;
        t.l = t.m + kR;
        return t;
    }

    // One row's head: head_blocks blocks of 32 values -> out:(head_blocks·32) f32. Plain loops
    // over 32 values: the compiler vectorises the widening with the unit's ISA flags.
    static void dequantize_head_q8(const BlockQ8_0* b, int64_t head_blocks, float* out) {
        for (int64_t ib = 0; ib < head_blocks; ++ib, out += kQK) {
            const float d = f16_to_f32(b[ib].d);
            for (int i = 0; i < kQK; ++i) out[i] = d * static_cast<float>(b[ib].qs[i]);
        }
    }

    static void dequantize_head_q4(const BlockQ4_0* b, int64_t head_blocks, float* out) {
        for (int64_t ib = 0; ib < head_blocks; ++ib, out += kQK) {
            const float d = f16_to_f32(b[ib].d);
            // The nibbles split 8 bytes at a time in 64-bit words (per-byte masks, so
            // byte order does not matter), then one u8 -> f32 loop the compiler
            // vectorises; byte-wise nibble loops compiled to scalar inserts.
            // (float)u − 8 is exact, so d·((float)u − 8) is ggml's d·(u − 8).
            constexpr uint64_t kLow = 0x0f0f0f0f0f0f0f0full;
            uint64_t w[2], u64[4];
            std::memcpy(w, b[ib].qs, sizeof(w));
            u64[0] = w[0] & kLow;
            u64[1] = w[1] & kLow;
            u64[2] = (w[0] >> 4) & kLow;
            u64[3] = (w[1] >> 4) & kLow;
            uint8_t u[kQK];
            std::memcpy(u, u64, sizeof(u));
            for (int i = 0; i < kQK; ++i) out[i] = d * (static_cast<float>(u[i]) - 8.0f);
        }
    }

    // Keys [kb, kb+nk) of kv head hk, K (value_side false) or V -> dst:(nk, D) f32. A mixed
    // cache (a.mixed_rows) resolves each slot to its q8_0 or q4_0 row.
    static void dequantize_rows(const AttentionArgs& a, bool value_side, int64_t hk, int64_t kb, int64_t nk,
                                float* dst) {
        const int64_t D = a.head_dim, row_blocks = a.kv_ld / kQK, head_blocks = D / kQK;
        const void* src = value_side ? a.v : a.k;
        if (a.mixed_rows) {
            const void* low = value_side ? a.v_low : a.k_low;
            for (int64_t j = 0; j < nk; ++j) {
                const int32_t row = a.mixed_rows[kb + j];
                if (row >= 0) {
                    dequantize_head_q8(static_cast<const BlockQ8_0*>(src) + row * row_blocks + hk * head_blocks,
                                       head_blocks, dst + j * D);
                } else {
                    dequantize_head_q4(static_cast<const BlockQ4_0*>(low) + static_cast<int64_t>(~row) * row_blocks +
                                           hk * head_blocks,
                                       head_blocks, dst + j * D);
                }
            }
        } else if (a.kv_type == DType::q8_0) {
            const BlockQ8_0* blocks = static_cast<const BlockQ8_0*>(src);
            for (int64_t j = 0; j < nk; ++j) {
                dequantize_head_q8(blocks + (kb + j) * row_blocks + hk * head_blocks, head_blocks, dst + j * D);
            }
        } else {
            const BlockQ4_0* blocks = static_cast<const BlockQ4_0*>(src);
            for (int64_t j = 0; j < nk; ++j) {
                dequantize_head_q4(blocks + (kb + j) * row_blocks + hk * head_blocks, head_blocks, dst + j * D);
            }
        }
    }

    // p[j] = scale · q · Kc[j] for j < n
    static void scores(const float* q, const float* kc, int64_t n, int64_t D, float scale, float* p) {
        const F vs = V::set1(scale);
        int64_t j = 0;
        for (; j + L <= n; j += L) {
            F acc[L];
#pragma GCC unroll 16
            for (int i = 0; i < L; ++i) acc[i] = V::zero();
            for (int64_t d = 0; d < D; d += L) {
                const F qv = V::loadu(q + d);
#pragma GCC unroll 16
                for (int i = 0; i < L; ++i) acc[i] = V::fmadd(qv, V::load(kc + (j + i) * D + d), acc[i]);
            }
            V::store(p + j, V::mul(V::reduce_lanes(acc), vs));
        }
        for (; j < n; ++j) {
            F acc = V::zero();
            for (int64_t d = 0; d < D; d += L) acc = V::fmadd(V::loadu(q + d), V::load(kc + j * D + d), acc);
            p[j] = V::reduce_add(acc) * scale;
        }
    }


    // o[0..NV·L) = o·alpha + Σ_j p[j]·Vc[j][0..NV·L)
    template <int NV>
    static void pv_pass(const float* p, int64_t n, const float* vc, int64_t D, float alpha, float* o) {
        F acc[NV];
        const F va = V::set1(alpha);
#pragma GCC unroll 4
        for (int c = 0; c < NV; ++c) acc[c] = V::mul(V::loadu(o + c * L), va);
        for (int64_t j = 0; j < n; ++j) {
            const F pj = V::set1(p[j]);
#pragma GCC unroll 4
            for (int c = 0; c < NV; ++c) acc[c] = V::fmadd(pj, V::load(vc + j * D + c * L), acc[c]);
        }
#pragma GCC unroll 4
        for (int c = 0; c < NV; ++c) V::storeu(o + c * L, acc[c]);
    }

    static void weighted_sum(const float* p, int64_t n, const float* vc, int64_t D, float alpha, float* o) {
        int64_t d = 0;
        for (; d + kPvVectors * L <= D; d += kPvVectors * L) pv_pass<kPvVectors>(p, n, vc + d, D, alpha, o + d);
        switch ((D - d) / L) {
            case 3: pv_pass<3>(p, n, vc + d, D, alpha, o + d); break;
            case 2: pv_pass<2>(p, n, vc + d, D, alpha, o + d); break;
            case 1: pv_pass<1>(p, n, vc + d, D, alpha, o + d); break;
            default: break;
        }
    }

    // Query slots [slot0, slot0+ns) of kv head hk; slot i is (row i / group, head
    // hk·group + i % group), so the heads sharing K/V share its dequantized blocks.
    static void attend_item(const AttentionArgs& a, const Tiles& tl, int64_t hk, int64_t slot0, int64_t ns) {
        const int64_t D = a.head_dim, group = a.n_head / a.n_head_kv;
        auto row_of = [&](int64_t r) { return (slot0 + r) / group; };
        auto keys_of_row = [&](int64_t t) { return a.causal ? std::min<int64_t>(a.S, a.causal_offset + t + 1) : a.S; };
        const int64_t n_keys = keys_of_row(row_of(ns - 1));  // the last slot's row sees the most
        std::fill(tl.o, tl.o + ns * D, 0.0f);
        for (int64_t r = 0; r < ns; ++r) {
            tl.m[r] = -FLT_MAX;
            tl.l[r] = 0.0f;
        }
        for (int64_t kb = 0; kb < n_keys; kb += kB) {
            const int64_t nk = std::min<int64_t>(kB, n_keys - kb);
            dequantize_rows(a, false, hk, kb, nk, tl.kc);
            dequantize_rows(a, true, hk, kb, nk, tl.vc);
            for (int64_t r = 0; r < ns; ++r) {
                const int64_t t = row_of(r), h = hk * group + (slot0 + r) % group;
                const int64_t nr = std::min<int64_t>(nk, keys_of_row(t) - kb);
                if (nr <= 0) continue;
                scores(a.q + t * a.q_ld + h * D, tl.kc, nr, D, a.scale, tl.p);
                const float m_new = std::max(tl.m[r], max_of<V>(tl.p, nr));
                const float alpha = std::exp(tl.m[r] - m_new);
                tl.m[r] = m_new;
                tl.l[r] = tl.l[r] * alpha + exp_shifted<V>(tl.p, nr, m_new);
                weighted_sum(tl.p, nr, tl.vc, D, alpha, tl.o + r * D);
            }
        }
        for (int64_t r = 0; r < ns; ++r) {
            const int64_t t = row_of(r), h = hk * group + (slot0 + r) % group;
            float* orow = a.out + t * a.out_ld + h * D;
            if (tl.l[r] == 0.0f) {  // a row that sees no key
                std::fill(orow, orow + D, 0.0f);
                continue;
            }
            const F inv = V::set1(1.0f / tl.l[r]);
            for (int64_t d = 0; d < D; d += L) V::storeu(orow + d, V::mul(V::loadu(tl.o + r * D + d), inv));
        }
    }

    static void run(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
        const int64_t stride = attention_kvq_scratch_floats(a.S, a.head_dim);
        const int64_t slots = a.T * (a.n_head / a.n_head_kv);  // per kv head
        const int64_t n_chunks = (slots + kR - 1) / kR;
        // Items in chunk order 0, n-1, 1, n-2, ... (kv heads innermost): with a causal mask
        // chunk c costs ~c+1, so any contiguous range of items has a balanced cost.
        auto body = [&](int64_t i0, int64_t i1, int thread) {
            const Tiles tl = tiles(scratch + thread * stride, a.S, a.head_dim);
            for (int64_t i = i0; i < i1; ++i) {
                const int64_t hk = i % a.n_head_kv, z = i / a.n_head_kv;
                const int64_t c = (z & 1) ? n_chunks - 1 - z / 2 : z / 2;
                const int64_t slot0 = c * kR;
                attend_item(a, tl, hk, slot0, std::min<int64_t>(kR, slots - slot0));
            }
        };
        if (pool) pool->parallel_for(n_chunks * a.n_head_kv, body);
        else body(0, n_chunks * a.n_head_kv, 0);
    }
};

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END
