// glimpse calibrate: the pruning plan that fits a memory budget at the least measured loss
// (issue 25; the library part is models/calibration.h, the method docs/calibration.md).
#include "tools/glimpse/calibrate.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "models/calibration.h"
#include "runtime/image.h"
#include "runtime/json.h"
#include "targets/cpu_features.h"
#include "tools/common/args.h"
#include "tools/glimpse/model_options.h"
#include "tools/scenes/scene.h"

namespace glimpse::tools {
namespace {

// The process overhead's defaults as option texts: the library's rule (models/calibration_budget.h,
// measured in docs/calibration.md), which the tools that run a calibrated plan check it with.
const std::string kDefaultProcessOverhead = std::to_string(kCalibrationProcessOverhead >> 20) + "MiB";
const std::string kDefaultOverheadWeightShare = str_printf("%g", kCalibrationOverheadWeightShare);

double mib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

int fail(const std::string& msg, int code = 1) {
    std::fprintf(stderr, "glimpse calibrate: %s\n", msg.c_str());
    return code;
}

// Progress on stderr: a bar with an ETA on a terminal, one plain line per step otherwise.
class ProgressLine {
public:
    ProgressLine() : tty_(isatty(fileno(stderr)) != 0) {}
    void operator()(const CalibrationProgress& p) {
        if (tty_) {
            const int width = 30;
            const int filled = static_cast<int>(std::lround(width * std::clamp(p.fraction, 0.0, 1.0)));
            const double eta = p.fraction > 0 ? p.seconds * (1 - p.fraction) / p.fraction : 0;
            std::fprintf(stderr, "\r\033[K[%.*s%.*s] %3.0f%% %6.1f s, ETA %s  %s", filled,
                         "##############################", width - filled, "..............................",
                         100 * p.fraction, p.seconds, p.fraction > 0 ? std::to_string(std::lround(eta)).append(" s").c_str() : "?",
                         p.what.substr(0, 60).c_str());
            if (p.fraction >= 1.0) std::fputc('\n', stderr);
        } else {
            // Not a terminal: one line per search step (and one when the unpruned answers are done).
            const std::string step = p.what.substr(0, p.what.find(':'));
            if ((p.what == "unpruned answers" && p.fraction >= 1.0) || (p.what != "unpruned answers" && step != last_step_)) {
                last_step_ = step;
                std::fprintf(stderr, "glimpse calibrate: %5.1f s  %3.0f%%  %s (%lld candidates measured)\n", p.seconds,
                             100 * p.fraction, p.what.c_str(), static_cast<long long>(p.evaluations));
            }
        }
        std::fflush(stderr);
    }

private:
    bool tty_;
    std::string last_step_;
};

constexpr long kMaxImageSide = 16384;

std::string xml_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '<') o += "&lt;";
        else if (c == '>') o += "&gt;";
        else if (c == '&') o += "&amp;";
        else o.push_back(c);
    }
    return o;
}

bool parse_image_size(const std::string& s, int* w, int* h) {
    const size_t x = s.find_first_of("xX");
    if (x == std::string::npos || x == 0 || x + 1 >= s.size() || s.size() > 11) return false;
    const std::string a = s.substr(0, x), b = s.substr(x + 1);
    if (a.find_first_not_of("0123456789") != std::string::npos || b.find_first_not_of("0123456789") != std::string::npos) return false;
    const long wv = std::stol(a), hv = std::stol(b);
    if (wv < 1 || hv < 1 || wv > kMaxImageSide || hv > kMaxImageSide) return false;
    *w = static_cast<int>(wv);
    *h = static_cast<int>(hv);
    return true;
}

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    size_t b = 0;
    while (b <= s.size()) {
        const size_t e = std::min(s.find(',', b), s.size());
        if (e > b) out.push_back(s.substr(b, e - b));
        b = e + 1;
    }
    return out;
}

