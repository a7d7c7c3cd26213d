// The tile budget (docs/pruning.md "Tile budget"): idefics3_capped_grid's rule against hand-worked
// cases and a brute-force statement of it, the capped preprocessing against a reference resize of
// the image to the capped canvas, and the VLM's max_tiles (config, plan, conflicts, LLaVA, the
// planned tokens and memory).
#include "doctest/doctest.h"

#include "models/image_preprocess.h"
#include "models/vlm.h"
#include "ops/image_resize.h"
#include "runtime/pruning_plan.h"
#include "test_util.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

using namespace glimpse;

namespace {

// A pseudo-random picture (LCG bytes), so that a wrong crop, order or filter shows.
ImageU8 noise_image(int w, int h, uint32_t seed) {
    ImageU8 img;
    img.width = w;
    img.height = h;
    img.rgb.resize(img.n_bytes());
    uint32_t s = seed;
    for (uint8_t& v : img.rgb) {
        s = s * 1664525u + 1013904223u;
        v = static_cast<uint8_t>(s >> 24);
    }
    return img;
}

// Aspect error of a rows x cols grid for a w x h image, as the contract states it.
long double aspect_error(int w, int h, int rows, int cols) {
    return std::fabs(std::log(static_cast<long double>(cols) * h / (static_cast<long double>(rows) * w)));
}

void check_grid(int w, int h, int nat_rows, int nat_cols, int max_tiles, int rows, int cols) {
    const TileGrid g = idefics3_capped_grid(w, h, nat_rows, nat_cols, max_tiles);
    INFO(w << "x" << h << " natural " << nat_rows << "x" << nat_cols << " max " << max_tiles);
    CHECK(g.rows == rows);
    CHECK(g.cols == cols);
}

}  // namespace

TEST_CASE("tile budget grid rule: hand-worked cases") {
    // 1024x768 (4:3) on SmolVLM: llama.cpp's grid is 3 rows x 4 cols. Aspect errors |ln(c*768 / (r*1024))|:
    // 1x1 and 2x2: ln(4/3) = 0.288; 2x3: ln(1.125) = 0.118; 1x2: ln(1.5) = 0.405; 2x4: 0.405;
    // 3x3: 0.288; 1x3: 0.81; 2x1: 0.98; 3x2: 0.69.
    check_grid(1024, 768, 3, 4, 1024, 3, 4);  // over the natural grid: unchanged
    check_grid(1024, 768, 3, 4, 12, 3, 4);
    check_grid(1024, 768, 3, 4, 11, 2, 3);
    check_grid(1024, 768, 3, 4, 6, 2, 3);
    check_grid(1024, 768, 3, 4, 5, 2, 2);  // 1x1 and 2x2 tie on aspect: more tiles
    check_grid(1024, 768, 3, 4, 4, 2, 2);
    check_grid(1024, 768, 3, 4, 3, 1, 1);  // 1x2 and 1x3 are further from 4:3 than 1x1
    check_grid(1024, 768, 3, 4, 2, 1, 1);
    check_grid(1024, 768, 3, 4, 1, 1, 1);
    // 4:1 strip (natural 1x4): 1x3 is off by 4/3, 1x2 by 2.
    check_grid(2048, 512, 1, 4, 3, 1, 3);
    check_grid(2048, 512, 1, 4, 2, 1, 2);
    check_grid(2048, 512, 1, 4, 1, 1, 1);
    // 1:3 portrait (natural 3x1): 2x1 is off by 1.5, 1x1 by 3.
    check_grid(600, 1800, 3, 1, 2, 2, 1);
    // Square: the square grids, as large as the budget allows; never wider than the natural grid.
    check_grid(1000, 1000, 4, 4, 15, 3, 3);
    check_grid(1000, 1000, 4, 4, 8, 2, 2);
    check_grid(1000, 1000, 4, 4, 3, 1, 1);
    check_grid(1000, 1000, 2, 2, 3, 1, 1);
}

