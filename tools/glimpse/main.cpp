// glimpse: caption images with a small vision-language model on the CPU.
//
//   glimpse caption -m TEXT.gguf --mmproj MMPROJ.gguf --image IMG [-p PROMPT] [-n N] ...
//   glimpse caption -m TEXT.gguf --mmproj MMPROJ.gguf --each DIR|LIST [...]   (JSON lines, one per image)
//   glimpse inspect -m TEXT.gguf --mmproj MMPROJ.gguf [--image IMG]
//
// stdout carries only the generated text; timings and memory go to stderr.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "models/calibration_budget.h"
#include "models/decoder_pruning_feather.h"
#include "models/keep_map.h"
#include "models/limits.h"
#include "models/vlm.h"
#include "runtime/image.h"
#include "runtime/json.h"
#include "targets/cpu_features.h"
#include "tools/common/args.h"
#include "tools/glimpse/calibrate.h"
#include "tools/glimpse/eval.h"
#include "tools/glimpse/model_options.h"
#include "tools/quantize/quantize_command.h"
#include "tools/serve/serve_command.h"
#include "tools/tune/tune.h"

using namespace glimpse;
using namespace glimpse::tools;

namespace {

constexpr const char* kDefaultPrompt = "Describe this image.";

double mib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

int64_t peak_rss_bytes() {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

// Exit status, the same for every command (and said in every --help):
//   0 success; 1 the run failed (a model or image that cannot be read or is invalid, a prompt over
//   the context, the answer could not be written); 2 usage (unknown or missing option, a value out
//   of range, a bad GLIMPSE_MAX_ISA).
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr const char* kExitStatusHelp =
    "\nexit status: 0 success; 1 the run failed (unreadable or invalid model or image, prompt over the\n"
    "context, answer not written); 2 usage error (unknown or missing option, value out of range).\n";

int fail(const std::string& msg, int code = kExitFailure) {
    std::fprintf(stderr, "glimpse: %s\n", msg.c_str());
    return code;
}

int usage_error(const std::string& msg) { return fail(msg, kExitUsage); }


// Writes the answer to stdout; false (with errno set) when it cannot, e.g. a full disk or a closed
// pipe, so the run stops and exits non-zero instead of reporting success with the answer lost.
bool write_stdout(std::string_view bytes) {
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size()) return false;
    return std::fflush(stdout) == 0;
}

// Closes stdout and reports whether everything written reached its destination.
int finish_stdout(int code) {
    if (std::fflush(stdout) != 0 || std::ferror(stdout) || std::fclose(stdout) != 0) {
        return fail(std::string("cannot write the answer to stdout: ") + std::strerror(errno));
    }
    return code;
}

// Parses a command's arguments: nullopt to go on, or the exit status when the command is done
// (--help printed, or a usage error reported).
std::optional<int> parse_command_line(ArgParser& a, int argc, char** argv) {
    std::string err;
    if (!a.parse(argc, argv, &err)) return usage_error(err);
    if (a.has("--help")) {
        std::fputs((a.help() + kExitStatusHelp).c_str(), stdout);
        return finish_stdout(0);
    }
    if (!a.positional().empty()) return usage_error("unexpected argument '" + a.positional()[0] + "' (see --help)");
    return std::nullopt;
}

// KV cache storage and visual-token pruning: how caption, inspect, eval and serve run the model.
void add_pruning_options(ArgParser& a) {
    a.option("--kv-type", "TYPE", "KV cache storage: f16, f32, q8_0 or q4_0 (GGUF blocks of 32 along the head dimension; "
             "docs/kv-cache.md), or mixed: q8_0 for the prompt tokens its last token attends to most (--kv-high-share) "
             "and the answer, q4_0 for the other prompt tokens", "f16");
    a.option("--kv-high-share", "S", "with --kv-type mixed: the share in [0, 1] of the prompt's tokens kept in q8_0", "0.25");
    a.option("--prune", "METHOD",
             "prune visual tokens after the projector (docs/pruning.md): random, uniform, divprune, dart, "
             "fastervlm ([CLS] encoders: LLaVA), attn-received; or inside the language model, at the paper's layers "
             "scaled to its depth: fastv, pyramiddrop, sparsevlm, feather; needs --keep. tome: merge tokens inside the "
             "encoder instead, needs --merge");
    a.option("--keep", "F", "with --prune: keep this fraction in (0, 1] of each image's visual tokens, or a count > 1; "
             "pyramiddrop, sparsevlm: the fraction each of its 3 stages keeps of what enters it (0.5: 1/2, 1/4, 1/8; "
             "sparsevlm adds its recycled tokens); "
             "feather: the same for its 2 stages (a uniform grid, then attention: 0.5 keeps 1/2, 1/4)");
    a.flag("--debias", "with --prune fastv|pyramiddrop|feather: divide the attention score by the RoPE-only bias map "
           "(SparseVLM v2; docs/pruning.md); in a plan file it is the stage argument debias");
    a.option("--plan", "FILE", "a pruning plan file (JSON, docs/pruning.md); instead of --prune/--keep");
    a.option("--merge", "R",
             "with --prune tome: merge tokens inside the vision encoder (ToMe, docs/pruning.md). A fraction in "
             "(0, 1): that share fewer encoder tokens after the last block, the same count merged in every block; "
             "a whole number >= 1: tokens merged per block. The projector still sees every patch");
    a.option("--prune-positions", "IDS",
             "position ids of the kept image rows: original (as unpruned; keeps where each token was) or "
             "compact (renumbered 0..n-1; loses position questions, docs/pruning.md); a plan stage's positions "
             "argument, when original or compact, overrides it", "original");
    a.option("--max-tiles", "N",
             "SmolVLM: at most N tiles (rows x cols, 1..1024) per image plus the overview; the grid closest to the "
             "image's aspect is chosen and the image resized to it (docs/pruning.md, Tile budget); default: the "
             "model's own tiling. Refused on models without tiles (LLaVA) and against a --plan with another max_tiles");
    a.flag("--over-budget",
           "with a --plan made by glimpse calibrate (one with a calibration block): run a request whose planned total "
           "+ process overhead (" + std::to_string(kCalibrationProcessOverhead >> 20) + " MiB + " +
               str_printf("%g", 100 * kCalibrationOverheadWeightShare) +
               " % of the weights) exceeds the plan's budget (more tiles from a larger image, a longer prompt or a larger "
               "-n than calibrated) anyway, with a warning on stderr; without it such a request is refused "
               "(docs/calibration.md)");
}

// A calibrated plan's memory budget for one request (models/calibration_budget.h): plans it, and
// refuses it when over the budget; with --over-budget prints the warning on stderr instead.
Status check_plan_budget(Vlm& vlm, const VlmPrompt& prompt, const std::vector<const ImageU8*>& images, int64_t n_predict,
                         const ArgParser& a, const std::string& label = "") {
    BudgetRequest request;
    request.label = label;
    for (const ImageU8* img : images) request.image_sizes.emplace_back(img->width, img->height);
    request.n_predict = static_cast<int>(n_predict);
    std::string warning;
    GLIMPSE_RETURN_IF_ERROR(check_calibrated_budget(vlm, prompt, request, a.has("--over-budget"), &warning));
    if (!warning.empty()) std::fprintf(stderr, "glimpse: %s\n", warning.c_str());
    return Status::ok();
}

// What caption, inspect, eval and serve take: the model options (model_options.h) and the pruning options.
void add_model_and_pruning_options(ArgParser& a) {
    add_model_options(a);
    add_pruning_options(a);
}

// The model options, checked before anything is loaded (usage errors exit 2). One check reads a
// file: the decoder-layer shorthand places its stages by the text model's depth, from its GGUF
// header; when that file cannot be read or is not a text model, *text_model_unreadable is set, and
// the caller reports a failed run (exit 1), as the load would have.
Result<VlmConfig> model_config(const ArgParser& a, bool* text_model_unreadable = nullptr) {
    if (!a.has("--model") || !a.has("--mmproj")) {
        return Status::error(StatusCode::invalid_argument, "both -m TEXT.gguf and --mmproj MMPROJ.gguf are required "
                                                           "(see --help)");
    }
    VlmConfig cfg;
    int64_t threads = 0;
    std::string err;
    if (!a.get_int("--threads", 1, 1024, &threads, &err)) return Status(StatusCode::invalid_argument, err);
    const int cpus = usable_cpu_count();  // the affinity mask: taskset, cgroup cpusets
    if (threads > cpus) {
        std::fprintf(stderr, "glimpse: -t %lld is more than the %d CPUs this process may use; using %d threads\n",
                     static_cast<long long>(threads), cpus, cpus);
        threads = cpus;
    }
    cfg.n_threads = threads > 0 ? static_cast<int>(threads) : cpus;
    cfg.chat_template = a.get("--chat-template");
    GLIMPSE_ASSIGN_OR_RETURN(cfg.numerics, numerics_option(a));
    const std::string kv = a.get("--kv-type");
    if (kv == "f16") cfg.kv_type = DType::f16;
    else if (kv == "f32") cfg.kv_type = DType::f32;
    else if (kv == "q8_0") cfg.kv_type = DType::q8_0;
    else if (kv == "q4_0") cfg.kv_type = DType::q4_0;
    else if (kv == "mixed") cfg.kv_type = DType::q8_0;  // its high-precision rows; the rest q4_0
    else return Status::error(StatusCode::invalid_argument, "--kv-type must be f16, f32, q8_0, q4_0 or mixed, not '%s'", kv.c_str());
    if (a.has("--kv-high-share") && kv != "mixed") {
        return Status::error(StatusCode::invalid_argument, "--kv-high-share goes with --kv-type mixed");
    }
    if (kv == "mixed" && (a.has("--kv-high-share") || !a.has("--plan"))) {  // else the plan's share
        if (!a.get_float("--kv-high-share", &cfg.kv_mixed_high_share, &err)) return Status(StatusCode::invalid_argument, err);
        if (!(cfg.kv_mixed_high_share >= 0 && cfg.kv_mixed_high_share <= 1)) {
            return Status::error(StatusCode::invalid_argument, "--kv-high-share %g: must be in [0, 1]",
                                 cfg.kv_mixed_high_share);
        }
    }
    if (a.has("--plan") && (a.has("--prune") || a.has("--keep"))) {
        return Status::error(StatusCode::invalid_argument, "--plan FILE and --prune/--keep are alternatives; give one");
    }
    const bool tome = a.get("--prune") == "tome";
    if (tome || a.has("--merge")) {
        if (!tome) return Status::error(StatusCode::invalid_argument, "--merge R goes with --prune tome (see --help)");
        if (!a.has("--merge") || a.has("--keep")) {
            return Status::error(StatusCode::invalid_argument,
                                 "--prune tome takes --merge R (tokens merged inside the encoder), not --keep");
        }
        if (!a.get_float("--merge", &cfg.encoder_merge, &err)) return Status(StatusCode::invalid_argument, err);
        if (!(cfg.encoder_merge >= 0)) {
            return Status::error(StatusCode::invalid_argument, "--merge %g: must be 0 or more", cfg.encoder_merge);
        }
    }
    if (!tome && a.has("--prune") != a.has("--keep")) {
        return Status::error(StatusCode::invalid_argument, "--prune METHOD and --keep F go together (see --help)");
    }
    const std::string ids = a.get("--prune-positions");
    if (ids != "compact" && ids != "original") {
        return Status::error(StatusCode::invalid_argument, "--prune-positions must be compact or original, not '%s'",
                             ids.c_str());
    }
    cfg.original_positions = ids == "original";
    if (a.has("--max-tiles")) {
        int64_t max_tiles = 0;
        if (!a.get_int("--max-tiles", 1, 1024, &max_tiles, &err)) return Status(StatusCode::invalid_argument, err);
        cfg.max_tiles = static_cast<int>(max_tiles);
    }
    if (a.has("--debias") && (!a.has("--prune") || !is_decoder_shorthand_method(a.get("--prune")))) {
        return Status::error(StatusCode::invalid_argument,
                             "--debias goes with --prune fastv|pyramiddrop|feather (in a plan file: the stage "
                             "argument \"debias\": true)");
    }
    if (a.has("--plan")) {
        GLIMPSE_ASSIGN_OR_RETURN(PruningPlan plan, pruning_plan_read_file(a.get("--plan")));
        // The plan's kv_cache.type is used unless --kv-type names another (f16 given explicitly too).
        if (a.has("--kv-type") && plan.kv_cache_type != "f16" && plan.kv_cache_type != kv) {
            return Status::error(StatusCode::invalid_argument, "%s: kv_cache.type %s conflicts with --kv-type %s; give one of them",
                                 a.get("--plan").c_str(), plan.kv_cache_type.c_str(), kv.c_str());
        }
        cfg.pruning = std::move(plan);
    } else if (a.has("--prune") && !tome) {
        double keep = 0;
        if (!a.get_float("--keep", &keep, &err)) return Status(StatusCode::invalid_argument, err);
        if (is_decoder_shorthand_method(a.get("--prune"))) {
            // Inside the language model: the default layers follow its depth (docs/pruning.md).
            auto depth = [&]() -> Result<int64_t> {
                GLIMPSE_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> text, GgufFile::open(a.get("--model")));
                GLIMPSE_ASSIGN_OR_RETURN(TextHparams th, text_hparams_from_gguf(*text));
                return th.n_layer;
            }();
            if (!depth.is_ok()) {
                if (text_model_unreadable) *text_model_unreadable = true;
                return depth.status();
            }
            GLIMPSE_ASSIGN_OR_RETURN(PruningPlan plan,
                                     decoder_shorthand_plan(a.get("--prune"), keep, static_cast<int>(*depth),
                                                            a.has("--prune-positions") ? ids : ""));
            if (a.has("--debias")) GLIMPSE_RETURN_IF_ERROR(pruning_plan_enable_debias(&plan, "--debias"));
            cfg.pruning = std::move(plan);
        } else {
            GLIMPSE_ASSIGN_OR_RETURN(PruningPlan plan, pruning_plan_from_shorthand(a.get("--prune"), keep));
            cfg.pruning = std::move(plan);
        }
    }
    return cfg;
}

