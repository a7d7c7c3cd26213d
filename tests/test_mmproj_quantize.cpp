// `glimpse quantize` on an mmproj file (issue 27: the int8 encoder needs int8 encoder
// weights): the bundled SmolVLM f16 mmproj quantized to Q8_0 keeps llama-quantize's "clip"
// rules (tower and connector matrices Q8_0; patch and position embeddings, norms and biases
// as they were), loads and runs, and scores within 2 points of the f16 mmproj on held-out
// scenes of the bundled preset, judged against the scenes' own ground truth (the scene
// generator's answers, not either model's outputs). The full 400-scene numbers are in
// docs/benchmarks.md ("AVX2-only CPUs"); this is the first 20 held-out scenes.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "models/vlm.h"
#include "runtime/gguf.h"
#include "test_util.h"
#include "tools/glimpse/eval.h"
#include "tools/quantize/quantize_gguf.h"
#include "tools/scenes/scene.h"

using namespace glimpse;

TEST_CASE("a Q8_0 mmproj of the bundled SmolVLM model keeps its accuracy on held-out scenes") {
    const std::string dir = test::source_dir() + "/models/bundled/";
    const std::string text = dir + "scenes-smolvlm-f16-text.gguf", f16 = dir + "scenes-smolvlm-f16-mmproj.gguf";
    REQUIRE_MESSAGE(std::filesystem::exists(f16), "the bundled models are part of the repository (models/bundled/)");
    const std::string q8 = "/tmp/glimpse-test-mmproj-q8_0-" + std::to_string(getpid()) + ".gguf";
    tools::QuantizeOptions qo;
    qo.input_path = f16;
    qo.output_path = q8;
    qo.type = "q8_0";
    const Status qs = tools::quantize_gguf(qo);
    REQUIRE_MESSAGE(qs.is_ok(), qs.to_string());

    {
        auto in = GgufFile::open(f16);
        auto out = GgufFile::open(q8);
        REQUIRE((in.is_ok() && out.is_ok()));
        int matrices = 0;
        for (const GgufTensor& t : (*in)->tensors()) {
            const GgufTensor* o = (*out)->find_tensor(t.name);
            REQUIRE_MESSAGE(o != nullptr, t.name);
            const bool matrix = t.n_dims == 2 && t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0 &&
                                t.name.find("position_embd") == std::string::npos &&
                                t.name.find("patch_embd") == std::string::npos;
            if (matrix) {
                CHECK_MESSAGE(o->type == DType::q8_0, t.name);
                ++matrices;
            } else {
                CHECK_MESSAGE(o->type == t.type, t.name << " changed type");
            }
        }
        CHECK(matrices >= 4 * 6);  // 4 layers × (q, k, v, o, fc1, fc2), plus the connector
    }

    auto score = [&](const std::string& mmproj) {
        VlmConfig cfg;
        cfg.n_threads = test::emulated() ? 1 : 2;
        auto vlm = Vlm::load(text, mmproj, cfg);
        REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().to_string());
        tools::EvalOptions opt;
        opt.seed_begin = 1000000;
        opt.seed_end = test::emulated() ? 1000005 : 1000020;
        auto preset = scenes::scene_preset("bundled");
        REQUIRE(preset.is_ok());
        opt.scene_options = *preset;
        opt.progress = false;
        auto report = tools::run_eval(**vlm, opt);
        REQUIRE_MESSAGE(report.is_ok(), report.status().to_string());
        return report->overall;
    };
    const double acc_f16 = score(f16), acc_q8 = score(q8);
    std::remove(q8.c_str());
    MESSAGE("held-out accuracy: f16 mmproj " << acc_f16 << ", q8_0 mmproj " << acc_q8);
    CHECK(acc_f16 >= 0.80);  // the bundled model works at all (91 % on 400 scenes)
    CHECK(acc_q8 >= acc_f16 - 0.02);
}
