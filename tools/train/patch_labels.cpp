// Per-patch labels of a scene (patch_labels.h).
#include "tools/train/patch_labels.h"

#include <algorithm>
#include <cstdlib>

#include "models/image_preprocess.h"

namespace glimpse::traindata {

using namespace glimpse::scenes;

namespace {

// Owner codes of text pixels: glyph i of the text is kGlyphOwner - i (objects are 0..8, none -1).
constexpr int kGlyphOwner = -2;

// Which object (index), which glyph of the text (kGlyphOwner - i) or nothing (-1) shows at each
// pixel of the scene. Objects
// have exact flat colors; same-colored objects never touch and no object touches the text, so
// color + bounding box identify the owner of every object or text pixel.
std::vector<int8_t> owner_map(const Scene& scene) {
    const int W = scene.image.width, H = scene.image.height;
    std::vector<int8_t> owner(static_cast<size_t>(W) * H, -1);
    for (size_t i = 0; i < scene.objects.size(); ++i) {
        const SceneObject& o = scene.objects[i];
        const Rgb c = color_rgb(o.color);
        for (int y = o.bbox.y0; y < o.bbox.y1; ++y)
            for (int x = o.bbox.x0; x < o.bbox.x1; ++x)
                if (scene.image.pixel(x, y) == c) owner[static_cast<size_t>(y) * W + x] = static_cast<int8_t>(i);
    }
    if (scene.text) {
        const Rgb c = color_rgb(scene.text->color);
        const PixelBox& b = scene.text->bbox;
        // glyph i starts at x0 + 6·i·scale (SceneText): the 1-cell gap between glyphs is empty
        const int pitch = 6 * scene.text->scale;
        for (int y = b.y0; y < b.y1; ++y)
            for (int x = b.x0; x < b.x1; ++x)
                if (scene.image.pixel(x, y) == c)
                    owner[static_cast<size_t>(y) * W + x] = static_cast<int8_t>(kGlyphOwner - (x - b.x0) / pitch);
    }
    return owner;
}

struct ScenePoint {
    int x, y;
};

// The patch of one S×S chunk (row-major index) that shows each point of the scene, or -1 when
// the chunk does not show it. Downscaling samples only some scene pixels, so the point goes to
// the patch of the nearest sampled pixel, if that lies within one sampling step of it.
template <class ToSrc>
std::vector<int> center_patches(const std::vector<ScenePoint>& points, int S, int P, ToSrc to_src) {
    const size_t n_obj = points.size();
    std::vector<int> patch(n_obj, -1);
    std::vector<long> best(n_obj, -1);
    std::vector<int> best_dx(n_obj), best_dy(n_obj);
    int step_x = 1, step_y = 1;
    for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x) {
            int sx = 0, sy = 0, nx = 0, ny = 0;
            if (!to_src(x, y, &sx, &sy)) continue;
            if (x + 1 < S && to_src(x + 1, y, &nx, &ny)) step_x = std::max(step_x, nx - sx);
            if (y + 1 < S && to_src(x, y + 1, &nx, &ny)) step_y = std::max(step_y, ny - sy);
            for (size_t i = 0; i < n_obj; ++i) {
                const int dx = sx - points[i].x, dy = sy - points[i].y;
                const long d2 = static_cast<long>(dx) * dx + static_cast<long>(dy) * dy;
                if (best[i] < 0 || d2 < best[i]) {
                    best[i] = d2;
                    best_dx[i] = dx;
                    best_dy[i] = dy;
                    patch[i] = (y / P) * (S / P) + x / P;
                }
            }
        }
    for (size_t i = 0; i < n_obj; ++i)
        if (best[i] < 0 || std::abs(best_dx[i]) > step_x || std::abs(best_dy[i]) > step_y) patch[i] = -1;
    return patch;
}

// Per patch of one S×S chunk: the objects (and text) covering >= 8 % of its pixels, the glyph
// covering most of it, and the shape whose center it shows. `to_src` maps a chunk pixel to the
// scene pixel it shows (nearest), or returns false for padding.
template <class ToSrc>
void chunk_patch_labels(const Scene& scene, const std::vector<int8_t>& owner, int S, int P, ToSrc to_src,
                        uint64_t* out) {
    const int g = S / P, W = scene.image.width;
    const size_t n_obj = scene.objects.size();
    const int n_glyph = scene.text ? static_cast<int>(scene.text->chars.size()) : 0;
    std::vector<int> count(n_obj), glyph_count(static_cast<size_t>(std::max(n_glyph, 1)));
    for (int py = 0; py < g; ++py) {
        for (int px = 0; px < g; ++px) {
            std::fill(count.begin(), count.end(), 0);
            std::fill(glyph_count.begin(), glyph_count.end(), 0);
            for (int y = py * P; y < (py + 1) * P; ++y)
                for (int x = px * P; x < (px + 1) * P; ++x) {
                    int sx = 0, sy = 0;
                    if (!to_src(x, y, &sx, &sy)) continue;
                    const int o = owner[static_cast<size_t>(sy) * W + sx];
                    if (o >= 0) ++count[static_cast<size_t>(o)];
                    if (o <= kGlyphOwner) ++glyph_count[static_cast<size_t>(kGlyphOwner - o)];
                }
            uint64_t bits = 0;
            const int need = std::max(1, P * P * 8 / 100);
            for (size_t i = 0; i < n_obj; ++i)
                if (count[i] >= need)
                    bits |= uint64_t{1} << (static_cast<int>(scene.objects[i].color) * kShapeCount +
                                            static_cast<int>(scene.objects[i].shape));
            int text_px = 0, best_glyph = -1;
            for (int i = 0; i < n_glyph; ++i) {
                text_px += glyph_count[static_cast<size_t>(i)];
                if (glyph_count[static_cast<size_t>(i)] >= need &&
                    (best_glyph < 0 || glyph_count[static_cast<size_t>(i)] > glyph_count[static_cast<size_t>(best_glyph)]))
                    best_glyph = i;
            }
            if (text_px >= need) bits |= uint64_t{1} << kTextBit;
            if (best_glyph >= 0) {
                const size_t c = kTextAlphabet.find(scene.text->chars[static_cast<size_t>(best_glyph)]);
                bits |= static_cast<uint64_t>(c + 1) << kGlyphShift;
            }
            out[py * g + px] = bits;
        }
    }
    // objects in drawing order: a later (topmost) object's center wins a shared patch
    std::vector<ScenePoint> object_centers;
    for (const SceneObject& o : scene.objects) object_centers.push_back({o.center_x, o.center_y});
    const std::vector<int> centers = center_patches(object_centers, S, P, to_src);
    for (size_t i = 0; i < n_obj; ++i) {
        if (centers[i] < 0) continue;
        uint64_t& w = out[centers[i]];
        w = (w & ~(uint64_t{7} << kCenterShift)) |
            (static_cast<uint64_t>(static_cast<int>(scene.objects[i].shape) + 1) << kCenterShift);
    }
    // Glyph i's 5×7-dot cell starts at bbox.x0 + 6·i·scale (SceneText); its center patch gets the
    // character, a target whose evidence (the whole glyph) lies around one token, unlike the
    // glyph covering most of a patch, which a patch straddling two glyphs shows only in part.
    if (!scene.text) return;
    const SceneText& text = *scene.text;
    std::vector<ScenePoint> glyph_centers;
    for (size_t i = 0; i < text.chars.size(); ++i)
        glyph_centers.push_back({text.bbox.x0 + static_cast<int>(6 * i) * text.scale + 5 * text.scale / 2,
                                 text.bbox.y0 + 7 * text.scale / 2});
    const std::vector<int> glyph_patches = center_patches(glyph_centers, S, P, to_src);
    for (size_t i = 0; i < glyph_patches.size(); ++i) {
        if (glyph_patches[i] < 0) continue;
        const size_t c = kTextAlphabet.find(text.chars[i]);
        uint64_t& w = out[glyph_patches[i]];
        w = (w & ~(uint64_t{63} << kGlyphCenterShift)) | (static_cast<uint64_t>(c + 1) << kGlyphCenterShift);
    }
}

}  // namespace