// model_config for a command: the config, or the exit status to return after printing why (a
// usage error, or a failed run when the text model could not be read).
struct ModelConfigOrExit {
    std::optional<VlmConfig> config;
    int exit_code = 0;
};
// model_config and the exit status its error calls for (the rule above; serve's too).
serve::ModelConfigRead read_model_config(const ArgParser& a) {
    bool text_model_unreadable = false;
    auto cfg = model_config(a, &text_model_unreadable);
    const int code = cfg.is_ok() ? 0 : text_model_unreadable ? kExitFailure : kExitUsage;
    return {std::move(cfg), code};
}
ModelConfigOrExit model_config_or_exit(const ArgParser& a) {
    serve::ModelConfigRead read = read_model_config(a);
    if (read.config.is_ok()) return {std::move(*read.config), 0};
    return {std::nullopt, fail(read.config.status().message(), read.exit_code)};
}

// serve reads its model options through this, so --decisions holds there as it does for caption
// (where a --decisions file that cannot be used fails the load: exit 1).
serve::ModelConfigRead serve_model_config(const ArgParser& a) {
    if (Status s = apply_matmul_decisions(a); !s.is_ok()) return {std::move(s), kExitFailure};
    return read_model_config(a);
}

Result<std::unique_ptr<Vlm>> load_model(const ArgParser& a, const VlmConfig& cfg, double* load_ms) {
    GLIMPSE_RETURN_IF_ERROR(apply_matmul_decisions(a));
    auto t0 = std::chrono::steady_clock::now();
    auto vlm = Vlm::load(a.get("--model"), a.get("--mmproj"), cfg);
    *load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return vlm;
}

