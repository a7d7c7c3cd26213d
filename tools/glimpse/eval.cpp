// glimpse eval: accuracy of a model on procedural scenes (tools/scenes).
//
// For every scene: one caption ("Describe this image." by default) and the
// scene's question–answer pairs, asked verbatim, answered greedily. Reports
// exact-match accuracy per question kind, yes/no precision/recall/F1 (POPE),
// and how well captions name the scene's objects, text and background.
#include "tools/glimpse/eval.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "models/calibration_budget.h"
#include "runtime/json.h"
#include "tools/scenes/scene.h"

namespace glimpse::tools {
namespace {

std::string normalize_answer(std::string_view s) {
    std::string out;
    for (char c : s) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    auto is_trim = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '.' || c == '!' || c == '"'; };
    while (!out.empty() && is_trim(out.back())) out.pop_back();
    size_t b = 0;
    while (b < out.size() && is_trim(out[b])) ++b;
    return out.substr(b);
}

std::vector<std::string> words_of(std::string_view s) {
    std::vector<std::string> words;
    std::string cur;
    for (char c : s) {
        if (std::isalnum(static_cast<unsigned char>(c))) {
            cur.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        } else if (!cur.empty()) {
            words.push_back(cur);
            cur.clear();
        }
    }
    if (!cur.empty()) words.push_back(cur);
    return words;
}

// Objects named in a caption of the scene grammar: "<size> <color> <shape>" triples.
std::multiset<std::string> caption_objects(std::string_view caption) {
    std::multiset<std::string> found;
    const std::vector<std::string> w = words_of(caption);
    auto is_size = [](const std::string& x) { return x == "small" || x == "medium" || x == "large"; };
    for (size_t i = 0; i + 2 < w.size(); ++i) {
        if (!is_size(w[i])) continue;
        bool color = false, shape = false;
        for (int c = 0; c < scenes::kColorCount; ++c) color |= w[i + 1] == scenes::color_name(static_cast<scenes::Color>(c));
        for (int s = 0; s < scenes::kShapeCount; ++s) shape |= w[i + 2] == scenes::shape_name(static_cast<scenes::Shape>(s));
        if (color && shape) found.insert(w[i] + " " + w[i + 1] + " " + w[i + 2]);
    }
    return found;
}

std::string quoted_text(std::string_view caption) {
    const size_t a = caption.find('"');
    if (a == std::string_view::npos) return "";
    const size_t b = caption.find('"', a + 1);
    return b == std::string_view::npos ? "" : std::string(caption.substr(a + 1, b - a - 1));
}

std::string background_word(std::string_view caption) {
    const std::vector<std::string> w = words_of(caption);
    for (size_t i = 0; i + 2 < w.size(); ++i) {
        if (w[i] == "on" && (w[i + 1] == "a" || w[i + 1] == "an")) return w[i + 2];
    }
    return "";
}

// One scene as the evaluation needs it, from the generator or from a directory.
struct EvalScene {
    uint64_t seed = 0;
    ImageU8 image;
    std::multiset<std::string> objects;  // "<size> <color> <shape>"
    bool has_text = false;
    std::string text;
    std::string background_adjective;
    struct Qa {
        std::string kind, question, answer;
    };
    std::vector<Qa> qa;
};

EvalScene from_generator(uint64_t seed, const scenes::SceneOptions& opts) {
    scenes::Scene scene = scenes::scene_generate(seed, opts);
    EvalScene e;
    e.seed = seed;
    e.image.width = scene.image.width;
    e.image.height = scene.image.height;
    e.image.rgb = std::move(scene.image.rgb);
    for (const scenes::SceneObject& o : scene.objects) {
        e.objects.insert(std::string(scenes::size_class_name(o.size)) + " " + std::string(scenes::color_name(o.color)) +
                         " " + std::string(scenes::shape_name(o.shape)));
    }
    if (scene.text) {
        e.has_text = true;
        e.text = scene.text->chars;
    }
    e.background_adjective = std::string(scenes::background_adjective(scene.background));
    for (const scenes::QaPair& qa : scene.qa) {
        e.qa.push_back({std::string(scenes::qa_kind_name(qa.kind)), qa.question, qa.answer});
    }
    return e;
}

Result<EvalScene> from_json_file(const std::string& path) {
    GLIMPSE_ASSIGN_OR_RETURN(JsonValue j, json_parse_file(path));
    EvalScene e;
    e.seed = static_cast<uint64_t>(j["seed"].as_int());
    const std::string image = j["image"].as_string();
    GLIMPSE_CHECK_OR_RETURN(!image.empty(), parse_error, "%s: no \"image\" entry", path.c_str());
    const std::string image_path = (std::filesystem::path(path).parent_path() / image).string();
    GLIMPSE_ASSIGN_OR_RETURN(e.image, image_decode_file(image_path));
    for (const JsonValue& o : j["objects"].items()) {
        e.objects.insert(o["size"].as_string() + " " + o["color"].as_string() + " " + o["shape"].as_string());
    }
    if (j["text"].is_object()) {
        e.has_text = true;
        e.text = j["text"]["string"].as_string();
    }
    const std::string bg = j["background"].as_string();
    for (int b = 0; b < scenes::kBackgroundKindCount; ++b) {
        const auto kind = static_cast<scenes::BackgroundKind>(b);
        if (bg == scenes::background_name(kind)) e.background_adjective = std::string(scenes::background_adjective(kind));
    }
    GLIMPSE_CHECK_OR_RETURN(!e.background_adjective.empty(), parse_error, "%s: unknown background '%s'", path.c_str(),
                            bg.c_str());
    for (const JsonValue& qa : j["qa"].items()) {
        e.qa.push_back({qa["kind"].as_string(), qa["question"].as_string(), qa["answer"].as_string()});
    }
    return e;
}

Result<std::vector<std::string>> scene_json_files(const std::string& dir) {
    std::error_code ec;
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        const std::string p = entry.path().string();
        if (entry.path().extension() == ".json") files.push_back(p);
    }
    GLIMPSE_CHECK_OR_RETURN(!ec, io_error, "%s: cannot list: %s", dir.c_str(), ec.message().c_str());
    GLIMPSE_CHECK_OR_RETURN(!files.empty(), invalid_argument, "%s: no scene .json files", dir.c_str());
    std::sort(files.begin(), files.end());
    return files;
}

