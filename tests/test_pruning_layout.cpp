// models/pruning_layout.h: the PruningModelShape and the overview-token -> tile map of the two
// layouts, from hand-written hyperparameters and geometry worked out by hand.
#include <doctest/doctest.h>

#include <numeric>

#include "models/pruning_layout.h"
#include "ops/prune_select.h"

using namespace glimpse;

namespace {

VisionHparams smolvlm_vision() {
    VisionHparams v;
    v.projector = ProjectorType::idefics3;
    v.image_size = 512;
    v.patch_size = 16;
    v.scale_factor = 4;
    v.n_layer = 12;
    v.n_layer_used = 12;
    return v;
}

VisionHparams llava_vision() {
    VisionHparams v;
    v.projector = ProjectorType::mlp;
    v.image_size = 336;
    v.patch_size = 14;
    v.n_layer = 24;
    v.n_layer_used = 23;  // features from layer -2: llama.cpp runs 23 blocks
    v.has_class_embedding = true;
    return v;
}

TextHparams text_with_layers(int n) {
    TextHparams t;
    t.n_layer = n;
    return t;
}

}  // namespace

TEST_CASE("pruning layout: SmolVLM 1024x768 -> 4x3 tiles + overview of 8x8 tokens") {
    Idefics3Params params;
    params.tile_size = 512;
    params.longest_edge = 2048;
    auto g = idefics3_geometry(1024, 768, params);
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
    Idefics3Params params;
    params.tile_size = 64;
    params.longest_edge = 128;
    auto g = idefics3_geometry(128, 96, params);  // canvas 128x128, image at y 16..112
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
