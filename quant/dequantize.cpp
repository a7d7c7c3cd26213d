#include "quant/dequantize.h"

#include <cstring>
#include <type_traits>

#include "quant/formats.h"
#include "quant/type_traits.h"
#include "runtime/fp16.h"
#include "runtime/status.h"

// Results must equal ggml's to the bit: no a*b+c fusion.
#include "quant/no_fp_contract.h"

namespace glimpse {
namespace {

// Blocks are read through memcpy into a local struct: tensor data in a GGUF
// mapping is only guaranteed 1-byte aligned per block.
template <class Block>
Block load_block(const uint8_t* p) {
    Block b;
    std::memcpy(&b, p, sizeof(Block));
    return b;
}

// The 6-bit scale and min of sub-block j (0..7) of a q4_k/q5_k block.
void k_scale_min(int j, const uint8_t* s, int* scale, int* min) {
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

void dequantize_q8_0(const uint8_t* p, float* out, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, p += sizeof(BlockQ8_0), out += kQK) {
        const BlockQ8_0 b = load_block<BlockQ8_0>(p);
        const float d = f16_to_f32(b.d);
        for (int j = 0; j < kQK; ++j) out[j] = static_cast<float>(b.qs[j]) * d;
    }
}

void dequantize_q4_0(const uint8_t* p, float* out, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, p += sizeof(BlockQ4_0), out += kQK) {
        const BlockQ4_0 b = load_block<BlockQ4_0>(p);
        const float d = f16_to_f32(b.d);
        for (int j = 0; j < kQK / 2; ++j) {
            out[j] = static_cast<float>((b.qs[j] & 0x0f) - 8) * d;
            out[j + kQK / 2] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
        }
    }
}

void dequantize_q4_1(const uint8_t* p, float* out, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, p += sizeof(BlockQ4_1), out += kQK) {
        const BlockQ4_1 b = load_block<BlockQ4_1>(p);
        const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
        for (int j = 0; j < kQK / 2; ++j) {
            out[j] = static_cast<float>(b.qs[j] & 0x0f) * d + m;
            out[j + kQK / 2] = static_cast<float>(b.qs[j] >> 4) * d + m;
        }
    }
}

// Bit j of the 32-bit little-endian qh word is bit 4 of value j.
uint32_t load_qh(const uint8_t qh[4]) { return qh[0] | qh[1] << 8 | qh[2] << 16 | static_cast<uint32_t>(qh[3]) << 24; }

void dequantize_q5_0(const uint8_t* p, float* out, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, p += sizeof(BlockQ5_0), out += kQK) {
        const BlockQ5_0 b = load_block<BlockQ5_0>(p);
        const float d = f16_to_f32(b.d);
        const uint32_t qh = load_qh(b.qh);
        for (int j = 0; j < kQK / 2; ++j) {
            const int lo = (b.qs[j] & 0x0f) | ((qh >> j) & 1) << 4;
            const int hi = (b.qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
            out[j] = static_cast<float>(lo - 16) * d;
            out[j + kQK / 2] = static_cast<float>(hi - 16) * d;
        }
    }
}

void dequantize_q5_1(const uint8_t* p, float* out, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, p += sizeof(BlockQ5_1), out += kQK) {
        const BlockQ5_1 b = load_block<BlockQ5_1>(p);
        const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
        const uint32_t qh = load_qh(b.qh);
        for (int j = 0; j < kQK / 2; ++j) {
            const int lo = (b.qs[j] & 0x0f) | ((qh >> j) & 1) << 4;
            const int hi = (b.qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
            out[j] = static_cast<float>(lo) * d + m;
            out[j + kQK / 2] = static_cast<float>(hi) * d + m;
        }
    }
}

