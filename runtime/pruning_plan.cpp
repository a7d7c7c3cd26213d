// Pruning plan reader, checker, fitter and writer (schema: docs/pruning.md).
#include "runtime/pruning_plan.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "runtime/json.h"
#include "runtime/mapped_file.h"

namespace glimpse {
namespace {

// ---- the method table: what each method accepts ---------------------------------------------

enum class ArgKind { integer, number, boolean, choice };

struct ArgSpec {
    const char* name;
    ArgKind kind;
    double lo, hi;          // integer / number: inclusive range
    double default_number;  // integer / number / boolean
    const char* choices;    // choice: "a|b|c"; the first is the default
};

struct MethodSpec {
    const char* name;
    bool after_projector;  // may run between the projector and the language model
    bool decoder_layer;    // may run inside the language model
    bool needs_cls;        // scores from the encoder's [CLS] attention row
    std::vector<ArgSpec> args;
    bool encoder_layer = false;  // runs inside the vision encoder (tome)
};

// Encoder layer arguments: negative counts from the end (-1 = last), as the official code indexes
// hidden states; checked against the model when the plan is fitted.
constexpr double kLayerLo = -1024, kLayerHi = 1023;

// After-projector stages: the survivors' position ids, per stage. `run` (the default) takes the
// run's choice (VlmConfig::original_positions, `--prune-positions`); `original` / `compact` fix
// it for this plan whatever the run says.
const ArgSpec kProjectorPositions{"positions", ArgKind::choice, 0, 0, 0, "run|original|compact"};

const std::vector<MethodSpec>& method_table() {
    static const std::vector<MethodSpec> table = {
        // Seeds (and budget_bytes) stop below 2^53: a larger JSON integer may already have been
        // rounded to a neighbouring double by the reader, so it would run a different seed silently.
        {"random", true, false, false, {{"seed", ArgKind::integer, 0, 9007199254740991.0, 0, nullptr}, kProjectorPositions}},
        {"uniform", true, false, false, {kProjectorPositions}},
        // FasterVLM: [CLS] attention at the feature layer (mm_vision_select_layer = -2), mean over heads.
        {"fastervlm", true, false, true, {{"layer", ArgKind::integer, kLayerLo, kLayerHi, -2, nullptr}, kProjectorPositions}},
        // VTC-CLS: [CLS] attention summed over layers start_layer ... L-2.
        {"vtc-cls", true, false, true, {{"start_layer", ArgKind::integer, kLayerLo, kLayerHi, 0, nullptr}, kProjectorPositions}},
        // VisPruner's score for encoders without [CLS]: attention each key receives, at `layer`.
        {"attn-received", true, false, false, {{"layer", ArgKind::integer, kLayerLo, kLayerHi, -1, nullptr}, kProjectorPositions}},
        // VisionZip: dominant tokens by score + contextual tokens merged by key cosine. Default
        // contextual share 10/64, the README's (54 dominant, 10 contextual) example.
        {"visionzip",
         true,
         false,
         false,
         {{"layer", ArgKind::integer, kLayerLo, kLayerHi, -2, nullptr},
          {"contextual_share", ArgKind::number, 0, 0.999, 10.0 / 64.0, nullptr},
          {"score", ArgKind::choice, 0, 0, 0, "auto|cls|received"},
          kProjectorPositions}},
        {"divprune", true, false, false, {kProjectorPositions}},
        {"cdpruner", true, false, false, {kProjectorPositions}},
        // DART: pivots by key L1 norm, then the tokens least similar to each pivot.
        {"dart", true, false, false, {{"pivots", ArgKind::integer, 1, 1024, 4, nullptr}, kProjectorPositions}},
        // In the language model (issue 24).
        // positions: FastV keeps the survivors' position ids, PyramidDrop renumbers them (the default first).
        {"fastv",
         false,
         true,
         false,
         {{"debias", ArgKind::boolean, 0, 1, 0, nullptr}, {"positions", ArgKind::choice, 0, 0, 0, "original|compact"}}},
        {"pyramiddrop",
         false,
         true,
         false,
         {{"debias", ArgKind::boolean, 0, 1, 0, nullptr}, {"positions", ArgKind::choice, 0, 0, 0, "compact|original"}}},
        {"sparsevlm",
         false,
         true,
         false,
         {{"debias", ArgKind::boolean, 0, 1, 0, nullptr},
          {"recycle", ArgKind::boolean, 0, 1, 1, nullptr},
          {"positions", ArgKind::choice, 0, 0, 0, "compact|original"}}},
        // criterion (models/decoder_pruning_feather.h): auto = a uniform grid at the plan's first
        // decoder stage, the attention score after it.
        {"feather",
         false,
         true,
         false,
         {{"debias", ArgKind::boolean, 0, 1, 0, nullptr},
          {"criterion", ArgKind::choice, 0, 0, 0, "auto|uniform|attention"}}},
        // Inside the vision encoder (issue 27): ToMe's merging in every block. r as `--merge R` reads
        // it (models/vision_encoder.h vision_merge_schedule): 0 none, a fraction in (0, 1) of the
        // patches fewer after the last block, or a whole number >= 1 merged per block; or a
        // per-block list (PruneStage::merge_per_block).
        {"tome", false, false, false, {{"r", ArgKind::number, 0, 1e6, 0, nullptr}}, true},
    };
    return table;
}

const MethodSpec* find_method(std::string_view name) {
    for (const MethodSpec& m : method_table()) {
        if (name == m.name) return &m;
    }
    return nullptr;
}

std::string method_list() {
    std::string out;
    for (const MethodSpec& m : method_table()) out += (out.empty() ? "" : ", ") + std::string(m.name);
    return out;
}

bool choice_allowed(const char* choices, const std::string& value) {
    std::string_view rest = choices;
    while (!rest.empty()) {
        const size_t bar = rest.find('|');
        if (rest.substr(0, bar) == value) return true;
        if (bar == std::string_view::npos) break;
        rest.remove_prefix(bar + 1);
    }
    return false;
}

std::string first_choice(const char* choices) {
    std::string_view all = choices;
    return std::string(all.substr(0, all.find('|')));
}

const char* tile_split_name(TileSplit split) { return split == TileSplit::equal ? "equal" : "overview_scores"; }

// Reading an enum is the inverse of its name function: the value among `values` named `text`, so
// each name is spelled once (where plans are written).
template <class Enum, size_t N>
std::optional<Enum> enum_named(std::string_view text, const Enum (&values)[N], const char* (*name_of)(Enum)) {
    for (Enum e : values) {
        if (text == name_of(e)) return e;
    }
    return std::nullopt;
}

// ---- JSON reading helpers: each names its key path -------------------------------------------

class Reader {
public:
    explicit Reader(std::string name) : name_(std::move(name)) {}

