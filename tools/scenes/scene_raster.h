// Integer-only rasterizer for the scene generator: shape masks, backgrounds, bitmap text.
// No floating point touches a pixel, so the output is identical on every platform.
#pragma once

#include "tools/scenes/scene.h"

#include <cstdint>
#include <vector>

namespace glimpse::scenes {

// A shape's pixels. `frame` is the square searched around the anchor, `inside` has
// frame.width()·frame.height() flags (row-major), `tight` bounds the set flags.
struct ShapeMask {
    PixelBox frame;
    PixelBox tight;
    std::vector<uint8_t> inside;
    int area = 0;
    bool covers(int x, int y) const {
        return frame.contains(x, y) &&
               inside[static_cast<size_t>(y - frame.y0) * frame.width() + (x - frame.x0)] != 0;
    }
};

// The shape of nominal size `size_px`, symmetric about pixel center (cx + 0.5, cy + 0.5).
ShapeMask rasterize_shape(Shape shape, int center_x, int center_y, int size_px);

// Half the side of the square that always contains a shape of size_px around its anchor.
inline int shape_reach(int size_px) { return size_px / 2 + 1; }

struct BackgroundSpec {
    BackgroundKind kind = BackgroundKind::flat;
    Rgb first, second;        // gradient ends / stripe colors; `first` is the flat/noise base
    int orientation = 0;      // 0 horizontal axis (x), 1 vertical (y), 2 diagonal (x + y)
    int stripe_width = 8;     // pixels per stripe
    int noise_cell = 16;      // pixels between value-noise lattice points
    int noise_amplitude = 0;  // ± brightness offset at lattice points
    uint64_t noise_seed = 0;
};

// Fills image (already sized) with the background.
void render_background(const BackgroundSpec& spec, SceneImage& image);

void fill_mask(const ShapeMask& mask, Rgb color, SceneImage& image);

// Text box for `length` glyphs at `scale` with its top-left corner at (x0, y0).
PixelBox text_box(int x0, int y0, int length, int scale);
void draw_text(const SceneText& text, SceneImage& image);

}  // namespace glimpse::scenes
