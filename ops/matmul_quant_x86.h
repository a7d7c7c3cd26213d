// Shared pieces of the x86 W8A8 / W4A8 kernels (ops/matmul_quant_{avx2,avx512,amx}.cpp):
// the interleaved weight layout and the scratch layout. No intrinsics here.
//
// Weights W:(N,K) in Q8_0 or Q4_0 are repacked once into groups of R rows
// (R = 16 for zmm kernels, 8 for ymm): one zmm/ymm lane per weight row, so a
// broadcast of 4 activation bytes against one 64/32-byte load feeds R rows'
// dot products at once and no horizontal sums are ever needed.
//
//   group g (rows 16g..16g+R-1, rows past N are zero), contiguous:
//     quants  nb blocks × QB bytes, QB = 32·R (Q8_0) or 16·R (Q4_0)
//       Q8_0: chunk c (0..7) of block b is R×4 bytes: byte 4r+j = w[r][32b+4c+j] (+128 for VNNI:
//             vpdpbusd multiplies unsigned by signed, Σ(w+128)·q = Σw·q + 128·Σq)
//       Q4_0: chunk c (0..3) of block b is R×4 bytes: byte 4r+j = the file's byte qs[4c+j] of
//             row r, i.e. nibbles (w[r][4c+j], w[r][16+4c+j]) — the nibbles stay packed
//     scales  nb × R f16 (the file's d, 0 for padding rows), padded to 64 bytes
#pragma once

#include <cstdint>

#include "ops/quantize_activations.h"
#include "quant/formats.h"

namespace glimpse::x86q {

inline int64_t quant_block_bytes(bool q4, int R) { return (q4 ? 16 : 32) * R; }
inline int64_t group_bytes(bool q4, int R, int64_t K) {
    const int64_t nb = K / 32;
    return nb * quant_block_bytes(q4, R) + (nb * R * 2 + 63) / 64 * 64;
}
inline int64_t groups(int64_t N, int R) { return (N + R - 1) / R; }
inline int64_t packed_bytes(bool q4, int R, int64_t N, int64_t K) { return groups(N, R) * group_bytes(q4, R, K); }

// The walk both repackers share: for each group of R rows and each of its K/32 blocks, the
// source block of row r (nullptr for the padding rows past N) goes to pack_block(blk, q, r),
// which writes its quants into the group's quant bytes q of that block; its scale goes to d.
template <class Block, class PackBlock>
inline void pack_groups(const void* w, int64_t N, int64_t K, int R, bool q4, void* out, PackBlock pack_block) {
    const int64_t nb = K / 32, gb = group_bytes(q4, R, K), qb = quant_block_bytes(q4, R);
    const Block* src = static_cast<const Block*>(w);
    for (int64_t g = 0; g < groups(N, R); ++g) {
        uint8_t* q = static_cast<uint8_t*>(out) + g * gb;
        uint16_t* d = reinterpret_cast<uint16_t*>(q + nb * qb);
        for (int64_t b = 0; b < nb; ++b) {
            for (int r = 0; r < R; ++r) {
                const int64_t n = g * R + r;
                const Block* blk = n < N ? &src[n * nb + b] : nullptr;
                pack_block(blk, q + b * qb, r);
                d[b * R + r] = blk ? blk->d : 0;
            }
        }
    }
}

// Repacks W:(N,K) Q8_0 into the layout above. offset_q8: 128 for
// unsigned-by-signed kernels (VNNI), 0 to keep the file's signed bytes.
inline void pack_q8_0(const void* w, int64_t N, int64_t K, int R, int offset_q8, void* out) {
    pack_groups<BlockQ8_0>(w, N, K, R, false, out, [&](const BlockQ8_0* blk, uint8_t* q, int r) {
        for (int k = 0; k < 32; ++k) {
            const int v = blk ? blk->qs[k] : 0;
            q[(k / 4) * (4 * R) + 4 * r + k % 4] = static_cast<uint8_t>(v + offset_q8);
        }
    });
}

// Repacks W:(N,K) Q4_0 into the layout above (padding rows: nibbles 8, d = 0).
inline void pack_q4_0(const void* w, int64_t N, int64_t K, int R, void* out) {
    pack_groups<BlockQ4_0>(w, N, K, R, true, out, [&](const BlockQ4_0* blk, uint8_t* q, int r) {
        for (int i = 0; i < 16; ++i) q[(i / 4) * (4 * R) + 4 * r + i % 4] = blk ? blk->qs[i] : 0x88;
    });
}

// Scratch: quantized activations for all M_max rows; for small M (<= kSmallM)
// each thread instead quantizes the few rows itself into its own area, so the
// kernel needs no barrier between quantizing and multiplying.
constexpr int64_t kSmallM = 4;
inline int64_t scratch_bytes(int64_t M_max, int64_t K, int n_threads) {
    const int64_t small = M_max < kSmallM ? M_max : kSmallM;
    return Q8Rows::bytes(M_max, K) + n_threads * Q8Rows::bytes(small, K) + 64;
}
inline Q8Rows shared_rows(void* scratch, int64_t K) { return Q8Rows(scratch, K); }
// Thread t's area for M <= kSmallM rows (placed after room for M shared rows).
inline Q8Rows thread_rows(void* scratch, int64_t M, int64_t K, int t) {
    return Q8Rows(static_cast<uint8_t*>(scratch) + (1 + t) * Q8Rows::bytes(M, K), K);
}

}  // namespace glimpse::x86q
