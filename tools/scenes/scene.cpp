// Scene layout: image size, background, text and objects, all drawn from one seeded stream.
#include "tools/scenes/scene.h"

#include "tools/scenes/scene_raster.h"
#include "tools/scenes/scene_rng.h"

#include <algorithm>
#include <cmath>

namespace glimpse::scenes {
namespace {

constexpr int kMaxObjects = 9;       // count answers are single digits
constexpr int kMinManySmall = 6;     // a "many small objects" scene has at least this many
constexpr int kPlacementTries = 60;  // per object; a failed object is left out
constexpr int kEdgeMargin = 1;       // objects never touch the image border
constexpr int kSameColorGap = 2;     // same-colored objects keep apart, or they would merge
constexpr uint8_t kNoOwner = 0xFF;

constexpr uint64_t kLayoutStream = 1;
constexpr uint64_t kQaStream = 2;

bool probability_ok(double p) { return p >= 0.0 && p <= 1.0; }  // false for NaN too

template <size_t N>
Status weights_ok(const std::array<int, N>& weights, const char* field) {
    long total = 0;
    for (size_t i = 0; i < N; ++i) {
        GLIMPSE_CHECK_OR_RETURN(weights[i] >= 0 && weights[i] <= 1000000, invalid_argument,
                                "scene options: %s[%zu] = %d is outside [0, 1000000]", field, i, weights[i]);
        total += weights[i];
    }
    GLIMPSE_CHECK_OR_RETURN(total > 0, invalid_argument, "scene options: %s are all zero", field);
    return Status::ok();
}

Status size_classes_ok(const SceneOptions& o) {
    for (int c = 0; c < kSizeClassCount; ++c) {
        const char* name = size_class_name(static_cast<SizeClass>(c)).data();
        GLIMPSE_CHECK_OR_RETURN(o.size_min_permille[c] >= 1 && o.size_min_permille[c] <= o.size_max_permille[c] &&
                                    o.size_max_permille[c] <= 500,
                                invalid_argument,
                                "scene options: %s size range %d..%d per mille is not within 1..500 and ordered",
                                name, o.size_min_permille[c], o.size_max_permille[c]);
        GLIMPSE_CHECK_OR_RETURN(o.size_min_px[c] >= 4 && o.size_min_px[c] * 2 <= o.min_side, invalid_argument,
                                "scene options: %s minimum size %d px must be within 4..min_side/2 (min_side %d)",
                                name, o.size_min_px[c], o.min_side);
        if (c == 0) continue;
        GLIMPSE_CHECK_OR_RETURN(o.size_min_permille[c] > o.size_max_permille[c - 1] &&
                                    o.size_min_px[c] > o.size_min_px[c - 1],
                                invalid_argument,
                                "scene options: size class %s must be strictly larger than the one before it", name);
    }
    return Status::ok();
}

}  // namespace

Status scene_options_validate(const SceneOptions& o) {
    GLIMPSE_CHECK_OR_RETURN(o.min_side >= 64 && o.min_side <= o.max_side && o.max_side <= 8192, invalid_argument,
                            "scene options: image side range %d..%d must satisfy 64 <= min <= max <= 8192",
                            o.min_side, o.max_side);
    GLIMPSE_CHECK_OR_RETURN(o.max_aspect_permille >= 1000 && o.max_aspect_permille <= 10000, invalid_argument,
                            "scene options: max_aspect_permille %d is outside [1000, 10000]", o.max_aspect_permille);
    GLIMPSE_CHECK_OR_RETURN(o.min_objects >= 1 && o.min_objects <= o.max_objects && o.max_objects <= kMaxObjects,
                            invalid_argument, "scene options: object count range %d..%d must satisfy 1 <= min <= max <= %d",
                            o.min_objects, o.max_objects, kMaxObjects);
    GLIMPSE_CHECK_OR_RETURN(probability_ok(o.many_small_probability), invalid_argument,
                            "scene options: many_small_probability %g is not in [0, 1]", o.many_small_probability);
    GLIMPSE_CHECK_OR_RETURN(probability_ok(o.text_probability), invalid_argument,
                            "scene options: text_probability %g is not in [0, 1]", o.text_probability);
    GLIMPSE_CHECK_OR_RETURN(o.text_height_min_permille >= 1 &&
                                o.text_height_min_permille <= o.text_height_max_permille &&
                                o.text_height_max_permille <= 500,
                            invalid_argument,
                            "scene options: text height range %d..%d per mille is not within 1..500 and ordered",
                            o.text_height_min_permille, o.text_height_max_permille);
    GLIMPSE_CHECK_OR_RETURN(o.max_occluded_fraction >= 0.0 && o.max_occluded_fraction <= 0.5, invalid_argument,
                            "scene options: max_occluded_fraction %g is not in [0, 0.5]", o.max_occluded_fraction);
    GLIMPSE_RETURN_IF_ERROR(size_classes_ok(o));
    GLIMPSE_RETURN_IF_ERROR(weights_ok(o.shape_weights, "shape_weights"));
    GLIMPSE_RETURN_IF_ERROR(weights_ok(o.color_weights, "color_weights"));
    GLIMPSE_CHECK_OR_RETURN(std::count(o.backgrounds.begin(), o.backgrounds.end(), true) > 0, invalid_argument,
                            "scene options: no background kind is enabled");
    GLIMPSE_CHECK_OR_RETURN(o.qa_per_scene >= 0 && o.qa_per_scene <= 256, invalid_argument,
                            "scene options: qa_per_scene %d is outside [0, 256]", o.qa_per_scene);
    return Status::ok();
}

Result<SceneOptions> scene_preset(std::string_view name) {
    if (name == "default") return SceneOptions{};
    if (name == "bundled") {
        // The bundled models see the whole scene at 160 px on its long side (SmolVLM layout:
        // 2x2 tiles of 80 px; LLaVA layout: one 160 px image). Aspect ≤ 1.5 keeps the short
        // side ≥ 107 px there, so a small object (9-11 % of the short side) spans ≥ 10 px and
        // a glyph (11-15 %) ≥ 12 px, i.e. ≥ 1.7 px per font dot. Counts stay within 0..6.
        return SceneOptions{.min_side = 128, .max_side = 512, .max_aspect_permille = 1500, .min_objects = 1,
                            .max_objects = 6, .many_small_probability = 0.25, .text_probability = 0.4,
                            .text_height_min_permille = 110, .text_height_max_permille = 150,
                            .size_min_permille = {90, 140, 220}, .size_max_permille = {110, 180, 280},
                            .size_min_px = {12, 18, 28}};
    }
    return Status::error(StatusCode::invalid_argument, "unknown scene preset '%.*s' (default, bundled)",
                         static_cast<int>(name.size()), name.data());
}

std::vector<std::string_view> scene_preset_names() { return {"default", "bundled"}; }

namespace {

struct ImageSize {
    int width, height;
};

// Width uniform in range, height uniform among values keeping the aspect bound, then a
// coin flip for orientation so portrait and landscape are equally likely.
ImageSize pick_image_size(SceneRng& rng, const SceneOptions& o) {
    const int a = rng.range(o.min_side, o.max_side);
    const int lo = std::max<int>(o.min_side, static_cast<int>((int64_t{a} * 1000 + o.max_aspect_permille - 1) /
                                                              o.max_aspect_permille));
    const int hi = std::min<int>(o.max_side, static_cast<int>(int64_t{a} * o.max_aspect_permille / 1000));
    const int b = rng.range(lo, hi);
    return rng.range(0, 1) == 0 ? ImageSize{a, b} : ImageSize{b, a};
}

// Muted colors: brightness L with a small per-channel tint, clamped so that every
// background pixel stays far from every object color (see color_rgb).
constexpr int kMinBrightness = 90, kMaxBrightness = 170, kMaxTint = 12;

Rgb muted_color(int brightness, const int tint[3]) {
    const int l = std::clamp(brightness, kMinBrightness, kMaxBrightness);
    return {static_cast<uint8_t>(l + tint[0]), static_cast<uint8_t>(l + tint[1]), static_cast<uint8_t>(l + tint[2])};
}

void random_tint(SceneRng& rng, int tint[3]) {
    for (int c = 0; c < 3; ++c) tint[c] = rng.range(-kMaxTint, kMaxTint);
}

int signed_step(SceneRng& rng, int lo, int hi) {
    const int step = rng.range(lo, hi);
    return rng.range(0, 1) == 0 ? step : -step;
}

BackgroundKind pick_background_kind(SceneRng& rng, const SceneOptions& o) {
    std::array<int, kBackgroundKindCount> weights{};
    for (int k = 0; k < kBackgroundKindCount; ++k) weights[k] = o.backgrounds[k] ? 1 : 0;
    return static_cast<BackgroundKind>(rng.weighted(weights.data(), weights.size()));
}

BackgroundSpec pick_background(SceneRng& rng, const SceneOptions& o, ImageSize size) {
    BackgroundSpec spec;
    spec.kind = pick_background_kind(rng, o);
    const int short_side = std::min(size.width, size.height);
    const int brightness = rng.range(100, 160);
    int tint[3];
    random_tint(rng, tint);
    spec.first = muted_color(brightness, tint);
    switch (spec.kind) {
        case BackgroundKind::flat: break;
        case BackgroundKind::gradient: {
            const int end_brightness = brightness + signed_step(rng, 15, 30);
            random_tint(rng, tint);
            spec.second = muted_color(end_brightness, tint);
            spec.orientation = rng.range(0, 2);
            break;
        }
        case BackgroundKind::stripes: {
            // Same tint, brightness 10..20 apart: visible texture, no false edges for shapes.
            spec.second = muted_color(brightness + signed_step(rng, 10, 20), tint);
            spec.orientation = rng.range(0, 2);
            spec.stripe_width = std::max(4, short_side * rng.range(20, 60) / 1000);
            break;
        }
        case BackgroundKind::noise: {
            spec.noise_amplitude = rng.range(6, 14);
            spec.noise_cell = std::max(8, short_side * rng.range(60, 160) / 1000);
            spec.noise_seed = rng.next_u64();
            break;
        }
    }
    return spec;
}

// Everything placed so far, and who owns each pixel (for occlusion bookkeeping).
class Layout {
public:
    Layout(int width, int height, const SceneOptions& opts)
        : width_(width), height_(height),
          max_occluded_permille_(static_cast<int>(std::llround(opts.max_occluded_fraction * 1000))),
          owner_(static_cast<size_t>(width) * height, kNoOwner) {}

