// Width-generic W8A8 / W4A8 matmul skeleton for Q8_0 and Q4_0 weights, written once
// against a vector-traits type V (ops/simd/vec_*.h) and an ISA's integer block product
// Dot, instantiated by ops/matmul_quant_avx2.cpp (vpmaddubsw, 8 rows per group) and
// matmul_quant_avx512.cpp (VNNI vpdpbusd, 16 rows per group).
//
//   x:(M,K) f32 -> q8_0 rows (ggml-cpu x86 rounding, ops/simd/quantize_activations.h)
//   W:(N,K) repacked at load into groups of R = L rows (ops/matmul_quant_x86.h)
//   y:(M,N) = Σ_b fma-in-order( sumi(m,n,b), d_w(n,b)·d_x(m,b) ) + bias
//
// One vector lane per weight row: Dot::block leaves in lane r of s[m][g] the signed
// integer dot product of block b between activation row m and weight row r of group g
// (how depends on the ISA's int8 instructions; see the units). It is converted to f32
// (exact) and accumulated with one FMA against d_w·d_x (exact). Blocks are accumulated
// in order, so every output equals the scalar oracle (ops/matmul_q8_scalar.cpp) bit for
// bit, whatever the tile, M or thread count.
//
// Decode (M <= kSmallM) has each thread quantize the few rows itself (no barrier) and
// streams the packed weights once; prefill runs an kMR-row register tile over all of K
// per weight panel of one or two groups (kPairGroups: two groups for every M, else two
// only for M = 1, where more loads in flight pay and registers are plenty). Work is split
// over N (groups of R rows) with no allocation.
#pragma once

#include <cstdint>

#include "ops/matmul.h"
#include "ops/matmul_quant_x86.h"
#include "ops/simd/exact_fp.h"
#include "ops/simd/quantize_activations.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse::simd {
namespace {

template <class V, class Dot, int kMR, bool kPairGroups>
struct QuantGemm {
    using F = typename V::F;
    using I = typename Dot::I;
    static constexpr int R = V::kLanes;

    // Rows [m0, m0+MR) × groups [g0, g0+NG): all of K, then bias and a masked store.
    template <bool Q4, int MR, int NG>
    static void tile(const uint8_t* packed, int64_t g0, int64_t nb, const Q8Rows& xq, int64_t m0,
                     const MatmulArgs& a) {
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
        F acc[MR][NG];
        for (int m = 0; m < MR; ++m)
            for (int g = 0; g < NG; ++g) acc[m][g] = V::zero();

        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* wb[NG];
            for (int g = 0; g < NG; ++g) wb[g] = wg[g] + b * QB;
            const int8_t* xb[MR];
            int32_t xsum[MR];
            for (int m = 0; m < MR; ++m) {
                xb[m] = xr[m] + b * 32;
                xsum[m] = xs[m][b];
            }
            I s[MR][NG];
            Dot::template block<Q4, MR, NG>(wb, xb, xsum, s);
            F dw[NG];
            for (int g = 0; g < NG; ++g) dw[g] = V::load_f16_aligned(reinterpret_cast<const uint16_t*>(wg[g] + nb * QB + b * 2 * R));
            for (int m = 0; m < MR; ++m) {
                const F dx = V::set1(xd[m][b]);
                for (int g = 0; g < NG; ++g) acc[m][g] = V::fmadd(Dot::to_f32(s[m][g]), V::mul(dw[g], dx), acc[m][g]);
            }
        }
        for (int g = 0; g < NG; ++g) {
            const int64_t n0 = (g0 + g) * R;
            const auto mask = V::first_lanes(a.N - n0);
            const F bias = a.bias ? V::load_masked(a.bias + n0, mask) : V::zero();
            for (int m = 0; m < MR; ++m) {
                // acc + bias, the same single rounding as the oracle's acc + bias[n]
                V::store_masked(a.y + (m0 + m) * a.ldy + n0, mask, a.bias ? V::add(acc[m][g], bias) : acc[m][g]);
            }
        }
    }

    // mr (< kMR) rows from m0
    template <bool Q4, int NG, int MRmax = kMR - 1>
    static void rows_tail(const uint8_t* packed, int64_t g, int64_t nb, const Q8Rows& xq, int64_t m0, int64_t mr,
                          const MatmulArgs& a) {
        if constexpr (MRmax > 0) {
            if (mr == MRmax) tile<Q4, MRmax, NG>(packed, g, nb, xq, m0, a);
            else rows_tail<Q4, NG, MRmax - 1>(packed, g, nb, xq, m0, mr, a);
        }
    }