void dequantize_q2_k(const uint8_t* p, float* out, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, p += sizeof(BlockQ2K)) {
        const BlockQ2K b = load_block<BlockQ2K>(p);
        const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
        int sub = 0;
        for (int h = 0; h < 2; ++h) {
            const uint8_t* q = b.qs + 32 * h;
            for (int s = 0; s < 4; ++s) {
                for (int half = 0; half < 2; ++half, ++sub) {
                    const float dl = d * static_cast<float>(b.scales[sub] & 0x0f);
                    const float ml = dmin * static_cast<float>(b.scales[sub] >> 4);
                    for (int l = 0; l < 16; ++l) {
                        *out++ = dl * static_cast<float>((q[16 * half + l] >> (2 * s)) & 3) - ml;
                    }
                }
            }
        }
    }
}

// The 16 signed 6-bit scales of a q3_k block: scale j has its low 4 bits in
// byte j % 8 (low nibble for j < 8, high nibble otherwise) and its top 2 bits
// in bits 2*(j / 4)..+1 of byte 8 + j % 4; stored with +32.
void q3_k_scales(const uint8_t s[12], int out[16]) {
    for (int j = 0; j < 16; ++j) {
        const int low = j < 8 ? (s[j] & 0x0f) : (s[j - 8] >> 4);
        const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (low | high << 4) - 32;
    }
}

void dequantize_q3_k(const uint8_t* p, float* out, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, p += sizeof(BlockQ3K)) {
        const BlockQ3K b = load_block<BlockQ3K>(p);
        const float d = f16_to_f32(b.d);
        int scales[16];
        q3_k_scales(b.scales, scales);
        int sub = 0;
        for (int h = 0; h < 2; ++h) {
            const uint8_t* q = b.qs + 32 * h;
            for (int s = 0; s < 4; ++s) {
                const uint8_t mask = static_cast<uint8_t>(1u << (4 * h + s));
                for (int half = 0; half < 2; ++half, ++sub) {
                    const float dl = d * static_cast<float>(scales[sub]);
                    for (int l = 0; l < 16; ++l) {
                        const int idx = 16 * half + l;
                        const int v = ((q[idx] >> (2 * s)) & 3) - ((b.hmask[idx] & mask) ? 0 : 4);
                        *out++ = dl * static_cast<float>(v);
                    }
                }
            }
        }
    }
}

// q4_k / q5_k: sub-blocks 2*pair and 2*pair+1 (32 values each, low and high nibbles of the same
// 32 bytes) as (scale d1, min m1, scale d2, min m2): value = scale * level - min.
struct KPairScales {
    float d1, m1, d2, m2;
};

KPairScales k_pair_scales(const uint8_t* scales, int pair, float d, float dmin) {
    int sc, mn;
    k_scale_min(2 * pair, scales, &sc, &mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    k_scale_min(2 * pair + 1, scales, &sc, &mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    return {d1, m1, d2, m2};
}

// q4_k and q5_k: value = scale * level - min, level the nibble of qs; q5_k adds 16 for bit
// 2*pair (low nibbles) or 2*pair+1 (high nibbles) of qh[l]. The level is an integer before it is
// converted, so q4_k is q5_k with no high bits, the same arithmetic.
template <class Block>
void dequantize_k_affine(const uint8_t* p, float* out, int64_t nb) {
    constexpr bool kHighBits = std::is_same_v<Block, BlockQ5K>;
    for (int64_t i = 0; i < nb; ++i, p += sizeof(Block)) {
        const Block b = load_block<Block>(p);
        const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
        for (int pair = 0; pair < 4; ++pair) {
            const auto [d1, m1, d2, m2] = k_pair_scales(b.scales, pair, d, dmin);
            const uint8_t* q = b.qs + 32 * pair;
            for (int half = 0; half < 2; ++half) {
                const float dl = half == 0 ? d1 : d2, ml = half == 0 ? m1 : m2;
                for (int l = 0; l < 32; ++l) {
                    int level = half == 0 ? (q[l] & 0x0f) : (q[l] >> 4);
                    if constexpr (kHighBits) level += (b.qh[l] >> (2 * pair + half)) & 1 ? 16 : 0;
                    *out++ = dl * static_cast<float>(level) - ml;
                }
            }
        }
    }
}

void dequantize_q4_k(const uint8_t* p, float* out, int64_t nb) { dequantize_k_affine<BlockQ4K>(p, out, nb); }
void dequantize_q5_k(const uint8_t* p, float* out, int64_t nb) { dequantize_k_affine<BlockQ5K>(p, out, nb); }

void dequantize_q6_k(const uint8_t* p, float* out, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, p += sizeof(BlockQ6K)) {
        const BlockQ6K b = load_block<BlockQ6K>(p);
        const float d = f16_to_f32(b.d);
        for (int h = 0; h < 2; ++h, out += 128) {
            const uint8_t* ql = b.ql + 64 * h;
            const uint8_t* qh = b.qh + 32 * h;
            const int8_t* sc = b.scales + 8 * h;
            for (int l = 0; l < 32; ++l) {
                const int sub = l / 16;
                const int q0 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q1 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q2 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q3 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                // (d * scale) * q, the order ggml multiplies in
                out[l] = d * static_cast<float>(sc[sub]) * static_cast<float>(q0);
                out[l + 32] = d * static_cast<float>(sc[sub + 2]) * static_cast<float>(q1);
                out[l + 64] = d * static_cast<float>(sc[sub + 4]) * static_cast<float>(q2);
                out[l + 96] = d * static_cast<float>(sc[sub + 6]) * static_cast<float>(q3);
            }
        }
    }
}

}  // namespace

