// The AMX tile configuration both AMX GEMMs load (ops/matmul_float_amx.cpp,
// matmul_quant_amx.cpp): palette 1, each of tmm0..tmm7 given its rows and bytes per
// row. Include only from *_amx.cpp translation units; anonymous namespace (each unit
// keeps its own copy).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace glimpse::amx {
namespace {

struct TileShape {
    uint8_t rows;
    uint16_t bytes_per_row;
};

// The 64-byte block _tile_loadconfig reads (Intel SDM, LDTILECFG).
struct alignas(64) TileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

// Tile t gets shapes[t]; the thread must call _tile_release() when done.
inline void configure_tiles(const TileShape (&shapes)[8]) {
    TileConfig cfg;
    for (int t = 0; t < 8; ++t) {
        cfg.rows[t] = shapes[t].rows;
        cfg.colsb[t] = shapes[t].bytes_per_row;
    }
    _tile_loadconfig(&cfg);
}

}  // namespace
}  // namespace glimpse::amx
