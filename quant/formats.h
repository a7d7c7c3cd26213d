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

// 8 sub-blocks of 32 with 6-bit scales and mins packed in `scales`:
// x = d * scale_j * q - dmin * min_j
struct BlockQ4K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[kKScaleBytes];
    uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ4K) == 144, "q4_k block size");

struct BlockQ5K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[kKScaleBytes];
    uint8_t qh[kQKK / 8];
    uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ5K) == 176, "q5_k block size");

// 16 sub-blocks of 16 with int8 scales: x = d * scale_j * (q - 32), q 6 bits (ql low 4, qh high 2)
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