    Status error(StatusCode code, const std::string& path, const std::string& what) const {
        return Status(code, name_ + ": " + path + ": " + what);
    }

    // Refuses keys outside `allowed` and keys given twice.
    Status check_keys(const JsonValue& object, const std::string& path,
                      std::initializer_list<const char*> allowed) const {
        if (!object.is_object()) return error(StatusCode::parse_error, path, "must be a JSON object");
        std::set<std::string> seen;
        for (const auto& [key, value] : object.members()) {
            if (!seen.insert(key).second)
                return error(StatusCode::parse_error, path, "key '" + key + "' appears twice");
            bool known = false;
            for (const char* a : allowed) known = known || key == a;
            if (!known) {
                std::string list;
                for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
                return error(StatusCode::parse_error, path,
                             "unknown key '" + key + "' (known: " + (list.empty() ? "none" : list) + ")");
            }
        }
        return Status::ok();
    }

    Result<double> number(const JsonValue& v, const std::string& path, double lo, double hi) const {
        if (!v.is_number()) return error(StatusCode::parse_error, path, "must be a number");
        const double x = v.as_number();
        if (!std::isfinite(x)) return error(StatusCode::invalid_argument, path, "is not a finite number");
        if (x < lo || x > hi) {
            return error(StatusCode::invalid_argument, path, str_printf("%g is outside [%g, %g]", x, lo, hi));
        }
        return x;
    }

    Result<int64_t> integer(const JsonValue& v, const std::string& path, double lo, double hi) const {
        GLIMPSE_ASSIGN_OR_RETURN(double x, number(v, path, lo, hi));
        if (x != std::floor(x)) return error(StatusCode::invalid_argument, path, str_printf("%g is not an integer", x));
        return static_cast<int64_t>(x);
    }

    // Strings are names and descriptions: they end up in messages and in written plans, so a NUL
    // (which would cut them short) or bytes that are not UTF-8 (not JSON text) are refused.
    Result<std::string> string(const JsonValue& v, const std::string& path) const {
        if (!v.is_string()) return error(StatusCode::parse_error, path, "must be a string");
        const std::string& s = v.as_string();
        if (s.find('\0') != std::string::npos) return error(StatusCode::parse_error, path, "contains a NUL character");
        if (!is_utf8(s)) return error(StatusCode::parse_error, path, "is not valid UTF-8");
        return s;
    }

    // Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
    static bool is_utf8(std::string_view s) {
        size_t i = 0;
        while (i < s.size()) {
            const unsigned char c = static_cast<unsigned char>(s[i]);
            int len = 0;
            uint32_t cp = 0, min = 0;
            if (c < 0x80) { ++i; continue; }
            if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
            else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
            else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
            else return false;
            if (i + static_cast<size_t>(len) > s.size()) return false;
            for (int k = 1; k < len; ++k) {
                const unsigned char cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
                if ((cc & 0xc0) != 0x80) return false;
                cp = (cp << 6) | (cc & 0x3f);
            }
            if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
            i += static_cast<size_t>(len);
        }
        return true;
    }

    Result<bool> boolean(const JsonValue& v, const std::string& path) const {
        if (v.kind() != JsonValue::Kind::boolean) return error(StatusCode::parse_error, path, "must be true or false");
        return v.as_bool();
    }

