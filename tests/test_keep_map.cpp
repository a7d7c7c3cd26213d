// The keep map (models/keep_map.h): kept token areas show the source pixels, dropped ones the
// source dimmed by the stated factor, the overview sits at half size right of the main view;
// token areas are checked at hand-computed pixels of the preprocessing geometry.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "models/keep_map.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {

// A test pattern with different values in each channel and position.
ImageU8 pattern(int w, int h) {
    ImageU8 img;
    img.width = w;
    img.height = h;
    img.rgb.resize(img.n_bytes());
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            uint8_t* p = img.pixel(x, y);
            p[0] = static_cast<uint8_t>((x * 7 + y * 3 + 40) % 256);
            p[1] = static_cast<uint8_t>((x * 2 + y * 5 + 200) % 256);
            p[2] = 255;
        }
    }
    return img;
}

bool shows_source(const ImageU8& out, int ox, int oy, const ImageU8& src, int sx, int sy) {
    const uint8_t* a = out.pixel(ox, oy);
    const uint8_t* b = src.pixel(sx, sy);
    return a[0] == b[0] && a[1] == b[1] && a[2] == b[2];
}

// Dimmed by factor d: each channel v -> round half up of v * d (255 * 0.25 = 63.75 -> 64).
bool shows_dimmed(const ImageU8& out, int ox, int oy, const ImageU8& src, int sx, int sy, double d) {
    const uint8_t* a = out.pixel(ox, oy);
    const uint8_t* b = src.pixel(sx, sy);
    for (int c = 0; c < 3; ++c) {
        if (a[c] != static_cast<int>(std::floor(b[c] * d + 0.5))) return false;
    }
    return true;
}

// The LLaVA geometry of a w x h image on the 48-pixel canvas these tests draw on.
Result<LlavaGeometry> llava_geometry_48(int w, int h) {
    LlavaParams params;
    params.image_size = 48;
    return llava_geometry(w, h, params);
}

}  // namespace

TEST_CASE("keep map: LLaVA single view, square and letterboxed") {
    const ImageU8 img = pattern(48, 48);
    auto g = llava_geometry_48(48, 48);
    REQUIRE(g.is_ok());
    // 4x4 tokens of 12x12 pixels; keep tokens 0 (top-left), 5 (row 1, col 1), 15 (bottom-right).
    auto views = keep_map_views_llava(*g, 4, {0, 5, 15});
    REQUIRE_MESSAGE(views.is_ok(), views.status().to_string());
    auto out = keep_map_render(img, *views);
    REQUIRE_MESSAGE(out.is_ok(), out.status().to_string());
    CHECK(out->width == 48);  // no overview: the picture is the image
    CHECK(out->height == 48);
    for (int y = 0; y < 48; ++y) {
        for (int x = 0; x < 48; ++x) {
            const int token = (y / 12) * 4 + x / 12;
            const bool kept = token == 0 || token == 5 || token == 15;
            CHECK_MESSAGE((kept ? shows_source(*out, x, y, img, x, y) : shows_dimmed(*out, x, y, img, x, y, 0.25)),
                          "pixel " << x << "," << y << " token " << token);
        }
    }
    // 255 * 0.25 rounds to 64: the blue channel of a dropped pixel.
    CHECK(out->pixel(20, 0)[2] == 64);

    // A 96x48 image letterboxed into 48x48: resized 48x24 at y offset 12 (image_preprocess.h).
    auto wide = llava_geometry_48(96, 48);
    REQUIRE(wide.is_ok());
    CHECK(wide->resized_w == 48);
    CHECK(wide->resized_h == 24);
    CHECK(wide->offset_y == 12);
    const ImageU8 wide_img = pattern(96, 48);
    auto wide_views = keep_map_views_llava(*wide, 4, {4});
    REQUIRE(wide_views.is_ok());
    auto wide_out = keep_map_render(wide_img, *wide_views, KeepMapStyle{0.5, 8, {0, 0, 0}});
    REQUIRE(wide_out.is_ok());
    // Pixel (0,0) -> canvas (0.25, 12.25): token row 1, col 0 = 4, kept.
    CHECK(shows_source(*wide_out, 0, 0, wide_img, 0, 0));
    // Pixel (23,23) -> canvas (11.75, 23.75): token 4 still; pixel (24,0) -> canvas x 12.25: token 5.
    CHECK(shows_source(*wide_out, 23, 23, wide_img, 23, 23));
    CHECK(shows_dimmed(*wide_out, 24, 0, wide_img, 24, 0, 0.5));
    // Pixel (95,47) -> canvas (47.75, 35.75): token row 2, col 3 = 11, dropped.
    CHECK(shows_dimmed(*wide_out, 95, 47, wide_img, 95, 47, 0.5));
    // Pixel (0,24) -> canvas y 24.25: token row 2 = 8, dropped.
    CHECK(shows_dimmed(*wide_out, 0, 24, wide_img, 0, 24, 0.5));
}