void print_memory(const VlmMemory& m) {
    std::fprintf(stderr,
                 "memory (planned): weights %.1f MiB (%.1f MiB repacked for the kernels, %.1f MiB used as "
                 "stored or copied as f32), vision activations %.1f MiB, text activations %.1f MiB, KV cache %.1f MiB, "
                 "image buffers %.1f MiB, total %.1f MiB\n",
                 mib(m.weights), mib(m.packed_weights), mib(m.weights - m.packed_weights), mib(m.vision_arena), mib(m.text_arena), mib(m.kv_cache), mib(m.image_buffers),
                 mib(m.total()));
}

// The keep map of the last encode (models/keep_map.h): the chunks' kept tokens drawn over the image.
Status write_keep_map(const Vlm& vlm, const ImageU8& image, const std::string& path) {
    const VisionHparams& vh = vlm.vision().hparams();
    const int side = vlm.visual_tokens_per_side();
    std::vector<std::vector<int32_t>> kept = vlm.last_kept();
    KeepMapViews views;
    if (vh.projector == ProjectorType::idefics3) {
        Idefics3Params p;
        p.tile_size = static_cast<int>(vh.image_size);
        p.longest_edge = static_cast<int>(vh.preproc_image_size);
        p.max_tiles = vlm.max_tiles();
        GLIMPSE_ASSIGN_OR_RETURN(Idefics3Geometry g, idefics3_geometry(image.width, image.height, p));
        GLIMPSE_ASSIGN_OR_RETURN(views, keep_map_views_idefics3(g, side, std::move(kept)));
    } else {
        LlavaParams p;
        p.image_size = static_cast<int>(vh.image_size);
        GLIMPSE_ASSIGN_OR_RETURN(LlavaGeometry g, llava_geometry(image.width, image.height, p));
        GLIMPSE_CHECK_OR_RETURN(kept.size() == 1, internal, "keep map: %zu chunks for a LLaVA image", kept.size());
        GLIMPSE_ASSIGN_OR_RETURN(views, keep_map_views_llava(g, side, std::move(kept[0])));
    }
    GLIMPSE_ASSIGN_OR_RETURN(ImageU8 picture, keep_map_render(image, views));
    return image_write_png(path, picture);
}

// ---- caption --json and caption --each (batch) ----

// A JSON string of arbitrary bytes: invalid UTF-8 (a file name in another encoding, an answer cut
// inside a character) becomes U+FFFD, so every line a script reads is valid JSON.
std::string json_text(std::string_view bytes) {
    std::string valid;
    valid.reserve(bytes.size());
    size_t i = 0;
    while (i < bytes.size()) {
        const unsigned char c = static_cast<unsigned char>(bytes[i]);
        size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
        bool ok = len > 0 && i + len <= bytes.size();
        for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(bytes[i + k]) & 0xc0) == 0x80;
        if (ok && len > 1) {
            // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8 either.
            uint32_t cp = c & (0x7f >> len);
            for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(bytes[i + k]) & 0x3f);
            static constexpr uint32_t kMinForLength[5] = {0, 0, 0x80, 0x800, 0x10000};
            ok = cp >= kMinForLength[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
        }
        if (ok) {
            valid.append(bytes.substr(i, len));
            i += len;
        } else {
            valid += "\xef\xbf\xbd";  // U+FFFD
            i += 1;
        }
    }
    return json_quote(valid);
}

std::string json_number(double v) { return str_printf("%.3f", v); }

// Token counts and the stage timings of one answer, as JSON members (without braces).
std::string generation_json_members(const GenerationStats& st, double preprocess_ms) {
    return str_printf("\"n_prompt_tokens\": %lld, \"n_image_tokens\": %lld, \"n_image_tokens_in\": %lld, "
                      "\"n_image_chunks\": %lld, \"n_generated\": %lld, \"stopped_at_eog\": %s, "
                      "\"timings_ms\": {\"preprocess\": %s, \"encode\": %s, \"prefill\": %s, \"decode\": %s}",
                      static_cast<long long>(st.n_prompt), static_cast<long long>(st.n_image_tokens),
                      static_cast<long long>(st.n_image_tokens_in), static_cast<long long>(st.n_image_chunks),
                      static_cast<long long>(st.n_generated), st.stopped_at_eog ? "true" : "false",
                      json_number(preprocess_ms).c_str(), json_number(st.encode_ms).c_str(),
                      json_number(st.prefill_ms).c_str(), json_number(st.decode_ms).c_str());
}

std::string memory_json(const VlmMemory& m) {
    return str_printf("{\"weights\": %lld, \"packed_weights\": %lld, \"vision_arena\": %lld, \"text_arena\": %lld, "
                      "\"kv_cache\": %lld, \"image_buffers\": %lld, \"total\": %lld, \"peak_rss\": %lld}",
                      static_cast<long long>(m.weights), static_cast<long long>(m.packed_weights),
                      static_cast<long long>(m.vision_arena), static_cast<long long>(m.text_arena),
                      static_cast<long long>(m.kv_cache), static_cast<long long>(m.image_buffers),
                      static_cast<long long>(m.total()), static_cast<long long>(peak_rss_bytes()));
}

// File names --each takes from a directory: what image_decode_file reads, by extension.
bool has_image_extension(const std::filesystem::path& p) {
    std::string ext = p.extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* known : {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga", ".psd", ".hdr", ".pic", ".pnm",
                              ".ppm", ".pgm"}) {
        if (ext == known) return true;
    }
    return false;
}

// --each DIR: the directory's image files (by extension, not recursive), sorted by name, so the
// order of the lines does not depend on the file system. --each LIST: one path per line (blank
// lines and lines starting with # skipped); "-" reads the list from stdin.
Result<std::vector<std::string>> batch_image_list(const std::string& spec) {
    namespace fs = std::filesystem;
    std::vector<std::string> paths;
    std::error_code ec;
    if (spec != "-" && fs::is_directory(spec, ec)) {
        fs::directory_iterator it(spec, ec), end;
        GLIMPSE_CHECK_OR_RETURN(!ec, io_error, "--each %s: cannot list the directory: %s", spec.c_str(),
                                ec.message().c_str());
        for (; it != end; it.increment(ec)) {
            if (ec) break;
            if (!has_image_extension(it->path())) continue;
            std::error_code type_ec;
            if (it->is_directory(type_ec)) continue;
            paths.push_back(it->path().string());
        }
        GLIMPSE_CHECK_OR_RETURN(!ec, io_error, "--each %s: cannot list the directory: %s", spec.c_str(),
                                ec.message().c_str());
        std::sort(paths.begin(), paths.end());
        GLIMPSE_CHECK_OR_RETURN(!paths.empty(), invalid_argument,
                                "--each %s: no image files in the directory (.png, .jpg, .jpeg, .bmp, .gif, .tga, "
                                ".psd, .hdr, .pic, .pnm, .ppm, .pgm)",
                                spec.c_str());
        return paths;
    }
    std::ifstream file;
    if (spec != "-") {
        GLIMPSE_CHECK_OR_RETURN(fs::is_regular_file(spec, ec), io_error,
                                "--each %s: not a directory or a readable list file", spec.c_str());
        file.open(spec);
        GLIMPSE_CHECK_OR_RETURN(file.is_open(), io_error, "--each %s: cannot open the list: %s", spec.c_str(),
                                std::strerror(errno));
    }
    std::istream& in = spec == "-" ? std::cin : file;
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        paths.push_back(line);
    }
    GLIMPSE_CHECK_OR_RETURN(!in.bad(), io_error, "--each %s: reading the list failed", spec.c_str());
    GLIMPSE_CHECK_OR_RETURN(!paths.empty(), invalid_argument, "--each %s: the list names no images", spec.c_str());
    return paths;
}

