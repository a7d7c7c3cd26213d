// The keep map (`glimpse caption --keep-map out.png`): the input image with the area of every
// dropped visual token dimmed and kept areas at full brightness, so a user sees what the
// language model still sees.
//
// Each view the encoder saw (SmolVLM's tile canvas and its overview, LLaVA's single view) maps
// the original image onto a canvas cut into tiles of tokens_x x tokens_y tokens; a pixel of the
// original image belongs to the token under its centre, mapped the way the preprocessing placed
// the image (models/image_preprocess.h: resized to resized_w x resized_h at (offset_x,
// offset_y); the overview: stretched onto the whole canvas).
//
// Layout of the picture: the main view at the original image's size on the left; the overview,
// if any, at half size to its right, top-aligned, after a gap; the rest is background.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "models/image_preprocess.h"
#include "runtime/image.h"
#include "runtime/status.h"

namespace glimpse {

struct KeepMapView {
    int canvas_w = 0, canvas_h = 0;          // the view's canvas, in canvas pixels
    int offset_x = 0, offset_y = 0;          // where the image sits in it
    int resized_w = 0, resized_h = 0;        // and at what size
    int tiles_x = 1, tiles_y = 1;            // the canvas is cut into tiles_x x tiles_y equal tiles
    int tokens_x = 0, tokens_y = 0;          // visual tokens per tile along x and y
    std::vector<std::vector<int32_t>> kept;  // per tile (row-major): kept token indices y*tokens_x + x
};

struct KeepMapViews {
    KeepMapView main;
    std::optional<KeepMapView> overview;
};

// SmolVLM (idefics3): kept_per_chunk holds n_chunks lists in chunk order (tiles row-major, then
// the overview), each with indices into a tokens_per_side^2 grid (8 for 512-pixel tiles, patch
// 16, pixel shuffle 4).
Result<KeepMapViews> keep_map_views_idefics3(const Idefics3Geometry& geometry, int tokens_per_side,
                                             std::vector<std::vector<int32_t>> kept_per_chunk);

// LLaVA-1.5: one view of tokens_per_side^2 tokens (24 for 336 pixels, patch 14).
Result<KeepMapViews> keep_map_views_llava(const LlavaGeometry& geometry, int tokens_per_side,
                                          std::vector<int32_t> kept);

struct KeepMapStyle {
    double dim = 0.25;  // a dropped pixel's channel v becomes floor(v * dim + 0.5); in [0, 1]
    int gap = 8;        // pixels between the main view and the overview
    std::array<uint8_t, 3> background{24, 24, 24};
};

// image:(H, W, 3) -> the picture described above. Refuses inconsistent views (a kept index
// outside its tile's grid, a tile count that does not match the lists, tiles that do not split
// into whole token cells) and a dim outside [0, 1].
Result<ImageU8> keep_map_render(const ImageU8& image, const KeepMapViews& views, const KeepMapStyle& style = {});

}  // namespace glimpse
