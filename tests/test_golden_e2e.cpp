// The whole pipeline against llama-mtmd-cli's golden runs: image file ->
// decode -> preprocess -> prompt (chat template, image wrappers) -> vision
// encoder -> prefill -> greedy generation -> printed bytes.
//
// Checked exactly: the prompt's token ids and image positions (tokens.json
// "sequence"), the generated token ids (greedy.json) and the printed bytes
// (text_hex). Checked with a tolerance: prefill logits, with the bounds of
// test_golden_text (the image embeddings now come from glimpse's own encoder,
// whose error is far below them).
#include <doctest/doctest.h>

#include "models/vlm.h"
#include "runtime/json.h"
#include "test_util.h"

using namespace glimpse;

namespace {

struct E2eCase : test::GoldenCase {
    const char* text;
    const char* mmproj;
    DType kv_type;
    double max_rel;
    const char* chat_template = "";
};

void check_e2e(const E2eCase& c) {
    const std::string dir = c.set_dir();
    const std::string cdir = c.case_dir();
    auto case_json = json_parse_file(cdir + "/case.json");
    auto tokens = json_parse_file(cdir + "/tokens.json");
    auto greedy = json_parse_file(cdir + "/greedy.json");
    REQUIRE((case_json.is_ok() && tokens.is_ok() && greedy.is_ok()));
    const std::string label = c.label();
    INFO(label);

    VlmConfig cfg;
    cfg.n_threads = 2;
    cfg.kv_type = c.kv_type;
    cfg.chat_template = c.chat_template;
    auto vlm = Vlm::load(dir + "/" + c.text, dir + "/" + c.mmproj, cfg);
    REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().to_string());

    const std::vector<ImageU8> images = test::decode_golden_images(dir, *case_json);
    auto prompt = (*vlm)->build_prompt((*case_json)["prompt"].as_string(), images);
    REQUIRE_MESSAGE(prompt.is_ok(), prompt.status().to_string());
    CHECK(prompt->rendered == (*tokens)["formatted_prompt"].as_string());
    const std::vector<int64_t> seq = (*tokens)["sequence"].int_array();
    REQUIRE(prompt->ids.size() == seq.size());
    for (size_t i = 0; i < seq.size(); ++i) REQUIRE_MESSAGE(prompt->ids[i] == seq[i], "position " << i);

    std::string printed;
    GenerationStats st;
    SamplingParams greedy_sampling;
    greedy_sampling.temperature = 0;
    Status s = (*vlm)->generate(*prompt, 16, greedy_sampling, [&](std::string_view b) { printed += b; return true; }, &st);
    REQUIRE_MESSAGE(s.is_ok(), s.to_string());

    std::vector<float> ref = test::read_f32_file(cdir + "/logits_prefill.f32");
    const std::vector<float>& got = (*vlm)->last_prefill_logits();
    REQUIRE(got.size() == ref.size());
    test::ErrorStats e = test::compare(got.data(), ref.data(), ref.size());
    INFO("prefill logits rel " << e.rel);
    CHECK(e.rel <= c.max_rel);
    MESSAGE(label << ": prefill logits rel " << e.rel);

    test::check_golden_generation(**vlm, *greedy, printed);
}

}  // namespace

TEST_CASE("end to end, SmolVLM tiny f32 (PNG and JPEG inputs, two prompts)") {
    for (const char* name : {"tiny__describe", "tiny__cat-color", "tiny_wide__describe", "tiny_wide__cat-color",
                             "chelsea__describe", "chelsea__cat-color"}) {
        check_e2e({"smolvlm-tiny-f32", name, "tiny-smolvlm-text-f32.gguf", "tiny-smolvlm-mmproj-f32.gguf", DType::f16,
                   5e-4});
    }
    for (const char* name : {"tiny__describe__fa-off-kv-f32", "chelsea__describe__fa-off-kv-f32"}) {
        check_e2e({"smolvlm-tiny-f32", name, "tiny-smolvlm-text-f32.gguf", "tiny-smolvlm-mmproj-f32.gguf", DType::f32,
                   1e-5});
    }
}

TEST_CASE("end to end, SmolVLM tiny wstd0.2 (varied tokens, invalid UTF-8 output) and f16") {
    check_e2e({"smolvlm-tiny-f32-wstd0.2", "tiny__describe", "tiny-smolvlm-wstd0.2-text-f32.gguf",
               "tiny-smolvlm-wstd0.2-mmproj-f32.gguf", DType::f16, 5e-3});
    check_e2e({"smolvlm-tiny-f32-wstd0.2", "chelsea__describe", "tiny-smolvlm-wstd0.2-text-f32.gguf",
               "tiny-smolvlm-wstd0.2-mmproj-f32.gguf", DType::f16, 5e-3});
    check_e2e({"smolvlm-tiny-f32-wstd0.2", "chelsea__describe__fa-off-kv-f32", "tiny-smolvlm-wstd0.2-text-f32.gguf",
               "tiny-smolvlm-wstd0.2-mmproj-f32.gguf", DType::f32, 2e-4});
    check_e2e({"smolvlm-tiny-f16", "chelsea__describe", "tiny-smolvlm-text-f16.gguf", "tiny-smolvlm-mmproj-f16.gguf",
               DType::f16, 1e-3});
}

TEST_CASE("end to end, LLaVA tiny (CLIP with [CLS], MLP projector, vicuna template, two images, feature layer)") {
    for (const char* name : {"tiny_wide__describe", "chelsea__describe", "two-images__describe"}) {
        check_e2e({"llava-tiny-f32", name, "tiny-llava-text-f32.gguf", "tiny-llava-mmproj-f32.gguf", DType::f16, 5e-4,
                   "vicuna"});
    }
    check_e2e({"llava-tiny-f32", "chelsea__describe__feature-layer", "tiny-llava-text-f32.gguf",
               "tiny-llava-mmproj-fl-f32.gguf", DType::f16, 5e-4, "vicuna"});
}
