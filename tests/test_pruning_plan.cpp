// The pruning plan (runtime/pruning_plan.h, schema in docs/pruning.md): good documents read as
// written, bad ones are refused with a message naming the key and the value, fitting resolves
// counts by hand-computed arithmetic, and plans survive a write/read round trip.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/pruning_plan.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {

// SmolVLM-256M on a 1024x768 image: a 2x2 grid of 512^2 tiles + the overview, 64 tokens each.
PruningModelShape smolvlm_2x2() {
    return {.tokens_per_tile = 64, .n_tiles = 4, .has_overview = true, .encoder_has_cls = false, .pixel_shuffle = 4,
            .encoder_layers = 12, .decoder_layers = 30};
}

// LLaVA-1.5: one 336^2 view, 576 tokens, CLIP with [CLS].
PruningModelShape llava() {
    return {.tokens_per_tile = 576, .n_tiles = 1, .has_overview = false, .encoder_has_cls = true, .pixel_shuffle = 1,
            .encoder_layers = 24, .decoder_layers = 32};
}

std::string plan_with_stages(const std::string& stages) {
    return R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [)" + stages + "]}";
}

PruningPlan parse_ok(const std::string& text) {
    auto r = pruning_plan_parse(text, "plan.json");
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string() << "\n" << text);
    return *r;
}

// The document is refused, and the message holds every needle (key path, offending value).
void refused(const std::string& text, std::initializer_list<const char*> needles) {
    auto r = pruning_plan_parse(text, "plan.json");
    REQUIRE_MESSAGE(!r.is_ok(), "accepted: " << text);
    const std::string msg = r.status().message();
    CHECK_MESSAGE(msg.rfind("plan.json", 0) == 0, msg);
    for (const char* needle : needles)
        CHECK_MESSAGE(msg.find(needle) != std::string::npos, "'" << std::string(needle) << "' not in: " << msg);
}

void fit_refused(const PruningPlan& plan, const PruningModelShape& model, std::initializer_list<const char*> needles) {
    auto r = pruning_plan_fit(plan, model, "plan.json");
    REQUIRE_MESSAGE(!r.is_ok(), "fitted");
    for (const char* needle : needles) {
        CHECK_MESSAGE(r.status().message().find(needle) != std::string::npos,
                      "'" << std::string(needle) << "' not in: " << r.status().message());
    }
}

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("glimpse_test_pruning_plan_" + std::to_string(::getpid()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string write(const std::string& name, const std::string& text) const {
        const fs::path p = path / name;
        std::ofstream(p, std::ios::binary) << text;
        return p.string();
    }
};

}  // namespace

TEST_CASE("pruning plan: a full document reads as written, defaults filled") {
    const PruningPlan plan = parse_ok(R"({
      "format": "glimpse.pruning-plan",
      "version": 1,
      "model": "SmolVLM-256M-Instruct",
      "stages": [
        {"at": "after_projector", "method": "divprune", "keep": 0.5,
         "tiles": {"split": "overview_scores", "overview_share": 0.25}},
        {"at": "decoder_layer", "layer": 2, "method": "pyramiddrop", "keep_count": 40, "args": {"debias": true}},
        {"at": "decoder_layer", "layer": 8, "method": "pyramiddrop", "keep_count": 20}
      ],
      "kv_cache": {"type": "mixed", "high_precision_share": 0.25},
      "max_tiles": 4,
      "calibration": {"budget_bytes": 314572800, "image_size": [1024, 768], "prompt_tokens": 30,
                      "answer_tokens": 8, "set": {"kind": "scenes", "description": "scenes 2000:2100", "count": 100},
                      "loss": {"answer_agreement": 0.97, "mean_kl": 0.021}, "search": "greedy"}
    })");
    CHECK(plan.version == 1);
    CHECK(plan.model == "SmolVLM-256M-Instruct");
    REQUIRE(plan.stages.size() == 3);
    CHECK(plan.stages[0].site == PruneSite::after_projector);
    CHECK(plan.stages[0].method == "divprune");
    CHECK(plan.stages[0].keep_fraction == 0.5);
    CHECK(plan.stages[0].keep_count == 0);
    CHECK(plan.stages[0].tile_split == TileSplit::overview_scores);
    CHECK(plan.stages[0].overview_share == 0.25);
    CHECK(plan.stages[1].site == PruneSite::decoder_layer);
    CHECK(plan.stages[1].layer == 2);
    CHECK(plan.stages[1].keep_count == 40);
    CHECK(plan.stages[1].number("debias") == 1);
    CHECK(plan.stages[2].number("debias") == 0);  // default
    CHECK(plan.kv_cache_type == "mixed");
    CHECK(plan.kv_high_precision_share == 0.25);
    CHECK(plan.max_tiles == 4);
    REQUIRE(plan.calibration.has_value());
    CHECK(plan.calibration->budget_bytes == 314572800);
    CHECK(plan.calibration->image_width == 1024);
    CHECK(plan.calibration->image_height == 768);
    CHECK(plan.calibration->set_kind == "scenes");
    CHECK(plan.calibration->set_count == 100);
    CHECK(*plan.calibration->answer_agreement == 0.97);
    CHECK(*plan.calibration->mean_kl == 0.021);
    CHECK(plan.calibration->search == "greedy");

    // Defaults of each method's arguments.
    const PruningPlan defaults = parse_ok(plan_with_stages(
        R"({"at": "after_projector", "method": "visionzip", "keep": 0.25},
           {"at": "after_projector", "method": "random", "keep_count": 10, "args": {"seed": 7}})"));
    CHECK(defaults.stages[0].number("layer") == -2);
    CHECK(defaults.stages[0].number("contextual_share") == doctest::Approx(10.0 / 64.0));
    CHECK(defaults.stages[0].text("score") == "auto");
    CHECK(defaults.stages[1].number("seed") == 7);
}

