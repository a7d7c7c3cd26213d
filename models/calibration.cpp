// Calibration: loss against the unpruned model, planned memory, greedy lever search (models/calibration.h).
#include "models/calibration.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "models/calibration_budget.h"
#include "models/image_preprocess.h"
#include "runtime/json.h"

namespace glimpse {

namespace {

std::string format_mib(int64_t bytes) { return str_printf("%.2f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0)); }

// Log-softmax in double: logits:(n) -> out:(n).
void log_softmax(const float* logits, int64_t n, std::vector<double>* out) {
    out->resize(static_cast<size_t>(n));
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t v = 0; v < n; ++v) mx = std::max(mx, static_cast<double>(logits[v]));
    double sum = 0;
    for (int64_t v = 0; v < n; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
    const double lse = mx + std::log(sum);
    for (int64_t v = 0; v < n; ++v) (*out)[static_cast<size_t>(v)] = static_cast<double>(logits[v]) - lse;
}

// The greedy token: the first maximum, as sample_token picks it at temperature 0.
int32_t first_argmax(const float* logits, int64_t n) {
    int64_t best = 0;
    for (int64_t v = 1; v < n; ++v) {
        if (logits[v] > logits[best]) best = v;
    }
    return static_cast<int32_t>(best);
}

// The next smaller keep of kCalibrationKeeps below `keep` (nullopt at the last).
std::optional<double> next_keep(double keep) {
    for (double k : kCalibrationKeeps) {
        if (k < keep - 1e-12) return k;
    }
    return std::nullopt;
}

// The next larger keep of kCalibrationKeeps above `keep` (nullopt at 1).
std::optional<double> previous_keep(double keep) {
    std::optional<double> up;
    for (double k : kCalibrationKeeps) {
        if (k > keep + 1e-12) up = k;
    }
    return up;
}

constexpr int kKvLevels = static_cast<int>(sizeof(kCalibrationKvTypes) / sizeof(kCalibrationKvTypes[0]));

// The q8_0 share of each KV level (-1: not a mixed level), as kCalibrationKvCaches states it.
constexpr double kKvLevelShares[] = {-1, -1, 0.5, 0.25, -1};
static_assert(sizeof(kKvLevelShares) / sizeof(kKvLevelShares[0]) == kKvLevels, "one share per KV level");

}  // namespace

Result<int64_t> parse_memory_size(std::string_view text) {
    const std::string original(text);
    auto bad = [&](const char* why) {
        return Status::error(StatusCode::invalid_argument,
                             "memory size '%s': %s (e.g. 300MiB, 1.5GiB, 300MB or a byte count such as 300000000)",
                             original.c_str(), why);
    };
    size_t i = 0;
    while (i < text.size() && text[i] == ' ') ++i;
    const size_t num_begin = i;
    bool digits = false, dot = false;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || (text[i] == '.' && !dot))) {
        if (text[i] == '.') dot = true;
        else digits = true;
        ++i;
    }
    if (!digits) return bad("no number");
    const std::string number(text.substr(num_begin, i - num_begin));
    if (number.size() > 24) return bad("the number is too long");
    while (i < text.size() && text[i] == ' ') ++i;
    std::string unit;
    for (; i < text.size(); ++i) unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(text[i]))));
    while (!unit.empty() && unit.back() == ' ') unit.pop_back();
    double scale = 0;
    struct Unit {
        const char* name;
        double scale;
    };
    static constexpr Unit kUnits[] = {{"", 1},
                                      {"b", 1},
                                      {"k", 1024.0},
                                      {"kib", 1024.0},
                                      {"kb", 1e3},
                                      {"m", 1024.0 * 1024},
                                      {"mib", 1024.0 * 1024},
                                      {"mb", 1e6},
                                      {"g", 1024.0 * 1024 * 1024},
                                      {"gib", 1024.0 * 1024 * 1024},
                                      {"gb", 1e9},
                                      {"t", 1024.0 * 1024 * 1024 * 1024},
                                      {"tib", 1024.0 * 1024 * 1024 * 1024},
                                      {"tb", 1e12}};
    for (const Unit& u : kUnits) {
        if (unit == u.name) scale = u.scale;
    }
    if (scale == 0) return bad("unknown unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)");
    if (dot && scale == 1) return bad("a byte count must be whole");
    const double value = std::strtod(number.c_str(), nullptr) * scale;
    if (!(value >= 1)) return bad("must be at least one byte");
    if (value >= 9007199254740992.0) return bad("too large");
    return static_cast<int64_t>(std::floor(value));
}

