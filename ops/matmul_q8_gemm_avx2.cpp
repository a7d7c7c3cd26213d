// W8A8 GEMM for Q8_0 weights on AVX2 without VNNI (Haswell .. Zen 3), for many activation
// rows (the vision encoder: M = 1024 patches; K×N = 768×768, 768×3072, 3072×768).
//
//   x:(M,K) f32 -> q8_0 rows (ggml-cpu x86 rounding, ops/simd/quantize_activations.h)
//   W:(N,K) Q8_0, packed at load exactly as q8_0_q8_0__avx2 packs it (ops/matmul_quant_x86.h,
//   groups of 8 rows, file's signed bytes)
//   y[m][n] = Σ_b fma-in-order( sumi(m,n,b), d_w(n,b)·d_x(m,b) ) + bias[n]
//
// Why int16 products: q8_0_q8_0__avx2 spends 3 multiply-port µops per 32 products
// (vpsignb, vpmaddubsw, vpmaddwd) plus an add; on Intel cores those three all issue on
// ports 0/1 only, so it runs no faster than the f16 FMA kernel. Here both operands are
// sign-extended to int16 once and the block product is vpmaddwd (s16×s16 -> s32 pairs,
// exact) + vpaddd: 2 µops per 16 products on 3 ports, no sign trick, nothing saturates
// (|pair| <= 2·128·127).
//  - activations: the quantized rows are widened once per call into an int16 copy;
//    one step broadcasts 2 consecutive values (k, k+1) as a 32-bit lane;
//  - weights: per thread, a panel of 2 groups (16 rows) is widened from the packed int8
//    into an L1/L2 buffer for each block of rows_per_block(K) activation rows and then reused by all
//    of their register tiles, so the packed weights stay int8 (same memory as the
//    decode kernel) and the widening costs one pass per panel and row block.
// Register tile: 3 activation rows × 2 groups (6 int32 block sums + 6 f32 accumulators,
// 2 weight vectors, 1 broadcast: 15 of 16 ymm; measured ~3 % faster than 4 × 2, which
// spills). Each block's int32 sums are converted (exact, |sumi| < 2^24) and accumulated
// with one FMA against d_w·d_x (exact): blocks in order, as the scalar oracle (ops/matmul_q8_scalar.cpp), so outputs agree with it bit for bit.
// Threads split over panels (N); fewer than kMinRows rows (decode: it streams the packed
// weights once with no widening) and K > kMaxK go to q8_0_q8_0__avx2.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "ops/matmul.h"
#include "ops/matmul_quant_x86.h"
#include "ops/simd/exact_fp.h"
#include "ops/simd/quantize_activations.h"
#include "ops/simd/vec_avx2.h"

