#include "models/vlm.h"

#include "models/limits.h"
#include "models/pruning_layout.h"
#include "ops/kernel_registry.h"
#include "ops/prune_score.h"
#include "ops/prune_select.h"
#include "ops/topk.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>

namespace glimpse {
namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

Idefics3Params idefics3_params(const VisionHparams& h, int max_tiles) {
    Idefics3Params p;
    p.tile_size = static_cast<int>(h.image_size);
    p.longest_edge = static_cast<int>(h.preproc_image_size);
    p.max_tiles = max_tiles;
    for (int c = 0; c < 3; ++c) {
        p.mean[c] = h.image_mean[c];
        p.std[c] = h.image_std[c];
    }
    return p;
}

LlavaParams llava_params(const VisionHparams& h) {
    LlavaParams p;
    p.image_size = static_cast<int>(h.image_size);
    for (int c = 0; c < 3; ++c) {
        p.mean[c] = h.image_mean[c];
        p.std[c] = h.image_std[c];
    }
    return p;
}

// Count of non-overlapping occurrences of `needle`.
size_t count_occurrences(std::string_view hay, std::string_view needle) {
    size_t n = 0;
    for (size_t pos = hay.find(needle); pos != std::string_view::npos; pos = hay.find(needle, pos + needle.size())) ++n;
    return n;
}

}  // namespace

int64_t VlmPrompt::n_image_tokens() const {
    int64_t n = 0;
    for (const Chunk& c : chunks) n += c.n_tokens;
    return n;
}

int64_t VlmPrompt::n_image_tokens_in() const {
    int64_t n = 0;
    for (const Chunk& c : chunks) n += c.n_tokens_in;
    return n;
}

Result<DType> kv_type_of_plan(const PruningPlan& plan, DType configured) {
    if (plan.kv_cache_type == "f16") return configured;  // absent in the file, or f16: the caller's choice
    DType planned = DType::f16;
    if (plan.kv_cache_type == "q8_0" || plan.kv_cache_type == "mixed") planned = DType::q8_0;
    else if (plan.kv_cache_type == "q4_0") planned = DType::q4_0;
    else return Status::error(StatusCode::invalid_argument, "pruning plan: unknown kv_cache.type '%s'", plan.kv_cache_type.c_str());
    // f16 is VlmConfig's default: only a different explicit choice conflicts with the plan.
    GLIMPSE_CHECK_OR_RETURN(configured == DType::f16 || configured == planned, invalid_argument,
                            "pruning plan: kv_cache.type %s conflicts with the KV cache type %s asked for (--kv-type); "
                            "give one of them",
                            plan.kv_cache_type.c_str(), dtype_name(configured));
    return planned;
}

Result<std::unique_ptr<Vlm>> Vlm::load(const std::string& text_path, const std::string& mmproj_path,
                                       const VlmConfig& config) {
    std::unique_ptr<Vlm> m(new Vlm());
    m->config_ = config;
    // Default: the CPUs this process may use (affinity mask), not every core of the machine.
    int threads = config.n_threads > 0 ? config.n_threads : usable_cpu_count();
    m->pool_ = std::make_unique<ThreadPool>(std::max(1, threads));

    GLIMPSE_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> text_file, GgufFile::open(text_path));
    GLIMPSE_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::from_gguf(*text_file));
    m->tokenizer_ = std::move(tok);
    GLIMPSE_ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::for_model(*text_file, config.chat_template));
    m->template_ = tmpl;
    const std::string_view anti = mtmd_cli_antiprompt(config.chat_template);
    if (!anti.empty()) m->antiprompt_ = m->tokenizer_->encode(anti, false, true);
    GLIMPSE_ASSIGN_OR_RETURN(m->text_, TextDecoder::from_file(std::move(text_file)));
    GLIMPSE_ASSIGN_OR_RETURN(m->vision_, VisionEncoder::load(mmproj_path, config.numerics, m->pool_.get()));
    m->text_->set_pack_pool(m->pool_.get());
    m->vision_->set_pack_pool(m->pool_.get());

    // Loading read metadata and copied small tensors; the weights are read again when packed.
    m->text_->file().mapping()->release_resident_pages();
    m->vision_->file().mapping()->release_resident_pages();

    const TextHparams& th = m->text_->hparams();
    const VisionHparams& vh = m->vision_->hparams();
    GLIMPSE_CHECK_OR_RETURN(vh.n_embd_out == th.n_embd, invalid_argument,
                            "%s produces %lld-wide image embeddings but %s expects %lld: the files are not a pair",
                            mmproj_path.c_str(), static_cast<long long>(vh.n_embd_out), text_path.c_str(),
                            static_cast<long long>(th.n_embd));
    GLIMPSE_CHECK_OR_RETURN(m->tokenizer_->n_vocab() <= th.n_vocab, invalid_argument,
                            "%s: the vocabulary has %d tokens but token_embd.weight only %lld rows", text_path.c_str(),
                            m->tokenizer_->n_vocab(), static_cast<long long>(th.n_vocab));
    GLIMPSE_RETURN_IF_ERROR(m->check_pair(text_path, mmproj_path));
    if (config.pruning) {
        GLIMPSE_ASSIGN_OR_RETURN(m->config_.kv_type, kv_type_of_plan(*config.pruning, config.kv_type));
        if (config.pruning->kv_cache_type == "mixed") {
            const std::vector<double>& list = config.pruning->kv_high_precision_shares;
            double share = config.pruning->kv_high_precision_share;
            if (!list.empty()) {
                GLIMPSE_CHECK_OR_RETURN(static_cast<int64_t>(list.size()) == th.n_layer, invalid_argument,
                                        "pruning plan: kv_cache.high_precision_share lists %zu shares, one per decoder "
                                        "layer, but %s has %lld decoder layers",
                                        list.size(), text_path.c_str(), static_cast<long long>(th.n_layer));
                GLIMPSE_CHECK_OR_RETURN(config.kv_mixed_high_share < 0, invalid_argument,
                                        "pruning plan: kv_cache.high_precision_share gives one share per layer; "
                                        "--kv-high-share %g conflicts with it (give one of them)",
                                        config.kv_mixed_high_share);
                share = 0;
                for (double s : list) share += s / static_cast<double>(list.size());  // reported, not planned
            }
            GLIMPSE_CHECK_OR_RETURN(config.kv_mixed_high_share < 0 || config.kv_mixed_high_share == share,
                                    invalid_argument,
                                    "pruning plan: kv_cache.high_precision_share %g conflicts with the share %g asked "
                                    "for (--kv-high-share); give one of them",
                                    share, config.kv_mixed_high_share);
            m->config_.kv_mixed_high_share = share;
        }
    }
    if (m->config_.kv_mixed_high_share >= 0) {
        GLIMPSE_CHECK_OR_RETURN(m->config_.kv_mixed_high_share <= 1 && m->config_.kv_type == DType::q8_0,
                                invalid_argument,
                                "mixed KV cache: share %g of q8_0 rows (in [0, 1]) over a %s cache (must be q8_0)",
                                m->config_.kv_mixed_high_share, dtype_name(m->config_.kv_type));
        GLIMPSE_RETURN_IF_ERROR(m->text_->check_kv_type(DType::q4_0));  // its low-precision rows
        std::vector<double> shares(static_cast<size_t>(th.n_layer), m->config_.kv_mixed_high_share);
        if (config.pruning && !config.pruning->kv_high_precision_shares.empty()) shares = config.pruning->kv_high_precision_shares;
        m->text_->set_kv_mixed_high_shares(std::move(shares));
    }
    GLIMPSE_RETURN_IF_ERROR(m->text_->check_kv_type(m->config_.kv_type));  // before any work
    GLIMPSE_ASSIGN_OR_RETURN(m->tokens_side_, ::glimpse::visual_tokens_per_side(vh));
    GLIMPSE_RETURN_IF_ERROR(m->setup_tile_budget(config));
    if (config.pruning) GLIMPSE_RETURN_IF_ERROR(m->setup_pruning(*config.pruning));
    // A plan glimpse calibrate made records the model it measured (its budget and loss hold only
    // for that model); hand-written plans name a model for information only (docs/pruning.md).
    if (config.pruning && config.pruning->calibration && !config.pruning->model.empty()) {
        const std::string here = m->model_name();
        GLIMPSE_CHECK_OR_RETURN(config.pruning->model == here, invalid_argument,
                                "pruning plan: calibrated for the model '%s', but %s is '%s'; calibrate again for this "
                                "model (glimpse calibrate)",
                                config.pruning->model.c_str(), text_path.c_str(), here.c_str());
    }
    // Token merging (ToMe): --merge R, or the plan's encoder_layer stage (method tome), which runs
    // exactly as --merge with its r (a number), or its per-block list.
    std::string merge_source = "--merge";
    size_t tome_index = 0;
    const PruneStage* tome = nullptr;
    for (size_t i = 0; config.pruning && i < config.pruning->stages.size(); ++i) {
        if (config.pruning->stages[i].site == PruneSite::encoder_layer) tome = &config.pruning->stages[tome_index = i];
    }
    if (tome) {
        double r = 0;
        for (const PruneArg& a : tome->args) r = a.name == "r" ? a.number : r;
        merge_source = str_printf("pruning plan: stages[%zu].args.r", tome_index);
        GLIMPSE_CHECK_OR_RETURN(config.encoder_merge == 0 || (tome->merge_per_block.empty() && config.encoder_merge == r),
                                invalid_argument,
                                "--merge %g (VlmConfig::encoder_merge) and the pruning plan's tome stage (stages[%zu]) "
                                "disagree; give one of them (or the same value)",
                                config.encoder_merge, tome_index);
        if (tome->merge_per_block.empty()) {
            GLIMPSE_ASSIGN_OR_RETURN(m->vision_merge_, vision_merge_schedule(vh, r, merge_source));
            m->config_.encoder_merge = r;
        } else {
            GLIMPSE_ASSIGN_OR_RETURN(m->vision_merge_, vision_merge_from_list(vh, tome->merge_per_block, merge_source));
        }
    } else {
        GLIMPSE_ASSIGN_OR_RETURN(m->vision_merge_, vision_merge_schedule(vh, config.encoder_merge));
    }
    GLIMPSE_CHECK_OR_RETURN(!m->vision_merge_.any() || (m->prune_tap_layers_.empty() && !m->hired_split_), unsupported,
                            "%s: token merging inside the encoder does not combine with a pruning method that "
                            "reads the encoder's attention (%s)",
                            merge_source.c_str(),
                            m->hired_split_ ? "tiles.split overview_scores" : m->prune_ ? m->prune_->method.c_str() : "taps");
    return m;
}

