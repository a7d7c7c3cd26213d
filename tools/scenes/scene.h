// Procedural scenes for training and evaluating the bundled tiny VLM.
//
// scene_generate(seed, opts) draws an RGB image of 1–9 flat-colored shapes (plus optional
// short text) on a low-contrast background and returns the exact ground truth: objects,
// text, a canonical caption and tagged question–answer pairs. Everything is a pure
// function of (seed, opts): the PRNG, the integer→range mapping and the rasterizer are
// integer-only, so pixels and JSON are bit-identical on every platform and compiler.
// The grammar of captions/questions and the position rule are in tools/scenes/README.md.
#pragma once

#include "runtime/status.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace glimpse::scenes {

enum class Shape : uint8_t { circle, square, triangle, star, cross, diamond };
enum class Color : uint8_t { red, green, blue, yellow, orange, purple, white, black };
enum class SizeClass : uint8_t { small, medium, large };
enum class BackgroundKind : uint8_t { flat, gradient, noise, stripes };
enum class QaKind : uint8_t { color, count, exist, position, text };
// Kind of an `exist` question, after the POPE benchmark: a positive (answer "yes") or one
// of three ways of choosing an absent color×shape for a negative (answer "no").
enum class ExistProbe : uint8_t { none, positive, random, popular, adversarial };
enum class Direction : uint8_t { left, right, top, bottom };

inline constexpr int kShapeCount = 6;
inline constexpr int kColorCount = 8;
inline constexpr int kSizeClassCount = 3;
inline constexpr int kBackgroundKindCount = 4;
inline constexpr int kQaKindCount = 5;

struct Rgb {
    uint8_t r = 0, g = 0, b = 0;
    bool operator==(const Rgb&) const = default;
};

// Words used in captions, questions, answers and JSON.
std::string_view shape_name(Shape shape);         // "circle"
std::string_view shape_plural(Shape shape);       // "circles", "crosses"
std::string_view color_name(Color color);         // "red"
std::string_view size_class_name(SizeClass size); // "small"
std::string_view background_name(BackgroundKind kind);    // "flat" (JSON / CLI name)
std::string_view background_adjective(BackgroundKind kind); // "plain" (caption word)
std::string_view qa_kind_name(QaKind kind);       // "exist"
std::string_view exist_probe_name(ExistProbe probe); // "" for none, "positive", "random", ...
std::string_view direction_name(Direction direction);  // "left"
Rgb color_rgb(Color color);

// Half-open pixel rectangle [x0, x1) × [y0, y1).
struct PixelBox {
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    int width() const { return x1 - x0; }
    int height() const { return y1 - y0; }
    bool contains(int x, int y) const { return x >= x0 && x < x1 && y >= y0 && y < y1; }
    bool operator==(const PixelBox&) const = default;
};

struct SceneObject {
    Shape shape = Shape::circle;
    Color color = Color::red;
    SizeClass size = SizeClass::small;
    int size_px = 0;          // nominal diameter / side length in pixels
    int center_x = 0;         // anchor pixel: the shape is symmetric about its center
    int center_y = 0;         //   (x + 0.5, y + 0.5); it is always inside and never occluded
    PixelBox bbox;            // tight box of the rasterized shape
    int area_px = 0;          // pixels of the shape alone
    int visible_px = 0;       // pixels still showing after later objects were drawn
};

struct SceneText {
    std::string chars;        // 1–4 of [0-9A-Z] minus the look-alikes O and I
    Color color = Color::white;
    int scale = 1;            // every 5x7 glyph cell is scale×scale pixels
    PixelBox bbox;            // (6·n − 1)·scale wide, 7·scale high; glyph i starts at x0 + 6·i·scale
};

struct QaPair {
    QaKind kind = QaKind::exist;
    std::string question;
    std::string answer;
    ExistProbe probe = ExistProbe::none;  // set for kind == exist only
};

// Row-major (H, W, 3) RGB.
struct SceneImage {
    int width = 0, height = 0;
    std::vector<uint8_t> rgb;
    Rgb pixel(int x, int y) const {
        const uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
        return Rgb{p[0], p[1], p[2]};
    }
};

struct Scene {
    uint64_t seed = 0;
    SceneImage image;
    BackgroundKind background = BackgroundKind::flat;
    bool many_small = false;          // drawn as a "many small objects" scene
    std::vector<SceneObject> objects; // in drawing order: later objects lie on top
    std::optional<SceneText> text;    // drawn last, never overlaps an object
    std::string caption;
    std::vector<QaPair> qa;
};

