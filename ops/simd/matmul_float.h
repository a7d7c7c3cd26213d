// Width-generic f32 / f16 / bf16-weight matmul, f32 activations, written once against a
// vector-traits type V (ops/simd/vec_*.h) and instantiated by ops/matmul_float_avx2.cpp
// (8 lanes, MR = 6) and matmul_float_avx512.cpp (16 lanes, MR = 12). L = V::kLanes.
//
//   x:(M,K) f32, W:(N,K) f32|f16|bf16  ->  y:(M,N) = x·Wᵀ + bias, f32 accumulation
//
// Weights are repacked once into panels of kPanel = 2·L output columns, K-major:
// panel p = W[kPanel·p .. kPanel·p + kPanel-1][k] for k = 0..K-1, kPanel contiguous
// values per k, kept in the stored type (f16/bf16 are widened in registers: half the
// bytes of an f32 panel for the memory-bound decode, and cheap next to the FMAs) and
// zero-padded past N.
//
// Microkernel: MR rows of x × kPanel·NP columns in 2·NP vectors per row; per k one
// broadcast of x[m][k] and 2·NP FMAs per row. Prefill/encoder shapes use MR × kPanel
// (2·MR accumulators: 24 of 32 zmm, 12 of 16 ymm) over all of K (see run for why no K
// blocking). Decode (M <= 4) runs over all of K with two panels at once (4+
// independent FMA chains per row). Every output is one FMA chain over k in order, so
// the result does not depend on M, the tile or the thread count.
//
// Include only from an ISA translation unit, after its vec_<isa>.h.
#pragma once

#include <cstdint>
#include <cstring>

#include "ops/matmul.h"
#include "ops/simd/exact_fp.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse::simd {
namespace {

struct Bf16 {
    uint16_t bits;
};

template <class V, int kMR>
struct FloatGemm {
    using F = typename V::F;
    using Mask = typename V::Mask;
    static constexpr int L = V::kLanes;
    static constexpr int kPanel = 2 * L;

    // kPanel aligned weights of one panel row -> f32 lanes
    static F widen(const float* p) { return V::load(p); }
    static F widen(const uint16_t* p) { return V::load_f16_aligned(p); }  // f16
    static F widen(const Bf16* p) { return V::load_bf16_aligned(reinterpret_cast<const uint16_t*>(p)); }

    // y[m0..m0+MR)[n0 .. n0+kPanel·NP) (+)= x[m][k0..k1) · panel columns. `first`: start
    // from zero instead of y; `last`: add the bias.
    template <class T, int MR, int NP>
    static void tile(const T* panel, int64_t pstride, const MatmulArgs& a, int64_t m0, int64_t n0, int64_t k0,
                     int64_t k1, bool first, bool last) {
        constexpr int NV = 2 * NP;
        Mask mask[NV];
        for (int v = 0; v < NV; ++v) mask[v] = V::first_lanes(a.N - (n0 + L * v));
        F acc[MR][NV];
        for (int m = 0; m < MR; ++m) {
            for (int v = 0; v < NV; ++v) {
                acc[m][v] = first ? V::zero() : V::load_masked(a.y + (m0 + m) * a.ldy + n0 + L * v, mask[v]);
            }
        }
        const float* xr = a.x + m0 * a.ldx;
        const int64_t ldx = a.ldx;
#pragma GCC unroll 2
        for (int64_t k = k0; k < k1; ++k) {
            F b[NV];
            for (int p = 0; p < NP; ++p) {
                b[2 * p] = widen(panel + p * pstride + k * kPanel);
                b[2 * p + 1] = widen(panel + p * pstride + k * kPanel + L);
            }
            for (int m = 0; m < MR; ++m) {
                const F xv = V::broadcast(xr + m * ldx + k);
                for (int v = 0; v < NV; ++v) acc[m][v] = V::fmadd(xv, b[v], acc[m][v]);
            }
        }
        for (int v = 0; v < NV; ++v) {
            const F bias = last && a.bias ? V::load_masked(a.bias + n0 + L * v, mask[v]) : V::zero();
            for (int m = 0; m < MR; ++m) {
                const F r = last && a.bias ? V::add(acc[m][v], bias) : acc[m][v];
                V::store_masked(a.y + (m0 + m) * a.ldy + n0 + L * v, mask[v], r);
            }
        }
    }