GLIMPSE_SIMD_EXACT_BEGIN
namespace glimpse {

extern const MatmulKernel q8_0_q8_0__avx2;

namespace {

using V = simd::VecAvx2;
constexpr int kR = 8;             // weight rows per packed group (one ymm lane each)
constexpr int kNG = 2;            // groups per panel
constexpr int kMR = 3;            // activation rows per register tile
constexpr int64_t kMinRows = 8;   // fewer rows: q8_0_q8_0__avx2
// Longer rows: q8_0_q8_0__avx2. The panel spans all of K (16 rows × K int16, 2 KiB per 32 of
// K) and the row block shrinks as K grows, so at the connector's K = 12288 (M = 64) each
// panel is widened for every 12 rows and streamed from L2 per tile: measured 0.7x the old
// kernel there (docs/benchmarks.md). K blocking would lift this; not done.
constexpr int64_t kMaxK = 4096;
constexpr int kSteps = 16;        // k pairs per 32-block
// Widened panel, per block b: kNG groups × 16 steps × 32 bytes (lane r of step s holds
// the int16 pair w[r][32b+2s], w[r][32b+2s+1]), then kNG × 8 f32 weight scales.
constexpr int64_t kPanelQuantBytes = kNG * kSteps * 32;
constexpr int64_t kPanelBlockBytes = kPanelQuantBytes + kNG * kR * 4;

int64_t round64(int64_t n) { return (n + 63) / 64 * 64; }
int64_t panel_bytes(int64_t K) { return K / 32 * kPanelBlockBytes; }
// Activation rows per cache block: their int16 copy (2K bytes a row) stays within ~192 KiB
// (half a Zen 3 L2), a multiple of the register tile, 32..128 rows.
int64_t rows_per_block(int64_t K) {
    const int64_t rows = 192 * 1024 / (2 * K) / kMR * kMR;
    return std::clamp<int64_t>(rows, 4 * kMR, 128);
}

// Scratch: q8_0 rows (scales, sums), their int16 copy, one panel per thread.
int64_t gemm_scratch_bytes(int64_t M, int64_t K, int n_threads) {
    return Q8Rows::bytes(M, K) + round64(M * K * 2) + n_threads * panel_bytes(K) + 64;
}
int64_t scratch_bytes(int64_t M_max, int64_t K, int64_t N, int n_threads) {
    return std::max(gemm_scratch_bytes(M_max, K, n_threads), q8_0_q8_0__avx2.scratch_bytes(M_max, K, N, n_threads));
}

// Groups [g0, g0+ng) of the packed weights -> panel (layout above).
void widen_panel(const uint8_t* packed, int64_t g0, int ng, int64_t nb, int64_t K, uint8_t* panel) {
    const int64_t gb = x86q::group_bytes(false, kR, K), qb = x86q::quant_block_bytes(false, kR);
    // packed chunk c of a block: byte 4r+j = w[r][4c+j]; sign-extended halves hold, per 32-bit
    // lane 2r'+p, row r' (+4 for the high half) and pair p. Gather the pairs per step.
    const __m256i pair_major = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    for (int g = 0; g < ng; ++g) {
        const uint8_t* src = packed + (g0 + g) * gb;
        const uint16_t* d = reinterpret_cast<const uint16_t*>(src + nb * qb);
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* dst = panel + b * kPanelBlockBytes + g * kSteps * 32;
            for (int c = 0; c < 8; ++c) {
                const uint8_t* chunk = src + b * qb + c * 32;
                const __m256i lo = _mm256_permutevar8x32_epi32(
                    _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(chunk))), pair_major);
                const __m256i hi = _mm256_permutevar8x32_epi32(
                    _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(chunk + 16))), pair_major);
                _mm256_store_si256(reinterpret_cast<__m256i*>(dst + (2 * c) * 32), _mm256_permute2x128_si256(lo, hi, 0x20));
                _mm256_store_si256(reinterpret_cast<__m256i*>(dst + (2 * c + 1) * 32), _mm256_permute2x128_si256(lo, hi, 0x31));
            }
            float* scales = reinterpret_cast<float*>(panel + b * kPanelBlockBytes + kPanelQuantBytes) + g * kR;
            V::store(scales, V::load_f16_aligned(d + b * kR));
        }
    }
}

// q8_0 rows [m0, m1) -> their int16 copy x16:(M,K)
void widen_rows(const Q8Rows& xq, int64_t m0, int64_t m1, int16_t* x16) {
    for (int64_t m = m0; m < m1; ++m) {
        const int8_t* q = xq.qs(m);
        int16_t* out = x16 + m * xq.K;
        for (int64_t k = 0; k < xq.K; k += 16) {
            const __m256i v = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(q + k)));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + k), v);
        }
    }
}

// Rows [m0, m0+MR) × the panel's NG groups (first output column n0): all of K, then bias
// and a masked store.
template <int MR, int NG>
void tile(const uint8_t* panel, int64_t nb, const int16_t* x16, const Q8Rows& xq, int64_t m0, int64_t n0,
          const MatmulArgs& a) {
    const int16_t* xr[MR];
    const float* xd[MR];
    for (int m = 0; m < MR; ++m) {
        xr[m] = x16 + (m0 + m) * a.K;
        xd[m] = xq.d(m0 + m);
    }
    __m256 acc[MR][NG];
    for (int m = 0; m < MR; ++m)
        for (int g = 0; g < NG; ++g) acc[m][g] = V::zero();
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* pb = panel + b * kPanelBlockBytes;
        __m256i s[MR][NG];
        for (int m = 0; m < MR; ++m)
            for (int g = 0; g < NG; ++g) s[m][g] = _mm256_setzero_si256();
#pragma GCC unroll 16
        for (int st = 0; st < kSteps; ++st) {
            __m256i w[NG];
            for (int g = 0; g < NG; ++g) w[g] = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + (g * kSteps + st) * 32));
            for (int m = 0; m < MR; ++m) {
                int32_t pair;
                std::memcpy(&pair, xr[m] + b * 32 + 2 * st, 4);
                const __m256i xv = _mm256_set1_epi32(pair);
                for (int g = 0; g < NG; ++g) s[m][g] = _mm256_add_epi32(s[m][g], _mm256_madd_epi16(xv, w[g]));
            }
            // Keep each sum a register chain: unbarred, GCC reassociates the 16 unrolled
            // integer adds into trees and spills every product to the stack.
            for (int m = 0; m < MR; ++m)
                for (int g = 0; g < NG; ++g) __asm__("" : "+x"(s[m][g]));
        }
        const float* dw = reinterpret_cast<const float*>(pb + kPanelQuantBytes);
        for (int m = 0; m < MR; ++m) {
            const __m256 dx = V::set1(xd[m][b]);
            for (int g = 0; g < NG; ++g)
                acc[m][g] = V::fmadd(_mm256_cvtepi32_ps(s[m][g]), V::mul(V::load(dw + g * kR), dx), acc[m][g]);
        }
    }
    for (int g = 0; g < NG; ++g) {
        const int64_t n = n0 + g * kR;
        const auto mask = V::first_lanes(a.N - n);
        const __m256 bias = a.bias ? V::load_masked(a.bias + n, mask) : V::zero();
        for (int m = 0; m < MR; ++m)  // acc + bias: the oracle's single rounding
            V::store_masked(a.y + (m0 + m) * a.ldy + n, mask, a.bias ? V::add(acc[m][g], bias) : acc[m][g]);
    }
}

