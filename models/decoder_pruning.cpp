#include "models/decoder_pruning.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/dpc_cluster.h"
#include "models/decoder_pruning_feather.h"
#include "ops/rope_bias.h"
#include "ops/topk.h"

namespace glimpse {
namespace {

const PruneArg* find_arg(const PruneStage& stage, std::string_view name) {
    for (const PruneArg& a : stage.args) {
        if (a.name == name) return &a;
    }
    return nullptr;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void* align64(std::vector<uint8_t>& v) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(v.data());
    return v.data() + ((64 - p % 64) % 64);
}

}  // namespace

bool is_decoder_shorthand_method(std::string_view method) {
    return method == "fastv" || method == "pyramiddrop" || method == "sparsevlm" || method == "feather";
}

Result<PruningPlan> decoder_shorthand_plan(std::string_view method, double keep, int n_layer,
                                           const std::string& positions) {
    const std::string name = "--prune " + std::string(method);
    GLIMPSE_CHECK_OR_RETURN(is_decoder_shorthand_method(method), invalid_argument,
                            "%s: not a language-model method with a shorthand (fastv, pyramiddrop, sparsevlm, feather)",
                            name.c_str());
    GLIMPSE_CHECK_OR_RETURN(positions.empty() || positions == "original" || positions == "compact", invalid_argument,
                            "%s: position ids must be original or compact, not '%s'", name.c_str(), positions.c_str());
    GLIMPSE_CHECK_OR_RETURN(std::isfinite(keep) && keep > 0, invalid_argument,
                            "%s --keep %g: must be a fraction in (0, 1]%s", name.c_str(), keep,
                            method == "fastv" ? " or a token count" : "");
    // The paper's layers for 32 layers, scaled: fastv prunes after layer K - 1 = 1, PyramidDrop
    // after layers 7, 15, 23 (its layer_list 8, 16, 24).
    auto scaled = [&](int paper_layer) {
        return std::max(0, static_cast<int>(std::lround(static_cast<double>(n_layer) * paper_layer / 32.0)) - 1);
    };
    std::vector<int> layers;
    std::vector<double> fractions;
    int64_t count = 0;
    if (method == "fastv") {
        layers = {scaled(2)};
        if (keep <= 1) {
            fractions = {keep};
        } else {
            GLIMPSE_CHECK_OR_RETURN(keep == std::floor(keep) && keep <= 1e9, invalid_argument,
                                    "%s --keep %g: above 1 it is a token count, which must be a whole number",
                                    name.c_str(), keep);
            count = static_cast<int64_t>(keep);
        }
    } else if (method == "sparsevlm") {
        GLIMPSE_CHECK_OR_RETURN(keep <= 1, invalid_argument,
                                "%s --keep %g: SparseVLM's --keep is the fraction each of its three stages keeps of "
                                "what enters it, in (0, 1]; for counts per stage use a plan file (--plan)",
                                name.c_str(), keep);
        // pruning_loc [2, 6, 15]: after those 0-based layers, i.e. r = 3, 7, 16 in the rule above;
        // a stage that rounds onto the one before moves to the next layer (4 layers: 0, 1, 2).
        layers = {scaled(3), scaled(7), scaled(16)};
        for (size_t i = 1; i < layers.size(); ++i) layers[i] = std::max(layers[i], layers[i - 1] + 1);
        fractions = {keep, keep * keep, keep * keep * keep};
    } else if (method == "feather") {
        // FEATHER: a uniform grid where FastV prunes (K = 2), the attention prune at mid-depth.
        GLIMPSE_CHECK_OR_RETURN(keep <= 1, invalid_argument,
                                "%s --keep %g: feather's --keep is the fraction each of its two stages keeps of what "
                                "enters it, in (0, 1] (0.5 keeps 1/2, then 1/4); for counts use a plan file (--plan)",
                                name.c_str(), keep);
        layers = {scaled(2), scaled(16)};
        fractions = {keep, keep * keep};
    } else {
        GLIMPSE_CHECK_OR_RETURN(keep <= 1, invalid_argument,
                                "%s --keep %g: PyramidDrop's --keep is the fraction each of its three stages keeps of "
                                "what enters it, in (0, 1] (0.5 keeps 1/2, 1/4, 1/8); for counts per stage use a "
                                "plan file (--plan)",
                                name.c_str(), keep);
        layers = {scaled(8), scaled(16), scaled(24)};
        fractions = {keep, keep * keep, keep * keep * keep};
    }
    for (size_t i = 0; i < layers.size(); ++i) {
        GLIMPSE_CHECK_OR_RETURN((i == 0 || layers[i] > layers[i - 1]) && layers[i] <= n_layer - 2, invalid_argument,
                                "%s: the language model has %d layers, too few for the method's %zu stage(s) at "
                                "distinct layers before the last (scaled from the paper's 32); give the layers in a "
                                "plan file (--plan)",
                                name.c_str(), n_layer, layers.size());
    }
    // Written as a plan document and read back, so the shorthand gets exactly the checks and
    // argument defaults of a plan file.
    std::string json = R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [)";
    for (size_t i = 0; i < layers.size(); ++i) {
        json += str_printf(R"(%s{"at": "decoder_layer", "layer": %d, "method": "%s", )", i ? ", " : "", layers[i],
                           std::string(method).c_str());
        json += count > 0 ? str_printf(R"("keep_count": %lld)", static_cast<long long>(count))
                          : str_printf(R"("keep": %.17g)", fractions[i]);
        if (!positions.empty()) json += R"(, "args": {"positions": ")" + positions + "\"}";
        json += "}";
    }
    json += str_printf(R"(], "decoder_layers": %d})", n_layer);  // the depth its layers were scaled to
    return pruning_plan_parse(json, name);
}