// Row readers of the type-trait table (quant/type_traits.cpp): n values -> out.
void dequantize_row_f32(const void* blocks, float* out, int64_t n) {
    std::memcpy(out, blocks, static_cast<size_t>(n) * 4);
}
// f16 and bf16 rows: n 16-bit values (unaligned) -> out, each widened by ToF32.
template <float (*ToF32)(uint16_t)>
void widen_u16_row(const void* blocks, float* out, int64_t n) {
    const uint8_t* p = static_cast<const uint8_t*>(blocks);
    for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = ToF32(h);
    }
}
void dequantize_row_f16(const void* blocks, float* out, int64_t n) { widen_u16_row<f16_to_f32>(blocks, out, n); }
void dequantize_row_bf16(const void* blocks, float* out, int64_t n) { widen_u16_row<bf16_to_f32>(blocks, out, n); }
#define GLIMPSE_BLOCK_ROW_READER(type, block)                                       \
    void dequantize_row_##type(const void* blocks, float* out, int64_t n) {        \
        dequantize_##type(static_cast<const uint8_t*>(blocks), out, n / (block)); \
    }
GLIMPSE_BLOCK_ROW_READER(q4_0, kQK)
GLIMPSE_BLOCK_ROW_READER(q4_1, kQK)
GLIMPSE_BLOCK_ROW_READER(q5_0, kQK)
GLIMPSE_BLOCK_ROW_READER(q5_1, kQK)
GLIMPSE_BLOCK_ROW_READER(q8_0, kQK)
GLIMPSE_BLOCK_ROW_READER(q2_k, kQKK)
GLIMPSE_BLOCK_ROW_READER(q3_k, kQKK)
GLIMPSE_BLOCK_ROW_READER(q4_k, kQKK)
GLIMPSE_BLOCK_ROW_READER(q5_k, kQKK)
GLIMPSE_BLOCK_ROW_READER(q6_k, kQKK)
#undef GLIMPSE_BLOCK_ROW_READER

bool dequantize_supported(DType type) { return type_traits_with(type, &TypeTraits::to_f32) != nullptr; }

void dequantize_row(DType type, const void* blocks, float* out, int64_t n) {
    const TypeTraits* t = type_traits_with(type, &TypeTraits::to_f32);
    GLIMPSE_ASSERT(t && "dequantize_row: unsupported type");
    GLIMPSE_ASSERT(n >= 0 && n % t->info.block_size == 0);
    t->to_f32(blocks, out, n);
}

}  // namespace glimpse