std::vector<int> calibration_decoder_layers(int n_layers) {
    std::vector<int> layers;
    for (int q = 1; q <= 3; ++q) {
        const int l = static_cast<int>(std::lround(static_cast<double>(n_layers) * q / 4.0)) - 1;
        if (l < 0 || l > n_layers - 2) continue;
        if (layers.empty() || layers.back() < l) layers.push_back(l);
    }
    return layers;
}

// The decoder keeps a configuration actually applies: never above the projector's or an earlier layer's.
static std::vector<double> effective_decoder_keeps(const CalibrationConfig& c) {
    std::vector<double> eff(c.decoder_keep.size());
    double prev = c.projector_keep;
    for (size_t i = 0; i < eff.size(); ++i) prev = eff[i] = std::min(c.decoder_keep[i], prev);
    return eff;
}

std::vector<int> calibration_tile_caps(int width, int height, int rows, int cols) {
    std::vector<int> caps;
    for (int cap = rows * cols - 1; cap >= 1; --cap) {
        const TileGrid g = idefics3_capped_grid(width, height, rows, cols, cap);
        const int last = caps.empty() ? rows * cols : caps.back();
        if (g.rows * g.cols < last) caps.push_back(g.rows * g.cols);
    }
    return caps;
}

// The per-layer q8_0 shares a configuration applies: empty unless its KV level is mixed and some
// layer's share is below the level's (canonical: a list equal to the level's share is no list).
static std::vector<double> effective_kv_layer_shares(const CalibrationConfig& c) {
    if (c.kv_level < 0 || c.kv_level >= kKvLevels || kKvLevelShares[c.kv_level] < 0) return {};
    const double level = kKvLevelShares[c.kv_level];
    std::vector<double> eff;
    bool below = false;
    for (double s : c.kv_layer_shares) {
        eff.push_back(std::min(s, level));
        below = below || eff.back() < level;
    }
    return below ? eff : std::vector<double>{};
}

Result<PruningPlan> calibration_plan(const CalibrationConfig& config, const CalibrationSettings& settings) {
    GLIMPSE_CHECK_OR_RETURN(config.kv_level >= 0 && config.kv_level < kKvLevels, invalid_argument,
                            "calibration: KV level %d out of range", config.kv_level);
    GLIMPSE_CHECK_OR_RETURN(config.decoder_keep.size() == settings.decoder_layers.size(), invalid_argument,
                            "calibration: %zu decoder keeps for %zu lever layers", config.decoder_keep.size(),
                            settings.decoder_layers.size());
    // Built as the document the reader parses, so the plan is checked exactly as a file would be.
    std::string stages;
    if (config.projector_keep < 1.0) {
        GLIMPSE_CHECK_OR_RETURN(!settings.projector_method.empty(), invalid_argument,
                                "calibration: a projector keep without a projector method");
        stages += str_printf("{\"at\": \"after_projector\", \"method\": %s, \"keep\": %.17g}",
                             json_quote(settings.projector_method).c_str(), config.projector_keep);
    }
    const std::vector<double> eff = effective_decoder_keeps(config);
    double prev = config.projector_keep;
    for (size_t i = 0; i < eff.size(); ++i) {
        if (eff[i] >= prev) continue;  // keeps every token entering: no stage
        if (!stages.empty()) stages += ", ";
        stages += str_printf("{\"at\": \"decoder_layer\", \"layer\": %d, \"method\": \"pyramiddrop\", \"keep\": %.17g, "
                             "\"args\": {\"positions\": \"original\"}}",
                             settings.decoder_layers[i], eff[i]);
        prev = eff[i];
    }
    // ToMe inside the encoder: the encoder_layer stage leads the pipeline.
    if (config.encoder_merge > 0) {
        stages = str_printf("{\"at\": \"encoder_layer\", \"method\": \"tome\", \"args\": {\"r\": %.17g}}",
                            config.encoder_merge) +
                 (stages.empty() ? "" : ", ") + stages;
    }
    // The tile cap (0: the model's own tiling, no key).
    const std::string tiles = config.max_tiles > 0 ? str_printf(", \"max_tiles\": %d", config.max_tiles) : "";
    std::string kv_cache = kCalibrationKvCaches[config.kv_level];
    const std::vector<double> layer_shares = effective_kv_layer_shares(config);
    if (!layer_shares.empty()) {
        // The per-layer KV lever: one share per decoder layer.
        kv_cache = "{\"type\": \"mixed\", \"high_precision_share\": [";
        for (size_t l = 0; l < layer_shares.size(); ++l) kv_cache += str_printf("%s%.17g", l ? ", " : "", layer_shares[l]);
        kv_cache += "]}";
    }
    const std::string doc = str_printf(
        "{\"format\": \"glimpse.pruning-plan\", \"version\": 1, \"stages\": [%s], \"kv_cache\": %s%s}",
        stages.c_str(), kv_cache.c_str(), tiles.c_str());
    return pruning_plan_parse(doc, "calibration plan");
}

