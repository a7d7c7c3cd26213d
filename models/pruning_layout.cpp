// Visual-token layout facts for pruning (see pruning_layout.h).
#include "models/pruning_layout.h"

#include <algorithm>
#include <cmath>

#include "ops/prune_select.h"

namespace glimpse {

Result<int> visual_tokens_per_side(const VisionHparams& v) {
    const int64_t shuffle = v.projector == ProjectorType::idefics3 ? v.scale_factor : 1;
    GLIMPSE_CHECK_OR_RETURN(
        v.patch_size > 0 && shuffle > 0 && v.image_size % (v.patch_size * shuffle) == 0, invalid_argument,
        "visual tokens: image size %lld is not a multiple of patch %lld x pixel shuffle %lld",
        static_cast<long long>(v.image_size), static_cast<long long>(v.patch_size), static_cast<long long>(shuffle));
    return static_cast<int>(v.image_size / (v.patch_size * shuffle));
}

namespace {

Status fill_common(const VisionHparams& v, const TextHparams& t, PruningModelShape* shape) {
    GLIMPSE_ASSIGN_OR_RETURN(int side, visual_tokens_per_side(v));
    shape->tokens_per_tile = side * side;
    shape->pixel_shuffle = v.projector == ProjectorType::idefics3 ? static_cast<int>(v.scale_factor) : 1;
    // llama.cpp's mlp layout puts [CLS] at position N, after the patches (vision_encoder.h).
    shape->encoder_has_cls = v.projector == ProjectorType::mlp && v.has_class_embedding;
    shape->encoder_layers = static_cast<int>(v.n_layer);
    shape->encoder_layers_run = static_cast<int>(v.n_layer_used > 0 ? v.n_layer_used : v.n_layer);
    shape->decoder_layers = static_cast<int>(t.n_layer);
    return Status::ok();
}

}  // namespace

Result<PruningModelShape> pruning_shape_idefics3(const VisionHparams& v, const TextHparams& t,
                                                 const Idefics3Geometry& g) {
    GLIMPSE_CHECK_OR_RETURN(v.projector == ProjectorType::idefics3, invalid_argument,
                            "pruning shape: the idefics3 layout needs an idefics3 projector");
    PruningModelShape shape;
    GLIMPSE_RETURN_IF_ERROR(fill_common(v, t, &shape));
    shape.n_tiles = g.n_tiles();
    shape.has_overview = true;
    return shape;
}

Result<PruningModelShape> pruning_shape_llava(const VisionHparams& v, const TextHparams& t) {
    GLIMPSE_CHECK_OR_RETURN(v.projector == ProjectorType::mlp, invalid_argument,
                            "pruning shape: the single-view layout needs an mlp projector");
    PruningModelShape shape;
    GLIMPSE_RETURN_IF_ERROR(fill_common(v, t, &shape));
    shape.n_tiles = 1;
    shape.has_overview = false;
    return shape;
}

Result<std::vector<int32_t>> idefics3_overview_token_tiles(const Idefics3Geometry& g, int tokens_per_side) {
    GLIMPSE_CHECK_OR_RETURN(tokens_per_side >= 1 && g.tile_size >= 1 && g.grid_rows >= 1 && g.grid_cols >= 1,
                            invalid_argument, "overview token tiles: %d tokens per side, tile %d, grid %dx%d",
                            tokens_per_side, g.tile_size, g.grid_rows, g.grid_cols);
    const int T = tokens_per_side;
    std::vector<int32_t> tiles(static_cast<size_t>(T) * T);
    for (int r = 0; r < T; ++r) {
        const double y = g.offset_y + (r + 0.5) / T * g.resized_h;
        const int row = std::clamp(static_cast<int>(std::floor(y / g.tile_size)), 0, g.grid_rows - 1);
        for (int c = 0; c < T; ++c) {
            const double x = g.offset_x + (c + 0.5) / T * g.resized_w;
            const int col = std::clamp(static_cast<int>(std::floor(x / g.tile_size)), 0, g.grid_cols - 1);
            tiles[static_cast<size_t>(r) * T + c] = row * g.grid_cols + col;
        }
    }
    return tiles;
}

Idefics3Geometry idefics3_geometry_of(const PreprocessedImage& image) {
    return {.image_w = image.resized_w, .image_h = image.resized_h,
            .canvas_w = image.grid_cols * image.tile_size, .canvas_h = image.grid_rows * image.tile_size,
            .grid_rows = image.grid_rows, .grid_cols = image.grid_cols,
            .resized_w = image.resized_w, .resized_h = image.resized_h,
            .offset_x = image.offset_x, .offset_y = image.offset_y,
            .tile_size = image.tile_size};
}

Result<std::vector<int64_t>> hired_chunk_keep_counts(const Idefics3Geometry& g, int tokens_per_side,
                                                     const float* overview_scores, double overview_share,
                                                     int64_t keep_total) {
    GLIMPSE_ASSIGN_OR_RETURN(std::vector<int32_t> token_tile, idefics3_overview_token_tiles(g, tokens_per_side));
    const int64_t n_parts = static_cast<int64_t>(g.n_tiles()) + 1;
    std::vector<int32_t> tokens(static_cast<size_t>(n_parts), tokens_per_side * tokens_per_side), keep(tokens.size());
    GLIMPSE_RETURN_IF_ERROR(split_keep_budget_by_overview(tokens.data(), n_parts, overview_scores, token_tile.data(),
                                                          overview_share, keep_total, keep.data()));
    return std::vector<int64_t>(keep.begin(), keep.end());
}

bool hired_split_reads_scores(double overview_share, int64_t n_overview) {
    const int64_t top = static_cast<int64_t>(std::floor((1.0 - overview_share) * static_cast<double>(n_overview) + 0.5));
    return top > 0 && top < n_overview;
}

}  // namespace glimpse
