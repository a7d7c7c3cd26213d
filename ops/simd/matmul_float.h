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

    // The registry entry of this GEMM for weights stored as W (float, uint16_t for f16, Bf16):
    // f32 activations, weights repacked into panels. Each ISA unit exports one per weight type.
    template <class W>
    static constexpr MatmulKernel kernel(const char* name, Isa isa, DType w_type, int priority) {
        return {.name = name, .isa = isa, .w_type = w_type, .priority = priority,
                .activations = MatmulActivations::f32, .packed_bytes = &packed_bytes_panels<sizeof(W)>,
                .pack = &pack_panels<sizeof(W)>, .run = &run<W>};
    }
};


// Cache-blocked f16-weight GEMM with ggml's activation rounding (MatmulActivations::f16):
//
//   x:(M,K) f32 rounded to f16, W:(N,K) f16  ->  y:(M,N) = round_f16(x)·Wᵀ + bias, f32 FMAs
//
// For the encoder shapes (M = 1024 tokens, K,N in {768, 3072}) on CPUs without AMX. The
// FloatGemm kernel above broadcasts x straight from its rows and runs each 6-row tile over
// all of K: each panel of 16 columns re-reads all of x (3-12 MB, beyond L2) once, so on a
// Zen 3 it ran at ~60 GFLOP/s of a ~2×110 peak (issue 27). Here, the BLIS loop order:
//
//   task (MC rows × a range of panels) — threads claim tasks
//     for each K block of KC:
//       pack the MC×KC block of x, rounded to f16 (V::round_f16), into kMR-row tiles,
//         k-major (tile[k·kMR + m]): one pointer and immediate offsets for the broadcasts
//       for each panel of 2·L columns:
//         widen its KC×2L f16 slice once to f32 (16 KiB, stays in L1 for all MC/kMR tiles)
//         for each kMR-row tile: kMR × 2L outputs over KC steps, 2·kMR accumulators
//
// The packed A block (MC·KC·4 = 96 KiB for MC = 96, KC = 256) stays in L2 across the
// panels; partial sums go through y between K blocks (exact: y holds the f32 chain value),
// so every output is one FMA chain over k in order and does not depend on M, the tiling
// or the thread count. Weights use FloatGemm's panel layout (pack_panels<2>); up to 4 rows
// (decode) run FloatGemm's GEMV path on the rounded rows instead.
// V must provide round_f16(F) (x -> nearest-even f16 -> f32).
template <class V, int kMR>
struct BlockedF16Gemm {
    using F = typename V::F;
    static constexpr int L = V::kLanes;
    static constexpr int kPanel = 2 * L;
    static constexpr int64_t kKC = 256;            // K block: the widened panel slice is kKC·kPanel·4 bytes
    static constexpr int64_t kMC = kMR * 16;       // rows per task: the packed A block is kMC·kKC·4 bytes
    static constexpr int64_t kAFloats = kMC * kKC;
    static constexpr int64_t kBFloats = kKC * kPanel;
    static constexpr int64_t kThreadFloats = kAFloats + kBFloats;

    // x rows [m0, m0+rows) × k in [k0, k0+kc) -> tiles of kMR rows, tile[k·kMR + m], f16-rounded.
    // Rows past `rows` in the last tile are not written (the kernel for fewer rows skips them).
    static void pack_a(const MatmulArgs& a, int64_t m0, int64_t rows, int64_t k0, int64_t kc, float* dst) {
        alignas(64) float tmp[L];
        for (int64_t t = 0; t * kMR < rows; ++t) {
            float* tile = dst + t * kMR * kc;
            const int64_t r_end = rows - t * kMR < kMR ? rows - t * kMR : kMR;
            for (int64_t r = 0; r < r_end; ++r) {
                const float* xr = a.x + (m0 + t * kMR + r) * a.ldx + k0;
                int64_t k = 0;
                for (; k + L <= kc; k += L) {
                    V::store(tmp, V::round_f16(V::loadu(xr + k)));
                    for (int j = 0; j < L; ++j) tile[(k + j) * kMR + r] = tmp[j];
                }
                if (k < kc) {
                    V::store(tmp, V::round_f16(V::load_tail(xr + k, kc - k)));
                    for (int64_t j = 0; k + j < kc; ++j) tile[(k + j) * kMR + r] = tmp[j];
                }
            }
        }
    }

