// The calibration levers of issue 25 beyond keeps and KV precision: ToMe merging as a plan stage
// (`{"at": "encoder_layer", "method": "tome", "args": {"r": R}}`, runtime/pruning_plan.h) and the
// calibrator's ToMe and tile-cap levers (models/calibration.h).
// Oracles: `--prune tome --merge R` (VlmConfig::encoder_merge) run beside the plan (bit-identical
// ids and prefill logits), the shorthand's documented schedule worked by hand as a per-block
// list, no plan at all for r = 0, the tile-grid rule worked by hand for the calibrated geometry,
// and the planner re-run through the Vlm API (as inspect --json) on the plan the calibrator writes.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "models/calibration.h"
#include "models/vlm.h"
#include "runtime/pruning_plan.h"
#include "calibration_test_util.h"
#include "test_bundled.h"

using namespace glimpse;
using test::bundled_model;

namespace {

std::string plan_text(const std::string& stages) {
    return R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [)" + stages + "]}";
}

// The plan's refusal, which must name every piece of `needles`.
void refused(const std::string& stages, std::initializer_list<const char*> needles) {
    auto p = pruning_plan_parse(plan_text(stages), "plan.json");
    REQUIRE_FALSE(p.is_ok());
    for (const char* n : needles) {
        INFO(p.status().message());
        CHECK(p.status().message().find(n) != std::string::npos);
    }
}

// SmolVLM-256M's shape (12 encoder blocks), as test_pruning_plan.cpp's smolvlm_2x2.
PruningModelShape smolvlm_shape() {
    return {.tokens_per_tile = 64, .n_tiles = 4, .has_overview = true, .pixel_shuffle = 4, .encoder_layers = 12,
            .decoder_layers = 30};
}

struct RunResult {
    std::vector<int32_t> ids;
    std::vector<float> prefill_logits;
};

Result<std::unique_ptr<Vlm>> load(const char* stem, std::optional<PruningPlan> plan, double encoder_merge) {
    VlmConfig cfg;
    cfg.n_threads = 2;
    cfg.pruning = std::move(plan);
    cfg.encoder_merge = encoder_merge;
    return Vlm::load(bundled_model(stem, "text"), bundled_model(stem, "mmproj"), cfg);
}

RunResult run(const char* stem, std::optional<PruningPlan> plan, double encoder_merge, const ImageU8& image) {
    auto vlm = load(stem, std::move(plan), encoder_merge);
    REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().message());
    auto prompt = (*vlm)->build_prompt("What color is the largest shape?", {image});
    REQUIRE(prompt.is_ok());
    SamplingParams greedy;
    greedy.temperature = 0;
    REQUIRE((*vlm)->generate(*prompt, 3, greedy, nullptr, nullptr).is_ok());
    return {(*vlm)->last_generated(), (*vlm)->last_prefill_logits()};
}

PruningPlan parsed(const std::string& stages) {
    auto p = pruning_plan_parse(plan_text(stages), "plan.json");
    REQUIRE_MESSAGE(p.is_ok(), p.status().message());
    return *p;
}

}  // namespace