    template <bool Q4, int NG>
    static void all_rows(const uint8_t* packed, int64_t g, int64_t nb, const Q8Rows& xq, const MatmulArgs& a) {
        int64_t m = 0;
        for (; m + kMR <= a.M; m += kMR) tile<Q4, kMR, NG>(packed, g, nb, xq, m, a);
        if (m < a.M) rows_tail<Q4, NG>(packed, g, nb, xq, m, a.M - m, a);
    }

    // Groups [g0, g1) against all M rows of xq.
    template <bool Q4>
    static void multiply_groups(const uint8_t* packed, int64_t g0, int64_t g1, const Q8Rows& xq, const MatmulArgs& a) {
        const int64_t nb = a.K / 32;
        int64_t g = g0;
        if (kPairGroups || a.M == 1) {
            for (; g + 2 <= g1; g += 2) all_rows<Q4, 2>(packed, g, nb, xq, a);
        }
        for (; g < g1; ++g) all_rows<Q4, 1>(packed, g, nb, xq, a);
    }

    // Weights and scratch (Dot::kQ8WeightOffset: 128 for unsigned-by-signed products).
    static bool supports(int64_t, int64_t K, int64_t) { return K % 32 == 0; }
    template <bool Q4>
    static int64_t packed_bytes(int64_t N, int64_t K) {
        return x86q::packed_bytes(Q4, R, N, K);
    }
    static void pack_q8(const void* w, int64_t N, int64_t K, void* out) {
        x86q::pack_q8_0(w, N, K, R, Dot::kQ8WeightOffset, out);
    }
    static void pack_q4(const void* w, int64_t N, int64_t K, void* out) { x86q::pack_q4_0(w, N, K, R, out); }
    static int64_t scratch(int64_t M_max, int64_t K, int64_t, int n_threads) {
        return x86q::scratch_bytes(M_max, K, n_threads);
    }

    template <bool Q4>
    static void run(const MatmulArgs& a, ThreadPool* pool) {
        const uint8_t* packed = static_cast<const uint8_t*>(a.packed);
        const int64_t G = x86q::groups(a.N, R);
        const int threads = pool ? pool->n_threads() : 1;
        if (a.M <= x86q::kSmallM || threads == 1) {
            // Decode: every thread quantizes the few rows itself (no barrier).
            auto body = [&](int64_t g0, int64_t g1, int t) {
                const Q8Rows xq = a.M <= x86q::kSmallM ? x86q::thread_rows(a.scratch, a.M, a.K, t)
                                                       : x86q::shared_rows(a.scratch, a.K);
                QuantizeQ8<V>::rows(a.x, a.ldx, 0, a.M, xq);
                multiply_groups<Q4>(packed, g0, g1, xq, a);
            };
            if (pool) pool->parallel_for_grain(G, 2, body);
            else body(0, G, 0);
            return;
        }
        const Q8Rows xq = x86q::shared_rows(a.scratch, a.K);
        pool->parallel_for(a.M, [&](int64_t m0, int64_t m1, int) { QuantizeQ8<V>::rows(a.x, a.ldx, m0, m1, xq); });
        pool->parallel_for_grain(G, 2, [&](int64_t g0, int64_t g1, int) { multiply_groups<Q4>(packed, g0, g1, xq, a); });
    }

    // The registry entry of this GEMM for Q4_0 (Q4) or Q8_0 weights, with q8_0 activations.
    // Each ISA unit exports one per weight type.
    template <bool Q4>
    static constexpr MatmulKernel kernel(const char* name, Isa isa, int priority) {
        return {.name = name, .isa = isa, .w_type = Q4 ? DType::q4_0 : DType::q8_0, .priority = priority,
                .activations = MatmulActivations::q8_0, .supports = &supports,
                .packed_bytes = &packed_bytes<Q4>, .pack = Q4 ? &pack_q4 : &pack_q8, .scratch_bytes = &scratch,
                .run = &run<Q4>};
    }
};

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END

// The registry entries of one ISA unit's QuantGemm instantiation `Gemm`: q8_0_q8_0__<suffix>
// and q4_0_q8_0__<suffix> (named in ops/kernel_registry.cpp). Expanded in namespace glimpse.
#define GLIMPSE_QUANT_GEMM_KERNELS(Gemm, suffix, isa, priority)                                                      \
    extern const MatmulKernel q8_0_q8_0__##suffix = Gemm::kernel<false>("q8_0_q8_0__" #suffix, isa, priority);        \
    extern const MatmulKernel q4_0_q8_0__##suffix = Gemm::kernel<true>("q4_0_q8_0__" #suffix, isa, priority);
