// Scene generator: determinism, ground truth checked against the rendered pixels, QA answers
// checked against the object list, distributions over many seeds, font, JSON and files.
#include <doctest/doctest.h>

#include "tools/scenes/scene.h"
#include "tools/scenes/scene_rng.h"

#include <stb/stb_image.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

using namespace glimpse;
using namespace glimpse::scenes;

namespace {

uint64_t fnv1a(std::string_view bytes, uint64_t h = 0xcbf29ce484222325ull) {
    for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

uint64_t image_hash(const SceneImage& image) {
    return fnv1a(std::string_view(reinterpret_cast<const char*>(image.rgb.data()), image.rgb.size()),
                 fnv1a(std::to_string(image.width) + "x" + std::to_string(image.height)));
}

int distance_sq(Rgb a, Rgb b) {
    const int dr = a.r - b.r, dg = a.g - b.g, db = a.b - b.b;
    return dr * dr + dg * dg + db * db;
}

bool boxes_overlap(PixelBox a, PixelBox b) {
    return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

// Area as a fraction of size² and box extents as fractions of size, from the geometry the
// README describes (not from the rasterizer): star with inner radius 0.45·R, cross arms 3/8
// of the size thick, triangle equilateral with side = size, diamond 0.8 as wide as tall.
struct ShapeGeometry {
    double area, width, height;
};
ShapeGeometry expected_geometry(Shape shape) {
    const double sin36 = std::sin(M_PI / 5), cos36 = std::cos(M_PI / 5), sin72 = std::sin(2 * M_PI / 5);
    switch (shape) {
        case Shape::circle: return {M_PI / 4, 1, 1};
        case Shape::square: return {1, 1, 1};
        case Shape::triangle: return {std::sqrt(3.0) / 4, 1, std::sqrt(3.0) / 2};
        case Shape::star: return {5 * 0.5 * 0.5 * 0.45 * sin36, sin72, (1 + cos36) / 2};
        case Shape::cross: return {(2 * 0.75 * 2 - 0.75 * 0.75) / 4, 1, 1};
        case Shape::diamond: return {0.4, 0.8, 1};
    }
    return {};
}

// The README's position rule, restated in floating point; nullopt also near a boundary,
// where float and exact arithmetic might disagree.
std::optional<std::string> rule_direction(const SceneObject& o, int width, int height, bool* near_boundary) {
    const double u = (o.center_x + 0.5) / width, v = (o.center_y + 0.5) / height;
    const double eps = 1e-9;
    *near_boundary = std::fabs(u - 0.3) < eps || std::fabs(u - 0.7) < eps || std::fabs(v - 0.3) < eps ||
                     std::fabs(v - 0.7) < eps || std::fabs(std::fabs(u - 0.5) - 0.15) < eps ||
                     std::fabs(std::fabs(v - 0.5) - 0.15) < eps;
    const bool u_mid = std::fabs(u - 0.5) <= 0.15, v_mid = std::fabs(v - 0.5) <= 0.15;
    if (u < 0.3 && v_mid) return "left";
    if (u > 0.7 && v_mid) return "right";
    if (v < 0.3 && u_mid) return "top";
    if (v > 0.7 && u_mid) return "bottom";
    return std::nullopt;
}

std::optional<Shape> shape_by_name(const std::string& name) {
    for (int s = 0; s < kShapeCount; ++s)
        if (shape_name(static_cast<Shape>(s)) == name || shape_plural(static_cast<Shape>(s)) == name)
            return static_cast<Shape>(s);
    return std::nullopt;
}
std::optional<Color> color_by_name(const std::string& name) {
    for (int c = 0; c < kColorCount; ++c)
        if (color_name(static_cast<Color>(c)) == name) return static_cast<Color>(c);
    return std::nullopt;
}

// "prefix<middle>suffix" -> middle, or nullopt.
std::optional<std::string> strip(const std::string& s, const std::string& prefix, const std::string& suffix) {
    if (s.size() < prefix.size() + suffix.size() || s.compare(0, prefix.size(), prefix) != 0 ||
        s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0)
        return std::nullopt;
    return s.substr(prefix.size(), s.size() - prefix.size() - suffix.size());
}

// "red square" -> (red, square)
std::optional<std::pair<Color, Shape>> color_shape(const std::string& words) {
    const size_t space = words.find(' ');
    if (space == std::string::npos) return std::nullopt;
    auto c = color_by_name(words.substr(0, space));
    auto s = shape_by_name(words.substr(space + 1));
    if (!c || !s) return std::nullopt;
    return std::make_pair(*c, *s);
}

// What a question asks about: `question` is prefix + words + suffix, and read(words) (a shape, or a
// color and shape) names it. Stops the test case when either step fails.
template <class Read>
auto asked_about(const std::string& question, const std::string& prefix, const std::string& suffix, Read read) {
    auto words = strip(question, prefix, suffix);
    REQUIRE(words.has_value());
    auto named = read(*words);
    REQUIRE(named.has_value());
    return *named;
}

int count_shape(const Scene& scene, Shape shape) {
    return static_cast<int>(std::count_if(scene.objects.begin(), scene.objects.end(),
                                          [&](const SceneObject& o) { return o.shape == shape; }));
}
int count_combo(const Scene& scene, Color color, Shape shape) {
    return static_cast<int>(std::count_if(scene.objects.begin(), scene.objects.end(), [&](const SceneObject& o) {
        return o.shape == shape && o.color == color;
    }));
}

// A small JSON reader, independent of the writer, for round-trip checks.
struct JsonValue {
    enum Kind { null, boolean, number, string, array, object } kind = null;
    bool b = false;
    double n = 0;
    std::string s;
    std::vector<JsonValue> items;
    std::map<std::string, JsonValue> fields;
};

class JsonReader {
public:
    explicit JsonReader(std::string_view text) : t_(text) {}
    bool parse(JsonValue& out) {
        if (!value(out)) return false;
        skip();
        return i_ == t_.size();
    }

private:
    void skip() {
        while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\t' || t_[i_] == '\r')) ++i_;
    }
    bool literal(std::string_view word) {
        if (t_.substr(i_, word.size()) != word) return false;
        i_ += word.size();
        return true;
    }
    bool value(JsonValue& v) {
        skip();
        if (i_ >= t_.size()) return false;
        const char c = t_[i_];
        if (c == '{') return object(v);
        if (c == '[') return array(v);
        if (c == '"') return v.kind = JsonValue::string, string(v.s);
        if (literal("null")) return v.kind = JsonValue::null, true;
        if (literal("true")) return v.kind = JsonValue::boolean, v.b = true, true;
        if (literal("false")) return v.kind = JsonValue::boolean, v.b = false, true;
        size_t end = i_;
        while (end < t_.size() && (std::isdigit(static_cast<unsigned char>(t_[end])) || t_[end] == '-' ||
                                   t_[end] == '.' || t_[end] == 'e' || t_[end] == 'E' || t_[end] == '+'))
            ++end;
        if (end == i_) return false;
        v.kind = JsonValue::number;
        v.n = std::stod(std::string(t_.substr(i_, end - i_)));
        i_ = end;
        return true;
    }
    bool string(std::string& out) {
        if (t_[i_] != '"') return false;
        ++i_;
        while (i_ < t_.size() && t_[i_] != '"') {
            const auto c = static_cast<unsigned char>(t_[i_]);
            if (c < 0x20) return false;  // raw control characters are invalid JSON
            if (c != '\\') {
                out += t_[i_++];
                continue;
            }
            if (++i_ >= t_.size()) return false;
            const char e = t_[i_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'u': {
                    if (i_ + 4 > t_.size()) return false;
                    const int code = std::stoi(std::string(t_.substr(i_, 4)), nullptr, 16);
                    if (code >= 0x80) return false;  // enough for this test
                    out += static_cast<char>(code);
                    i_ += 4;
                    break;
                }
                default: return false;
            }
        }
        if (i_ >= t_.size()) return false;
        ++i_;
        return true;
    }
    // From an opening bracket to its `close`: no elements, or element() for each, comma-separated.
    template <class Element>
    bool elements(char close, Element element) {
        ++i_;
        skip();
        if (i_ < t_.size() && t_[i_] == close) return ++i_, true;
        for (;;) {
            if (!element()) return false;
            skip();
            if (i_ < t_.size() && t_[i_] == ',') { ++i_; continue; }
            if (i_ < t_.size() && t_[i_] == close) return ++i_, true;
            return false;
        }
    }
    bool array(JsonValue& v) {
        v.kind = JsonValue::array;
        return elements(']', [&] {
            JsonValue item;
            if (!value(item)) return false;
            v.items.push_back(std::move(item));
            return true;
        });
    }
    bool object(JsonValue& v) {
        v.kind = JsonValue::object;
        return elements('}', [&] {
            skip();
            std::string key;
            if (i_ >= t_.size() || !string(key)) return false;
            skip();
            if (i_ >= t_.size() || t_[i_] != ':') return false;
            ++i_;
            JsonValue item;
            if (!value(item)) return false;
            v.fields[key] = std::move(item);
            return true;
        });
    }
    std::string_view t_;
    size_t i_ = 0;
};

SceneOptions small_image_options() {
    SceneOptions opts;
    opts.min_side = 96;
    opts.max_side = 320;
    return opts;
}

}  // namespace

TEST_CASE("scene PRNG is splitmix64 and maps ranges without bias") {
    // Reference outputs of splitmix64.c for seed 1234567 (Rosetta Code "Splitmix64").
    SceneRng reference = SceneRng::from_state(1234567);
    CHECK(reference.next_u64() == 6457827717110365317ull);
    CHECK(reference.next_u64() == 3203168211198807973ull);
    CHECK(reference.next_u64() == 9817491932198370423ull);
    CHECK(reference.next_u64() == 4593380528125082431ull);
    CHECK(reference.next_u64() == 16408922859458223821ull);

    SceneRng rng(42);
    std::array<int, 6> counts{};
    for (int i = 0; i < 60000; ++i) ++counts[rng.below(6)];
    for (int c : counts) CHECK(std::abs(c - 10000) < 500);  // ~5 standard deviations
    std::set<int> seen;
    for (int i = 0; i < 1000; ++i) {
        const int v = rng.range(-3, 3);
        REQUIRE(v >= -3);
        REQUIRE(v <= 3);
        seen.insert(v);
    }
    CHECK(seen.size() == 7);
}

TEST_CASE("scenes: same seed gives identical pixels and JSON, different seeds differ") {
    std::set<uint64_t> image_hashes, json_hashes;
    for (uint64_t seed : {0ull, 1ull, 2ull, 17ull, 123456789ull, 0xFFFFFFFFFFFFFFFFull}) {
        const Scene a = scene_generate(seed), b = scene_generate(seed);
        CHECK(image_hash(a.image) == image_hash(b.image));
        CHECK(scene_to_json(a, "x.png") == scene_to_json(b, "x.png"));
        image_hashes.insert(image_hash(a.image));
        json_hashes.insert(fnv1a(scene_to_json(a, "x.png")));
    }
    CHECK(image_hashes.size() == 6);
    CHECK(json_hashes.size() == 6);
}

TEST_CASE("scenes: the number of QA pairs does not change the image") {
    SceneOptions few, many;
    few.qa_per_scene = 2;
    many.qa_per_scene = 12;
    for (uint64_t seed = 0; seed < 20; ++seed) {
        const Scene a = scene_generate(seed, few), b = scene_generate(seed, many);
        CHECK(image_hash(a.image) == image_hash(b.image));
        CHECK(a.caption == b.caption);
        CHECK(a.qa.size() == 2);
        CHECK(b.qa.size() == 12);
    }
}

TEST_CASE("scenes: objects are drawn where and as the ground truth says") {
    const SceneOptions opts;
    int checked = 0;
    for (uint64_t seed = 0; seed < 300; ++seed) {
        const Scene scene = scene_generate(seed, opts);
        const SceneImage& img = scene.image;
        const int short_side = std::min(img.width, img.height);
        REQUIRE(!scene.objects.empty());
        REQUIRE(scene.objects.size() <= 9);
        for (size_t i = 0; i < scene.objects.size(); ++i) {
            const SceneObject& o = scene.objects[i];
            INFO("seed " << seed << " object " << i << " " << shape_name(o.shape) << " size " << o.size_px);
            const Rgb rgb = color_rgb(o.color);
            // Fully inside with a margin, so counts never depend on a cropped object.
            CHECK(o.bbox.x0 >= 1);
            CHECK(o.bbox.y0 >= 1);
            CHECK(o.bbox.x1 <= img.width - 1);
            CHECK(o.bbox.y1 <= img.height - 1);
            // The anchor is never covered by a later object: its pixel has the object's color.
            CHECK(img.pixel(o.center_x, o.center_y) == rgb);
            // Only this object can have its color inside its box: same-colored objects keep
            // apart, backgrounds never reach object colors, text never overlaps objects.
            int same_color = 0;
            for (int y = o.bbox.y0; y < o.bbox.y1; ++y)
                for (int x = o.bbox.x0; x < o.bbox.x1; ++x) same_color += img.pixel(x, y) == rgb;
            CHECK(same_color == o.visible_px);
            CHECK(o.visible_px * 4 >= o.area_px * 3);  // at most 25% occluded (default)
            // Geometry against the analytic shape.
            const ShapeGeometry g = expected_geometry(o.shape);
            const double s = o.size_px;
            CHECK(std::fabs(o.area_px - g.area * s * s) <= 2.2 * s + 4);
            // Pixel-center sampling loses up to ~1.5 px at each 36° star tip (where the tip
            // is narrower than a pixel), so star boxes get a wider tolerance.
            const double extent_tolerance = o.shape == Shape::star ? 4.0 : 2.0;
            CHECK(std::fabs(o.bbox.width() - g.width * s) <= extent_tolerance);
            CHECK(std::fabs(o.bbox.height() - g.height * s) <= extent_tolerance);
            // Size class: per mille of the short side, or the class's pixel floor.
            const int c = static_cast<int>(o.size);
            if (o.size_px != opts.size_min_px[c]) {
                CHECK(o.size_px >= short_side * opts.size_min_permille[c] / 1000);
                CHECK(o.size_px <= short_side * opts.size_max_permille[c] / 1000);
            }
            for (size_t j = 0; j < i; ++j) {
                if (scene.objects[j].color != o.color) continue;
                const PixelBox a = o.bbox, b = scene.objects[j].bbox;
                const bool apart = a.x1 + 2 <= b.x0 || b.x1 + 2 <= a.x0 || a.y1 + 2 <= b.y0 || b.y1 + 2 <= a.y0;
                CHECK_MESSAGE(apart, "same-colored objects " << j << " and " << i << " touch");
            }
            ++checked;
        }
    }
    CHECK(checked > 1000);
}

TEST_CASE("scenes: text is drawn with the 5x7 glyphs inside its box") {
    int scenes_with_text = 0;
    for (uint64_t seed = 0; seed < 300; ++seed) {
        const Scene scene = scene_generate(seed, small_image_options());
        if (!scene.text) continue;
        ++scenes_with_text;
        const SceneText& t = *scene.text;
        INFO("seed " << seed << " text " << t.chars);
        REQUIRE(!t.chars.empty());
        REQUIRE(t.chars.size() <= 4);
        CHECK(t.scale >= 2);
        CHECK(t.bbox.width() == (6 * static_cast<int>(t.chars.size()) - 1) * t.scale);
        CHECK(t.bbox.height() == 7 * t.scale);
        for (const SceneObject& o : scene.objects) CHECK_FALSE(boxes_overlap(o.bbox, t.bbox));
        const Rgb rgb = color_rgb(t.color);
        for (size_t i = 0; i < t.chars.size(); ++i) {
            CHECK(kTextAlphabet.find(t.chars[i]) != std::string_view::npos);
            const auto* glyph = font_glyph(t.chars[i]);
            REQUIRE(glyph != nullptr);
            for (int row = 0; row < 7; ++row)
                for (int col = 0; col < 6; ++col) {  // column 5 is the gap between glyphs
                    const bool dot = col < 5 && (((*glyph)[row] >> (4 - col)) & 1);
                    const int x = t.bbox.x0 + (6 * static_cast<int>(i) + col) * t.scale + t.scale / 2;
                    const int y = t.bbox.y0 + row * t.scale + t.scale / 2;
                    if (x >= t.bbox.x1) continue;
                    CHECK((scene.image.pixel(x, y) == rgb) == dot);
                }
        }
    }
    CHECK(scenes_with_text > 60);
}

TEST_CASE("scenes: every background pixel stays far from every object color") {
    int min_distance_sq = 1 << 30;
    for (uint64_t seed = 0; seed < 200; ++seed) {
        const Scene scene = scene_generate(seed, small_image_options());
        const SceneImage& img = scene.image;
        for (int y = 0; y < img.height; y += 2)
            for (int x = 0; x < img.width; x += 2) {
                bool covered = scene.text && scene.text->bbox.contains(x, y);
                for (const SceneObject& o : scene.objects) covered = covered || o.bbox.contains(x, y);
                if (covered) continue;
                for (int c = 0; c < kColorCount; ++c)
                    min_distance_sq = std::min(min_distance_sq, distance_sq(img.pixel(x, y), color_rgb(static_cast<Color>(c))));
            }
    }
    CHECK(min_distance_sq >= 80 * 80);
}

TEST_CASE("scenes: object colors are far apart from each other") {
    for (int a = 0; a < kColorCount; ++a)
        for (int b = a + 1; b < kColorCount; ++b)
            CHECK(distance_sq(color_rgb(static_cast<Color>(a)), color_rgb(static_cast<Color>(b))) >= 90 * 90);
}

TEST_CASE("scenes: every answer agrees with the object list") {
    const SceneOptions opts;
    const std::vector<Shape> popular_s = popular_shapes(opts);
    const std::vector<Color> popular_c = popular_colors(opts);
    for (uint64_t seed = 0; seed < 1000; ++seed) {
        const Scene scene = scene_generate(seed, opts);
        REQUIRE(scene.qa.size() == static_cast<size_t>(opts.qa_per_scene));
        for (const QaPair& qa : scene.qa) {
            INFO("seed " << seed << ": " << qa.question << " -> " << qa.answer);
            switch (qa.kind) {
                case QaKind::count: {
                    const Shape shape = asked_about(qa.question, "How many ", " are there?", shape_by_name);
                    CHECK(qa.answer == std::to_string(count_shape(scene, shape)));
                    break;
                }
                case QaKind::exist: {
                    auto words = strip(qa.question, "Is there a ", "?");
                    if (!words) words = strip(qa.question, "Is there an ", "?");
                    REQUIRE(words.has_value());
                    CHECK((qa.question.rfind("Is there an ", 0) == 0) == (words->rfind("orange", 0) == 0));
                    auto cs = color_shape(*words);
                    REQUIRE(cs.has_value());
                    const auto [color, shape] = *cs;
                    const bool present = count_combo(scene, color, shape) > 0;
                    CHECK(qa.answer == (present ? "yes" : "no"));
                    CHECK((qa.probe == ExistProbe::positive) == present);
                    if (qa.probe == ExistProbe::popular) {
                        CHECK(std::count(popular_s.begin(), popular_s.end(), shape) == 1);
                        CHECK(std::count(popular_c.begin(), popular_c.end(), color) == 1);
                    }
                    if (qa.probe == ExistProbe::adversarial) {
                        const bool shares = std::any_of(scene.objects.begin(), scene.objects.end(), [&](const SceneObject& o) {
                            return o.color == color || o.shape == shape;
                        });
                        CHECK(shares);
                    }
                    break;
                }
                case QaKind::color: {
                    const Shape shape = asked_about(qa.question, "What color is the ", "?", shape_by_name);
                    REQUIRE(count_shape(scene, shape) == 1);  // asked only for unique shapes
                    for (const SceneObject& o : scene.objects)
                        if (o.shape == shape) CHECK(qa.answer == color_name(o.color));
                    break;
                }
                case QaKind::position: {
                    const auto [color, shape] = asked_about(qa.question, "Where is the ", "?", color_shape);
                    REQUIRE(count_combo(scene, color, shape) == 1);
                    for (const SceneObject& o : scene.objects) {
                        if (o.color != color || o.shape != shape) continue;
                        bool near_boundary = false;
                        auto expected = rule_direction(o, scene.image.width, scene.image.height, &near_boundary);
                        if (near_boundary) continue;
                        REQUIRE(expected.has_value());
                        CHECK(qa.answer == *expected);
                    }
                    break;
                }
                case QaKind::text:
                    CHECK(qa.question == "What is written in the image?");
                    REQUIRE(scene.text.has_value());
                    CHECK(qa.answer == scene.text->chars);
                    break;
            }
            if (qa.kind != QaKind::exist) CHECK(qa.probe == ExistProbe::none);
        }
    }
}

TEST_CASE("scenes: exist questions are balanced yes/no and cover the POPE negative kinds") {
    int yes = 0, no = 0;
    std::map<ExistProbe, int> probes;
    for (uint64_t seed = 0; seed < 1000; ++seed)
        for (const QaPair& qa : scene_generate(seed).qa) {
            if (qa.kind != QaKind::exist) continue;
            (qa.answer == "yes" ? yes : no) += 1;
            ++probes[qa.probe];
        }
    const double share_yes = static_cast<double>(yes) / (yes + no);
    MESSAGE("exist questions: " << yes + no << ", yes share " << share_yes);
    CHECK(yes + no > 1000);
    CHECK(std::fabs(share_yes - 0.5) <= 0.02);  // answers alternate within a scene
    for (ExistProbe p : {ExistProbe::random, ExistProbe::popular, ExistProbe::adversarial})
        CHECK(probes[p] >= no / 5);  // taken in turn: about a third each
}

TEST_CASE("scenes: question kinds are mixed and only asked when answerable") {
    std::map<QaKind, int> kinds;
    int total = 0;
    for (uint64_t seed = 0; seed < 1000; ++seed) {
        const Scene scene = scene_generate(seed);
        std::set<std::string> questions;
        for (const QaPair& qa : scene.qa) {
            ++kinds[qa.kind];
            ++total;
            // A repeat is only allowed for yes-questions once every present combination was asked.
            if (!questions.insert(qa.question).second) CHECK(qa.probe == ExistProbe::positive);
            if (qa.kind == QaKind::text) CHECK(scene.text.has_value());
        }
    }
    for (int k = 0; k < kQaKindCount; ++k) {
        const double share = static_cast<double>(kinds[static_cast<QaKind>(k)]) / total;
        MESSAGE(qa_kind_name(static_cast<QaKind>(k)) << " share " << share);
        CHECK(share >= (k == static_cast<int>(QaKind::text) ? 0.04 : 0.10));
    }
}

TEST_CASE("scenes: captions list objects left to right in the fixed grammar") {
    for (uint64_t seed = 0; seed < 200; ++seed) {
        const Scene scene = scene_generate(seed);
        std::vector<SceneObject> sorted = scene.objects;
        std::stable_sort(sorted.begin(), sorted.end(), [](const SceneObject& a, const SceneObject& b) {
            return std::make_pair(a.center_x, a.center_y) < std::make_pair(b.center_x, b.center_y);
        });
        std::vector<std::string> items;
        for (const SceneObject& o : sorted)
            items.push_back("a " + std::string(size_class_name(o.size)) + " " + std::string(color_name(o.color)) + " " +
                            std::string(shape_name(o.shape)));
        if (scene.text) items.push_back("the text \"" + scene.text->chars + "\"");
        std::string expected;
        for (size_t i = 0; i < items.size(); ++i)
            expected += (i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") + items[i];
        expected += " on a " + std::string(background_adjective(scene.background)) + " background.";
        CHECK(scene.caption == expected);
    }
}

TEST_CASE("scenes: the distribution over many seeds covers the option space") {
    const SceneOptions opts;
    const int kScenes = 2000;
    int min_w = 1 << 30, max_w = 0, min_h = 1 << 30, max_h = 0;
    std::array<int, kShapeCount> shapes{};
    std::array<int, kColorCount> colors{};
    std::array<int, kSizeClassCount> sizes{};
    std::array<int, kBackgroundKindCount> backgrounds{};
    std::array<int, 10> object_counts{};
    int many_small = 0, many_small_crowded = 0, crowded = 0, with_text = 0, occluded_scenes = 0, objects = 0;
    int small_in_many_small = 0, objects_in_many_small = 0;
    for (uint64_t seed = 0; seed < kScenes; ++seed) {
        const Scene scene = scene_generate(seed, opts);
        const int w = scene.image.width, h = scene.image.height;
        min_w = std::min(min_w, w), max_w = std::max(max_w, w), min_h = std::min(min_h, h), max_h = std::max(max_h, h);
        CHECK(std::max(w, h) * 1000 <= std::min(w, h) * opts.max_aspect_permille);
        ++backgrounds[static_cast<int>(scene.background)];
        ++object_counts[scene.objects.size()];
        const bool is_crowded = scene.objects.size() >= 6;
        crowded += is_crowded;
        with_text += scene.text.has_value();
        bool occluded = false;
        for (const SceneObject& o : scene.objects) {
            ++shapes[static_cast<int>(o.shape)], ++colors[static_cast<int>(o.color)], ++sizes[static_cast<int>(o.size)];
            occluded = occluded || o.visible_px < o.area_px;
            ++objects;
            if (scene.many_small) small_in_many_small += o.size == SizeClass::small, ++objects_in_many_small;
        }
        occluded_scenes += occluded;
        if (scene.many_small) ++many_small, many_small_crowded += is_crowded;
    }
    CHECK(min_w <= opts.min_side + 30);
    CHECK(min_h <= opts.min_side + 30);
    CHECK(max_w >= opts.max_side - 30);
    CHECK(max_h >= opts.max_side - 30);
    const int shape_weight_sum = 15 + 13 + 11 + 10 + 8 + 8;
    for (int s = 0; s < kShapeCount; ++s) {
        const double expected = static_cast<double>(opts.shape_weights[s]) / shape_weight_sum;
        CHECK(std::fabs(static_cast<double>(shapes[s]) / objects - expected) < 0.25 * expected);
    }
    for (int c = 0; c < kColorCount; ++c) CHECK(colors[c] > objects / 20);
    for (int k = 0; k < kSizeClassCount; ++k) CHECK(sizes[k] > objects / 10);
    for (int b = 0; b < kBackgroundKindCount; ++b) CHECK(backgrounds[b] > kScenes / 6);
    for (int n = 1; n <= 9; ++n) CHECK(object_counts[n] > kScenes / 40);
    const double many_small_share = static_cast<double>(many_small) / kScenes;
    MESSAGE("many-small share " << many_small_share << ", >=6 objects " << static_cast<double>(crowded) / kScenes
                                << ", small objects " << static_cast<double>(sizes[0]) / objects << ", text "
                                << static_cast<double>(with_text) / kScenes << ", scenes with occlusion "
                                << static_cast<double>(occluded_scenes) / kScenes);
    CHECK(many_small_share >= 0.30);
    CHECK(many_small_crowded >= many_small * 95 / 100);  // placement rarely drops an object
    CHECK(small_in_many_small >= objects_in_many_small * 65 / 100);
    CHECK(std::fabs(static_cast<double>(with_text) / kScenes - opts.text_probability) < 0.05);
    CHECK(occluded_scenes > kScenes / 50);  // overlap happens, bounded
}

TEST_CASE("scenes: options are validated and respected") {
    SceneOptions opts;
    CHECK(scene_options_validate(opts).is_ok());
    opts.max_objects = 10;
    Status s = scene_options_validate(opts);
    CHECK(s.code() == StatusCode::invalid_argument);
    CHECK(s.message().find("object count") != std::string::npos);
    opts = SceneOptions{};
    opts.text_probability = 1.5;
    CHECK(scene_options_validate(opts).message().find("text_probability") != std::string::npos);
    opts = SceneOptions{};
    opts.backgrounds.fill(false);
    CHECK_FALSE(scene_options_validate(opts).is_ok());
    opts = SceneOptions{};
    opts.min_side = 500;
    opts.max_side = 400;
    CHECK_FALSE(scene_options_validate(opts).is_ok());

    opts = SceneOptions{};
    opts.min_side = 200;
    opts.max_side = 240;
    opts.min_objects = 3;
    opts.max_objects = 4;
    opts.text_probability = 1.0;
    opts.many_small_probability = 0.0;
    opts.max_occluded_fraction = 0.0;
    opts.backgrounds = {false, false, false, true};
    for (uint64_t seed = 0; seed < 100; ++seed) {
        const Scene scene = scene_generate(seed, opts);
        CHECK(scene.image.width >= 200);
        CHECK(scene.image.width <= 240);
        CHECK(scene.image.height >= 200);
        CHECK(scene.image.height <= 240);
        CHECK(scene.objects.size() <= 4);
        CHECK(scene.text.has_value());
        CHECK(scene.background == BackgroundKind::stripes);
        for (const SceneObject& o : scene.objects) CHECK(o.visible_px == o.area_px);
    }
}

TEST_CASE("scenes: bitmap-font glyphs are distinct and the text alphabet avoids look-alikes") {
    const std::string_view chars = font_characters();
    CHECK(chars.size() == 36);
    std::set<std::array<uint8_t, 7>> glyphs;
    int min_hamming = 35;
    for (size_t i = 0; i < chars.size(); ++i) {
        const auto* g = font_glyph(chars[i]);
        REQUIRE(g != nullptr);
        int dots = 0;
        for (uint8_t row : *g) {
            CHECK(row < 32);
            dots += __builtin_popcount(row);
        }
        CHECK(dots >= 7);
        glyphs.insert(*g);
        for (size_t j = 0; j < i; ++j) {
            int hamming = 0;
            for (int r = 0; r < 7; ++r) hamming += __builtin_popcount((*g)[r] ^ (*font_glyph(chars[j]))[r]);
            min_hamming = std::min(min_hamming, hamming);
        }
    }
    CHECK(glyphs.size() == chars.size());
    CHECK(min_hamming >= 2);
    CHECK(font_glyph('a') == nullptr);
    CHECK(font_glyph(' ') == nullptr);
    for (char c : kTextAlphabet) CHECK(font_glyph(c) != nullptr);
    CHECK(kTextAlphabet.find('O') == std::string_view::npos);
    CHECK(kTextAlphabet.find('I') == std::string_view::npos);
}

TEST_CASE("scenes: JSON escapes strings and reads back") {
    CHECK(json_quote("plain") == "\"plain\"");
    CHECK(json_quote("say \"K3\"") == "\"say \\\"K3\\\"\"");
    CHECK(json_quote("a\\b") == "\"a\\\\b\"");
    CHECK(json_quote("line\nnext\ttab") == "\"line\\nnext\\ttab\"");
    CHECK(json_quote(std::string("\x01", 1)) == "\"\\u0001\"");
    JsonValue parsed;
    CHECK(JsonReader(json_quote("q\"\\\n\x1f")).parse(parsed));
    CHECK(parsed.s == "q\"\\\n\x1f");

    int with_text = 0;
    for (uint64_t seed = 0; seed < 50; ++seed) {
        const Scene scene = scene_generate(seed);
        const std::string json = scene_to_json(scene, "dir \"x\"\\y.png");
        CHECK(json.find('\n') == std::string::npos);  // one line: index.jsonl relies on it
        JsonValue root;
        REQUIRE(JsonReader(json).parse(root));
        REQUIRE(root.kind == JsonValue::object);
        CHECK(root.fields["image"].s == "dir \"x\"\\y.png");
        CHECK(root.fields["caption"].s == scene.caption);
        CHECK(root.fields["width"].n == scene.image.width);
        CHECK(root.fields["objects"].items.size() == scene.objects.size());
        REQUIRE(root.fields["qa"].items.size() == scene.qa.size());
        for (size_t i = 0; i < scene.qa.size(); ++i) {
            JsonValue& qa = root.fields["qa"].items[i];
            CHECK(qa.fields["question"].s == scene.qa[i].question);
            CHECK(qa.fields["answer"].s == scene.qa[i].answer);
            CHECK(qa.fields["kind"].s == qa_kind_name(scene.qa[i].kind));
            CHECK(qa.fields.count("probe") == (scene.qa[i].kind == QaKind::exist ? 1u : 0u));
        }
        if (scene.text) {
            ++with_text;
            CHECK(root.fields["text"].fields["string"].s == scene.text->chars);
            CHECK(json.find("the text \\\"" + scene.text->chars + "\\\"") != std::string::npos);
        } else {
            CHECK(root.fields["text"].kind == JsonValue::null);
        }
    }
    CHECK(with_text > 5);
}

TEST_CASE("scenes: images round-trip through PNG and PPM files") {
    const auto dir = std::filesystem::temp_directory_path() / ("glimpse_test_scenes_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const Scene scene = scene_generate(7, small_image_options());
    const std::string png = (dir / "7.png").string(), ppm = (dir / "7.ppm").string();

    configure_png_writer(5);
    REQUIRE(write_scene_image(scene.image, png, ImageFormat::png).is_ok());
    int w = 0, h = 0, n = 0;
    unsigned char* decoded = stbi_load(png.c_str(), &w, &h, &n, 3);
    REQUIRE(decoded != nullptr);
    CHECK(w == scene.image.width);
    CHECK(h == scene.image.height);
    CHECK(std::equal(scene.image.rgb.begin(), scene.image.rgb.end(), decoded));
    stbi_image_free(decoded);

    REQUIRE(write_scene_image(scene.image, ppm, ImageFormat::ppm).is_ok());
    std::ifstream in(ppm, std::ios::binary);
    std::string magic;
    int pw = 0, ph = 0, maxval = 0;
    in >> magic >> pw >> ph >> maxval;
    in.get();
    std::vector<uint8_t> body(scene.image.rgb.size());
    in.read(reinterpret_cast<char*>(body.data()), static_cast<std::streamsize>(body.size()));
    CHECK(magic == "P6");
    CHECK(pw == scene.image.width);
    CHECK(ph == scene.image.height);
    CHECK(maxval == 255);
    CHECK(body == scene.image.rgb);

    const Status bad = write_scene_image(scene.image, (dir / "missing" / "x.png").string(), ImageFormat::png);
    CHECK(bad.code() == StatusCode::io_error);
    CHECK(bad.message().find("missing") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("scenes: presets (default is SceneOptions{}, bundled keeps objects and text large)") {
    auto def = scene_preset("default");
    REQUIRE(def.is_ok());
    CHECK(image_hash(scene_generate(7, *def).image) == image_hash(scene_generate(7).image));
    CHECK(scene_preset("nonsense").status().code() == StatusCode::invalid_argument);
    CHECK(scene_preset_names().size() == 2);

    auto bundled = scene_preset("bundled");
    REQUIRE(bundled.is_ok());
    REQUIRE(scene_options_validate(*bundled).is_ok());
    int with_text = 0;
    for (uint64_t seed = 0; seed < 300; ++seed) {
        const Scene s = scene_generate(seed, *bundled);
        const int lo = std::min(s.image.width, s.image.height), hi = std::max(s.image.width, s.image.height);
        CHECK(lo >= 128);
        CHECK(hi <= 512);
        CHECK(hi * 1000 <= lo * 1500);
        CHECK(!s.objects.empty());
        CHECK(s.objects.size() <= 6);
        for (const SceneObject& o : s.objects) {
            // size classes per mille of the short side (integer division, pixel floors 12/18/28)
            const int c = static_cast<int>(o.size);
            CHECK(o.size_px >= std::max(std::array{12, 18, 28}[c], lo * std::array{90, 140, 220}[c] / 1000));
            CHECK(o.size_px <= std::max(std::array{12, 18, 28}[c], lo * std::array{110, 180, 280}[c] / 1000));
        }
        if (s.text) {
            ++with_text;
            // glyph height 7·scale is 11-15 % of the short side unless the text had to shrink to fit
            CHECK(7 * s.text->scale <= lo * 150 / 1000);
        }
    }
    CHECK(with_text > 90);   // text_probability 0.4 of 300
    CHECK(with_text < 150);
}