Result<DecoderPruneStep> decoder_prune_step(const PruneStage& stage, int layer, int64_t keep, const std::string& where) {
    DecoderPruneStep step;
    step.layer = layer;
    step.keep = keep;
    if (stage.method == "fastv") {
        step.score_layer = PruneScoreLayer::own_last;
        step.compact_positions = false;
    } else if (stage.method == "pyramiddrop") {
        step.score_layer = PruneScoreLayer::next;
        step.compact_positions = true;
    } else if (stage.method == "sparsevlm") {
        // The attention of the stage's own layer (its sparse layer's attn_logits), positions
        // truncated to arange as v1.5 does.
        step.score_layer = PruneScoreLayer::own_last;
        step.compact_positions = true;
        step.text_raters = true;
        const PruneArg* recycle = find_arg(stage, "recycle");
        step.recycle = recycle == nullptr || recycle->number != 0;
        // The raters' scores (score_by_raters) are not divided by the RoPE-only bias map.
        if (const PruneArg* debias = find_arg(stage, "debias"); debias && debias->number != 0) {
            return Status::error(StatusCode::unsupported,
                                 "%s.args.debias: sparsevlm's rater scores are not debiased; debias is wired for fastv, "
                                 "pyramiddrop and feather",
                                 where.c_str());
        }
    } else if (stage.method == "feather") {
        GLIMPSE_RETURN_IF_ERROR(feather_prune_step(stage, &step, where));
    } else {
        return Status::error(StatusCode::unsupported,
                             "%s.method: %s is not wired into the language model yet; wired decoder methods: fastv, "
                             "pyramiddrop, sparsevlm, feather",
                             where.c_str(), stage.method.c_str());
    }
    if (const PruneArg* debias = find_arg(stage, "debias"); debias && debias->number != 0) step.debias = true;
    if (const PruneArg* positions = find_arg(stage, "positions")) {
        step.compact_positions = positions->text == "compact";
    }
    return step;
}

