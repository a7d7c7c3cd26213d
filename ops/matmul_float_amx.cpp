// f16 / bf16-weight GEMM on AMX-BF16 tiles (tdpbf16ps), for the vision encoder
// and prefill shapes (M >= 16); smaller M runs an AVX-512 GEMV on the file layout.
//
//   x:(M,K) f32, W:(N,K) f16|bf16 (file layout, no repacking)  ->  y:(M,N) f32
//
// Three arithmetic modes (one kernel entry each):
//
//  f16_gemm__amx (f16 weights, MatmulActivations::f16) — ggml's f16 semantics.
//    ggml-cpu rounds x to f16 and multiplies f16·f16 with f32 accumulation.
//    Here x is rounded to f16 the same way (vcvtps2ph, nearest even); then an
//    f16 value v (11 significant bits) splits EXACTLY into two bf16 (8 bits
//    each): hi = v with the low 16 bits of its f32 pattern cleared, lo = v - hi
//    (at most 3 significant bits, exact in bf16; f16's exponent range is inside
//    bf16's, so no subnormal is flushed by AMX's DAZ). So x16·w16 =
//    xh·wh + xh·wl + xl·wh + xl·wl exactly; the last term is dropped
//    (|xl·wl| <= 2^-16 |x16·w16|, far below the f16 rounding of x, 2^-11),
//    the other three are three tdpbf16ps passes with exact products and f32
//    accumulation. Error vs ggml: summation order + 2^-16 relative per product.
//
//  f16_bf16_gemm__amx (f16 weights, MatmulActivations::bf16) — fast, lossy.
//    x and W both rounded to bf16 (nearest even, relative 2^-9 each: within the
//    bf16 bound 2^-8·S of tests/test_matmul_kernels.cpp), one pass: 3x the
//    throughput of the exact mode, 4-8x the error of ggml's f16 path.
//
//  bf16_gemm__amx (bf16 weights, MatmulActivations::bf16) — ggml's bf16 semantics
//    (ggml rounds x to bf16 for bf16 weights), one pass, exact products.
//
// Layout. Weights are repacked once at load into the B-tile (VNNI pair)
// layout, panels of 32 output columns: panel p, K step kk (32 values), column
// half h is one 16×64-byte tile whose row r, column c holds the pair
// (W[32p+16h+c][32kk+2r], W[..][32kk+2r+1]) — as f16 for the exact mode (the
// same bytes as the file; each panel is split into hi/lo planes per call, a
// few vector ops per 64 bytes, into an L2-resident buffer), as bf16 for the
// two bf16 modes (tiles load straight from the packed panel). Activations are
// converted once per call (all threads, split over M) into bf16 planes A_hi
// (and A_lo) stored tile-major (each 16-row × 32-K A tile is 1 KiB contiguous,
// so tile loads stream instead of touching 16 rows of a wide matrix). Each
// thread walks its panels in L2-sized groups (see "Loop structure" below).
// Tiles: C 2×2 (32 rows × 32 columns, tmm0-3), A tmm4-5, B tmm6-7. Work is split over N panels; each output's computation is
// independent of the split, so results are identical for any thread count.
#include <immintrin.h>

#include <cstring>

#include "ops/amx_tiles.h"
#include "ops/matmul.h"
#include "runtime/aligned_buffer.h"
#include "runtime/fp16.h"

namespace glimpse {
namespace {

enum class Mode { f16_exact, f16_as_bf16, bf16 };

constexpr int64_t kPanel = 32;

// Every tile 16 rows x 64 bytes: C tmm0-3 (16 x 16 f32), A tmm4-5 and B tmm6-7 (16 x 32 bf16).
inline void configure_tiles() {
    amx::configure_tiles({{16, 64}, {16, 64}, {16, 64}, {16, 64}, {16, 64}, {16, 64}, {16, 64}, {16, 64}});
}

// C tmm0-3 (2x2 tiles) += A (tmm4, tmm5) · B (tmm6, tmm7)
inline void multiply_2x2() {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
}

// f32 -> bf16 bits, round to nearest even (as runtime/fp16.h and ggml; no NaN inputs here).
inline __m512i bf16_rne(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    return _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
}

// Exact split of f32 values that are f16-representable: hi = top 16 bits, lo = v - hi.
inline void split_exact(__m512 v, __m512i* hi, __m512i* lo) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i h = _mm512_and_si512(u, _mm512_set1_epi32(static_cast<int>(0xffff0000u)));
    *hi = _mm512_srli_epi32(h, 16);
    *lo = _mm512_srli_epi32(_mm512_castps_si512(_mm512_sub_ps(v, _mm512_castsi512_ps(h))), 16);
}

// Two vectors of 16 dwords holding bf16 in their low halves -> 32 bf16 in order.
inline __m512i pack_bf16(__m512i a, __m512i b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(a)), _mm512_cvtepi32_epi16(b), 1);
}

