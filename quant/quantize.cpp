#include "quant/quantize.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "quant/type_traits.h"
#include "runtime/fp16.h"
#include "runtime/status.h"

// Bit-exactness with ggml requires every product to be rounded before it is
// added: no a*b+c fusion in this file.
#include "quant/no_fp_contract.h"

namespace glimpse {
namespace {

// Below this magnitude a group counts as all zero (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the
// rounded integer in the low mantissa bits (the float addition does the rounding).
inline int round_nearest(float v) {
    const float biased = v + 12582912.0f;
    int32_t bits;
    std::memcpy(&bits, &biased, 4);
    return (bits & 0x007fffff) - 0x00400000;
}

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Stores a block struct to unaligned memory.
template <class Block>
void store_block(const Block& b, Block* dst) {
    std::memcpy(static_cast<void*>(dst), &b, sizeof(Block));
}

// x: n values -> levels L[i] in [0, nmax] and returns scale s, with *neg_min = -m
// (m <= 0) so that x ~= s * L + m. Starts from the min/max grid, then tries the
// level counts nmax + rmin + rdelta * k (k = 0..nstep), each with the weighted
// least-squares (s, m) for its levels, keeping the lowest weighted squared error.
// Each candidate grid is laid over [m, max] with m the best offset found so far
// (m moves when a candidate wins). Same operations, order and tie rules as ggml's
// make_qkx2_quants (use_mad = false).
float search_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min,
                       uint8_t* L_try, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *neg_min = -min;
        return 0.f;
    }
    float inv = static_cast<float>(nmax) / (max - min);
    float scale = 1 / inv;
    float best_err = 0;
    for (int i = 0; i < n; ++i) {
        const int l = round_nearest(inv * (x[i] - min));
        L[i] = static_cast<uint8_t>(clamp_int(l, 0, nmax));
        const float diff = scale * static_cast<float>(L[i]) + min - x[i];
        best_err += w[i] * (diff * diff);
    }
    for (int k = 0; k <= nstep; ++k) {
        inv = (rmin + rdelta * static_cast<float>(k) + static_cast<float>(nmax)) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clamp_int(round_nearest(inv * (x[i] - min)), 0, nmax);
            L_try[i] = static_cast<uint8_t>(l);
            const float wl = w[i] * static_cast<float>(l);
            sum_l += wl;
            sum_l2 += wl * static_cast<float>(l);
            sum_xl += wl * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det > 0) {
            float s = (sum_w * sum_xl - sum_x * sum_l) / det;
            float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if (m > 0) {
                m = 0;
                s = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; ++i) {
                const float diff = s * static_cast<float>(L_try[i]) + m - x[i];
                err += w[i] * (diff * diff);
            }
            if (err < best_err) {
                std::memcpy(L, L_try, static_cast<size_t>(n));
                best_err = err;
                scale = s;
                min = m;
            }
        }
    }
    *neg_min = -min;
    return scale;
}