TEST_CASE("tile budget grid rule against a brute-force statement of its contract") {
    uint64_t s = 0x243f6a8885a308d3ull;
    auto next = [&](int lo, int hi) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return lo + static_cast<int>((s >> 33) % static_cast<uint64_t>(hi - lo + 1));
    };
    for (int trial = 0; trial < 3000; ++trial) {
        const int w = next(1, 5000), h = next(1, 5000);
        const int nat_rows = next(1, 8), nat_cols = next(1, 8);
        const int max_tiles = next(1, 70);
        const TileGrid g = idefics3_capped_grid(w, h, nat_rows, nat_cols, max_tiles);
        INFO(w << "x" << h << " natural " << nat_rows << "x" << nat_cols << " max " << max_tiles << " -> " << g.rows
                << "x" << g.cols);
        if (nat_rows * nat_cols <= max_tiles) {
            CHECK((g.rows == nat_rows && g.cols == nat_cols));
            continue;
        }
        REQUIRE(g.rows >= 1);
        REQUIRE(g.cols >= 1);
        CHECK(g.rows <= nat_rows);
        CHECK(g.cols <= nat_cols);
        CHECK(g.rows * g.cols <= max_tiles);
        const long double chosen = aspect_error(w, h, g.rows, g.cols);
        for (int r = 1; r <= nat_rows; ++r) {
            for (int c = 1; c <= nat_cols && r * c <= max_tiles; ++c) {
                const long double e = aspect_error(w, h, r, c);
                CHECK(e >= chosen - 1e-12L);
                if (std::fabs(e - chosen) <= 1e-12L) CHECK(r * c <= g.rows * g.cols);
            }
        }
    }
}

TEST_CASE("capped preprocessing: at most N tiles, the canvas of the grid, tiles = a bicubic resize to it") {
    // Tile 32, longest edge 160: a 160x100 image gets a 160x128 canvas, 4 rows x 5 cols = 20 tiles.
    Idefics3Params p;
    p.tile_size = 32;
    p.longest_edge = 160;
    const ImageU8 img = noise_image(160, 100, 7);
    auto natural = idefics3_preprocess(img, p);
    REQUIRE(natural.is_ok());
    REQUIRE(natural->grid_rows == 4);
    REQUIRE(natural->grid_cols == 5);
    const size_t chunk = natural->chunk_floats();
    for (int n : {1, 2, 3, 4, 6, 9, 12, 19, 20, 21, 64, 1024}) {
        INFO("max_tiles " << n);
        p.max_tiles = n;
        auto g = idefics3_geometry(img.width, img.height, p);
        auto pre = idefics3_preprocess(img, p);
        REQUIRE(g.is_ok());
        REQUIRE(pre.is_ok());
        if (n >= 20) {
            // A budget at or above the natural grid changes nothing, bit for bit.
            CHECK(!g->capped);
            CHECK(pre->n_chunks == natural->n_chunks);
            CHECK(pre->data == natural->data);
            continue;
        }
        CHECK(g->capped);
        CHECK(pre->grid_rows * pre->grid_cols <= n);
        CHECK(pre->n_chunks == pre->grid_rows * pre->grid_cols + 1);
        CHECK(g->canvas_w == 32 * pre->grid_cols);
        CHECK(g->canvas_h == 32 * pre->grid_rows);
        CHECK((g->resized_w == g->canvas_w && g->resized_h == g->canvas_h && g->offset_x == 0 && g->offset_y == 0));
        // Reference: the whole image resized (bicubic) to the canvas, cut row-major, normalized.
        auto canvas = resize_bicubic_u8(img, g->canvas_w, g->canvas_h);
        REQUIRE(canvas.is_ok());
        std::vector<float> want(chunk);
        for (int r = 0; r < pre->grid_rows; ++r) {
            for (int c = 0; c < pre->grid_cols; ++c) {
                auto tile = crop_u8(*canvas, c * 32, r * 32, 32, 32);
                REQUIRE(tile.is_ok());
                REQUIRE(normalize_to_planar_f32(*tile, p.mean, p.std, want.data()).is_ok());
                const float* got = pre->chunk(r * pre->grid_cols + c);
                CHECK(std::vector<float>(got, got + chunk) == want);
            }
        }
        // The overview is the same whole-image view as without a budget.
        const float* ov = pre->chunk(pre->n_chunks - 1);
        const float* ov_natural = natural->chunk(natural->n_chunks - 1);
        CHECK(std::vector<float>(ov, ov + chunk) == std::vector<float>(ov_natural, ov_natural + chunk));
    }
}