    const std::string& name() const { return name_; }

private:
    std::string name_;
};

Result<PruneStage> parse_stage(const Reader& r, const JsonValue& v, const std::string& path) {
    GLIMPSE_RETURN_IF_ERROR(r.check_keys(v, path, {"at", "layer", "method", "keep", "keep_count", "args", "tiles"}));
    PruneStage stage;
    const JsonValue* at = v.find("at");
    if (!at)
        return r.error(StatusCode::parse_error, path, "missing 'at' (after_projector, encoder_layer or decoder_layer)");
    GLIMPSE_ASSIGN_OR_RETURN(std::string site, r.string(*at, path + ".at"));
    constexpr PruneSite kSites[] = {PruneSite::after_projector, PruneSite::encoder_layer, PruneSite::decoder_layer};
    const std::optional<PruneSite> named_site = enum_named(site, kSites, prune_site_name);
    if (!named_site) {
        return r.error(StatusCode::invalid_argument, path + ".at",
                       "unknown site '" + site + "' (after_projector, encoder_layer or decoder_layer)");
    }
    stage.site = *named_site;
    const JsonValue* method = v.find("method");
    if (!method) return r.error(StatusCode::parse_error, path, "missing 'method'");
    GLIMPSE_ASSIGN_OR_RETURN(stage.method, r.string(*method, path + ".method"));
    // tome merges in every encoder block and restores the merged tokens before the projector: no
    // layer (its schedule is args.r, a per-block list to merge in some blocks only) and no keep.
    const bool tome = stage.site == PruneSite::encoder_layer && stage.method == "tome";
    const JsonValue* layer = v.find("layer");
    if (stage.site == PruneSite::after_projector) {
        if (layer)
            return r.error(StatusCode::invalid_argument, path + ".layer", "an after_projector stage has no layer");
    } else if (tome) {
        if (layer) {
            return r.error(StatusCode::invalid_argument, path + ".layer",
                           "a tome stage merges in every encoder block and has no layer (to merge in some blocks "
                           "only, give args.r as a per-block list)");
        }
    } else {
        if (!layer) return r.error(StatusCode::parse_error, path, "missing 'layer' (the layer after which it prunes)");
        GLIMPSE_ASSIGN_OR_RETURN(int64_t l, r.integer(*layer, path + ".layer", kLayerLo, kLayerHi));
        stage.layer = static_cast<int>(l);
    }

    const JsonValue* keep = v.find("keep");
    const JsonValue* keep_count = v.find("keep_count");
    if (tome) {
        if (keep || keep_count) {
            return r.error(StatusCode::invalid_argument, path + (keep ? ".keep" : ".keep_count"),
                           "a tome stage keeps every visual token (merged tokens are restored before the projector); "
                           "how much it merges is args.r");
        }
    } else if ((keep != nullptr) == (keep_count != nullptr)) {
        return r.error(StatusCode::parse_error, path,
                       "needs exactly one of 'keep' (a fraction in (0, 1]) and 'keep_count' (a token count)");
    }
    if (keep) {
        GLIMPSE_ASSIGN_OR_RETURN(stage.keep_fraction, r.number(*keep, path + ".keep", 0, 1));
        if (stage.keep_fraction == 0) {
            return r.error(StatusCode::invalid_argument, path + ".keep", "0 keeps nothing (a fraction in (0, 1])");
        }
    } else if (keep_count) {
        GLIMPSE_ASSIGN_OR_RETURN(stage.keep_count, r.integer(*keep_count, path + ".keep_count", 0, 1e9));
        if (stage.keep_count == 0) {
            return r.error(StatusCode::invalid_argument, path + ".keep_count", "0 keeps nothing (at least one token)");
        }
    }

    const MethodSpec* spec = find_method(stage.method);
    const JsonValue* args = v.find("args");
    if (args) {
        if (!args->is_object()) return r.error(StatusCode::parse_error, path + ".args", "must be a JSON object");
        if (spec) {
            std::set<std::string> seen;
            for (const auto& [key, value] : args->members()) {
                const std::string arg_path = path + ".args." + key;
                if (!seen.insert(key).second) return r.error(StatusCode::parse_error, arg_path, "appears twice");
                const ArgSpec* a = nullptr;
                for (const ArgSpec& candidate : spec->args) a = key == candidate.name ? &candidate : a;
                if (!a) {
                    std::string known;
                    for (const ArgSpec& candidate : spec->args)
                        known += (known.empty() ? "" : ", ") + std::string(candidate.name);
                    return r.error(StatusCode::invalid_argument, arg_path,
                                   "unknown argument of " + stage.method +
                                       " (its arguments: " + (known.empty() ? "none" : known) + ")");
                }
                if (stage.method == "tome" && key == "r" && value.is_array()) {
                    // The per-block form: whole numbers of tokens merged in blocks 0, 1, ...
                    if (value.size() < 1 || value.size() > 1024) {
                        return r.error(StatusCode::invalid_argument, arg_path,
                                       str_printf("a per-block list of %zu entries (1 to 1024)", value.size()));
                    }
                    for (size_t b = 0; b < value.size(); ++b) {
                        GLIMPSE_ASSIGN_OR_RETURN(int64_t rb, r.integer(value.items()[b],
                                                                       arg_path + str_printf("[%zu]", b), 0, 1e6));
                        stage.merge_per_block.push_back(static_cast<int>(rb));
                    }
                    continue;  // the argument r stays 0 (fill_defaults)
                }
                PruneArg arg{key, 0, ""};
                switch (a->kind) {
                    case ArgKind::integer: {
                        GLIMPSE_ASSIGN_OR_RETURN(int64_t x, r.integer(value, arg_path, a->lo, a->hi));
                        arg.number = static_cast<double>(x);
                        break;
                    }
                    case ArgKind::number: {
                        GLIMPSE_ASSIGN_OR_RETURN(arg.number, r.number(value, arg_path, a->lo, a->hi));
                        break;
                    }
                    case ArgKind::boolean: {
                        GLIMPSE_ASSIGN_OR_RETURN(bool b, r.boolean(value, arg_path));
                        arg.number = b ? 1 : 0;
                        break;
                    }
                    case ArgKind::choice: {
                        GLIMPSE_ASSIGN_OR_RETURN(arg.text, r.string(value, arg_path));
                        if (!choice_allowed(a->choices, arg.text)) {
                            return r.error(StatusCode::invalid_argument, arg_path,
                                           "'" + arg.text + "' is not one of " + a->choices);
                        }
                        break;
                    }
                }
                stage.args.push_back(std::move(arg));
            }
        }
    }

    const JsonValue* tiles = v.find("tiles");
    if (tiles) {
        const std::string tiles_path = path + ".tiles";
        GLIMPSE_RETURN_IF_ERROR(r.check_keys(*tiles, tiles_path, {"split", "overview_share"}));
        if (const JsonValue* split = tiles->find("split")) {
            GLIMPSE_ASSIGN_OR_RETURN(std::string s, r.string(*split, tiles_path + ".split"));
            constexpr TileSplit kSplits[] = {TileSplit::equal, TileSplit::overview_scores};
            const std::optional<TileSplit> named_split = enum_named(s, kSplits, tile_split_name);
            if (!named_split) {
                return r.error(StatusCode::invalid_argument, tiles_path + ".split",
                               "'" + s + "' is not one of equal|overview_scores");
            }
            stage.tile_split = *named_split;
        }
        if (const JsonValue* share = tiles->find("overview_share")) {
            GLIMPSE_ASSIGN_OR_RETURN(stage.overview_share, r.number(*share, tiles_path + ".overview_share", 0, 1));
        }
    }
    return stage;
}

Result<PruningCalibration> parse_calibration(const Reader& r, const JsonValue& v, const std::string& path) {
    GLIMPSE_RETURN_IF_ERROR(r.check_keys(
        v, path, {"budget_bytes", "image_size", "prompt_tokens", "answer_tokens", "set", "loss", "search"}));
    PruningCalibration c;
    if (const JsonValue* x = v.find("budget_bytes")) {
        GLIMPSE_ASSIGN_OR_RETURN(c.budget_bytes, r.integer(*x, path + ".budget_bytes", 1, 9007199254740991.0));
    }
    if (const JsonValue* x = v.find("image_size")) {
        if (!x->is_array() || x->size() != 2) {
            return r.error(StatusCode::parse_error, path + ".image_size", "must be [width, height]");
        }
        GLIMPSE_ASSIGN_OR_RETURN(int64_t w, r.integer(x->items()[0], path + ".image_size[0]", 1, 65536));
        GLIMPSE_ASSIGN_OR_RETURN(int64_t h, r.integer(x->items()[1], path + ".image_size[1]", 1, 65536));
        c.image_width = static_cast<int>(w);
        c.image_height = static_cast<int>(h);
    }
    if (const JsonValue* x = v.find("prompt_tokens")) {
        GLIMPSE_ASSIGN_OR_RETURN(c.prompt_tokens, r.integer(*x, path + ".prompt_tokens", 0, 1e9));
    }
    if (const JsonValue* x = v.find("answer_tokens")) {
        GLIMPSE_ASSIGN_OR_RETURN(c.answer_tokens, r.integer(*x, path + ".answer_tokens", 0, 1e9));
    }
    if (const JsonValue* set = v.find("set")) {
        const std::string set_path = path + ".set";
        GLIMPSE_RETURN_IF_ERROR(r.check_keys(*set, set_path, {"kind", "description", "count"}));
        if (const JsonValue* x = set->find("kind")) {
            GLIMPSE_ASSIGN_OR_RETURN(c.set_kind, r.string(*x, set_path + ".kind"));
            if (c.set_kind != "images" && c.set_kind != "scenes") {
                return r.error(StatusCode::invalid_argument, set_path + ".kind",
                               "'" + c.set_kind + "' is not images|scenes");
            }
        }
        if (const JsonValue* x = set->find("description")) {
            GLIMPSE_ASSIGN_OR_RETURN(c.set_description, r.string(*x, set_path + ".description"));
        }
        if (const JsonValue* x = set->find("count")) {
            GLIMPSE_ASSIGN_OR_RETURN(c.set_count, r.integer(*x, set_path + ".count", 1, 1e9));
        }
    }
    if (const JsonValue* loss = v.find("loss")) {
        const std::string loss_path = path + ".loss";
        GLIMPSE_RETURN_IF_ERROR(r.check_keys(*loss, loss_path, {"answer_agreement", "mean_kl"}));
        if (const JsonValue* x = loss->find("answer_agreement")) {
            GLIMPSE_ASSIGN_OR_RETURN(double a, r.number(*x, loss_path + ".answer_agreement", 0, 1));
            c.answer_agreement = a;
        }
        if (const JsonValue* x = loss->find("mean_kl")) {
            GLIMPSE_ASSIGN_OR_RETURN(double kl, r.number(*x, loss_path + ".mean_kl", 0, 1e300));
            c.mean_kl = kl;
        }
    }
    if (const JsonValue* x = v.find("search")) {
        GLIMPSE_ASSIGN_OR_RETURN(c.search, r.string(*x, path + ".search"));
    }
    return c;
}

// A tome stage (the only encoder_layer method): no keep, no layer, r as `--merge R` reads it or a
// per-block list, not both. The counts against the encoder are checked where the encoder is known
// (models/vision_encoder.h vision_merge_schedule, vision_merge_from_list).
Status check_tome_stage(const Reader& r, const PruneStage& s, const std::string& path) {
    if (s.keep_fraction != 0 || s.keep_count != 0) {
        return r.error(StatusCode::invalid_argument, path + (s.keep_fraction != 0 ? ".keep" : ".keep_count"),
                       "a tome stage keeps every visual token (merged tokens are restored before the projector); how "
                       "much it merges is args.r");
    }
    if (s.layer != 0) {
        return r.error(StatusCode::invalid_argument, path + ".layer",
                       "a tome stage merges in every encoder block and has no layer (to merge in some blocks only, "
                       "give args.r as a per-block list)");
    }
    double merge = 0;
    for (const PruneArg& a : s.args) {
        if (a.name != "r") return r.error(StatusCode::invalid_argument, path + ".args." + a.name, "unknown argument of tome");
        merge = a.number;
    }
    if (!(std::isfinite(merge) && merge >= 0)) {
        return r.error(StatusCode::invalid_argument, path + ".args.r", str_printf("%g must be 0 or more", merge));
    }
    if (merge >= 1 && merge != std::floor(merge)) {
        return r.error(StatusCode::invalid_argument, path + ".args.r",
                       str_printf("%g: below 1 it is a fraction of the encoder's patches; at 1 or above it is tokens "
                                  "merged per block, a whole number",
                                  merge));
    }
    if (!s.merge_per_block.empty() && merge != 0) {
        return r.error(StatusCode::invalid_argument, path + ".args.r", "both a number and a per-block list");
    }
    if (s.merge_per_block.size() > 1024) {
        return r.error(StatusCode::invalid_argument, path + ".args.r",
                       str_printf("a per-block list of %zu entries (1 to 1024)", s.merge_per_block.size()));
    }
    for (size_t b = 0; b < s.merge_per_block.size(); ++b) {
        if (s.merge_per_block[b] < 0 || s.merge_per_block[b] > 1000000) {
            return r.error(StatusCode::invalid_argument, path + str_printf(".args.r[%zu]", b),
                           str_printf("%d is outside [0, 1000000]", s.merge_per_block[b]));
        }
    }
    return Status::ok();
}

// Fills the defaults of arguments a stage did not give, in the table's order.
void fill_defaults(PruneStage* stage) {
    const MethodSpec* spec = find_method(stage->method);
    if (!spec) return;
    std::vector<PruneArg> full;
    for (const ArgSpec& a : spec->args) {
        auto given =
            std::find_if(stage->args.begin(), stage->args.end(), [&](const PruneArg& x) { return x.name == a.name; });
        if (given != stage->args.end()) {
            full.push_back(*given);
        } else {
            full.push_back(
                PruneArg{a.name, a.default_number, a.kind == ArgKind::choice ? first_choice(a.choices) : ""});
        }
    }
    stage->args = std::move(full);
}

std::string stage_path(size_t i) { return str_printf("stages[%zu]", i); }

int resolve_layer(int layer, int count) { return layer < 0 ? count + layer : layer; }

std::string number_text(double x) {
    // Shortest text that reads back to the same double.
    for (int precision = 6; precision <= 17; ++precision) {
        std::string s = str_printf("%.*g", precision, x);
        if (std::strtod(s.c_str(), nullptr) == x) return s;
    }
    return str_printf("%.17g", x);
}

}  // namespace

// ---- public API -------------------------------------------------------------------------------

const char* prune_site_name(PruneSite site) {
    switch (site) {
        case PruneSite::after_projector:
            return "after_projector";
        case PruneSite::encoder_layer:
            return "encoder_layer";
        case PruneSite::decoder_layer:
            return "decoder_layer";
    }
    return "?";
}

double PruneStage::number(std::string_view name) const {
    for (const PruneArg& a : args) {
        if (a.name == name) return a.number;
    }
    GLIMPSE_ASSERT(!"PruneStage::number: the method has no such argument");
    return 0;
}

const std::string& PruneStage::text(std::string_view name) const {
    for (const PruneArg& a : args) {
        if (a.name == name) return a.text;
    }
    GLIMPSE_ASSERT(!"PruneStage::text: the method has no such argument");
    static const std::string empty;
    return empty;
}

std::vector<std::string> pruning_method_names() {
    std::vector<std::string> names;
    for (const MethodSpec& m : method_table()) names.emplace_back(m.name);
    return names;
}

Status pruning_plan_check(const PruningPlan& plan, const std::string& name) {
    const Reader r(name);
    if (plan.version != kPruningPlanVersion) {
        return r.error(StatusCode::unsupported, "version",
                       str_printf("plan version %d; this glimpse reads version %d", plan.version, kPruningPlanVersion));
    }
    if (plan.stages.size() > static_cast<size_t>(kPruningPlanMaxStages)) {
        return r.error(StatusCode::invalid_argument, "stages",
                       str_printf("%zu stages (at most %d)", plan.stages.size(), kPruningPlanMaxStages));
    }
    for (size_t i = 0; i < plan.stages.size(); ++i) {
        const PruneStage& s = plan.stages[i];
        const std::string path = stage_path(i);
        const MethodSpec* spec = find_method(s.method);
        if (!spec) {
            return r.error(StatusCode::invalid_argument, path + ".method",
                           "unknown method '" + s.method + "' (known: " + method_list() + ")");
        }
        const bool site_ok = (s.site == PruneSite::after_projector && spec->after_projector) ||
                             (s.site == PruneSite::decoder_layer && spec->decoder_layer) ||
                             (s.site == PruneSite::encoder_layer && spec->encoder_layer);
        if (!site_ok) {
            return r.error(StatusCode::invalid_argument, path + ".at",
                           s.method + " cannot run at " + prune_site_name(s.site) + " (it runs " +
                               (spec->after_projector  ? "after_projector"
                                : spec->encoder_layer ? "at encoder_layer"
                                                      : "at decoder_layer") +
                               ")");
        }
        if (s.site == PruneSite::encoder_layer) {
            GLIMPSE_RETURN_IF_ERROR(check_tome_stage(r, s, path));
            // The encoder runs first: its stage leads the list, and there is one encoder.
            if (i > 0) {
                return r.error(StatusCode::invalid_argument, path + ".at",
                               "an encoder_layer stage must come first (list stages in pipeline order; one tome stage "
                               "per plan)");
            }
            continue;
        }
        const bool has_fraction = s.keep_fraction != 0, has_count = s.keep_count != 0;
        if (has_fraction && has_count) {
            return r.error(StatusCode::invalid_argument, path, "sets both a keep fraction and a keep count");
        }
        if (has_fraction && !(std::isfinite(s.keep_fraction) && s.keep_fraction > 0 && s.keep_fraction <= 1)) {
            return r.error(StatusCode::invalid_argument, path + ".keep",
                           str_printf("%g must be a fraction in (0, 1]", s.keep_fraction));
        }
        if (!has_fraction && s.keep_count < 1) {
            return r.error(
                StatusCode::invalid_argument, has_count ? path + ".keep_count" : path + ".keep",
                str_printf("keeps %lld tokens; a stage keeps at least one", static_cast<long long>(s.keep_count)));
        }
        if (!(std::isfinite(s.overview_share) && s.overview_share >= 0 && s.overview_share <= 1)) {
            return r.error(StatusCode::invalid_argument, path + ".tiles.overview_share",
                           str_printf("%g is outside [0, 1]", s.overview_share));
        }
        for (const PruneArg& a : s.args) {
            const ArgSpec* spec_arg = nullptr;
            for (const ArgSpec& candidate : spec->args) spec_arg = a.name == candidate.name ? &candidate : spec_arg;
            if (!spec_arg) {
                return r.error(StatusCode::invalid_argument, path + ".args." + a.name,
                               "unknown argument of " + s.method);
            }
            if (spec_arg->kind != ArgKind::choice &&
                !(std::isfinite(a.number) && a.number >= spec_arg->lo && a.number <= spec_arg->hi)) {
                return r.error(StatusCode::invalid_argument, path + ".args." + a.name,
                               str_printf("%g is outside [%g, %g]", a.number, spec_arg->lo, spec_arg->hi));
            }
        }
        // Pipeline order: after_projector stages come first, decoder stages by increasing layer.
        if (i > 0) {
            const PruneStage& prev = plan.stages[i - 1];
            if (prev.site == PruneSite::decoder_layer && s.site == PruneSite::after_projector) {
                return r.error(StatusCode::invalid_argument, path + ".at",
                               "an after_projector stage after a decoder_layer stage (list stages in pipeline order)");
            }
            if (prev.site == PruneSite::decoder_layer && s.site == PruneSite::decoder_layer && s.layer >= 0 &&
                prev.layer >= 0 && s.layer <= prev.layer) {
                return r.error(
                    StatusCode::invalid_argument, path + ".layer",
                    str_printf("layer %d does not come after the previous stage's layer %d", s.layer, prev.layer));
            }
        }
    }
    if (plan.kv_cache_type != "f16" && plan.kv_cache_type != "q8_0" && plan.kv_cache_type != "q4_0" &&
        plan.kv_cache_type != "mixed") {
        return r.error(StatusCode::invalid_argument, "kv_cache.type",
                       "'" + plan.kv_cache_type + "' is not one of f16|q8_0|q4_0|mixed");
    }
    if (!(std::isfinite(plan.kv_high_precision_share) && plan.kv_high_precision_share >= 0 &&
          plan.kv_high_precision_share <= 1)) {
        return r.error(StatusCode::invalid_argument, "kv_cache.high_precision_share",
                       str_printf("%g is outside [0, 1]", plan.kv_high_precision_share));
    }
    if (!plan.kv_high_precision_shares.empty() && plan.kv_cache_type != "mixed") {
        return r.error(StatusCode::invalid_argument, "kv_cache.high_precision_share", "only applies to type mixed");
    }
    for (size_t l = 0; l < plan.kv_high_precision_shares.size(); ++l) {
        const double share = plan.kv_high_precision_shares[l];
        if (!(std::isfinite(share) && share >= 0 && share <= 1)) {
            return r.error(StatusCode::invalid_argument, str_printf("kv_cache.high_precision_share[%zu]", l),
                           str_printf("%g is outside [0, 1]", share));
        }
    }
    if (plan.max_tiles < 0 || plan.max_tiles > 1024) {
        return r.error(StatusCode::invalid_argument, "max_tiles",
                       str_printf("%d is outside [1, 1024]", plan.max_tiles));
    }
    if (plan.decoder_layers < 0 || plan.decoder_layers > kPruningPlanMaxDecoderLayers) {
        return r.error(StatusCode::invalid_argument, "decoder_layers",
                       str_printf("%d is outside [1, %d]", plan.decoder_layers, kPruningPlanMaxDecoderLayers));
    }
    return Status::ok();
}

Result<PruningPlan> pruning_plan_parse(std::string_view text, const std::string& name) {
    GLIMPSE_ASSIGN_OR_RETURN(JsonValue doc, json_parse(text, name));
    const Reader r(name);
    GLIMPSE_RETURN_IF_ERROR(
        r.check_keys(doc, "plan", {"format", "version", "model", "stages", "kv_cache", "max_tiles", "calibration",
                                  "decoder_layers"}));
    const JsonValue* format = doc.find("format");
    if (!format || !format->is_string() || format->as_string() != kPruningPlanFormat) {
        return r.error(StatusCode::parse_error, "format",
                       std::string("must be \"") + kPruningPlanFormat + "\" (this is not a glimpse pruning plan)");
    }
    PruningPlan plan;
    const JsonValue* version = doc.find("version");
    if (!version) return r.error(StatusCode::parse_error, "version", "missing");
    GLIMPSE_ASSIGN_OR_RETURN(int64_t v, r.integer(*version, "version", 1, 1e9));
    if (v != kPruningPlanVersion) {
        return r.error(StatusCode::unsupported, "version",
                       str_printf("plan version %lld is newer than this glimpse reads (%d)", static_cast<long long>(v),
                                  kPruningPlanVersion));
    }
    plan.version = static_cast<int>(v);
    if (const JsonValue* model = doc.find("model")) {
        GLIMPSE_ASSIGN_OR_RETURN(plan.model, r.string(*model, "model"));
    }
    const JsonValue* stages = doc.find("stages");
    if (!stages || !stages->is_array()) return r.error(StatusCode::parse_error, "stages", "must be an array of stages");
    if (stages->size() > static_cast<size_t>(kPruningPlanMaxStages)) {
        return r.error(StatusCode::invalid_argument, "stages",
                       str_printf("%zu stages (at most %d)", stages->size(), kPruningPlanMaxStages));
    }
    for (size_t i = 0; i < stages->size(); ++i) {
        GLIMPSE_ASSIGN_OR_RETURN(PruneStage stage, parse_stage(r, stages->items()[i], stage_path(i)));
        plan.stages.push_back(std::move(stage));
    }
    if (const JsonValue* kv = doc.find("kv_cache")) {
        GLIMPSE_RETURN_IF_ERROR(r.check_keys(*kv, "kv_cache", {"type", "high_precision_share"}));
        if (const JsonValue* type = kv->find("type")) {
            GLIMPSE_ASSIGN_OR_RETURN(plan.kv_cache_type, r.string(*type, "kv_cache.type"));
        }
        if (const JsonValue* share = kv->find("high_precision_share")) {
            if (plan.kv_cache_type != "mixed") {
                return r.error(StatusCode::invalid_argument, "kv_cache.high_precision_share",
                               "only applies to type mixed");
            }
            if (share->is_array()) {
                // One share per decoder layer (the model checks the count against its depth).
                if (share->size() == 0 || share->size() > static_cast<size_t>(kPruningPlanMaxKvLayers)) {
                    return r.error(StatusCode::invalid_argument, "kv_cache.high_precision_share",
                                   str_printf("a list of %zu shares (one per decoder layer: 1 to %d)", share->size(),
                                              kPruningPlanMaxKvLayers));
                }
                for (size_t l = 0; l < share->size(); ++l) {
                    GLIMPSE_ASSIGN_OR_RETURN(
                        double s, r.number(share->items()[l], str_printf("kv_cache.high_precision_share[%zu]", l), 0, 1));
                    plan.kv_high_precision_shares.push_back(s);
                }
            } else {
                GLIMPSE_ASSIGN_OR_RETURN(plan.kv_high_precision_share,
                                         r.number(*share, "kv_cache.high_precision_share", 0, 1));
            }
        }
    }
    if (const JsonValue* tiles = doc.find("max_tiles")) {
        GLIMPSE_ASSIGN_OR_RETURN(int64_t t, r.integer(*tiles, "max_tiles", 1, 1024));
        plan.max_tiles = static_cast<int>(t);
    }
    if (const JsonValue* depth = doc.find("decoder_layers")) {
        GLIMPSE_ASSIGN_OR_RETURN(int64_t n, r.integer(*depth, "decoder_layers", 1, kPruningPlanMaxDecoderLayers));
        plan.decoder_layers = static_cast<int>(n);
    }
    if (const JsonValue* cal = doc.find("calibration")) {
        GLIMPSE_ASSIGN_OR_RETURN(PruningCalibration c, parse_calibration(r, *cal, "calibration"));
        plan.calibration = std::move(c);
    }
    GLIMPSE_RETURN_IF_ERROR(pruning_plan_check(plan, name));
    for (PruneStage& s : plan.stages) fill_defaults(&s);
    return plan;
}

Result<PruningPlan> pruning_plan_read_file(const std::string& path) {
    // read_regular_file refuses FIFOs, devices and directories before opening, and files above the cap.
    GLIMPSE_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                             read_regular_file(path, "a pruning plan", kPruningPlanMaxFileBytes));
    return pruning_plan_parse(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path);
}