// x: n values -> signed levels (stored + nmax in L, range [0, 2*nmax)) and the
// scale s with x ~= s * (L - nmax). The scale maps the value of largest |x| to
// -nmax; 18 perturbations of that grid are tried and the one with the best
// x^2-weighted least-squares fit kept. ggml's make_qx_quants with rmse_type 1.
float search_signed_scale(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    const float fnmax = static_cast<float>(nmax);
    float inv = -fnmax / max;
    float sum_lx = 0, sum_l2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clamp_int(round_nearest(inv * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<int8_t>(l + nmax);
        const float w = x[i] * x[i];
        sum_lx += w * x[i] * static_cast<float>(l);
        sum_l2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    float scale = sum_l2 != 0 ? sum_lx / sum_l2 : 0.0f;
    float best = scale * sum_lx;
    for (int k = -9; k <= 9; ++k) {
        if (k == 0) continue;
        inv = -(fnmax + 0.1f * static_cast<float>(k)) / max;
        sum_lx = sum_l2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clamp_int(round_nearest(inv * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sum_lx += w * x[i] * static_cast<float>(l);
            sum_l2 += w * static_cast<float>(l) * static_cast<float>(l);
        }
        if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
            for (int i = 0; i < n; ++i) {
                L[i] = static_cast<int8_t>(clamp_int(round_nearest(inv * x[i]), -nmax, nmax - 1) + nmax);
            }
            scale = sum_lx / sum_l2;
            best = scale * sum_lx;
        }
    }
    return scale;
}

// Packs the 6-bit scale and min of sub-block j into the 12 q4_k/q5_k scale bytes
// (which must start zeroed).
void pack_k_scale_min(int j, uint8_t sc, uint8_t mn, uint8_t* s) {
    if (j < 4) {
        s[j] = sc;
        s[j + 4] = mn;
    } else {
        s[j + 4] = static_cast<uint8_t>((sc & 0x0f) | (mn & 0x0f) << 4);
        s[j - 4] |= static_cast<uint8_t>((sc >> 4) << 6);
        s[j] |= static_cast<uint8_t>((mn >> 4) << 6);
    }
}

void unpack_k_scale_min(int j, const uint8_t* s, int* sc, int* mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// Shared by q4_k (nmax 15) and q5_k (nmax 31): per sub-block scale/min search,
// 6-bit quantization of scales and mins, then every value re-quantized against
// the scales as they will be decoded. L receives 256 levels.
void quantize_k_superblock(const float* x, int nmax, float rmin, float rdelta, int nstep, uint16_t* d_out,
                           uint16_t* dmin_out, uint8_t scale_bytes[kKScaleBytes], uint8_t L[kQKK]) {
    float scales[kQKK / 32], mins[kQKK / 32];
    float w[32];
    uint8_t L_try[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < kQKK / 32; ++j) {
        const float* xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(xs[l]);
        scales[j] = search_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], L_try, rmin, rdelta, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::memset(scale_bytes, 0, kKScaleBytes);
    for (int j = 0; j < kQKK / 32; ++j) {
        // ggml stores nearest_int() in a uint8_t before clamping; keep that wrap.
        uint8_t ls = static_cast<uint8_t>(round_nearest(inv_scale * scales[j]));
        uint8_t lm = static_cast<uint8_t>(round_nearest(inv_min * mins[j]));
        if (ls > 63) ls = 63;
        if (lm > 63) lm = 63;
        pack_k_scale_min(j, ls, lm, scale_bytes);
    }
    *d_out = f32_to_f16(max_scale / 63.f);
    *dmin_out = f32_to_f16(max_min / 63.f);
    const float d_all = f16_to_f32(*d_out), dmin_all = f16_to_f32(*dmin_out);
    for (int j = 0; j < kQKK / 32; ++j) {
        int sc, mn;
        unpack_k_scale_min(j, scale_bytes, &sc, &mn);
        const float d = d_all * static_cast<float>(sc);
        if (d == 0) continue;  // keeps the search's levels, as ggml does
        const float dm = dmin_all * static_cast<float>(mn);
        for (int l = 0; l < 32; ++l) {
            L[32 * j + l] = static_cast<uint8_t>(clamp_int(round_nearest((x[32 * j + l] + dm) / d), 0, nmax));
        }
    }
}

}  // namespace

void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n) {
    GLIMPSE_ASSERT(n % kQK == 0);
    for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
        float amax = 0;
        for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        BlockQ8_0 b;
        b.d = f32_to_f16(d);
        for (int j = 0; j < kQK; ++j) b.qs[j] = static_cast<int8_t>(std::round(x[j] * id));
        store_block(b, y + i);
    }
}

