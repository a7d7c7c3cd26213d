// Per-patch stage-1 labels (tools/train/patch_labels.h) against the scenes' ground truth.
// The oracle maps each object center and glyph-cell center forward, from the scene into the
// preprocessed chunk (the continuous coordinate offset + (x + 0.5)·resized/W of
// idefics3_geometry / llava_geometry), and expects the label on the patch that point falls in.
// The labeller works the other way (it searches the chunk pixel whose nearest-neighbour sample
// is closest to the point), so the two agree except within about one sampling step of a patch
// border: points that close to a border, or sharing a patch with another center, are not
// checked, and the test requires that most points are checked.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "models/image_preprocess.h"
#include "tools/scenes/scene.h"
#include "tools/train/patch_labels.h"

using namespace glimpse;
using namespace glimpse::scenes;
using namespace glimpse::traindata;

namespace {

// Where a scene point lands in one chunk: patch index (row-major), and how far it lies from the
// nearest patch border, in chunk pixels.
struct Landing {
    int chunk = -1;
    int patch = -1;
    double border_distance = 0;
};

struct ChunkPlacement {  // one chunk showing the (resized) image or part of it
    double ox, oy;       // where the image's top-left corner lands, chunk pixels
    double sx, sy;       // chunk pixels per scene pixel
};

Landing land(double x, double y, const ChunkPlacement& c, int chunk, int S, int P) {
    const double u = c.ox + (x + 0.5) * c.sx, v = c.oy + (y + 0.5) * c.sy;
    Landing l;
    if (u < 0 || v < 0 || u >= S || v >= S) return l;
    l.chunk = chunk;
    l.patch = static_cast<int>(v / P) * (S / P) + static_cast<int>(u / P);
    const double fu = std::fmod(u, P), fv = std::fmod(v, P);
    l.border_distance = std::min({fu, P - fu, fv, P - fv});
    return l;
}

struct Layout {
    std::vector<ChunkPlacement> chunks;
    double margin = 0;  // points closer than this to a patch border are not checked
};

Layout llava_layout(int W, int H, int S) {
    LlavaParams p;
    p.image_size = S;
    Result<LlavaGeometry> geo = llava_geometry(W, H, p);
    REQUIRE(geo.is_ok());
    const double sx = static_cast<double>(geo->resized_w) / W, sy = static_cast<double>(geo->resized_h) / H;
    Layout l;
    l.chunks.push_back({static_cast<double>(geo->offset_x), static_cast<double>(geo->offset_y), sx, sy});
    l.margin = 1.0 + std::max(sx, sy);
    return l;
}

Layout idefics3_layout(int W, int H, int S, int longest_edge) {
    Idefics3Params p;
    p.tile_size = S;
    p.longest_edge = longest_edge;
    Result<Idefics3Geometry> geo = idefics3_geometry(W, H, p);
    REQUIRE(geo.is_ok());
    const double sx = static_cast<double>(geo->resized_w) / W, sy = static_cast<double>(geo->resized_h) / H;
    Layout l;
    for (int k = 0; k < geo->n_tiles(); ++k) {
        const int r = k / geo->grid_cols, c = k % geo->grid_cols;
        l.chunks.push_back({geo->offset_x - c * S + 0.0, geo->offset_y - r * S + 0.0, sx, sy});
    }
    const double ovx = static_cast<double>(S) / W, ovy = static_cast<double>(S) / H;
    l.chunks.push_back({0.0, 0.0, ovx, ovy});  // the overview: the whole image stretched to S×S
    l.margin = 1.0 + std::max({sx, sy, ovx, ovy});
    return l;
}

struct Tally {
    int checked = 0, skipped = 0;
};

// Every point is expected, in each chunk that shows it away from a border and alone in its
// patch, to carry `expected(i)` in the field read by `field`.
template <class Field, class Expected>
void check_points(const std::vector<std::pair<double, double>>& points, const Layout& layout, int S, int P,
                  const std::vector<uint64_t>& words, Field field, Expected expected, Tally* tally) {
    const int per_chunk = (S / P) * (S / P);
    for (size_t ci = 0; ci < layout.chunks.size(); ++ci) {
        std::vector<Landing> at;
        for (const auto& [x, y] : points) at.push_back(land(x, y, layout.chunks[ci], static_cast<int>(ci), S, P));
        for (size_t i = 0; i < points.size(); ++i) {
            if (at[i].chunk < 0) continue;
            bool shared = false;
            for (size_t j = 0; j < points.size(); ++j) {
                if (j == i || at[j].chunk < 0) continue;
                const bool adjacent = std::abs(at[j].patch % (S / P) - at[i].patch % (S / P)) <= 1 &&
                                      std::abs(at[j].patch / (S / P) - at[i].patch / (S / P)) <= 1;
                // the same patch, or a neighbour's point close enough to a border to be put here
                if (at[j].patch == at[i].patch || (adjacent && at[j].border_distance < layout.margin)) shared = true;
            }
            if (shared || at[i].border_distance < layout.margin) {
                ++tally->skipped;
                continue;
            }
            ++tally->checked;
            const uint64_t word = words[ci * per_chunk + static_cast<size_t>(at[i].patch)];
            INFO("chunk " << ci << " patch " << at[i].patch << " point " << i);
            CHECK(field(word) == expected(i));
        }
    }
}

void check_grid(const PatchGrid& grid, const char* name) {
    INFO(std::string(name));
    Result<SceneOptions> opts = scene_preset("bundled");
    REQUIRE(opts.is_ok());
    opts->text_probability = 1.0;  // every scene writes text
    Tally glyphs, objects;
    int n_scenes = 0;
    for (uint64_t seed = 500; seed < 560; ++seed) {
        const Scene scene = scene_generate(seed, *opts);
        REQUIRE(scene.text.has_value());
        const SceneText& text = *scene.text;
        Result<std::vector<uint64_t>> words = scene_patch_labels(scene, grid);
        REQUIRE(words.is_ok());
        const int W = scene.image.width, H = scene.image.height, S = grid.tile, P = grid.patch;
        const Layout layout =
            grid.idefics3 ? idefics3_layout(W, H, S, grid.longest_edge) : llava_layout(W, H, S);
        const int per_chunk = (S / P) * (S / P);
        REQUIRE(words->size() == layout.chunks.size() * static_cast<size_t>(per_chunk));
        INFO("seed " << seed);
        ++n_scenes;

        // Glyph i's 5×7 cell of scale-pixel dots starts at bbox.x0 + 6·i·scale (SceneText).
        std::vector<std::pair<double, double>> glyph_centers;
        for (size_t i = 0; i < text.chars.size(); ++i)
            glyph_centers.emplace_back(text.bbox.x0 + (6.0 * i + 2.5) * text.scale - 0.5,
                                       text.bbox.y0 + 3.5 * text.scale - 0.5);
        check_points(glyph_centers, layout, S, P, *words, glyph_center_class,
                     [&](size_t i) { return static_cast<int>(kTextAlphabet.find(text.chars[i])) + 1; }, &glyphs);

        std::vector<std::pair<double, double>> object_centers;
        for (const SceneObject& o : scene.objects) object_centers.emplace_back(o.center_x, o.center_y);
        check_points(object_centers, layout, S, P, *words, object_center_class,
                     [&](size_t i) { return static_cast<int>(scene.objects[i].shape) + 1; }, &objects);

        // No chunk names more glyph centers or object centers than the scene has, nor a
        // character the text does not contain.
        for (size_t ci = 0; ci < layout.chunks.size(); ++ci) {
            int n_glyph = 0, n_center = 0;
            for (int k = 0; k < per_chunk; ++k) {
                const uint64_t w = (*words)[ci * per_chunk + static_cast<size_t>(k)];
                if (const int g = glyph_center_class(w); g > 0) {
                    ++n_glyph;
                    CHECK(text.chars.find(kTextAlphabet[static_cast<size_t>(g - 1)]) != std::string::npos);
                }
                if (object_center_class(w) > 0) ++n_center;
            }
            CHECK(n_glyph <= static_cast<int>(text.chars.size()));
            CHECK(n_center <= static_cast<int>(scene.objects.size()));
        }
    }
    MESSAGE(std::string(name) << ": glyph centers checked " << glyphs.checked << " skipped " << glyphs.skipped
                 << ", object centers checked " << objects.checked << " skipped " << objects.skipped);
    // The oracle has to see enough points, or the test would prove little.
    CHECK(n_scenes == 60);
    // (SmolVLM's 10 px patches at ~1 chunk pixel per scene pixel leave a ~2 px border margin
    // on each side, so only about a third of its points are away from every border.)
    CHECK(glyphs.checked * 3 >= glyphs.skipped);
    CHECK(objects.checked * 3 >= objects.skipped);
    CHECK(glyphs.checked >= 60);
    CHECK(objects.checked >= 60);
}

}  // namespace

