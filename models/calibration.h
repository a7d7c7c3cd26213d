// Calibration (issue 25, docs/calibration.md): the pruning plan that fits a memory budget at the
// least measured quality loss, found on the user's own images without labels.
//
// Loss is measured against the unpruned model itself: for every calibration sample (image +
// prompt) the unpruned model's greedy answer and its next-token distributions at the answer
// positions are recorded once (the "teacher", kept in memory); a candidate plan is then run
// teacher-forced on that answer (Vlm::score_answer: one prefill + one decode step per answer
// token), giving
//   mean_kl   = mean over every (sample, answer position) of KL(p_unpruned || p_candidate), nats;
//   agreement = share of samples whose greedy answer would equal the unpruned one. Under teacher
//               forcing that is exact: greedy decoding reproduces the answer iff the argmax at every
//               answer position (including the end-of-generation position) is the unpruned argmax.
//
// Memory is the planner's: Vlm::prepare for one image of the budget's geometry and the longest
// prompt, VlmMemory::total() plus the preprocessed tiles and image embeddings (what
// `glimpse inspect --json` reports), plus a stated process overhead (code, libraries, allocator
// slack) so that the measured peak RSS stays within the budget.
//
// Search (Calibrator::search): greedy by marginal loss per byte. It starts from the unpruned
// configuration and, while the planned total is over the budget, takes the one lever step with the
// least added mean KL per byte saved; then it undoes single steps (one lever one notch back) while
// one still fits the budget and lowers the loss (a cheap early step, e.g. a KV precision, may no
// longer be needed once a later keep step made room). Levers: the after-projector keep (one method), the keep after
// each of a few decoder layers (pyramiddrop stages: a per-layer keep table), the KV-cache type
// (f16 -> q8_0 -> mixed 0.5 -> mixed 0.25 -> q4_0) and, at a mixed level, each decoder layer's
// q8_0 share (0.5 -> 0.25 -> 0, one layer per step), ToMe merging in the encoder and SmolVLM's
// tile cap (max_tiles). Why greedy rather than FitPrune's binary search on a threshold: the levers
// here are of different kinds (token counts at several sites and a storage precision), and their
// byte costs are not one monotone function of a single threshold; greedy needs only that each step
// saves bytes, and its path is the loss-against-budget curve for free.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/calibration_budget.h"
#include "models/vlm.h"
#include "runtime/image.h"
#include "runtime/pruning_plan.h"
#include "runtime/status.h"

