// Keep-map rendering (see keep_map.h).
#include "models/keep_map.h"

#include <algorithm>
#include <cmath>

namespace glimpse {
namespace {

Status check_view(const KeepMapView& v, const char* name) {
    GLIMPSE_CHECK_OR_RETURN(v.canvas_w >= 1 && v.canvas_h >= 1 && v.resized_w >= 1 && v.resized_h >= 1,
                            invalid_argument, "keep map: %s view: canvas %dx%d and image size %dx%d must be positive",
                            name, v.canvas_w, v.canvas_h, v.resized_w, v.resized_h);
    GLIMPSE_CHECK_OR_RETURN(v.tiles_x >= 1 && v.tiles_y >= 1 && v.tokens_x >= 1 && v.tokens_y >= 1, invalid_argument,
                            "keep map: %s view: %dx%d tiles of %dx%d tokens", name, v.tiles_x, v.tiles_y, v.tokens_x,
                            v.tokens_y);
    // Every tile must split into whole token cells, so a token's area is exact.
    GLIMPSE_CHECK_OR_RETURN(v.canvas_w % (v.tiles_x * v.tokens_x) == 0 && v.canvas_h % (v.tiles_y * v.tokens_y) == 0,
                            invalid_argument,
                            "keep map: %s view: a %dx%d canvas does not split into %dx%d tiles of %dx%d tokens", name,
                            v.canvas_w, v.canvas_h, v.tiles_x, v.tiles_y, v.tokens_x, v.tokens_y);
    const size_t tiles = static_cast<size_t>(v.tiles_x) * v.tiles_y;
    GLIMPSE_CHECK_OR_RETURN(v.kept.size() == tiles, invalid_argument, "keep map: %s view: %zu kept lists for %zu tiles",
                            name, v.kept.size(), tiles);
    const int64_t per_tile = static_cast<int64_t>(v.tokens_x) * v.tokens_y;
    for (size_t t = 0; t < tiles; ++t) {
        for (int32_t i : v.kept[t]) {
            GLIMPSE_CHECK_OR_RETURN(i >= 0 && i < per_tile, invalid_argument,
                                    "keep map: %s view: tile %zu: kept token %d is outside its %lld tokens", name, t, i,
                                    static_cast<long long>(per_tile));
        }
    }
    return Status::ok();
}

// Per view, a flag per token: kept[tile][token].
struct KeptGrid {
    const KeepMapView* view = nullptr;
    std::vector<uint8_t> flags;  // (tiles_y * tiles_x, tokens_y * tokens_x)

    explicit KeptGrid(const KeepMapView& v) : view(&v) {
        const size_t per_tile = static_cast<size_t>(v.tokens_x) * v.tokens_y;
        flags.assign(v.kept.size() * per_tile, 0);
        for (size_t t = 0; t < v.kept.size(); ++t) {
            for (int32_t i : v.kept[t]) flags[t * per_tile + static_cast<size_t>(i)] = 1;
        }
    }