Result<PruningPlan> pruning_plan_from_shorthand(std::string_view method, double keep) {
    const std::string name = "--prune " + std::string(method);
    PruneStage stage;
    stage.site = PruneSite::after_projector;
    stage.method = std::string(method);
    if (!std::isfinite(keep) || keep <= 0) {
        return Status::error(StatusCode::invalid_argument, "--keep %g: must be a fraction in (0, 1] or a token count",
                             keep);
    }
    if (keep <= 1) {
        stage.keep_fraction = keep;
    } else if (keep == std::floor(keep) && keep <= 1e9) {
        stage.keep_count = static_cast<int64_t>(keep);
    } else {
        return Status::error(StatusCode::invalid_argument,
                             "--keep %g: above 1 it is a token count, which must be a whole number", keep);
    }
    PruningPlan plan;
    plan.stages.push_back(stage);
    const MethodSpec* spec = find_method(method);
    if (spec && !spec->after_projector) {
        return Status::error(StatusCode::invalid_argument,
                             "--prune %s: runs inside the language model; give its layers in a plan file (--plan)",
                             stage.method.c_str());
    }
    GLIMPSE_RETURN_IF_ERROR(pruning_plan_check(plan, name));
    fill_defaults(&plan.stages[0]);
    return plan;
}

Result<std::vector<FittedPruneStage>> pruning_plan_fit(const PruningPlan& plan, const PruningModelShape& model,
                                                       const std::string& name) {
    GLIMPSE_RETURN_IF_ERROR(pruning_plan_check(plan, name));
    const Reader r(name);
    if (model.tokens_per_tile < 1 || model.n_tiles < 1 || model.pixel_shuffle < 1 || model.encoder_layers < 1 ||
        model.decoder_layers < 1) {
        return Status::error(StatusCode::internal,
                             "%s: model shape incomplete (tokens per tile %d, tiles %d, pixel shuffle %d, encoder "
                             "layers %d, decoder layers %d)",
                             name.c_str(), model.tokens_per_tile, model.n_tiles, model.pixel_shuffle,
                             model.encoder_layers, model.decoder_layers);
    }
    // A per-layer table is made for one depth: on another model its layers would be other points
    // of the network (even where they exist).
    if (plan.decoder_layers > 0 && plan.decoder_layers != model.decoder_layers) {
        return r.error(StatusCode::invalid_argument, "decoder_layers",
                       str_printf("the plan was made for a language model of %d layers; this one has %d (a "
                                  "per-layer keep table does not carry over to another depth)",
                                  plan.decoder_layers, model.decoder_layers));
    }
    const int64_t total = model.visual_tokens();
    std::vector<FittedPruneStage> fitted;
    int64_t tokens = total;
    for (size_t i = 0; i < plan.stages.size(); ++i) {
        PruneStage stage = plan.stages[i];
        fill_defaults(&stage);
        const std::string path = stage_path(i);
        const MethodSpec* spec = find_method(stage.method);
        FittedPruneStage f;
        f.tokens_in = tokens;

        if (stage.site == PruneSite::encoder_layer) {  // tome: every visual token leaves the encoder
            const int run = model.encoder_layers_run > 0 ? model.encoder_layers_run : model.encoder_layers;
            if (stage.merge_per_block.size() > static_cast<size_t>(run)) {
                return r.error(StatusCode::invalid_argument, path + ".args.r",
                               str_printf("a per-block list of %zu entries, and glimpse runs %d blocks of this "
                                          "encoder",
                                          stage.merge_per_block.size(), run));
            }
            // The attention taps score the encoder's positions, which merging changes (as --merge).
            for (size_t j = 0; j < plan.stages.size(); ++j) {
                PruneStage other = plan.stages[j];
                fill_defaults(&other);
                const bool taps = other.method == "fastervlm" || other.method == "vtc-cls" ||
                                  other.method == "attn-received" || other.method == "visionzip" ||
                                  other.tile_split == TileSplit::overview_scores;
                if (taps) {
                    return r.error(StatusCode::invalid_argument, path + ".method",
                                   "token merging inside the encoder does not combine with " + stage_path(j) + "'s " +
                                       (other.tile_split == TileSplit::overview_scores ? "tiles.split overview_scores"
                                                                                       : other.method) +
                                       ", which reads the encoder's attention at its unmerged positions");
                }
            }
            f.keep = tokens;
            f.stage = std::move(stage);
            fitted.push_back(std::move(f));
            continue;
        }
        const bool uses_cls = spec->needs_cls || (stage.method == "visionzip" && stage.text("score") == "cls");
        if (uses_cls && !model.encoder_has_cls) {
            return r.error(StatusCode::invalid_argument, path + ".method",
                           stage.method +
                               " scores tokens by the encoder's [CLS] attention, and this model's encoder "
                               "has no [CLS] token (try attn-received, or visionzip with score auto)");
        }
        // Encoder-layer arguments must name an existing layer.
        for (const char* arg : {"layer", "start_layer"}) {
            auto it =
                std::find_if(stage.args.begin(), stage.args.end(), [&](const PruneArg& a) { return a.name == arg; });
            if (it == stage.args.end()) continue;
            const int l = resolve_layer(static_cast<int>(it->number), model.encoder_layers);
            const int last =
                std::string_view(arg) == "start_layer" ? model.encoder_layers - 2 : model.encoder_layers - 1;
            if (l < 0 || l > last) {
                return r.error(
                    StatusCode::invalid_argument, path + ".args." + arg,
                    str_printf("encoder layer %d does not exist (the encoder has %d layers%s)",
                               static_cast<int>(it->number), model.encoder_layers,
                               std::string_view(arg) == "start_layer" ? "; VTC-CLS sums up to layer L-2" : ""));
            }
            // The score is read while the encoder runs: a block past its feature layer never runs.
            const int run = model.encoder_layers_run > 0 ? model.encoder_layers_run : model.encoder_layers;
            if (std::string_view(arg) == "layer" && l >= run) {
                return r.error(StatusCode::invalid_argument, path + ".args.layer",
                               str_printf("encoder layer %d (= %d) is past the encoder's feature layer: glimpse runs "
                                          "its blocks 0..%d only",
                                          static_cast<int>(it->number), l, run - 1));
            }
        }
        if (stage.site == PruneSite::decoder_layer) {
            f.layer = resolve_layer(stage.layer, model.decoder_layers);
            // Pruning after the last layer would save nothing; the last useful point is L-2.
            if (f.layer < 0 || f.layer > model.decoder_layers - 2) {
                return r.error(StatusCode::invalid_argument, path + ".layer",
                               str_printf("decoder layer %d: a stage prunes after a layer in [0, %d] (the language "
                                          "model has %d layers)",
                                          stage.layer, model.decoder_layers - 2, model.decoder_layers));
            }
            if (!fitted.empty() && fitted.back().stage.site == PruneSite::decoder_layer &&
                f.layer <= fitted.back().layer) {
                return r.error(StatusCode::invalid_argument, path + ".layer",
                               str_printf("decoder layer %d does not come after the previous stage's layer %d", f.layer,
                                          fitted.back().layer));
            }
        }
        if (stage.tile_split == TileSplit::overview_scores && !model.has_overview) {
            return r.error(StatusCode::invalid_argument, path + ".tiles.split",
                           "overview_scores needs an overview image, and this model has none");
        }
        if (stage.keep_fraction > 0) {
            const double want = stage.keep_fraction * static_cast<double>(total);
            f.keep = static_cast<int64_t>(std::floor(want + 0.5));
            if (f.keep < 1) {
                return r.error(StatusCode::invalid_argument, path + ".keep",
                               str_printf("%g of %lld visual tokens rounds to 0 tokens", stage.keep_fraction,
                                          static_cast<long long>(total)));
            }
            if (f.keep > tokens) {
                return r.error(StatusCode::invalid_argument, path + ".keep",
                               str_printf("%g of %lld visual tokens is %lld, above the %lld tokens the previous stage "
                                          "leaves",
                                          stage.keep_fraction, static_cast<long long>(total),
                                          static_cast<long long>(f.keep), static_cast<long long>(tokens)));
            }
        } else {
            f.keep = stage.keep_count;
            if (f.keep > tokens) {
                return r.error(StatusCode::invalid_argument, path + ".keep_count",
                               str_printf("keeps %lld tokens, above the %lld visual tokens there are",
                                          static_cast<long long>(f.keep), static_cast<long long>(tokens)));
            }
        }
        if (stage.method == "dart" && stage.number("pivots") > static_cast<double>(f.keep)) {
            return r.error(StatusCode::invalid_argument, path + ".args.pivots",
                           str_printf("%g pivots but the stage keeps only %lld tokens", stage.number("pivots"),
                                      static_cast<long long>(f.keep)));
        }
        f.stage = std::move(stage);
        tokens = f.keep;
        fitted.push_back(std::move(f));
    }
    return fitted;
}