template <Mode mode>
constexpr int planes() {
    return mode == Mode::f16_exact ? 2 : 1;
}

// Loop structure (per thread, over its panels), chosen by measurement on the
// SigLIP shapes (interleaved A/B runs; the alternatives were 1.3-2.5x slower):
//   for each group of panels (up to 8; one K chunk of the group's B planes
//   within ~1 MiB of L2):
//     for each K chunk of 768 (the exact mode splits the group's f16 chunk
//     into hi/lo planes here, once per call):
//       for each 32-row block of A (tile-major; streamed once per group and
//       chunk, then reused from L1/L2 by every panel of the group):
//         for each panel of the group: one 32×32 block over the chunk, C kept
//         between chunks in a per-thread f32 buffer (rows × group columns)
//     bias + store of the group's outputs
// A row-block-outer order with B split per (row block, panel) spent ~40% of
// its time splitting; groups sized by the full K (K = 3072: 2 panels) left the
// A blocks poorly reused.
constexpr int64_t kKChunk = 768;

// Panels per group: the group's B planes for one K chunk within ~1 MiB of L2, at most 8.
template <Mode mode>
int64_t group_panels(int64_t K) {
    const int64_t K_pad = (K + 31) / 32 * 32;
    const int64_t per_panel = (K_pad < kKChunk ? K_pad : kKChunk) * kPanel * 2 * planes<mode>();
    const int64_t n = (int64_t{1} << 20) / per_panel;
    return n < 1 ? 1 : (n > 8 ? 8 : n);
}

struct Geometry {
    int64_t M_pad, K_pad, a_plane;  // A plane bytes
    int64_t b_plane;                // bytes of one B plane of a panel
    int64_t c_bytes;                // C accumulators: all rows × one group of panels
    int64_t per_thread;             // C, then split B planes (exact mode) or the GEMV's x rows
    int64_t a_bytes;
};

template <Mode mode>
Geometry geometry(int64_t M, int64_t K) {
    Geometry g;
    g.M_pad = (M + 31) / 32 * 32;
    g.K_pad = (K + 31) / 32 * 32;
    g.a_plane = g.M_pad * g.K_pad * 2;
    g.b_plane = kPanel * g.K_pad * 2;
    g.c_bytes = g.M_pad * group_panels<mode>(K) * kPanel * 4;
    const int64_t chunk = g.K_pad < kKChunk ? g.K_pad : kKChunk;
    const int64_t planes_bytes = mode == Mode::f16_exact ? group_panels<mode>(K) * 2 * chunk * kPanel * 2 : 0;
    const int64_t gemv_bytes = 16 * g.K_pad * 4;
    g.per_thread = g.c_bytes + (planes_bytes > gemv_bytes ? planes_bytes : gemv_bytes);
    g.a_bytes = planes<mode>() * g.a_plane;
    return g;
}

// Rows [m0, m1) of x -> A planes (bf16, [M_pad][K_pad], zero past K).
template <Mode mode>
void convert_rows(const MatmulArgs& a, const Geometry& g, uint16_t* a_hi, uint16_t* a_lo, int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
        // tile-major: rows 16t..16t+15 of K step kk form one contiguous 1 KiB A tile
        const int64_t row_off = (m / 16) * g.K_pad * 16 + (m % 16) * 32;
        uint16_t* hi = a_hi + row_off;
        uint16_t* lo = a_lo ? a_lo + row_off : nullptr;
        for (int64_t k = 0; k < g.K_pad; k += 32) {
            __m512 v[2];
            for (int h = 0; h < 2; ++h) {
                const int64_t kk = k + 16 * h;
                const __mmask16 mask = kk >= a.K ? 0 : (a.K - kk >= 16 ? 0xffff : static_cast<__mmask16>((1u << (a.K - kk)) - 1));
                v[h] = m < a.M ? _mm512_maskz_loadu_ps(mask, a.x + m * a.ldx + kk) : _mm512_setzero_ps();
            }
            if constexpr (mode == Mode::f16_exact) {
                __m512i h0, l0, h1, l1;
                split_exact(_mm512_cvtph_ps(_mm512_cvtps_ph(v[0], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)), &h0, &l0);
                split_exact(_mm512_cvtph_ps(_mm512_cvtps_ph(v[1], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)), &h1, &l1);
                _mm512_store_si512(hi + k * 16, pack_bf16(h0, h1));
                _mm512_store_si512(lo + k * 16, pack_bf16(l0, l1));
            } else {
                _mm512_store_si512(hi + k * 16, pack_bf16(bf16_rne(v[0]), bf16_rne(v[1])));
            }
        }
    }
}

