// W8A8 / W4A8 matmul on AMX-INT8 tiles (tdpbsud) for Q8_0 and Q4_0 weights,
// prefill-sized row counts; fewer than 16 rows run the AVX-512 VNNI kernel.
//
//   x:(M,K) f32 -> q8_0 rows (ggml-cpu x86 rounding, ops/quantize_activations.h)
//   y[m][n] = Σ_b fma-in-order( sumi(m,n,b), d_w(n,b)·d_x(m,b) ) + bias
//
// ggml's semantics need every 32-block's integer dot product on its own (each
// block has its own pair of scales), so a tile product covers exactly one block:
// A = 16 activation rows × 32 bytes (one block, signed), B = 8 × 64 bytes (one
// block of 16 weight rows in the VNNI layout — exactly the 16-row group layout
// of ops/matmul_quant_x86.h), C = 16×16 int32. The weights are the unsigned
// operand: Q8_0 stored +128 (as for the VNNI kernel, so both kernels share one
// packed layout and this kernel can hand small M to that one), Q4_0 as its
// nibbles 0..15 (unpacked per call into 8×64-byte tiles, once per group);
// the offset is removed with -c·Σq per activation row and block (c = 128 or 8).
//
// AMX computes four blocks into C tiles 0-3, stores them, and AVX-512 folds
// each into 16 f32 accumulators (one zmm per activation row):
// acc = fma(float(sumi - c·Σq), d_w·d_x, acc) in block order — the same
// arithmetic as the scalar oracle (ops/matmul_q8_scalar.cpp), so results are
// bit-identical to it and to the VNNI kernel, for any M, tile or thread count.
// The epilogue (4 vector ops per row and block) is the bound, not the tiles:
// measured (tools/bench, 2 threads) at 280-620 GFLOP/s against the VNNI kernel's
// 400-550, it is slower on most SmolVLM shapes, so its priority is below VNNI's and
// the plans use it only where ops/matmul_decisions.inc says so.
#include <immintrin.h>

#include <cstring>

#include "ops/amx_tiles.h"
#include "ops/matmul.h"
#include "ops/matmul_quant_x86.h"

namespace glimpse {

extern const MatmulKernel q8_0_q8_0__avx512vnni;
extern const MatmulKernel q4_0_q8_0__avx512vnni;

namespace {

constexpr int R = 16;
constexpr int64_t kAmxRows = 16;  // fewer rows: the VNNI kernel

// tmm0-3: C (16 × 16 int32); tmm4-5: A (16 rows × 32 bytes); tmm6-7: B (8 rows × 64 bytes).
inline void configure_tiles() {
    amx::configure_tiles({{16, 64}, {16, 64}, {16, 64}, {16, 64}, {16, 32}, {16, 32}, {8, 64}, {8, 64}});
}

inline int64_t pad16(int64_t m) { return (m + 15) / 16 * 16; }

// Per-thread area: C staging (4 tiles) + unpacked Q4_0 tiles of one group.
inline int64_t thread_bytes(int64_t K) { return 4 * 1024 + (K / 32) * 512; }

// One tile product into C tile c: A and B registers alternate with the block
// parity so consecutive blocks do not wait on each other's operand loads. (The
// tile intrinsics take register numbers as literals, hence the macro.)
#define GLIMPSE_BLOCK_PRODUCT(c, ta, tb, a_ptr, lda, b_ptr) \
    do {                                                    \
        _tile_zero(c);                                      \
        _tile_loadd(ta, (a_ptr), (lda));                    \
        _tile_loadd(tb, (b_ptr), 64);                       \
        _tile_dpbsud(c, ta, tb);                            \
    } while (0)

// Per 16-row tile of activations and per block, the 16 rows' scales d_x and
// offset corrections c·Σq side by side, so the epilogue broadcasts them
// straight from memory (rows past M: zeros).
struct RowTables {
    float* d;      // [M_pad/16][nb][16]
    int32_t* c;    // [M_pad/16][nb][16]
};
inline int64_t tables_bytes(int64_t M_pad, int64_t K) { return M_pad * (K / 32) * 8; }

// Rows [m0, m0+16) × one group: all blocks, then bias and the store of valid rows/columns.
template <bool Q4>
void tile_rows(const uint8_t* wq, const uint16_t* dw16, int64_t nb, const Q8Rows& xq, const RowTables& tab,
               int64_t m0, int64_t n0, int32_t* cbuf, const MatmulArgs& a) {
    const int64_t lda = xq.stride;
    const float* td = tab.d + (m0 / 16) * nb * 16;
    const int32_t* tc = tab.c + (m0 / 16) * nb * 16;
    __m512 acc[16] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                      _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                      _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                      _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const int8_t* ab = xq.qs(m0);
    // acc += float(C_i - c·Σq) · (d_w·d_x) for block bb from staged C at ci. Macros with
    // constant row indices, not a lambda or a loop: acc[] must stay in registers.
#define GLIMPSE_FOLD_ROW(r)                                                                              \
    acc[r] = _mm512_fmadd_ps(                                                                            \
        _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(ci_ + (r) * 16), _mm512_set1_epi32(c_[r]))), \
        _mm512_mul_ps(dw_, _mm512_set1_ps(d_[r])), acc[r])
#define GLIMPSE_FOLD(bb, ci)                                                                                  \
    do {                                                                                                    \
        const __m512 dw_ = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dw16 + (bb) * R))); \
        const float* d_ = td + (bb) * 16;                                                                   \
        const int32_t* c_ = tc + (bb) * 16;                                                                 \
        const int32_t* ci_ = (ci);                                                                          \
        GLIMPSE_FOLD_ROW(0); GLIMPSE_FOLD_ROW(1); GLIMPSE_FOLD_ROW(2); GLIMPSE_FOLD_ROW(3);                  \
        GLIMPSE_FOLD_ROW(4); GLIMPSE_FOLD_ROW(5); GLIMPSE_FOLD_ROW(6); GLIMPSE_FOLD_ROW(7);                  \
        GLIMPSE_FOLD_ROW(8); GLIMPSE_FOLD_ROW(9); GLIMPSE_FOLD_ROW(10); GLIMPSE_FOLD_ROW(11);                \
        GLIMPSE_FOLD_ROW(12); GLIMPSE_FOLD_ROW(13); GLIMPSE_FOLD_ROW(14); GLIMPSE_FOLD_ROW(15);              \
    } while (0)
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        GLIMPSE_BLOCK_PRODUCT(0, 4, 6, ab + b * 32, lda, wq + b * 512);
        GLIMPSE_BLOCK_PRODUCT(1, 5, 7, ab + b * 32 + 32, lda, wq + b * 512 + 512);
        GLIMPSE_BLOCK_PRODUCT(2, 4, 6, ab + b * 32 + 64, lda, wq + b * 512 + 1024);
        GLIMPSE_BLOCK_PRODUCT(3, 5, 7, ab + b * 32 + 96, lda, wq + b * 512 + 1536);
        _tile_stored(0, cbuf, 64);
        _tile_stored(1, cbuf + 256, 64);
        _tile_stored(2, cbuf + 512, 64);
        _tile_stored(3, cbuf + 768, 64);
        GLIMPSE_FOLD(b, cbuf);
        GLIMPSE_FOLD(b + 1, cbuf + 256);
        GLIMPSE_FOLD(b + 2, cbuf + 512);
        GLIMPSE_FOLD(b + 3, cbuf + 768);
    }
    for (; b < nb; ++b) {
        GLIMPSE_BLOCK_PRODUCT(0, 4, 6, ab + b * 32, lda, wq + b * 512);
        _tile_stored(0, cbuf, 64);
        GLIMPSE_FOLD(b, cbuf);
    }