    void keep_out(PixelBox box) { keep_out_ = box; }

    // Places the object if it stays inside, avoids the text, does not merge with a
    // same-colored object and leaves every earlier object identifiable.
    bool try_place(const SceneObject& candidate) {
        ShapeMask mask = rasterize_shape(candidate.shape, candidate.center_x, candidate.center_y, candidate.size_px);
        if (!inside_image(mask.tight) || overlaps_keep_out(mask.tight) || merges_with_same_color(candidate, mask.tight))
            return false;
        if (!keeps_others_identifiable(mask)) return false;
        commit(candidate, std::move(mask));
        return true;
    }

    const std::vector<SceneObject>& objects() const { return objects_; }
    const std::vector<ShapeMask>& masks() const { return masks_; }

private:
    bool inside_image(PixelBox b) const {
        return b.x0 >= kEdgeMargin && b.y0 >= kEdgeMargin && b.x1 <= width_ - kEdgeMargin &&
               b.y1 <= height_ - kEdgeMargin;
    }

    static bool boxes_touch(PixelBox a, PixelBox b, int gap) {
        return a.x0 < b.x1 + gap && b.x0 < a.x1 + gap && a.y0 < b.y1 + gap && b.y0 < a.y1 + gap;
    }

    bool overlaps_keep_out(PixelBox b) const {
        return keep_out_.has_value() && boxes_touch(b, *keep_out_, 0);
    }

