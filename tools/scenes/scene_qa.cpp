// Captions and question–answer pairs: the ground truth in words, from a fixed grammar.
#include "tools/scenes/scene.h"

#include "tools/scenes/scene_rng.h"

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <set>

namespace glimpse::scenes {

namespace {

std::string object_phrase(const SceneObject& o) {
    std::string phrase = "a ";
    phrase += size_class_name(o.size);
    phrase += ' ';
    phrase += color_name(o.color);
    phrase += ' ';
    phrase += shape_name(o.shape);
    return phrase;
}

// Left to right by anchor; ties top to bottom, then drawing order.
std::vector<size_t> left_to_right(const std::vector<SceneObject>& objects) {
    std::vector<size_t> order(objects.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        if (objects[a].center_x != objects[b].center_x) return objects[a].center_x < objects[b].center_x;
        return objects[a].center_y < objects[b].center_y;
    });
    return order;
}

std::string join_items(const std::vector<std::string>& items) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += (i + 1 == items.size()) ? " and " : ", ";
        out += items[i];
    }
    return out;
}

}  // namespace

std::string scene_caption(const Scene& scene) {
    std::vector<std::string> items;
    for (size_t i : left_to_right(scene.objects)) items.push_back(object_phrase(scene.objects[i]));
    if (scene.text) items.push_back("the text \"" + scene.text->chars + "\"");
    std::string caption = join_items(items);
    caption += " on a ";
    caption += background_adjective(scene.background);
    caption += " background.";
    return caption;
}

// With u = (cx + 0.5)/W and v = (cy + 0.5)/H (the anchor, in [0, 1]):
//   left   u < 0.3 and |v − 0.5| <= 0.15      right  u > 0.7 and |v − 0.5| <= 0.15
//   top    v < 0.3 and |u − 0.5| <= 0.15      bottom v > 0.7 and |u − 0.5| <= 0.15
// Exact in integers via doubled coordinates c2 = 2·c + 1 (so u = c2 / 2W).
std::optional<Direction> object_direction(const SceneObject& object, int width, int height) {
    const int64_t x2 = 2 * int64_t{object.center_x} + 1, y2 = 2 * int64_t{object.center_y} + 1;
    const bool x_central = 10 * std::llabs(x2 - width) <= 3 * int64_t{width};
    const bool y_central = 10 * std::llabs(y2 - height) <= 3 * int64_t{height};
    if (y_central && 10 * x2 < 6 * int64_t{width}) return Direction::left;
    if (y_central && 10 * x2 > 14 * int64_t{width}) return Direction::right;
    if (x_central && 10 * y2 < 6 * int64_t{height}) return Direction::top;
    if (x_central && 10 * y2 > 14 * int64_t{height}) return Direction::bottom;
    return std::nullopt;
}

namespace {

struct Combo {
    Color color;
    Shape shape;
};

// "a" or "an" by the first letter of the color word ("an orange star").
std::string_view article(Color color) {
    const char first = color_name(color).front();
    return (first == 'a' || first == 'e' || first == 'i' || first == 'o' || first == 'u') ? "an" : "a";
}

std::string exist_question(Combo c) {
    return "Is there " + std::string(article(c.color)) + " " + std::string(color_name(c.color)) + " " +
           std::string(shape_name(c.shape)) + "?";
}

// Builds questions of each kind for one scene, never repeating a question when it can help it.
class QaBuilder {
public:
    QaBuilder(const Scene& scene, const SceneOptions& opts, SceneRng& rng)
        : scene_(scene), rng_(rng), popular_shapes_(popular_shapes(opts)), popular_colors_(popular_colors(opts)) {
        next_exist_yes_ = rng_.range(0, 1) == 1;
        next_negative_ = rng_.range(0, 2);
    }

