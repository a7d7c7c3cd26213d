// The bundled tiny VLMs (models/bundled/, trained by tools/train/): glimpse must run them exactly as
// they were trained. Oracles: the reference written by tools/train/export_gguf.py from the training
// shards and PyTorch — the prompt ids the model was trained on, a hash of the normalized pixel
// tiles, PyTorch's logits at the last prompt position (exported weights, ggml's roundings emulated,
// f32 KV cache) and its greedy answer — and the scene generator's ground truth for accuracy.
//
// $GLIMPSE_BUNDLED_DIR overrides the model directory (for checking freshly exported models).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "models/vlm.h"
#include "runtime/json.h"
#include "test_bundled.h"
#include "test_util.h"
#include "tools/scenes/scene.h"

using namespace glimpse;

namespace {

std::string bundled_dir() {
    if (const char* d = std::getenv("GLIMPSE_BUNDLED_DIR")) return d;
    return test::bundled_dir();
}

struct BundledModel {
    const char* stem;  // <stem>-text.gguf, <stem>-mmproj.gguf, <stem>-reference.json
};
constexpr BundledModel kSmolVlm{"scenes-smolvlm-f16"};
constexpr BundledModel kLlava{"scenes-llava-f16"};

std::unique_ptr<Vlm> load(const BundledModel& m) {
    const std::string dir = bundled_dir();
    VlmConfig cfg;
    // Under qemu one thread: the pool's workers spin, and ctest runs two tests at once.
    cfg.n_threads = test::emulated() ? 1 : 2;
    cfg.kv_type = DType::f32;  // the PyTorch reference keeps K/V in f32
    auto vlm = Vlm::load(dir + "/" + m.stem + "-text.gguf", dir + "/" + m.stem + "-mmproj.gguf", cfg);
    REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().message());
    return std::move(*vlm);
}

