// Image preprocessing of the vision projectors glimpse runs, reproducing llama.cpp's mtmd
// (commit 3f545bec) bit for bit: from a decoded RGB bitmap to the normalized planar f32 tiles fed
// to the vision encoder, one tile per image chunk, in llama.cpp's chunk order.
//
// Each projector has two entry points:
//   *_geometry(width, height, params): sizes, grid and placement only, no pixels, so the runtime
//       can build its static plan (chunk count, token count) before any image is decoded;
//   *_preprocess(image, params): the pixels; its geometry is the *_geometry result.
//
// Params are plain values; model code fills them from the mmproj GGUF metadata.
#pragma once

#include "runtime/image.h"
#include "runtime/status.h"

#include <array>
#include <cstdint>
#include <vector>

namespace glimpse {

// Normalized tiles of one image. data holds n_chunks tiles of (3, tile_size, tile_size) f32,
// planar RGB, back to back in chunk order: chunk k starts at data[k * 3 * S * S].
struct PreprocessedImage {
    int tile_size = 0;   // S
    int n_chunks = 0;
    int grid_rows = 0;   // idefics3: tile rows of the canvas; 0 when there is no tile grid
    int grid_cols = 0;
    bool has_overview = false;  // idefics3: the last chunk is the whole-image overview
    // idefics3: where the image lies on the tile canvas (Idefics3Geometry's fields of the same
    // names), so each overview token can be mapped to the tile under it (HiRED's budget split).
    int resized_w = 0, resized_h = 0, offset_x = 0, offset_y = 0;
    std::vector<float> data;

    size_t chunk_floats() const { return static_cast<size_t>(3) * tile_size * tile_size; }
    const float* chunk(int k) const { return data.data() + static_cast<size_t>(k) * chunk_floats(); }
};

// ---------------------------------------------------------------------------------------------
// idefics3 (SmolVLM). llama.cpp PROJECTOR_TYPE_IDEFICS3:
//   1. canvas ("refined size"): s = min(L/w, L/h) (float), canvas side = ceil(side*s / S) * S,
//      with L = longest_edge, S = tile_size. (L = 0: each side rounded to the nearest multiple of
//      S, at least S.) Optional min/max pixel budgets rescale it as llama.cpp does; 0 = off,
//      which is llama.cpp's default (they only come from --image-min/max-tokens).
//   2. the image is resized with llama.cpp's bicubic into the canvas keeping its aspect ratio
//      (ops/image_resize.h fit_with_padding) and centred on black; a canvas of exactly the image
//      size is a plain copy;
//   3. the canvas is cut into S x S tiles, row-major;
//   4. the overview: the whole image stretched (bilinear, no padding) to S x S.
//   (with a tile budget, max_tiles > 0, a grid of more than max_tiles tiles is replaced: below.)
// Chunk order: tiles row-major, then the overview (llama.cpp's ov_img_first = false).
// At this llama.cpp commit the idefics3 preprocessor always tiles: every image of at least
// 1x1 pixel yields a canvas of at least S x S, so there is at least one tile (1x1 grid) plus the
// overview; there is no "overview only" path for idefics3 (unlike llava-uhd's small-image case).
struct Idefics3Params {
    int tile_size = 0;     // clip.vision.image_size (512 for SmolVLM-256M/500M)
    int longest_edge = 0;  // clip.vision.preproc_image_size (2048 for SmolVLM-256M/500M)
    int min_pixels = 0;    // canvas pixel budget, 0 = off
    int max_pixels = 0;    // canvas pixel budget, 0 = off
    // Tile budget (glimpse's, not llama.cpp's; docs/pruning.md "Tile budget"): at most this many
    // canvas tiles (rows*cols), the overview not counted. 0 = no cap: llama.cpp's grid, bit for bit.
    int max_tiles = 0;
    std::array<float, 3> mean{0.5f, 0.5f, 0.5f};  // clip.vision.image_mean
    std::array<float, 3> std{0.5f, 0.5f, 0.5f};   // clip.vision.image_std
};

struct Idefics3Geometry {
    int image_w = 0, image_h = 0;    // input
    int canvas_w = 0, canvas_h = 0;  // refined canvas, multiples of tile_size
    int grid_rows = 0, grid_cols = 0;
    int resized_w = 0, resized_h = 0;  // image size inside the canvas
    int offset_x = 0, offset_y = 0;    // top-left of the resized image in the canvas
    int tile_size = 0;
    // The tile budget chose the grid (llama.cpp's had more than max_tiles tiles): the image is
    // stretched to the whole canvas (resized = canvas, offset 0), no padding.
    bool capped = false;