Result<std::vector<uint64_t>> scene_patch_labels(const Scene& scene, const PatchGrid& s) {
    const std::vector<int8_t> owner = owner_map(scene);
    const int W = scene.image.width, H = scene.image.height, S = s.tile, P = s.patch, g = S / P;
    GLIMPSE_CHECK_OR_RETURN(P > 0 && S % P == 0, invalid_argument, "tile %d is not a multiple of patch %d", S, P);
    std::vector<uint64_t> out;
    auto placed = [&](int ox, int oy, int rw, int rh, int cx, int cy, int* sx, int* sy) {
        if (cx < ox || cy < oy || cx >= ox + rw || cy >= oy + rh) return false;
        *sx = std::min(W - 1, static_cast<int>((cx - ox + 0.5) * W / rw));
        *sy = std::min(H - 1, static_cast<int>((cy - oy + 0.5) * H / rh));
        return true;
    };
    if (s.idefics3) {
        Idefics3Params p;
        p.tile_size = s.tile;
        p.longest_edge = s.longest_edge;
        GLIMPSE_ASSIGN_OR_RETURN(const Idefics3Geometry geo, idefics3_geometry(W, H, p));
        out.assign(static_cast<size_t>(geo.n_chunks()) * g * g, 0);
        for (int k = 0; k < geo.n_tiles(); ++k) {
            const int r = k / geo.grid_cols, c = k % geo.grid_cols;
            chunk_patch_labels(scene, owner, S, P, [&](int x, int y, int* sx, int* sy) {
                return placed(geo.offset_x, geo.offset_y, geo.resized_w, geo.resized_h, c * S + x, r * S + y, sx, sy);
            }, out.data() + static_cast<size_t>(k) * g * g);
        }
        chunk_patch_labels(scene, owner, S, P, [&](int x, int y, int* sx, int* sy) {
            return placed(0, 0, S, S, x, y, sx, sy);  // the overview: the whole image stretched
        }, out.data() + static_cast<size_t>(geo.n_tiles()) * g * g);
    } else {
        LlavaParams p;
        p.image_size = s.tile;
        GLIMPSE_ASSIGN_OR_RETURN(const LlavaGeometry geo, llava_geometry(W, H, p));
        out.assign(static_cast<size_t>(g) * g, 0);
        chunk_patch_labels(scene, owner, S, P, [&](int x, int y, int* sx, int* sy) {
            return placed(geo.offset_x, geo.offset_y, geo.resized_w, geo.resized_h, x, y, sx, sy);
        }, out.data());
    }
    return out;
}

}  // namespace glimpse::traindata
