// f32 / f16 / bf16-weight matmul with AVX2 + FMA (+F16C), f32 activations: the
// ymm edition of ops/matmul_float_avx512.cpp (same layout idea and order of
// operations, 16-column panels, 6×16 tile in 12 of the 16 ymm registers).
//
//   x:(M,K) f32, W:(N,K) f32|f16|bf16  ->  y:(M,N) = x·Wᵀ + bias, f32 accumulation
//
// Weights are repacked once into panels of 16 output columns, K-major:
// panel p = W[16p .. 16p+15][k] for k = 0..K-1, 16 contiguous values per k,
// kept in the stored type (f16/bf16 are widened in registers: half the bytes of
// an f32 panel for the memory-bound decode, and cheap next to the FMAs) and
// zero-padded past N.
//
// Microkernel: MR rows of x × 16·NP columns in 2·NP ymm per row; per k one
// broadcast of x[m][k] and 2·NP FMAs per row. Prefill/encoder shapes use
// 6×16 (12 accumulators) over all of K (see run_float for why no K blocking).
// Decode (M <= 4) runs over all of K with two panels at once (4+ independent
// FMA chains per row). Every output is one FMA chain over k in order, so the
// result does not depend on M, the tile or the thread count.
#include <immintrin.h>

#include <cstring>

#include "ops/matmul.h"

namespace glimpse {
namespace {

constexpr int kPanel = 16;

template <class T>
struct Widen;
template <>
struct Widen<float> {
    static __m256 load(const float* p) { return _mm256_load_ps(p); }
};
template <>
struct Widen<uint16_t> {  // f16
    static __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(p))); }
};
struct Bf16 {
    uint16_t bits;
};
template <>
struct Widen<Bf16> {
    static __m256 load(const Bf16* p) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
};

// Lane mask for columns [n0, n0+8) that exist (AVX2 has no mask registers).
inline __m256i cols_mask(int64_t n0, int64_t N) {
    const int64_t valid = N - n0 >= 8 ? 8 : (N - n0 <= 0 ? 0 : N - n0);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// y[m0..m0+MR)[n0 .. n0+32·NP) (+)= x[m][k0..k1) · panel columns. `first`: start
// from zero instead of y; `last`: add the bias.
template <class T, int MR, int NP>
inline void tile(const T* panel, int64_t pstride, const MatmulArgs& a, int64_t m0, int64_t n0, int64_t k0, int64_t k1,
                 bool first, bool last) {
    constexpr int NV = 2 * NP;
    __m256i mask[NV];
    for (int v = 0; v < NV; ++v) mask[v] = cols_mask(n0 + 8 * v, a.N);
    __m256 acc[MR][NV];
    for (int m = 0; m < MR; ++m) {
        for (int v = 0; v < NV; ++v) {
            acc[m][v] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(a.y + (m0 + m) * a.ldy + n0 + 8 * v, mask[v]);
        }
    }
    const float* xr = a.x + m0 * a.ldx;
    const int64_t ldx = a.ldx;
#pragma GCC unroll 2
    for (int64_t k = k0; k < k1; ++k) {
        __m256 b[NV];
        for (int p = 0; p < NP; ++p) {
            b[2 * p] = Widen<T>::load(panel + p * pstride + k * kPanel);
            b[2 * p + 1] = Widen<T>::load(panel + p * pstride + k * kPanel + 8);
        }
        for (int m = 0; m < MR; ++m) {
            const __m256 xv = _mm256_broadcast_ss(xr + m * ldx + k);
            for (int v = 0; v < NV; ++v) acc[m][v] = _mm256_fmadd_ps(xv, b[v], acc[m][v]);
        }
    }
    for (int v = 0; v < NV; ++v) {
        const __m256 bias = last && a.bias ? _mm256_maskload_ps(a.bias + n0 + 8 * v, mask[v]) : _mm256_setzero_ps();
        for (int m = 0; m < MR; ++m) {
            const __m256 r = last && a.bias ? _mm256_add_ps(acc[m][v], bias) : acc[m][v];
            _mm256_maskstore_ps(a.y + (m0 + m) * a.ldy + n0 + 8 * v, mask[v], r);
        }
    }
}

template <class T, int NP, int MRmax>
inline void tile_rows(int64_t mr, const T* panel, int64_t pstride, const MatmulArgs& a, int64_t m0, int64_t n0,
                      int64_t k0, int64_t k1, bool first, bool last) {
    if constexpr (MRmax > 0) {
        if (mr == MRmax) tile<T, MRmax, NP>(panel, pstride, a, m0, n0, k0, k1, first, last);
        else tile_rows<T, NP, MRmax - 1>(mr, panel, pstride, a, m0, n0, k0, k1, first, last);
    }
}

template <class T>
void run_float(const MatmulArgs& a, ThreadPool* pool) {
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
    constexpr int MR = 6;
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
                for (; m + MR <= a.M; m += MR) tile<T, MR, 1>(panel, pstride, a, m, p * kPanel, k0, k1, first, last);
                if (m < a.M) tile_rows<T, 1, MR - 1>(a.M - m, panel, pstride, a, m, p * kPanel, k0, k1, first, last);
            }
        }
    };
    if (pool) pool->parallel_for(P, body);
    else body(0, P, 0);
}

// Panels of 32 columns, K-major, in the stored element type (2 or 4 bytes).
template <int Bytes>
void pack_panels(const void* w, int64_t N, int64_t K, void* out) {
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
int64_t packed_bytes_panels(int64_t N, int64_t K) {
    return (N + kPanel - 1) / kPanel * kPanel * K * Bytes;
}

}  // namespace

extern const MatmulKernel f32_gemm__avx2 = {
    .name = "f32_gemm__avx2", .isa = Isa::avx2, .w_type = DType::f32, .priority = KernelPriority::simd,
    .activations = MatmulActivations::f32, .packed_bytes = packed_bytes_panels<4>, .pack = pack_panels<4>,
    .run = run_float<float>};
extern const MatmulKernel f16_gemm__avx2 = {
    .name = "f16_gemm__avx2", .isa = Isa::avx2, .w_type = DType::f16, .priority = KernelPriority::simd,
    .activations = MatmulActivations::f32, .packed_bytes = packed_bytes_panels<2>, .pack = pack_panels<2>,
    .run = run_float<uint16_t>};
extern const MatmulKernel bf16_gemm__avx2 = {
    .name = "bf16_gemm__avx2", .isa = Isa::avx2, .w_type = DType::bf16, .priority = KernelPriority::simd,
    .activations = MatmulActivations::f32, .packed_bytes = packed_bytes_panels<2>, .pack = pack_panels<2>,
    .run = run_float<Bf16>};

}  // namespace glimpse