    // y[m0..m0+R)[n0..n0+cols) (+)= tile · slice over kc steps; cols <= kPanel.
    template <int R>
    static void micro(const float* tile, const float* slice, int64_t kc, const MatmulArgs& a, int64_t m0, int64_t n0,
                      int64_t cols, bool first, bool last) {
        F acc[R][2];
        const bool full = cols == kPanel;
        const typename V::Mask m_lo = V::first_lanes(cols), m_hi = V::first_lanes(cols - L);
        for (int m = 0; m < R; ++m) {
            float* yr = a.y + (m0 + m) * a.ldy + n0;
            if (first) {
                acc[m][0] = V::zero();
                acc[m][1] = V::zero();
            } else if (full) {
                acc[m][0] = V::loadu(yr);
                acc[m][1] = V::loadu(yr + L);
            } else {
                acc[m][0] = V::load_masked(yr, m_lo);
                acc[m][1] = V::load_masked(yr + L, m_hi);
            }
        }
#pragma GCC unroll 4
        for (int64_t k = 0; k < kc; ++k) {
            const F b0 = V::load(slice + k * kPanel), b1 = V::load(slice + k * kPanel + L);
            for (int m = 0; m < R; ++m) {
                const F xv = V::broadcast(tile + k * kMR + m);
                acc[m][0] = V::fmadd(xv, b0, acc[m][0]);
                acc[m][1] = V::fmadd(xv, b1, acc[m][1]);
            }
        }
        F bias0 = V::zero(), bias1 = V::zero();
        const bool add_bias = last && a.bias;
        if (add_bias) {
            bias0 = full ? V::loadu(a.bias + n0) : V::load_masked(a.bias + n0, m_lo);
            bias1 = full ? V::loadu(a.bias + n0 + L) : V::load_masked(a.bias + n0 + L, m_hi);
        }
        for (int m = 0; m < R; ++m) {
            float* yr = a.y + (m0 + m) * a.ldy + n0;
            const F r0 = add_bias ? V::add(acc[m][0], bias0) : acc[m][0];
            const F r1 = add_bias ? V::add(acc[m][1], bias1) : acc[m][1];
            if (full) {
                V::storeu(yr, r0);
                V::storeu(yr + L, r1);
            } else {
                V::store_masked(yr, m_lo, r0);
                V::store_masked(yr + L, m_hi, r1);
            }
        }
    }

    template <int R>
    static void micro_rows(int64_t rows, const float* tile, const float* slice, int64_t kc, const MatmulArgs& a,
                           int64_t m0, int64_t n0, int64_t cols, bool first, bool last) {
        if constexpr (R > 0) {
            if (rows == R) micro<R>(tile, slice, kc, a, m0, n0, cols, first, last);
            else micro_rows<R - 1>(rows, tile, slice, kc, a, m0, n0, cols, first, last);
        }
    }

    // Tasks: row blocks of kMC × column blocks of panels, at least 4 tasks per thread
    // when the rows alone give fewer (decode and short prompts split the columns).
    static constexpr int64_t kDecodeRows = 4;