TEST_CASE("tome plan stage: reads, writes back, and refuses bad arguments naming them") {
    const PruningPlan frac = parsed(R"({"at": "encoder_layer", "method": "tome", "args": {"r": 0.25}})");
    REQUIRE(frac.stages.size() == 1);
    CHECK(frac.stages[0].site == PruneSite::encoder_layer);
    CHECK(frac.stages[0].number("r") == 0.25);
    CHECK(frac.stages[0].merge_per_block.empty());
    const PruningPlan list = parsed(R"({"at": "encoder_layer", "method": "tome", "args": {"r": [3, 0, 2]}},
        {"at": "after_projector", "method": "divprune", "keep": 0.5})");
    CHECK(list.stages[0].merge_per_block == std::vector<int>{3, 0, 2});
    CHECK(list.stages[0].number("r") == 0);
    for (const PruningPlan& p : {frac, list}) {
        auto back = pruning_plan_parse(pruning_plan_to_json(p), "written.json");
        REQUIRE_MESSAGE(back.is_ok(), back.status().message());
        CHECK(back->stages[0].merge_per_block == p.stages[0].merge_per_block);
        CHECK(back->stages[0].number("r") == p.stages[0].number("r"));
        CHECK(back->stages.size() == p.stages.size());
    }
    // Fitting: every visual token leaves the encoder (merged tokens are restored), so the next stage
    // keeps its fraction of all of them.
    auto fitted = pruning_plan_fit(list, smolvlm_shape(), "plan.json");
    REQUIRE_MESSAGE(fitted.is_ok(), fitted.status().message());
    CHECK((*fitted)[0].keep == 320);
    CHECK((*fitted)[1].keep == 160);

    refused(R"({"at": "encoder_layer", "method": "tome", "args": {"r": 1.5}})", {"stages[0].args.r", "whole number"});
    refused(R"({"at": "encoder_layer", "method": "tome", "args": {"r": -0.25}})", {"stages[0].args.r", "-0.25"});
    refused(R"({"at": "encoder_layer", "method": "tome", "args": {"r": [2, 1.5]}})", {"stages[0].args.r[1]", "integer"});
    refused(R"({"at": "encoder_layer", "method": "tome", "args": {"r": []}})", {"stages[0].args.r", "0 entries"});
    refused(R"({"at": "encoder_layer", "method": "tome", "args": {"r": "half"}})", {"stages[0].args.r", "number"});
    refused(R"({"at": "encoder_layer", "method": "tome", "args": {"k": 2}})", {"stages[0].args.k", "unknown argument"});
    refused(R"({"at": "encoder_layer", "layer": 3, "method": "tome", "args": {"r": 2}})", {"stages[0].layer", "no layer"});
    refused(R"({"at": "encoder_layer", "method": "tome", "keep": 0.5})", {"stages[0].keep", "every visual token"});
    refused(R"({"at": "after_projector", "method": "tome", "keep": 0.5})", {"stages[0].at", "encoder_layer"});
    refused(R"({"at": "encoder_layer", "layer": 1, "method": "divprune", "keep": 0.5})", {"stages[0].at", "divprune"});
    refused(R"({"at": "after_projector", "method": "divprune", "keep": 0.5},
               {"at": "encoder_layer", "method": "tome", "args": {"r": 2}})",
            {"stages[1].at", "first"});
    // Against the model: a list longer than the encoder, and the attention-tap methods (as --merge).
    auto too_long = pruning_plan_fit(parsed(R"({"at": "encoder_layer", "method": "tome", "args": {"r": [1,1,1,1,1,1,1,1,1,1,1,1,1]}})"),
                                     smolvlm_shape(), "plan.json");
    REQUIRE_FALSE(too_long.is_ok());
    CHECK(too_long.status().message().find("13 entries") != std::string::npos);
    auto taps = pruning_plan_fit(parsed(R"({"at": "encoder_layer", "method": "tome", "args": {"r": 0.25}},
        {"at": "after_projector", "method": "attn-received", "keep": 0.5})"), smolvlm_shape(), "plan.json");
    REQUIRE_FALSE(taps.is_ok());
    CHECK(taps.status().message().find("attn-received") != std::string::npos);
    // A plan built in code gets the same checks.
    PruningPlan both = list;
    both.stages[0].args = {{"r", 2, ""}};
    CHECK_FALSE(pruning_plan_check(both, "code").is_ok());
}