// The progress bar of --each, on stderr, only when stderr is a terminal: redirected to a file
// or a CI log, carriage returns would just pile up as noise.
class ProgressBar {
public:
    explicit ProgressBar(size_t total)
        : total_(total), enabled_(isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()) {}
    void update(size_t done, size_t failed) {
        if (!enabled_) return;
        constexpr int kWidth = 30;
        const int filled = total_ ? static_cast<int>(kWidth * done / total_) : kWidth;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        const double rate = s > 0 ? static_cast<double>(done) / s : 0;
        std::string bar(static_cast<size_t>(filled), '#');
        bar.resize(kWidth, '.');
        std::fprintf(stderr, "\r[%s] %zu/%zu images, %zu failed, %.2f images/s", bar.c_str(), done, total_, failed,
                     rate);
        if (rate > 0 && done < total_) std::fprintf(stderr, ", %.0f s left  ", static_cast<double>(total_ - done) / rate);
        else std::fputs("          ", stderr);
        std::fflush(stderr);
    }
    // Clears the bar's line before anything else is printed on stderr.
    void clear() {
        if (enabled_) std::fputs("\r\033[K", stderr);
    }

private:
    size_t total_;
    bool enabled_;
    std::chrono::steady_clock::time_point start_;
};

struct CaptionSettings {
    std::string prompt;
    int64_t n_predict = 256;
    SamplingParams sampling;
    bool random_seed = false;  // no --seed: a fresh seed per answer, as separate runs would have
    const ArgParser* options = nullptr;  // --over-budget, for a calibrated plan's budget
};

// glimpse caption --each: every image captioned on its own by the one loaded model, one JSON line
// per image on stdout ({"image", "caption", "ms"}; with --json the token counts and timings too). An
// image that cannot be decoded or does not fit the context gets {"image", "error"} and a message on
// stderr, and the run goes on; the exit status is 1 if any failed.
int run_each(Vlm& vlm, const std::vector<std::string>& paths, const CaptionSettings& settings, bool json_details) {
    std::signal(SIGPIPE, SIG_IGN);
    ProgressBar progress(paths.size());
    const auto run_start = std::chrono::steady_clock::now();
    size_t failed = 0, done = 0;
    bool told_cut = false;
    std::random_device entropy;
    for (const std::string& path : paths) {
        const auto t0 = std::chrono::steady_clock::now();
        std::string line;
        Status status;
        auto image = image_decode_file(path);
        if (!image.is_ok()) status = image.status();
        Result<VlmPrompt> prompt = Status::ok();
        if (status.is_ok()) {
            prompt = vlm.build_prompt(settings.prompt, std::vector<ImageU8>{*image});
            if (!prompt.is_ok()) status = prompt.status();
        }
        int64_t n_predict = settings.n_predict;
        if (status.is_ok()) {
            const int64_t n_ctx = vlm.context_length();
            if (prompt->n_positions() > n_ctx) {
                status = vlm.check_context(prompt->n_positions(), 0);
            } else if (prompt->n_positions() + n_predict > n_ctx) {
                n_predict = n_ctx - prompt->n_positions();
                if (!told_cut) {
                    progress.clear();
                    std::fprintf(stderr, "glimpse: -n %lld does not fit the context after %s's prompt; generating at "
                                         "most %lld tokens (said once)\n",
                                 static_cast<long long>(settings.n_predict), path.c_str(),
                                 static_cast<long long>(n_predict));
                    told_cut = true;
                }
            }
        }
        if (status.is_ok()) {
            // A calibrated plan's budget, per image: an image over it fails like an undecodable one.
            if (vlm.pruning_plan() && vlm.pruning_plan()->calibration) progress.clear();  // room for a warning
            status = check_plan_budget(vlm, *prompt, {&*image}, n_predict, *settings.options, path);
        }
        const double preprocess_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::string answer;
        GenerationStats st;
        if (status.is_ok()) {
            SamplingParams sp = settings.sampling;
            if (settings.random_seed) sp.seed = entropy();
            status = vlm.generate(*prompt, static_cast<int>(n_predict), sp,
                                  [&](std::string_view bytes) {
                                      answer.append(bytes);
                                      return true;
                                  },
                                  &st);
        }
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        ++done;
        if (status.is_ok()) {
            line = "{\"image\": " + json_text(path) + ", \"caption\": " + json_text(answer) + ", \"ms\": " +
                   json_number(ms);
            if (json_details) line += ", " + generation_json_members(st, preprocess_ms);
            line += "}\n";
        } else {
            ++failed;
            progress.clear();
            std::fprintf(stderr, "glimpse: %s\n", status.message().c_str());
            line = "{\"image\": " + json_text(path) + ", \"error\": " + json_text(status.message()) + "}\n";
        }
        if (!write_stdout(line)) {
            progress.clear();
            return fail(std::string("cannot write the results to stdout: ") + std::strerror(errno));
        }
        progress.update(done, failed);
    }
    progress.clear();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    std::fprintf(stderr, "glimpse: captioned %zu of %zu images in %.1f s (%.2f images/s), %zu failed; threads %d; "
                         "peak RSS %.1f MiB\n",
                 done - failed, paths.size(), s, s > 0 ? static_cast<double>(done) / s : 0.0, failed, vlm.n_threads(),
                 mib(peak_rss_bytes()));
    print_memory(vlm.memory());
    return finish_stdout(failed == 0 ? 0 : kExitFailure);
}

