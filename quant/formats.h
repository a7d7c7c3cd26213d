// GGUF block formats (the byte layouts of ggml-common.h), as plain structs whose
// sizes are pinned, so a mapped tensor can be read as an array of blocks.
// f16 fields are stored as raw uint16_t bits (runtime/fp16.h converts them).
#pragma once

#include <cstdint>

namespace glimpse {

constexpr int kQK = 32;    // values per block of the legacy formats
constexpr int kQKK = 256;  // values per super-block of the k-quants
constexpr int kKScaleBytes = 12;

// x = d * q
struct BlockQ8_0 {
    uint16_t d;
    int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34, "q8_0 block size");

// x = d * q, plus s = d * sum(q): the activation format of q4_1/q5_1 dot products.
struct BlockQ8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_1) == 36, "q8_1 block size");

// x = d * (q - 8); value j in the low nibble of qs[j], value j+16 in the high nibble.
struct BlockQ4_0 {
    uint16_t d;
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18, "q4_0 block size");

// x = d * q + m
struct BlockQ4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "q4_1 block size");

// x = d * (q - 16), the 5th bit of value j in bit j of qh
struct BlockQ5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22, "q5_0 block size");

// x = d * q + m
struct BlockQ5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24, "q5_1 block size");

// 16 sub-blocks of 16; scales[j] holds sub-block j's 4-bit scale (low nibble) and
// 4-bit min (high nibble); q 2 bits: x = d * scale_j * q - dmin * min_j.
// Value 128*h + 32*s + l (h < 2, s < 4, l < 32) is bits 2s..2s+1 of qs[32*h + l].
struct BlockQ2K {
    uint8_t scales[kQKK / 16];
    uint8_t qs[kQKK / 4];
    uint16_t d;
    uint16_t dmin;
};
static_assert(sizeof(BlockQ2K) == 84, "q2_k block size");

// 16 sub-blocks of 16 with 6-bit signed scales (stored +32) packed into 12 bytes;
// q 3 bits = 2 low bits in qs (laid out as in q2_k) + 1 high bit in hmask:
// x = d * (scale_j - 32) * (q - 4). Value 128*h + 32*s + l has its high bit in
// bit 4h+s of hmask[l].
struct BlockQ3K {
    uint8_t hmask[kQKK / 8];
    uint8_t qs[kQKK / 4];
    uint8_t scales[kKScaleBytes];
    uint16_t d;
};
static_assert(sizeof(BlockQ3K) == 110, "q3_k block size");

// 8 sub-blocks of 32 with 6-bit scales and mins packed in `scales`:
// x = d * scale_j * q - dmin * min_j
// Packing of the 12 bytes (sc_j, m_j are 6-bit): for j < 4, scales[j] = sc_j and
// scales[j+4] = m_j in the low 6 bits; for j >= 4, scales[j+4] = (sc_j & 15) | (m_j & 15) << 4,
// and the top two bits of sc_j / m_j sit in bits 6-7 of scales[j-4] / scales[j].
// Value 64*p + l (p < 4, l < 32) is the low nibble of qs[32*p + l] (sub-block 2p);
// value 64*p + 32 + l its high nibble (sub-block 2p+1).
struct BlockQ4K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[kKScaleBytes];
    uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ4K) == 144, "q4_k block size");

// As q4_k with a 5th bit per value: value 64*p + l takes bit 2p of qh[l] and value
// 64*p + 32 + l bit 2p+1 of qh[l] as its bit 4.
struct BlockQ5K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[kKScaleBytes];
    uint8_t qh[kQKK / 8];
    uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ5K) == 176, "q5_k block size");

// 16 sub-blocks of 16 with int8 scales: x = d * scale_j * (q - 32), q 6 bits (ql low 4, qh high 2).
// Within each half h (128 values), value 128*h + 32*s + l (s < 4, l < 32) takes its low
// nibble from ql[64*h + l + 32*(s & 1)] (low nibble for s < 2, high for s >= 2) and its high
// 2 bits from bits 2s..2s+1 of qh[32*h + l]; it belongs to sub-block 8*h + 2*s + l/16.
struct BlockQ6K {
    uint8_t ql[kQKK / 2];
    uint8_t qh[kQKK / 4];
    int8_t scales[kQKK / 16];
    uint16_t d;
};
static_assert(sizeof(BlockQ6K) == 210, "q6_k block size");

// The activation format of k-quant dot products: f32 scale, 256 int8, sums of each 16.
struct BlockQ8K {
    float d;
    int8_t qs[kQKK];
    int16_t bsums[kQKK / 16];
};
static_assert(sizeof(BlockQ8K) == 292, "q8_k block size");

}  // namespace glimpse