TEST_CASE("tome plan stage runs exactly as --prune tome --merge R on both bundled models") {
    if (test::emulated()) return;  // ISA-free plumbing; the encoder's kernels are tested per ISA in test_tome
    const ImageU8 image = test::bundled_scene_image(1001007);
    for (const char* stem : {test::kBundledSmolVlm, test::kBundledLlava}) {
        INFO(stem);
        const RunResult none = run(stem, std::nullopt, 0, image);
        const RunResult shorthand = run(stem, std::nullopt, 0.5, image);
        const RunResult plan = run(stem, parsed(R"({"at": "encoder_layer", "method": "tome", "args": {"r": 0.5}})"), 0, image);
        CHECK(plan.ids == shorthand.ids);
        CHECK(plan.prefill_logits == shorthand.prefill_logits);  // bit-identical
        CHECK(none.prefill_logits != shorthand.prefill_logits);  // the merge does change the encoder's output
        // r = 0: the same as no plan.
        const RunResult zero = run(stem, parsed(R"({"at": "encoder_layer", "method": "tome", "args": {"r": 0}})"), 0, image);
        CHECK(zero.ids == none.ids);
        CHECK(zero.prefill_logits == none.prefill_logits);
        // The shorthand's schedule worked by hand as a list (docs/pruning.md): round(0.5 x the
        // encoder's patches per chunk, [CLS] not counted) fewer after its blocks, the same count per
        // block, the first blocks taking the remainder.
        auto enc = load(stem, std::nullopt, 0);
        REQUIRE(enc.is_ok());
        const VisionHparams& h = (*enc)->vision().hparams();
        const int64_t total = (h.n_patches() + 1) / 2;  // floor(0.5 * N + 0.5)
        std::string list;
        for (int64_t l = 0; l < h.n_layer_used; ++l) {
            list += (l ? ", " : "") + std::to_string(total / h.n_layer_used + (l < total % h.n_layer_used ? 1 : 0));
        }
        const RunResult by_list =
            run(stem, parsed(R"({"at": "encoder_layer", "method": "tome", "args": {"r": [)" + list + "]}}"), 0, image);
        CHECK(by_list.prefill_logits == shorthand.prefill_logits);
        // Both ways at once: the same value is accepted, another is a conflict; tap methods are refused.
        CHECK(load(stem, parsed(R"({"at": "encoder_layer", "method": "tome", "args": {"r": 0.5}})"), 0.5).is_ok());
        auto clash = load(stem, parsed(R"({"at": "encoder_layer", "method": "tome", "args": {"r": 0.5}})"), 0.25);
        REQUIRE_FALSE(clash.is_ok());
        CHECK(clash.status().message().find("disagree") != std::string::npos);
        auto too_many = load(stem, parsed(R"({"at": "encoder_layer", "method": "tome", "args": {"r": [1000]}})"), 0);
        REQUIRE_FALSE(too_many.is_ok());
        CHECK(too_many.status().message().find("stages[0].args.r") != std::string::npos);
    }
    auto taps = load(test::kBundledLlava, parsed(R"({"at": "encoder_layer", "method": "tome", "args": {"r": 0.25}},
        {"at": "after_projector", "method": "fastervlm", "keep": 0.5})"), 0);
    REQUIRE_FALSE(taps.is_ok());
    CHECK(taps.status().message().find("fastervlm") != std::string::npos);
}

namespace {

CalibrationSettings lever_settings(const char* stem, int width, int height) {
    CalibrationSettings s;
    s.text_path = bundled_model(stem, "text");
    s.mmproj_path = bundled_model(stem, "mmproj");
    s.base.n_threads = 2;
    s.answer_tokens = 2;
    s.image_width = width;
    s.image_height = height;
    s.plan_prompt = "What color is the largest shape?";
    s.projector_method.clear();
    s.decoder_levers = false;
    s.kv_levers = false;
    s.tome_levers = true;
    s.tile_levers = true;
    return s;
}

}  // namespace

TEST_CASE("calibration tile caps: the distinct tile counts of the capped-grid rule, worked by hand") {
    // docs/pruning.md "Tile budget": 1024x768 on SmolVLM-256M (3 x 4): caps 6..11 -> 2 x 3,
    // 4..5 -> 2 x 2, 1..3 -> 1 x 1.
    CHECK(calibration_tile_caps(1024, 768, 3, 4) == std::vector<int>{6, 4, 1});
    // Square 2 x 2: 3 and 2 give 1 x 1 (aspect error 0 against ln 2 for 1 x 2).
    CHECK(calibration_tile_caps(480, 480, 2, 2) == std::vector<int>{1});
    // 2:1 image on a 1 x 2 grid: cap 1 -> 1 x 1, the only step.
    CHECK(calibration_tile_caps(800, 400, 1, 2) == std::vector<int>{1});
    // One tile: nothing to cap.
    CHECK(calibration_tile_caps(100, 100, 1, 1).empty());
}

TEST_CASE("calibration levers: tile caps and merge steps per layout; planned bytes as the plan runs") {
    if (test::emulated()) return;  // model loads only; no ISA-specific code
    const ImageU8 image = test::bundled_scene_image(1001007);
    std::vector<CalibrationSample> samples = {{image, "What color is the largest shape?"}};
    // SmolVLM bundled at 480 x 480: a 2 x 2 grid (5 chunks). Square image: caps 3 and 2 give 1 x 1
    // (aspect error 0 against ln 2 for 1 x 2), so the one step below 4 tiles is 1.
    {
        auto cal = Calibrator::create(lever_settings(test::kBundledSmolVlm, 480, 480), samples);
        REQUIRE_MESSAGE(cal.is_ok(), cal.status().message());
        CHECK((*cal)->natural_tiles() == 4);
        CHECK((*cal)->tile_caps() == std::vector<int>{1});
        CHECK((*cal)->merge_steps() == std::vector<double>{0.0, 0.25, 0.5});
        const CalibrationConfig small = (*cal)->smallest();
        CHECK(small.max_tiles == 1);
        CHECK(small.encoder_merge == 0.5);
        // The planned bytes the search ranks are those of the written plan, run as a plan file runs.
        for (const CalibrationConfig& c : {(*cal)->unpruned(), small}) {
            auto point = (*cal)->plan_memory(c);
            REQUIRE(point.is_ok());
            auto plan = calibration_plan(c, (*cal)->settings());
            REQUIRE(plan.is_ok());
            CHECK(plan->max_tiles == c.max_tiles);
            CHECK(point->memory.total() == test::planned_bytes(*plan, (*cal)->settings()));
        }
        // Each lever alone saves planned bytes: the tile cap (image buffers, tokens, KV, decoder
        // activations) and ToMe (the encoder's arena only: its later blocks hold fewer rows).
        CalibrationConfig tiles_only = (*cal)->unpruned(), merge_only = (*cal)->unpruned();
        tiles_only.max_tiles = 1;
        merge_only.encoder_merge = 0.5;
        auto base = (*cal)->plan_memory((*cal)->unpruned());
        auto t = (*cal)->plan_memory(tiles_only);
        auto m = (*cal)->plan_memory(merge_only);
        REQUIRE((base.is_ok() && t.is_ok() && m.is_ok()));
        CHECK(t->memory.image_buffers < base->memory.image_buffers);
        CHECK(t->memory.kv_cache < base->memory.kv_cache);
        CHECK(m->memory.vision_arena < base->memory.vision_arena);
        CHECK(m->memory.text_arena == base->memory.text_arena);
        CHECK(m->memory.kv_cache == base->memory.kv_cache);
        CHECK(m->memory.image_buffers == base->memory.image_buffers);
    }
    // LLaVA has no tiles: no tile lever; ToMe is a lever there too.
    {
        auto cal = Calibrator::create(lever_settings(test::kBundledLlava, 480, 480), samples);
        REQUIRE_MESSAGE(cal.is_ok(), cal.status().message());
        CHECK((*cal)->natural_tiles() == 0);
        CHECK((*cal)->tile_caps().empty());
        CHECK((*cal)->smallest().max_tiles == 0);
        CHECK((*cal)->merge_steps() == std::vector<double>{0.0, 0.25, 0.5});
    }
}