TEST_CASE("patch labels: glyph and object centers land on the patch that shows them (LLaVA, 192 px, 16 px patches)") {
    PatchGrid grid;
    grid.idefics3 = false;
    grid.tile = 192;
    grid.patch = 16;
    check_grid(grid, "llava");
}

TEST_CASE("patch labels: glyph and object centers land on the patch that shows them (SmolVLM tiles + overview)") {
    PatchGrid grid;
    grid.idefics3 = true;
    grid.tile = 80;
    grid.patch = 10;
    grid.longest_edge = 160;
    check_grid(grid, "smolvlm");
}

TEST_CASE("patch labels: padding shows nothing, and a bad grid is an error") {
    Result<SceneOptions> opts = scene_preset("bundled");
    REQUIRE(opts.is_ok());
    // Find a scene that is clearly wider than tall: LLaVA pads above and below it.
    for (uint64_t seed = 0; seed < 200; ++seed) {
        const Scene scene = scene_generate(seed, *opts);
        if (scene.image.width < scene.image.height * 5 / 4) continue;
        PatchGrid grid;
        grid.idefics3 = false;
        grid.tile = 192;
        grid.patch = 16;
        Result<std::vector<uint64_t>> words = scene_patch_labels(scene, grid);
        REQUIRE(words.is_ok());
        LlavaParams p;
        p.image_size = 192;
        Result<LlavaGeometry> geo = llava_geometry(scene.image.width, scene.image.height, p);
        REQUIRE(geo.is_ok());
        REQUIRE(geo->offset_y >= 16);  // at least the first patch row is all padding
        for (int row = 0; row < geo->offset_y / 16; ++row)
            for (int col = 0; col < 12; ++col) CHECK((*words)[static_cast<size_t>(row * 12 + col)] == 0);
        grid.patch = 15;  // 192 is not a multiple of 15
        CHECK_FALSE(scene_patch_labels(scene, grid).is_ok());
        return;
    }
    FAIL("no wide scene among the first 200 seeds");
}