int cmd_caption(int argc, char** argv) {
    ArgParser a("glimpse caption", "-m TEXT.gguf --mmproj MMPROJ.gguf --image IMG [options]",
                "Describes an image (or answers a question about it) and streams the answer to stdout.\n"
                "Timings and memory are printed to stderr. Flags follow llama-mtmd-cli where they overlap.\n"
                "Models: SmolVLM GGUF pairs (text model + mmproj), e.g. ggml-org/SmolVLM-256M-Instruct-GGUF on\n"
                "Hugging Face, and LLaVA-1.5-style pairs (use --chat-template vicuna).");
    add_model_and_pruning_options(a);
    a.repeated("--image", "FILE", "image to describe (JPEG, PNG, BMP, GIF, TGA, PSD, HDR, PNM)");
    a.option("-p,--prompt", "TEXT", "the question or instruction", kDefaultPrompt);
    a.option("-n,--n-predict", "N", "maximum tokens to generate; generation also stops at end-of-generation", "256");
    a.option("--temp", "T", "sampling temperature; 0 = greedy (deterministic)", "0.2");
    a.option("--top-k", "N", "top-k sampling", "40");
    a.option("--top-p", "P", "top-p sampling", "0.95");
    a.option("--min-p", "P", "min-p sampling", "0.05");
    a.option("--seed", "N", "random seed for sampling (default: random)");
    a.option("--keep-map", "PNG", "with one --image: write it with the visual tokens the pruning dropped dimmed");
    a.option("--each", "DIR|LIST",
             "instead of --image: caption each image of DIR (or each path in the file LIST, one per line; - reads "
             "stdin) on its own with one loaded model. One JSON line per image on stdout: {\"image\", \"caption\", "
             "\"ms\"}, or {\"image\", \"error\"} for one that fails (the run goes on; exit status 1 at the end); "
             "a progress bar on stderr when it is a terminal");
    a.flag("--json", "print the answer as one JSON object with token counts, timings and memory (with --each: "
                     "token counts and timings on every line)");
    if (std::optional<int> done = parse_command_line(a, argc, argv)) return *done;
    std::string err;
    const std::vector<std::string> image_paths = a.get_all("--image");
    const bool each = a.has("--each");
    if (each && (!image_paths.empty() || a.has("--keep-map"))) {
        return usage_error("--each captions the images it lists one by one; it does not take --image or --keep-map");
    }
    if (image_paths.empty() && !each) return usage_error("--image FILE (or --each DIR|LIST) is required (see --help)");
    if (a.has("--keep-map") && image_paths.size() != 1) {
        return usage_error("--keep-map draws one image; give exactly one --image");
    }
    if (static_cast<int64_t>(image_paths.size()) > limits::kMaxImagesPerPrompt) {
        return usage_error(std::to_string(image_paths.size()) + " --image flags; one prompt takes at most " +
                           std::to_string(limits::kMaxImagesPerPrompt) + " images");
    }
    int64_t n_predict = 256, top_k = 40, seed = -1;
    double temp = 0.2, top_p = 0.95, min_p = 0.05;
    if (!a.get_int("--n-predict", 0, limits::kMaxContextLength, &n_predict, &err) ||
        !a.get_int("--top-k", 0, INT32_MAX, &top_k, &err) || !a.get_int("--seed", -1, INT64_MAX, &seed, &err) ||
        !a.get_float("--temp", &temp, &err) || !a.get_float("--top-p", &top_p, &err) ||
        !a.get_float("--min-p", &min_p, &err)) {
        return usage_error(err);
    }
    if (!(top_p > 0 && top_p <= 1) || !(min_p >= 0 && min_p < 1) || !(temp >= 0)) {
        return usage_error("sampling parameters out of range (--temp >= 0, 0 < --top-p <= 1, 0 <= --min-p < 1)");
    }
    auto [cfg, config_exit_code] = model_config_or_exit(a);
    if (!cfg) return config_exit_code;
    std::vector<std::string> each_paths;
    if (each) {
        auto listed = batch_image_list(a.get("--each"));  // before the model loads: an empty list is an early error
        if (!listed.is_ok()) return fail(listed.status().message());
        each_paths = std::move(*listed);
    }

    double load_ms = 0;
    auto vlm = load_model(a, *cfg, &load_ms);
    if (!vlm.is_ok()) return fail(vlm.status().message());
    if (each) {
        CaptionSettings settings;
        settings.prompt = a.get("--prompt");
        settings.n_predict = n_predict;
        settings.sampling.temperature = static_cast<float>(temp);
        settings.sampling.top_k = static_cast<int>(top_k);
        settings.sampling.top_p = static_cast<float>(top_p);
        settings.sampling.min_p = static_cast<float>(min_p);
        settings.sampling.seed = seed >= 0 ? static_cast<uint64_t>(seed) : 0;
        settings.random_seed = seed < 0;
        settings.options = &a;
        return run_each(**vlm, each_paths, settings, a.has("--json"));
    }

    auto t0 = std::chrono::steady_clock::now();
    std::vector<ImageU8> images;
    for (const std::string& path : image_paths) {
        auto img = image_decode_file(path);
        if (!img.is_ok()) return fail(img.status().message());
        images.push_back(std::move(*img));
    }
    auto prompt = (*vlm)->build_prompt(a.get("--prompt"), images);
    if (!prompt.is_ok()) return fail(prompt.status().message());
    // The prompt must fit the context; the answer is cut to what is left of it (said on stderr).
    const int64_t n_ctx = (*vlm)->context_length();
    if (prompt->n_positions() > n_ctx) return fail((*vlm)->check_context(prompt->n_positions(), 0).message());
    if (prompt->n_positions() + n_predict > n_ctx) {
        const int64_t left = n_ctx - prompt->n_positions();
        std::fprintf(stderr, "glimpse: -n %lld does not fit: the prompt takes %lld of the model's %lld positions; "
                             "generating at most %lld tokens\n",
                     static_cast<long long>(n_predict), static_cast<long long>(prompt->n_positions()),
                     static_cast<long long>(n_ctx), static_cast<long long>(left));
        n_predict = left;
    }
    const double preprocess_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::vector<const ImageU8*> image_ptrs;
    for (const ImageU8& img : images) image_ptrs.push_back(&img);
    if (Status fits = check_plan_budget(**vlm, *prompt, image_ptrs, n_predict, a); !fits.is_ok()) return fail(fits.message());

    SamplingParams sp;
    sp.temperature = static_cast<float>(temp);
    sp.top_k = static_cast<int>(top_k);
    sp.top_p = static_cast<float>(top_p);
    sp.min_p = static_cast<float>(min_p);
    sp.seed = seed >= 0 ? static_cast<uint64_t>(seed) : std::random_device{}();
    GenerationStats st;
    // A closed pipe must end the run with an error, not kill it silently or be ignored.
    std::signal(SIGPIPE, SIG_IGN);
    int write_errno = 0;
    const bool json = a.has("--json");
    std::string answer;  // --json: the answer is printed inside the object, after generation
    Status s = (*vlm)->generate(*prompt, static_cast<int>(n_predict), sp,
                                [&](std::string_view bytes) {
                                    if (json) {
                                        answer.append(bytes);
                                        return true;
                                    }
                                    if (write_stdout(bytes)) return true;
                                    write_errno = errno;
                                    return false;
                                },
                                &st);
    if (!s.is_ok()) return fail(s.message());
    if (json) {
        std::string images = "[";
        for (size_t i = 0; i < image_paths.size(); ++i) images += (i ? ", " : "") + json_text(image_paths[i]);
        images += "]";
        const double total_ms = preprocess_ms + st.encode_ms + st.prefill_ms + st.decode_ms;
        const std::string object = "{\"images\": " + images + ", \"prompt\": " + json_text(a.get("--prompt")) +
                                   ", \"answer\": " + json_text(answer) + ", \"ms\": " + json_number(total_ms) +
                                   ", \"load_ms\": " + json_number(load_ms) + ", " +
                                   generation_json_members(st, preprocess_ms) +
                                   str_printf(", \"threads\": %d, \"memory_bytes\": ", (*vlm)->n_threads()) +
                                   memory_json((*vlm)->memory()) + "}\n";
        if (!write_stdout(object)) {
            return fail(std::string("cannot write the answer to stdout: ") + std::strerror(errno));
        }
    } else if (st.stopped_by_caller || !write_stdout("\n")) {
        return fail(std::string("cannot write the answer to stdout: ") + std::strerror(write_errno ? write_errno : errno));
    }
    if (a.has("--keep-map")) {
        Status km = write_keep_map(**vlm, images[0], a.get("--keep-map"));
        if (!km.is_ok()) return fail(km.message());
    }

    std::fprintf(stderr, "\nload: %.1f ms | image decode + preprocess: %.1f ms (%zu image(s), %lld chunks)\n", load_ms,
                 preprocess_ms, images.size(), static_cast<long long>(st.n_image_chunks));
    std::fprintf(stderr, "image encode: %.1f ms (%.1f ms per chunk, %lld image tokens kept of %lld)\n", st.encode_ms,
                 st.n_image_chunks ? st.encode_ms / static_cast<double>(st.n_image_chunks) : 0.0,
                 static_cast<long long>(st.n_image_tokens), static_cast<long long>(st.n_image_tokens_in));
    std::fprintf(stderr, "prefill: %.1f ms for %lld tokens (%.1f tokens/s)\n", st.prefill_ms,
                 static_cast<long long>(st.n_prompt),
                 st.prefill_ms > 0 ? 1000.0 * static_cast<double>(st.n_prompt) / st.prefill_ms : 0.0);
    std::fprintf(stderr, "decode: %.1f ms for %lld tokens (%.2f tokens/s)%s\n", st.decode_ms,
                 static_cast<long long>(st.n_generated),
                 st.decode_ms > 0 ? 1000.0 * static_cast<double>(st.n_generated) / st.decode_ms : 0.0,
                 st.stopped_at_eog ? ", stopped at end of generation" : "");
    std::fprintf(stderr, "threads: %d\n", (*vlm)->n_threads());
    print_memory((*vlm)->memory());
    std::fprintf(stderr, "memory (peak RSS of this process): %.1f MiB\n", mib(peak_rss_bytes()));
    return finish_stdout(0);
}

// Metadata is the file's text, not ours: control bytes (escape sequences that would drive the
// terminal, newlines that would forge lines) are shown as \xNN.
std::string printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