TEST_CASE("capped preprocessing stretches the image over the whole canvas (no padding), by hand") {
    // 128x96 (4:3), tile 64, longest edge 256: natural 256x192 canvas, 3x4 grid. Budget 4: 2x2, a
    // 128x128 canvas. Horizontally the scale is 1 (bicubic at integer positions reproduces the
    // samples) and the image is constant vertically, so every tile pixel is known: the left
    // half (x < 64) is 40, the right 220, and nothing is black padding.
    Idefics3Params p;
    p.tile_size = 64;
    p.longest_edge = 256;
    p.max_tiles = 4;
    ImageU8 img;
    img.width = 128;
    img.height = 96;
    img.rgb.resize(img.n_bytes());
    for (int y = 0; y < 96; ++y) {
        for (int x = 0; x < 128; ++x) {
            for (int c = 0; c < 3; ++c) img.rgb[(static_cast<size_t>(y) * 128 + x) * 3 + c] = x < 64 ? 40 : 220;
        }
    }
    auto pre = idefics3_preprocess(img, p);
    REQUIRE(pre.is_ok());
    REQUIRE(pre->grid_rows == 2);
    REQUIRE(pre->grid_cols == 2);
    for (int k = 0; k < 4; ++k) {
        const float want = (static_cast<float>(k % 2 == 0 ? 40 : 220) / 255.0f - 0.5f) / 0.5f;
        const float* t = pre->chunk(k);
        int wrong = 0;
        for (size_t i = 0; i < pre->chunk_floats(); ++i) wrong += t[i] != want;
        CHECK_MESSAGE(wrong == 0, "tile " << k);
    }
}

TEST_CASE("a negative tile budget is refused with a message naming it") {
    Idefics3Params p;
    p.tile_size = 32;
    p.longest_edge = 160;
    p.max_tiles = -1;
    auto g = idefics3_geometry(100, 100, p);
    REQUIRE(!g.is_ok());
    CHECK(g.status().message().find("tile budget") != std::string::npos);
}

// ---- The VLM's max_tiles (bundled models: models/bundled/) ----

namespace {

std::string bundled(const std::string& stem, const char* part) {
    return test::source_dir() + "/models/bundled/" + stem + "-" + part + ".gguf";
}
constexpr const char* kSmol = "scenes-smolvlm-f16";
constexpr const char* kLlava = "scenes-llava-f16";

Result<std::unique_ptr<Vlm>> load(const char* stem, int max_tiles, int plan_max_tiles) {
    VlmConfig cfg;
    cfg.n_threads = 1;
    cfg.max_tiles = max_tiles;
    if (plan_max_tiles != 0) {
        std::string doc = R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [], "max_tiles": )";
        doc += std::to_string(plan_max_tiles);
        doc += "}";
        auto plan = pruning_plan_parse(doc, "plan.json");
        REQUIRE_MESSAGE(plan.is_ok(), plan.status().message());
        cfg.pruning = *plan;
    }
    return Vlm::load(bundled(stem, "text"), bundled(stem, "mmproj"), cfg);
}

ImageU8 grey(int w, int h) {
    ImageU8 img;
    img.width = w;
    img.height = h;
    img.rgb.assign(img.n_bytes(), 128);
    return img;
}

}  // namespace