    int n_tiles() const { return grid_rows * grid_cols; }
    int n_chunks() const { return n_tiles() + 1; }  // tiles + overview
};

// The tile budget's grid rule. Given the image size, llama.cpp's grid (natural_rows x
// natural_cols) and the budget, the grid (rows, cols) with
//   1 <= rows <= natural_rows, 1 <= cols <= natural_cols, rows*cols <= max_tiles
// whose aspect cols/rows is closest to the image's width/height, closeness measured as
// |ln((cols*h) / (rows*w))| (a 2x too wide grid is as far as a 2x too tall one), compared
// exactly in integers; ties go to more tiles, then to more columns. The grid never has more tiles
// per side than llama.cpp's. A natural grid within the budget is returned unchanged.
// E.g. 1024x768 on SmolVLM (natural 3 rows x 4 cols): max 6 -> 2x3, max 4 -> 2x2, max 2 -> 1x1.
// Preconditions: sizes and natural grid >= 1, max_tiles >= 1.
struct TileGrid {
    int rows = 0, cols = 0;
};
TileGrid idefics3_capped_grid(int image_w, int image_h, int natural_rows, int natural_cols, int max_tiles);

// Validates params (tile_size > 0, longest_edge >= 0, budgets >= 0) and sizes (1..kResizeMaxSide).
// With max_tiles > 0 and llama.cpp's grid over it: grid = idefics3_capped_grid(...), canvas =
// (cols*S) x (rows*S), and the image is resized (bicubic, aspect not kept: the grid was chosen to
// keep it as well as it can) to exactly that canvas; the overview is unchanged.
Result<Idefics3Geometry> idefics3_geometry(int width, int height, const Idefics3Params& params);

// image:(H,W,3) -> n_chunks tiles (3,S,S): grid_rows*grid_cols canvas tiles, then the overview.
Result<PreprocessedImage> idefics3_preprocess(const ImageU8& image, const Idefics3Params& params);

// ---------------------------------------------------------------------------------------------
// LLaVA-1.5 style, llama.cpp PROJECTOR_TYPE_MLP (also MLP_NORM, LDP, LDPv2) without
// image_grid_pinpoints: one image -> one chunk. The image is resized with llama.cpp's bicubic to
// fit image_size x image_size keeping its aspect ratio and centred on a canvas of pad_rgb
// (122, 116, 104: llama.cpp's value, the CLIP mean in 8 bits); a square image of exactly
// image_size is copied. Then normalized with the mmproj mean/std.
// (With image_grid_pinpoints llama.cpp uses llava-uhd slicing instead: not handled here.)
struct LlavaParams {
    int image_size = 0;  // clip.vision.image_size (336 for LLaVA-1.5)
    std::array<uint8_t, 3> pad_rgb{122, 116, 104};
    std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
    std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
};

struct LlavaGeometry {
    int image_w = 0, image_h = 0;
    int canvas = 0;                    // image_size
    int resized_w = 0, resized_h = 0;  // image size inside the canvas
    int offset_x = 0, offset_y = 0;
    int n_chunks() const { return 1; }
};

Result<LlavaGeometry> llava_geometry(int width, int height, const LlavaParams& params);

// image:(H,W,3) -> one tile (3, image_size, image_size).
Result<PreprocessedImage> llava_preprocess(const ImageU8& image, const LlavaParams& params);

}  // namespace glimpse