void print_metadata(const GgufFile& f) {
    std::fprintf(stdout, "%s: GGUF v%u, %zu tensors, %zu metadata keys\n", printable(f.path()).c_str(), f.version(),
                 f.tensors().size(), f.metadata().size());
    for (const auto& [key, v] : f.metadata()) {
        std::string shown;
        if (v.type == GgufType::string) shown = std::string(v.as_string.substr(0, 80)) + (v.as_string.size() > 80 ? "..." : "");
        else if (v.type == GgufType::array) shown = std::string("[") + gguf_type_name(v.elem_type) + " x " + std::to_string(v.count) + "]";
        else if (v.is_float()) shown = std::to_string(v.as_f64);
        else if (v.type == GgufType::boolean) shown = v.as_u64 ? "true" : "false";
        else shown = std::to_string(v.as_i64);
        std::fprintf(stdout, "  %-48s %s\n", printable(key).c_str(), printable(shown).c_str());
    }
}

// Visual tokens the language model spends on a prompt: each decoder layer's, averaged over the
// layers, and the last layer's (decoder stages shrink both; without them both are the tokens
// that enter the language model).
struct DecoderVisualTokens {
    double per_layer = 0;
    int64_t last_layer = 0;
};
DecoderVisualTokens decoder_visual_tokens(const Vlm& vlm, const VlmPrompt& prompt) {
    if (const DecoderPruning* dp = vlm.decoder_pruning()) {
        return {static_cast<double>(dp->visual_rows_layer_sum()) / static_cast<double>(vlm.text().hparams().n_layer),
                dp->final_visual_rows()};
    }
    return {static_cast<double>(prompt.n_image_tokens()), prompt.n_image_tokens()};
}

// inspect --json: the memory plan of Vlm::memory() by part, with what it was planned for.
// image_buffers is what caption will hold for this prompt (preprocessed tiles + the image
// embeddings, as Vlm::generate counts them), which memory() only knows after an encode.
std::string memory_plan_json(const Vlm& vlm, const ArgParser& a, const VlmPrompt& prompt, const ImageU8& img,
                             int64_t n_predict) {
    const TextHparams& th = vlm.text().hparams();
    const VlmMemory m = planned_request_memory(vlm, prompt);
    auto num = [](int64_t v) { return std::to_string(v); };
    std::string o = "{\n  \"format\": \"glimpse.memory-plan\",\n  \"version\": 1,\n";
    o += "  \"text_model\": " + json_quote(a.get("--model")) + ",\n  \"mmproj\": " + json_quote(a.get("--mmproj")) + ",\n";
    o += "  \"plan\": " + (a.has("--plan") ? json_quote(a.get("--plan")) : std::string("null")) + ",\n";
    o += "  \"kv_type\": " + json_quote(vlm.kv_type_name()) + ",\n";
    o += "  \"numerics\": " + json_quote(numerics_name(vlm.numerics())) + ",\n";
    if (vlm.kv_mixed_high_share() >= 0) o += "  \"kv_high_share\": " + str_printf("%.17g", vlm.kv_mixed_high_share()) + ",\n";
    if (vlm.kv_mixed_high_share() >= 0) {
        // Mixed: each decoder layer's share (a plan's list, or the one share) and its planned KV bytes.
        std::string shares, layer_bytes;
        for (double s : vlm.kv_mixed_high_shares()) shares += (shares.empty() ? "" : ", ") + str_printf("%.17g", s);
        for (int64_t b : vlm.kv_cache_layer_bytes()) layer_bytes += (layer_bytes.empty() ? "" : ", ") + std::to_string(b);
        o += "  \"kv_high_share_per_layer\": [" + shares + "],\n  \"kv_cache_layer_bytes\": [" + layer_bytes + "],\n";
    }
    o += "  \"image\": {\"width\": " + num(img.width) + ", \"height\": " + num(img.height) + ", \"chunks\": " +
         num(static_cast<int64_t>(prompt.chunks.size())) + ", \"tokens\": " + num(prompt.n_image_tokens()) +
         ", \"tokens_before_pruning\": " + num(prompt.n_image_tokens_in());
    const DecoderVisualTokens spent = decoder_visual_tokens(vlm, prompt);
    o += ", \"tokens_per_decoder_layer\": " + str_printf("%.2f", spent.per_layer) +
         ", \"tokens_last_decoder_layer\": " + num(spent.last_layer) + "},\n";
    o += "  \"prompt_positions\": " + num(prompt.n_positions()) + ",\n  \"n_predict\": " + num(n_predict) + ",\n";
    // The decoder plan's KV slots (Vlm::prepare): prompt + max(n_predict, 1), in every layer.
    o += "  \"kv_cache_layout\": {\"layers\": " + num(th.n_layer) + ", \"slots\": " +
         num(prompt.n_positions() + std::max<int64_t>(n_predict, 1)) + ", \"row_values\": " +
         num(th.n_head_kv * th.head_dim) + "},\n";
    o += "  \"bytes\": {\"weights\": " + num(m.weights) + ", \"kv_cache\": " + num(m.kv_cache) +
         ", \"activations\": " + num(m.vision_arena + m.text_arena) + ", \"image_buffers\": " + num(m.image_buffers) +
         ", \"total\": " + num(m.total()) + "}\n}\n";
    return o;
}