Result<std::unique_ptr<DecoderPruning>> DecoderPruning::create(TextDecoder& decoder, std::vector<DecoderPruneStep> steps,
                                                               const DecoderPruneShape& shape, DType kv_type,
                                                               int n_threads, SegmentArenas arenas) {
    const TextHparams& h = decoder.hparams();
    const int n_layer = static_cast<int>(h.n_layer);
    GLIMPSE_CHECK_OR_RETURN(!steps.empty(), invalid_argument, "decoder pruning: no stages");
    GLIMPSE_CHECK_OR_RETURN(shape.prompt_rows >= 1 && shape.visual_rows >= 0 && shape.visual_rows < shape.prompt_rows &&
                                shape.answer_rows >= 1,
                            invalid_argument, "decoder pruning: a prompt of %lld rows with %lld visual rows",
                            static_cast<long long>(shape.prompt_rows), static_cast<long long>(shape.visual_rows));
    std::unique_ptr<DecoderPruning> d(new DecoderPruning());
    d->decoder_ = &decoder;
    d->shape_ = shape;
    std::vector<SegmentSpec> specs;
    int64_t rows = shape.prompt_rows, visual = shape.visual_rows;
    int prev_layer = -1;
    for (size_t s = 0; s < steps.size(); ++s) {
        const DecoderPruneStep& st = steps[s];
        GLIMPSE_CHECK_OR_RETURN(st.layer > prev_layer && st.layer <= n_layer - 2, invalid_argument,
                                "decoder pruning: stage %zu prunes after layer %d; stages prune after increasing "
                                "layers in [0, %d] (the language model has %d layers)",
                                s, st.layer, n_layer - 2, n_layer);
        GLIMPSE_CHECK_OR_RETURN(st.keep >= 1 && st.keep <= visual, invalid_argument,
                                "decoder pruning: stage %zu (after layer %d) keeps %lld visual rows, but %lld enter it "
                                "(keep counts may not grow with depth)",
                                s, st.layer, static_cast<long long>(st.keep), static_cast<long long>(visual));
        if (st.select == DecoderSelect::uniform_grid) {
            GLIMPSE_CHECK_OR_RETURN(s == 0 && !st.select_auto && !st.debias, invalid_argument,
                                    "decoder pruning: stage %zu (after layer %d) samples a uniform grid; only a first "
                                    "stage, resolved and not debiased, can (resolve_decoder_selects)",
                                    s, st.layer);
            GLIMPSE_CHECK_OR_RETURN(static_cast<int64_t>(st.grid_rows.size()) == st.keep &&
                                        std::is_sorted(st.grid_rows.begin(), st.grid_rows.end()) &&
                                        std::adjacent_find(st.grid_rows.begin(), st.grid_rows.end()) ==
                                            st.grid_rows.end() &&
                                        (st.keep == 0 || (st.grid_rows.front() >= 0 && st.grid_rows.back() < visual)),
                                    invalid_argument,
                                    "decoder pruning: stage %zu's uniform grid has %zu rows; it needs %lld distinct "
                                    "ascending visual rows in [0, %lld) (feather_grid_rows)",
                                    s, st.grid_rows.size(), static_cast<long long>(st.keep),
                                    static_cast<long long>(visual));
        }
        SegmentSpec sp;
        sp.end_layer = st.layer + 1;
        sp.max_rows = rows;
        sp.kv_capacity = rows + shape.answer_rows;
        sp.score_layer = st.score_layer;
        specs.push_back(sp);
        d->visual_rows_.push_back(visual);
        const int64_t merged = st.recycle ? sparsevlm_merged_rows(visual - st.keep) : 0;
        d->merged_rows_.push_back(merged);
        rows -= visual - st.keep - merged;
        visual = st.keep + merged;
        prev_layer = st.layer;
    }
    SegmentSpec last;
    last.end_layer = n_layer;
    last.max_rows = rows;
    last.kv_capacity = rows + shape.answer_rows;
    specs.push_back(last);
    d->visual_rows_.push_back(visual);
    d->rows_.assign(specs.size(), 0);
    d->steps_ = std::move(steps);
    GLIMPSE_ASSIGN_OR_RETURN(d->plan_, decoder.compile_segments(specs, kv_type, n_threads, arenas));

    if (std::any_of(d->steps_.begin(), d->steps_.end(), [](const DecoderPruneStep& st) { return st.debias; })) {
        GLIMPSE_ASSIGN_OR_RETURN(d->rope_bias_, rope_bias_table(h.head_dim, h.n_rot, h.rope_base));
        // Distances of prompts numbered 0..rows-1; wider ones (original ids after an
        // after_projector stage) compute the divisor directly, with the same value.
        d->rope_bias_.cache_divisors(shape.prompt_rows);
    }
    d->score_kernel_ = select_kernel(OpFamily::query_key_score);
    d->topk_kernel_ = select_kernel(OpFamily::topk);
    d->gather_kernel_ = select_kernel(OpFamily::gather_rows);
    const int64_t T = shape.prompt_rows, V = shape.visual_rows;
    d->score_scratch_.assign(static_cast<size_t>(query_key_score_scratch_floats(1, h.n_head, T)), 0.0f);
    d->row_scores_.assign(static_cast<size_t>(T), 0.0f);
    d->visual_scores_.assign(static_cast<size_t>(V), 0.0f);
    d->visual_index_.assign(static_cast<size_t>(V), 0);
    if (d->rope_bias_.n_rot > 0) d->visual_pos_.assign(static_cast<size_t>(V), 0);
    d->selected_.assign(static_cast<size_t>(V), 0);
    d->topk_scratch_.assign(static_cast<size_t>(topk_scratch_bytes(V)) + 64, 0);
    d->is_visual_.assign(static_cast<size_t>(T), 0);
    d->is_visual_next_.assign(static_cast<size_t>(T), 0);
    d->survivors_.assign(static_cast<size_t>(T), 0);
    d->kept_rows_.resize(d->steps_.size());
    for (auto& k : d->kept_rows_) k.reserve(static_cast<size_t>(T));
    d->segment_positions_.resize(d->plan_.segments.size());
    for (auto& p : d->segment_positions_) p.reserve(static_cast<size_t>(T));
    d->position_shift_.assign(d->plan_.segments.size(), 0);
    d->size_sparsevlm_scratch();
    return d;
}

