// glimpse eval's scoring: the generator's own canonical caption (an independent
// statement of the ground truth) must score perfectly, answers normalize as
// documented, and an evaluation run is deterministic.
#include <doctest/doctest.h>

#include "test_util.h"
#include "tools/glimpse/eval.h"
#include "tools/scenes/scene.h"

using namespace glimpse;
using namespace glimpse::tools;

TEST_CASE("the canonical caption of every scene names exactly its objects, text and background") {
    for (uint64_t seed = 0; seed < 300; ++seed) {
        const scenes::Scene s = scenes::scene_generate(seed);
        std::multiset<std::string> want;
        for (const scenes::SceneObject& o : s.objects) {
            want.insert(std::string(scenes::size_class_name(o.size)) + " " + std::string(scenes::color_name(o.color)) +
                        " " + std::string(scenes::shape_name(o.shape)));
        }
        REQUIRE_MESSAGE(eval_caption_objects(s.caption) == want, "seed " << seed << ": " << s.caption);
        CHECK(eval_caption_text(s.caption) == (s.text ? s.text->chars : std::string()));
        CHECK(eval_caption_background(s.caption) == scenes::background_adjective(s.background));
    }
}

TEST_CASE("answers are compared after normalization") {
    CHECK(eval_normalize_answer(" Yes.") == "yes");
    CHECK(eval_normalize_answer("\"K3\"") == "k3");
    CHECK(eval_normalize_answer("left\n") == "left");
    CHECK(eval_normalize_answer("3") == "3");
    CHECK(eval_normalize_answer("no way") == "no way");  // only surrounding noise is removed
}

TEST_CASE("an evaluation run is deterministic and counts every question") {
    const std::string g = test::golden_dir() + "/smolvlm-tiny-f32-wstd0.2";
    VlmConfig cfg;
    cfg.n_threads = 2;
    auto vlm = Vlm::load(g + "/tiny-smolvlm-wstd0.2-text-f32.gguf", g + "/tiny-smolvlm-wstd0.2-mmproj-f32.gguf", cfg);
    REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().to_string());
    EvalOptions opt;
    opt.seed_begin = 10;
    opt.seed_end = 12;
    opt.scene_options.max_side = 256;  // keep the run short
    opt.progress = false;
    opt.keep_samples = true;
    opt.caption_tokens = 12;
    auto a = run_eval(**vlm, opt);
    auto b = run_eval(**vlm, opt);
    REQUIRE(a.is_ok());
    REQUIRE(b.is_ok());
    CHECK(a->questions == 2 * opt.scene_options.qa_per_scene);
    CHECK(a->captions == 2);
    REQUIRE(a->samples.size() == b->samples.size());
    for (size_t i = 0; i < a->samples.size(); ++i) CHECK(a->samples[i].answer == b->samples[i].answer);
    CHECK(a->overall == b->overall);
    CHECK(a->caption_object_recall == b->caption_object_recall);
}
