#include "models/image_preprocess.h"

#include "ops/image_resize.h"

#include <algorithm>
#include <cmath>

// Canvas sizes are derived with float arithmetic exactly as llama.cpp does; keep every
// operation separately rounded (see ops/image_resize.cpp).
#include "runtime/fp_contract_off.h"

namespace glimpse {

namespace {

// Where an image of width x height lands on a canvas_w x canvas_h canvas, resized keeping its
// aspect and centred: into an Idefics3Geometry or a LlavaGeometry.
template <class Geometry>
void place_with_padding(int width, int height, int canvas_w, int canvas_h, Geometry* g) {
    const PadFit fit = fit_with_padding(width, height, canvas_w, canvas_h);
    g->resized_w = fit.resized_w;
    g->resized_h = fit.resized_h;
    g->offset_x = fit.offset_x;
    g->offset_y = fit.offset_y;
}

Status check_norm(const std::array<float, 3>& mean, const std::array<float, 3>& std, const char* who) {
    for (int c = 0; c < 3; ++c) {
        GLIMPSE_CHECK_OR_RETURN(std::isfinite(mean[c]) && std::isfinite(std[c]) && std[c] != 0.0f, invalid_argument,
                                "%s: image mean/std channel %d = %g/%g (std must be finite and non-zero)", who, c,
                                mean[c], std[c]);
    }
    return Status::ok();
}

// What both preprocessors check before any work: the image buffer, then the normalization.
Status check_inputs(const ImageU8& image, const std::array<float, 3>& mean, const std::array<float, 3>& std,
                    const char* who) {
    GLIMPSE_RETURN_IF_ERROR(check_resize_size(image.width, image.height, who, "image"));
    GLIMPSE_CHECK_OR_RETURN(image.rgb.size() == image.n_bytes(), invalid_argument,
                            "%s: image is %dx%d but holds %zu bytes (expected %zu)", who, image.width, image.height,
                            image.rgb.size(), image.n_bytes());
    return check_norm(mean, std, who);
}

// Multiples of `align` nearest to / above / below x, computed in float as llama.cpp does.
int64_t round_to_multiple(float x, int align) {
    return static_cast<int64_t>(std::round(x / static_cast<float>(align))) * align;
}
int64_t ceil_to_multiple(float x, int align) {
    return static_cast<int64_t>(std::ceil(x / static_cast<float>(align))) * align;
}
int64_t floor_to_multiple(float x, int align) {
    return static_cast<int64_t>(std::floor(x / static_cast<float>(align))) * align;
}

}  // namespace

TileGrid idefics3_capped_grid(int image_w, int image_h, int natural_rows, int natural_cols, int max_tiles) {
    GLIMPSE_ASSERT(image_w >= 1 && image_h >= 1 && natural_rows >= 1 && natural_cols >= 1 && max_tiles >= 1);
    if (int64_t{natural_rows} * natural_cols <= max_tiles) return {natural_rows, natural_cols};
    // Aspect error of (r, c) as the exact ratio hi/lo >= 1 of cols*h and rows*w (|ln| of it is
    // the distance; comparing the ratios is the same order): hi1/lo1 < hi2/lo2 <=> hi1*lo2 < hi2*lo1.
    // Sides and grid sides are at most 2^16: each factor fits 32 bits, each product 128.
    struct Candidate {
        int rows = 0, cols = 0;
        int64_t hi = 0, lo = 0;
    };
    auto make = [&](int r, int c) {
        const int64_t a = int64_t{c} * image_h, b = int64_t{r} * image_w;
        return Candidate{r, c, std::max(a, b), std::min(a, b)};
    };
    Candidate best;
    for (int r = 1; r <= natural_rows; ++r) {
        for (int c = 1; c <= natural_cols && int64_t{r} * c <= max_tiles; ++c) {
            const Candidate cand = make(r, c);
            if (best.rows == 0) {
                best = cand;
                continue;
            }
            const __int128 lhs = static_cast<__int128>(cand.hi) * best.lo;
            const __int128 rhs = static_cast<__int128>(best.hi) * cand.lo;
            const bool better = lhs < rhs || (lhs == rhs && (cand.rows * cand.cols > best.rows * best.cols ||
                                                             (cand.rows * cand.cols == best.rows * best.cols &&
                                                              cand.cols > best.cols)));
            if (better) best = cand;
        }
    }
    return {best.rows, best.cols};
}

Result<Idefics3Geometry> idefics3_geometry(int width, int height, const Idefics3Params& params) {
    const char* who = "idefics3 preprocessing";
    GLIMPSE_RETURN_IF_ERROR(check_resize_size(width, height, who, "image"));
    const int S = params.tile_size;
    GLIMPSE_CHECK_OR_RETURN(S > 0 && S <= kResizeMaxSide, invalid_argument, "%s: tile size %d outside 1..%d", who, S,
                            kResizeMaxSide);
    GLIMPSE_CHECK_OR_RETURN(params.longest_edge >= 0 && params.longest_edge <= kResizeMaxSide, invalid_argument,
                            "%s: longest edge %d outside 0..%d", who, params.longest_edge, kResizeMaxSide);
    GLIMPSE_CHECK_OR_RETURN(params.min_pixels >= 0 && params.max_pixels >= 0, invalid_argument,
                            "%s: negative pixel budget (min %d, max %d)", who, params.min_pixels, params.max_pixels);
    GLIMPSE_CHECK_OR_RETURN(params.max_tiles >= 0, invalid_argument,
                            "%s: tile budget (max tiles) %d; it must be at least 1 (0: no budget)", who,
                            params.max_tiles);

    // Step 1: the canvas ("refined size"), aligned to the tile size.
    int64_t canvas_w = 0, canvas_h = 0;
    if (params.longest_edge > 0) {
        const float scale = std::min(static_cast<float>(params.longest_edge) / width,
                                     static_cast<float>(params.longest_edge) / height);
        canvas_w = ceil_to_multiple(width * scale, S);
        canvas_h = ceil_to_multiple(height * scale, S);
    } else {
        canvas_w = std::max<int64_t>(S, round_to_multiple(static_cast<float>(width), S));
        canvas_h = std::max<int64_t>(S, round_to_multiple(static_cast<float>(height), S));
    }
    if (params.max_pixels > 0 && canvas_w * canvas_h > params.max_pixels) {
        const float beta = std::sqrt(static_cast<float>(height) * width / params.max_pixels);
        canvas_h = std::max<int64_t>(S, floor_to_multiple(height / beta, S));
        canvas_w = std::max<int64_t>(S, floor_to_multiple(width / beta, S));
    } else if (params.min_pixels > 0 && canvas_w * canvas_h < params.min_pixels) {
        const float beta = std::sqrt(static_cast<float>(params.min_pixels) / (static_cast<float>(height) * width));
        canvas_h = ceil_to_multiple(height * beta, S);
        canvas_w = ceil_to_multiple(width * beta, S);
    }
    GLIMPSE_CHECK_OR_RETURN(canvas_w >= S && canvas_h >= S && canvas_w <= kResizeMaxSide &&
                                canvas_h <= kResizeMaxSide && canvas_w * canvas_h <= kResizeMaxPixels,
                            out_of_range, "%s: %dx%d image gives a %lldx%lld canvas (tile %d), outside 1 tile..%d per side",
                            who, width, height, static_cast<long long>(canvas_w), static_cast<long long>(canvas_h), S,
                            kResizeMaxSide);

    Idefics3Geometry g;
    g.image_w = width;
    g.image_h = height;
    g.canvas_w = static_cast<int>(canvas_w);
    g.canvas_h = static_cast<int>(canvas_h);
    g.tile_size = S;
    // Every path above yields multiples of S, so the tiles cover the canvas exactly.
    g.grid_cols = g.canvas_w / S;
    g.grid_rows = g.canvas_h / S;
    GLIMPSE_ASSERT(g.grid_cols * S == g.canvas_w && g.grid_rows * S == g.canvas_h);

    if (params.max_tiles > 0 && g.n_tiles() > params.max_tiles) {
        // The tile budget: a smaller grid of the image's aspect; the image fills its canvas.
        const TileGrid grid = idefics3_capped_grid(width, height, g.grid_rows, g.grid_cols, params.max_tiles);
        g.grid_rows = grid.rows;
        g.grid_cols = grid.cols;
        g.canvas_w = grid.cols * S;
        g.canvas_h = grid.rows * S;
        g.resized_w = g.canvas_w;
        g.resized_h = g.canvas_h;
        g.capped = true;
        return g;
    }

    // Step 2: placement of the aspect-preserving resize inside the canvas.
    place_with_padding(width, height, g.canvas_w, g.canvas_h, &g);
    return g;
}

Result<PreprocessedImage> idefics3_preprocess(const ImageU8& image, const Idefics3Params& params) {
    GLIMPSE_RETURN_IF_ERROR(check_inputs(image, params.mean, params.std, "idefics3 preprocessing"));
    GLIMPSE_ASSIGN_OR_RETURN(const Idefics3Geometry g, idefics3_geometry(image.width, image.height, params));
    const int S = g.tile_size;

    PreprocessedImage out;
    out.tile_size = S;
    out.n_chunks = g.n_chunks();
    out.grid_rows = g.grid_rows;
    out.grid_cols = g.grid_cols;
    out.has_overview = true;
    out.resized_w = g.resized_w;
    out.resized_h = g.resized_h;
    out.offset_x = g.offset_x;
    out.offset_y = g.offset_y;
    out.data.resize(static_cast<size_t>(out.n_chunks) * out.chunk_floats());

    GLIMPSE_ASSIGN_OR_RETURN(const ImageU8 canvas,
                             g.capped ? resize_u8(image, g.canvas_w, g.canvas_h, ResizeFilter::bicubic)
                                      : resize_with_padding_u8(image, g.canvas_w, g.canvas_h, ResizeFilter::bicubic,
                                                               {0, 0, 0}));
    GLIMPSE_ASSERT(canvas.width == g.canvas_w && canvas.height == g.canvas_h);
    int k = 0;
    for (int row = 0; row < g.grid_rows; ++row) {
        for (int col = 0; col < g.grid_cols; ++col, ++k) {
            GLIMPSE_ASSIGN_OR_RETURN(const ImageU8 tile, crop_u8(canvas, col * S, row * S, S, S));
            GLIMPSE_RETURN_IF_ERROR(
                normalize_to_planar_f32(tile, params.mean, params.std, out.data.data() + k * out.chunk_floats()));
        }
    }
    GLIMPSE_ASSIGN_OR_RETURN(const ImageU8 overview, resize_u8(image, S, S, ResizeFilter::bilinear));
    GLIMPSE_RETURN_IF_ERROR(
        normalize_to_planar_f32(overview, params.mean, params.std, out.data.data() + k * out.chunk_floats()));
    return out;
}

Result<LlavaGeometry> llava_geometry(int width, int height, const LlavaParams& params) {
    const char* who = "llava preprocessing";
    GLIMPSE_RETURN_IF_ERROR(check_resize_size(width, height, who, "image"));
    GLIMPSE_CHECK_OR_RETURN(params.image_size > 0 && params.image_size <= kResizeMaxSide, invalid_argument,
                            "%s: image size %d outside 1..%d", who, params.image_size, kResizeMaxSide);
    LlavaGeometry g;
    g.image_w = width;
    g.image_h = height;
    g.canvas = params.image_size;
    place_with_padding(width, height, g.canvas, g.canvas, &g);
    return g;
}

Result<PreprocessedImage> llava_preprocess(const ImageU8& image, const LlavaParams& params) {
    GLIMPSE_RETURN_IF_ERROR(check_inputs(image, params.mean, params.std, "llava preprocessing"));
    GLIMPSE_ASSIGN_OR_RETURN(const LlavaGeometry g, llava_geometry(image.width, image.height, params));

    PreprocessedImage out;
    out.tile_size = g.canvas;
    out.n_chunks = 1;
    out.data.resize(out.chunk_floats());
    GLIMPSE_ASSIGN_OR_RETURN(const ImageU8 canvas, resize_with_padding_u8(image, g.canvas, g.canvas,
                                                                          ResizeFilter::bicubic, params.pad_rgb));
    GLIMPSE_RETURN_IF_ERROR(normalize_to_planar_f32(canvas, params.mean, params.std, out.data.data()));
    return out;
}

}  // namespace glimpse