float* DecoderPruning::embeddings() const {
    const DecoderSegment& s0 = plan_.segments.front();
    return s0.plan->f32(s0.embeddings);
}

int32_t* DecoderPruning::positions() const {
    const DecoderSegment& s0 = plan_.segments.front();
    return static_cast<int32_t*>(s0.plan->data(s0.positions));
}

bool DecoderPruning::fits(int64_t n_rows, int64_t visual, int64_t n_answer,
                          const std::vector<DecoderPruneStep>& steps) const {
    if (n_rows > shape_.prompt_rows || visual != shape_.visual_rows || n_answer > shape_.answer_rows) return false;
    if (steps.size() != steps_.size()) return false;
    for (size_t i = 0; i < steps.size(); ++i) {
        const DecoderPruneStep &a = steps[i], &b = steps_[i];
        if (a.layer != b.layer || a.keep != b.keep || a.score_layer != b.score_layer || a.reduce != b.reduce ||
            a.compact_positions != b.compact_positions || a.text_raters != b.text_raters || a.recycle != b.recycle ||
            a.select != b.select || a.debias != b.debias || a.grid_rows != b.grid_rows)
            return false;
    }
    return true;
}

Result<const float*> DecoderPruning::prefill(int64_t n_rows, const uint8_t* is_visual, ThreadPool* pool) {
    const TextHparams& h = decoder_->hparams();
    const int64_t C = h.n_embd, D = h.head_dim;
    const int64_t T0 = n_rows;
    GLIMPSE_CHECK_OR_RETURN(T0 >= 1 && T0 <= shape_.prompt_rows, out_of_range,
                            "decoder pruning: a prefill of %lld rows; the plan holds at most %lld",
                            static_cast<long long>(T0), static_cast<long long>(shape_.prompt_rows));
    int64_t visual = 0;
    for (int64_t i = 0; i < T0; ++i) visual += is_visual[i] ? 1 : 0;
    GLIMPSE_CHECK_OR_RETURN(visual == shape_.visual_rows, invalid_argument,
                            "decoder pruning: the prompt has %lld visual rows, the plan was made for %lld",
                            static_cast<long long>(visual), static_cast<long long>(shape_.visual_rows));
    GLIMPSE_CHECK_OR_RETURN(!is_visual[T0 - 1], invalid_argument,
                            "decoder pruning: the prompt's last row is visual; the rater must be a text row");
    std::copy(is_visual, is_visual + T0, is_visual_.begin());
    rows_[0] = T0;
    for (size_t s = 0; s < steps_.size(); ++s) {
        rows_[s + 1] = rows_[s] - (visual_rows_[s] - steps_[s].keep) + merged_rows_[s];
    }
    boundary_times_ = {};
    auto t_boundary = std::chrono::steady_clock::now();
    choose_raters(T0, pool);  // sparsevlm: reads segment 0's input before it runs
    boundary_times_.raters_ms = ms_since(t_boundary);
    for (size_t s = 0; s < plan_.segments.size(); ++s) {
        DecoderSegment& seg = plan_.segments[s];
        const int64_t T = rows_[s];
        const int32_t* pos = static_cast<const int32_t*>(seg.plan->data(seg.positions));
        segment_positions_[s].assign(pos, pos + T);
        RunArgs args;
        args.n_rows = T;
        args.pos0 = 0;
        GLIMPSE_RETURN_IF_ERROR(seg.plan->run(args, pool));
        if (s + 1 == plan_.segments.size()) break;

        t_boundary = std::chrono::steady_clock::now();
        // feather's early stage picks a fixed grid of the visual rows: no score.
        const bool grid = steps_[s].select == DecoderSelect::uniform_grid;
        if (steps_[s].text_raters) {
            score_by_raters(seg, T, pool);
        } else {
        // Score every row by the last row's attention: q:(1, Hq·D) of row T-1, k:(T, Hkv·D).
        QueryKeyScoreArgs a;
        a.q = seg.plan->f32(seg.score_q) + (T - 1) * h.n_head * D;
        a.q_ld = h.n_head * D;
        a.n_raters = 1;
        a.k = seg.plan->f32(seg.score_k);
        a.k_ld = h.n_head_kv * D;
        a.n_keys = T;
        a.n_head = h.n_head;
        a.n_head_kv = h.n_head_kv;
        a.head_dim = D;
        a.scale = 1.0f / std::sqrt(static_cast<float>(D));
        a.reduce = steps_[s].reduce;
        a.out = row_scores_.data();
        if (!grid) score_kernel_->fn.query_key_score(a, score_scratch_.data(), pool);
        }

        int64_t n_vis = 0;
        for (int64_t i = 0; i < T; ++i) {
            if (!is_visual_[static_cast<size_t>(i)]) continue;
            visual_scores_[static_cast<size_t>(n_vis)] = row_scores_[static_cast<size_t>(i)];
            visual_index_[static_cast<size_t>(n_vis)] = static_cast<int32_t>(i);
            ++n_vis;
        }
        GLIMPSE_ASSERT(n_vis == visual_rows_[s]);
        const int64_t keep = steps_[s].keep;
        if (steps_[s].debias) {
            // ÷ the RoPE-only bias of each visual row's distance to the rater (ops/rope_bias.h).
            for (int64_t j = 0; j < n_vis; ++j) {
                visual_pos_[static_cast<size_t>(j)] = pos[visual_index_[static_cast<size_t>(j)]];
            }
            rope_debias_ref(rope_bias_, pos[T - 1], visual_pos_.data(), n_vis, visual_scores_.data());
        }
        boundary_times_.score_ms += ms_since(t_boundary);
        t_boundary = std::chrono::steady_clock::now();
        if (grid) {
            std::copy(steps_[s].grid_rows.begin(), steps_[s].grid_rows.end(), selected_.begin());
        } else {
            topk_kernel_->fn.topk(visual_scores_.data(), n_vis, keep, selected_.data(), align64(topk_scratch_));
        }
        // Survivors in prompt order: every text row and the selected visual rows.
        int64_t n = 0, next_sel = 0;
        for (int64_t i = 0; i < T; ++i) {
            bool keep_row = !is_visual_[static_cast<size_t>(i)];
            if (!keep_row && next_sel < keep && visual_index_[static_cast<size_t>(selected_[next_sel])] == i) {
                keep_row = true;
                ++next_sel;
            }
            if (keep_row) {
                is_visual_next_[static_cast<size_t>(n)] = is_visual_[static_cast<size_t>(i)];
                survivors_[static_cast<size_t>(n++)] = static_cast<int32_t>(i);
            }
        }
        GLIMPSE_ASSERT(n + merged_rows_[s] == rows_[s + 1] && next_sel == keep);
        // Kept prompt rows: the origins of the survivors.
        std::vector<int32_t>& kept = kept_rows_[s];
        const std::vector<int32_t>* prev = s > 0 ? &kept_rows_[s - 1] : nullptr;
        kept.resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
            const int32_t r = survivors_[static_cast<size_t>(i)];
            kept[static_cast<size_t>(i)] = prev ? (*prev)[static_cast<size_t>(r)] : r;
        }
        DecoderSegment& next = plan_.segments[s + 1];
        gather_kernel_->fn.gather_rows(seg.plan->f32(seg.hidden), C, survivors_.data(), n,
                                       next.plan->f32(next.embeddings), pool);
        int32_t* next_pos = static_cast<int32_t*>(next.plan->data(next.positions));
        for (int64_t i = 0; i < n; ++i) {
            next_pos[i] = steps_[s].compact_positions ? static_cast<int32_t>(i) : pos[survivors_[static_cast<size_t>(i)]];
        }
        boundary_times_.select_ms += ms_since(t_boundary);
        if (merged_rows_[s] > 0) {
            t_boundary = std::chrono::steady_clock::now();
            n = recycle_dropped(s, n, pos, pool);
            boundary_times_.recycle_ms += ms_since(t_boundary);
        }
        // The answer continues after the last row, which every segment keeps.
        position_shift_[s + 1] = segment_positions_[0][static_cast<size_t>(T0 - 1)] - next_pos[n - 1];
        std::copy(is_visual_next_.begin(), is_visual_next_.begin() + n, is_visual_.begin());
    }
    const DecoderSegment& last = plan_.segments.back();
    return static_cast<const float*>(last.plan->f32(last.logits));
}