#undef GLIMPSE_FOLD
#undef GLIMPSE_FOLD_ROW
    const int64_t rows = a.M - m0 < 16 ? a.M - m0 : 16;
    const int64_t valid = a.N - n0 < R ? a.N - n0 : R;
    const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
    const __m512 bias = a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + n0) : _mm512_setzero_ps();
    // constant indices only, written out: acc[] must never be indexed at run time, or
    // GCC keeps it in memory (SRA runs before loop unrolling)
#define GLIMPSE_STORE_ROW(r) \
    if ((r) < rows) _mm512_mask_storeu_ps(a.y + (m0 + (r)) * a.ldy + n0, mask, a.bias ? _mm512_add_ps(acc[r], bias) : acc[r])
    GLIMPSE_STORE_ROW(0); GLIMPSE_STORE_ROW(1); GLIMPSE_STORE_ROW(2); GLIMPSE_STORE_ROW(3);
    GLIMPSE_STORE_ROW(4); GLIMPSE_STORE_ROW(5); GLIMPSE_STORE_ROW(6); GLIMPSE_STORE_ROW(7);
    GLIMPSE_STORE_ROW(8); GLIMPSE_STORE_ROW(9); GLIMPSE_STORE_ROW(10); GLIMPSE_STORE_ROW(11);
    GLIMPSE_STORE_ROW(12); GLIMPSE_STORE_ROW(13); GLIMPSE_STORE_ROW(14); GLIMPSE_STORE_ROW(15);
#undef GLIMPSE_STORE_ROW
}

// Q4_0 group (nibbles, 256 bytes per block) -> 8×64-byte unsigned tiles per block.
inline void unpack_q4_group(const uint8_t* q, int64_t nb, uint8_t* out) {
    const __m512i lo4 = _mm512_set1_epi8(0x0f);
    for (int64_t b = 0; b < nb; ++b) {
        for (int t = 0; t < 4; ++t) {
            const __m512i raw = _mm512_load_si512(q + b * 256 + t * 64);
            _mm512_store_si512(out + b * 512 + t * 64, _mm512_and_si512(raw, lo4));
            _mm512_store_si512(out + b * 512 + (4 + t) * 64, _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo4));
        }
    }
}