std::string Vlm::model_name() const {
    auto name = text_->file().get_string_or("general.name", "");
    return name.is_ok() ? std::string(*name) : std::string();
}

namespace {

// The after_projector methods encode_images runs (docs/pruning.md lists the rest as to come).
enum class WiredMethod { random, uniform, divprune, dart, fastervlm, attn_received, vtc_cls, visionzip, cdpruner };

std::optional<WiredMethod> wired_method(std::string_view name) {
    if (name == "random") return WiredMethod::random;
    if (name == "uniform") return WiredMethod::uniform;
    if (name == "divprune") return WiredMethod::divprune;
    if (name == "dart") return WiredMethod::dart;
    if (name == "fastervlm") return WiredMethod::fastervlm;
    if (name == "attn-received") return WiredMethod::attn_received;
    if (name == "vtc-cls") return WiredMethod::vtc_cls;
    if (name == "visionzip") return WiredMethod::visionzip;
    if (name == "cdpruner") return WiredMethod::cdpruner;
    return std::nullopt;
}

void* align64(std::vector<uint8_t>& v) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(v.data());
    return v.data() + ((64 - p % 64) % 64);
}

}  // namespace

Status Vlm::setup_tile_budget(const VlmConfig& config) {
    const int plan_tiles = config.pruning ? config.pruning->max_tiles : 0;
    GLIMPSE_CHECK_OR_RETURN(config.max_tiles >= 0 && config.max_tiles <= 1024 && plan_tiles >= 0 && plan_tiles <= 1024,
                            invalid_argument, "max tiles %d (config) / %d (pruning plan): a tile budget is 1..1024",
                            config.max_tiles, plan_tiles);
    GLIMPSE_CHECK_OR_RETURN(config.max_tiles == 0 || plan_tiles == 0 || config.max_tiles == plan_tiles,
                            invalid_argument,
                            "max tiles %d (--max-tiles, VlmConfig::max_tiles) and the pruning plan's max_tiles %d disagree; give one of them (or the "
                            "same value)",
                            config.max_tiles, plan_tiles);
    max_tiles_ = config.max_tiles > 0 ? config.max_tiles : plan_tiles;
    const VisionHparams& vh = vision_->hparams();
    GLIMPSE_CHECK_OR_RETURN(max_tiles_ == 0 || vh.projector == ProjectorType::idefics3, unsupported,
                            "max tiles %d (--max-tiles / the plan's max_tiles): this model's mmproj (mlp projector, "
                            "LLaVA layout) does not tile images: it sees each image as one %lld px view",
                            max_tiles_, static_cast<long long>(vh.image_size));
    return Status::ok();
}

PruningModelShape Vlm::pruning_shape(const PreprocessedImage& image) const {
    const VisionHparams& vh = vision_->hparams();
    PruningModelShape shape;
    shape.tokens_per_tile = tokens_side_ * tokens_side_;
    shape.pixel_shuffle = vh.projector == ProjectorType::idefics3 ? static_cast<int>(vh.scale_factor) : 1;
    shape.encoder_has_cls = vh.projector == ProjectorType::mlp && vh.has_class_embedding;
    shape.encoder_layers = static_cast<int>(vh.n_layer);
    shape.encoder_layers_run = static_cast<int>(vh.n_layer_used > 0 ? vh.n_layer_used : vh.n_layer);
    shape.decoder_layers = static_cast<int>(text_->hparams().n_layer);
    shape.n_tiles = image.has_overview ? image.grid_rows * image.grid_cols : 1;
    shape.has_overview = image.has_overview;
    return shape;
}

