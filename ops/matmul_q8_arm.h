// Shared by the aarch64 kernels that repack q8_0 / q4_0 weights into groups of 4 rows
// (ops/matmul_q8_neon.cpp, matmul_q8_dotprod.cpp, matmul_q8_i8mm.cpp): the group layouts, the packing walk
// (each kernel supplies only where a row's bytes go in a group), the group scales, the
// q4 nibble split, the store of 4 outputs, and for the kernels whose tile is up to 4
// quantized activation rows x one group (neon, dotprod) the run and the kernel table.
// Include only from an aarch64 translation unit; anonymous namespace, so each unit keeps its
// own copy compiled with its flags.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/matmul.h"
#include "ops/matmul_q8_rows.h"
#include "ops/quantize_activations_neon.h"
#include "quant/formats.h"

namespace glimpse::q8_arm {
namespace {

struct Q8Group {  // 4 rows x 32 values of q8_0, bytes in the kernel's interleave
    uint16_t d[4];
    int8_t qs[4 * kQK];
};
struct Q4Group {  // 4 rows x 32 values of q4_0 (nibbles XOR 8), bytes in the kernel's interleave
    uint16_t d[4];
    uint8_t qs[2 * kQK];
};
static_assert(sizeof(Q8Group) == 136 && sizeof(Q4Group) == 72, "packed group sizes");
template <bool kQ4>
using Group = std::conditional_t<kQ4, Q4Group, Q8Group>;

// f16 bits -> f32 with the hardware conversion (FCVT between half and single precision
// is baseline Armv8 floating point).
inline float half_to_float(uint16_t bits) {
    __fp16 h;
    std::memcpy(&h, &bits, 2);
    return static_cast<float>(h);
}

template <class Group>
int64_t packed_bytes(int64_t N, int64_t K) {
    return (N + 3) / 4 * (K / kQK) * static_cast<int64_t>(sizeof(Group));
}

// W:(N,K) blocks -> groups (N+3)/4 x K/32: place(group, block, r) writes row r's quant
// bytes; the scales are set here and rows past N stay zero (zero bytes are zero values
// in both layouts, q4's nibbles being stored XOR 8).
template <class Group, class Block, class Place>
void pack_groups(const void* w, int64_t N, int64_t K, void* out, Place place) {
    const int64_t nb = K / kQK;
    const Block* src = static_cast<const Block*>(w);
    Group* dst = static_cast<Group*>(out);
    for (int64_t g = 0; g < (N + 3) / 4; ++g) {
        for (int64_t b = 0; b < nb; ++b) {
            Group& o = dst[g * nb + b];
            std::memset(&o, 0, sizeof(o));
            for (int r = 0; r < 4 && g * 4 + r < N; ++r) {
                const Block& s = src[(g * 4 + r) * nb + b];
                o.d[r] = s.d;
                place(o, s, r);
            }
        }
    }
}

// The 4 rows' f16 scales as f32; for q4 groups times 1/16, which undoes the factor 16
// of split_q4 (exact: a power of two).
template <bool kQ4>
float32x4_t group_scales(const uint16_t* d) {
    const float32x4_t s = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d)));
    return kQ4 ? vmulq_n_f32(s, 1.0f / 16) : s;
}

// 16 packed q4 bytes (nibbles XOR 8) -> 16·(q-8) of the low nibbles (SHL #4) and of the
// high nibbles (AND 0xf0), as int8 with no subtraction.
inline void split_q4(int8x16_t v, int8x16_t* low, int8x16_t* high) {
    *low = vshlq_n_s8(v, 4);
    *high = vandq_s8(v, vdupq_n_s8(static_cast<int8_t>(0xf0)));
}

// y[m][n..n+3] = acc + bias for the columns below N; `full_bias` is bias[n..n+3] when
// all 4 columns exist (zeros without a bias), unused otherwise.
inline void store_4_columns(const MatmulArgs& a, int64_t m, int64_t n, float32x4_t acc, float32x4_t full_bias) {
    float* yr = a.y + m * a.ldy + n;
    if (n + 4 <= a.N) {
        vst1q_f32(yr, vaddq_f32(acc, full_bias));
        return;
    }
    float out[4];
    vst1q_f32(out, acc);
    for (int j = 0; n + j < a.N; ++j) yr[j] = out[j] + (a.bias ? a.bias[n + j] : 0.0f);
}

// bias[n..n+3] when the group has all 4 columns and there is a bias, else zeros.
inline float32x4_t group_bias(const MatmulArgs& a, int64_t n) {
    return (a.bias && n + 4 <= a.N) ? vld1q_f32(a.bias + n) : vdupq_n_f32(0.0f);
}

// The run of a row-tile kernel: x:(M,K) -> xq:(M,K/32) q8_0 in the scratch, then every
// group g (weight rows 4g..4g+3) with row tiles of 4 and a shorter last one:
// tile.template operator()<MR>(a, xq, m, g) writes y[m..m+MR)[4g..4g+3], 1 <= MR <= 4. `tile` is
// a capture-less lambda around the unit's tile function, so the call is as direct as before
// the two units shared this (qemu instruction counts: +387 per kernel call of 67x768x770, 0.005 %).
template <class Tile>
void run_row_tiles(const MatmulArgs& a, ThreadPool* pool, Tile tile) {
    BlockQ8_0* xq = static_cast<BlockQ8_0*>(a.scratch);
    q8_rows::quantize_rows(a, xq, pool, quantize_row_q8_0_neon);
    q8_rows::for_each_index((a.N + 3) / 4, pool, [&](int64_t g) {
        q8_rows::for_row_tiles<4>(a.M, [&]<int MR>(int64_t m) { tile.template operator()<MR>(a, xq, m, g); });
    });
}

// The table of a row-tile kernel for q8_0 (kQ4 false) or q4_0 weights: `pack` writes its
// groups, `run` calls run_row_tiles.
template <bool kQ4>
constexpr MatmulKernel row_tile_kernel(const char* name, Isa isa, int priority,
                                       void (*pack)(const void*, int64_t, int64_t, void*),
                                       void (*run)(const MatmulArgs&, ThreadPool*)) {
    return {.name = name, .isa = isa, .w_type = kQ4 ? DType::q4_0 : DType::q8_0, .priority = priority,
            .activations = MatmulActivations::q8_0, .supports = q8_rows::supports_whole_blocks,
            .packed_bytes = packed_bytes<Group<kQ4>>, .pack = pack, .scratch_bytes = q8_rows::scratch_q8_0,
            .run = run};
}

}  // namespace
}  // namespace glimpse::q8_arm