TEST_CASE("VLM max_tiles: config and plan, conflicts, LLaVA refused, fewer planned tokens and bytes") {
    REQUIRE_MESSAGE(std::filesystem::exists(bundled(kSmol, "text")), "the bundled models are part of the repository");
    SUBCASE("--max-tiles and the plan's max_tiles: one, or the same value") {
        auto both_same = load(kSmol, 2, 2);
        REQUIRE_MESSAGE(both_same.is_ok(), both_same.status().message());
        CHECK((*both_same)->max_tiles() == 2);
        auto plan_only = load(kSmol, 0, 3);
        REQUIRE_MESSAGE(plan_only.is_ok(), plan_only.status().message());
        CHECK((*plan_only)->max_tiles() == 3);
        auto conflict = load(kSmol, 4, 2);
        REQUIRE(!conflict.is_ok());
        const std::string msg = conflict.status().message();
        CHECK(msg.find("max tiles 4") != std::string::npos);
        CHECK(msg.find("max_tiles 2") != std::string::npos);
        auto negative = load(kSmol, -1, 0);
        CHECK(!negative.is_ok());
    }
    SUBCASE("a model without tiles refuses any budget, naming why") {
        for (auto [cfg_tiles, plan_tiles] : {std::pair{4, 0}, std::pair{0, 4}}) {
            auto llava = load(kLlava, cfg_tiles, plan_tiles);
            REQUIRE(!llava.is_ok());
            CHECK(llava.status().message().find("does not tile") != std::string::npos);
        }
        auto plain = load(kLlava, 0, 0);
        CHECK(plain.is_ok());
    }
    SUBCASE("the prompt and the planned memory of a 1024x768 image follow the capped grid") {
        auto natural = load(kSmol, 0, 0);
        REQUIRE_MESSAGE(natural.is_ok(), natural.status().message());
        const VisionHparams& vh = (*natural)->vision().hparams();
        Idefics3Params p;
        p.tile_size = static_cast<int>(vh.image_size);
        p.longest_edge = static_cast<int>(vh.preproc_image_size);
        auto g = idefics3_geometry(1024, 768, p);
        REQUIRE(g.is_ok());
        const int natural_tiles = g->n_tiles();
        REQUIRE_MESSAGE(natural_tiles > 1, "the bundled SmolVLM must tile a 1024x768 image");
        const int64_t per_chunk = vh.n_tokens_per_chunk();
        auto prompt_natural = (*natural)->build_prompt("Describe this image.", std::vector<ImageU8>{grey(1024, 768)});
        REQUIRE(prompt_natural.is_ok());
        CHECK(prompt_natural->n_image_tokens() == per_chunk * (natural_tiles + 1));
        REQUIRE((*natural)->prepare(*prompt_natural, 8).is_ok());
        const VlmMemory m_natural = (*natural)->memory();

        auto capped = load(kSmol, 1, 0);
        REQUIRE_MESSAGE(capped.is_ok(), capped.status().message());
        auto prompt_capped = (*capped)->build_prompt("Describe this image.", std::vector<ImageU8>{grey(1024, 768)});
        REQUIRE(prompt_capped.is_ok());
        CHECK(prompt_capped->chunks.size() == 2);  // one tile + the overview
        CHECK(prompt_capped->n_image_tokens() == 2 * per_chunk);
        // Positions drop by the removed chunks' tokens and their wrapper tokens (at least one each).
        CHECK(prompt_natural->n_positions() - prompt_capped->n_positions() >= (natural_tiles - 1) * (per_chunk + 1));
        REQUIRE((*capped)->prepare(*prompt_capped, 8).is_ok());
        const VlmMemory m_capped = (*capped)->memory();
        // The KV cache holds one row per position in every layer: it shrinks with the positions.
        const double slots_natural = static_cast<double>(prompt_natural->n_positions() + 8);
        const double slots_capped = static_cast<double>(prompt_capped->n_positions() + 8);
        CHECK(static_cast<double>(m_capped.kv_cache) / static_cast<double>(m_natural.kv_cache) ==
              doctest::Approx(slots_capped / slots_natural).epsilon(1e-9));
        CHECK(m_capped.total() < m_natural.total());
        // The preprocessed image: 2 chunks instead of natural_tiles + 1.
        CHECK(prompt_capped->images[0].data.size() * static_cast<size_t>(natural_tiles + 1) ==
              prompt_natural->images[0].data.size() * 2);
    }
}
