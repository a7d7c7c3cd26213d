// Shared by the matmul kernels that multiply q8_0 activations (ops/matmul_q8_scalar.cpp,
// matmul_q8_neon.cpp, matmul_q8_dotprod.cpp, matmul_q8_i8mm.cpp): the shape rule, the
// activation scratch, the row quantization pass and the walk over row tiles. Portable
// C++ only; everything is in an anonymous namespace so each ISA translation unit keeps
// its own copy (docs/conventions.md, "SIMD kernels": linkage).
#pragma once

#include <cstdint>

#include "ops/matmul.h"
#include "quant/formats.h"
#include "runtime/threadpool.h"

namespace glimpse::q8_rows {
namespace {

// K must be whole 32-value blocks.
inline bool supports_whole_blocks(int64_t, int64_t K, int64_t) { return K % kQK == 0; }

// Scratch for x:(M_max,K) quantized to q8_0 blocks, one row after another.
inline int64_t scratch_q8_0(int64_t M_max, int64_t K, int64_t, int) {
    return M_max * (K / kQK) * static_cast<int64_t>(sizeof(BlockQ8_0));
}

// x:(M,K) (row stride ldx) -> xq:(M,K/32), quantize_row(x_row, K, xq_row) per row, the
// rows split over the pool.
template <class QuantizeRow>
void quantize_rows(const MatmulArgs& a, BlockQ8_0* xq, ThreadPool* pool, QuantizeRow quantize_row) {
    const int64_t nb = a.K / kQK;
    auto body = [&](int64_t m0, int64_t m1, int) {
        for (int64_t m = m0; m < m1; ++m) quantize_row(a.x + m * a.ldx, a.K, xq + m * nb);
    };
    if (pool && a.M > 1) pool->parallel_for(a.M, body);
    else body(0, a.M, 0);
}

// fn(i) for every i in [0, count), the range split over the pool.
template <class Fn>
void for_each_index(int64_t count, ThreadPool* pool, Fn fn) {
    auto range = [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) fn(i);
    };
    if (pool) pool->parallel_for(count, range);
    else range(0, count, 0);
}

// The tail of for_row_tiles: one tile of `left` rows (0 <= left <= R) at row m.
template <int R, class Tile>
void tail_tile(int64_t left, int64_t m, Tile& tile) {
    if constexpr (R > 0) {
        if (left == R) tile.template operator()<R>(m);
        else tail_tile<R - 1>(left, m, tile);
    }
}

// Rows [0, M) in tiles of kRows: tile.template operator()<kRows>(m) per full tile, then
// one tile of the rows left (1 .. kRows-1), so every tile height is a constant.
template <int kRows, class Tile>
void for_row_tiles(int64_t M, Tile&& tile) {
    int64_t m = 0;
    for (; m + kRows <= M; m += kRows) tile.template operator()<kRows>(m);
    tail_tile<kRows - 1>(M - m, m, tile);
}

}  // namespace
}  // namespace glimpse::q8_rows
