// FEATHER ("Feather the Throttle", ICCV'25) and attention debiasing for the decoder-layer
// pruning of models/decoder_pruning.h (issue 24; docs/pruning.md, "feather and debias").
//
// feather: FastV's last-row attention after an early layer keeps mostly the visual tokens
// nearest the end of the image (its bottom rows: RoPE's pull toward nearby positions). FEATHER
// prunes in two steps: early, a *uniform-coverage* sample (a fixed spatial grid of each chunk's
// tokens, no score at all), later an attention prune (optionally debiased) over what is left.
// A feather stage's `criterion` argument says which: uniform, attention, or auto (the default:
// uniform when it is the plan's first decoder stage, attention otherwise). The grid is fixed
// for a prompt shape, so it is computed when the plan is made, not in prefill.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/decoder_pruning.h"
#include "runtime/pruning_plan.h"
#include "runtime/status.h"

namespace glimpse {

// The feather branch of decoder_prune_step: FastV's score source (the stage's own q/k after RoPE)
// and original position ids; the criterion from the stage's args.
Status feather_prune_step(const PruneStage& stage, DecoderPruneStep* step, const std::string& where);

// Resolves `criterion: auto` of the decoder steps of one plan (in plan order; uniform only as
// the first) and refuses a uniform-grid step that is not the first decoder step: the visual rows
// entering a later stage depend on the image, so no grid can be fixed for them.
Status resolve_decoder_selects(std::vector<DecoderPruneStep>& steps, const std::string& where);

// One chunk of a prompt's visual rows, in prompt order: `rows` of them entering the language
// model, of a side × side token grid (rows == side²: the whole grid in raster order; fewer: an
// after_projector stage kept these rows, ascending raster order).
struct VisualChunkRows {
    int64_t rows = 0;
    int64_t side = 0;
};

// The uniform-coverage sample of `keep` of the chunks' visual rows:
//   per chunk c (tokens n_c, cumulative N_c, total N): k_c = floor(keep·N_{c+1}/N) − floor(keep·N_c/N);
//   a whole grid: prune_uniform_grid_ref(side, side, k_c) (ops/prune_select.h: even rows, even
//   columns); a pruned chunk: the rows at floor((b + 0.5)·n_c / k_c), b < k_c (an even stride
//   over what is left, in raster order).
// -> rows:(keep) ascending indices into the concatenated visual rows. Refuses keep outside
// [1, N] and chunks with rows outside [0, side²].
Status feather_grid_rows(const std::vector<VisualChunkRows>& chunks, int64_t keep, std::vector<int32_t>* rows);

// `--debias`: sets `debias: true` on every attention-scored decoder stage of `plan` (not on
// feather's uniform-grid stage, which has no score); refused when there is none.
Status pruning_plan_enable_debias(PruningPlan* plan, const std::string& where);

}  // namespace glimpse