TEST_CASE("pruning plan: fitting resolves keep counts against the model") {
    // SmolVLM 2x2 + overview: 5 x 64 = 320 tokens. keep 0.5 -> 160; keep 0.3 -> 96; then 40, 20.
    const PruningPlan plan = parse_ok(plan_with_stages(
        R"({"at": "after_projector", "method": "divprune", "keep": 0.3},
           {"at": "decoder_layer", "layer": 2, "method": "fastv", "keep_count": 40},
           {"at": "decoder_layer", "layer": -3, "method": "fastv", "keep_count": 20})"));
    auto fitted = pruning_plan_fit(plan, smolvlm_2x2(), "plan.json");
    REQUIRE_MESSAGE(fitted.is_ok(), fitted.status().to_string());
    REQUIRE(fitted->size() == 3);
    CHECK((*fitted)[0].tokens_in == 320);
    CHECK((*fitted)[0].keep == 96);  // 0.3 * 320
    CHECK((*fitted)[1].tokens_in == 96);
    CHECK((*fitted)[1].keep == 40);
    CHECK((*fitted)[1].layer == 2);
    CHECK((*fitted)[2].layer == 27);  // -3 of 30 layers
    CHECK((*fitted)[2].keep == 20);
    // Rounding: half up. 0.125 * 576 = 72 exactly; 0.0013 * 576 = 0.75 -> 1; 0.1 * 320 = 32.
    auto one = [](const PruningModelShape& m, double keep) {
        auto p = pruning_plan_from_shorthand("divprune", keep);
        REQUIRE(p.is_ok());
        auto f = pruning_plan_fit(*p, m, "cli");
        REQUIRE_MESSAGE(f.is_ok(), f.status().to_string());
        return (*f)[0].keep;
    };
    CHECK(one(llava(), 0.125) == 72);
    CHECK(one(llava(), 0.0013) == 1);
    CHECK(one(smolvlm_2x2(), 0.1) == 32);
    CHECK(one(smolvlm_2x2(), 1.0) == 320);
    CHECK(one(smolvlm_2x2(), 64) == 64);  // a count
    // fastervlm needs [CLS]: fits LLaVA, layer -2 = 22 of 24.
    auto cls = pruning_plan_from_shorthand("fastervlm", 0.25);
    REQUIRE(cls.is_ok());
    CHECK(pruning_plan_fit(*cls, llava(), "cli").is_ok());
}

TEST_CASE("pruning plan: what does not fit the model is refused, naming why") {
    auto cli = [](const char* method, double keep) {
        auto p = pruning_plan_from_shorthand(method, keep);
        REQUIRE_MESSAGE(p.is_ok(), p.status().to_string());
        return *p;
    };
    fit_refused(cli("fastervlm", 0.25), smolvlm_2x2(), {"stages[0].method", "fastervlm", "[CLS]"});
    fit_refused(cli("vtc-cls", 0.25), smolvlm_2x2(), {"[CLS]"});
    fit_refused(parse_ok(plan_with_stages(
                    R"({"at": "after_projector", "method": "visionzip", "keep": 0.25, "args": {"score": "cls"}})")),
                smolvlm_2x2(), {"visionzip", "[CLS]"});
    fit_refused(cli("divprune", 0.001), smolvlm_2x2(), {"stages[0].keep", "0.001", "320", "rounds to 0"});
    fit_refused(cli("divprune", 400), smolvlm_2x2(), {"stages[0].keep_count", "400", "320"});
    fit_refused(parse_ok(plan_with_stages(R"({"at": "after_projector", "method": "uniform", "keep_count": 100},
                                             {"at": "decoder_layer", "layer": 1, "method": "fastv", "keep_count": 150})")),
                smolvlm_2x2(), {"stages[1].keep_count", "150", "100"});
    fit_refused(parse_ok(plan_with_stages(R"({"at": "decoder_layer", "layer": 31, "method": "fastv", "keep": 0.5})")),
                llava(), {"stages[0].layer", "31", "32 layers"});
    fit_refused(parse_ok(plan_with_stages(R"({"at": "decoder_layer", "layer": 10, "method": "fastv", "keep": 0.5},
                                             {"at": "decoder_layer", "layer": -25, "method": "fastv", "keep": 0.25})")),
                llava(), {"stages[1].layer", "7", "10"});
    fit_refused(parse_ok(plan_with_stages(
                    R"({"at": "after_projector", "method": "fastervlm", "keep": 0.5, "args": {"layer": 24}})")),
                llava(), {"stages[0].args.layer", "24", "24 layers"});
    fit_refused(parse_ok(plan_with_stages(
                    R"({"at": "after_projector", "method": "attn-received", "keep": 0.5, "args": {"layer": -13}})")),
                smolvlm_2x2(), {"args.layer", "-13"});
    fit_refused(parse_ok(plan_with_stages(
                    R"({"at": "after_projector", "method": "vtc-cls", "keep": 0.5, "args": {"start_layer": 23}})")),
                llava(), {"start_layer", "23"});
    fit_refused(parse_ok(plan_with_stages(
                    R"({"at": "after_projector", "method": "dart", "keep_count": 3, "args": {"pivots": 8}})")),
                llava(), {"pivots", "3"});
    fit_refused(
        parse_ok(plan_with_stages(
            R"({"at": "after_projector", "method": "divprune", "keep": 0.5, "tiles": {"split": "overview_scores"}})")),
        llava(), {"tiles.split", "overview"});
}

TEST_CASE("pruning plan: bad documents are refused with the key and the value") {
    refused("", {"plan.json"});
    refused("[1, 2]", {"plan", "object"});
    refused(R"({"format": "something-else", "version": 1, "stages": []})", {"format", "not a glimpse pruning plan"});
    refused(R"({"version": 1, "stages": []})", {"format"});
    refused(R"({"format": "glimpse.pruning-plan", "stages": []})", {"version", "missing"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 2, "stages": []})", {"version 2", "newer", "(1)"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 0, "stages": []})", {"version", "0"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1.5, "stages": []})", {"version", "1.5", "integer"});
    refused(R"({"format": "glimpse.pruning-plan", "version": "1", "stages": []})", {"version", "number"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1})", {"stages"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1, "stages": {}})", {"stages", "array"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [], "budget": 3})", {"unknown key 'budget'"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1, "version": 1, "stages": []})",
            {"'version' appears twice"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "magic", "keep": 0.5})"),
            {"stages[0].method", "unknown method 'magic'", "divprune"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep": 0})"),
            {"stages[0].keep", "0 keeps nothing"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep": 1.5})"),
            {"stages[0].keep", "1.5", "[0, 1]"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep": -0.5})"),
            {"stages[0].keep", "-0.5"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep_count": 0})"),
            {"stages[0].keep_count", "0 keeps nothing"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep_count": 2.5})"),
            {"stages[0].keep_count", "2.5", "integer"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep": 0.5, "keep_count": 3})"),
            {"stages[0]", "exactly one"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune"})"), {"stages[0]", "exactly one"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep": 1e400})"),
            {"plan.json", "number"});  // the JSON reader refuses non-finite literals
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep": 0.5, "speed": 3})"),
            {"stages[0]", "unknown key 'speed'"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "random", "keep": 0.5, "args": {"sed": 1}})"),
            {"stages[0].args.sed", "seed"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "random", "keep": 0.5, "args": {"seed": -1}})"),
            {"stages[0].args.seed", "-1"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep": 0.5, "args": {"seed": 1}})"),
            {"args.seed", "its arguments: positions"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep": 0.5, "args": {"positions": "renumber"}})"),
            {"args.positions", "renumber", "run|original|compact"});
    refused(
        plan_with_stages(R"({"at": "after_projector", "method": "visionzip", "keep": 0.5, "args": {"score": "max"}})"),
        {"args.score", "'max'", "auto|cls|received"});
    refused(plan_with_stages(
                R"({"at": "after_projector", "method": "visionzip", "keep": 0.5, "args": {"contextual_share": 1}})"),
            {"args.contextual_share", "1"});
    refused(
        plan_with_stages(R"({"at": "after_projector", "method": "sparsevlm", "keep": 0.5, "args": {"recycle": 1}})"),
        {"args.recycle", "true or false"});
    refused(plan_with_stages(R"({"at": "middle", "method": "divprune", "keep": 0.5})"), {"stages[0].at", "'middle'"});
    refused(plan_with_stages(R"({"method": "divprune", "keep": 0.5})"), {"stages[0]", "'at'"});
    refused(plan_with_stages(R"({"at": "after_projector", "layer": 3, "method": "divprune", "keep": 0.5})"),
            {"stages[0].layer", "no layer"});
    refused(plan_with_stages(R"({"at": "decoder_layer", "method": "fastv", "keep": 0.5})"), {"stages[0]", "'layer'"});
    refused(plan_with_stages(R"({"at": "decoder_layer", "layer": 2, "method": "divprune", "keep": 0.5})"),
            {"stages[0].at", "divprune cannot run at decoder_layer"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "fastv", "keep": 0.5})"),
            {"stages[0].at", "fastv cannot run at after_projector"});
    refused(plan_with_stages(R"({"at": "encoder_layer", "layer": 3, "method": "divprune", "keep": 0.5})"),
            {"stages[0].at", "encoder_layer"});
    refused(plan_with_stages(R"({"at": "decoder_layer", "layer": 2, "method": "fastv", "keep": 0.5},
                                {"at": "after_projector", "method": "divprune", "keep": 0.25})"),
            {"stages[1].at", "pipeline order"});
    refused(plan_with_stages(R"({"at": "decoder_layer", "layer": 4, "method": "fastv", "keep": 0.5},
                                {"at": "decoder_layer", "layer": 4, "method": "fastv", "keep": 0.25})"),
            {"stages[1].layer", "4"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep": 0.5,
                                 "tiles": {"split": "biggest"}})"),
            {"tiles.split", "'biggest'"});
    refused(plan_with_stages(R"({"at": "after_projector", "method": "divprune", "keep": 0.5,
                                 "tiles": {"overview_share": 2}})"),
            {"tiles.overview_share", "2"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [], "kv_cache": {"type": "int3"}})",
            {"kv_cache.type", "'int3'"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [],
                "kv_cache": {"type": "q8_0", "high_precision_share": 0.5}})",
            {"kv_cache.high_precision_share", "mixed"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [], "max_tiles": 0})", {"max_tiles", "0"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [], "calibration": {"budget": 1}})",
            {"calibration", "unknown key 'budget'"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [],
                "calibration": {"image_size": [1024]}})",
            {"calibration.image_size", "[width, height]"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [],
                "calibration": {"loss": {"answer_agreement": 1.2}}})",
            {"calibration.loss.answer_agreement", "1.2"});
    refused(R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [],
                "calibration": {"set": {"kind": "videos"}}})",
            {"calibration.set.kind", "'videos'"});
}