// Refuses, before any work, what this model cannot run: the plan's own checks, then a fit
// against the largest image the preprocessing makes (so [CLS] methods on SigLIP, layers the
// encoder does not run, methods not wired yet are named here, not at the first image).
Status Vlm::setup_pruning(const PruningPlan& full_plan) {
    // Decoder-layer stages are planned per prompt (setup_decoder_pruning); the rest below.
    GLIMPSE_RETURN_IF_ERROR(setup_decoder_pruning(full_plan));
    PruningPlan plan = full_plan;
    // The encoder's tome stage is the merge schedule (Vlm::load, vision_merge_); checked here with the rest.
    GLIMPSE_RETURN_IF_ERROR(pruning_plan_check(full_plan, "pruning plan"));
    std::erase_if(plan.stages, [](const PruneStage& st) {
        return st.site == PruneSite::decoder_layer || st.site == PruneSite::encoder_layer;
    });
    GLIMPSE_RETURN_IF_ERROR(pruning_plan_check(plan, "pruning plan"));
    if (plan.stages.empty()) return Status::ok();
    GLIMPSE_CHECK_OR_RETURN(plan.stages.size() == 1, unsupported,
                            "pruning plan: %zu stages outside the language model; this glimpse runs one "
                            "after_projector stage (and any number of decoder_layer stages)",
                            plan.stages.size());
    const PruneStage& st = plan.stages[0];
    GLIMPSE_CHECK_OR_RETURN(st.site == PruneSite::after_projector, unsupported,
                            "pruning plan: stages[0] prunes at %s; only after_projector stages run yet",
                            prune_site_name(st.site));
    // HiRED's split (overview_scores) scores each image's overview at kHiredScoreLayer before the
    // prompt is laid out (chunk_keep_counts); pruning_plan_fit refuses it without an overview.
    hired_split_ = st.tile_split == TileSplit::overview_scores;
    // Fit against the largest image: the most tiles the preprocessing can make (under the tile
    // budget: the largest rows*cols <= max_tiles_ of a grid no wider or taller than the natural one).
    const VisionHparams& vh = vision_->hparams();
    PreprocessedImage largest;
    largest.has_overview = vh.projector == ProjectorType::idefics3;
    if (largest.has_overview) {
        const int side = static_cast<int>(std::max<int64_t>(1, (vh.preproc_image_size + vh.image_size - 1) / vh.image_size));
        largest.grid_rows = largest.grid_cols = side;
        if (max_tiles_ > 0 && side * side > max_tiles_) {
            largest.grid_rows = largest.grid_cols = 1;
            for (int r = 1; r <= side; ++r) {
                const int c = std::min(side, max_tiles_ / r);
                if (c >= 1 && r * c > largest.grid_rows * largest.grid_cols) {
                    largest.grid_rows = r;
                    largest.grid_cols = c;
                }
            }
        }
    }
    GLIMPSE_ASSIGN_OR_RETURN(std::vector<FittedPruneStage> fitted,
                             pruning_plan_fit(plan, pruning_shape(largest), "pruning plan"));
    (void)fitted;
    const std::optional<WiredMethod> m = wired_method(st.method);
    GLIMPSE_CHECK_OR_RETURN(m.has_value(), unsupported,
                            "pruning plan: method %s is not wired into the model yet; wired: random, uniform, "
                            "divprune, dart, fastervlm, attn-received, vtc-cls, visionzip, cdpruner",
                            st.method.c_str());
    const bool encoder_cls = vh.projector == ProjectorType::mlp && vh.has_class_embedding;
    if (*m == WiredMethod::fastervlm || *m == WiredMethod::attn_received || *m == WiredMethod::visionzip) {
        const int layer = static_cast<int>(st.number("layer"));
        prune_tap_layer_ = layer < 0 ? static_cast<int>(vh.n_layer) + layer : layer;
        prune_tap_layers_ = {prune_tap_layer_};
        prune_tap_cls_ = *m == WiredMethod::fastervlm ||
                         (*m == WiredMethod::visionzip && (st.text("score") == "cls" ||
                                                           (st.text("score") == "auto" && encoder_cls)));
    } else if (*m == WiredMethod::vtc_cls) {
        // VTC-CLS: attentions[start_layer:-1], the [CLS] row of blocks start_layer .. L-2
        // (pruning_plan_fit has checked the range and that the encoder has [CLS]).
        const int start = static_cast<int>(st.number("start_layer"));
        const int first = start < 0 ? static_cast<int>(vh.n_layer) + start : start;
        prune_tap_layers_.clear();
        for (int l = first; l <= static_cast<int>(vh.n_layer) - 2; ++l) prune_tap_layers_.push_back(l);
        GLIMPSE_CHECK_OR_RETURN(!prune_tap_layers_.empty() &&
                                    prune_tap_layers_.back() < (vh.n_layer_used > 0 ? vh.n_layer_used : vh.n_layer),
                                unsupported,
                                "pruning plan: stages[0].args.start_layer %d: vtc-cls sums the [CLS] attention of "
                                "blocks %d..%lld, and this encoder runs blocks 0..%lld",
                                start, first, static_cast<long long>(vh.n_layer - 2),
                                static_cast<long long>((vh.n_layer_used > 0 ? vh.n_layer_used : vh.n_layer) - 1));
        prune_tap_layer_ = prune_tap_layers_.front();
        prune_tap_cls_ = true;
    }
    prune_ = st;

    const int64_t T = static_cast<int64_t>(tokens_side_) * tokens_side_;
    const int64_t n_embd = text_->hparams().n_embd;
    prune_embd_.assign(static_cast<size_t>(T * n_embd), 0.0f);
    if (*m == WiredMethod::divprune || *m == WiredMethod::dart || *m == WiredMethod::cdpruner ||
        *m == WiredMethod::visionzip) {
        // cosine_similarity's scratch: the unit rows (cdpruner: grown per prompt for the instruction's).
        prune_unit_.assign(static_cast<size_t>(T * n_embd), 0.0f);
        prune_sim_.assign(static_cast<size_t>(T * T), 0.0f);
    }
    if (*m == WiredMethod::cdpruner) prune_relevance_.assign(static_cast<size_t>(T), 0.0f);
    if (*m == WiredMethod::visionzip) {
        prune_assign_.assign(static_cast<size_t>(T), -1);
        prune_merge_rows_.assign(static_cast<size_t>(T), -1);
        prune_merged_.assign(static_cast<size_t>(T * n_embd), 0.0f);
    }
    prune_scores_.assign(static_cast<size_t>(T), 0.0f);
    prune_kept_.assign(static_cast<size_t>(T), 0);
    const int64_t patches_side = vh.image_size / vh.patch_size;
    const int64_t shuffle = vh.projector == ProjectorType::idefics3 ? vh.scale_factor : 1;
    const size_t scratch = std::max({static_cast<size_t>(topk_scratch_bytes(T)) + static_cast<size_t>(T) * 4,
                                     prune_random_scratch_bytes(T), divprune_scratch_bytes(T), dart_scratch_bytes(T),
                                     cdpruner_scratch_bytes(T, T), tap_scores_scratch_bytes(patches_side, shuffle)});
    prune_scratch_.assign(scratch + 64, 0);
    // The tap_scores kernel takes its grid on trust: the encoder's patch grid must pool into the
    // language model's token grid.
    if (hired_split_) {
        // The scoring pass's results, kept for encode_images (overview_scores_of).
        hired_scores_.reserve(static_cast<size_t>(T));
        hired_overview_pixels_.reserve(static_cast<size_t>(3 * vh.image_size * vh.image_size));
        hired_overview_rows_.assign(static_cast<size_t>(T * n_embd), 0.0f);
        if (!prune_tap_layers_.empty()) hired_overview_tap_scores_.assign(static_cast<size_t>(T), 0.0f);
    }
    GLIMPSE_CHECK_OR_RETURN((prune_tap_layers_.empty() && !hired_split_) ||
                                (patches_side % shuffle == 0 && patches_side / shuffle == tokens_side_),
                            unsupported,
                            "pruning plan: %s scores %lld x %lld encoder patches in %lld x %lld blocks, which do not "
                            "make the %d x %d visual tokens of a chunk",
                            st.method.c_str(), static_cast<long long>(patches_side), static_cast<long long>(patches_side),
                            static_cast<long long>(shuffle), static_cast<long long>(shuffle), tokens_side_, tokens_side_);
    return Status::ok();
}

Result<std::vector<int64_t>> Vlm::chunk_keep_counts(const PreprocessedImage& image) {
    const int64_t T = static_cast<int64_t>(tokens_side_) * tokens_side_;
    std::vector<int64_t> counts(static_cast<size_t>(image.n_chunks), T);
    if (!prune_) return counts;
    PruningPlan one;
    one.stages = {*prune_};
    GLIMPSE_ASSIGN_OR_RETURN(std::vector<FittedPruneStage> fitted,
                             pruning_plan_fit(one, pruning_shape(image), "pruning plan"));
    const int64_t keep_total = fitted[0].keep;
    if (hired_split_ && image.has_overview && keep_total < T * image.n_chunks) {
        // HiRED: the counts follow from the overview's scores (encoded here, before the prompt's
        // layout); only their split over the chunks varies per image, never keep_total, so the
        // prompt's length, the text plan and the KV cache are those of the equal split. At keep
        // 1.0 every chunk keeps everything either way: nothing is encoded here.
        const Idefics3Geometry geometry = idefics3_geometry_of(image);
        if (hired_split_reads_scores(prune_->overview_share, T)) {
            GLIMPSE_RETURN_IF_ERROR(overview_scores_of(image));
        } else {
            hired_scores_.assign(static_cast<size_t>(T), 0.0f);  // the split reads no score
            hired_overview_pixels_.clear();
        }
        return hired_chunk_keep_counts(geometry, tokens_side_, hired_scores_.data(), prune_->overview_share,
                                       keep_total);
    }
    // The image's budget shared over its chunks in proportion to their tokens (equal split).
    std::vector<int32_t> tokens(counts.size(), static_cast<int32_t>(T)), keep(counts.size());
    GLIMPSE_RETURN_IF_ERROR(split_keep_budget_equal(tokens.data(), static_cast<int64_t>(tokens.size()),
                                                    keep_total, keep.data()));
    for (size_t i = 0; i < counts.size(); ++i) counts[i] = keep[i];
    return counts;
}

bool Vlm::overview_is_scored(const PreprocessedImage& image, int chunk) const {
    const size_t n = image.chunk_floats();
    return hired_split_ && image.has_overview && chunk == image.n_chunks - 1 && hired_overview_pixels_.size() == n &&
           std::memcmp(hired_overview_pixels_.data(), image.chunk(chunk), n * sizeof(float)) == 0;
}

Status Vlm::encode_chunk(const float* pixels, float* rows) {
    const auto t0 = std::chrono::steady_clock::now();
    GLIMPSE_RETURN_IF_ERROR(vision_->encode(vision_plan_, pixels, rows, pool_.get()));
    encoder_passes_ += 1;
    encoder_ms_ += ms_since(t0);
    return Status::ok();
}