// Packed panel (f16 pairs) -> hi/lo bf16 planes in the same tile layout.
// k_len K values of one packed panel (f16 pairs) -> hi/lo bf16 planes, same layout.
inline void split_panel(const uint16_t* panel, int64_t k_len, uint16_t* b_hi, uint16_t* b_lo) {
    for (int64_t i = 0; i < k_len * kPanel; i += 32) {
        const __m512i raw = _mm512_load_si512(panel + i);
        __m512i h0, l0, h1, l1;
        split_exact(_mm512_cvtph_ps(_mm512_castsi512_si256(raw)), &h0, &l0);
        split_exact(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(raw, 1)), &h1, &l1);
        _mm512_store_si512(b_hi + i, pack_bf16(h0, h1));
        _mm512_store_si512(b_lo + i, pack_bf16(l0, l1));
    }
}

// One 32×32 output block over K steps [k0, k1): rows [m0, m0+32) × one panel.
// C lives in c_rows ([32][32] f32, 128-byte rows) between K chunks.
template <Mode mode>
inline void block(const Geometry& g, const uint16_t* a_hi, const uint16_t* a_lo, const uint16_t* b_hi,
                  const uint16_t* b_lo, int64_t m0, int64_t k0, int64_t k1, bool first, float* c_rows) {
    // A planes are tile-major: the tile of rows 16t.. at K step kk is at (t·KK + kk)·512
    const int64_t next = g.K_pad * 16;  // elements from one 16-row tile row-block to the next
    const uint16_t* ah = a_hi + (m0 / 16) * next;
    const uint16_t* al = a_lo ? a_lo + (m0 / 16) * next : nullptr;
    if (first) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    } else {
        _tile_loadd(0, c_rows, 128);
        _tile_loadd(1, c_rows + 16, 128);
        _tile_loadd(2, c_rows + 16 * 32, 128);
        _tile_loadd(3, c_rows + 16 * 32 + 16, 128);
    }
    for (int64_t k = k0; k < k1; k += 32) {
        const uint16_t* bh = b_hi + (k / 32) * 1024;
        const int64_t ak = k * 16;
        _tile_loadd(4, ah + ak, 64);
        _tile_loadd(5, ah + next + ak, 64);
        _tile_loadd(6, bh, 64);
        _tile_loadd(7, bh + 512, 64);
        multiply_2x2();
        if constexpr (mode == Mode::f16_exact) {
            // xl·wh
            _tile_loadd(4, al + ak, 64);
            _tile_loadd(5, al + next + ak, 64);
            multiply_2x2();
            // xh·wl
            const uint16_t* bl = b_lo + (k / 32) * 1024;
            _tile_loadd(4, ah + ak, 64);
            _tile_loadd(5, ah + next + ak, 64);
            _tile_loadd(6, bl, 64);
            _tile_loadd(7, bl + 512, 64);
            multiply_2x2();
        }
    }
    _tile_stored(0, c_rows, 128);
    _tile_stored(1, c_rows + 16, 128);
    _tile_stored(2, c_rows + 16 * 32, 128);
    _tile_stored(3, c_rows + 16 * 32 + 16, 128);
}