    // Whether the token under the centre of original-image pixel (x, y) of a W x H image is kept.
    // The pixel centre maps to canvas x_c = offset_x + (x + 0.5) * resized_w / W (same for y).
    bool kept_at(int x, int y, int W, int H) const {
        const KeepMapView& v = *view;
        const double xc = v.offset_x + (x + 0.5) * v.resized_w / W;
        const double yc = v.offset_y + (y + 0.5) * v.resized_h / H;
        const int cell_w = v.canvas_w / (v.tiles_x * v.tokens_x), cell_h = v.canvas_h / (v.tiles_y * v.tokens_y);
        const int cx = std::clamp(static_cast<int>(std::floor(xc / cell_w)), 0, v.tiles_x * v.tokens_x - 1);
        const int cy = std::clamp(static_cast<int>(std::floor(yc / cell_h)), 0, v.tiles_y * v.tokens_y - 1);
        const size_t tile = static_cast<size_t>(cy / v.tokens_y) * v.tiles_x + cx / v.tokens_x;
        const size_t token = static_cast<size_t>(cy % v.tokens_y) * v.tokens_x + cx % v.tokens_x;
        return flags[tile * v.tokens_x * v.tokens_y + token] != 0;
    }
};

std::vector<std::vector<int32_t>> one_list(std::vector<int32_t> kept) {
    std::vector<std::vector<int32_t>> lists;
    lists.push_back(std::move(kept));
    return lists;
}

}  // namespace

Result<KeepMapViews> keep_map_views_idefics3(const Idefics3Geometry& g, int tokens_per_side,
                                             std::vector<std::vector<int32_t>> kept_per_chunk) {
    GLIMPSE_CHECK_OR_RETURN(static_cast<int>(kept_per_chunk.size()) == g.n_chunks(), invalid_argument,
                            "keep map: %zu kept lists for %d chunks (%dx%d tiles + the overview)",
                            kept_per_chunk.size(), g.n_chunks(), g.grid_rows, g.grid_cols);
    GLIMPSE_CHECK_OR_RETURN(tokens_per_side >= 1, invalid_argument, "keep map: %d tokens per tile side",
                            tokens_per_side);
    std::vector<int32_t> overview_kept = std::move(kept_per_chunk.back());
    kept_per_chunk.pop_back();
    KeepMapViews views;
    views.main = {.canvas_w = g.canvas_w, .canvas_h = g.canvas_h, .offset_x = g.offset_x, .offset_y = g.offset_y,
                  .resized_w = g.resized_w, .resized_h = g.resized_h, .tiles_x = g.grid_cols, .tiles_y = g.grid_rows,
                  .tokens_x = tokens_per_side, .tokens_y = tokens_per_side, .kept = std::move(kept_per_chunk)};
    KeepMapView overview;  // the whole image stretched onto one tile
    overview.canvas_w = overview.canvas_h = overview.resized_w = overview.resized_h = g.tile_size;
    overview.tokens_x = overview.tokens_y = tokens_per_side;
    overview.kept = one_list(std::move(overview_kept));
    views.overview = std::move(overview);
    GLIMPSE_RETURN_IF_ERROR(check_view(views.main, "tile"));
    GLIMPSE_RETURN_IF_ERROR(check_view(*views.overview, "overview"));
    return views;
}

Result<KeepMapViews> keep_map_views_llava(const LlavaGeometry& g, int tokens_per_side, std::vector<int32_t> kept) {
    GLIMPSE_CHECK_OR_RETURN(tokens_per_side >= 1, invalid_argument, "keep map: %d tokens per side", tokens_per_side);
    KeepMapViews views;
    KeepMapView& v = views.main;
    v.canvas_w = v.canvas_h = g.canvas;
    v.offset_x = g.offset_x;
    v.offset_y = g.offset_y;
    v.resized_w = g.resized_w;
    v.resized_h = g.resized_h;
    v.tokens_x = v.tokens_y = tokens_per_side;
    v.kept = one_list(std::move(kept));
    GLIMPSE_RETURN_IF_ERROR(check_view(v, "single"));
    return views;
}

Result<ImageU8> keep_map_render(const ImageU8& image, const KeepMapViews& views, const KeepMapStyle& style) {
    GLIMPSE_CHECK_OR_RETURN(image.width >= 1 && image.height >= 1 && image.rgb.size() == image.n_bytes(),
                            invalid_argument, "keep map: image %dx%d with %zu bytes of RGB", image.width, image.height,
                            image.rgb.size());
    GLIMPSE_CHECK_OR_RETURN(std::isfinite(style.dim) && style.dim >= 0 && style.dim <= 1, invalid_argument,
                            "keep map: dim %g must be in [0, 1]", style.dim);
    GLIMPSE_CHECK_OR_RETURN(style.gap >= 0 && style.gap <= 4096, invalid_argument,
                            "keep map: gap %d must be in [0, 4096]", style.gap);
    GLIMPSE_RETURN_IF_ERROR(check_view(views.main, "main"));
    if (views.overview) GLIMPSE_RETURN_IF_ERROR(check_view(*views.overview, "overview"));

    const int W = image.width, H = image.height;
    const int overview_w = views.overview ? (W + 1) / 2 : 0, overview_h = views.overview ? (H + 1) / 2 : 0;
    ImageU8 out;
    out.width = views.overview ? W + style.gap + overview_w : W;
    out.height = H;
    out.rgb.resize(out.n_bytes());
    for (size_t i = 0; i < out.rgb.size(); i += 3) {
        out.rgb[i] = style.background[0];
        out.rgb[i + 1] = style.background[1];
        out.rgb[i + 2] = style.background[2];
    }
    // One dimming table: dropped channel v -> floor(v * dim + 0.5).
    uint8_t dimmed[256];
    for (int v = 0; v < 256; ++v) dimmed[v] = static_cast<uint8_t>(std::floor(v * style.dim + 0.5));
    auto put = [&](int ox, int oy, int sx, int sy, bool kept) {
        const uint8_t* src = image.pixel(sx, sy);
        uint8_t* dst = out.pixel(ox, oy);
        for (int c = 0; c < 3; ++c) dst[c] = kept ? src[c] : dimmed[src[c]];
    };

    const KeptGrid main(views.main);
    for (int y = 0; y < H; ++y) {
        for (int x = 0; x < W; ++x) put(x, y, x, y, main.kept_at(x, y, W, H));
    }
    if (views.overview) {
        // Half size, nearest: panel pixel (px, py) shows source pixel floor((p + 0.5) * size / panel).
        const KeptGrid overview(*views.overview);
        const int x0 = W + style.gap;
        for (int py = 0; py < overview_h; ++py) {
            const int sy = std::min(H - 1, static_cast<int>((2 * py + 1) * static_cast<int64_t>(H) / (2 * overview_h)));
            for (int px = 0; px < overview_w; ++px) {
                const int sx =
                    std::min(W - 1, static_cast<int>((2 * px + 1) * static_cast<int64_t>(W) / (2 * overview_w)));
                put(x0 + px, py, sx, sy, overview.kept_at(sx, sy, W, H));
            }
        }
    }
    return out;
}

}  // namespace glimpse