Status Vlm::overview_scores_of(const PreprocessedImage& image) {
    // The same overview as last time (another question about the image): scored already.
    if (overview_is_scored(image, image.n_chunks - 1)) return Status::ok();
    const float* overview = image.chunk(image.n_chunks - 1);
    const size_t n = image.chunk_floats();
    hired_overview_pixels_.clear();  // no overview scored until this one is
    GLIMPSE_RETURN_IF_ERROR(ensure_vision_plan());
    GLIMPSE_RETURN_IF_ERROR(encode_chunk(overview, hired_overview_rows_.data()));
    const VisionHparams& vh = vision_->hparams();
    const int64_t patches_side = vh.image_size / vh.patch_size;
    const VisionTapValues* tap = nullptr;
    for (const VisionTapValues& t : vision_plan_.taps) {
        if (t.layer == kHiredScoreLayer) tap = &t;
    }
    GLIMPSE_CHECK_OR_RETURN(tap != nullptr && tap->column_mean != kNoValue, internal,
                            "HiRED split: the vision plan has no attention-received tap at block %d", kHiredScoreLayer);
    const int64_t T = static_cast<int64_t>(tokens_side_) * tokens_side_;
    hired_scores_.resize(static_cast<size_t>(T));
    select_kernel(OpFamily::tap_scores)
        ->fn.tap_scores(vision_plan_.tap_data(tap->column_mean), vh.n_head, vh.n_patches(), patches_side, patches_side,
                        vh.scale_factor, /*accumulate=*/false, hired_scores_.data(), align64(prune_scratch_));
    // What the method reads of this pass when encode_images prunes the overview: the taps are
    // overwritten by the next encode, their scores are kept.
    if (!prune_tap_layers_.empty()) tap_scores_of_chunk(hired_overview_tap_scores_.data());
    hired_overview_pixels_.assign(overview, overview + n);
    return Status::ok();
}


// A text model and an mmproj of the same width can still come from different model families;
// their embeddings then mean nothing to each other and the answer is garbage. The two families
// glimpse runs are told apart by what the files say of themselves: a SmolVLM (idefics3) text
// model carries SmolVLM's chat template and the image-wrapper tokens of its tile layout.
Status Vlm::check_pair(const std::string& text_path, const std::string& mmproj_path) const {
    const VisionHparams& vh = vision_->hparams();
    std::string own_template;
    if (text_->file().has("tokenizer.chat_template")) {
        auto src = text_->file().get_string("tokenizer.chat_template");
        if (src.is_ok()) {
            auto detected = ChatTemplate::detect(*src);
            if (detected.is_ok()) own_template = detected->name();
        }
    }
    if (vh.projector == ProjectorType::mlp) {
        GLIMPSE_CHECK_OR_RETURN(own_template != "smolvlm", invalid_argument,
                                "%s is a LLaVA-style (mlp projector) mmproj but %s is a SmolVLM text model (its chat "
                                "template is SmolVLM's): the files are not a pair; use the mmproj published with the "
                                "text model",
                                mmproj_path.c_str(), text_path.c_str());
    } else {
        for (std::string_view piece : {std::string_view("<fake_token_around_image>"), std::string_view("<global-img>")}) {
            GLIMPSE_CHECK_OR_RETURN(tokenizer_->find_token(piece) >= 0, invalid_argument,
                                    "%s is a SmolVLM (idefics3) mmproj but the vocabulary of %s has no '%.*s' token: "
                                    "the files are not a pair",
                                    mmproj_path.c_str(), text_path.c_str(), static_cast<int>(piece.size()), piece.data());
        }
    }
    return Status::ok();
}

int64_t Vlm::context_length() const { return text_->hparams().n_ctx_train; }

Status Vlm::check_context(int64_t n_prompt, int64_t n_predict) const {
    const int64_t n_ctx = context_length();
    GLIMPSE_CHECK_OR_RETURN(n_prompt <= n_ctx, out_of_range,
                            "the prompt takes %lld positions but the model's context is %lld (llama.context_length); "
                            "use a shorter prompt, fewer or smaller images",
                            static_cast<long long>(n_prompt), static_cast<long long>(n_ctx));
    GLIMPSE_CHECK_OR_RETURN(n_predict >= 0 && n_prompt + n_predict <= n_ctx, out_of_range,
                            "the prompt takes %lld positions and %lld new tokens were asked for, more than the model's "
                            "context of %lld; ask for at most %lld",
                            static_cast<long long>(n_prompt), static_cast<long long>(n_predict),
                            static_cast<long long>(n_ctx), static_cast<long long>(n_ctx - n_prompt));
    return Status::ok();
}

Result<PreprocessedImage> Vlm::preprocess_image(const ImageU8& image) const {
    const VisionHparams& vh = vision_->hparams();
    if (vh.projector == ProjectorType::idefics3) return idefics3_preprocess(image, idefics3_params(vh, max_tiles_));
    return llava_preprocess(image, llava_params(vh));
}

Result<VlmPrompt> Vlm::build_prompt(std::string_view user_text, const std::vector<ImageU8>& images) {
    GLIMPSE_CHECK_OR_RETURN(static_cast<int64_t>(images.size()) <= limits::kMaxImagesPerPrompt, out_of_range,
                            "%zu images in one prompt; glimpse takes at most %lld", images.size(),
                            static_cast<long long>(limits::kMaxImagesPerPrompt));
    std::vector<PreprocessedImage> pre;
    for (const ImageU8& img : images) {
        GLIMPSE_ASSIGN_OR_RETURN(PreprocessedImage p, preprocess_image(img));
        pre.push_back(std::move(p));
    }
    return build_prompt(user_text, std::move(pre));
}

Result<VlmPrompt> Vlm::build_prompt(std::string_view user_text, std::vector<PreprocessedImage> images) {
    GLIMPSE_CHECK_OR_RETURN(static_cast<int64_t>(images.size()) <= limits::kMaxImagesPerPrompt, out_of_range,
                            "%zu images in one prompt; glimpse takes at most %lld", images.size(),
                            static_cast<long long>(limits::kMaxImagesPerPrompt));
    VlmPrompt p;
    std::string user(user_text);
    const size_t markers = count_occurrences(user, kMediaMarker);
    if (markers == 0) {
        std::string prefix;
        for (size_t i = 0; i < images.size(); ++i) prefix += kMediaMarker;
        user = prefix + user;
    } else {
        GLIMPSE_CHECK_OR_RETURN(markers == images.size(), invalid_argument,
                                "the prompt has %zu media markers but %zu images were given", markers, images.size());
    }
    p.rendered = template_->format_user_turn(user);
    if (prune_ && prune_->method == "cdpruner") {
        std::string instruction(user_text);
        for (size_t at; (at = instruction.find(kMediaMarker)) != std::string::npos;) {
            instruction.erase(at, std::string_view(kMediaMarker).size());
        }
        p.instruction_ids = tokenizer_->encode(instruction, /*add_special=*/false, /*parse_special=*/false);
    }

    const VisionHparams& vh = vision_->hparams();
    auto add_text = [&](std::string_view text) {
        std::vector<int32_t> ids = tokenizer_->encode(text, /*add_special=*/false, /*parse_special=*/true);
        p.ids.insert(p.ids.end(), ids.begin(), ids.end());
    };
    auto add_token = [&](std::string_view piece) -> Status {
        const int32_t id = tokenizer_->find_token(piece);
        GLIMPSE_CHECK_OR_RETURN(id >= 0, invalid_argument,
                                "the vocabulary has no token '%.*s', which the %s image layout needs",
                                static_cast<int>(piece.size()), piece.data(),
                                vh.projector == ProjectorType::idefics3 ? "idefics3" : "llava");
        p.ids.push_back(id);
        return Status::ok();
    };
    std::vector<int64_t> keep;  // kept tokens per chunk of the current image
    auto add_chunk = [&](int image, int chunk) {
        VlmPrompt::Chunk c;
        c.image = image;
        c.chunk = chunk;
        c.pos = static_cast<int64_t>(p.ids.size());
        c.n_tokens_in = vh.n_tokens_per_chunk();
        c.n_tokens = keep[static_cast<size_t>(chunk)];
        p.chunks.push_back(c);
        p.ids.insert(p.ids.end(), static_cast<size_t>(c.n_tokens), -1);
    };

    std::string_view rest = p.rendered;
    for (size_t i = 0; i <= images.size(); ++i) {
        const size_t at = rest.find(kMediaMarker);
        if (i == images.size() || at == std::string_view::npos) {
            add_text(rest);
            break;
        }
        add_text(rest.substr(0, at));
        rest = rest.substr(at + kMediaMarker.size());
        PreprocessedImage& pre = images[i];
        GLIMPSE_ASSIGN_OR_RETURN(keep, chunk_keep_counts(pre));
        if (vh.projector == ProjectorType::idefics3) {
            // Tiles row-major, each after "<fake_token_around_image><row_R_col_C>", a "\n"
            // token after every row but the last, then "\n\n" <fake_token_around_image>
            // <global-img>, the overview, and a closing <fake_token_around_image>.
            for (int r = 0; r < pre.grid_rows; ++r) {
                for (int c = 0; c < pre.grid_cols; ++c) {
                    add_text("<fake_token_around_image><row_" + std::to_string(r + 1) + "_col_" + std::to_string(c + 1) +
                             ">");
                    add_chunk(static_cast<int>(i), r * pre.grid_cols + c);
                }
                if (r + 1 < pre.grid_rows) GLIMPSE_RETURN_IF_ERROR(add_token("\n"));
            }
            GLIMPSE_RETURN_IF_ERROR(add_token("\n\n"));
            GLIMPSE_RETURN_IF_ERROR(add_token("<fake_token_around_image>"));
            GLIMPSE_RETURN_IF_ERROR(add_token("<global-img>"));
            add_chunk(static_cast<int>(i), pre.grid_rows * pre.grid_cols);
            GLIMPSE_RETURN_IF_ERROR(add_token("<fake_token_around_image>"));
            p.images.push_back(std::move(pre));
        } else {
            add_chunk(static_cast<int>(i), 0);
            p.images.push_back(std::move(pre));
        }
    }
    // BOS (and EOS) as the vocabulary asks, around the whole prompt (mtmd_tokenize).
    if (tokenizer_->add_bos()) p.ids.insert(p.ids.begin(), tokenizer_->bos());
    if (tokenizer_->add_bos()) {
        for (VlmPrompt::Chunk& c : p.chunks) c.pos += 1;
    }
    if (tokenizer_->add_eos()) p.ids.push_back(tokenizer_->eos());
    return p;
}