Result<std::unique_ptr<Calibrator>> Calibrator::create(CalibrationSettings settings, std::vector<CalibrationSample> samples) {
    GLIMPSE_CHECK_OR_RETURN(!samples.empty(), invalid_argument, "calibration: no samples (images or scenes) to calibrate on");
    GLIMPSE_CHECK_OR_RETURN(settings.answer_tokens >= 1 && settings.answer_tokens <= 4096, invalid_argument,
                            "calibration: answer tokens %d out of [1, 4096]", settings.answer_tokens);
    GLIMPSE_CHECK_OR_RETURN(settings.image_width >= 1 && settings.image_height >= 1, invalid_argument,
                            "calibration: image size %dx%d", settings.image_width, settings.image_height);
    GLIMPSE_CHECK_OR_RETURN(settings.process_overhead >= 0 && settings.overhead_weight_share >= 0 &&
                                settings.overhead_weight_share <= 10,
                            invalid_argument, "calibration: process overhead %lld bytes + %g x weights out of range",
                            static_cast<long long>(settings.process_overhead), settings.overhead_weight_share);
    std::unique_ptr<Calibrator> c(new Calibrator());
    c->settings_ = std::move(settings);
    c->samples_ = std::move(samples);
    VlmConfig cfg = c->settings_.base;
    cfg.pruning.reset();
    cfg.kv_type = DType::f16;
    GLIMPSE_ASSIGN_OR_RETURN(std::unique_ptr<Vlm> vlm, Vlm::load(c->settings_.text_path, c->settings_.mmproj_path, cfg));
    c->n_decoder_layers_ = static_cast<int>(vlm->text().hparams().n_layer);
    c->n_vocab_ = vlm->text().hparams().n_vocab;
    c->model_name_ = vlm->model_name();
    if (!c->settings_.decoder_levers) c->settings_.decoder_layers.clear();
    else if (c->settings_.decoder_layers.empty()) c->settings_.decoder_layers = calibration_decoder_layers(c->n_decoder_layers_);
    for (int l : c->settings_.decoder_layers) {
        GLIMPSE_CHECK_OR_RETURN(l >= 0 && l <= c->n_decoder_layers_ - 2, invalid_argument,
                                "calibration: decoder lever layer %d; this language model prunes after layers 0..%d", l,
                                c->n_decoder_layers_ - 2);
    }
    // The ToMe lever: the merge fractions this encoder can run (a block merges at most half its tokens).
    if (c->settings_.tome_levers) {
        for (double r : kCalibrationMerges) {
            if (!vision_merge_schedule(vlm->vision().hparams(), r).is_ok()) break;
            c->merge_steps_.push_back(r);
        }
        if (c->merge_steps_.size() < 2) c->merge_steps_.clear();
    }
    // The tile lever: the natural grid of the calibrated geometry, then every smaller tile count the
    // capped grid rule reaches (models/image_preprocess.h idefics3_capped_grid), largest first.
    ImageU8 geometry;
    geometry.width = c->settings_.image_width;
    geometry.height = c->settings_.image_height;
    geometry.rgb.assign(static_cast<size_t>(geometry.width) * static_cast<size_t>(geometry.height) * 3, 128);
    GLIMPSE_ASSIGN_OR_RETURN(PreprocessedImage natural, vlm->preprocess_image(geometry));
    if (natural.has_overview && natural.grid_rows > 0) {
        c->natural_tiles_ = natural.grid_rows * natural.grid_cols;
        if (c->settings_.tile_levers) {
            c->tile_caps_ = calibration_tile_caps(geometry.width, geometry.height, natural.grid_rows, natural.grid_cols);
        }
    }
    return c;
}

