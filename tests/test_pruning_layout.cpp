// models/pruning_layout.h: the PruningModelShape and the overview-token -> tile map of the two
// layouts, from hand-written hyperparameters and geometry worked out by hand.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>

#include "models/pruning_layout.h"
#include "ops/prune_select.h"

using namespace glimpse;

namespace {

VisionHparams smolvlm_vision() {
    return {.projector = ProjectorType::idefics3, .image_size = 512, .patch_size = 16, .n_layer = 12, .scale_factor = 4,
            .n_layer_used = 12};
}

VisionHparams llava_vision() {
    // n_layer_used: features from layer -2, so llama.cpp runs 23 blocks
    return {.projector = ProjectorType::mlp, .image_size = 336, .patch_size = 14, .n_layer = 24,
            .has_class_embedding = true, .n_layer_used = 23};
}

TextHparams text_with_layers(int n) {
    TextHparams t;
    t.n_layer = n;
    return t;
}

}  // namespace

TEST_CASE("pruning layout: SmolVLM 1024x768 -> 4x3 tiles + overview of 8x8 tokens") {
    auto g = idefics3_geometry(1024, 768, {.tile_size = 512, .longest_edge = 2048});
    REQUIRE(g.is_ok());
    // s = min(2048/1024, 2048/768) = 2: a 2048x1536 canvas, exactly filled: 3 rows x 4 columns.
    REQUIRE(g->grid_rows == 3);
    REQUIRE(g->grid_cols == 4);
    auto shape = pruning_shape_idefics3(smolvlm_vision(), text_with_layers(30), *g);
    REQUIRE_MESSAGE(shape.is_ok(), shape.status().to_string());
    CHECK(shape->tokens_per_tile == 64);  // (512 / 16 / 4)^2
    CHECK(shape->n_tiles == 12);
    CHECK(shape->has_overview);
    CHECK_FALSE(shape->encoder_has_cls);
    CHECK(shape->pixel_shuffle == 4);
    CHECK(shape->encoder_layers == 12);
    CHECK(shape->decoder_layers == 30);
    CHECK(shape->visual_tokens() == 13 * 64);

    // Overview token (r, c) centre: canvas x = (c + 0.5) * 256 -> column c / 2; canvas
    // y = (r + 0.5) * 192 -> row floor((r + 0.5) * 0.375) = 0,0,0,1,1,2,2,2.
    auto tiles = idefics3_overview_token_tiles(*g, 8);
    REQUIRE(tiles.is_ok());
    const int rows[8] = {0, 0, 0, 1, 1, 2, 2, 2};
    for (int r = 0; r < 8; ++r) {
        for (int c = 0; c < 8; ++c) CHECK_MESSAGE((*tiles)[r * 8 + c] == rows[r] * 4 + c / 2, r << "," << c);
    }

    // HiRED's split with it: keep 208 of 832, overview share 0.5 -> overview min(104, 64) = 64;
    // the other 144 by the overview's top 32 tokens. Scores make tokens 0..31 (rows 0-3) the top:
    // tiles 0-3 hold 6 of them each (rows 0-2), tiles 4-7 hold 2 each (row 3): 144 * 6/32 = 27,
    // 144 * 2/32 = 9.
    std::vector<float> scores(64);
    for (int i = 0; i < 64; ++i) scores[i] = 100.0f - i;
    std::vector<int32_t> tokens(13, 64), keep(13);
    REQUIRE(
        split_keep_budget_by_overview(tokens.data(), 13, scores.data(), tiles->data(), 0.5, 208, keep.data()).is_ok());
    CHECK(std::vector<int>(keep.begin(), keep.end()) == std::vector<int>{27, 27, 27, 27, 9, 9, 9, 9, 0, 0, 0, 0, 64});
}

TEST_CASE("pruning layout: a letterboxed canvas maps overview tokens to the tiles holding the image") {
    auto g = idefics3_geometry(128, 96, {.tile_size = 64, .longest_edge = 128});  // canvas 128x128, image at y 16..112
    REQUIRE(g.is_ok());
    auto tiles = idefics3_overview_token_tiles(*g, 4);
    REQUIRE(tiles.is_ok());
    // x = (c + 0.5) * 32 -> columns 0,0,1,1; y = 16 + (r + 0.5) * 24 = 28, 52, 76, 100 -> rows 0,0,1,1.
    CHECK(*tiles == std::vector<int32_t>{0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3});
    CHECK_FALSE(idefics3_overview_token_tiles(*g, 0).is_ok());
}