inline void store_block(const MatmulArgs& a, const float* c_stage, int64_t m0, int64_t n0) {
    for (int h = 0; h < 2; ++h) {
        const int64_t n = n0 + 16 * h;
        if (n >= a.N) break;
        const __mmask16 mask = a.N - n >= 16 ? 0xffff : static_cast<__mmask16>((1u << (a.N - n)) - 1);
        const __m512 bias = a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + n) : _mm512_setzero_ps();
        for (int r = 0; r < 32 && m0 + r < a.M; ++r) {
            const __m512 v = _mm512_load_ps(c_stage + r * 32 + 16 * h);
            _mm512_mask_storeu_ps(a.y + (m0 + r) * a.ldy + n, mask, a.bias ? _mm512_add_ps(v, bias) : v);
        }
    }
}

// ROWS rows of x × NPAN panels over all of K; xr holds the rounded rows (stride K_pad).
template <Mode mode, int ROWS, int NPAN>
inline void gemv_tile(const MatmulArgs& a, const Geometry& g, const uint16_t* packed, int64_t p0, int64_t m0,
                      const float* xr) {
    constexpr int NV = 4 * NPAN;  // 16-lane vectors per row: (panel, half, column octet)
    __m512 acc[ROWS][NV];
    for (int r = 0; r < ROWS; ++r)
        for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_ps();
    const uint16_t* panel[NPAN];
    for (int q = 0; q < NPAN; ++q) panel[q] = packed + (p0 + q) * g.K_pad * kPanel;
    for (int64_t kk = 0; kk < g.K_pad; kk += 32) {
#pragma GCC unroll 4
        for (int t = 0; t < 16; ++t) {  // tile row t: K pair (kk + 2t, kk + 2t + 1)
            __m512 w[NV];
            for (int q = 0; q < NPAN; ++q) {
                for (int h = 0; h < 2; ++h) {
                    // two 256-bit loads (no lane extract: vcvtph2ps/vpmovzxwd take memory operands)
                    const uint16_t* src = panel[q] + kk * kPanel + h * 512 + t * 32;
                    const __m256i lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(src));
                    const __m256i hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(src + 16));
                    if constexpr (mode == Mode::f16_exact) {
                        w[4 * q + 2 * h] = _mm512_cvtph_ps(lo);
                        w[4 * q + 2 * h + 1] = _mm512_cvtph_ps(hi);
                    } else {
                        w[4 * q + 2 * h] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(lo), 16));
                        w[4 * q + 2 * h + 1] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
                    }
                }
            }
            for (int r = 0; r < ROWS; ++r) {
                double pair;
                std::memcpy(&pair, xr + (m0 + r) * g.K_pad + kk + 2 * t, 8);
                const __m512 xp = _mm512_castpd_ps(_mm512_set1_pd(pair));
                for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(w[j], xp, acc[r][j]);
            }
        }
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int q = 0; q < NPAN; ++q) {
        for (int h = 0; h < 2; ++h) {
            const int64_t n = (p0 + q) * kPanel + 16 * h;
            if (n >= a.N) break;
            const __mmask16 mask = a.N - n >= 16 ? 0xffff : static_cast<__mmask16>((1u << (a.N - n)) - 1);
            const __m512 bias = a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + n) : _mm512_setzero_ps();
            for (int r = 0; r < ROWS; ++r) {
                const __m512 lo = acc[r][4 * q + 2 * h], hi = acc[r][4 * q + 2 * h + 1];
                __m512 v = _mm512_add_ps(_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi));
                if (a.bias) v = _mm512_add_ps(v, bias);
                _mm512_mask_storeu_ps(a.y + (m0 + r) * a.ldy + n, mask, v);
            }
        }
    }
}