int cmd_inspect(int argc, char** argv) {
    ArgParser a("glimpse inspect", "-m TEXT.gguf --mmproj MMPROJ.gguf [--image IMG] [-p PROMPT] [-n N]",
                "Prints both files' metadata, the model's dimensions, and the memory plan for captioning an image\n"
                "(the given one, or a 1024x768 image) with the given prompt and token budget.");
    add_model_and_pruning_options(a);
    a.option("--image", "FILE", "plan for this image's size (default: a 1024x768 image)");
    a.option("-p,--prompt", "TEXT", "prompt to plan for", kDefaultPrompt);
    a.option("-n,--n-predict", "N", "tokens to plan for; cut to what the context leaves", "256");
    a.flag("--json", "print only the memory plan, as JSON on stdout (bytes by part: weights, kv_cache, "
                     "activations, image_buffers, total; docs/kv-cache.md)");
    if (std::optional<int> done = parse_command_line(a, argc, argv)) return *done;
    std::string err;
    int64_t n_predict = 256;
    if (!a.get_int("--n-predict", 0, limits::kMaxContextLength, &n_predict, &err)) return usage_error(err);
    auto [cfg, config_exit_code] = model_config_or_exit(a);
    if (!cfg) return config_exit_code;
    double load_ms = 0;
    auto vlm = load_model(a, *cfg, &load_ms);
    if (!vlm.is_ok()) return fail(vlm.status().message());
    const bool json = a.has("--json");
    if (!json) {
        print_metadata((*vlm)->text().file());
        print_metadata((*vlm)->vision().file());
    }

    const TextHparams& th = (*vlm)->text().hparams();
    const VisionHparams& vh = (*vlm)->vision().hparams();
    if (!json) {
        std::fprintf(stdout, "\ntext: llama, %lld layers, width %lld, %lld heads / %lld KV heads, FFN %lld, vocab %lld, %s\n",
                     static_cast<long long>(th.n_layer), static_cast<long long>(th.n_embd),
                     static_cast<long long>(th.n_head), static_cast<long long>(th.n_head_kv),
                     static_cast<long long>(th.n_ff), static_cast<long long>(th.n_vocab),
                     th.tied_embeddings ? "tied embeddings" : "separate output");
        std::fprintf(stdout, "vision: %s, %lldpx chunks, patch %lld, %lld layers (%lld run), width %lld, %lld tokens/chunk\n",
                     vh.projector == ProjectorType::idefics3 ? "idefics3 (SigLIP)" : "mlp (CLIP)",
                     static_cast<long long>(vh.image_size), static_cast<long long>(vh.patch_size),
                     static_cast<long long>(vh.n_layer), static_cast<long long>(vh.n_layer_used),
                     static_cast<long long>(vh.n_embd), static_cast<long long>(vh.n_tokens_per_chunk()));
        std::fprintf(stdout, "chat template: %s, context %lld positions\n", (*vlm)->chat_template().name().c_str(),
                     static_cast<long long>((*vlm)->context_length()));
    }

    ImageU8 img;
    if (a.has("--image")) {
        auto decoded = image_decode_file(a.get("--image"));
        if (!decoded.is_ok()) return fail(decoded.status().message());
        img = std::move(*decoded);
    } else {
        img.width = 1024;
        img.height = 768;
        img.rgb.assign(static_cast<size_t>(img.width) * img.height * 3, 128);
    }
    auto prompt = (*vlm)->build_prompt(a.get("--prompt"), {img});
    if (!prompt.is_ok()) return fail(prompt.status().message());
    const int64_t n_ctx = (*vlm)->context_length();
    if (prompt->n_positions() <= n_ctx && prompt->n_positions() + n_predict > n_ctx) {
        std::fprintf(stderr, "glimpse: -n %lld does not fit the context of %lld after a %lld-position prompt; "
                             "planning for %lld\n",
                     static_cast<long long>(n_predict), static_cast<long long>(n_ctx),
                     static_cast<long long>(prompt->n_positions()), static_cast<long long>(n_ctx - prompt->n_positions()));
        n_predict = n_ctx - prompt->n_positions();
    }
    Status s = (*vlm)->prepare(*prompt, static_cast<int>(n_predict));
    if (!s.is_ok()) return fail(s.message());
    if (cfg->pruning && cfg->pruning->calibration) {
        // A calibrated plan's budget holds for its geometry and lengths only: a request that plans more
        // is refused (docs/calibration.md).
        const PruningCalibration& c = *cfg->pruning->calibration;
        std::fprintf(json ? stderr : stdout,
                     "plan calibrated (%s) for a %dx%d image, %lld prompt tokens, %lld answer tokens: budget %.2f MiB\n",
                     c.search.c_str(), c.image_width, c.image_height, static_cast<long long>(c.prompt_tokens),
                     static_cast<long long>(c.answer_tokens), mib(c.budget_bytes));
        if (Status fits = check_plan_budget(**vlm, *prompt, {&img}, n_predict, a); !fits.is_ok()) return fail(fits.message());
    }
    if (json) {
        for (const GgufFile* f : {&(*vlm)->text().file(), &(*vlm)->vision().file()}) {
            const Status intact = f->mapping()->check_intact();
            if (!intact.is_ok()) return fail(intact.message());
        }
        const std::string text = memory_plan_json(**vlm, a, *prompt, img, n_predict);
        if (!write_stdout(text)) return fail(std::string("cannot write the answer to stdout: ") + std::strerror(errno));
        return finish_stdout(0);
    }
    if (const DecoderPruning* dp = (*vlm)->decoder_pruning()) {
        // Decoder-layer stages (issue 24): visual rows per layer and the KV cache they save.
        const int64_t layers = (*vlm)->text().hparams().n_layer;
        for (size_t i = 0; i < dp->steps().size(); ++i) {
            const DecoderPruneStep& st = dp->steps()[i];
            const char* how = st.select == DecoderSelect::uniform_grid ? " (a uniform grid, no score)"
                              : st.debias                              ? " (attention debiased by the RoPE bias map)"
                                                                       : "";
            std::fprintf(stdout, "pruning: %s after decoder layer %d, keeping %lld of the visual tokens%s\n",
                         (*vlm)->decoder_stages()[i].method.c_str(), st.layer, static_cast<long long>(st.keep), how);
            if (dp->merged_rows()[i] > 0) {
                std::fprintf(stdout, "pruning: %s after decoder layer %d recycles the dropped tokens into %lld merged token(s)\n",
                             (*vlm)->decoder_stages()[i].method.c_str(), st.layer,
                             static_cast<long long>(dp->merged_rows()[i]));
            }
        }
        const int64_t unpruned = (*vlm)->unpruned_kv_bytes(prompt->n_positions() + n_predict);
        std::fprintf(stdout, "decoder pruning: %.1f visual tokens per decoder layer on average (the image has %lld, "
                             "%lld enter the language model); KV cache %.2f MiB instead of %.2f MiB without the "
                             "decoder stages (%.1f %% saved)\n",
                     static_cast<double>(dp->visual_rows_layer_sum()) / static_cast<double>(layers),
                     static_cast<long long>(prompt->n_image_tokens_in()), static_cast<long long>(prompt->n_image_tokens()),
                     mib(dp->kv_cache_bytes()), mib(unpruned),
                     100.0 * (1.0 - static_cast<double>(dp->kv_cache_bytes()) / static_cast<double>(unpruned)));
    }
    if (const PruneStage* ps = (*vlm)->pruning_stage()) {
        std::fprintf(stdout, "pruning: %s after the projector, keeping %lld of %lld visual tokens\n", ps->method.c_str(),
                     static_cast<long long>(prompt->n_image_tokens()), static_cast<long long>(prompt->n_image_tokens_in()));
    }
    if ((*vlm)->vision_merge().any()) {  // ToMe inside the encoder (--merge or a plan's tome stage)
        const std::vector<int64_t> counts = vision_merge_token_counts((*vlm)->vision().hparams(), (*vlm)->vision_merge());
        std::fprintf(stdout, "merging: tome inside the encoder, %lld -> %lld tokens per chunk (restored before the "
                             "projector)\n",
                     static_cast<long long>(counts.front()), static_cast<long long>(counts.back()));
    }
    std::fprintf(stdout, "plan for a %dx%d image: %zu chunks, %lld image tokens, %lld prompt positions, %lld new tokens\n",
                 img.width, img.height, prompt->chunks.size(), static_cast<long long>(prompt->n_image_tokens()),
                 static_cast<long long>(prompt->n_positions()), static_cast<long long>(n_predict));
    const DecoderVisualTokens spent = decoder_visual_tokens(**vlm, *prompt);
    std::fprintf(stdout, "visual tokens per decoder layer: %.1f on average, %lld in the last layer (of %lld before "
                         "pruning)\n",
                 spent.per_layer, static_cast<long long>(spent.last_layer),
                 static_cast<long long>(prompt->n_image_tokens_in()));
    if ((*vlm)->numerics() == Numerics::fast) {
        std::fprintf(stdout, "numerics: fast: %lld encoder/projector matrices quantized to Q8_0 at load (%.1f MiB as "
                             "Q8_0; the weights below, \"in the files\" too, count these copies, not the mmproj's)\n",
                     static_cast<long long>((*vlm)->vision().requantized_matrices()),
                     mib((*vlm)->vision().requantized_bytes()));
    }
    VlmMemory m = (*vlm)->memory();
    std::fprintf(stdout, "memory: weights %.1f MiB (%.1f MiB in the files), vision activations %.1f MiB, "
                         "text activations %.1f MiB, KV cache %.1f MiB, total %.1f MiB (plus preprocessed tiles)\n",
                 mib(m.weights), mib(m.file_weights), mib(m.vision_arena), mib(m.text_arena), mib(m.kv_cache), mib(m.total()));
    if ((*vlm)->kv_mixed_high_share() >= 0) {
        // Mixed KV: each decoder layer's share of prompt rows kept in q8_0 and its planned bytes.
        const std::vector<double>& shares = (*vlm)->kv_mixed_high_shares();
        const std::vector<int64_t> layer_bytes = (*vlm)->kv_cache_layer_bytes();
        std::fprintf(stdout, "mixed KV cache per layer (q8_0 share, bytes):");
        for (size_t l = 0; l < shares.size() && l < layer_bytes.size(); ++l) {
            std::fprintf(stdout, " %zu: %g %lld;", l, shares[l], static_cast<long long>(layer_bytes[l]));
        }
        std::fprintf(stdout, "\n");
    }
    // The metadata printed above was read from the mappings: a file truncated or rewritten in
    // place meanwhile (its zero-filled pages) makes the report wrong, so it fails like caption.
    for (const GgufFile* f : {&(*vlm)->text().file(), &(*vlm)->vision().file()}) {
        const Status intact = f->mapping()->check_intact();
        if (!intact.is_ok()) return fail(intact.message());
    }
    return finish_stdout(0);
}