    bool merges_with_same_color(const SceneObject& candidate, PixelBox box) const {
        for (const SceneObject& other : objects_)
            if (other.color == candidate.color && boxes_touch(box, other.bbox, kSameColorGap)) return true;
        return false;
    }

    bool keeps_others_identifiable(const ShapeMask& mask) const {
        std::vector<int> covered(objects_.size(), 0);
        for (int y = mask.tight.y0; y < mask.tight.y1; ++y)
            for (int x = mask.tight.x0; x < mask.tight.x1; ++x) {
                const uint8_t owner = owner_[static_cast<size_t>(y) * width_ + x];
                if (owner != kNoOwner && mask.covers(x, y)) ++covered[owner];
            }
        for (size_t i = 0; i < objects_.size(); ++i) {
            if (covered[i] == 0) continue;
            const SceneObject& other = objects_[i];
            if (mask.covers(other.center_x, other.center_y)) return false;
            const int64_t still_visible = other.visible_px - covered[i];
            if (still_visible * 1000 < int64_t{1000 - max_occluded_permille_} * other.area_px) return false;
        }
        return true;
    }

    void commit(SceneObject object, ShapeMask mask) {
        const auto index = static_cast<uint8_t>(objects_.size());
        for (int y = mask.tight.y0; y < mask.tight.y1; ++y)
            for (int x = mask.tight.x0; x < mask.tight.x1; ++x) {
                if (!mask.covers(x, y)) continue;
                uint8_t& owner = owner_[static_cast<size_t>(y) * width_ + x];
                if (owner != kNoOwner) --objects_[owner].visible_px;
                owner = index;
            }
        object.bbox = mask.tight;
        object.area_px = mask.area;
        object.visible_px = mask.area;
        objects_.push_back(object);
        masks_.push_back(std::move(mask));
    }

