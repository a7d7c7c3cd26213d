// The scene-based evaluation behind `glimpse eval` (a library, so tests and the
// calibration tool can run it too).
#pragma once

#include <cstdint>
#include <set>
#include <string_view>
#include <string>
#include <vector>

#include "models/vlm.h"
#include "tools/scenes/scene.h"

namespace glimpse::tools {

struct EvalOptions {
    uint64_t seed_begin = 0, seed_end = 0;  // scenes [begin, end), generated in process, or
    std::string scene_dir;                  // scenes written by glimpse-scenes (<seed>.json + image)
    scenes::SceneOptions scene_options;
    std::string caption_prompt = "Describe this image.";
    int caption_tokens = 96;  // tokens generated per caption
    int answer_tokens = 8;    // tokens generated per answer
    bool progress = true;     // progress bar on stderr when it is a terminal
    bool keep_samples = false;
    // A plan with a calibration block: every request (each scene's caption and questions) is held to
    // its budget (models/calibration_budget.h); the first over it ends the run with an error naming
    // the scene, unless over_budget (then the first is warned about on stderr and all are counted).
    bool over_budget = false;
};

struct EvalReport {
    struct Kind {
        std::string name;
        int64_t correct = 0, total = 0;
    };
    struct Sample {
        uint64_t seed;
        std::string kind, prompt, expected, answer;
    };
    int64_t scenes = 0, questions = 0, captions = 0;
    std::vector<Kind> per_kind;  // color, count, exist, position, text (those asked)
    double overall = 0;          // exact-match accuracy over all questions
    double yes_no_precision = 0, yes_no_recall = 0, yes_no_f1 = 0;  // "yes" is the positive class
    double caption_object_precision = 0, caption_object_recall = 0;  // "<size> <color> <shape>" mentions
    double caption_text_accuracy = 0;        // quoted text equals the scene's text (scenes with text)
    double caption_background_accuracy = 0;  // "on a <background> background"
    double seconds = 0;
    // Visual tokens over every scene's image: made by the encoder, and kept by the pruning plan
    // (equal without one); pruning names the plan's stage ("" without one).
    int64_t visual_tokens_in = 0, visual_tokens_kept = 0;
    // Visual tokens each decoder layer processes, averaged over layers and summed over scenes (the
    // caption prompt's prefill): the budget decoder-layer pruning spends (issue 24).
    double visual_tokens_per_layer = 0;
    std::string pruning;
    // Prefill time over every prompt (caption and questions), and the KV cache the last plan
    // holds at the end (planned bytes, sized for the longest prompt); for the pruning tables, not a
    // benchmark (docs/benchmarks.md).
    double prefill_ms = 0;
    int64_t prefills = 0;
    int64_t kv_cache_bytes = 0;
    int64_t over_budget_requests = 0;  // with EvalOptions::over_budget: requests run over a calibrated plan's budget
    std::vector<Sample> samples;
};

Result<EvalReport> run_eval(Vlm& vlm, const EvalOptions& options);

// Scoring rules, exposed for tests.
// Lower case, without surrounding spaces, quotes and final punctuation.
std::string eval_normalize_answer(std::string_view answer);
// "<size> <color> <shape>" phrases a caption names, in the scene grammar.
std::multiset<std::string> eval_caption_objects(std::string_view caption);
// The first double-quoted string of a caption ("" if none).
std::string eval_caption_text(std::string_view caption);
// The word after "on a" ("plain", "striped", ...), "" if none.
std::string eval_caption_background(std::string_view caption);
std::string eval_report_text(const EvalReport& report);
std::string eval_report_json(const EvalReport& report, const std::string& model_label);

}  // namespace glimpse::tools