Status Vlm::ensure_vision_plan() {
    if (vision_plan_.plan) return Status::ok();
    VisionTaps taps;
    if (!prune_tap_layers_.empty()) {
        taps.layers = prune_tap_layers_;
        taps.cls_attention = prune_tap_cls_;
        taps.column_mean = !prune_tap_cls_;
    }
    if (hired_split_ && std::find(taps.layers.begin(), taps.layers.end(), kHiredScoreLayer) == taps.layers.end()) {
        // HiRED's overview score: the attention received at its block (the models with an
        // overview, SmolVLM's SigLIP, have no [CLS], so every tap here is a column mean).
        taps.layers.insert(std::upper_bound(taps.layers.begin(), taps.layers.end(), kHiredScoreLayer), kHiredScoreLayer);
        taps.column_mean = true;
    }
    GLIMPSE_ASSIGN_OR_RETURN(vision_plan_, vision_->compile(pool_->n_threads(), taps, vision_merge_));
    // Packing copied the weights the kernels read; the file's pages are no longer needed
    // resident (those still read directly fault back in on use).
    vision_->file().mapping()->release_resident_pages();
    return Status::ok();
}

Status Vlm::ensure_text_plan(int64_t max_rows, int64_t context) {
    if (config_.kv_mixed_high_share >= 0) {
        // A mixed cache's layer l has ⌈S_l·max_rows⌉ + (context − max_rows) q8_0 rows
        // (runtime/kv_cache.h): a plan serves this request only if every layer's hold its prompt's
        // share and its whole answer, or the answer's last tokens would fall to q4_0. Otherwise the
        // plan grows to serve both the old requests and this one, with just enough slots for the
        // q8_0 rows of every layer.
        const std::vector<double>& shares = text_->kv_mixed_high_shares();
        // ⌈S·rows⌉ as KvCache::create_mixed and assign_mixed round it (runtime/kv_cache.cpp).
        auto prompt_high = [](double share, int64_t rows) {
            return std::min<int64_t>(rows, static_cast<int64_t>(std::ceil(share * static_cast<double>(rows) - 1e-9)));
        };
        bool fits = text_plan_.plan && text_plan_.max_rows >= max_rows && text_plan_.context >= context;
        for (size_t l = 0; l < shares.size() && fits; ++l) {
            fits = text_plan_.kv_cache->high_capacity(static_cast<int>(l)) >=
                   prompt_high(shares[l], max_rows) + (context - max_rows);
        }
        if (fits) return Status::ok();
        int64_t grown_rows = max_rows, grown_context = context;
        if (text_plan_.plan) {
            grown_rows = std::max(max_rows, text_plan_.max_rows);
            grown_context = std::max(context, text_plan_.context);
        }
        for (double share : shares) {
            const int64_t need_high = prompt_high(share, max_rows) + (context - max_rows);
            grown_context = std::max(grown_context, grown_rows - prompt_high(share, grown_rows) + need_high);
        }
        max_rows = grown_rows;
        context = grown_context;
    } else if (text_plan_.plan && text_plan_.max_rows >= max_rows && text_plan_.context >= context) {
        return Status::ok();
    }
    text_plan_ = DecoderPlan();  // release the old plan before building a larger one
    GLIMPSE_ASSIGN_OR_RETURN(text_plan_, text_->compile(max_rows, context, config_.kv_type, pool_->n_threads()));
    text_->file().mapping()->release_resident_pages();
    return Status::ok();
}

Status Vlm::prepare(int64_t n_prompt, int n_predict) {
    GLIMPSE_RETURN_IF_ERROR(check_context(n_prompt, n_predict));
    GLIMPSE_RETURN_IF_ERROR(ensure_vision_plan());
    return ensure_text_plan(n_prompt, n_prompt + std::max(n_predict, 1));
}

bool Vlm::original_positions() const {
    if (prune_) {
        for (const PruneArg& a : prune_->args) {
            if (a.name == "positions" && a.text != "run") return a.text == "original";
        }
    }
    return config_.original_positions;
}

Result<std::vector<float>> Vlm::encode_images(const VlmPrompt& prompt, GenerationStats* stats) {
    GLIMPSE_RETURN_IF_ERROR(ensure_vision_plan());
    const int64_t n_embd = text_->hparams().n_embd;
    std::vector<float> out(static_cast<size_t>(prompt.n_image_tokens() * n_embd));
    // Reused between calls: the lists keep their capacity, so a repeat encode allocates only `out`.
    last_kept_.resize(prompt.chunks.size());
    for (std::vector<int32_t>& k : last_kept_) k.clear();
    auto t0 = std::chrono::steady_clock::now();
    if (prune_ && prune_->method == "cdpruner") embed_instruction(prompt);
    double prune_ms = 0;
    int64_t row = 0;
    for (size_t ci = 0; ci < prompt.chunks.size(); ++ci) {
        const VlmPrompt::Chunk& c = prompt.chunks[ci];
        const PreprocessedImage& img = prompt.images[static_cast<size_t>(c.image)];
        std::vector<int32_t>& kept = last_kept_[ci];
        GLIMPSE_CHECK_OR_RETURN(c.n_tokens >= 0 && c.n_tokens <= c.n_tokens_in &&
                                    c.n_tokens_in == vision_->hparams().n_tokens_per_chunk(),
                                invalid_argument, "prompt chunk %zu: %lld of %lld tokens kept; the encoder makes %lld",
                                ci, static_cast<long long>(c.n_tokens), static_cast<long long>(c.n_tokens_in),
                                static_cast<long long>(vision_->hparams().n_tokens_per_chunk()));
        if (c.n_tokens == 0) continue;  // the plan gave this chunk nothing: no need to encode it
        const bool everything_kept = c.n_tokens == c.n_tokens_in;
        GLIMPSE_CHECK_OR_RETURN(everything_kept || prune_.has_value(), invalid_argument,
                                "prompt chunk %zu keeps %lld of %lld tokens but this model has no pruning plan", ci,
                                static_cast<long long>(c.n_tokens), static_cast<long long>(c.n_tokens_in));
        // Everything kept: encoded in place, exactly the unpruned path; else into the pruning rows.
        float* rows = everything_kept ? out.data() + row * n_embd : prune_embd_.data();
        // HiRED's overview was encoded by build_prompt to score it: that pass's rows, not another.
        const bool scored_overview = overview_is_scored(img, c.chunk);
        if (scored_overview) {
            std::copy(hired_overview_rows_.begin(), hired_overview_rows_.end(), rows);
        } else {
            GLIMPSE_RETURN_IF_ERROR(encode_chunk(img.chunk(c.chunk), rows));
        }
        if (everything_kept) {
            kept.resize(static_cast<size_t>(c.n_tokens));
            for (int64_t t = 0; t < c.n_tokens; ++t) kept[static_cast<size_t>(t)] = static_cast<int32_t>(t);
        } else {
            const auto t_select = std::chrono::steady_clock::now();
            if (!prune_tap_layers_.empty()) {
                if (scored_overview) {
                    std::copy(hired_overview_tap_scores_.begin(), hired_overview_tap_scores_.end(), prune_scores_.begin());
                } else {
                    tap_scores_of_chunk(prune_scores_.data());
                }
            }
            // Each chunk draws its own stream (random): image and chunk mixed into the seed.
            const uint64_t chunk_seed = static_cast<uint64_t>(c.image) * 4096u + static_cast<uint64_t>(c.chunk);
            GLIMPSE_RETURN_IF_ERROR(select_tokens(c.n_tokens, chunk_seed, prune_kept_.data()));
            select_kernel(OpFamily::gather_rows)
                ->fn.gather_rows(prune_embd_.data(), n_embd, prune_kept_.data(), c.n_tokens, out.data() + row * n_embd,
                                 pool_.get());
            if (prune_->method == "visionzip") apply_visionzip_merge(c.n_tokens, out.data() + row * n_embd);
            prune_ms += ms_since(t_select);
            kept.assign(prune_kept_.begin(), prune_kept_.begin() + c.n_tokens);
        }
        row += c.n_tokens;
    }
    if (stats) {
        stats->encode_ms += ms_since(t0);
        stats->prune_ms += prune_ms;
        stats->n_image_chunks += static_cast<int64_t>(prompt.chunks.size());
    }
    return out;
}