namespace glimpse {

// "300MiB", "1.5GiB", "64KiB", "300MB" (10^6), "2G" (= GiB), "300000000" (bytes). Case-insensitive
// units, optional space; refuses garbage, negative, zero and sizes of 2^53 bytes or more.
Result<int64_t> parse_memory_size(std::string_view text);

// One calibration input: an image and the prompt asked about it.
struct CalibrationSample {
    ImageU8 image;
    std::string prompt;
};

// What the unpruned model did on one sample (the loss oracle).
struct CalibrationTeacher {
    std::vector<int32_t> answer;   // greedy answer ids (without the end-of-generation token)
    int64_t positions = 0;         // distributions compared: answer.size(), + 1 when it ended at EOG
    std::vector<float> log_probs;  // (positions, n_vocab) log-softmax of the unpruned logits
    std::vector<int32_t> argmax;   // (positions) the unpruned greedy token at each position
};

// One point of the search space.
struct CalibrationConfig {
    double projector_keep = 1.0;       // after-projector keep fraction (1: no stage)
    std::vector<double> decoder_keep;  // per lever layer (CalibrationSettings::decoder_layers), 1: no stage
    int kv_level = 0;                  // index into kCalibrationKvTypes
    double encoder_merge = 0;          // ToMe inside the encoder: a kCalibrationMerges fraction (0: none)
    int max_tiles = 0;                 // SmolVLM's tile cap (0: the model's own tiling)
    // At a mixed KV level: each decoder layer's share of q8_0 prompt rows, at most the level's (a
    // layer's share is min(level share, this)); empty: the level's share on every layer. Lowered one
    // layer one notch along kCalibrationKvLayerShares at a time (the per-layer KV lever).
    std::vector<double> kv_layer_shares;
};

// The KV lever's levels, fewest bytes last: labels, and each level as a plan's kv_cache object.
// mixed S: q8_0 for the share S of the prompt its last token attends to most, q4_0 for the rest.
inline constexpr const char* kCalibrationKvTypes[] = {"f16", "q8_0", "mixed 0.5", "mixed 0.25", "q4_0"};
inline constexpr const char* kCalibrationKvCaches[] = {
    R"({"type": "f16"})", R"({"type": "q8_0"})", R"({"type": "mixed", "high_precision_share": 0.5})",
    R"({"type": "mixed", "high_precision_share": 0.25})", R"({"type": "q4_0"})"};
static_assert(sizeof(kCalibrationKvTypes) == sizeof(kCalibrationKvCaches), "one kv_cache object per KV level");
// The per-layer KV lever's shares (at a mixed level), largest first: a layer steps 0.5 -> 0.25 -> 0.
inline constexpr double kCalibrationKvLayerShares[] = {0.5, 0.25, 0.0};
// Keep fractions the levers step through, largest first.
inline constexpr double kCalibrationKeeps[] = {1.0, 0.75, 0.5, 0.375, 0.25, 0.1875, 0.125, 0.0625};
// ToMe merge fractions the encoder lever steps through (`--merge R`'s meaning: R of the encoder's
// patches fewer after its last block, spread over the blocks), none first. Those a model's
// encoder cannot run (more than half of a block's tokens) are left out for that model.
inline constexpr double kCalibrationMerges[] = {0.0, 0.25, 0.5};

struct CalibrationSettings {
    std::string text_path, mmproj_path;
    VlmConfig base;                         // threads, chat template (pruning and kv_type are set per candidate)
    int answer_tokens = 8;                  // tokens generated per sample (the budget plans for this many)
    int image_width = 0, image_height = 0;  // the geometry the budget plans for
    std::string plan_prompt;                // the prompt the budget plans for (the longest)
    std::string projector_method = "divprune";  // the after-projector lever's method ("" : no such lever)
    bool decoder_levers = true;             // pyramiddrop stages after decoder_layers
    std::vector<int> decoder_layers;        // empty: chosen from the depth (calibration_decoder_layers)
    bool kv_levers = true;                  // f16 -> q8_0 -> q4_0
    // ToMe merging inside the encoder (kCalibrationMerges). It shrinks only the encoder's arena (the
    // merged tokens are restored before the projector, so the language model's tokens, KV cache and
    // image buffers do not change): a few tens of KB on the bundled models; its real gain is encoder
    // time, which the budget search does not weigh (docs/calibration.md).
    bool tome_levers = false;
    // The tile cap (SmolVLM layout): from the natural grid of the calibrated geometry down to one tile
    // + the overview, one step per distinct tile count. Fewer image buffers, visual tokens, KV cache
    // and decoder activations. Ignored on layouts without tiles (Calibrator::tile_caps() is empty).
    bool tile_levers = false;
    // What the planner does not see (code, libraries, allocator slack, file pages in flight), added to
    // every planned total: calibration_process_overhead(planned weights, process_overhead,
    // overhead_weight_share) (measured in docs/calibration.md: the part beyond the fixed one grows with
    // the model). The tool's defaults are kCalibrationProcessOverhead and kCalibrationOverheadWeightShare,
    // the rule check_calibrated_budget holds every request of the written plan to.
    int64_t process_overhead = 0;
    double overhead_weight_share = 0;
    // With kv_levers: at a mixed KV level, lower one decoder layer's q8_0 share at a time
    // (CalibrationConfig::kv_layer_shares; MiKV / ZipVL choose the share per layer).
    bool kv_layer_levers = true;
};

// The layers after which decoder stages may prune: L/4, L/2, 3L/4 rounded, minus one (PyramidDrop's
// 8/16/24 of 32 scaled by depth), within [0, L-2], deduplicated. 4 layers: 0, 1, 2.
std::vector<int> calibration_decoder_layers(int n_layers);

// The tile lever's caps for an image of width x height whose natural idefics3 grid is rows x cols:
// every tile count below rows*cols that idefics3_capped_grid reaches, largest first (1024x768 on
// a 3 x 4 grid: 6, 4, 1). Capping at such a count gives exactly that many tiles.
std::vector<int> calibration_tile_caps(int width, int height, int rows, int cols);

// The plan of a configuration (original position ids at every stage).
Result<PruningPlan> calibration_plan(const CalibrationConfig& config, const CalibrationSettings& settings);

struct CalibrationLoss {
    double mean_kl = 0;
    double agreement = 0;
    int64_t positions = 0;
};

struct CalibrationPoint {
    CalibrationConfig config;
    VlmMemory memory;      // the planner's bytes by part, image buffers included
    int64_t overhead = 0;  // the process overhead added (CalibrationSettings)
    int64_t total = 0;     // memory.total() + overhead
    CalibrationLoss loss;
    std::string step;      // the lever step that led here ("start", "projector keep 0.5", ...)
};

struct CalibrationProgress {
    double fraction = 0;  // of the phase done, in [0, 1]: samples answered, or bytes cut of the way to the budget
    double seconds = 0;   // since the phase began
    int64_t evaluations = 0;  // candidate configurations measured so far
    std::string what;     // "unpruned answers", "step 3: trying decoder layer 1 keep 0.5", ...
};
using CalibrationProgressFn = std::function<void(const CalibrationProgress&)>;

class Calibrator {
public:
    // Checks the settings and the samples (at least one), loads nothing yet.
    static Result<std::unique_ptr<Calibrator>> create(CalibrationSettings settings, std::vector<CalibrationSample> samples);