// Small M (decode): AVX-512 FMAs over the packed panels, x rounded as in the
// mode. A 64-byte tile row holds 16 columns × one K pair; it widens to two zmm
// (columns 0-7 and 8-15, pairs interleaved) that multiply the broadcast x pair.
// Each column keeps an even-k and an odd-k partial sum, added at the end.
template <Mode mode>
void gemv(const MatmulArgs& a, ThreadPool* pool, uint8_t* scratch, const Geometry& g) {
    const uint16_t* packed = static_cast<const uint16_t*>(a.packed);
    const int64_t P = (a.N + kPanel - 1) / kPanel;
    auto body = [&](int64_t p0, int64_t p1, int t) {
        // each thread rounds x into its own buffer (no barrier)
        float* xr = reinterpret_cast<float*>(scratch + t * g.per_thread);
        for (int64_t m = 0; m < a.M; ++m) {
            for (int64_t k = 0; k < g.K_pad; k += 16) {
                const __mmask16 mask = k >= a.K ? 0 : (a.K - k >= 16 ? 0xffff : static_cast<__mmask16>((1u << (a.K - k)) - 1));
                __m512 v = _mm512_maskz_loadu_ps(mask, a.x + m * a.ldx + k);
                if constexpr (mode == Mode::f16_exact) {
                    v = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                } else {
                    v = _mm512_castsi512_ps(_mm512_slli_epi32(bf16_rne(v), 16));
                }
                _mm512_store_ps(xr + m * g.K_pad + k, v);
            }
        }
        int64_t p = p0;
        if (a.M == 1) {
            for (; p + 2 <= p1; p += 2) gemv_tile<mode, 1, 2>(a, g, packed, p, 0, xr);
        }
        for (; p < p1; ++p) {
            int64_t m = 0;
            for (; m + 4 <= a.M; m += 4) gemv_tile<mode, 4, 1>(a, g, packed, p, m, xr);
            switch (a.M - m) {
                case 1: gemv_tile<mode, 1, 1>(a, g, packed, p, m, xr); break;
                case 2: gemv_tile<mode, 2, 1>(a, g, packed, p, m, xr); break;
                case 3: gemv_tile<mode, 3, 1>(a, g, packed, p, m, xr); break;
                default: break;
            }
        }
    };
    if (pool) pool->parallel_for(P, body);
    else body(0, P, 0);
}

constexpr int64_t kGemvRows = 16;  // below this many rows, a 32-row AMX block would be mostly padding

template <Mode mode>
void run_amx(const MatmulArgs& a, ThreadPool* pool) {
    uint8_t* scratch = static_cast<uint8_t*>(a.scratch);
    const int threads = pool ? pool->n_threads() : 1;
    const Geometry g = geometry<mode>(a.M, a.K);
    if (a.M < kGemvRows) {
        gemv<mode>(a, pool, scratch, g);
        return;
    }
    const uint16_t* packed = static_cast<const uint16_t*>(a.packed);
    uint16_t* a_hi = reinterpret_cast<uint16_t*>(scratch + threads * g.per_thread);
    uint16_t* a_lo = planes<mode>() == 2 ? reinterpret_cast<uint16_t*>(reinterpret_cast<uint8_t*>(a_hi) + g.a_plane) : nullptr;
    auto convert = [&](int64_t m0, int64_t m1, int) { convert_rows<mode>(a, g, a_hi, a_lo, m0, m1); };
    const int64_t P = (a.N + kPanel - 1) / kPanel;
    const int64_t NPG = group_panels<mode>(a.K);
    auto multiply = [&](int64_t p0, int64_t p1, int t) {
        uint8_t* mine = scratch + t * g.per_thread;
        float* c_all = reinterpret_cast<float*>(mine);  // [M_pad/32][NPG][32×32]
        uint16_t* split = reinterpret_cast<uint16_t*>(mine + g.c_bytes);
        configure_tiles();
        for (int64_t q0 = p0; q0 < p1; q0 += NPG) {
            const int64_t q1 = q0 + NPG < p1 ? q0 + NPG : p1;
            for (int64_t k0 = 0; k0 < g.K_pad; k0 += kKChunk) {
                const int64_t k1 = k0 + kKChunk < g.K_pad ? k0 + kKChunk : g.K_pad;
                const int64_t chunk_elems = (k1 - k0) * kPanel;
                if constexpr (mode == Mode::f16_exact) {
                    for (int64_t p = q0; p < q1; ++p)
                        split_panel(packed + p * g.K_pad * kPanel + k0 * kPanel, k1 - k0,
                                    split + (p - q0) * 2 * chunk_elems, split + ((p - q0) * 2 + 1) * chunk_elems);
                }
                for (int64_t m0 = 0; m0 < a.M; m0 += 32) {
                    for (int64_t p = q0; p < q1; ++p) {
                        // block() indexes B by absolute K step: shift the chunk's planes back by k0
                        const uint16_t* bh = mode == Mode::f16_exact ? split + (p - q0) * 2 * chunk_elems - k0 * kPanel
                                                                     : packed + p * g.K_pad * kPanel;
                        const uint16_t* bl = mode == Mode::f16_exact ? bh + chunk_elems : nullptr;
                        block<mode>(g, a_hi, a_lo, bh, bl, m0, k0, k1, k0 == 0, c_all + ((m0 / 32) * NPG + (p - q0)) * 1024);
                    }
                }
            }
            for (int64_t m0 = 0; m0 < a.M; m0 += 32)
                for (int64_t p = q0; p < q1; ++p) store_block(a, c_all + ((m0 / 32) * NPG + (p - q0)) * 1024, m0, p * kPanel);
        }
        _tile_release();
    };
    if (pool) {
        pool->parallel_for(g.M_pad, convert);
        pool->parallel_for(P, multiply);
    } else {
        convert(0, g.M_pad, 0);
        multiply(0, P, 0);
    }
}