TEST_CASE("pruning plan: --prune/--keep shorthand and plans built in code") {
    auto p = pruning_plan_from_shorthand("divprune", 0.25);
    REQUIRE(p.is_ok());
    REQUIRE(p->stages.size() == 1);
    CHECK(p->stages[0].site == PruneSite::after_projector);
    CHECK(p->stages[0].keep_fraction == 0.25);
    auto seeded = pruning_plan_from_shorthand("random", 0.5);
    REQUIRE(seeded.is_ok());
    CHECK(seeded->stages[0].number("seed") == 0);

    auto msg = [](const Result<PruningPlan>& r) { return r.is_ok() ? std::string("accepted") : r.status().message(); };
    CHECK(msg(pruning_plan_from_shorthand("magic", 0.5)).find("unknown method 'magic'") != std::string::npos);
    CHECK(msg(pruning_plan_from_shorthand("divprune", 0)).find("--keep 0") != std::string::npos);
    CHECK(msg(pruning_plan_from_shorthand("divprune", -1)).find("--keep -1") != std::string::npos);
    CHECK(msg(pruning_plan_from_shorthand("divprune", 2.5)).find("whole number") != std::string::npos);
    CHECK(msg(pruning_plan_from_shorthand("divprune", std::nan(""))).find("--keep nan") != std::string::npos);
    CHECK(msg(pruning_plan_from_shorthand("divprune", INFINITY)).find("--keep inf") != std::string::npos);
    CHECK(msg(pruning_plan_from_shorthand("fastv", 0.5)).find("--plan") != std::string::npos);

    // A plan built in code with non-finite numbers is refused by the same checks.
    PruningPlan plan = *pruning_plan_from_shorthand("divprune", 0.5);
    plan.stages[0].keep_fraction = std::nan("");
    CHECK(pruning_plan_check(plan, "code").message().find("stages[0].keep") != std::string::npos);
    plan.stages[0].keep_fraction = 0.5;
    plan.stages[0].overview_share = INFINITY;
    CHECK(pruning_plan_check(plan, "code").message().find("overview_share") != std::string::npos);
    plan.stages[0].overview_share = 0.5;
    plan.version = 3;
    CHECK(pruning_plan_check(plan, "code").message().find("version 3") != std::string::npos);
    CHECK(pruning_plan_fit(plan, smolvlm_2x2(), "code").status().code() == StatusCode::unsupported);
}