TEST_CASE("keep map: SmolVLM tiles and overview side by side") {
    auto g = idefics3_geometry(128, 96, {.tile_size = 64, .longest_edge = 128});
    REQUIRE(g.is_ok());
    // 128x96 with longest edge 128: canvas 128x128 (96 rounds up to 2 tiles), 2x2 tiles, image
    // 128x96 centred at y offset 16.
    REQUIRE(g->canvas_w == 128);
    REQUIRE(g->canvas_h == 128);
    REQUIRE(g->grid_rows == 2);
    REQUIRE(g->grid_cols == 2);
    REQUIRE(g->resized_h == 96);
    REQUIRE(g->offset_y == 16);
    const ImageU8 img = pattern(128, 96);
    // 4x4 tokens per 64-pixel tile (16-pixel cells). Tile 0 keeps all, tile 1 none, tile 2 only
    // token 0, tile 3 none; the overview keeps its top-left token.
    std::vector<int32_t> all(16);
    for (int i = 0; i < 16; ++i) all[i] = i;
    auto views = keep_map_views_idefics3(*g, 4, {all, {}, {0}, {}, {0}});
    REQUIRE_MESSAGE(views.is_ok(), views.status().to_string());
    const KeepMapStyle style{0.25, 8, {10, 20, 30}};
    auto out = keep_map_render(img, *views, style);
    REQUIRE_MESSAGE(out.is_ok(), out.status().to_string());
    // Layout: 128 (main) + 8 (gap) + 64 (overview at half size) wide, 96 high.
    CHECK(out->width == 128 + 8 + 64);
    CHECK(out->height == 96);

    // Main view: pixel (x, y) -> canvas (x + 0.5, y + 16.5).
    CHECK(shows_source(*out, 10, 10, img, 10, 10));        // canvas (10.5, 26.5): tile 0
    CHECK(shows_source(*out, 63, 47, img, 63, 47));        // canvas (63.5, 63.5): tile 0, last cell
    CHECK(shows_dimmed(*out, 64, 10, img, 64, 10, 0.25));  // canvas x 64.5: tile 1
    CHECK(shows_dimmed(*out, 100, 10, img, 100, 10, 0.25));
    CHECK(shows_source(*out, 10, 48, img, 10, 48));          // canvas (10.5, 64.5): tile 2 token 0
    CHECK(shows_source(*out, 5, 60, img, 5, 60));            // canvas (5.5, 76.5): tile 2 token 0
    CHECK(shows_dimmed(*out, 20, 60, img, 20, 60, 0.25));    // canvas (20.5, 76.5): tile 2 token 1
    CHECK(shows_dimmed(*out, 5, 70, img, 5, 70, 0.25));      // canvas (5.5, 86.5): tile 2 token 4
    CHECK(shows_dimmed(*out, 127, 95, img, 127, 95, 0.25));  // tile 3

    // Every pixel: at scale 1 the canvas pixel is (x, y + 16), its 16-pixel cell (x / 16,
    // (y + 16) / 16), its tile (cell / 4), its token within the tile (cell % 4).
    for (int y = 0; y < 96; ++y) {
        for (int x = 0; x < 128; ++x) {
            const int cx = x / 16, cy = (y + 16) / 16;
            const int tile = (cy / 4) * 2 + cx / 4, token = (cy % 4) * 4 + cx % 4;
            const bool kept = tile == 0 || (tile == 2 && token == 0);
            CHECK_MESSAGE((kept ? shows_source(*out, x, y, img, x, y) : shows_dimmed(*out, x, y, img, x, y, 0.25)),
                          "pixel " << x << "," << y);
        }
    }
    // The gap is background.
    for (int x = 128; x < 136; ++x) {
        CHECK(out->pixel(x, 5)[0] == 10);
        CHECK(out->pixel(x, 5)[2] == 30);
    }
    // Overview panel (48 rows of 64): panel pixel (px, py) shows source (2px + 1, 2py + 1)
    // (nearest of (p + 0.5) * 2); its token is floor((sx + 0.5) * 4 / 128) across, floor((sy +
    // 0.5) * 4 / 96) down; only token 0 (sx < 32, sy < 24) is kept.
    CHECK(shows_source(*out, 136 + 0, 0, img, 1, 1));
    CHECK(shows_source(*out, 136 + 15, 11, img, 31, 23));
    CHECK(shows_dimmed(*out, 136 + 16, 0, img, 33, 1, 0.25));  // sx 33: token column 1
    CHECK(shows_dimmed(*out, 136 + 0, 12, img, 1, 25, 0.25));  // sy 25: token row 1
    CHECK(shows_dimmed(*out, 136 + 63, 47, img, 127, 95, 0.25));
    // Below the overview panel there is nothing more: the panel is 48 high, rows 48.. are background.
    CHECK(out->pixel(140, 60)[1] == 20);
}