    int width_, height_;
    int max_occluded_permille_;
    std::vector<uint8_t> owner_;
    std::optional<PixelBox> keep_out_;
    std::vector<SceneObject> objects_;
    std::vector<ShapeMask> masks_;
};

std::optional<SceneText> pick_text(SceneRng& rng, const SceneOptions& o, ImageSize size) {
    SceneText text;
    const int length = rng.range(1, kMaxTextChars);
    for (int i = 0; i < length; ++i)
        text.chars.push_back(kTextAlphabet[rng.below(static_cast<uint32_t>(kTextAlphabet.size()))]);
    text.color = static_cast<Color>(rng.below(kColorCount));
    const int short_side = std::min(size.width, size.height);
    const int glyph_height = short_side * rng.range(o.text_height_min_permille, o.text_height_max_permille) / 1000;
    text.scale = std::max(2, glyph_height / 7);  // below 2 px per dot the glyphs blur
    auto fits = [&](int scale, int n) {
        const PixelBox b = text_box(0, 0, n, scale);
        return b.width() + 4 <= size.width && b.height() + 4 <= size.height;
    };
    while (text.scale > 2 && !fits(text.scale, length)) --text.scale;
    while (!text.chars.empty() && !fits(text.scale, static_cast<int>(text.chars.size()))) text.chars.pop_back();
    if (text.chars.empty()) return std::nullopt;
    const PixelBox extent = text_box(0, 0, static_cast<int>(text.chars.size()), text.scale);
    const int x0 = rng.range(2, size.width - 2 - extent.width());
    const int y0 = rng.range(2, size.height - 2 - extent.height());
    text.bbox = text_box(x0, y0, static_cast<int>(text.chars.size()), text.scale);
    return text;
}

int object_size_px(SceneRng& rng, const SceneOptions& o, SizeClass size, int short_side) {
    const int c = static_cast<int>(size);
    const int permille = rng.range(o.size_min_permille[c], o.size_max_permille[c]);
    return std::max(o.size_min_px[c], short_side * permille / 1000);
}

SizeClass pick_size_class(SceneRng& rng, bool many_small) {
    if (many_small) return rng.range(0, 3) < 3 ? SizeClass::small : SizeClass::medium;
    return static_cast<SizeClass>(rng.below(kSizeClassCount));
}

int pick_object_count(SceneRng& rng, const SceneOptions& o, bool many_small) {
    if (many_small && o.max_objects >= kMinManySmall)
        return rng.range(std::max(kMinManySmall, o.min_objects), o.max_objects);
    return rng.range(o.min_objects, o.max_objects);
}

// Tries random anchors for one object; returns whether it was placed.
bool place_object(SceneRng& rng, Layout& layout, SceneObject object, ImageSize size) {
    const int reach = shape_reach(object.size_px);
    const int lo_x = reach + kEdgeMargin, hi_x = size.width - 1 - reach - kEdgeMargin;
    const int lo_y = reach + kEdgeMargin, hi_y = size.height - 1 - reach - kEdgeMargin;
    if (lo_x > hi_x || lo_y > hi_y) return false;
    for (int attempt = 0; attempt < kPlacementTries; ++attempt) {
        object.center_x = rng.range(lo_x, hi_x);
        object.center_y = rng.range(lo_y, hi_y);
        if (layout.try_place(object)) return true;
    }
    return false;
}

// Every scene shows at least one object: if all planned ones failed (a crowded small
// image), a small one gets many more tries.
void ensure_one_object(SceneRng& rng, Layout& layout, const SceneOptions& opts, ImageSize size) {
    for (int round = 0; round < 20 && layout.objects().empty(); ++round) {
        SceneObject object;
        object.shape = static_cast<Shape>(rng.weighted(opts.shape_weights.data(), kShapeCount));
        object.color = static_cast<Color>(rng.weighted(opts.color_weights.data(), kColorCount));
        object.size = SizeClass::small;
        object.size_px = object_size_px(rng, opts, object.size, std::min(size.width, size.height));
        place_object(rng, layout, object, size);
    }
}

}  // namespace

Scene scene_generate(uint64_t seed, const SceneOptions& opts) {
    GLIMPSE_ASSERT(scene_options_validate(opts).is_ok());
    SceneRng rng(derive_seed(seed, kLayoutStream));
    Scene scene;
    scene.seed = seed;

    const ImageSize size = pick_image_size(rng, opts);
    const BackgroundSpec background = pick_background(rng, opts, size);
    scene.background = background.kind;
    scene.many_small = rng.chance(opts.many_small_probability);
    if (rng.chance(opts.text_probability)) scene.text = pick_text(rng, opts, size);

    Layout layout(size.width, size.height, opts);
    if (scene.text) {
        const int pad = std::max(2, scene.text->scale);
        const PixelBox b = scene.text->bbox;
        layout.keep_out({b.x0 - pad, b.y0 - pad, b.x1 + pad, b.y1 + pad});
    }
    const int short_side = std::min(size.width, size.height);
    const int planned = pick_object_count(rng, opts, scene.many_small);
    for (int i = 0; i < planned; ++i) {
        SceneObject object;
        object.shape = static_cast<Shape>(rng.weighted(opts.shape_weights.data(), kShapeCount));
        object.color = static_cast<Color>(rng.weighted(opts.color_weights.data(), kColorCount));
        object.size = pick_size_class(rng, scene.many_small);
        object.size_px = object_size_px(rng, opts, object.size, short_side);
        place_object(rng, layout, object, size);
    }
    ensure_one_object(rng, layout, opts, size);
    scene.objects = layout.objects();

    scene.image.width = size.width;
    scene.image.height = size.height;
    scene.image.rgb.resize(static_cast<size_t>(size.width) * size.height * 3);
    render_background(background, scene.image);
    for (size_t i = 0; i < scene.objects.size(); ++i)
        fill_mask(layout.masks()[i], color_rgb(scene.objects[i].color), scene.image);
    if (scene.text) draw_text(*scene.text, scene.image);

    scene.caption = scene_caption(scene);
    scene.qa = scene_make_qa(scene, opts.qa_per_scene, opts, derive_seed(seed, kQaStream));
    return scene;
}

}  // namespace glimpse::scenes