std::string pruning_plan_to_json(const PruningPlan& plan) {
    std::string out = "{\n  \"format\": " + json_quote(kPruningPlanFormat) +
                      ",\n  \"version\": " + std::to_string(plan.version) + ",\n";
    if (!plan.model.empty()) out += "  \"model\": " + json_quote(plan.model) + ",\n";
    out += "  \"stages\": [";
    for (size_t i = 0; i < plan.stages.size(); ++i) {
        const PruneStage& s = plan.stages[i];
        out += i ? ",\n    {" : "\n    {";
        out += "\"at\": " + json_quote(prune_site_name(s.site));
        if (s.site == PruneSite::decoder_layer) out += ", \"layer\": " + std::to_string(s.layer);
        out += ", \"method\": " + json_quote(s.method);
        if (s.site == PruneSite::encoder_layer) {  // tome: no keep; r a number or a per-block list
            std::string r = "0";
            for (const PruneArg& a : s.args) r = a.name == "r" ? number_text(a.number) : r;
            if (!s.merge_per_block.empty()) {
                r = "[";
                for (size_t b = 0; b < s.merge_per_block.size(); ++b) r += (b ? ", " : "") + std::to_string(s.merge_per_block[b]);
                r += "]";
            }
            out += ", \"args\": {\"r\": " + r + "}}";
            continue;
        }
        if (s.keep_fraction > 0) {
            out += ", \"keep\": " + number_text(s.keep_fraction);
        } else {
            out += ", \"keep_count\": " + std::to_string(s.keep_count);
        }
        if (!s.args.empty()) {
            out += ", \"args\": {";
            for (size_t a = 0; a < s.args.size(); ++a) {
                const PruneArg& arg = s.args[a];
                const MethodSpec* spec = find_method(s.method);
                const ArgSpec* as = nullptr;
                if (spec) {
                    for (const ArgSpec& candidate : spec->args) as = arg.name == candidate.name ? &candidate : as;
                }
                out += (a ? ", " : "") + json_quote(arg.name) + ": ";
                if (as && as->kind == ArgKind::choice) {
                    out += json_quote(arg.text);
                } else if (as && as->kind == ArgKind::boolean) {
                    out += arg.number != 0 ? "true" : "false";
                } else {
                    out += number_text(arg.number);
                }
            }
            out += "}";
        }
        if (s.tile_split != TileSplit::equal || s.overview_share != 0.5) {
            out += std::string(", \"tiles\": {\"split\": ") + json_quote(tile_split_name(s.tile_split)) +
                   ", \"overview_share\": " + number_text(s.overview_share) + "}";
        }
        out += "}";
    }
    out += plan.stages.empty() ? "]" : "\n  ]";
    if (plan.kv_cache_type != "f16") {
        out += ",\n  \"kv_cache\": {\"type\": " + json_quote(plan.kv_cache_type);
        if (plan.kv_cache_type == "mixed" && !plan.kv_high_precision_shares.empty()) {
            out += ", \"high_precision_share\": [";
            for (size_t l = 0; l < plan.kv_high_precision_shares.size(); ++l)
                out += (l ? ", " : "") + number_text(plan.kv_high_precision_shares[l]);
            out += "]";
        } else if (plan.kv_cache_type == "mixed") {
            out += ", \"high_precision_share\": " + number_text(plan.kv_high_precision_share);
        }
        out += "}";
    }
    if (plan.max_tiles > 0) out += ",\n  \"max_tiles\": " + std::to_string(plan.max_tiles);
    if (plan.decoder_layers > 0) out += ",\n  \"decoder_layers\": " + std::to_string(plan.decoder_layers);
    if (plan.calibration) {
        const PruningCalibration& c = *plan.calibration;
        std::string cal;
        auto add = [&](const std::string& item) { cal += (cal.empty() ? "" : ", ") + item; };
        if (c.budget_bytes > 0) add("\"budget_bytes\": " + std::to_string(c.budget_bytes));
        if (c.image_width > 0) add(str_printf("\"image_size\": [%d, %d]", c.image_width, c.image_height));
        if (c.prompt_tokens > 0) add("\"prompt_tokens\": " + std::to_string(c.prompt_tokens));
        if (c.answer_tokens > 0) add("\"answer_tokens\": " + std::to_string(c.answer_tokens));
        std::string set;
        auto add_set = [&](const std::string& item) { set += (set.empty() ? "" : ", ") + item; };
        if (!c.set_kind.empty()) add_set("\"kind\": " + json_quote(c.set_kind));
        if (!c.set_description.empty()) add_set("\"description\": " + json_quote(c.set_description));
        if (c.set_count > 0) add_set("\"count\": " + std::to_string(c.set_count));
        if (!set.empty()) add("\"set\": {" + set + "}");
        std::string loss;
        if (c.answer_agreement) loss += "\"answer_agreement\": " + number_text(*c.answer_agreement);
        if (c.mean_kl) loss += (loss.empty() ? "" : ", ") + std::string("\"mean_kl\": ") + number_text(*c.mean_kl);
        if (!loss.empty()) add("\"loss\": {" + loss + "}");
        if (!c.search.empty()) add("\"search\": " + json_quote(c.search));
        out += ",\n  \"calibration\": {" + cal + "}";
    }
    out += "\n}\n";
    return out;
}

}  // namespace glimpse
