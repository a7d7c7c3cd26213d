// The pruning plan: which visual tokens a run keeps, where and by which method (issue 23).
//
// A small versioned JSON document (schema and examples: docs/pruning.md). It is read and
// checked on its own (pruning_plan_parse: format, version, known keys and methods, types and
// ranges), then fitted to a model (pruning_plan_fit: keep counts resolved against the model's
// visual tokens, methods that need an encoder [CLS] token refused on encoders without one,
// layers that exist). Both happen before any work; every refusal names the file, the key path
// ("stages[1].keep") and the offending value.
//
// This file knows no model: fitting takes PruningModelShape, a handful of numbers the model
// code fills in (tokens per tile, tiles, overview, [CLS], pixel shuffle, layer counts).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace glimpse {

inline constexpr int kPruningPlanVersion = 1;                 // the version this glimpse reads and writes
inline constexpr int64_t kPruningPlanMaxFileBytes = 1 << 20;  // a plan is a few KiB; more is not a plan
inline constexpr int kPruningPlanMaxStages = 256;
inline constexpr int kPruningPlanMaxDecoderLayers = 4096;  // a plan's decoder_layers: a sanity bound, not a model limit
inline constexpr int kPruningPlanMaxKvLayers = 1024;  // kv_cache.high_precision_share: one per decoder layer
inline constexpr const char* kPruningPlanFormat = "glimpse.pruning-plan";

// Where a stage prunes. after_projector: between the vision projector and the language model,
// over the language model's visual tokens (issue 23). encoder_layer: inside the vision encoder
// (method tome: token merging in every encoder block, its schedule in args.r; it takes no layer
// and no keep, since merged tokens are restored before the projector). decoder_layer: inside the
// language model after `layer` (issue 24).
enum class PruneSite { after_projector, encoder_layer, decoder_layer };
const char* prune_site_name(PruneSite site);

// One validated method argument (numbers, booleans as 0/1, or a choice string).
struct PruneArg {
    std::string name;
    double number = 0;
    std::string text;  // set for choice arguments
};

// How an after_projector stage shares its keep budget between SmolVLM's tiles and overview
// (ops/prune_select.h split_keep_budget_*): by token count, or by the overview's scores (HiRED).
enum class TileSplit { equal, overview_scores };

struct PruneStage {
    PruneSite site = PruneSite::after_projector;
    int layer = 0;  // encoder_layer / decoder_layer stages: prune after this layer (< 0: from the end)
    std::string method;
    // Exactly one is set: a fraction in (0, 1] of the model's visual tokens (before any stage),
    // or a count >= 1.
    double keep_fraction = 0;
    int64_t keep_count = 0;
    std::vector<PruneArg> args;  // every argument of the method, defaults filled in
    TileSplit tile_split = TileSplit::equal;
    double overview_share = 0.5;  // TileSplit::overview_scores: the overview's share (HiRED's alpha)
    // tome given a per-block list (`"args": {"r": [r0, r1, ...]}`): tokens merged in encoder block
    // l (blocks past the list merge none); then the argument r is 0. Empty: r is the schedule.
    std::vector<int> merge_per_block;

    // The value of a method argument (every argument is present after parsing).
    double number(std::string_view name) const;
    const std::string& text(std::string_view name) const;
};

// What `glimpse calibrate` (issue 25) records about how it made a plan. Optional.
struct PruningCalibration {
    int64_t budget_bytes = 0;               // the memory budget the plan was fitted to
    int image_width = 0, image_height = 0;  // the image geometry the budget assumes
    int64_t prompt_tokens = 0, answer_tokens = 0;
    std::string set_kind;         // "images" or "scenes"
    std::string set_description;  // a folder, a scene range, a preset
    int64_t set_count = 0;
    std::optional<double> answer_agreement;  // share of greedy answers equal to the unpruned model's
    std::optional<double> mean_kl;           // mean KL(unpruned || pruned) at the answer positions
    std::string search;                      // how the levers were searched ("greedy", "threshold")
};

struct PruningPlan {
    int version = kPruningPlanVersion;
    std::string model;  // optional: the model the plan was made for (informational in v1)
    std::vector<PruneStage> stages;
    std::string kv_cache_type = "f16";   // "f16", "q8_0", "q4_0" or "mixed" (issue 25)
    double kv_high_precision_share = 0;  // "mixed": share of tokens kept at high precision
    // "mixed" with a list in the file ("high_precision_share": [s0, s1, ...]): one share per decoder
    // layer (the model checks the length); empty: kv_high_precision_share on every layer.
    std::vector<double> kv_high_precision_shares;
    int max_tiles = 0;                   // 0: the model's own tile limit
    // The depth of the language model the plan was made for (its decoder stages' layers are a
    // per-layer table for that depth); 0: not recorded. pruning_plan_fit refuses another depth.
    int decoder_layers = 0;
    std::optional<PruningCalibration> calibration;
};

// The numbers of a model that decide whether a plan fits it. Filled by model code.
struct PruningModelShape {
    int tokens_per_tile = 0;    // language-model visual tokens per view (SmolVLM 64, LLaVA-1.5 576)
    int n_tiles = 0;            // tiles of the image grid (SmolVLM rows*cols; LLaVA: 1, the single view)
    bool has_overview = false;  // SmolVLM: one more view of tokens_per_tile tokens, the whole image
    bool encoder_has_cls = false;
    int pixel_shuffle = 1;       // encoder patches per visual token along each side (SmolVLM 4)
    int encoder_layers = 0;      // blocks of the encoder (negative layer arguments count from here)
    int encoder_layers_run = 0;  // blocks glimpse runs (LLaVA: up to its feature layer); 0 = all
    int decoder_layers = 0;

    int64_t visual_tokens() const { return static_cast<int64_t>(tokens_per_tile) * (n_tiles + (has_overview ? 1 : 0)); }
};

// A stage resolved against a model.
struct FittedPruneStage {
    PruneStage stage;
    int layer = 0;          // non-negative layer index (encoder/decoder stages)
    int64_t tokens_in = 0;  // visual tokens entering the stage
    int64_t keep = 0;       // visual tokens leaving it, 1 <= keep <= tokens_in
};

// Reads a plan from JSON text; name_for_errors prefixes every message ("plan.json: ...").
Result<PruningPlan> pruning_plan_parse(std::string_view text, const std::string& name_for_errors);
// Reads a plan file: a regular file of at most kPruningPlanMaxFileBytes.
Result<PruningPlan> pruning_plan_read_file(const std::string& path);

// `--prune METHOD --keep F`: a one-stage after_projector plan. keep in (0, 1] is a fraction;
// an integer above 1 is a count.
Result<PruningPlan> pruning_plan_from_shorthand(std::string_view method, double keep);

// Checks a plan built in code (the parser runs the same checks).
Status pruning_plan_check(const PruningPlan& plan, const std::string& name_for_errors);

// Resolves keep counts and layers against a model; refuses what does not fit it (a plan that
// records decoder_layers: any other depth).
Result<std::vector<FittedPruneStage>> pruning_plan_fit(const PruningPlan& plan, const PruningModelShape& model,
                                                       const std::string& name_for_errors);

// The plan as a JSON document that pruning_plan_parse reads back to the same plan.
std::string pruning_plan_to_json(const PruningPlan& plan);

// The method names a plan may use, in documentation order.
std::vector<std::string> pruning_method_names();

}  // namespace glimpse