// The value of largest magnitude (the first one on ties), with its sign.
static float signed_absmax(const float* x, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

namespace {

// levels:(32), each 0..31 -> the 4- and 5-bit block layout: the low 4 bits of value j in the low
// nibble of qs[j] and of value j + 16 in its high nibble; q5_0 and q5_1 keep bit 4 of value j in
// bit j of qh (little-endian). q4_0 and q4_1 levels are below 16: no high bits.
template <class Block>
void pack_nibble_levels(const int* levels, Block* b) {
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
        const int lo = levels[j], hi = levels[j + kQK / 2];
        b->qs[j] = static_cast<uint8_t>((lo & 0x0f) | (hi & 0x0f) << 4);
        qh |= static_cast<uint32_t>(lo >> 4) << j;
        qh |= static_cast<uint32_t>(hi >> 4) << (j + kQK / 2);
    }
    if constexpr (requires { b->qh; }) {
        for (int k = 0; k < 4; ++k) b->qh[k] = static_cast<uint8_t>(qh >> (8 * k));
    }
}

// q4_0 (kHalf 8) and q5_0 (kHalf 16): the extreme value maps to level 0 (-kHalf * d); its
// opposite side reaches 2 * kHalf - 1.
template <class Block, int kHalf>
void quantize_row_symmetric(const float* x, Block* y, int64_t n) {
    GLIMPSE_ASSERT(n % kQK == 0);
    for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
        const float d = signed_absmax(x, kQK) / -kHalf;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        Block b;
        b.d = f32_to_f16(d);
        int levels[kQK];
        for (int j = 0; j < kQK; ++j) levels[j] = std::min(2 * kHalf - 1, static_cast<int>(x[j] * id + (kHalf + 0.5f)));
        pack_nibble_levels(levels, &b);
        store_block(b, y + i);
    }
}

// q4_1 / q5_1 map a block's [min, max] onto levels 0..max_level: step = (max - min) / max_level,
// inverse_step = 1 / step (0 for a constant block, whose values all land on level 0).
struct AffineBlockScale {
    float min, step, inverse_step;
};

AffineBlockScale affine_block_scale(const float* x, int max_level) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < kQK; ++j) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float step = (max - min) / max_level;
    return {min, step, step != 0 ? 1.0f / step : 0.0f};
}

// q4_1 (kMaxLevel 15) and q5_1 (31). The clamp matters for q4_1 only (ggml's q5_1 has none:
// (x - min) / step never exceeds 31 by half a step).
template <class Block, int kMaxLevel>
void quantize_row_affine(const float* x, Block* y, int64_t n) {
    GLIMPSE_ASSERT(n % kQK == 0);
    for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
        const AffineBlockScale s = affine_block_scale(x, kMaxLevel);
        const float min = s.min, id = s.inverse_step;
        Block b;
        b.d = f32_to_f16(s.step);
        b.m = f32_to_f16(min);
        int levels[kQK];
        for (int j = 0; j < kQK; ++j) levels[j] = std::min(kMaxLevel, static_cast<int>((x[j] - min) * id + 0.5f));
        pack_nibble_levels(levels, &b);
        store_block(b, y + i);
    }
}

}  // namespace

void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n) { quantize_row_symmetric<BlockQ4_0, 8>(x, y, n); }

void quantize_row_q5_0_ref(const float* x, BlockQ5_0* y, int64_t n) { quantize_row_symmetric<BlockQ5_0, 16>(x, y, n); }

void quantize_row_q4_1_ref(const float* x, BlockQ4_1* y, int64_t n) { quantize_row_affine<BlockQ4_1, 15>(x, y, n); }

void quantize_row_q5_1_ref(const float* x, BlockQ5_1* y, int64_t n) { quantize_row_affine<BlockQ5_1, 31>(x, y, n); }