    template <class T, int NP, int MRmax>
    static void tile_rows(int64_t mr, const T* panel, int64_t pstride, const MatmulArgs& a, int64_t m0, int64_t n0,
                          int64_t k0, int64_t k1, bool first, bool last) {
        if constexpr (MRmax > 0) {
            if (mr == MRmax) tile<T, MRmax, NP>(panel, pstride, a, m0, n0, k0, k1, first, last);
            else tile_rows<T, NP, MRmax - 1>(mr, panel, pstride, a, m0, n0, k0, k1, first, last);
        }
    }

    template <class T>
    static void run(const MatmulArgs& a, ThreadPool* pool) {
        const T* packed = static_cast<const T*>(a.packed);
        const int64_t P = (a.N + kPanel - 1) / kPanel;
        const int64_t pstride = a.K * kPanel;
        if (a.M <= 4) {
            // Decode: two panels per tile, all of K at once.
            auto body = [&](int64_t p0, int64_t p1, int) {
                int64_t p = p0;
                for (; p + 2 <= p1; p += 2)
                    tile_rows<T, 2, 4>(a.M, packed + p * pstride, pstride, a, 0, p * kPanel, 0, a.K, true, true);
                if (p < p1) tile_rows<T, 1, 4>(a.M, packed + p * pstride, pstride, a, 0, p * kPanel, 0, a.K, true, true);
            };
            if (pool) pool->parallel_for_grain(P, 2, body);
            else body(0, P, 0);
            return;
        }
        // No K blocking: measured on the SigLIP shapes, splitting K into L1-sized
        // chunks (partial sums through y) was 10-35% slower than one pass over K
        // (the panel streams from L2 well; the per-chunk tile epilogue does not pay).
        const int64_t KC = a.K;
        auto body = [&](int64_t p0, int64_t p1, int) {
            for (int64_t k0 = 0; k0 < a.K; k0 += KC) {
                const int64_t k1 = k0 + KC < a.K ? k0 + KC : a.K;
                const bool first = k0 == 0, last = k1 == a.K;
                for (int64_t p = p0; p < p1; ++p) {
                    const T* panel = packed + p * pstride;
                    int64_t m = 0;
                    for (; m + kMR <= a.M; m += kMR) tile<T, kMR, 1>(panel, pstride, a, m, p * kPanel, k0, k1, first, last);
                    if (m < a.M) tile_rows<T, 1, kMR - 1>(a.M - m, panel, pstride, a, m, p * kPanel, k0, k1, first, last);
                }
            }
        };
        if (pool) pool->parallel_for(P, body);
        else body(0, P, 0);
    }

    // W:(N,K) -> panels of kPanel columns, K-major, in the stored element type (2 or 4 bytes).
    template <int Bytes>
    static void pack_panels(const void* w, int64_t N, int64_t K, void* out) {
        const uint8_t* src = static_cast<const uint8_t*>(w);
        uint8_t* dst = static_cast<uint8_t*>(out);
        const int64_t P = (N + kPanel - 1) / kPanel;
        for (int64_t p = 0; p < P; ++p) {
            for (int64_t k = 0; k < K; ++k) {
                uint8_t* d = dst + ((p * K + k) * kPanel) * Bytes;
                for (int j = 0; j < kPanel; ++j) {
                    const int64_t n = p * kPanel + j;
                    if (n < N) std::memcpy(d + j * Bytes, src + (n * K + k) * Bytes, Bytes);
                    else std::memset(d + j * Bytes, 0, Bytes);
                }
            }
        }
    }
    template <int Bytes>
    static int64_t packed_bytes_panels(int64_t N, int64_t K) {
        return (N + kPanel - 1) / kPanel * kPanel * K * Bytes;
    }
};

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END