struct SceneOptions {
    int min_side = 96, max_side = 1024;   // each image side, uniform in [min_side, max_side]
    int max_aspect_permille = 2500;       // long side ≤ 2.5 × short side
    int min_objects = 1, max_objects = 9; // ordinary scenes: uniform in this range
    // A "many small objects" scene has max(6, min_objects)..max_objects objects (the ordinary
    // range if max_objects < 6), 3 of 4 small and the rest medium.
    double many_small_probability = 0.35;
    double text_probability = 0.4;
    // Glyph height (7 font rows × scale) as per-mille of the short side, before the scale is
    // rounded down to an integer ≥ 2 and shrunk until the text fits.
    int text_height_min_permille = 70, text_height_max_permille = 110;
    // Size classes as per-mille of the image's short side, with a pixel floor so a small
    // object on a 96 px image still shows its shape.
    std::array<int, kSizeClassCount> size_min_permille = {50, 110, 220};
    std::array<int, kSizeClassCount> size_max_permille = {70, 150, 300};
    std::array<int, kSizeClassCount> size_min_px = {10, 16, 26};
    // Objects may overlap, but every object keeps at least this share of its pixels and its
    // center pixel visible; same-colored objects never touch.
    double max_occluded_fraction = 0.25;
    // Relative frequencies. They are deliberately uneven so that "popular" negatives
    // (POPE) mean something: the top kPopularCount shapes and colors by weight.
    std::array<int, kShapeCount> shape_weights = {15, 13, 11, 10, 8, 8};
    std::array<int, kColorCount> color_weights = {14, 13, 12, 10, 8, 8, 10, 9};
    std::array<bool, kBackgroundKindCount> backgrounds = {true, true, true, true};
    int qa_per_scene = 6;
};

inline constexpr int kPopularCount = 3;
inline constexpr int kMaxTextChars = 4;
inline constexpr std::string_view kTextAlphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";

// Says what is wrong with `opts` (ranges, probabilities, weights), naming the field.
Status scene_options_validate(const SceneOptions& opts);

// Named scene distributions (tools/scenes/README.md, "Presets"):
//   "default"  SceneOptions{} — every size and aspect, 1..9 objects;
//   "bundled"  the distribution the bundled tiny VLMs (models/bundled/) are trained and
//              evaluated on: sides 128..512, aspect ≤ 1.5, 1..6 objects, objects and text
//              large enough to stay recognizable at the models' input resolution (160 px).
// Unknown names are invalid_argument.
Result<SceneOptions> scene_preset(std::string_view name);
std::vector<std::string_view> scene_preset_names();

// The scene for `seed`. `opts` must pass scene_options_validate (a caller bug otherwise).
Scene scene_generate(uint64_t seed, const SceneOptions& opts = {});

// `count` question–answer pairs for a scene: kinds taken in turn (exist, count, color,
// position, text from a random starting point, skipping kinds the scene cannot support),
// exist answers alternating yes/no, negatives cycling random/popular/adversarial.
// scene_generate fills Scene::qa with this for opts.qa_per_scene.
std::vector<QaPair> scene_make_qa(const Scene& scene, int count, const SceneOptions& opts,
                                  uint64_t qa_seed);

// "a large red circle, a small blue star and the text \"K3\" on a striped background."
std::string scene_caption(const Scene& scene);

// The position rule (README): the answer for an object, or nullopt when it is ambiguous.
std::optional<Direction> object_direction(const SceneObject& object, int image_width,
                                          int image_height);

// Shapes/colors that "popular" negatives draw from: the kPopularCount heaviest weights.
std::vector<Shape> popular_shapes(const SceneOptions& opts);
std::vector<Color> popular_colors(const SceneOptions& opts);

// 5x7 bitmap font. Rows top to bottom, bit 4 = leftmost column. nullptr if unsupported.
const std::array<uint8_t, 7>* font_glyph(char c);
std::string_view font_characters();  // every character font_glyph supports

// JSON of the ground truth on one line (no image pixels); `image_file` goes into "image".
std::string scene_to_json(const Scene& scene, std::string_view image_file);
// `text` as a JSON string literal with quotes, escaping ", \ and control characters: the
// runtime's writer (runtime/json.h), so scene files and all other JSON glimpse writes agree.
std::string json_quote(std::string_view text);

enum class ImageFormat : uint8_t { png, ppm };
// Process-wide PNG writer settings (globals inside stb, so call before any thread writes):
// zlib effort `level` (5..9) and no per-row filter search. Scenes are flat-colored, so
// unfiltered rows compress about as well (~+10% bytes) while encoding takes 1/3 the time.
// Without this call stb's defaults apply (level 8, filter search).
void configure_png_writer(int level);
Status write_scene_image(const SceneImage& image, const std::string& path, ImageFormat format);
Status write_text_file(const std::string& path, std::string_view content);

}  // namespace glimpse::scenes