    // The unpruned model's answers and distributions on every sample (cached; runs once).
    Status run_teacher(const CalibrationProgressFn& progress = nullptr);
    const std::vector<CalibrationTeacher>& teachers() const { return teachers_; }

    // Planned memory of a configuration (cached per plan).
    Result<CalibrationPoint> plan_memory(const CalibrationConfig& config);
    // Planned memory and measured loss of a configuration on the calibration set (cached per plan).
    Result<CalibrationPoint> evaluate(const CalibrationConfig& config);

    // The unpruned and the smallest configurations the levers allow.
    CalibrationConfig unpruned() const;
    CalibrationConfig smallest() const;

    // Greedy search (above) for a planned total <= budget. The path starts at the unpruned point
    // and ends at the chosen one (its last points may be "undo:" steps of the refinement). A budget below the smallest configuration's total is refused
    // with that minimum (and the weights') in the message.
    Result<std::vector<CalibrationPoint>> search(int64_t budget, const CalibrationProgressFn& progress = nullptr);

    const CalibrationSettings& settings() const { return settings_; }
    int decoder_layer_count() const { return n_decoder_layers_; }
    const std::string& model_name() const { return model_name_; }  // Vlm::model_name() of the text model
    // The tile lever's caps below the natural grid, largest first (each a distinct tile count the
    // capped grid reaches for the calibrated geometry); empty without the lever or without tiles.
    const std::vector<int>& tile_caps() const { return tile_caps_; }
    int natural_tiles() const { return natural_tiles_; }  // tiles of the calibrated geometry (0: no tiles)
    // The ToMe lever's merge fractions this encoder can run (kCalibrationMerges' valid prefix); empty without the lever.
    const std::vector<double>& merge_steps() const { return merge_steps_; }
    size_t sample_count() const { return samples_.size(); }
    // Text tokens of the planned prompt (its positions minus its image tokens; known after the first plan).
    int64_t plan_prompt_text_tokens() const { return plan_prompt_text_tokens_; }

private:
    Calibrator() = default;
    Result<std::unique_ptr<Vlm>> load(const CalibrationConfig& config) const;
    Result<VlmMemory> planned_memory(Vlm& vlm);
    Result<CalibrationLoss> measure_loss(Vlm& vlm) const;
    // prune: a smaller keep, a coarser KV type; undo: a larger keep, a more precise KV type.
    enum class LeverDirection { prune, undo };
    // The configurations one step of one lever away in `direction`, with a label each ("undo: ..." when undoing).
    std::vector<std::pair<std::string, CalibrationConfig>> lever_steps(const CalibrationConfig& c,
                                                                       LeverDirection direction) const;
    std::string key(const CalibrationConfig& c) const;

    CalibrationSettings settings_;
    std::vector<CalibrationSample> samples_;
    std::vector<CalibrationTeacher> teachers_;
    int n_decoder_layers_ = 0;
    int64_t n_vocab_ = 0;
    // Planned memory, and the loss when measured, of one configuration (cached by key()).
    Result<CalibrationPoint> point_of(const CalibrationConfig& config, bool with_loss);
    struct CachedPoint {
        CalibrationPoint point;
        bool has_loss = false;
    };
    std::map<std::string, CachedPoint> cache_;
    int64_t evaluations_ = 0;
    int64_t plan_prompt_text_tokens_ = 0;
    std::string model_name_;
    std::vector<int> tile_caps_;
    int natural_tiles_ = 0;
    std::vector<double> merge_steps_;
};

}  // namespace glimpse