    std::optional<QaPair> make(QaKind kind) {
        switch (kind) {
            case QaKind::exist: return exist();
            case QaKind::count: return count();
            case QaKind::color: return color();
            case QaKind::position: return position();
            case QaKind::text: return text();
        }
        return std::nullopt;
    }

private:
    int shape_count(Shape shape) const {
        return static_cast<int>(std::count_if(scene_.objects.begin(), scene_.objects.end(),
                                              [&](const SceneObject& o) { return o.shape == shape; }));
    }
    int combo_count(Combo c) const {
        return static_cast<int>(std::count_if(scene_.objects.begin(), scene_.objects.end(), [&](const SceneObject& o) {
            return o.shape == c.shape && o.color == c.color;
        }));
    }
    bool shares_color_or_shape_with_present(Combo c) const {
        return std::any_of(scene_.objects.begin(), scene_.objects.end(),
                           [&](const SceneObject& o) { return o.shape == c.shape || o.color == c.color; });
    }
    bool asked(const std::string& question) const { return asked_.count(question) != 0; }

    template <class T>
    const T& pick(const std::vector<T>& items) {
        return items[rng_.below(static_cast<uint32_t>(items.size()))];
    }

    QaPair record(QaKind kind, std::string question, std::string answer, ExistProbe probe = ExistProbe::none) {
        asked_.insert(question);
        return QaPair{kind, std::move(question), std::move(answer), probe};
    }

    // Absent color×shape combinations not yet asked, filtered by how the negative is chosen.
    std::vector<Combo> absent_combos(ExistProbe probe) const {
        std::vector<Combo> combos;
        for (int s = 0; s < kShapeCount; ++s)
            for (int c = 0; c < kColorCount; ++c) {
                const Combo combo{static_cast<Color>(c), static_cast<Shape>(s)};
                if (combo_count(combo) > 0 || asked(exist_question(combo))) continue;
                if (probe == ExistProbe::popular && !is_popular(combo)) continue;
                if (probe == ExistProbe::adversarial && !shares_color_or_shape_with_present(combo)) continue;
                combos.push_back(combo);
            }
        return combos;
    }
    bool is_popular(Combo c) const {
        return std::find(popular_shapes_.begin(), popular_shapes_.end(), c.shape) != popular_shapes_.end() &&
               std::find(popular_colors_.begin(), popular_colors_.end(), c.color) != popular_colors_.end();
    }

    // Answers alternate yes/no so the kind is balanced in every scene, not only on average.
    std::optional<QaPair> exist() {
        const bool yes = next_exist_yes_;
        next_exist_yes_ = !next_exist_yes_;
        return yes ? exist_positive() : exist_negative();
    }

    QaPair exist_positive() {
        std::vector<Combo> fresh, all;
        for (const SceneObject& o : scene_.objects) {
            const Combo c{o.color, o.shape};
            all.push_back(c);
            if (!asked(exist_question(c))) fresh.push_back(c);
        }
        // Objects, not distinct combos, are sampled: each object is equally likely the subject.
        const Combo c = pick(fresh.empty() ? all : fresh);
        return record(QaKind::exist, exist_question(c), "yes", ExistProbe::positive);
    }

    // Negative kinds taken in turn; a kind without a candidate passes to the next. Random
    // always has one: at most 9 of the 48 combinations are present.
    QaPair exist_negative() {
        static constexpr ExistProbe kOrder[] = {ExistProbe::random, ExistProbe::popular, ExistProbe::adversarial};
        for (int attempt = 0; attempt < 3; ++attempt) {
            const ExistProbe probe = kOrder[(next_negative_ + attempt) % 3];
            const std::vector<Combo> candidates = absent_combos(probe);
            if (candidates.empty()) continue;
            next_negative_ = (next_negative_ + attempt + 1) % 3;
            return record(QaKind::exist, exist_question(pick(candidates)), "no", probe);
        }
        GLIMPSE_ASSERT(false);  // 48 combinations cannot all be present or asked within 256 questions
        return {};
    }