TEST_CASE("pruning plan: written plans read back to the same plan") {
    const std::string text = R"({"format": "glimpse.pruning-plan", "version": 1, "model": "m \"q\"",
      "stages": [
        {"at": "after_projector", "method": "visionzip", "keep": 0.3333333333333333,
         "args": {"score": "received", "contextual_share": 0.2}, "tiles": {"split": "overview_scores", "overview_share": 0.4}},
        {"at": "decoder_layer", "layer": -5, "method": "sparsevlm", "keep_count": 17, "args": {"recycle": false}}],
      "kv_cache": {"type": "mixed", "high_precision_share": 0.125}, "max_tiles": 9,
      "calibration": {"budget_bytes": 1000000, "image_size": [640, 480], "prompt_tokens": 12, "answer_tokens": 3,
                      "set": {"kind": "images", "description": "my photos", "count": 50},
                      "loss": {"answer_agreement": 0.9, "mean_kl": 0.1}, "search": "threshold"}})";
    const PruningPlan a = parse_ok(text);
    const std::string written = pruning_plan_to_json(a);
    const PruningPlan b = parse_ok(written);
    CHECK(pruning_plan_to_json(b) == written);
    REQUIRE(b.stages.size() == 2);
    CHECK(b.model == "m \"q\"");
    CHECK(b.stages[0].keep_fraction == a.stages[0].keep_fraction);  // exact double round trip
    CHECK(b.stages[0].text("score") == "received");
    CHECK(b.stages[0].number("contextual_share") == 0.2);
    CHECK(b.stages[0].tile_split == TileSplit::overview_scores);
    CHECK(b.stages[0].overview_share == 0.4);
    CHECK(b.stages[1].layer == -5);
    CHECK(b.stages[1].keep_count == 17);
    CHECK(b.stages[1].number("recycle") == 0);
    CHECK(b.kv_cache_type == "mixed");
    CHECK(b.kv_high_precision_share == 0.125);
    CHECK(b.max_tiles == 9);
    REQUIRE(b.calibration.has_value());
    CHECK(b.calibration->set_description == "my photos");
    CHECK(*b.calibration->mean_kl == 0.1);
    CHECK(b.calibration->search == "threshold");
}

