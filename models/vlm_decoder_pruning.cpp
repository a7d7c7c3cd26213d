// Vlm's decoder-layer pruning (issue 24): checking a plan's decoder stages in load(), resolving
// their keep counts for a prompt and planning the segmented decoder (models/decoder_pruning.h).
// Kept apart from models/vlm.cpp, which runs the after-projector stage (issue 23).
#include <algorithm>

#include "models/decoder_pruning_feather.h"
#include "models/vlm.h"
#include "runtime/aligned_buffer.h"
#include "runtime/kv_cache.h"

namespace glimpse {
namespace {

// The largest image the model's preprocessing makes (most tiles): decoder keep counts are
// fitted against it in load(), so a plan that cannot fit any image is refused before work.
PreprocessedImage largest_image(const VisionHparams& vh) {
    PreprocessedImage largest;
    largest.has_overview = vh.projector == ProjectorType::idefics3;
    if (largest.has_overview) {
        const int64_t side = std::max<int64_t>(1, (vh.preproc_image_size + vh.image_size - 1) / vh.image_size);
        largest.grid_rows = largest.grid_cols = static_cast<int>(side);
    }
    return largest;
}

}  // namespace

Status Vlm::setup_decoder_pruning(const PruningPlan& plan) {
    decoder_stages_.clear();
    for (const PruneStage& st : plan.stages) {
        if (st.site == PruneSite::decoder_layer) decoder_stages_.push_back(st);
    }
    if (decoder_stages_.empty()) return Status::ok();
    // The whole plan against the model: layers that exist (a table made for a deeper model
    // names layers this one lacks), counts that do not grow with depth, then what is wired.
    GLIMPSE_ASSIGN_OR_RETURN(std::vector<FittedPruneStage> fitted,
                             pruning_plan_fit(plan, pruning_shape(largest_image(vision_->hparams())), "pruning plan"));
    // kv_cache.type is resolved in Vlm::load (kv_type_of_plan) into config_.kv_type.
    size_t di = 0;
    std::vector<DecoderPruneStep> steps;
    for (size_t i = 0; i < fitted.size(); ++i) {
        if (fitted[i].stage.site != PruneSite::decoder_layer) continue;
        const std::string where = "pruning plan: stages[" + std::to_string(i) + "]";
        GLIMPSE_ASSIGN_OR_RETURN(DecoderPruneStep step, decoder_prune_step(fitted[i].stage, fitted[i].layer,
                                                                           fitted[i].keep, where));
        steps.push_back(std::move(step));
        decoder_stages_[di++] = fitted[i].stage;  // with defaults filled in
    }
    GLIMPSE_RETURN_IF_ERROR(resolve_decoder_selects(steps, "pruning plan"));
    full_plan_ = plan;
    return Status::ok();
}

Result<std::vector<DecoderPruneStep>> Vlm::decoder_steps_for(const VlmPrompt& prompt) const {
    // Keep counts are per image (fractions of its visual tokens): a prompt keeps their sum.
    std::vector<DecoderPruneStep> steps;
    for (const PreprocessedImage& image : prompt.images) {
        GLIMPSE_ASSIGN_OR_RETURN(std::vector<FittedPruneStage> fitted,
                                 pruning_plan_fit(*full_plan_, pruning_shape(image), "pruning plan"));
        size_t di = 0;
        for (size_t i = 0; i < fitted.size(); ++i) {
            if (fitted[i].stage.site != PruneSite::decoder_layer) continue;
            const std::string where = "pruning plan: stages[" + std::to_string(i) + "]";
            GLIMPSE_ASSIGN_OR_RETURN(DecoderPruneStep step,
                                     decoder_prune_step(fitted[i].stage, fitted[i].layer, fitted[i].keep, where));
            if (steps.size() <= di) {
                steps.push_back(step);
            } else {
                steps[di].keep += step.keep;
            }
            ++di;
        }
    }
    GLIMPSE_CHECK_OR_RETURN(!steps.empty(), invalid_argument,
                            "pruning plan: decoder-layer stages need an image in the prompt");
    GLIMPSE_RETURN_IF_ERROR(resolve_decoder_selects(steps, "pruning plan"));
    if (steps.front().select == DecoderSelect::uniform_grid) {
        // feather's grid over the visual rows that enter the language model, chunk by chunk.
        std::vector<VisualChunkRows> chunks;
        for (const VlmPrompt::Chunk& c : prompt.chunks) chunks.push_back({c.n_tokens, tokens_side_});
        GLIMPSE_RETURN_IF_ERROR(feather_grid_rows(chunks, steps.front().keep, &steps.front().grid_rows));
    }
    return steps;
}

Status Vlm::ensure_decoder_pruning(const VlmPrompt& prompt, int64_t n_predict) {
    GLIMPSE_ASSIGN_OR_RETURN(std::vector<DecoderPruneStep> steps, decoder_steps_for(prompt));
    const int64_t n_rows = prompt.n_positions(), visual = prompt.n_image_tokens();
    const int64_t answer = std::max<int64_t>(n_predict, 1);
    if (decoder_pruning_ && decoder_pruning_->fits(n_rows, visual, answer, steps)) return Status::ok();
    decoder_pruning_.reset();  // release the old plan before building another
    DecoderPruneShape shape;
    shape.prompt_rows = n_rows;
    shape.visual_rows = visual;
    shape.answer_rows = answer;
    GLIMPSE_ASSIGN_OR_RETURN(decoder_pruning_, DecoderPruning::create(*text_, std::move(steps), shape, config_.kv_type,
                                                                      pool_->n_threads()));
    decoder_is_visual_.assign(static_cast<size_t>(n_rows), 0);
    text_->file().mapping()->release_resident_pages();
    return Status::ok();
}

Status Vlm::prepare(const VlmPrompt& prompt, int n_predict) {
    if (decoder_stages_.empty()) return prepare(prompt.n_positions(), n_predict);
    GLIMPSE_RETURN_IF_ERROR(check_context(prompt.n_positions(), n_predict));
    GLIMPSE_RETURN_IF_ERROR(ensure_vision_plan());
    return ensure_decoder_pruning(prompt, n_predict);
}

int64_t Vlm::unpruned_kv_bytes(int64_t n_positions) const {
    // Every layer holds every position, K and V, each layer's block rounded to the alignment
    // as KvCache::create does.
    const TextHparams& h = text_->hparams();
    const int64_t block = n_positions * kv_cache_row_bytes(config_.kv_type, h.n_head_kv * h.head_dim);
    return h.n_layer * 2 * align_up(block, static_cast<int64_t>(kBufferAlignment));
}

}  // namespace glimpse