CalibrationConfig Calibrator::unpruned() const {
    CalibrationConfig c;
    c.decoder_keep.assign(settings_.decoder_layers.size(), 1.0);
    return c;
}

CalibrationConfig Calibrator::smallest() const {
    constexpr double kLast = kCalibrationKeeps[sizeof(kCalibrationKeeps) / sizeof(kCalibrationKeeps[0]) - 1];
    CalibrationConfig c = unpruned();
    if (!settings_.projector_method.empty()) c.projector_keep = kLast;
    for (double& k : c.decoder_keep) k = kLast;
    if (settings_.kv_levers) c.kv_level = kKvLevels - 1;
    if (!merge_steps_.empty()) c.encoder_merge = merge_steps_.back();
    if (!tile_caps_.empty()) c.max_tiles = tile_caps_.back();
    return c;
}

std::string Calibrator::key(const CalibrationConfig& c) const {
    std::string k = str_printf("p%.6g/kv%d", c.projector_keep, c.kv_level);
    for (double d : effective_decoder_keeps(c)) k += str_printf("/d%.6g", d);
    if (c.encoder_merge > 0) k += str_printf("/m%.6g", c.encoder_merge);
    if (c.max_tiles > 0) k += str_printf("/t%d", c.max_tiles);
    for (double s : effective_kv_layer_shares(c)) k += str_printf("/kvs%.6g", s);
    return k;
}

Result<std::unique_ptr<Vlm>> Calibrator::load(const CalibrationConfig& config) const {
    VlmConfig cfg = settings_.base;
    GLIMPSE_ASSIGN_OR_RETURN(PruningPlan plan, calibration_plan(config, settings_));
    cfg.kv_type = DType::f16;  // the plan's kv_cache.type decides (kv_type_of_plan)
    cfg.original_positions = true;
    cfg.pruning = std::move(plan);
    return Vlm::load(settings_.text_path, settings_.mmproj_path, cfg);
}

Result<VlmMemory> Calibrator::planned_memory(Vlm& vlm) {
    ImageU8 img;  // only the geometry matters to the planner
    img.width = settings_.image_width;
    img.height = settings_.image_height;
    img.rgb.assign(static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3, 128);
    GLIMPSE_ASSIGN_OR_RETURN(VlmPrompt prompt, vlm.build_prompt(settings_.plan_prompt, {img}));
    GLIMPSE_RETURN_IF_ERROR(vlm.prepare(prompt, settings_.answer_tokens));
    plan_prompt_text_tokens_ = prompt.n_positions() - prompt.n_image_tokens();
    return planned_request_memory(vlm, prompt);  // image buffers included, as `inspect --json` counts them
}

Status Calibrator::run_teacher(const CalibrationProgressFn& progress) {
    if (!teachers_.empty()) return Status::ok();
    const auto t0 = std::chrono::steady_clock::now();
    VlmConfig cfg = settings_.base;
    cfg.pruning.reset();
    cfg.kv_type = DType::f16;
    GLIMPSE_ASSIGN_OR_RETURN(std::unique_ptr<Vlm> vlm, Vlm::load(settings_.text_path, settings_.mmproj_path, cfg));
    SamplingParams greedy;
    greedy.temperature = 0;
    std::vector<CalibrationTeacher> teachers(samples_.size());
    std::vector<double> lp;
    for (size_t i = 0; i < samples_.size(); ++i) {
        GLIMPSE_ASSIGN_OR_RETURN(VlmPrompt prompt, vlm->build_prompt(samples_[i].prompt, {samples_[i].image}));
        GenerationStats st;
        GLIMPSE_RETURN_IF_ERROR(vlm->generate(prompt, settings_.answer_tokens, greedy, nullptr, &st));
        CalibrationTeacher& t = teachers[i];
        t.answer = vlm->last_generated();
        t.positions = static_cast<int64_t>(t.answer.size()) + (st.stopped_at_eog ? 1 : 0);
        t.log_probs.resize(static_cast<size_t>(t.positions * n_vocab_));
        t.argmax.resize(static_cast<size_t>(t.positions));
        auto record = [&](int64_t step, const float* logits) {
            if (step >= t.positions) return;
            log_softmax(logits, n_vocab_, &lp);
            std::copy(lp.begin(), lp.end(), t.log_probs.begin() + step * n_vocab_);
            t.argmax[static_cast<size_t>(step)] = first_argmax(logits, n_vocab_);
        };
        GLIMPSE_RETURN_IF_ERROR(vlm->score_answer(prompt, t.answer, record));
        // Teacher forcing on its own answer must reproduce it (the same computation): a check
        // that score_answer and generate agree, without which the loss would mean nothing.
        for (size_t s = 0; s < t.answer.size(); ++s) {
            GLIMPSE_CHECK_OR_RETURN(t.argmax[s] == t.answer[s], internal,
                                    "calibration sample %zu: teacher forcing gives token %d at answer position %zu, "
                                    "greedy decoding gave %d",
                                    i, t.argmax[s], s, t.answer[s]);
        }
        if (progress) {
            progress({static_cast<double>(i + 1) / static_cast<double>(samples_.size()),
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0, "unpruned answers"});
        }
    }
    teachers_ = std::move(teachers);
    return Status::ok();
}