TEST_CASE("pruning plan: files") {
    TempDir tmp;
    const std::string good =
        tmp.write("good.json", plan_with_stages(R"({"at": "after_projector", "method": "uniform", "keep": 0.5})"));
    auto r = pruning_plan_read_file(good);
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    CHECK(r->stages[0].method == "uniform");

    auto bad = pruning_plan_read_file(
        tmp.write("bad.json", plan_with_stages(R"({"at": "after_projector", "method": "x", "keep": 1})")));
    REQUIRE(!bad.is_ok());
    CHECK(bad.status().message().find("bad.json: stages[0].method") != std::string::npos);

    auto missing = pruning_plan_read_file((tmp.path / "missing.json").string());
    REQUIRE(!missing.is_ok());
    CHECK(missing.status().message().find("missing.json") != std::string::npos);

    auto dir = pruning_plan_read_file(tmp.path.string());
    REQUIRE(!dir.is_ok());
    CHECK(dir.status().message().find(tmp.path.string()) != std::string::npos);

    const std::string fifo = (tmp.path / "fifo").string();
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto from_fifo = pruning_plan_read_file(fifo);  // refused, not blocked on
    CHECK(!from_fifo.is_ok());

    auto huge = pruning_plan_read_file(tmp.write("huge.json", std::string(kPruningPlanMaxFileBytes + 1, ' ')));
    REQUIRE(!huge.is_ok());
    CHECK(huge.status().code() == StatusCode::out_of_range);
    CHECK(huge.status().message().find("at most") != std::string::npos);

    auto binary = pruning_plan_read_file(tmp.write("binary.json", std::string("\x89PNG\r\n\x1a\n", 8)));
    CHECK(!binary.is_ok());
}