struct KindCount {
    int64_t correct = 0, total = 0;
};

void progress(bool tty, int64_t done, int64_t total, double seconds) {
    if (!tty) return;
    const int width = 30;
    const int filled = total ? static_cast<int>(width * done / total) : width;
    std::fprintf(stderr, "\r[%.*s%.*s] %lld/%lld scenes  %.1f s", filled, "##############################",
                 width - filled, "..............................", static_cast<long long>(done),
                 static_cast<long long>(total), seconds);
    if (done == total) std::fputc('\n', stderr);
    std::fflush(stderr);
}

}  // namespace

Result<EvalReport> run_eval(Vlm& vlm, const EvalOptions& opt) {
    std::vector<std::string> files;
    if (!opt.scene_dir.empty()) {
        GLIMPSE_ASSIGN_OR_RETURN(files, scene_json_files(opt.scene_dir));
    } else {
        GLIMPSE_RETURN_IF_ERROR(scenes::scene_options_validate(opt.scene_options));
        GLIMPSE_CHECK_OR_RETURN(opt.seed_end > opt.seed_begin, invalid_argument, "empty seed range %llu:%llu",
                                static_cast<unsigned long long>(opt.seed_begin),
                                static_cast<unsigned long long>(opt.seed_end));
    }
    EvalReport r;
    if (const PruneStage* ps = vlm.pruning_stage()) {
        char desc[160];
        // HiRED's tile split is part of the method's label ("divprune (hired a=0.5) keep 0.25").
        const std::string method = ps->tile_split == TileSplit::overview_scores
                                       ? str_printf("%s (hired a=%g)", ps->method.c_str(), ps->overview_share)
                                       : ps->method;
        if (ps->keep_count > 0) std::snprintf(desc, sizeof desc, "%s keep_count %lld", method.c_str(), static_cast<long long>(ps->keep_count));
        else std::snprintf(desc, sizeof desc, "%s keep %g", method.c_str(), ps->keep_fraction);
        r.pruning = desc;
        if (vlm.original_positions()) r.pruning += " original ids";
    }
    for (const PruneStage& ds : vlm.decoder_stages()) {  // decoder-layer stages (issue 24)
        char desc[160];
        if (ds.keep_count > 0) std::snprintf(desc, sizeof desc, "%s@L%d keep_count %lld", ds.method.c_str(), ds.layer, static_cast<long long>(ds.keep_count));
        else std::snprintf(desc, sizeof desc, "%s@L%d keep %g", ds.method.c_str(), ds.layer, ds.keep_fraction);
        r.pruning += (r.pruning.empty() ? "" : " + ") + std::string(desc);
        for (const PruneArg& a : ds.args) {
            if (a.name == "positions") r.pruning += " " + a.text + " ids";
        }
    }
    if (vlm.vision_merge().any()) {  // ToMe inside the encoder (issue 27)
        const std::vector<int64_t> counts = vision_merge_token_counts(vlm.vision().hparams(), vlm.vision_merge());
        r.pruning += (r.pruning.empty() ? "" : " + ") +
                     (vlm.encoder_merge() > 0 ? str_printf("tome merge %g", vlm.encoder_merge())
                                              : std::string("tome per-block")) +  // a plan's per-block list
                     str_printf(" (encoder tokens %lld -> %lld)", static_cast<long long>(counts.front()),
                                static_cast<long long>(counts.back()));
    }
    std::map<std::string, KindCount> kinds;
    int64_t tp = 0, fp = 0, fn = 0;
    int64_t cap_matched = 0, cap_gt = 0, cap_pred = 0, text_ok = 0, text_total = 0, bg_ok = 0;
    SamplingParams greedy;
    greedy.temperature = 0;
    const bool tty = opt.progress && isatty(fileno(stderr));
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t n_scenes =
        files.empty() ? static_cast<int64_t>(opt.seed_end - opt.seed_begin) : static_cast<int64_t>(files.size());
    // A calibrated plan's budget, per request: scenes differ in size, questions in length.
    auto check_budget = [&](const VlmPrompt& prompt, const EvalScene& scene, int n_predict, const std::string& what) {
        BudgetRequest request;
        request.label = str_printf("scene %llu (%s)", static_cast<unsigned long long>(scene.seed), what.c_str());
        request.image_sizes = {{scene.image.width, scene.image.height}};
        request.n_predict = n_predict;
        std::string warning;
        GLIMPSE_RETURN_IF_ERROR(check_calibrated_budget(vlm, prompt, request, opt.over_budget, &warning));
        if (!warning.empty() && r.over_budget_requests++ == 0) {
            std::fprintf(stderr, "%sglimpse: %s (said once; counted at the end)\n", tty ? "\n" : "", warning.c_str());
        }
        return Status::ok();
    };

    for (int64_t i = 0; i < n_scenes; ++i) {
        EvalScene scene;
        if (files.empty()) {
            scene = from_generator(opt.seed_begin + static_cast<uint64_t>(i), opt.scene_options);
        } else {
            GLIMPSE_ASSIGN_OR_RETURN(scene, from_json_file(files[static_cast<size_t>(i)]));
        }
        GLIMPSE_ASSIGN_OR_RETURN(PreprocessedImage pre, vlm.preprocess_image(scene.image));

        // One encoder pass per scene, shared by the caption and every question.
        GLIMPSE_ASSIGN_OR_RETURN(VlmPrompt cap_prompt,
                                 vlm.build_prompt(opt.caption_prompt, std::vector<PreprocessedImage>{pre}));
        GenerationStats st;
        GLIMPSE_ASSIGN_OR_RETURN(std::vector<float> embd, vlm.encode_images(cap_prompt, &st));
        r.visual_tokens_in += cap_prompt.n_image_tokens_in();
        r.visual_tokens_kept += cap_prompt.n_image_tokens();
        std::string caption;
        GLIMPSE_RETURN_IF_ERROR(check_budget(cap_prompt, scene, opt.caption_tokens, "caption"));
        GLIMPSE_RETURN_IF_ERROR(vlm.generate(cap_prompt, opt.caption_tokens, greedy,
                                             [&](std::string_view b) { caption += b; return true; }, &st, &embd));
        if (st.decoder_layers > 0) {
            r.visual_tokens_per_layer +=
                static_cast<double>(st.visual_rows_layer_sum) / static_cast<double>(st.decoder_layers);
        }
        const std::multiset<std::string> got = caption_objects(caption);
        std::vector<std::string> common;
        std::set_intersection(scene.objects.begin(), scene.objects.end(), got.begin(), got.end(),
                              std::back_inserter(common));
        cap_matched += static_cast<int64_t>(common.size());
        cap_gt += static_cast<int64_t>(scene.objects.size());
        cap_pred += static_cast<int64_t>(got.size());
        if (scene.has_text) {
            ++text_total;
            text_ok += quoted_text(caption) == scene.text;
        }
        bg_ok += background_word(caption) == scene.background_adjective;
        r.captions += 1;
        if (opt.keep_samples) r.samples.push_back({scene.seed, "caption", opt.caption_prompt, "", caption});

        for (size_t q = 0; q < scene.qa.size(); ++q) {
            const EvalScene::Qa& qa = scene.qa[q];
            GLIMPSE_ASSIGN_OR_RETURN(VlmPrompt prompt, vlm.build_prompt(qa.question, std::vector<PreprocessedImage>{pre}));
            GLIMPSE_RETURN_IF_ERROR(check_budget(prompt, scene, opt.answer_tokens, str_printf("question %zu", q + 1)));
            std::string answer;
            GLIMPSE_RETURN_IF_ERROR(vlm.generate(prompt, opt.answer_tokens, greedy,
                                                 [&](std::string_view b) { answer += b; return true; }, &st, &embd));
            const bool ok = normalize_answer(answer) == normalize_answer(qa.answer);
            KindCount& k = kinds[qa.kind];
            k.total += 1;
            k.correct += ok;
            if (qa.kind == "exist") {
                const bool truth = normalize_answer(qa.answer) == "yes";
                const bool said_yes = normalize_answer(answer) == "yes";
                tp += truth && said_yes;
                fn += truth && !said_yes;
                fp += !truth && said_yes;
            }
            if (opt.keep_samples) r.samples.push_back({scene.seed, qa.kind, qa.question, qa.answer, answer});
        }
        r.prefill_ms += st.prefill_ms;
        r.prefills += 1 + static_cast<int64_t>(scene.qa.size());
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        progress(tty, i + 1, n_scenes, secs);
    }

    int64_t all_ok = 0, all = 0;
    for (const auto& [kind, c] : kinds) {
        r.per_kind.push_back({kind, c.correct, c.total});
        all_ok += c.correct;
        all += c.total;
    }
    r.overall = all ? static_cast<double>(all_ok) / static_cast<double>(all) : 0;
    r.questions = all;
    r.scenes = n_scenes;
    r.yes_no_precision = tp + fp ? static_cast<double>(tp) / static_cast<double>(tp + fp) : 0;
    r.yes_no_recall = tp + fn ? static_cast<double>(tp) / static_cast<double>(tp + fn) : 0;
    r.yes_no_f1 = r.yes_no_precision + r.yes_no_recall > 0
                      ? 2 * r.yes_no_precision * r.yes_no_recall / (r.yes_no_precision + r.yes_no_recall)
                      : 0;
    r.caption_object_precision = cap_pred ? static_cast<double>(cap_matched) / static_cast<double>(cap_pred) : 0;
    r.caption_object_recall = cap_gt ? static_cast<double>(cap_matched) / static_cast<double>(cap_gt) : 0;
    r.caption_text_accuracy = text_total ? static_cast<double>(text_ok) / static_cast<double>(text_total) : 0;
    r.caption_background_accuracy = r.captions ? static_cast<double>(bg_ok) / static_cast<double>(r.captions) : 0;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.kv_cache_bytes = vlm.memory().kv_cache;
    return r;
}