uint64_t fnv1a64(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

std::string hex64(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

// Greedy answer (printable text, trimmed) of `question` about `image`.
std::string answer(Vlm& vlm, const std::string& question, const ImageU8& image, std::vector<int32_t>* ids = nullptr) {
    auto prompt = vlm.build_prompt(question, {image});
    REQUIRE_MESSAGE(prompt.is_ok(), prompt.status().message());
    std::string text;
    SamplingParams greedy;
    greedy.temperature = 0;
    const Status s = vlm.generate(*prompt, 64, greedy, [&](std::string_view b) { text += b; return true; }, nullptr);
    REQUIRE_MESSAGE(s.is_ok(), s.message());
    if (ids) *ids = vlm.last_generated();
    const size_t b = text.find_first_not_of(' '), e = text.find_last_not_of(' ');
    return b == std::string::npos ? std::string() : text.substr(b, e - b + 1);
}

void check_reference(const BundledModel& m) {
    const std::string ref_path = bundled_dir() + "/" + m.stem + "-reference.json";
    auto ref = json_parse_file(ref_path);
    REQUIRE_MESSAGE(ref.is_ok(), ref.status().message());
    std::unique_ptr<Vlm> vlm = load(m);
    auto preset = scenes::scene_preset((*ref)["preset"].as_string());
    REQUIRE(preset.is_ok());
    const JsonValue& cases = (*ref)["cases"];
    REQUIRE(cases.size() >= 4);
    // Under emulation the first two cases (a few minutes of qemu otherwise); they already run
    // every kernel the model uses.
    const size_t n_cases = test::emulated() ? 2 : cases.size();
    double worst_rel = 0;
    for (size_t ci = 0; ci < n_cases; ++ci) {
        const JsonValue& c = cases.items()[ci];
        const uint64_t seed = static_cast<uint64_t>(c["seed"].as_int());
        const std::string question = c["prompt"].as_string();
        CAPTURE(seed);
        CAPTURE(question);
        const scenes::Scene scene = scenes::scene_generate(seed, *preset);
        const ImageU8 image = test::scene_image(scene.image);
        auto prompt = vlm->build_prompt(question, {image});
        REQUIRE(prompt.is_ok());

        // The ids and pixels the model was trained on are what glimpse builds at inference.
        const std::vector<int64_t> want_ids = c["prompt_ids"].int_array();
        REQUIRE(prompt->ids.size() == want_ids.size());
        for (size_t i = 0; i < want_ids.size(); ++i) REQUIRE(prompt->ids[i] == want_ids[i]);
        REQUIRE(prompt->images.size() == 1);
        CHECK(prompt->images[0].n_chunks == c["n_chunks"].as_int());
        const std::vector<float>& px = prompt->images[0].data;
        CHECK(hex64(fnv1a64(px.data(), px.size() * sizeof(float))) == c["tiles_fnv1a"].as_string());

        // Logits at the last prompt position: glimpse vs PyTorch.
        SamplingParams greedy;
        greedy.temperature = 0;
        const std::vector<int64_t> want_answer = c["answer_ids"].int_array();
        std::string text;
        REQUIRE(vlm->generate(*prompt, static_cast<int>(want_answer.size()) + 4, greedy,
                              [&](std::string_view b) { text += b; return true; }, nullptr)
                    .is_ok());
        const std::vector<double> ref_logits_d = c["prefill_logits"].number_array();
        const std::vector<float> ref_logits(ref_logits_d.begin(), ref_logits_d.end());
        const std::vector<float>& got = vlm->last_prefill_logits();
        REQUIRE(got.size() == ref_logits.size());
        const test::ErrorStats e = test::compare(got.data(), ref_logits.data(), got.size());
        MESSAGE(std::string(m.stem) << " seed " << seed << " '" << question << "': prefill logits rel " << e.rel << " rms " << e.rms
                       << " max|d| " << e.max_abs_diff);
        CHECK(e.rel < 2e-3);
        CHECK(e.cosine > 0.99999);
        worst_rel = std::max(worst_rel, e.rel);

        // PyTorch's teacher-forced argmax is the reference answer here only when the model is
        // right; glimpse's greedy tokens must follow it as long as it does.
        const std::vector<int64_t> torch_greedy = c["greedy_ids"].int_array();
        const std::vector<int32_t>& gen = vlm->last_generated();
        size_t agree = 0;
        while (agree < torch_greedy.size() && agree < want_answer.size() && torch_greedy[agree] == want_answer[agree])
            ++agree;  // PyTorch's greedy path coincides with the teacher-forced one up to here
        for (size_t i = 0; i < agree && i < gen.size(); ++i) CHECK(gen[i] == torch_greedy[i]);
        if (agree == want_answer.size()) {
            // PyTorch answers correctly, ending with end-of-generation: glimpse must print the answer.
            CHECK(gen.size() == want_answer.size() - 1);
            CHECK(text == " " + c["answer"].as_string());
        }
    }
    MESSAGE(std::string(m.stem) << ": worst prefill-logit rel difference glimpse vs PyTorch " << worst_rel);
}

struct KindScore {
    int correct = 0, total = 0;
    std::map<std::string, int> answers;  // expected answer -> how often
};

std::map<std::string, KindScore> heldout_accuracy(const BundledModel& m, uint64_t from, uint64_t to) {
    std::unique_ptr<Vlm> vlm = load(m);
    auto preset = scenes::scene_preset("bundled");
    REQUIRE(preset.is_ok());
    std::map<std::string, KindScore> score;
    for (uint64_t seed = from; seed < to; ++seed) {
        const scenes::Scene scene = scenes::scene_generate(seed, *preset);
        const ImageU8 image = test::scene_image(scene.image);
        for (const scenes::QaPair& qa : scene.qa) {
            const std::string got = answer(*vlm, qa.question, image);
            KindScore& k = score[std::string(scenes::qa_kind_name(qa.kind))];
            k.total += 1;
            k.correct += got == qa.answer ? 1 : 0;
            k.answers[qa.answer] += 1;
        }
    }
    return score;
}

// `min_overall` is the model's accuracy on 400 held-out scenes (docs/models.md) less about three
// standard errors of a 240-question sample, so the test fails when glimpse runs the model worse
// than it was measured, not on sampling noise. Independently of that number, the model must beat
// by a wide margin a blind guesser that gives each question kind its most frequent answer: that
// is what "reads the image" means.
void check_accuracy(const BundledModel& m, double min_overall) {
    // Held-out seeds (training used seeds below 1,000,000); 6 questions per scene.
    const auto score = heldout_accuracy(m, 1000000, 1000040);
    int c = 0, t = 0, blind = 0;
    for (const auto& [kind, k] : score) {
        MESSAGE(std::string(m.stem) << " " << kind << ": " << k.correct << "/" << k.total);
        c += k.correct;
        t += k.total;
        int most = 0;
        for (const auto& [ans, n] : k.answers) most = std::max(most, n);
        blind += most;
    }
    const double overall = static_cast<double>(c) / t, blind_overall = static_cast<double>(blind) / t;
    MESSAGE(std::string(m.stem) << " overall: " << c << "/" << t << " = " << overall
                                << "; blind most-frequent-answer guess: " << blind_overall);
    CHECK(overall >= min_overall);
    CHECK(overall >= blind_overall + 0.2);
}

}  // namespace

TEST_CASE("bundled SmolVLM-layout model: training prompt, pixels and PyTorch logits match glimpse") {
    check_reference(kSmolVlm);
}

TEST_CASE("bundled LLaVA-layout model: training prompt, pixels and PyTorch logits match glimpse") {
    check_reference(kLlava);
}

TEST_CASE("bundled models answer held-out scene questions through glimpse") {
    // 40 scenes x 6 questions. Measured on 400 held-out scenes (2400 questions, glimpse, f16):
    // SmolVLM layout 88.1 %, LLaVA layout 89.0 %; one standard error on 240 questions is 2.1 %
    // and 2.0 %.
    check_accuracy(kSmolVlm, 0.80);
    check_accuracy(kLlava, 0.80);
}
