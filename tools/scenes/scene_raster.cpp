#include "tools/scenes/scene_raster.h"

#include "tools/scenes/scene_rng.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <span>

namespace glimpse::scenes {
namespace {

// Geometry runs in sub-pixel units: a pixel is kSub units wide, so a pixel center relative
// to the anchor is always a multiple of kSub and every test below is exact integer math.
constexpr int64_t kSub = 16;

struct Point {
    int64_t x, y;
};

// Crossing-number point-in-polygon test with exact integer cross products.
bool polygon_contains(std::span<const Point> polygon, int64_t px, int64_t py) {
    bool inside = false;
    for (size_t i = 0, j = polygon.size() - 1; i < polygon.size(); j = i++) {
        const Point& a = polygon[j];
        const Point& b = polygon[i];
        if ((a.y > py) == (b.y > py)) continue;
        // Is px left of the edge's x at height py?  Compare without dividing.
        const int64_t lhs = (px - a.x) * (b.y - a.y);
        const int64_t rhs = (py - a.y) * (b.x - a.x);
        if (b.y > a.y ? lhs < rhs : lhs > rhs) inside = !inside;
    }
    return inside;
}

// Unit vectors (sin θ, −cos θ)·4096 for θ = k·36°: the 10 vertices of a 5-pointed star,
// first point straight up. Written out so no libm rounding can move a vertex.
constexpr std::array<Point, 10> kStarDirections = {{
    {0, -4096}, {2408, -3314}, {3896, -1266}, {3896, 1266}, {2408, 3314},
    {0, 4096}, {-2408, 3314}, {-3896, 1266}, {-3896, -1266}, {-2408, -3314},
}};
constexpr int64_t kStarInnerPermille = 450;  // fatter than the classic 382 so small stars read
// The star spans −R … 0.809·R vertically; shifting by 0.0955·R centers it on the anchor.
constexpr int64_t kStarShiftPer10000 = 955;

std::array<Point, 10> star_polygon(int64_t radius) {
    std::array<Point, 10> vertices{};
    const int64_t shift = radius * kStarShiftPer10000 / 10000;
    for (size_t k = 0; k < vertices.size(); ++k) {
        const int64_t r = (k % 2 == 0) ? radius * 1000 : radius * kStarInnerPermille;
        vertices[k] = {r * kStarDirections[k].x / (4096 * 1000),
                       r * kStarDirections[k].y / (4096 * 1000) + shift};
    }
    return vertices;
}

// Equilateral, pointing up, centered on the anchor: side 2R, half height 0.866·R.
std::array<Point, 3> triangle_polygon(int64_t radius) {
    const int64_t half_height = radius * 866 / 1000;
    return {{{0, -half_height}, {radius, half_height}, {-radius, half_height}}};
}

// A rhombus 0.8 times as wide as tall, so it never reads as a turned square.
std::array<Point, 4> diamond_polygon(int64_t radius) {
    const int64_t half_width = radius * 4 / 5;
    return {{{0, -radius}, {half_width, 0}, {0, radius}, {-half_width, 0}}};
}

bool cross_contains(int64_t dx, int64_t dy, int64_t radius) {
    const int64_t half_arm = radius * 3 / 8;  // arms 3/8 of the size thick: visible when small
    const int64_t ax = std::llabs(dx), ay = std::llabs(dy);
    return (ax < half_arm && ay < radius) || (ay < half_arm && ax < radius);
}

}  // namespace

ShapeMask rasterize_shape(Shape shape, int center_x, int center_y, int size_px) {
    ShapeMask mask;
    const int reach = shape_reach(size_px);
    mask.frame = {center_x - reach, center_y - reach, center_x + reach + 1, center_y + reach + 1};
    mask.inside.assign(static_cast<size_t>(mask.frame.width()) * mask.frame.height(), 0);
    const int64_t radius = static_cast<int64_t>(size_px) * kSub / 2;
    const auto star = star_polygon(radius);
    const auto triangle = triangle_polygon(radius);
    const auto diamond = diamond_polygon(radius);

    mask.tight = {mask.frame.x1, mask.frame.y1, mask.frame.x0, mask.frame.y0};  // empty
    for (int y = mask.frame.y0; y < mask.frame.y1; ++y) {
        const int64_t dy = (y - center_y) * kSub;
        for (int x = mask.frame.x0; x < mask.frame.x1; ++x) {
            const int64_t dx = (x - center_x) * kSub;
            bool in = false;
            switch (shape) {
                case Shape::circle: in = dx * dx + dy * dy < radius * radius; break;
                case Shape::square: in = std::llabs(dx) < radius && std::llabs(dy) < radius; break;
                // Polygons are tested at |dx|: they are mirror-symmetric, and a pixel center
                // exactly on an edge must fall the same way on both sides.
                case Shape::triangle: in = polygon_contains(triangle, std::llabs(dx), dy); break;
                case Shape::star: in = polygon_contains(star, std::llabs(dx), dy); break;
                case Shape::cross: in = cross_contains(dx, dy, radius); break;
                case Shape::diamond: in = polygon_contains(diamond, std::llabs(dx), std::llabs(dy)); break;
            }
            if (!in) continue;
            mask.inside[static_cast<size_t>(y - mask.frame.y0) * mask.frame.width() + (x - mask.frame.x0)] = 1;
            ++mask.area;
            mask.tight.x0 = std::min(mask.tight.x0, x);
            mask.tight.y0 = std::min(mask.tight.y0, y);
            mask.tight.x1 = std::max(mask.tight.x1, x + 1);
            mask.tight.y1 = std::max(mask.tight.y1, y + 1);
        }
    }
    return mask;
}

void fill_mask(const ShapeMask& mask, Rgb color, SceneImage& image) {
    for (int y = mask.tight.y0; y < mask.tight.y1; ++y) {
        for (int x = mask.tight.x0; x < mask.tight.x1; ++x) {
            if (!mask.covers(x, y)) continue;
            uint8_t* p = &image.rgb[(static_cast<size_t>(y) * image.width + x) * 3];
            p[0] = color.r, p[1] = color.g, p[2] = color.b;
        }
    }
}

namespace {

uint8_t clamp_channel(int v) { return static_cast<uint8_t>(std::clamp(v, 0, 255)); }

Rgb offset_rgb(Rgb c, int delta) {
    return {clamp_channel(c.r + delta), clamp_channel(c.g + delta), clamp_channel(c.b + delta)};
}

// a + (b − a)·t/den per channel; integer division truncates toward zero in C++.
Rgb lerp_rgb(Rgb a, Rgb b, int t, int den) {
    auto channel = [&](int ca, int cb) { return clamp_channel(ca + (cb - ca) * t / den); };
    return {channel(a.r, b.r), channel(a.g, b.g), channel(a.b, b.b)};
}

int axis_coordinate(int orientation, int x, int y) {
    return orientation == 0 ? x : orientation == 1 ? y : x + y;
}

void put(SceneImage& image, int x, int y, Rgb c) {
    uint8_t* p = &image.rgb[(static_cast<size_t>(y) * image.width + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
}

void render_flat(const BackgroundSpec& spec, SceneImage& image) {
    for (int y = 0; y < image.height; ++y)
        for (int x = 0; x < image.width; ++x) put(image, x, y, spec.first);
}

// Colors depend on one axis coordinate only, so they are computed once per coordinate.
void render_gradient(const BackgroundSpec& spec, SceneImage& image) {
    const int span = std::max(1, axis_coordinate(spec.orientation, image.width - 1, image.height - 1));
    std::vector<Rgb> ramp(static_cast<size_t>(span) + 1);
    for (int t = 0; t <= span; ++t) ramp[t] = lerp_rgb(spec.first, spec.second, t, span);
    for (int y = 0; y < image.height; ++y)
        for (int x = 0; x < image.width; ++x) put(image, x, y, ramp[axis_coordinate(spec.orientation, x, y)]);
}

void render_stripes(const BackgroundSpec& spec, SceneImage& image) {
    for (int y = 0; y < image.height; ++y)
        for (int x = 0; x < image.width; ++x) {
            const bool odd = (axis_coordinate(spec.orientation, x, y) / spec.stripe_width) % 2 != 0;
            put(image, x, y, odd ? spec.second : spec.first);
        }
}

// Value noise: random brightness offsets on a lattice, bilinearly interpolated. Smooth, so
// it stays low-contrast and PNG-compressible, unlike per-pixel grain.
void render_noise(const BackgroundSpec& spec, SceneImage& image) {
    const int cell = spec.noise_cell;
    const int lattice_w = image.width / cell + 2, lattice_h = image.height / cell + 2;
    std::vector<int> lattice(static_cast<size_t>(lattice_w) * lattice_h);
    SceneRng rng(spec.noise_seed);
    for (int& v : lattice) v = rng.range(-spec.noise_amplitude, spec.noise_amplitude);
    auto node = [&](int i, int j) { return lattice[static_cast<size_t>(j) * lattice_w + i]; };
    // Per row, interpolate the lattice columns vertically once; per pixel only horizontally.
    // Same integer sum as the full bilinear formula, regrouped.
    std::vector<int> column(static_cast<size_t>(lattice_w));
    std::vector<Rgb> shades;  // shades[a + amplitude]: the base color offset by a
    for (int a = -spec.noise_amplitude; a <= spec.noise_amplitude; ++a) shades.push_back(offset_rgb(spec.first, a));
    for (int y = 0; y < image.height; ++y) {
        const int j = y / cell, fy = y % cell;
        for (int i = 0; i < lattice_w; ++i) column[i] = node(i, j) * (cell - fy) + node(i, j + 1) * fy;
        for (int x = 0, i = 0, fx = 0; x < image.width; ++x) {
            const int sum = column[i] * (cell - fx) + column[i + 1] * fx;
            put(image, x, y, shades[sum / (cell * cell) + spec.noise_amplitude]);
            if (++fx == cell) fx = 0, ++i;
        }
    }
}

}  // namespace

void render_background(const BackgroundSpec& spec, SceneImage& image) {
    switch (spec.kind) {
        case BackgroundKind::flat: render_flat(spec, image); break;
        case BackgroundKind::gradient: render_gradient(spec, image); break;
        case BackgroundKind::noise: render_noise(spec, image); break;
        case BackgroundKind::stripes: render_stripes(spec, image); break;
    }
}

PixelBox text_box(int x0, int y0, int length, int scale) {
    return {x0, y0, x0 + (6 * length - 1) * scale, y0 + 7 * scale};
}

void draw_text(const SceneText& text, SceneImage& image) {
    const Rgb color = color_rgb(text.color);
    for (size_t i = 0; i < text.chars.size(); ++i) {
        const auto* glyph = font_glyph(text.chars[i]);
        if (glyph == nullptr) continue;
        const int glyph_x0 = text.bbox.x0 + static_cast<int>(6 * i) * text.scale;
        for (int row = 0; row < 7; ++row) {
            for (int col = 0; col < 5; ++col) {
                if (((*glyph)[row] >> (4 - col) & 1) == 0) continue;
                for (int sy = 0; sy < text.scale; ++sy)
                    for (int sx = 0; sx < text.scale; ++sx)
                        put(image, glyph_x0 + col * text.scale + sx, text.bbox.y0 + row * text.scale + sy, color);
            }
        }
    }
}

}  // namespace glimpse::scenes