TEST_CASE("keep map: everything kept is the image itself; nothing kept is the image dimmed") {
    const ImageU8 img = pattern(30, 20);
    auto g = llava_geometry_48(30, 20);
    REQUIRE(g.is_ok());
    std::vector<int32_t> all(36);
    for (int i = 0; i < 36; ++i) all[i] = i;
    auto full = keep_map_render(img, *keep_map_views_llava(*g, 6, all));
    REQUIRE(full.is_ok());
    CHECK(full->rgb == img.rgb);
    auto none = keep_map_render(img, *keep_map_views_llava(*g, 6, {}), KeepMapStyle{0.0, 8, {0, 0, 0}});
    REQUIRE(none.is_ok());
    for (uint8_t v : none->rgb) CHECK(v == 0);
}

TEST_CASE("keep map: written as PNG and read back") {
    const ImageU8 img = pattern(48, 48);
    auto out = keep_map_render(img, *keep_map_views_llava(*llava_geometry_48(48, 48), 4, {1, 2}));
    REQUIRE(out.is_ok());
    const fs::path dir = fs::temp_directory_path() / ("glimpse_test_keep_map_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const std::string path = (dir / "keep.png").string();
    REQUIRE(image_write_png(path, *out).is_ok());
    auto back = image_decode_file(path);
    REQUIRE_MESSAGE(back.is_ok(), back.status().to_string());
    CHECK(back->width == 48);
    CHECK(back->rgb == out->rgb);
    std::error_code ec;
    fs::remove_all(dir, ec);
}

TEST_CASE("keep map: bad arguments are refused") {
    auto g = llava_geometry_48(48, 48);
    REQUIRE(g.is_ok());
    auto message = [](const auto& r) { return r.is_ok() ? std::string("accepted") : r.status().message(); };
    CHECK(message(keep_map_views_llava(*g, 4, {16})).find("kept token 16 is outside its 16 tokens") !=
          std::string::npos);
    CHECK(message(keep_map_views_llava(*g, 4, {-1})).find("kept token -1") != std::string::npos);
    CHECK(message(keep_map_views_llava(*g, 0, {})).find("0 tokens per side") != std::string::npos);
    CHECK(message(keep_map_views_llava(*g, 5, {})).find("does not split") != std::string::npos);  // 48 / 5

    auto ig = idefics3_geometry(128, 96, {.tile_size = 64, .longest_edge = 128});
    REQUIRE(ig.is_ok());
    CHECK(message(keep_map_views_idefics3(*ig, 4, {{}, {}})).find("2 kept lists for 5 chunks") != std::string::npos);

    const ImageU8 img = pattern(48, 48);
    auto views = keep_map_views_llava(*g, 4, {0});
    REQUIRE(views.is_ok());
    CHECK(message(keep_map_render(img, *views, KeepMapStyle{1.5, 8, {0, 0, 0}})).find("dim 1.5") != std::string::npos);
    CHECK(message(keep_map_render(img, *views, KeepMapStyle{NAN, 8, {0, 0, 0}})).find("dim") != std::string::npos);
    CHECK(message(keep_map_render(img, *views, KeepMapStyle{0.5, -1, {0, 0, 0}})).find("gap -1") != std::string::npos);
    ImageU8 broken = img;
    broken.rgb.resize(10);
    CHECK(message(keep_map_render(broken, *views)).find("10 bytes") != std::string::npos);
    ImageU8 empty;
    CHECK(message(keep_map_render(empty, *views)).find("image 0x0") != std::string::npos);
    KeepMapViews hand = *views;
    hand.main.kept.push_back({});
    CHECK(message(keep_map_render(img, hand)).find("2 kept lists for 1 tiles") != std::string::npos);
}