Result<CalibrationLoss> Calibrator::measure_loss(Vlm& vlm) const {
    CalibrationLoss loss;
    double kl_sum = 0;
    int64_t agree = 0;
    std::vector<double> lq;
    for (size_t i = 0; i < samples_.size(); ++i) {
        const CalibrationTeacher& t = teachers_[i];
        GLIMPSE_ASSIGN_OR_RETURN(VlmPrompt prompt, vlm.build_prompt(samples_[i].prompt, {samples_[i].image}));
        bool same = true;
        auto compare = [&](int64_t step, const float* logits) {
            if (step >= t.positions) return;
            log_softmax(logits, n_vocab_, &lq);
            const float* lp = t.log_probs.data() + step * n_vocab_;
            double kl = 0;  // KL(p || q) = sum p (log p - log q)
            for (int64_t v = 0; v < n_vocab_; ++v) {
                const double p = std::exp(static_cast<double>(lp[v]));
                if (p > 0) kl += p * (static_cast<double>(lp[v]) - lq[static_cast<size_t>(v)]);
            }
            kl_sum += std::max(kl, 0.0);
            loss.positions += 1;
            same = same && first_argmax(logits, n_vocab_) == t.argmax[static_cast<size_t>(step)];
        };
        GLIMPSE_RETURN_IF_ERROR(vlm.score_answer(prompt, t.answer, compare));
        agree += same ? 1 : 0;
    }
    loss.mean_kl = loss.positions > 0 ? kl_sum / static_cast<double>(loss.positions) : 0.0;
    loss.agreement = static_cast<double>(agree) / static_cast<double>(samples_.size());
    return loss;
}

Result<CalibrationPoint> Calibrator::plan_memory(const CalibrationConfig& config) { return point_of(config, false); }

Result<CalibrationPoint> Calibrator::evaluate(const CalibrationConfig& config) { return point_of(config, true); }

Result<CalibrationPoint> Calibrator::point_of(const CalibrationConfig& config, bool with_loss) {
    const std::string k = key(config);
    auto cached = cache_.find(k);
    if (cached != cache_.end() && (cached->second.has_loss || !with_loss)) return cached->second.point;
    if (with_loss) GLIMPSE_RETURN_IF_ERROR(run_teacher());
    GLIMPSE_ASSIGN_OR_RETURN(std::unique_ptr<Vlm> vlm, load(config));
    CalibrationPoint p;
    p.config = config;
    GLIMPSE_ASSIGN_OR_RETURN(p.memory, planned_memory(*vlm));
    p.overhead = calibration_process_overhead(p.memory.weights, settings_.process_overhead, settings_.overhead_weight_share);
    p.total = p.memory.total() + p.overhead;
    if (with_loss) {
        GLIMPSE_ASSIGN_OR_RETURN(p.loss, measure_loss(*vlm));
        ++evaluations_;
    }
    cache_[k] = {p, with_loss};
    return p;
}