// Rows [m0, m1) against one panel of NG groups.
template <int NG>
void panel_rows(const uint8_t* panel, int64_t nb, const int16_t* x16, const Q8Rows& xq, int64_t m0, int64_t m1,
                int64_t n0, const MatmulArgs& a) {
    int64_t m = m0;
    for (; m + kMR <= m1; m += kMR) tile<kMR, NG>(panel, nb, x16, xq, m, n0, a);
    switch (m1 - m) {
        case 3: tile<3, NG>(panel, nb, x16, xq, m, n0, a); break;
        case 2: tile<2, NG>(panel, nb, x16, xq, m, n0, a); break;
        case 1: tile<1, NG>(panel, nb, x16, xq, m, n0, a); break;
        default: break;
    }
}

void run(const MatmulArgs& a, ThreadPool* pool) {
    if (a.M < kMinRows || a.K > kMaxK) {
        q8_0_q8_0__avx2.run(a, pool);
        return;
    }
    const int64_t nb = a.K / 32;
    const Q8Rows xq(a.scratch, a.K);
    int16_t* x16 = reinterpret_cast<int16_t*>(static_cast<uint8_t*>(a.scratch) + Q8Rows::bytes(a.M, a.K));
    uint8_t* panels = reinterpret_cast<uint8_t*>(x16) + round64(a.M * a.K * 2);
    auto quantize = [&](int64_t m0, int64_t m1, int) {
        simd::QuantizeQ8<V>::rows(a.x, a.ldx, m0, m1, xq);
        widen_rows(xq, m0, m1, x16);
    };
    const uint8_t* packed = static_cast<const uint8_t*>(a.packed);
    const int64_t G = x86q::groups(a.N, kR), P = (G + kNG - 1) / kNG, mc = rows_per_block(a.K);
    auto multiply = [&](int64_t p0, int64_t p1, int t) {
        uint8_t* panel = panels + t * panel_bytes(a.K);
        for (int64_t mb = 0; mb < a.M; mb += mc) {
            const int64_t me = std::min(a.M, mb + mc);
            for (int64_t p = p0; p < p1; ++p) {
                const int ng = static_cast<int>(std::min<int64_t>(kNG, G - p * kNG));
                widen_panel(packed, p * kNG, ng, nb, a.K, panel);
                if (ng == kNG) panel_rows<kNG>(panel, nb, x16, xq, mb, me, p * kNG * kR, a);
                else panel_rows<1>(panel, nb, x16, xq, mb, me, p * kNG * kR, a);
            }
        }
    };
    if (pool) {
        pool->parallel_for(a.M, quantize);
        pool->parallel_for_grain(P, 1, multiply);
    } else {
        quantize(0, a.M, 0);
        multiply(0, P, 0);
    }
}

int64_t packed_bytes(int64_t N, int64_t K) { return x86q::packed_bytes(false, kR, N, K); }
void pack(const void* w, int64_t N, int64_t K, void* out) { x86q::pack_q8_0(w, N, K, kR, /*offset_q8=*/0, out); }
bool supports(int64_t, int64_t K, int64_t) { return K % 32 == 0; }

}  // namespace

// Same numerics class and packing as q8_0_q8_0__avx2; listed after it at the same priority,
// so it wins the priority choice (ties: later in the list) at the AVX2 level.
extern const MatmulKernel q8_0_q8_0_gemm__avx2 = {
    .name = "q8_0_q8_0_gemm__avx2", .isa = Isa::avx2, .w_type = DType::q8_0, .priority = KernelPriority::simd,
    .activations = MatmulActivations::q8_0, .supports = supports, .packed_bytes = packed_bytes, .pack = pack,
    .scratch_bytes = scratch_bytes, .run = run};

}  // namespace glimpse
GLIMPSE_SIMD_EXACT_END