std::string eval_normalize_answer(std::string_view answer) { return normalize_answer(answer); }
std::multiset<std::string> eval_caption_objects(std::string_view caption) { return caption_objects(caption); }
std::string eval_caption_text(std::string_view caption) { return quoted_text(caption); }
std::string eval_caption_background(std::string_view caption) { return background_word(caption); }

std::string eval_report_text(const EvalReport& r) {
    std::ostringstream o;
    char line[256];
    std::snprintf(line, sizeof line,
                  "scenes %lld, questions %lld, %.1f s, visual tokens kept %lld of %lld, %.0f per decoder layer%s%s\n",
                  static_cast<long long>(r.scenes), static_cast<long long>(r.questions), r.seconds,
                  static_cast<long long>(r.visual_tokens_kept), static_cast<long long>(r.visual_tokens_in),
                  r.visual_tokens_per_layer, r.pruning.empty() ? "" : " by ", r.pruning.c_str());
    o << line;
    for (const EvalReport::Kind& k : r.per_kind) {
        std::snprintf(line, sizeof line, "  %-9s %6.2f %%  (%lld / %lld)\n", k.name.c_str(),
                      k.total ? 100.0 * static_cast<double>(k.correct) / static_cast<double>(k.total) : 0.0,
                      static_cast<long long>(k.correct), static_cast<long long>(k.total));
        o << line;
    }
    std::snprintf(line, sizeof line, "  %-9s %6.2f %%\n", "overall", 100.0 * r.overall);
    o << line;
    std::snprintf(line, sizeof line, "yes/no: precision %.3f, recall %.3f, F1 %.3f\n", r.yes_no_precision,
                  r.yes_no_recall, r.yes_no_f1);
    o << line;
    std::snprintf(line, sizeof line,
                  "captions: objects named precision %.3f, recall %.3f; text %.3f; background %.3f\n",
                  r.caption_object_precision, r.caption_object_recall, r.caption_text_accuracy,
                  r.caption_background_accuracy);
    o << line;
    return o.str();
}