    static void run(const MatmulArgs& a, ThreadPool* pool) {
        const int threads = pool ? pool->n_threads() : 1;
        if (a.M <= kDecodeRows) {
            // Decode: FloatGemm's GEMV path over the same panels (two panels per tile, all of K,
            // 1.5-2× faster than the blocked loop at M = 1) on x rounded to f16 into the scratch
            // past the threads' blocks. The arithmetic is the same FMA chain over k from zero
            // with the bias added last, so the decode rows equal the blocked path's bit for bit.
            float* xr = static_cast<float*>(a.scratch) + threads * kThreadFloats;
            for (int64_t m = 0; m < a.M; ++m) {
                const float* src = a.x + m * a.ldx;
                float* dst = xr + m * a.K;
                int64_t k = 0;
                for (; k + L <= a.K; k += L) V::storeu(dst + k, V::round_f16(V::loadu(src + k)));
                if (k < a.K) V::store_tail(dst + k, a.K - k, V::round_f16(V::load_tail(src + k, a.K - k)));
            }
            MatmulArgs rounded = a;
            rounded.x = xr;
            rounded.ldx = a.K;
            FloatGemm<V, kMR>::template run<uint16_t>(rounded, pool);
            return;
        }
        const uint16_t* packed = static_cast<const uint16_t*>(a.packed);
        const int64_t P = (a.N + kPanel - 1) / kPanel;
        const int64_t row_blocks = (a.M + kMC - 1) / kMC;
        int64_t col_blocks = (4 * threads + row_blocks - 1) / row_blocks;
        if (col_blocks > P) col_blocks = P;
        if (col_blocks < 1) col_blocks = 1;
        const int64_t tasks = row_blocks * col_blocks;
        float* scratch = static_cast<float*>(a.scratch);
        auto body = [&](int64_t t0, int64_t t1, int thread) {
            float* a_block = scratch + thread * kThreadFloats;
            float* slice = a_block + kAFloats;
            for (int64_t t = t0; t < t1; ++t) {
                const int64_t rb = t / col_blocks, cb = t % col_blocks;
                const int64_t m0 = rb * kMC, rows = a.M - m0 < kMC ? a.M - m0 : kMC;
                const int64_t p0 = P * cb / col_blocks, p1 = P * (cb + 1) / col_blocks;
                for (int64_t k0 = 0; k0 < a.K; k0 += kKC) {
                    const int64_t kc = a.K - k0 < kKC ? a.K - k0 : kKC;
                    const bool first = k0 == 0, last = k0 + kc == a.K;
                    pack_a(a, m0, rows, k0, kc, a_block);
                    for (int64_t p = p0; p < p1; ++p) {
                        const uint16_t* src = packed + (p * a.K + k0) * kPanel;
                        for (int64_t i = 0; i < kc * kPanel; i += L) V::store(slice + i, V::load_f16_aligned(src + i));
                        const int64_t n0 = p * kPanel, cols = a.N - n0 < kPanel ? a.N - n0 : kPanel;
                        for (int64_t r = 0; r < rows; r += kMR) {
                            const int64_t mr = rows - r < kMR ? rows - r : kMR;
                            const float* tile = a_block + (r / kMR) * kMR * kc;
                            if (mr == kMR) micro<kMR>(tile, slice, kc, a, m0 + r, n0, cols, first, last);
                            else micro_rows<kMR - 1>(mr, tile, slice, kc, a, m0 + r, n0, cols, first, last);
                        }
                    }
                }
            }
        };
        if (pool) pool->parallel_for(tasks, body);
        else body(0, tasks, 0);
    }

    // Per thread one A block and one widened panel slice; then kDecodeRows rounded rows of x.
    static int64_t scratch_bytes(int64_t, int64_t K, int64_t, int n_threads) {
        return (static_cast<int64_t>(n_threads) * kThreadFloats + kDecodeRows * K) * 4;
    }

    static constexpr MatmulKernel kernel(const char* name, Isa isa, int priority) {
        return {.name = name, .isa = isa, .w_type = DType::f16, .priority = priority,
                .activations = MatmulActivations::f16,
                .packed_bytes = &FloatGemm<V, kMR>::template packed_bytes_panels<2>,
                .pack = &FloatGemm<V, kMR>::template pack_panels<2>, .scratch_bytes = &scratch_bytes, .run = &run};
    }
};

}  // namespace
}  // namespace glimpse::simd
GLIMPSE_SIMD_EXACT_END

// The registry entries of one ISA unit's FloatGemm instantiation `Gemm`, one per weight type:
// f32_gemm__<suffix>, f16_gemm__<suffix>, bf16_gemm__<suffix> (named in ops/kernel_registry.cpp).
// Expanded in namespace glimpse, so each unit states its GEMM and level once.
#define GLIMPSE_FLOAT_GEMM_KERNELS(Gemm, suffix, isa, priority)                                                      \
    extern const MatmulKernel f32_gemm__##suffix =                                                                   \
        Gemm::kernel<float>("f32_gemm__" #suffix, isa, DType::f32, priority);                                        \
    extern const MatmulKernel f16_gemm__##suffix =                                                                   \
        Gemm::kernel<uint16_t>("f16_gemm__" #suffix, isa, DType::f16, priority);                                     \
    extern const MatmulKernel bf16_gemm__##suffix =                                                                  \
        Gemm::kernel<simd::Bf16>("bf16_gemm__" #suffix, isa, DType::bf16, priority);