template <Mode mode>
int64_t scratch_amx(int64_t M_max, int64_t K, int64_t, int n_threads) {
    const Geometry g = geometry<mode>(M_max, K);
    return n_threads * g.per_thread + g.a_bytes + 64;
}

int64_t packed_bytes_amx(int64_t N, int64_t K) { return (N + kPanel - 1) / kPanel * ((K + 31) / 32 * 32) * kPanel * 2; }

// W:(N,K) 16-bit -> panels of B tiles (see Layout). `convert` maps a stored
// element to the packed one (identity, or f16 -> bf16 rounding).
template <Mode mode>
void pack_amx(const void* w, int64_t N, int64_t K, void* out) {
    const uint16_t* src = static_cast<const uint16_t*>(w);
    uint16_t* dst = static_cast<uint16_t*>(out);
    const int64_t K_pad = (K + 31) / 32 * 32, P = (N + kPanel - 1) / kPanel;
    std::memset(out, 0, static_cast<size_t>(packed_bytes_amx(N, K)));
    for (int64_t n = 0; n < N; ++n) {
        const int64_t p = n / kPanel, h = (n % kPanel) / 16, c = n % 16;
        uint16_t* panel = dst + p * K_pad * kPanel;
        for (int64_t k = 0; k < K; ++k) {
            uint16_t v = src[n * K + k];
            if constexpr (mode == Mode::f16_as_bf16) v = f32_to_bf16(f16_to_f32(v));
            panel[(k / 32) * 1024 + h * 512 + ((k % 32) / 2) * 32 + c * 2 + (k % 2)] = v;
        }
    }
    (void)P;
}


// Plans whose row count stays below 32 get the AVX-512 kernels: a 32-row AMX
// block is then mostly padding (measured at K=576, N=1536: M=16 AMX 84 vs
// AVX-512 105 GFLOP/s; M=32 109 vs 93; M=128 195 vs 98). Runs with fewer rows
// than planned (decode in a prefill-sized plan) take the GEMV path, on par
// with the AVX-512 decode path.
bool supports_amx(int64_t M_max, int64_t, int64_t) { return M_max >= 32; }

bool amx_bf16_available() { return cpu_features().amx_bf16; }

}  // namespace

extern const MatmulKernel f16_gemm__amx = {
    .name = "f16_gemm__amx", .isa = Isa::amx, .w_type = DType::f16, .priority = KernelPriority::matrix,
    .activations = MatmulActivations::f16, .supports = supports_amx, .packed_bytes = packed_bytes_amx,
    .pack = pack_amx<Mode::f16_exact>, .scratch_bytes = scratch_amx<Mode::f16_exact>,
    .run = run_amx<Mode::f16_exact>, .available = amx_bf16_available};
extern const MatmulKernel f16_bf16_gemm__amx = {
    .name = "f16_bf16_gemm__amx", .isa = Isa::amx, .w_type = DType::f16, .priority = KernelPriority::decisions_only,
    .activations = MatmulActivations::bf16, .supports = supports_amx, .packed_bytes = packed_bytes_amx,
    .pack = pack_amx<Mode::f16_as_bf16>, .scratch_bytes = scratch_amx<Mode::f16_as_bf16>,
    .run = run_amx<Mode::f16_as_bf16>, .available = amx_bf16_available};
extern const MatmulKernel bf16_gemm__amx = {
    .name = "bf16_gemm__amx", .isa = Isa::amx, .w_type = DType::bf16, .priority = KernelPriority::matrix,
    .activations = MatmulActivations::bf16, .supports = supports_amx, .packed_bytes = packed_bytes_amx,
    .pack = pack_amx<Mode::bf16>, .scratch_bytes = scratch_amx<Mode::bf16>, .run = run_amx<Mode::bf16>,
    .available = amx_bf16_available};

}  // namespace glimpse