TEST_CASE("pruning layout: LLaVA-1.5 single view with [CLS]; layers past the feature layer refused") {
    auto shape = pruning_shape_llava(llava_vision(), text_with_layers(32));
    REQUIRE_MESSAGE(shape.is_ok(), shape.status().to_string());
    CHECK(shape->tokens_per_tile == 576);
    CHECK(shape->n_tiles == 1);
    CHECK_FALSE(shape->has_overview);
    CHECK(shape->encoder_has_cls);
    CHECK(shape->pixel_shuffle == 1);
    CHECK(shape->encoder_layers == 24);
    CHECK(shape->encoder_layers_run == 23);
    CHECK(shape->visual_tokens() == 576);

    // fastervlm reads layer -2 = 22, the feature layer: fits. attn-received's default -1 = 23 is a
    // block glimpse never runs for this model.
    auto fastervlm = pruning_plan_from_shorthand("fastervlm", 0.25);
    REQUIRE(fastervlm.is_ok());
    CHECK(pruning_plan_fit(*fastervlm, *shape, "cli").is_ok());
    auto received = pruning_plan_from_shorthand("attn-received", 0.25);
    REQUIRE(received.is_ok());
    auto fitted = pruning_plan_fit(*received, *shape, "cli");
    REQUIRE_FALSE(fitted.is_ok());
    CHECK_MESSAGE(fitted.status().message().find("blocks 0..22 only") != std::string::npos, fitted.status().message());

    // Mismatched layouts are refused.
    CHECK_FALSE(pruning_shape_llava(smolvlm_vision(), text_with_layers(30)).is_ok());
    Idefics3Geometry g;
    CHECK_FALSE(pruning_shape_idefics3(llava_vision(), text_with_layers(32), g).is_ok());
    VisionHparams odd = smolvlm_vision();
    odd.image_size = 500;
    auto bad = visual_tokens_per_side(odd);
    REQUIRE_FALSE(bad.is_ok());
    CHECK(bad.status().message().find("500") != std::string::npos);
}

TEST_CASE("pruning layout: HiRED's counts from synthetic overview score maps (one tile's region, ties, shares 0 and 1)") {
    // A 2 x 2 grid of 64 px tiles filled by a square image (no padding): overview token (r, c) of
    // the 4 x 4 grid lies over tile (r / 2) * 2 + c / 2. Each chunk has 16 tokens; 80 in all.
    auto g = idefics3_geometry(128, 128, {.tile_size = 64, .longest_edge = 128});
    REQUIRE(g.is_ok());
    REQUIRE(g->n_tiles() == 4);
    auto counts = [&](const std::vector<float>& scores, double share, int64_t keep) {
        auto c = hired_chunk_keep_counts(*g, 4, scores.data(), share, keep);
        REQUIRE_MESSAGE(c.is_ok(), c.status().message());
        return *c;
    };
    // The overview's top round(0.25 * 16) = 4 tokens are exactly tile 3's region (rows 2-3,
    // columns 2-3): with share 0.75 and keep 16 the overview keeps 12 and tile 3 all 4 others.
    std::vector<float> in_tile3(16, 0.0f);
    for (int r = 2; r < 4; ++r) {
        for (int c = 2; c < 4; ++c) in_tile3[r * 4 + c] = 1.0f + r + c;
    }
    CHECK(counts(in_tile3, 0.75, 16) == std::vector<int64_t>{0, 0, 0, 4, 12});
    // More than the tile holds (keep 40: the overview is full at 16, the tiles get 24): tile 3 is
    // full at 16; the other 8 go by tokens over tiles 0-2 (2.67 each: floors 2, the two leftover
    // units to the lower tiles on equal remainders).
    CHECK(counts(in_tile3, 0.75, 40) == std::vector<int64_t>{3, 3, 2, 16, 16});
    // Ties: equal scores rank by index, so the top 4 are row 0 (tiles 0, 0, 1, 1): 4 -> 2 + 2.
    const std::vector<float> flat(16, 0.5f);
    CHECK(counts(flat, 0.75, 16) == std::vector<int64_t>{2, 2, 0, 0, 12});
    // NaN ranks last: a NaN at token 15 (tile 3) leaves tile 3's other 3 tokens and the best of
    // the zero scores (token 0, tile 0: the lower index).
    std::vector<float> with_nan = in_tile3;
    with_nan[15] = std::nanf("");
    CHECK(counts(with_nan, 0.75, 16) == std::vector<int64_t>{1, 0, 0, 3, 12});
    // Share 0: the overview keeps nothing and every overview token counts (4 per tile): whatever
    // the scores, 32 -> 8 per tile. Share 1: the overview keeps all it holds, the tiles split the
    // rest by their tokens.
    for (const std::vector<float>* s : {static_cast<const std::vector<float>*>(&in_tile3), &flat}) {
        CHECK(counts(*s, 0.0, 32) == std::vector<int64_t>{8, 8, 8, 8, 0});
        CHECK(counts(*s, 1.0, 32) == std::vector<int64_t>{4, 4, 4, 4, 16});
    }
    CHECK_FALSE(hired_split_reads_scores(0.0, 16));
    CHECK_FALSE(hired_split_reads_scores(1.0, 16));
    CHECK(hired_split_reads_scores(0.5, 16));
    CHECK(hired_split_reads_scores(0.95, 16));        // floor(0.05 * 16 + 0.5) = 1 token
    CHECK_FALSE(hired_split_reads_scores(0.97, 16));  // floor(0.03 * 16 + 0.5) = 0 tokens
    // The geometry of a preprocessed image is the one it was made with.
    PreprocessedImage pre;
    pre.tile_size = 64;
    pre.grid_rows = pre.grid_cols = 2;
    pre.resized_w = 128;
    pre.resized_h = 96;
    pre.offset_y = 16;
    auto from_pre = idefics3_overview_token_tiles(idefics3_geometry_of(pre), 4);
    REQUIRE(from_pre.is_ok());
    CHECK(*from_pre == std::vector<int32_t>{0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3});  // the letterbox case above
}