std::vector<std::pair<std::string, CalibrationConfig>> Calibrator::lever_steps(const CalibrationConfig& c,
                                                                              LeverDirection direction) const {
    const bool prune = direction == LeverDirection::prune;
    // One notch along kCalibrationKeeps: down when pruning, back up when undoing.
    auto step_keep = [prune](double keep) { return prune ? next_keep(keep) : previous_keep(keep); };
    const char* undo = prune ? "" : "undo: ";
    std::vector<std::pair<std::string, CalibrationConfig>> out;
    CalibrationConfig base = c;
    base.decoder_keep = effective_decoder_keeps(c);  // canonical: what the plan applies
    const std::string here = key(base);
    // Lever: the after-projector keep.
    if (!settings_.projector_method.empty()) {
        if (std::optional<double> k = step_keep(base.projector_keep)) {
            CalibrationConfig n = base;
            n.projector_keep = *k;
            out.emplace_back(str_printf("%s%s keep %.4g", undo, settings_.projector_method.c_str(), *k), n);
        }
    }
    // Levers: the keep of each decoder layer.
    for (size_t i = 0; i < base.decoder_keep.size(); ++i) {
        if (std::optional<double> k = step_keep(base.decoder_keep[i])) {
            CalibrationConfig n = base;
            n.decoder_keep[i] = *k;
            // Raised above an earlier stage's keep, which clamps it: no change. (A step down always changes.)
            if (key(n) == here) continue;
            out.emplace_back(str_printf("%sdecoder layer %d keep %.4g", undo, settings_.decoder_layers[i], *k), n);
        }
    }
    // Lever: the KV cache type, one place along kCalibrationKvTypes.
    const int kv_level = base.kv_level + (prune ? 1 : -1);
    if (settings_.kv_levers && kv_level >= 0 && kv_level < kKvLevels) {
        CalibrationConfig n = base;
        n.kv_level = kv_level;
        out.emplace_back(str_printf("%sKV cache %s", undo, kCalibrationKvTypes[n.kv_level]), n);
    }
    // Lever: ToMe merging inside the encoder, one place along merge_steps_.
    if (!merge_steps_.empty()) {
        const auto at = std::find(merge_steps_.begin(), merge_steps_.end(), base.encoder_merge);
        const ptrdiff_t i = (at - merge_steps_.begin()) + (prune ? 1 : -1);
        if (at != merge_steps_.end() && i >= 0 && i < static_cast<ptrdiff_t>(merge_steps_.size())) {
            CalibrationConfig n = base;
            n.encoder_merge = merge_steps_[static_cast<size_t>(i)];
            out.emplace_back(str_printf("%stome merge %.4g", undo, n.encoder_merge), n);
        }
    }
    // Lever: the tile cap, one place along natural tiling (0), tile_caps_[0], tile_caps_[1], ...
    if (!tile_caps_.empty()) {
        const auto at = std::find(tile_caps_.begin(), tile_caps_.end(), base.max_tiles);
        const ptrdiff_t here_index = base.max_tiles == 0 ? 0 : (at - tile_caps_.begin()) + 1;
        const ptrdiff_t i = here_index + (prune ? 1 : -1);
        if ((base.max_tiles == 0 || at != tile_caps_.end()) && i >= 0 && i <= static_cast<ptrdiff_t>(tile_caps_.size())) {
            CalibrationConfig n = base;
            n.max_tiles = i == 0 ? 0 : tile_caps_[static_cast<size_t>(i - 1)];
            out.emplace_back(n.max_tiles > 0 ? str_printf("%smax tiles %d", undo, n.max_tiles)
                                             : str_printf("%smax tiles %d (natural)", undo, natural_tiles_),
                             n);
        }
    }
    // Levers: at a mixed KV level, one decoder layer's q8_0 share one notch along
    // kCalibrationKvLayerShares (down when pruning, back up to at most the level's share when undoing).
    if (settings_.kv_levers && settings_.kv_layer_levers && base.kv_level >= 0 && base.kv_level < kKvLevels &&
        kKvLevelShares[base.kv_level] >= 0) {
        const double level = kKvLevelShares[base.kv_level];
        std::vector<double> shares = effective_kv_layer_shares(base);
        if (shares.empty()) shares.assign(static_cast<size_t>(n_decoder_layers_), level);
        for (size_t l = 0; l < shares.size(); ++l) {
            std::optional<double> to;
            for (double s : kCalibrationKvLayerShares) {
                if (prune && s < shares[l] - 1e-12 && !to) to = s;
                if (!prune && s > shares[l] + 1e-12 && s <= level + 1e-12) to = s;
            }
            if (!to) continue;
            CalibrationConfig n = base;
            n.kv_layer_shares = shares;
            n.kv_layer_shares[l] = *to;
            if (effective_kv_layer_shares(n).empty()) n.kv_layer_shares.clear();  // back to the level's own share
            out.emplace_back(str_printf("%sKV layer %zu share %.4g", undo, l, *to), n);
        }
    }
    return out;
}