template <bool Q4>
int64_t scratch_amx(int64_t M_max, int64_t K, int64_t N, int n_threads) {
    const MatmulKernel& small = Q4 ? q4_0_q8_0__avx512vnni : q8_0_q8_0__avx512vnni;
    const int64_t mine = Q8Rows::bytes(pad16(M_max), K) + tables_bytes(pad16(M_max), K) + n_threads * thread_bytes(K) + 64;
    const int64_t theirs = small.scratch_bytes(M_max < kAmxRows ? M_max : kAmxRows, K, N, n_threads);
    return mine > theirs ? mine : theirs;
}

template <bool Q4>
void run_amx(const MatmulArgs& a, ThreadPool* pool) {
    if (a.M < kAmxRows) {
        (Q4 ? q4_0_q8_0__avx512vnni : q8_0_q8_0__avx512vnni).run(a, pool);
        return;
    }
    const int64_t nb = a.K / 32, G = x86q::groups(a.N, R), gb = x86q::group_bytes(Q4, R, a.K);
    const int64_t qb = x86q::quant_block_bytes(Q4, R);
    const uint8_t* packed = static_cast<const uint8_t*>(a.packed);
    uint8_t* scratch = static_cast<uint8_t*>(a.scratch);
    constexpr int32_t kOffset = Q4 ? 8 : 128;
    const int64_t M_pad = pad16(a.M);
    const Q8Rows xq(scratch, a.K);
    RowTables tab;
    tab.d = reinterpret_cast<float*>(scratch + Q8Rows::bytes(M_pad, a.K));
    tab.c = reinterpret_cast<int32_t*>(scratch + Q8Rows::bytes(M_pad, a.K) + tables_bytes(M_pad, a.K) / 2);
    uint8_t* areas = scratch + Q8Rows::bytes(M_pad, a.K) + tables_bytes(M_pad, a.K);
    auto quantize = [&](int64_t m0, int64_t m1, int) {
        for (int64_t m = m0; m < m1; ++m) {
            if (m < a.M) quantize_rows_q8_0_avx512(a.x, a.ldx, m, m + 1, xq);
            float* d = tab.d + (m / 16) * nb * 16 + m % 16;
            int32_t* c = tab.c + (m / 16) * nb * 16 + m % 16;
            for (int64_t b = 0; b < nb; ++b) {
                d[b * 16] = m < a.M ? xq.d(m)[b] : 0.0f;
                c[b * 16] = m < a.M ? kOffset * xq.sum(m)[b] : 0;
            }
        }
    };
    auto multiply = [&](int64_t g0, int64_t g1, int t) {
        int32_t* cbuf = reinterpret_cast<int32_t*>(areas + t * thread_bytes(a.K));
        uint8_t* q4tiles = areas + t * thread_bytes(a.K) + 4 * 1024;
        configure_tiles();
        for (int64_t g = g0; g < g1; ++g) {
            const uint8_t* group = packed + g * gb;
            const uint16_t* dw16 = reinterpret_cast<const uint16_t*>(group + nb * qb);
            const uint8_t* wq = group;
            if constexpr (Q4) {
                unpack_q4_group(group, nb, q4tiles);
                wq = q4tiles;
            }
            for (int64_t m0 = 0; m0 < a.M; m0 += 16) tile_rows<Q4>(wq, dw16, nb, xq, tab, m0, g * R, cbuf, a);
        }
        _tile_release();
    };
    if (pool) {
        pool->parallel_for(M_pad, quantize);
        pool->parallel_for(G, multiply);
    } else {
        quantize(0, M_pad, 0);
        multiply(0, G, 0);
    }
}

bool supports_amx(int64_t M_max, int64_t K, int64_t) { return K % 32 == 0 && M_max >= 32; }
int64_t packed_bytes_q8(int64_t N, int64_t K) { return x86q::packed_bytes(false, R, N, K); }
int64_t packed_bytes_q4(int64_t N, int64_t K) { return x86q::packed_bytes(true, R, N, K); }
void pack_q8(const void* w, int64_t N, int64_t K, void* out) { x86q::pack_q8_0(w, N, K, R, 128, out); }
void pack_q4(const void* w, int64_t N, int64_t K, void* out) { x86q::pack_q4_0(w, N, K, R, out); }

}  // namespace

extern const MatmulKernel q8_0_q8_0__amx = {
    .name = "q8_0_q8_0__amx", .isa = Isa::amx, .w_type = DType::q8_0, .priority = KernelPriority::simd_wide_fallback,
    .activations = MatmulActivations::q8_0, .supports = supports_amx, .packed_bytes = packed_bytes_q8,
    .pack = pack_q8, .scratch_bytes = scratch_amx<false>, .run = run_amx<false>};
extern const MatmulKernel q4_0_q8_0__amx = {
    .name = "q4_0_q8_0__amx", .isa = Isa::amx, .w_type = DType::q4_0, .priority = KernelPriority::simd_wide_fallback,
    .activations = MatmulActivations::q8_0, .supports = supports_amx, .packed_bytes = packed_bytes_q4,
    .pack = pack_q4, .scratch_bytes = scratch_amx<true>, .run = run_amx<true>};

}  // namespace glimpse