// The keep of visual tokens (fraction of the image's) each decoder layer sees under a configuration.
std::vector<double> keep_per_layer(const CalibrationConfig& c, const CalibrationSettings& s, int n_layers) {
    std::vector<double> keep(static_cast<size_t>(n_layers), c.projector_keep);
    double cur = c.projector_keep;
    for (size_t i = 0; i < s.decoder_layers.size(); ++i) {
        cur = std::min(cur, c.decoder_keep[i]);
        for (int l = s.decoder_layers[i] + 1; l < n_layers; ++l) keep[static_cast<size_t>(l)] = cur;
    }
    return keep;
}

// The KV cache a plan holds, as the summary and the plot name it: the type ("q8_0"), a mixed
// plan's one share ("mixed 0.25"), or for one share per decoder layer their range
// ("mixed (q8_0 share per decoder layer min 0, mean 0.125, max 0.25)"; the shares themselves are
// a line of the summary).
std::string kv_cache_summary(const PruningPlan& plan) {
    if (plan.kv_cache_type != "mixed") return plan.kv_cache_type;
    const std::vector<double>& shares = plan.kv_high_precision_shares;
    if (shares.empty()) return str_printf("mixed %g", plan.kv_high_precision_share);
    double sum = 0;
    for (double v : shares) sum += v;
    return str_printf("mixed (q8_0 share per decoder layer min %g, mean %g, max %g)",
                      *std::min_element(shares.begin(), shares.end()), sum / static_cast<double>(shares.size()),
                      *std::max_element(shares.begin(), shares.end()));
}