Result<const float*> DecoderPruning::decode(int32_t position, int64_t step, ThreadPool* pool) {
    const int64_t C = decoder_->hparams().n_embd;
    GLIMPSE_CHECK_OR_RETURN(step >= 0 && rows_[0] >= 1 && rows_[0] + step < shape_.prompt_rows + shape_.answer_rows,
                            out_of_range,
                            "decoder pruning: answer step %lld after a %lld-row prompt is past the %lld slots the "
                            "plan holds (or no prefill ran)",
                            static_cast<long long>(step), static_cast<long long>(rows_[0]),
                            static_cast<long long>(shape_.prompt_rows + shape_.answer_rows));
    for (size_t s = 0; s < plan_.segments.size(); ++s) {
        DecoderSegment& seg = plan_.segments[s];
        static_cast<int32_t*>(seg.plan->data(seg.positions))[0] = position - position_shift_[s];
        RunArgs args;
        args.n_rows = 1;
        args.pos0 = rows_[s] + step;  // this segment's layers hold rows_[s] prompt rows
        GLIMPSE_RETURN_IF_ERROR(seg.plan->run(args, pool));
        if (s + 1 < plan_.segments.size()) {
            DecoderSegment& next = plan_.segments[s + 1];
            std::memcpy(next.plan->f32(next.embeddings), seg.plan->f32(seg.hidden), static_cast<size_t>(C) * sizeof(float));
        }
    }
    const DecoderSegment& last = plan_.segments.back();
    return static_cast<const float*>(last.plan->f32(last.logits));
}

