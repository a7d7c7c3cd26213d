// What the pruning code needs to know about a model's visual-token layout, computed from its
// hyperparameters and the image's preprocessing geometry (models/image_preprocess.h), so that
// runtime/pruning_plan.h and ops/prune_select.h stay model-free.
#pragma once

#include <cstdint>
#include <vector>

#include "models/image_preprocess.h"
#include "models/text_decoder.h"
#include "models/vision_encoder.h"
#include "runtime/pruning_plan.h"
#include "runtime/status.h"

namespace glimpse {

// Visual tokens per tile side: image_size / patch_size / pixel-shuffle factor
// (SmolVLM 512 / 16 / 4 = 8; LLaVA-1.5 336 / 14 = 24).
Result<int> visual_tokens_per_side(const VisionHparams& vision);

// The PruningModelShape of one image: SmolVLM (idefics3) with its tile grid + overview, or
// LLaVA (mlp) with its single view.
Result<PruningModelShape> pruning_shape_idefics3(const VisionHparams& vision, const TextHparams& text,
                                                 const Idefics3Geometry& geometry);
Result<PruningModelShape> pruning_shape_llava(const VisionHparams& vision, const TextHparams& text);

// For HiRED's budget split (ops/prune_select.h split_keep_budget_by_overview): the tile under the
// centre of each overview token. Overview token (r, c) of a T x T grid covers the whole image
// stretched, so its centre is image point ((c + 0.5) / T * image_w, (r + 0.5) / T * image_h),
// which the tiling placed at canvas (offset_x + (c + 0.5) / T * resized_w, same for y).
//   -> (T * T) tile indices, row-major tiles.
Result<std::vector<int32_t>> idefics3_overview_token_tiles(const Idefics3Geometry& geometry, int tokens_per_side);

// The geometry of a preprocessed idefics3 image (grid, tile size, where the image lies on the
// canvas): what idefics3_overview_token_tiles reads. Image and canvas sizes are not kept
// (canvas = grid x tile; image = resized).
Idefics3Geometry idefics3_geometry_of(const PreprocessedImage& image);

// HiRED's keep counts for one idefics3 image: its keep_total shared over the tiles (row-major)
// and the overview (last) by split_keep_budget_by_overview, each overview token counted for the
// tile under its centre (idefics3_overview_token_tiles).
//   overview_scores:(tokens_per_side^2) -> counts:(n_tiles + 1), summing to keep_total.
Result<std::vector<int64_t>> hired_chunk_keep_counts(const Idefics3Geometry& geometry, int tokens_per_side,
                                                     const float* overview_scores, double overview_share,
                                                     int64_t keep_total);

// Whether HiRED's split can depend on the overview's scores at this share: it counts the
// overview's top round((1 - share) * n_overview) tokens, and none (share 1) or all (share 0) of
// them make the counts a function of the geometry alone.
bool hired_split_reads_scores(double overview_share, int64_t n_overview);

}  // namespace glimpse