// The plot: the chosen plan's keep per decoder layer (bars) and mean KL against planned total
// along the search path (the last point is the plan written), with the budget marked.
std::string plot_svg(const std::vector<CalibrationPoint>& path, const CalibrationSettings& s, int n_layers, int64_t budget,
                     const std::string& kv_cache) {
    const CalibrationPoint& chosen = path.back();
    const std::vector<double> keep = keep_per_layer(chosen.config, s, n_layers);
    std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"360\" font-family=\"sans-serif\" "
                    "font-size=\"12\">\n<rect width=\"900\" height=\"360\" fill=\"white\"/>\n";
    // Left panel: bars, x = layer, y = keep in [0, 1].
    const double lx = 60, ly = 40, lw = 360, lh = 260;
    const std::string tiles = chosen.config.max_tiles > 0 ? str_printf(", max tiles %d", chosen.config.max_tiles) : "";
    const std::string merge = chosen.config.encoder_merge > 0 ? str_printf(", tome %g", chosen.config.encoder_merge) : "";
    o += str_printf("<text x=\"%g\" y=\"22\" font-size=\"14\">visual tokens per decoder layer (KV %s%s%s)</text>\n", lx,
                    kv_cache.c_str(), merge.c_str(), tiles.c_str());
    o += str_printf("<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", lx, ly + lh, lx + lw, ly + lh);
    o += str_printf("<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", lx, ly, lx, ly + lh);
    for (int t = 0; t <= 4; ++t) {
        const double y = ly + lh - lh * t / 4.0;
        o += str_printf("<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.2f</text>\n", lx - 6, y + 4, t / 4.0);
    }
    const double bw = lw / std::max(1, n_layers);
    for (int l = 0; l < n_layers; ++l) {
        const double h = lh * keep[static_cast<size_t>(l)];
        o += str_printf("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4878d0\"/>\n", lx + l * bw + 1,
                        ly + lh - h, std::max(1.0, bw - 2), h);
        if (n_layers <= 32 && (n_layers <= 12 || l % 5 == 0)) {
            o += str_printf("<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%d</text>\n", lx + (l + 0.5) * bw, ly + lh + 16, l);
        }
    }
    o += str_printf("<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">decoder layer (keep = share of the image's tokens)</text>\n",
                    lx + lw / 2, ly + lh + 34);
    // Right panel: mean KL against planned total (MiB).
    const double rx = 500, ry = 40, rw = 360, rh = 260;
    double bmin = static_cast<double>(budget), bmax = static_cast<double>(budget), kmax = 0;
    for (const CalibrationPoint& p : path) {
        bmin = std::min(bmin, static_cast<double>(p.total));
        bmax = std::max(bmax, static_cast<double>(p.total));
        kmax = std::max(kmax, p.loss.mean_kl);
    }
    if (bmax <= bmin) bmax = bmin + 1;
    if (kmax <= 0) kmax = 1e-3;
    auto px = [&](double b) { return rx + rw * (b - bmin) / (bmax - bmin); };
    auto py = [&](double k) { return ry + rh - rh * k / kmax; };
    o += str_printf("<text x=\"%g\" y=\"22\" font-size=\"14\">mean KL along the search path</text>\n", rx);
    o += str_printf("<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", rx, ry + rh, rx + rw, ry + rh);
    o += str_printf("<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", rx, ry, rx, ry + rh);
    o += str_printf("<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.3g</text>\n", rx - 6, ry + 4, kmax);
    o += str_printf("<text x=\"%g\" y=\"%g\" text-anchor=\"end\">0</text>\n", rx - 6, ry + rh + 4);
    o += str_printf("<text x=\"%g\" y=\"%g\">%.1f MiB</text>\n", rx, ry + rh + 16, mib(static_cast<int64_t>(bmin)));
    o += str_printf("<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.1f MiB</text>\n", rx + rw, ry + rh + 16,
                    mib(static_cast<int64_t>(bmax)));
    o += str_printf("<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">planned total (with process overhead)</text>\n",
                    rx + rw / 2, ry + rh + 34);
    const double bx = px(static_cast<double>(budget));
    o += str_printf("<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#d65f5f\" stroke-dasharray=\"4 3\"/>\n", bx, ry,
                    bx, ry + rh);
    o += str_printf("<text x=\"%.1f\" y=\"%g\" fill=\"#d65f5f\">budget</text>\n", bx + 3, ry + 12);
    std::string pts;
    for (const CalibrationPoint& p : path) pts += str_printf("%.1f,%.1f ", px(static_cast<double>(p.total)), py(p.loss.mean_kl));
    o += "<polyline fill=\"none\" stroke=\"#4878d0\" points=\"" + pts + "\"/>\n";
    for (const CalibrationPoint& p : path) {
        o += str_printf("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#4878d0\"><title>%s</title></circle>\n",
                        px(static_cast<double>(p.total)), py(p.loss.mean_kl), xml_escape(p.step).c_str());
    }
    o += "</svg>\n";
    return o;
}

}  // namespace