namespace {

// q4_k and q5_k: ggml's search (levels 0..nmax) per 32-value sub-block, then value 64p + l in
// the low nibble of qs[32p + l] and value 64p + 32 + l in its high nibble; q5_k keeps bit 4 of
// each in bit 2p (2p+1 for the upper 32) of qh[l]. q4_k's levels are below 16, so it is q5_k
// without the high bits: one packing.
template <class Block>
void quantize_row_k_affine(const float* x, Block* y, int64_t n, int nmax, float rmin, float rdelta, int nstep) {
    constexpr bool kHighBits = std::is_same_v<Block, BlockQ5K>;
    GLIMPSE_ASSERT(n % kQKK == 0);
    uint8_t L[kQKK];
    for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
        Block b;
        quantize_k_superblock(x, nmax, rmin, rdelta, nstep, &b.d, &b.dmin, b.scales, L);
        if constexpr (kHighBits) std::memset(b.qh, 0, sizeof(b.qh));
        for (int p = 0; p < 4; ++p) {
            for (int l = 0; l < 32; ++l) {
                const int lo = L[64 * p + l], hi = L[64 * p + 32 + l];
                b.qs[32 * p + l] = static_cast<uint8_t>((lo & 0x0f) | (hi & 0x0f) << 4);
                if constexpr (kHighBits) b.qh[l] |= static_cast<uint8_t>((lo >> 4) << (2 * p) | (hi >> 4) << (2 * p + 1));
            }
        }
        store_block(b, y + i);
    }
}

}  // namespace

void quantize_row_q4_k_ref(const float* x, BlockQ4K* y, int64_t n) { quantize_row_k_affine(x, y, n, 15, -1.0f, 0.1f, 20); }
void quantize_row_q5_k_ref(const float* x, BlockQ5K* y, int64_t n) { quantize_row_k_affine(x, y, n, 31, -0.5f, 0.1f, 15); }

void quantize_row_q6_k_ref(const float* x, BlockQ6K* y, int64_t n) {
    GLIMPSE_ASSERT(n % kQKK == 0);
    int8_t L[kQKK];
    float scales[kQKK / 16];
    for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
        BlockQ6K b;
        float max_scale = 0, max_abs_scale = 0;
        for (int s = 0; s < kQKK / 16; ++s) {
            scales[s] = search_signed_scale(16, 32, x + 16 * s, L + 16 * s);
            if (std::fabs(scales[s]) > max_abs_scale) {
                max_abs_scale = std::fabs(scales[s]);
                max_scale = scales[s];
            }
        }
        if (max_abs_scale < kGroupMaxEps) {
            std::memset(&b, 0, sizeof(b));
            store_block(b, y + i);
            continue;
        }
        // The sub-block scale of largest magnitude maps to -128.
        const float inv = -128.f / max_scale;
        b.d = f32_to_f16(1 / inv);
        for (int s = 0; s < kQKK / 16; ++s) {
            b.scales[s] = static_cast<int8_t>(std::min(127, round_nearest(inv * scales[s])));
        }
        const float d_all = f16_to_f32(b.d);
        for (int s = 0; s < kQKK / 16; ++s) {
            const float d = d_all * static_cast<float>(b.scales[s]);
            if (d == 0) continue;  // keeps the search's levels, as ggml does
            for (int l = 0; l < 16; ++l) {
                L[16 * s + l] = static_cast<int8_t>(clamp_int(round_nearest(x[16 * s + l] / d), -32, 31) + 32);
            }
        }
        for (int h = 0; h < 2; ++h) {
            const int8_t* Lh = L + 128 * h;
            for (int l = 0; l < 32; ++l) {
                const int q0 = Lh[l], q1 = Lh[l + 32], q2 = Lh[l + 64], q3 = Lh[l + 96];
                b.ql[64 * h + l] = static_cast<uint8_t>((q0 & 0x0f) | (q2 & 0x0f) << 4);
                b.ql[64 * h + l + 32] = static_cast<uint8_t>((q1 & 0x0f) | (q3 & 0x0f) << 4);
                b.qh[32 * h + l] = static_cast<uint8_t>((q0 >> 4) | (q1 >> 4) << 2 | (q2 >> 4) << 4 | (q3 >> 4) << 6);
            }
        }
        store_block(b, y + i);
    }
}

