// Names, colors and the bitmap font: the closed vocabulary of the scenes.
#include "tools/scenes/scene.h"

#include <algorithm>
#include <numeric>

namespace glimpse::scenes {

std::string_view shape_name(Shape shape) {
    static constexpr std::string_view kNames[] = {"circle", "square", "triangle", "star", "cross", "diamond"};
    return kNames[static_cast<int>(shape)];
}

std::string_view shape_plural(Shape shape) {
    static constexpr std::string_view kNames[] = {"circles", "squares", "triangles", "stars", "crosses", "diamonds"};
    return kNames[static_cast<int>(shape)];
}

std::string_view color_name(Color color) {
    static constexpr std::string_view kNames[] = {"red", "green", "blue", "yellow", "orange", "purple", "white", "black"};
    return kNames[static_cast<int>(color)];
}

// Saturated or extreme colors: each has a channel ≤ 40 or ≥ 215, while every background
// channel stays within [74, 186] (brightness 86..174 ± tint 12), so the Euclidean RGB
// distance from any object color to any background pixel is ≥ 89 (green is the closest).
// Object colors are ≥ 96 apart from each other (yellow–orange is the closest pair).
Rgb color_rgb(Color color) {
    static constexpr Rgb kRgb[] = {
        {215, 30, 35},   // red
        {30, 175, 60},   // green
        {35, 80, 215},   // blue
        {245, 220, 40},  // yellow
        {245, 125, 25},  // orange
        {140, 40, 200},  // purple
        {255, 255, 255}, // white
        {0, 0, 0},       // black
    };
    return kRgb[static_cast<int>(color)];
}

std::string_view size_class_name(SizeClass size) {
    static constexpr std::string_view kNames[] = {"small", "medium", "large"};
    return kNames[static_cast<int>(size)];
}

std::string_view background_name(BackgroundKind kind) {
    static constexpr std::string_view kNames[] = {"flat", "gradient", "noise", "stripes"};
    return kNames[static_cast<int>(kind)];
}

std::string_view background_adjective(BackgroundKind kind) {
    static constexpr std::string_view kNames[] = {"plain", "gradient", "noisy", "striped"};
    return kNames[static_cast<int>(kind)];
}

std::string_view qa_kind_name(QaKind kind) {
    static constexpr std::string_view kNames[] = {"color", "count", "exist", "position", "text"};
    return kNames[static_cast<int>(kind)];
}

std::string_view exist_probe_name(ExistProbe probe) {
    static constexpr std::string_view kNames[] = {"", "positive", "random", "popular", "adversarial"};
    return kNames[static_cast<int>(probe)];
}

std::string_view direction_name(Direction direction) {
    static constexpr std::string_view kNames[] = {"left", "right", "top", "bottom"};
    return kNames[static_cast<int>(direction)];
}

namespace {

// Indices 0..n-1 ordered by descending weight, ties by enum order.
template <size_t N>
std::vector<int> heaviest_first(const std::array<int, N>& weights) {
    std::vector<int> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return weights[a] > weights[b]; });
    order.resize(std::min<size_t>(N, kPopularCount));
    return order;
}

}  // namespace

std::vector<Shape> popular_shapes(const SceneOptions& opts) {
    std::vector<Shape> shapes;
    for (int i : heaviest_first(opts.shape_weights)) shapes.push_back(static_cast<Shape>(i));
    return shapes;
}

std::vector<Color> popular_colors(const SceneOptions& opts) {
    std::vector<Color> colors;
    for (int i : heaviest_first(opts.color_weights)) colors.push_back(static_cast<Color>(i));
    return colors;
}

// 5x7 glyphs, rows top to bottom, bit 4 = leftmost column. Zero is slashed so it never
// matches O; the generator additionally leaves O and I out of scene text.
namespace {
struct Glyph {
    char c;
    std::array<uint8_t, 7> rows;
};
constexpr Glyph kFont[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}},
    {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
    {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}},
    {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
};
}  // namespace

const std::array<uint8_t, 7>* font_glyph(char c) {
    for (const Glyph& glyph : kFont)
        if (glyph.c == c) return &glyph.rows;
    return nullptr;
}

std::string_view font_characters() { return "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"; }

}  // namespace glimpse::scenes