TEST_CASE("pruning plan: every truncation and byte change of a good plan is read or refused cleanly") {
    // A cheap deterministic fuzz: no crash, no hang; a refusal names the file; anything accepted
    // passes the checks and writes back to a document that reads back identically.
    const std::string good = R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [
      {"at": "after_projector", "method": "visionzip", "keep": 0.25, "args": {"contextual_share": 0.2},
       "tiles": {"split": "overview_scores", "overview_share": 0.5}},
      {"at": "decoder_layer", "layer": 2, "method": "fastv", "keep_count": 9}],
      "kv_cache": {"type": "mixed", "high_precision_share": 0.5}, "max_tiles": 4,
      "calibration": {"budget_bytes": 1000, "image_size": [64, 48], "loss": {"mean_kl": 0.5}}})";
    auto try_text = [](const std::string& text) {
        auto r = pruning_plan_parse(text, "fuzz.json");
        if (!r.is_ok()) {
            CHECK_MESSAGE(r.status().message().rfind("fuzz.json", 0) == 0, r.status().message());
            return;
        }
        CHECK(pruning_plan_check(*r, "fuzz.json").is_ok());
        const std::string written = pruning_plan_to_json(*r);
        auto again = pruning_plan_parse(written, "written");
        REQUIRE_MESSAGE(again.is_ok(), again.status().to_string() << "\n" << written);
        CHECK(pruning_plan_to_json(*again) == written);
    };
    for (size_t cut = 0; cut < good.size(); ++cut) try_text(good.substr(0, cut));
    const char replacements[] = {'0', '9', '-', '.', 'e', '"', '{', '}', '[', ']', ',', ':', ' ', '\0', '\xff', 'a'};
    for (size_t i = 0; i < good.size(); ++i) {
        for (char c : replacements) {
            std::string text = good;
            text[i] = c;
            try_text(text);
        }
    }
}