// S = U U^T (T, T) of the chunk's projected rows prune_embd_ (T, n_embd), U the rows over their
// L2 norms: the registered cosine_similarity op (ops/prune_score.h: f64-accumulated dots).
void Vlm::cosine_similarity_of_rows() {
    const int64_t T = static_cast<int64_t>(tokens_side_) * tokens_side_;
    const int64_t n_embd = text_->hparams().n_embd;
    select_kernel(OpFamily::cosine_similarity)
        ->fn.cosine_similarity(prune_embd_.data(), T, prune_embd_.data(), T, n_embd, prune_sim_.data(),
                               prune_unit_.data(), pool_.get());
}

// scores:(T) from the encoder taps of the last encode: the head and pixel-shuffle-block
// mean of each tapped block's [CLS] row or received-attention row, summed over the tapped blocks
// (one block for every method but vtc-cls).
void Vlm::tap_scores_of_chunk(float* scores) {
    const VisionHparams& vh = vision_->hparams();
    const int64_t patches_side = vh.image_size / vh.patch_size;
    const int64_t n_pos = vh.n_patches() + (vh.projector == ProjectorType::mlp && vh.has_class_embedding ? 1 : 0);
    const int64_t s = vh.projector == ProjectorType::idefics3 ? vh.scale_factor : 1;
    const TapScoresFn tap_scores = select_kernel(OpFamily::tap_scores)->fn.tap_scores;
    bool accumulate = false;
    for (const VisionTapValues& tap : vision_plan_.taps) {
        // Only the method's blocks (HiRED's split may have added its own, kHiredScoreLayer).
        if (std::find(prune_tap_layers_.begin(), prune_tap_layers_.end(), tap.layer) == prune_tap_layers_.end()) continue;
        const float* data = vision_plan_.tap_data(prune_tap_cls_ ? tap.cls_attention : tap.column_mean);
        tap_scores(data, vh.n_head, n_pos, patches_side, patches_side, s, accumulate, scores, align64(prune_scratch_));
        accumulate = true;
    }
}

// The instruction's token embedding rows (P, n_embd); the cosine op's scratch grows to hold the
// unit rows of the T visual and P instruction rows. Grows only: a later prompt no longer than the
// longest so far allocates nothing.
void Vlm::embed_instruction(const VlmPrompt& prompt) {
    const int64_t n_embd = text_->hparams().n_embd;
    const int64_t T = static_cast<int64_t>(tokens_side_) * tokens_side_;
    const int64_t P = static_cast<int64_t>(prompt.instruction_ids.size());
    prune_text_rows_.resize(static_cast<size_t>(P * n_embd));
    for (int64_t t = 0; t < P; ++t) text_->embed_token(prompt.instruction_ids[static_cast<size_t>(t)], prune_text_rows_.data() + t * n_embd);
    prune_text_sim_.resize(static_cast<size_t>(T * P));
    if (prune_unit_.size() < static_cast<size_t>((T + P) * n_embd)) prune_unit_.resize(static_cast<size_t>((T + P) * n_embd));
}

// VisionZip after the projector (visionzip_ref's contract, ops/prune_select.h), with the
// registered ops: dominant = the topk of the tap scores; contextual targets at an even stride over
// the other tokens in raster order; every other non-dominant token is assigned to the target of
// highest cosine similarity (first target on ties; the official metric is the encoder's head-mean
// keys at the tap layer; here the projected rows, as DivPrune uses: the keys are not kept); the
// merge_rows op averages each target's tokens, apply_visionzip_merge adds that to the target's row.
Status Vlm::select_visionzip(int64_t k, int32_t* kept) {
    const int64_t T = static_cast<int64_t>(tokens_side_) * tokens_side_;
    const int64_t n_embd = text_->hparams().n_embd;
    const double share = prune_->number("contextual_share");
    const int64_t n_ctx = std::min<int64_t>(k - 1, static_cast<int64_t>(std::floor(share * static_cast<double>(k) + 0.5)));
    const int64_t n_dom = k - n_ctx;
    select_kernel(OpFamily::topk)->fn.topk(prune_scores_.data(), T, n_dom, kept, align64(prune_scratch_));
    int32_t* assign = prune_assign_.data();
    std::fill(prune_assign_.begin(), prune_assign_.end(), -1);
    for (int64_t d = 0; d < n_dom; ++d) assign[kept[d]] = -2;  // dominant: not merged
    std::fill(prune_merge_rows_.begin(), prune_merge_rows_.end(), -1);
    if (n_ctx > 0) {
        cosine_similarity_of_rows();
        // Targets: others[t * step], step = max(1, m / n_ctx) over the m = T - n_dom others.
        const int64_t m = T - n_dom, step = std::max<int64_t>(1, m / n_ctx);
        int32_t* targets = kept + n_dom;  // written in ascending order
        for (int64_t i = 0, other = 0, t = 0; i < T && t < n_ctx; ++i) {
            if (assign[i] == -2) continue;
            if (other == t * step) targets[t++] = static_cast<int32_t>(i);
            ++other;
        }
        for (int64_t t = 0; t < n_ctx; ++t) assign[targets[t]] = -3;  // targets: not merged into another
        for (int64_t i = 0; i < T; ++i) {
            if (assign[i] != -1) continue;
            int32_t best = 0;
            float best_sim = prune_sim_[static_cast<size_t>(i * T + targets[0])];
            for (int64_t t = 1; t < n_ctx; ++t) {
                const float v = prune_sim_[static_cast<size_t>(i * T + targets[t])];
                if (v > best_sim || (std::isnan(best_sim) && !std::isnan(v))) best = static_cast<int32_t>(t), best_sim = v;
            }
            assign[i] = best;
        }
        for (int64_t i = 0; i < T; ++i) {
            if (assign[i] < 0) assign[i] = -1;
        }
        select_kernel(OpFamily::merge_rows)
            ->fn.merge_rows(prune_embd_.data(), T, n_embd, assign, nullptr, n_ctx, prune_merged_.data(), nullptr,
                            pool_.get());
        // Per kept row (raster order): its contextual slot, or -1 for a dominant token.
        for (int64_t t = 0; t < n_ctx; ++t) assign[targets[t]] = -10 - static_cast<int32_t>(t);
        std::sort(kept, kept + k);
        for (int64_t r = 0; r < k; ++r) {
            const int32_t a = assign[kept[r]];
            prune_merge_rows_[static_cast<size_t>(r)] = a <= -10 ? -10 - a : -1;
        }
    }
    return Status::ok();
}

void Vlm::apply_visionzip_merge(int64_t k, float* rows) {
    const int64_t n_embd = text_->hparams().n_embd;
    const BinaryFn add = select_kernel(OpFamily::add)->fn.add;
    for (int64_t r = 0; r < k; ++r) {
        const int32_t slot = prune_merge_rows_[static_cast<size_t>(r)];
        // merged[t] = hidden[target_t] + mean(hidden of the tokens assigned to t); an empty slot adds 0.
        if (slot >= 0) add(rows + r * n_embd, prune_merged_.data() + slot * n_embd, 1, n_embd, 1, rows + r * n_embd, nullptr);
    }
}