int cmd_eval(int argc, char** argv) {
    ArgParser a("glimpse eval", "-m TEXT.gguf --mmproj MMPROJ.gguf --scenes FROM:TO|DIR [options]",
                "Measures a model on procedural scenes (tools/scenes): exact-match accuracy per question kind\n"
                "(color, count, exist, position, text), yes/no precision/recall/F1, and how well captions name the\n"
                "scene's objects, text and background. Questions are asked verbatim; decoding is greedy, so the\n"
                "report is deterministic. FROM:TO generates scenes [FROM, TO) from --preset, changed by the\n"
                "options below; DIR reads scenes written by glimpse-scenes (<seed>.json + image). The bundled\n"
                "models were trained and are measured on --preset bundled.");
    add_model_and_pruning_options(a);
    a.option("--scenes", "FROM:TO|DIR", "seed range or scene directory");
    a.option("--preset", "NAME", "scene distribution for FROM:TO: default or bundled", "default");
    a.option("--caption-prompt", "TEXT", "prompt for captions", "Describe this image.");
    a.option("--min-side", "PX", "scene image sides at least PX (default: the preset's)");
    a.option("--max-side", "PX", "scene image sides at most PX (default: the preset's)");
    a.option("--min-objects", "N", "objects per scene, at least (default: the preset's)");
    a.option("--max-objects", "N", "objects per scene, at most (default: the preset's)");
    a.option("--qa-per-scene", "N", "questions per scene (default: the preset's)");
    a.flag("--json", "print the report as JSON on stdout");
    a.flag("--samples", "include every prompt, expected answer and answer in the JSON");
    if (std::optional<int> done = parse_command_line(a, argc, argv)) return *done;
    std::string err;
    EvalOptions opt;
    const std::string spec = a.get("--scenes");
    if (spec.empty()) return usage_error("--scenes FROM:TO|DIR is required (see --help)");
    const size_t colon = spec.find(':');
    if (colon != std::string::npos) {
        // Seeds are decimal, below 2^63, at most kMaxEvalScenes of them (about a day of work).
        constexpr uint64_t kMaxEvalScenes = 1000000;
        auto parse_seed = [](const std::string& text, uint64_t* out) {
            if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos) return false;
            *out = std::stoull(text);
            return *out <= static_cast<uint64_t>(INT64_MAX);
        };
        uint64_t from = 0, to = 0;
        if (!parse_seed(spec.substr(0, colon), &from) || !parse_seed(spec.substr(colon + 1), &to) || to <= from) {
            return usage_error("--scenes: bad range '" + spec + "' (FROM:TO, decimal seeds below 2^63, TO > FROM)");
        }
        if (to - from > kMaxEvalScenes) {
            return usage_error("--scenes: " + std::to_string(to - from) + " scenes; at most " +
                               std::to_string(kMaxEvalScenes) + " in one run");
        }
        opt.seed_begin = from;
        opt.seed_end = to;
    } else {
        opt.scene_dir = spec;
    }
    Result<scenes::SceneOptions> preset = scenes::scene_preset(a.get("--preset"));
    if (!preset.is_ok()) return usage_error("--preset: " + preset.status().message());
    if (!opt.scene_dir.empty() && a.has("--preset")) {
        return usage_error("--preset applies to a seed range; a scene directory already holds its scenes");
    }
    opt.scene_options = *preset;
    int64_t v = 0;
    struct IntOpt {
        const char* name;
        int64_t lo, hi;
        int* dst;
    } ints[] = {{"--min-side", 16, 4096, &opt.scene_options.min_side},
                {"--max-side", 16, 4096, &opt.scene_options.max_side},
                {"--min-objects", 0, 64, &opt.scene_options.min_objects},
                {"--max-objects", 0, 64, &opt.scene_options.max_objects},
                {"--qa-per-scene", 0, 256, &opt.scene_options.qa_per_scene}};
    for (const IntOpt& io : ints) {
        if (!a.has(io.name)) continue;
        v = *io.dst;
        if (!a.get_int(io.name, io.lo, io.hi, &v, &err)) return usage_error(err);
        *io.dst = static_cast<int>(v);
    }
    if (opt.scene_options.min_side > opt.scene_options.max_side ||
        opt.scene_options.min_objects > opt.scene_options.max_objects) {
        return usage_error("--min-side/--min-objects must not exceed --max-side/--max-objects");
    }
    opt.caption_prompt = a.get("--caption-prompt");
    opt.keep_samples = a.has("--samples");
    opt.over_budget = a.has("--over-budget");
    auto [cfg, config_exit_code] = model_config_or_exit(a);
    if (!cfg) return config_exit_code;
    double load_ms = 0;
    auto vlm = load_model(a, *cfg, &load_ms);
    if (!vlm.is_ok()) return fail(vlm.status().message());
    auto report = run_eval(**vlm, opt);
    if (!report.is_ok()) return fail(report.status().message());
    if (report->over_budget_requests > 0) {
        std::fprintf(stderr, "glimpse: %lld of %lld requests (captions and questions) ran over the calibrated plan's "
                             "budget (--over-budget)\n",
                     static_cast<long long>(report->over_budget_requests),
                     static_cast<long long>(report->captions + report->questions));
    }
    if (a.has("--json")) {
        std::fputs((eval_report_json(*report, a.get("--model")) + "\n").c_str(), stdout);
    } else {
        std::fputs(eval_report_text(*report).c_str(), stdout);
    }
    return finish_stdout(0);
}

void usage() {
    std::fputs(
        "usage: glimpse COMMAND [options]\n\n"
        "commands:\n"
        "  caption   describe an image or answer a question about it\n"
        "  inspect   print a model pair's metadata and memory plan\n"
        "  eval      measure a model's accuracy on procedural scenes\n"
        "  quantize  write a GGUF with quantized weights (q8_0, q4_0, q4_k, ...), as llama-quantize does\n"
        "  serve     answer OpenAI-style chat requests with images over HTTP (docs/serve.md)\n"
        "  tune      time the matmul kernels on a model's shapes on this CPU and save the fastest\n"
        "  calibrate find the pruning plan that fits a memory budget with the least measured loss\n\n"
        "Run 'glimpse COMMAND --help' for a command's options.\n"
        "Environment: GLIMPSE_MAX_ISA=scalar|avx2|avx512|amx|neon|dotprod|i8mm caps the kernels' instruction set.\n",
        stdout);
    std::fputs(kExitStatusHelp, stdout);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
        usage();
        return argc < 2 ? kExitUsage : finish_stdout(0);
    }
    // A misspelt cap would otherwise run other kernels than the user asked for.
    if (Status cap = cpu_isa_cap_status(); !cap.is_ok()) return usage_error(cap.message());
    const std::string cmd = argv[1];
    if (cmd == "caption") return cmd_caption(argc - 2, argv + 2);
    if (cmd == "inspect") return cmd_inspect(argc - 2, argv + 2);
    if (cmd == "eval") return cmd_eval(argc - 2, argv + 2);
    if (cmd == "quantize") return quantize_command("glimpse quantize", argc - 2, argv + 2);
    if (cmd == "serve") return serve::serve_command(argc - 2, argv + 2, {add_model_and_pruning_options, serve_model_config});
    if (cmd == "tune") return tune_command("glimpse tune", argc - 2, argv + 2);
    if (cmd == "calibrate") return calibrate_command("glimpse calibrate", argc - 2, argv + 2);
    return fail("unknown command '" + cmd + "' (caption, inspect, eval, quantize, serve, tune, calibrate; see --help)", 2);
}