    // Mostly shapes that are present; one in four asks for an absent one (answer 0).
    std::optional<QaPair> count() {
        std::vector<Shape> present, absent;
        for (int s = 0; s < kShapeCount; ++s) {
            const auto shape = static_cast<Shape>(s);
            if (asked(count_question(shape))) continue;
            (shape_count(shape) > 0 ? present : absent).push_back(shape);
        }
        if (present.empty() && absent.empty()) return std::nullopt;
        const bool ask_absent = present.empty() || (!absent.empty() && rng_.range(0, 3) == 0);
        const Shape shape = pick(ask_absent ? absent : present);
        return record(QaKind::count, count_question(shape), std::to_string(shape_count(shape)));
    }
    static std::string count_question(Shape shape) {
        return "How many " + std::string(shape_plural(shape)) + " are there?";
    }

    // Only for shapes that occur exactly once, so "the star" names one object.
    std::optional<QaPair> color() {
        std::vector<const SceneObject*> candidates;
        for (const SceneObject& o : scene_.objects)
            if (shape_count(o.shape) == 1 && !asked(color_question(o.shape))) candidates.push_back(&o);
        if (candidates.empty()) return std::nullopt;
        const SceneObject& o = *pick(candidates);
        return record(QaKind::color, color_question(o.shape), std::string(color_name(o.color)));
    }
    static std::string color_question(Shape shape) {
        return "What color is the " + std::string(shape_name(shape)) + "?";
    }

    // Only for a unique color×shape whose direction is unambiguous under the position rule.
    std::optional<QaPair> position() {
        std::vector<std::pair<const SceneObject*, Direction>> candidates;
        for (const SceneObject& o : scene_.objects) {
            if (combo_count({o.color, o.shape}) != 1 || asked(position_question(o))) continue;
            if (auto d = object_direction(o, scene_.image.width, scene_.image.height)) candidates.push_back({&o, *d});
        }
        if (candidates.empty()) return std::nullopt;
        const auto& [o, direction] = pick(candidates);
        return record(QaKind::position, position_question(*o), std::string(direction_name(direction)));
    }
    static std::string position_question(const SceneObject& o) {
        return "Where is the " + std::string(color_name(o.color)) + " " + std::string(shape_name(o.shape)) + "?";
    }

    std::optional<QaPair> text() {
        static const std::string kQuestion = "What is written in the image?";
        if (!scene_.text || asked(kQuestion)) return std::nullopt;
        return record(QaKind::text, kQuestion, scene_.text->chars);
    }

    const Scene& scene_;
    SceneRng& rng_;
    std::vector<Shape> popular_shapes_;
    std::vector<Color> popular_colors_;
    std::set<std::string> asked_;
    bool next_exist_yes_ = true;
    int next_negative_ = 0;
};

}  // namespace

std::vector<QaPair> scene_make_qa(const Scene& scene, int count, const SceneOptions& opts, uint64_t qa_seed) {
    static constexpr QaKind kRotation[] = {QaKind::exist, QaKind::count, QaKind::color, QaKind::position,
                                           QaKind::text};
    constexpr int kKinds = static_cast<int>(std::size(kRotation));
    std::vector<QaPair> pairs;
    if (scene.objects.empty()) return pairs;  // scene_generate never makes one; a caller might
    SceneRng rng(qa_seed);
    int next_kind = rng.range(0, kKinds - 1);
    QaBuilder builder(scene, opts, rng);
    while (static_cast<int>(pairs.size()) < count) {
        // exist always yields a question, so this loop ends within kKinds attempts.
        for (int attempt = 0; attempt < kKinds; ++attempt) {
            const int k = (next_kind + attempt) % kKinds;
            if (auto qa = builder.make(kRotation[k])) {
                pairs.push_back(std::move(*qa));
                next_kind = (k + 1) % kKinds;
                break;
            }
        }
    }
    return pairs;
}

}  // namespace glimpse::scenes