std::string eval_report_json(const EvalReport& r, const std::string& model_label) {
    std::ostringstream o;
    o << "{\"model\": " << json_quote(model_label) << ", \"scenes\": " << r.scenes << ", \"questions\": " << r.questions
      << ", \"seconds\": " << r.seconds << ", \"accuracy\": {";
    for (size_t i = 0; i < r.per_kind.size(); ++i) {
        const EvalReport::Kind& k = r.per_kind[i];
        o << (i ? ", " : "") << json_quote(k.name) << ": {\"correct\": " << k.correct << ", \"total\": " << k.total
          << "}";
    }
    o << "}, \"overall\": " << r.overall << ", \"yes_no\": {\"precision\": " << r.yes_no_precision
      << ", \"recall\": " << r.yes_no_recall << ", \"f1\": " << r.yes_no_f1 << "}, \"caption\": {\"object_precision\": "
      << r.caption_object_precision << ", \"object_recall\": " << r.caption_object_recall
      << ", \"text_accuracy\": " << r.caption_text_accuracy << ", \"background_accuracy\": "
      << r.caption_background_accuracy << "}, \"visual_tokens\": {\"in\": " << r.visual_tokens_in
      << ", \"kept\": " << r.visual_tokens_kept << ", \"per_decoder_layer\": " << r.visual_tokens_per_layer
      << "}, \"pruning\": " << json_quote(r.pruning)
      << ", \"prefill\": {\"ms\": " << r.prefill_ms << ", \"prompts\": " << r.prefills
      << "}, \"kv_cache_bytes\": " << r.kv_cache_bytes;
    if (!r.samples.empty()) {
        o << ", \"samples\": [";
        for (size_t i = 0; i < r.samples.size(); ++i) {
            const EvalReport::Sample& s = r.samples[i];
            o << (i ? ", " : "") << "{\"seed\": " << s.seed << ", \"kind\": " << json_quote(s.kind)
              << ", \"prompt\": " << json_quote(s.prompt) << ", \"expected\": " << json_quote(s.expected)
              << ", \"answer\": " << json_quote(s.answer) << "}";
        }
        o << "]";
    }
    o << "}";
    return o.str();
}

}  // namespace glimpse::tools