Result<std::vector<CalibrationPoint>> Calibrator::search(int64_t budget, const CalibrationProgressFn& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    GLIMPSE_ASSIGN_OR_RETURN(CalibrationPoint minimum, plan_memory(smallest()));
    if (minimum.total > budget) {
        const VlmMemory& m = minimum.memory;
        return Status::error(StatusCode::out_of_range,
                             "memory budget %lld bytes (%s) is below the smallest plan the levers reach for a %dx%d "
                             "image and %d answer tokens: %lld bytes (%s = weights %s + activations %s + KV cache %s + "
                             "image buffers %s + process overhead %s)",
                             static_cast<long long>(budget), format_mib(budget).c_str(), settings_.image_width,
                             settings_.image_height, settings_.answer_tokens, static_cast<long long>(minimum.total),
                             format_mib(minimum.total).c_str(), format_mib(m.weights).c_str(),
                             format_mib(m.vision_arena + m.text_arena).c_str(), format_mib(m.kv_cache).c_str(),
                             format_mib(m.image_buffers).c_str(), format_mib(minimum.overhead).c_str());
    }
    GLIMPSE_RETURN_IF_ERROR(run_teacher([&](const CalibrationProgress& p) {
        if (progress) progress(p);
    }));
    GLIMPSE_ASSIGN_OR_RETURN(CalibrationPoint current, evaluate(unpruned()));
    current.step = "unpruned";
    std::vector<CalibrationPoint> path{current};
    int step = 0;
    while (current.total > budget) {
        ++step;
        const auto options = lever_steps(current.config, LeverDirection::prune);
        GLIMPSE_CHECK_OR_RETURN(!options.empty(), internal,
                                "calibration: no lever step left at %lld bytes, above the budget of %lld although the "
                                "smallest configuration fits",
                                static_cast<long long>(current.total), static_cast<long long>(budget));
        std::optional<CalibrationPoint> best;
        double best_ratio = 0;
        int64_t best_saved = 0;
        for (const auto& [label, cfg] : options) {
            if (progress) {
                // Of the way from the unpruned total to the budget (the ETA's basis; steps save unequal bytes).
                const double way = static_cast<double>(path.front().total - budget);
                const double gone = static_cast<double>(path.front().total - current.total);
                progress({std::clamp(gone / way, 0.0, 1.0), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                          evaluations_, str_printf("step %d: trying %s", step, label.c_str())});
            }
            GLIMPSE_ASSIGN_OR_RETURN(CalibrationPoint p, evaluate(cfg));
            p.step = label;
            const int64_t saved = current.total - p.total;
            // A step that saves nothing is taken only when no step saves anything (it may unlock others).
            const double ratio = saved > 0 ? (p.loss.mean_kl - current.loss.mean_kl) / static_cast<double>(saved)
                                           : std::numeric_limits<double>::infinity();
            const bool better = !best || ratio < best_ratio || (ratio == best_ratio && saved > best_saved) ||
                                (std::isinf(ratio) && std::isinf(best_ratio) && p.loss.mean_kl < best->loss.mean_kl);
            if (better) {
                best = p;
                best_ratio = ratio;
                best_saved = saved;
            }
        }
        current = *best;
        path.push_back(current);
    }
    // Greedy never revisits a step: a cheap early step (a KV precision) may be worth undoing once a
    // later one (a keep) has made room. Undo single steps while one still fits and lowers the loss.
    for (bool improved = true; improved;) {
        improved = false;
        std::optional<CalibrationPoint> best;
        for (const auto& [label, cfg] : lever_steps(current.config, LeverDirection::undo)) {
            if (progress) {
                progress({1.0, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), evaluations_,
                          str_printf("refine: trying %s", label.c_str())});
            }
            GLIMPSE_ASSIGN_OR_RETURN(CalibrationPoint p, evaluate(cfg));
            p.step = label;
            if (p.total <= budget && p.loss.mean_kl < (best ? best->loss.mean_kl : current.loss.mean_kl)) best = p;
        }
        if (best) {
            current = *best;
            path.push_back(current);
            improved = true;
        }
    }
    if (progress) {
        progress({1.0, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), evaluations_,
                  str_printf("%d steps", step)});
    }
    return path;
}

}  // namespace glimpse