Status Vlm::select_tokens(int64_t k, uint64_t chunk_seed, int32_t* kept) {
    const int64_t side = tokens_side_;
    const int64_t T = side * side;
    const int64_t n_embd = text_->hparams().n_embd;
    void* scratch = align64(prune_scratch_);
    switch (*wired_method(prune_->method)) {
        case WiredMethod::random: {
            // SplitMix64 of the plan's seed and the chunk: a different, reproducible draw per chunk.
            SplitMix64 mix{static_cast<uint64_t>(prune_->number("seed")) ^ (chunk_seed * 0x9e3779b97f4a7c15ull)};
            return prune_random_ref(T, k, mix.next(), kept, scratch);
        }
        case WiredMethod::uniform:
            return prune_uniform_grid_ref(side, side, k, kept);
        case WiredMethod::divprune:
        case WiredMethod::dart: {
            cosine_similarity_of_rows();
            if (*wired_method(prune_->method) == WiredMethod::divprune) {
                return divprune_ref(prune_sim_.data(), T, k, kept, nullptr, scratch);
            }
            // DART after the projector: pivots by the L1 norm of the projected rows (the official
            // code takes the L1 norm of the key rows inside the language model, which does not
            // exist here yet); at most k pivots when a chunk keeps fewer than the plan's pivots.
            for (int64_t i = 0; i < T; ++i) {
                double l1 = 0;
                for (int64_t e = 0; e < n_embd; ++e) l1 += std::fabs(static_cast<double>(prune_embd_[i * n_embd + e]));
                prune_scores_[static_cast<size_t>(i)] = static_cast<float>(l1);
            }
            const int64_t pivots = std::min<int64_t>(k, static_cast<int64_t>(prune_->number("pivots")));
            return dart_ref(prune_sim_.data(), prune_scores_.data(), T, k, pivots, kept, scratch);
        }
        case WiredMethod::cdpruner: {
            cosine_similarity_of_rows();
            // Relevance: the visual rows against the instruction's token embeddings (the same op,
            // b = the P instruction rows), reduced as the official LLaVA code does. No instruction
            // tokens: every relevance 1 (plain DPP diversity).
            const int64_t P = static_cast<int64_t>(prune_text_rows_.size()) / n_embd;
            if (P > 0) {
                select_kernel(OpFamily::cosine_similarity)
                    ->fn.cosine_similarity(prune_embd_.data(), T, prune_text_rows_.data(), P, n_embd,
                                           prune_text_sim_.data(), prune_unit_.data(), pool_.get());
                GLIMPSE_RETURN_IF_ERROR(cdpruner_relevance_ref(prune_text_sim_.data(), T, P, prune_relevance_.data()));
            } else {
                std::fill(prune_relevance_.begin(), prune_relevance_.end(), 1.0f);
            }
            return cdpruner_ref(prune_sim_.data(), prune_relevance_.data(), T, k, kept, nullptr, scratch);
        }
        case WiredMethod::visionzip:
            return select_visionzip(k, kept);
        case WiredMethod::fastervlm:
        case WiredMethod::attn_received:
        case WiredMethod::vtc_cls:
            select_kernel(OpFamily::topk)->fn.topk(prune_scores_.data(), T, k, kept, scratch);
            return Status::ok();
    }
    return Status::error(StatusCode::internal, "pruning: unhandled method %s", prune_->method.c_str());
}

Status Vlm::generate(const VlmPrompt& prompt, int n_predict, const SamplingParams& sampling,
                     const TextCallback& on_text, GenerationStats* stats, const std::vector<float>* cached_embd) {
    GenerationStats local;
    GenerationStats& st = stats ? *stats : local;
    const TextHparams& th = text_->hparams();
    const int64_t n_prompt = prompt.n_positions();
    GLIMPSE_CHECK_OR_RETURN(n_prompt > 0, invalid_argument, "empty prompt");
    GLIMPSE_CHECK_OR_RETURN(n_predict >= 0, invalid_argument, "n_predict must be >= 0");
    // Before any work: a prompt over the context would otherwise be encoded and prefilled.
    GLIMPSE_RETURN_IF_ERROR(check_context(n_prompt, n_predict));
    st.n_prompt = n_prompt;
    st.n_image_tokens = prompt.n_image_tokens();
    st.n_image_tokens_in = prompt.n_image_tokens_in();

    std::vector<float> own_embd;
    if (!cached_embd) {
        GLIMPSE_ASSIGN_OR_RETURN(own_embd, encode_images(prompt, &st));
    }
    const std::vector<float>& image_embd = cached_embd ? *cached_embd : own_embd;
    GLIMPSE_CHECK_OR_RETURN(static_cast<int64_t>(image_embd.size()) == prompt.n_image_tokens() * th.n_embd,
                            invalid_argument, "image embeddings hold %zu floats, the prompt needs %lld",
                            image_embd.size(), static_cast<long long>(prompt.n_image_tokens() * th.n_embd));
    image_buffer_bytes_ = static_cast<int64_t>(image_embd.size() * sizeof(float));
    for (const PreprocessedImage& img : prompt.images) image_buffer_bytes_ += static_cast<int64_t>(img.data.size() * 4);

    float* x = nullptr;
    int32_t* pos = nullptr;
    if (!decoder_stages_.empty()) {  // decoder-layer pruning: a segmented decoder (models/decoder_pruning.h)
        GLIMPSE_RETURN_IF_ERROR(ensure_decoder_pruning(prompt, n_predict));
        x = decoder_pruning_->embeddings();
        pos = decoder_pruning_->positions();
    } else {
        GLIMPSE_RETURN_IF_ERROR(ensure_text_plan(n_prompt, n_prompt + std::max(n_predict, 1)));
        Plan& plan = *text_plan_.plan;
        x = plan.f32(text_plan_.embeddings);
        pos = static_cast<int32_t*>(plan.data(text_plan_.positions));
    }

    // Original position ids: each kept row at chunk start (as unpruned) + its raster index; the
    // kept indices are those of the encode that made image_embd (the last encode_images).
    const bool original = original_positions() && prompt.n_image_tokens() != prompt.n_image_tokens_in();
    if (original) {
        GLIMPSE_CHECK_OR_RETURN(last_kept_.size() == prompt.chunks.size(), invalid_argument,
                                "original position ids need the kept rows of this prompt's images: encode them with "
                                "encode_images(prompt) first");
        for (size_t ci = 0; ci < prompt.chunks.size(); ++ci) {
            GLIMPSE_CHECK_OR_RETURN(static_cast<int64_t>(last_kept_[ci].size()) == prompt.chunks[ci].n_tokens,
                                    invalid_argument, "chunk %zu: %zu kept rows recorded, the prompt has %lld", ci,
                                    last_kept_[ci].size(), static_cast<long long>(prompt.chunks[ci].n_tokens));
        }
    }
    int64_t shift = 0;  // positions dropped before the current one (original ids)
    size_t chunk_index = 0;
    auto t0 = std::chrono::steady_clock::now();
    int64_t image_row = 0;
    for (int64_t i = 0; i < n_prompt; ++i) {
        const int32_t id = prompt.ids[static_cast<size_t>(i)];
        if (id >= 0) {
            GLIMPSE_CHECK_OR_RETURN(id < th.n_vocab, out_of_range, "token id %d is outside the vocabulary", id);
            text_->embed_token(id, x + i * th.n_embd);
        } else {
            std::memcpy(x + i * th.n_embd, image_embd.data() + image_row * th.n_embd,
                        static_cast<size_t>(th.n_embd) * sizeof(float));
            ++image_row;
        }
        pos[i] = static_cast<int32_t>(i);
        if (original) {
            while (chunk_index < prompt.chunks.size() &&
                   prompt.chunks[chunk_index].pos + prompt.chunks[chunk_index].n_tokens <= i) {
                shift += prompt.chunks[chunk_index].n_tokens_in - prompt.chunks[chunk_index].n_tokens;
                ++chunk_index;
            }
            const bool in_chunk = chunk_index < prompt.chunks.size() && i >= prompt.chunks[chunk_index].pos;
            if (in_chunk) {
                const VlmPrompt::Chunk& c = prompt.chunks[chunk_index];
                pos[i] = static_cast<int32_t>(c.pos + shift + last_kept_[chunk_index][static_cast<size_t>(i - c.pos)]);
            } else {
                pos[i] = static_cast<int32_t>(i + shift);
            }
        }
    }
    // Where the answer's positions start: after the prompt as it was unpruned.
    const int64_t answer_pos0 = original ? n_prompt + (prompt.n_image_tokens_in() - prompt.n_image_tokens()) : n_prompt;
    const float* logits = nullptr;
    st.decoder_layers = th.n_layer;
    if (decoder_pruning_ && !decoder_stages_.empty()) {
        for (int64_t i = 0; i < n_prompt; ++i) decoder_is_visual_[static_cast<size_t>(i)] = prompt.ids[static_cast<size_t>(i)] < 0;
        GLIMPSE_ASSIGN_OR_RETURN(logits, decoder_pruning_->prefill(n_prompt, decoder_is_visual_.data(), pool_.get()));
        GLIMPSE_RETURN_IF_ERROR(text_->file().mapping()->check_intact());
        st.visual_rows_layer_sum = decoder_pruning_->visual_rows_layer_sum();
    } else {
        GLIMPSE_ASSIGN_OR_RETURN(logits, text_->forward(text_plan_, n_prompt, 0, pool_.get()));
        st.visual_rows_layer_sum = prompt.n_image_tokens() * th.n_layer;
    }
    prefill_logits_.assign(logits, logits + th.n_vocab);
    prefill_positions_.assign(pos, pos + n_prompt);
    st.prefill_ms += ms_since(t0);

    generated_.clear();
    TokenStreamDecoder stream(*tokenizer_, /*render_special=*/true);
    std::vector<std::pair<float, int32_t>> scratch;
    uint64_t rng = sampling.seed;
    t0 = std::chrono::steady_clock::now();
    for (int step = 0; step < n_predict; ++step) {
        int32_t tok = 0;
        if (forced_answer_) {  // teacher forcing (score_answer): report the distribution, feed the given token
            (*forced_logits_)(step, logits);
            if (static_cast<size_t>(step) == forced_answer_->size()) break;
            tok = (*forced_answer_)[static_cast<size_t>(step)];
            generated_.push_back(tok);
        } else {
            tok = sample_token(logits, th.n_vocab, sampling, &rng, &scratch);
            if (tokenizer_->is_eog(tok)) {
                st.stopped_at_eog = true;
                break;
            }
            generated_.push_back(tok);
            if (!antiprompt_.empty() && ends_with_tokens(generated_, antiprompt_)) {
                st.stopped_at_eog = true;
                break;
            }
        }
        const std::string bytes = stream.push(tok);
        st.n_generated += 1;
        if (on_text && !bytes.empty() && !on_text(bytes)) {
            st.stopped_by_caller = true;
            break;
        }
        if (step + 1 == n_predict) break;  // no logits needed after the last token
        const int64_t p = n_prompt + step;
        text_->embed_token(tok, x);
        pos[0] = static_cast<int32_t>(answer_pos0 + step);
        if (decoder_pruning_ && !decoder_stages_.empty()) {
            GLIMPSE_ASSIGN_OR_RETURN(logits, decoder_pruning_->decode(pos[0], step, pool_.get()));
            GLIMPSE_RETURN_IF_ERROR(text_->file().mapping()->check_intact());
        } else {
            GLIMPSE_ASSIGN_OR_RETURN(logits, text_->forward(text_plan_, 1, p, pool_.get()));
        }
    }
    const std::string tail = stream.flush();
    if (on_text && !tail.empty() && !st.stopped_by_caller && !on_text(tail)) st.stopped_by_caller = true;
    st.decode_ms += ms_since(t0);
    return Status::ok();
}