void quantize_row_f32(const float* x, void* out, int64_t n) { std::memcpy(out, x, static_cast<size_t>(n) * 4); }
namespace {

// f16 and bf16 rows: x:(n) -> n 16-bit values (unaligned), each narrowed by FromF32.
template <uint16_t (*FromF32)(float)>
void narrow_u16_row(const float* x, void* out, int64_t n) {
    uint8_t* o = static_cast<uint8_t*>(out);
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = FromF32(x[i]);
        std::memcpy(o + 2 * i, &h, 2);
    }
}

}  // namespace

void quantize_row_f16(const float* x, void* out, int64_t n) { narrow_u16_row<f32_to_f16>(x, out, n); }
void quantize_row_bf16(const float* x, void* out, int64_t n) { narrow_u16_row<f32_to_bf16>(x, out, n); }

bool quantize_supported(DType type) { return type_traits_with(type, &TypeTraits::from_f32) != nullptr; }

void quantize_row(DType type, const float* x, void* out, int64_t n) {
    const TypeTraits* t = type_traits_with(type, &TypeTraits::from_f32);
    GLIMPSE_ASSERT(t && "quantize_row: unsupported type");
    GLIMPSE_ASSERT(n >= 0 && n % t->info.block_size == 0);
    t->from_f32(x, out, n);
}

namespace {

bool f16_bits_finite(uint16_t h) { return (h & 0x7c00) != 0x7c00; }

// Reads the f16 field at byte offset `off` of every block.
bool block_f16_finite(const uint8_t* p, int64_t nb, size_t block_bytes, size_t off) {
    for (int64_t i = 0; i < nb; ++i) {
        uint16_t h;
        std::memcpy(&h, p + i * block_bytes + off, 2);
        if (!f16_bits_finite(h)) return false;
    }
    return true;
}

// The f16 scale d of every block, and its f16 minimum (m of q4_1/q5_1, dmin of the k-quants) where it has one.
template <class Block>
bool block_scales_finite(const uint8_t* p, int64_t nb) {
    bool finite = block_f16_finite(p, nb, sizeof(Block), offsetof(Block, d));
    if constexpr (requires { &Block::m; }) finite = finite && block_f16_finite(p, nb, sizeof(Block), offsetof(Block, m));
    if constexpr (requires { &Block::dmin; }) {
        finite = finite && block_f16_finite(p, nb, sizeof(Block), offsetof(Block, dmin));
    }
    return finite;
}

}  // namespace

bool quantized_scales_finite(DType type, const void* data, int64_t n) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    const int64_t nb = n / dtype_info(type).block_size;
    switch (type) {
        case DType::f32:
            for (int64_t i = 0; i < n; ++i) {
                float v;
                std::memcpy(&v, p + 4 * i, 4);
                if (!std::isfinite(v)) return false;
            }
            return true;
        case DType::f16:
            return block_f16_finite(p, n, 2, 0);
        case DType::bf16:
            for (int64_t i = 0; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, p + 2 * i, 2);
                if ((h & 0x7f80) == 0x7f80) return false;
            }
            return true;
        case DType::q8_0: return block_scales_finite<BlockQ8_0>(p, nb);
        case DType::q4_0: return block_scales_finite<BlockQ4_0>(p, nb);
        case DType::q5_0: return block_scales_finite<BlockQ5_0>(p, nb);
        case DType::q4_1: return block_scales_finite<BlockQ4_1>(p, nb);
        case DType::q5_1: return block_scales_finite<BlockQ5_1>(p, nb);
        case DType::q4_k: return block_scales_finite<BlockQ4K>(p, nb);
        case DType::q5_k: return block_scales_finite<BlockQ5K>(p, nb);
        case DType::q6_k: return block_scales_finite<BlockQ6K>(p, nb);
        case DType::q2_k: return block_scales_finite<BlockQ2K>(p, nb);
        case DType::q3_k: return block_scales_finite<BlockQ3K>(p, nb);
        default: return true;
    }
}

}  // namespace glimpse