int calibrate_command(const std::string& program, int argc, char** argv) {
    ArgParser a(program,
                "-m TEXT.gguf --mmproj MMPROJ.gguf (--images DIR | --scenes FROM:TO [--preset P]) --memory-budget SIZE "
                "[--image-size WxH] [-p PROMPT ...] [--methods LIST] -o plan.json [--plot plan.svg]",
                "Finds the pruning plan (after-projector keep, per-layer decoder keeps, KV-cache type, ToMe merging,\n"
                "tile cap) whose planned memory fits SIZE with the least quality loss measured against the unpruned\n"
                "model on the given images (no labels: agreement of greedy answers and the KL divergence of the\n"
                "next-token distributions at the answer positions). Search: greedy, the lever step with the least\n"
                "added KL per byte saved until the planned total (weights + activations + KV cache + image buffers +\n"
                "process overhead, for one image of --image-size, the longest prompt and -n answer tokens) fits, then\n"
                "single steps undone while one still fits and lowers the loss. The plan holds for that geometry and\n"
                "-t. docs/calibration.md.");
    add_model_options(a);
    a.option("--images", "DIR", "calibrate on the .png/.jpg/.jpeg files of DIR, each asked every -p prompt");
    a.option("--scenes", "FROM:TO", "calibrate on procedural scenes [FROM, TO), asked their own questions");
    a.option("--preset", "NAME", "scene distribution for --scenes: default or bundled", "default");
    a.option("--questions-per-scene", "N", "questions asked per scene, 1..16", "2");
    a.repeated("-p,--prompt", "TEXT", "with --images: a prompt asked about every image (default: \"Describe this image.\")");
    a.option("-n,--n-predict", "N", "answer tokens generated per sample, and planned for, 1..512", "8");
    a.option("--memory-budget", "SIZE", "the planned total to fit: 300MiB, 1.5GiB, 300MB or bytes");
    a.option("--image-size", "WxH", "the image geometry the budget plans for (default: the largest calibration image)");
    a.option("--methods", "LIST",
             "comma-separated levers: one after-projector method (divprune, dart, uniform, random, cdpruner, ...), "
             "pyramiddrop (decoder-layer keeps), kv (KV cache f16 -> q8_0 -> mixed -> q4_0), tome (merging inside the "
             "encoder, 0 -> 0.25 -> 0.5 of its patches: saves encoder activations only, little memory, so not a "
             "default), max-tiles "
             "(SmolVLM's tile cap, from the image's own grid down to 1 tile + overview; skipped on models without "
             "tiles)", "divprune,pyramiddrop,kv,max-tiles");
    a.option("--process-overhead", "SIZE", "fixed bytes added to every planned total for what the planner does not "
             "see (code, libraries, allocator; measured in docs/calibration.md). caption, eval and inspect check the "
             "written plan's budget with the default overhead", kDefaultProcessOverhead);
    a.option("--overhead-weight-share", "F", "plus this share of the planned weights (measured: it grows with the model)",
             kDefaultOverheadWeightShare);
    a.option("-o,--output", "FILE", "the plan file to write");
    a.option("--plot", "FILE", "also write an SVG: keep per decoder layer and loss against planned total");
    a.option("--path-plans", "PREFIX", "also write the plan of every point of the search path as PREFIX<step>.json (the "
             "plan this search gives for a budget of that point's total)");
    std::string err;
    if (!a.parse(argc, argv, &err)) return fail(err, 2);
    if (a.has("--help")) {
        std::fputs(a.help().c_str(), stdout);
        std::fputs("\nexit status: 0 success; 1 the run failed (unreadable model or image, a budget below the smallest\n"
                   "plan); 2 usage error.\n", stdout);
        return std::fflush(stdout) == 0 ? 0 : 1;
    }
    if (!a.positional().empty()) return fail("unexpected argument '" + a.positional()[0] + "' (see --help)", 2);
    if (!a.has("--model") || !a.has("--mmproj")) return fail("-m TEXT.gguf and --mmproj MMPROJ.gguf are required", 2);
    if (a.has("--images") == a.has("--scenes")) return fail("give one of --images DIR and --scenes FROM:TO", 2);
    if (!a.has("--memory-budget")) return fail("--memory-budget SIZE is required (e.g. 300MiB)", 2);
    if (!a.has("--output")) return fail("-o plan.json is required", 2);
    if (a.has("--scenes") && a.has("--prompt")) return fail("-p applies to --images; scenes are asked their own questions", 2);
    auto budget = parse_memory_size(a.get("--memory-budget"));
    if (!budget.is_ok()) return fail("--memory-budget: " + budget.status().message(), 2);
    auto overhead = parse_memory_size(a.get("--process-overhead"));
    if (!overhead.is_ok()) return fail("--process-overhead: " + overhead.status().message(), 2);
    int64_t n_predict = 8, threads = 0, per_scene = 2;
    if (!a.get_int("--n-predict", 1, 512, &n_predict, &err)) return fail(err, 2);
    if (!a.get_int("--threads", 1, 1024, &threads, &err)) return fail(err, 2);
    if (!a.get_int("--questions-per-scene", 1, 16, &per_scene, &err)) return fail(err, 2);

    CalibrationSettings settings;
    settings.text_path = a.get("--model");
    settings.mmproj_path = a.get("--mmproj");
    settings.base.n_threads = threads > 0 ? std::min<int>(static_cast<int>(threads), usable_cpu_count()) : usable_cpu_count();
    settings.base.chat_template = a.get("--chat-template");
    auto numerics = numerics_option(a);
    if (!numerics.is_ok()) return fail(numerics.status().message(), 2);
    settings.base.numerics = *numerics;
    settings.answer_tokens = static_cast<int>(n_predict);
    settings.process_overhead = *overhead;
    double share = 0;
    if (!a.get_float("--overhead-weight-share", &share, &err)) return fail(err, 2);
    if (share < 0 || share > 10) return fail("--overhead-weight-share must be in [0, 10]", 2);
    settings.overhead_weight_share = share;
    settings.projector_method.clear();
    settings.decoder_levers = false;
    settings.kv_levers = false;
    const std::vector<std::string> names = pruning_method_names();
    for (const std::string& m : split_list(a.get("--methods"))) {
        if (m == "pyramiddrop") settings.decoder_levers = true;
        else if (m == "kv") settings.kv_levers = true;
        else if (m == "tome") settings.tome_levers = true;
        else if (m == "max-tiles") settings.tile_levers = true;
        else if (m == "fastv" || m == "sparsevlm" || m == "feather") {
            return fail("--methods: " + m + " prunes inside the decoder; the decoder lever is pyramiddrop", 2);
        }
        else if (std::find(names.begin(), names.end(), m) == names.end()) {
            return fail("--methods: unknown lever '" + m + "' (an after-projector method, pyramiddrop, kv, tome or max-tiles)", 2);
        } else if (settings.projector_method.empty()) {
            settings.projector_method = m;
        } else {
            return fail("--methods: one after-projector method per plan (" + settings.projector_method + " and " + m + ")", 2);
        }
    }
    if (settings.projector_method.empty() && !settings.decoder_levers && !settings.kv_levers && !settings.tome_levers &&
        !settings.tile_levers) {
        return fail("--methods: no lever to search", 2);
    }

    // The calibration set.
    std::vector<CalibrationSample> samples;
    std::string set_kind, set_description;
    if (a.has("--images")) {
        set_kind = "images";
        const std::string dir = a.get("--images");
        std::error_code ec;
        std::vector<std::string> files;
        for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
            std::string ext = e.path().extension().string();
            for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) files.push_back(e.path().string());
        }
        if (ec) return fail("--images " + dir + ": " + ec.message());
        if (files.empty()) return fail("--images " + dir + ": no .png, .jpg or .jpeg files");
        std::sort(files.begin(), files.end());
        std::vector<std::string> prompts = a.get_all("--prompt");
        if (prompts.empty()) prompts.push_back("Describe this image.");
        for (const std::string& f : files) {
            auto img = image_decode_file(f);
            if (!img.is_ok()) return fail(img.status().message());
            for (const std::string& p : prompts) samples.push_back({*img, p});
        }
        set_description = dir + str_printf(" (%zu images x %zu prompts)", files.size(), prompts.size());
    } else {
        set_kind = "scenes";
        const std::string spec = a.get("--scenes");
        const size_t colon = spec.find(':');
        auto digits = [](const std::string& t) {
            return !t.empty() && t.size() <= 18 && t.find_first_not_of("0123456789") == std::string::npos;
        };
        if (colon == std::string::npos || !digits(spec.substr(0, colon)) || !digits(spec.substr(colon + 1))) {
            return fail("--scenes: bad range '" + spec + "' (FROM:TO, decimal seeds)", 2);
        }
        const uint64_t from = std::stoull(spec.substr(0, colon)), to = std::stoull(spec.substr(colon + 1));
        if (to <= from || to - from > 100000) return fail("--scenes: '" + spec + "' must hold 1..100000 scenes", 2);
        auto preset = scenes::scene_preset(a.get("--preset"));
        if (!preset.is_ok()) return fail("--preset: " + preset.status().message(), 2);
        for (uint64_t seed = from; seed < to; ++seed) {
            scenes::Scene scene = scenes::scene_generate(seed, *preset);
            ImageU8 img;
            img.width = scene.image.width;
            img.height = scene.image.height;
            img.rgb = std::move(scene.image.rgb);
            for (size_t q = 0; q < scene.qa.size() && q < static_cast<size_t>(per_scene); ++q) {
                samples.push_back({img, scene.qa[q].question});
            }
        }
        set_description = str_printf("scenes %s, preset %s, %lld questions each", spec.c_str(), a.get("--preset").c_str(),
                                     static_cast<long long>(per_scene));
    }
    // The geometry and prompt the budget plans for: the largest image and longest prompt unless told.
    settings.image_width = 0;
    settings.image_height = 0;
    for (const CalibrationSample& s : samples) {
        settings.image_width = std::max(settings.image_width, s.image.width);
        settings.image_height = std::max(settings.image_height, s.image.height);
        if (s.prompt.size() > settings.plan_prompt.size()) settings.plan_prompt = s.prompt;
    }
    if (a.has("--image-size") && !parse_image_size(a.get("--image-size"), &settings.image_width, &settings.image_height)) {
        return fail("--image-size: '" + a.get("--image-size") + "' is not WxH with sides 1..16384", 2);
    }

    Status dec = apply_matmul_decisions(a);
    if (!dec.is_ok()) return fail(dec.message());
    const int64_t n_samples = static_cast<int64_t>(samples.size());
    auto calibrator = Calibrator::create(settings, std::move(samples));
    if (!calibrator.is_ok()) return fail(calibrator.status().message());
    Calibrator& cal = **calibrator;
    if (settings.tile_levers && cal.tile_caps().empty()) {
        std::fprintf(stderr, "glimpse calibrate: max-tiles: %s; lever skipped\n",
                     cal.natural_tiles() == 0 ? "this model does not tile images (no tile grid)"
                                              : "the calibrated geometry is one tile already");
    }
    if (settings.tome_levers && cal.merge_steps().empty()) {
        std::fprintf(stderr, "glimpse calibrate: tome: this encoder cannot merge %g of its patches; lever skipped\n",
                     kCalibrationMerges[1]);
    }
    ProgressLine progress;
    const auto t0 = std::chrono::steady_clock::now();
    auto path = cal.search(*budget, [&](const CalibrationProgress& p) { progress(p); });
    if (!path.is_ok()) return fail(path.status().message());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const CalibrationPoint& chosen = path->back();

    // The plan with what calibration recorded.
    auto plan = calibration_plan(chosen.config, cal.settings());
    if (!plan.is_ok()) return fail(plan.status().message());
    plan->model = cal.model_name();
    plan->decoder_layers = cal.decoder_layer_count();  // its decoder stages are a table for this depth
    PruningCalibration rec;
    rec.budget_bytes = *budget;
    rec.image_width = cal.settings().image_width;
    rec.image_height = cal.settings().image_height;
    rec.prompt_tokens = cal.plan_prompt_text_tokens();
    rec.answer_tokens = cal.settings().answer_tokens;
    rec.set_kind = set_kind;
    rec.set_description = set_description;
    rec.set_count = n_samples;
    rec.answer_agreement = chosen.loss.agreement;
    rec.mean_kl = chosen.loss.mean_kl;
    rec.search = "greedy";
    plan->calibration = rec;
    if (Status ok = pruning_plan_check(*plan, a.get("--output")); !ok.is_ok()) return fail(ok.message());
    {
        std::ofstream out(a.get("--output"), std::ios::binary | std::ios::trunc);
        out << pruning_plan_to_json(*plan);
        out.close();
        if (!out) return fail("cannot write " + a.get("--output") + ": " + std::strerror(errno));
    }
    for (size_t i = 0; a.has("--path-plans") && i < path->size(); ++i) {
        auto step_plan = calibration_plan((*path)[i].config, cal.settings());
        if (!step_plan.is_ok()) return fail(step_plan.status().message());
        step_plan->model = cal.model_name();
        step_plan->decoder_layers = cal.decoder_layer_count();
        PruningCalibration at = rec;
        at.budget_bytes = (*path)[i].total;
        at.answer_agreement = (*path)[i].loss.agreement;
        at.mean_kl = (*path)[i].loss.mean_kl;
        step_plan->calibration = at;
        const std::string name = a.get("--path-plans") + std::to_string(i) + ".json";
        std::ofstream out(name, std::ios::binary | std::ios::trunc);
        out << pruning_plan_to_json(*step_plan);
        out.close();
        if (!out) return fail("cannot write " + name + ": " + std::strerror(errno));
    }
    if (a.has("--plot")) {
        std::ofstream out(a.get("--plot"), std::ios::binary | std::ios::trunc);
        out << plot_svg(*path, cal.settings(), cal.decoder_layer_count(), *budget, kv_cache_summary(*plan));
        out.close();
        if (!out) return fail("cannot write " + a.get("--plot") + ": " + std::strerror(errno));
    }

    // Summary on stdout: the search path, then the plan.
    std::printf("calibration: %lld samples (%s), %dx%d image, %lld-token prompt, %lld answer tokens, %.1f s, "
                "process overhead %.1f MiB (%.1f MiB + %g x weights)\n",
                static_cast<long long>(n_samples), set_description.c_str(), rec.image_width, rec.image_height,
                static_cast<long long>(rec.prompt_tokens), static_cast<long long>(rec.answer_tokens), seconds, mib(chosen.overhead),
                mib(settings.process_overhead), settings.overhead_weight_share);
    std::printf("%-4s %-28s %10s %9s %9s %9s %9s %9s %9s\n", "step", "lever", "total MiB", "weights", "activ.", "KV",
                "images", "mean KL", "agree");
    for (size_t i = 0; i < path->size(); ++i) {
        const CalibrationPoint& p = (*path)[i];
        std::printf("%-4zu %-28s %10.2f %9.2f %9.2f %9.3f %9.3f %9.4f %8.1f%%\n", i, p.step.c_str(), mib(p.total),
                    mib(p.memory.weights), mib(p.memory.vision_arena + p.memory.text_arena), mib(p.memory.kv_cache),
                    mib(p.memory.image_buffers), p.loss.mean_kl, 100 * p.loss.agreement);
    }
    const std::vector<double> keep = keep_per_layer(chosen.config, cal.settings(), cal.decoder_layer_count());
    std::printf("plan: %s keep %.4g after the projector, KV cache %s, tome merge %g, max tiles %s, keep per decoder layer:",
                cal.settings().projector_method.empty() ? "(none)" : cal.settings().projector_method.c_str(),
                chosen.config.projector_keep, kv_cache_summary(*plan).c_str(), chosen.config.encoder_merge,
                chosen.config.max_tiles > 0 ? std::to_string(chosen.config.max_tiles).c_str() : "natural");
    for (double k : keep) std::printf(" %.4g", k);
    if (!plan->kv_high_precision_shares.empty()) {
        std::printf("\nKV cache q8_0 share per decoder layer:");
        for (double share : plan->kv_high_precision_shares) std::printf(" %g", share);
    }
    std::printf("\nplanned total %.2f MiB of the %.2f MiB budget; written to %s\n", mib(chosen.total), mib(*budget),
                a.get("--output").c_str());
    return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace glimpse::tools