int64_t DecoderPruning::visual_rows_layer_sum() const {
    int64_t sum = 0;
    for (size_t s = 0; s < plan_.segments.size(); ++s) {
        const DecoderSegment& seg = plan_.segments[s];
        sum += visual_rows_[s] * (seg.end_layer - seg.first_layer);
    }
    return sum;
}

int64_t DecoderPruning::kv_cache_bytes() const { return plan_.kv_cache ? plan_.kv_cache->bytes() : 0; }

int64_t DecoderPruning::arena_bytes() const {
    int64_t sum = boundary_scratch_bytes();
    if (plan_.buffer) return sum + plan_.shared_bytes();
    for (const DecoderSegment& seg : plan_.segments) {
        const MemoryReport& r = seg.plan->memory();
        sum += r.arena_bytes + r.scratch_bytes;
    }
    return sum;
}

int64_t DecoderPruning::boundary_scratch_bytes() const {
    int64_t bytes = static_cast<int64_t>((score_scratch_.size() + row_scores_.size() + visual_scores_.size()) *
                                         sizeof(float)) +
                    static_cast<int64_t>((visual_index_.size() + selected_.size() + survivors_.size() + visual_pos_.size()) *
                                         sizeof(int32_t)) +
                    static_cast<int64_t>(topk_scratch_.size() + is_visual_.size() + is_visual_next_.size());
    bytes += static_cast<int64_t>((rope_bias_.theta.size() + rope_bias_.divisors.size()) * sizeof(double));
    for (const auto& k : kept_rows_) bytes += static_cast<int64_t>(k.capacity() * sizeof(int32_t));
    for (const auto& p : segment_positions_) bytes += static_cast<int64_t>(p.capacity() * sizeof(int32_t));
    return bytes + sparsevlm_scratch_bytes();
}

}  // namespace glimpse