Status Vlm::score_answer(const VlmPrompt& prompt, const std::vector<int32_t>& answer, const LogitsCallback& on_logits,
                         const std::vector<float>* image_embeddings) {
    const int32_t n_vocab = static_cast<int32_t>(text_->hparams().n_vocab);
    for (size_t i = 0; i < answer.size(); ++i) {
        GLIMPSE_CHECK_OR_RETURN(answer[i] >= 0 && answer[i] < n_vocab, out_of_range,
                                "score_answer: answer token %zu is %d, outside the vocabulary of %d", i, answer[i], n_vocab);
    }
    forced_answer_ = &answer;
    forced_logits_ = &on_logits;
    SamplingParams greedy;
    greedy.temperature = 0;
    Status s = generate(prompt, static_cast<int>(answer.size()) + 1, greedy, nullptr, nullptr, image_embeddings);
    forced_answer_ = nullptr;
    forced_logits_ = nullptr;
    return s;
}

VlmMemory Vlm::memory() const {
    VlmMemory m;
    // A whole model's plan: its weights (repacked copies and tensors read in place) are added,
    // its activations + scratch are the model's arena.
    auto add_plan = [&m](const MemoryReport& r, int64_t* arena) {
        m.weights += r.packed_bytes + r.in_place_weight_bytes;
        m.packed_weights += r.packed_bytes;
        m.file_weights += r.weight_bytes;
        *arena = r.arena_bytes + r.scratch_bytes;
    };
    if (vision_plan_.plan) add_plan(vision_plan_.plan->memory(), &m.vision_arena);
    if (text_plan_.plan) {
        const MemoryReport& r = text_plan_.plan->memory();
        add_plan(r, &m.text_arena);
        m.kv_cache = r.kv_cache_bytes;
    }
    if (decoder_pruning_ && !decoder_stages_.empty()) {
        // The segments share the decoder's weight cache (each report gives the whole cache:
        // counted once, from the last segment compiled); in-place and file weights are per
        // segment (a scoring boundary's next-layer q/k weights are counted twice).
        for (const DecoderSegment& seg : decoder_pruning_->plan().segments) {
            const MemoryReport& r = seg.plan->memory();
            m.weights += r.in_place_weight_bytes;
            m.file_weights += r.weight_bytes;
        }
        const MemoryReport& last = decoder_pruning_->plan().segments.back().plan->memory();
        m.weights += last.packed_bytes;
        m.packed_weights += last.packed_bytes;
        m.text_arena = decoder_pruning_->arena_bytes();
        m.kv_cache = decoder_pruning_->kv_cache_bytes();
    }
    m.image_buffers = image_buffer_bytes_;
    return m;
}

std::vector<int64_t> Vlm::kv_cache_layer_bytes() const {
    const KvCache* kv = text_plan_.kv_cache.get();
    if (decoder_pruning_ && !decoder_stages_.empty()) kv = decoder_pruning_->plan().kv_cache.get();
    std::vector<int64_t> bytes;
    for (int l = 0; kv && l < kv->n_layers(); ++l) bytes.push_back(kv->layer_bytes(l));
    return bytes;
}

int32_t sample_token(const float* logits, int64_t n_vocab, const SamplingParams& params, uint64_t* rng_state,
                     std::vector<std::pair<float, int32_t>>* scratch) {
    if (params.temperature <= 0.0f) {
        int64_t best = 0;
        for (int64_t v = 1; v < n_vocab; ++v) {
            if (logits[v] > logits[best]) best = v;
        }
        return static_cast<int32_t>(best);
    }
    // top-k -> top-p -> min-p -> temperature -> draw, the order of llama.cpp's default chain.
    std::vector<std::pair<float, int32_t>>& cand = *scratch;
    cand.resize(static_cast<size_t>(n_vocab));
    for (int64_t v = 0; v < n_vocab; ++v) cand[v] = {logits[v], static_cast<int32_t>(v)};
    size_t k = params.top_k > 0 ? std::min<size_t>(static_cast<size_t>(params.top_k), cand.size()) : cand.size();
    std::partial_sort(cand.begin(), cand.begin() + static_cast<long>(k), cand.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    cand.resize(k);
    // softmax over the survivors (at temperature 1) for top-p and min-p
    const float max_logit = cand[0].first;
    std::vector<float> probs(cand.size());
    double sum = 0;
    for (size_t i = 0; i < cand.size(); ++i) sum += probs[i] = std::exp(cand[i].first - max_logit);
    size_t keep = cand.size();
    if (params.top_p < 1.0f) {
        double cum = 0;
        for (size_t i = 0; i < cand.size(); ++i) {
            cum += probs[i] / sum;
            if (cum >= params.top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (params.min_p > 0.0f) {
        size_t n = 0;
        while (n < keep && probs[n] >= params.min_p * probs[0]) ++n;
        keep = std::max<size_t>(1, n);
    }
    cand.resize(keep);
    double total = 0;
    for (size_t i = 0; i < keep; ++i) total += probs[i] = std::exp((cand[i].first - max_logit) / params.temperature);
    // splitmix64 draw
    uint64_t z = (*rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const double u = static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0) * total;
    double acc = 0;
    for (size_t i = 0; i < keep; ++i) {
        acc += probs[i];
        if (u < acc) return cand[i].second;
    }
    return cand[keep - 1].second;
}

}  // namespace glimpse