// Hostile documents (the fuzz seeds of tests/fuzz/corpus/pruning_plan/ as doctest cases): each is
// refused with a message that starts with the file's name and names what is wrong, or, where the
// value is legal, read exactly. Never a crash, a hang or a silent rounding.
TEST_CASE("pruning plan: hostile documents are refused clearly") {
    auto refused_with = [](const std::string& text, std::initializer_list<const char*> needles) {
        auto r = pruning_plan_parse(text, "plan.json");
        REQUIRE_MESSAGE(!r.is_ok(), "accepted: " << text.substr(0, 200));
        const std::string msg = r.status().message();
        CHECK_MESSAGE(msg.rfind("plan.json", 0) == 0, msg);
        for (const char* n : needles) CHECK_MESSAGE(msg.find(n) != std::string::npos, "'" << n << "' not in: " << msg);
    };
    const std::string head = R"({"format": "glimpse.pruning-plan", "version": 1, )";
    auto stage = [](const std::string& body) { return plan_with_stages(body); };
    // Deep nesting inside args: refused by the JSON reader's depth limit or as an unknown argument.
    std::string deep = std::string(100000, '[') + std::string(100000, ']');
    refused_with(stage(R"({"at": "after_projector", "method": "random", "keep": 0.5, "args": {"seed": )" + deep + "}}"), {});
    refused_with(stage(R"({"at": "after_projector", "method": "random", "keep": 0.5, "args": {"x": )" +
                       std::string(300, '{') + std::string(300, '}') + "}}"),
                 {});
    // Duplicate keys, at the top, in a stage and in args.
    refused_with(stage(R"({"at": "after_projector", "method": "random", "keep": 0.5, "keep": 0.25})"), {"'keep' appears twice"});
    refused_with(stage(R"({"at": "after_projector", "method": "random", "keep": 0.5, "args": {"seed": 1, "seed": 2}})"),
                 {"args.seed", "appears twice"});
    refused_with(head + R"("stages": [], "stages": []})", {"'stages' appears twice"});
    // Numbers at the edges: a subnormal keep rounds to 0 tokens; counts, versions and layers far
    // out of range; a seed above 2^53 that a double cannot hold exactly.
    {
        // A subnormal keep is a fraction in (0, 1], so the document reads; fitting refuses it:
        // it rounds to 0 tokens of any model.
        auto tiny = pruning_plan_parse(stage(R"({"at": "after_projector", "method": "divprune", "keep": 1e-320})"), "plan.json");
        REQUIRE(tiny.is_ok());
        auto fit = pruning_plan_fit(*tiny, smolvlm_2x2(), "plan.json");
        REQUIRE(!fit.is_ok());
        CHECK_MESSAGE(fit.status().message().find("stages[0].keep") != std::string::npos, fit.status().message());
    }
    refused_with(stage(R"({"at": "after_projector", "method": "divprune", "keep_count": 1e300})"), {"stages[0].keep_count"});
    refused_with(R"({"format": "glimpse.pruning-plan", "version": 1e27, "stages": []})", {"version"});
    refused_with(stage(R"({"at": "decoder_layer", "layer": -2147483649, "method": "fastv", "keep": 0.5})"),
                 {"stages[0].layer"});
    refused_with(stage(R"({"at": "decoder_layer", "layer": 2147483648, "method": "fastv", "keep": 0.5})"),
                 {"stages[0].layer"});
    refused_with(stage(R"({"at": "after_projector", "method": "random", "keep": 0.5, "args": {"seed": 9007199254740993}})"),
                 {"stages[0].args.seed"});
    refused_with(stage(R"({"at": "after_projector", "method": "visionzip", "keep": 0.5, "args": {"layer": -2147483649}})"),
                 {"stages[0].args.layer"});
    // 257 stages: more than a plan may hold.
    std::string many;
    for (int i = 0; i < 257; ++i) many += std::string(i ? "," : "") + R"({"at": "decoder_layer", "layer": )" + std::to_string(i) + R"(, "method": "fastv", "keep": 0.5})";
    refused_with(stage(many), {"stages"});
    // A NUL inside the method name, and bytes that are not UTF-8.
    refused_with(stage(R"({"at": "after_projector", "method": "div\u0000prune", "keep": 0.5})"), {"stages[0].method", "NUL"});
    refused_with(stage("{\"at\": \"after_projector\", \"method\": \"div\xff\xfeprune\", \"keep\": 0.5}"),
                 {"stages[0].method", "UTF-8"});
    refused_with(head + "\"model\": \"\xc3\x28\", \"stages\": []}", {"model", "UTF-8"});
    refused_with(head + "\"model\": \"\xed\xa0\x80\", \"stages\": []}", {"model", "UTF-8"});  // a surrogate
    CHECK(pruning_plan_parse(head + "\"model\": \"SmolVLM \xe2\x80\x94 256M \xf0\x9f\x90\xb1\", \"stages\": []}", "plan.json").is_ok());
    // calibration.image_size of the wrong shape or values.
    refused_with(head + R"("stages": [], "calibration": {"image_size": [0, -1]}})", {"calibration.image_size"});
    refused_with(head + R"("stages": [], "calibration": {"image_size": "1024x768"}})", {"calibration.image_size"});
    refused_with(head + R"("stages": [], "calibration": {"image_size": [1024, 768, 3]}})", {"calibration.image_size"});
    refused_with(head + R"("stages": [], "calibration": {"image_size": [1e300, 768]}})", {"calibration.image_size"});
    // A truncated calibration object.
    refused_with(head + R"("stages": [], "calibration": {"budget_bytes": 1000, "loss": {"mean_kl": 0.)", {});
    refused_with(head + R"("stages": [], "calibration": {"set": {"kind": "scenes", "count": )", {});
}
