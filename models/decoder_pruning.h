// Visual-token pruning inside the language model (issue 24): FastV, PyramidDrop and SparseVLM
// (its raters and recycling: models/decoder_pruning_sparsevlm.cpp).
//
// The decoder is cut after each pruning layer into segments (TextDecoder::compile_segments).
// A prefill runs segment 0 over every prompt row; at each boundary the attention the
// prompt's last row (the rater) pays every row is scored without materialising attention
// (registered query_key_score kernel over the boundary's q/k after RoPE, mean over heads),
// the `keep` best visual rows and every text row survive (registered topk, ascending, so
// rows stay in prompt order), and their hidden states are gathered (registered gather_rows)
// into the next segment. Each segment's layers hold only the rows it keeps in their KV cache
// (per-layer capacities fixed when the plan is made), and a decode step runs every segment
// on its one row at its own slot and position.
//
// Position ids: `original` keeps each surviving row's position of the segment before (FastV),
// `compact` renumbers the survivors 0..n-1 (PyramidDrop's arange) and shifts the answer's
// positions down by the rows dropped.
//
// Counts are plan-time: a DecoderPruning is made for a prompt shape (rows, visual rows, answer
// length); prefill and decode allocate nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "models/text_decoder.h"
#include "ops/kernel_registry.h"
#include "ops/rope_bias.h"
#include "runtime/pruning_plan.h"

namespace glimpse {

// How a decoder stage picks its visual rows: the top `keep` by the attention score, or a fixed
// uniform-coverage grid (feather's early stage; no score).
enum class DecoderSelect : uint8_t { attention, uniform_grid };

// One decoder stage resolved for a prompt.
struct DecoderPruneStep {
    int layer = 0;     // prune after this layer, in [0, n_layer - 2]
    int64_t keep = 0;  // visual rows of the prompt that continue past it
    PruneScoreLayer score_layer = PruneScoreLayer::next;
    HeadReduce reduce = HeadReduce::mean;
    bool compact_positions = false;
    // sparsevlm (models/decoder_pruning_sparsevlm.cpp): rate with the text rows relevant to the
    // image (chosen once at the input) instead of the last row, and recycle the dropped rows into
    // sparsevlm_merged_rows(dropped) merged rows placed after the kept visual rows.
    bool text_raters = false;
    bool recycle = false;
    // feather and debias (models/decoder_pruning_feather.h):
    DecoderSelect select = DecoderSelect::attention;
    bool select_auto = false;          // feather's `criterion: auto`, resolved by resolve_decoder_selects
    bool debias = false;               // divide the score by the RoPE-only bias map (ops/rope_bias.h)
    std::vector<int32_t> grid_rows;    // uniform_grid: the kept visual rows (keep, ascending), fixed per prompt shape
};

// How a decoder-stage method of a pruning plan scores and numbers (docs/pruning.md):
//   fastv:       the attention of layer K-1 = the stage's `layer` (own_last), mean over heads,
//                original positions (FastV's fastv_forward);
//   pyramiddrop: the next layer's normed q/k with RoPE (next), mean over heads, compact
//                positions (PyramidDrop's pdrop_rank_drop);
//   sparsevlm:   the stage's own layer (own_last), text raters, mean over heads then raters,
//                compact positions, recycling unless args.recycle is false (SparseVLM v1.5);
//   feather:     a uniform grid or fastv's attention (models/decoder_pruning_feather.h).
// `debias` divides the attention score by the RoPE-only bias map (fastv, pyramiddrop, feather).
// `positions` (original|compact) in the stage's args overrides the method's numbering. Refuses
// methods and arguments not wired (debias on sparsevlm) with a message naming them.
Result<DecoderPruneStep> decoder_prune_step(const PruneStage& stage, int layer, int64_t keep,
                                            const std::string& where);

// Whether `--prune METHOD` names a method that runs inside the language model (fastv,
// pyramiddrop): its shorthand needs the model's depth (decoder_shorthand_plan).
bool is_decoder_shorthand_method(std::string_view method);

// `--prune fastv|pyramiddrop --keep F` without a plan file: the stages the method's paper
// places in a 32-layer model, scaled to a language model of n_layer layers (docs/pruning.md,
// "Layer choices scaled by depth"; round half away from zero):
//   fastv:       after layer max(0, round(L·2/32) − 1), keeping F of the visual tokens (a
//                fraction in (0, 1] or a whole count > 1);
//   pyramiddrop: after layers round(L·r/32) − 1 for r = 8, 16, 24, keeping F, F², F³ (each
//                stage keeps the fraction F of what enters it; the paper's λ = 0.5);
//   sparsevlm:   after layers round(L·r/32) − 1 for r = 3, 7, 16 (pruning_loc 2, 6, 15), each at
//                least one past the one before, keeping F, F², F³ (+ its recycled rows);
//   feather:     a uniform grid after layer max(0, round(L·2/32) − 1) keeping F, then attention
//                after round(L·16/32) − 1 keeping F².
// `positions` (original|compact; empty = the method's own numbering) goes into every stage.
// Refused with a message: another method, a non-finite or non-positive F, pyramiddrop with a
// count, a model too shallow for the method's layers to be distinct and before the last.
Result<PruningPlan> decoder_shorthand_plan(std::string_view method, double keep, int n_layer,
                                           const std::string& positions);

// The shape a DecoderPruning is made for.
struct DecoderPruneShape {
    int64_t prompt_rows = 0;  // prefill rows at most (a prefill may have fewer, with as many visual rows)
    int64_t visual_rows = 0;  // of which visual (before the first decoder stage)
    int64_t answer_rows = 1;  // decode steps the KV cache must hold
    bool operator==(const DecoderPruneShape&) const = default;
};

// Wall time of the last prefill's boundary work, summed over its stages (ms). The segments'
// own runs (the layers) are not in it.
struct DecoderBoundaryTimes {
    double raters_ms = 0;   // sparsevlm: rater selection from segment 0's input (once per prefill)
    double score_ms = 0;    // query_key_score calls (one per rater), the rater mean, debias
    double select_ms = 0;   // topk, survivors, gather of the kept rows, their positions
    double recycle_ms = 0;  // sparsevlm: topk of the dropped rows, DPC-kNN, merge, insertion
    double total_ms() const { return raters_ms + score_ms + select_ms + recycle_ms; }
};

class DecoderPruning {
public:
    static Result<std::unique_ptr<DecoderPruning>> create(TextDecoder& decoder, std::vector<DecoderPruneStep> steps,
                                                          const DecoderPruneShape& shape, DType kv_type,
                                                          int n_threads,
                                                          SegmentArenas arenas = SegmentArenas::shared);

    const DecoderPruneShape& shape() const { return shape_; }
    const std::vector<DecoderPruneStep>& steps() const { return steps_; }

    // Segment 0's inputs: the prompt's embeddings (prompt_rows, n_embd) and positions.
    float* embeddings() const;
    int32_t* positions() const;

    // Whether a prompt of n_rows rows (visual of them) and n_answer answer tokens fits this plan
    // with these steps.
    bool fits(int64_t n_rows, int64_t visual, int64_t n_answer, const std::vector<DecoderPruneStep>& steps) const;
    // Prefill: rows [0, n_rows) of embeddings()/positions(), n_rows <= shape().prompt_rows;
    // is_visual:(n_rows) marks the visual rows (exactly shape().visual_rows of them). The last
    // row rates. Returns the last row's logits (owned by the plan).
    Result<const float*> prefill(int64_t n_rows, const uint8_t* is_visual, ThreadPool* pool);
    // One answer token: its embedding in embeddings() row 0, `position` as segment 0 numbers
    // it; step counts from 0 after the prefill.
    Result<const float*> decode(int32_t position, int64_t step, ThreadPool* pool);

    // After a prefill: for each stage, the prompt rows (indices into the prefill's rows) that
    // continue past it, ascending; and the positions each segment ran its rows at.
    const std::vector<std::vector<int32_t>>& kept_rows() const { return kept_rows_; }
    const std::vector<std::vector<int32_t>>& segment_positions() const { return segment_positions_; }
    // What the last prefill's boundaries cost (glimpse-bench e2e reports it).
    const DecoderBoundaryTimes& boundary_times() const { return boundary_times_; }

    // Visual rows each decoder layer sees, summed over layers (divide by n_layer for the average).
    int64_t visual_rows_layer_sum() const;
    // Visual rows the last decoder layers see (after every stage).
    int64_t final_visual_rows() const { return visual_rows_.back(); }
    // Planned bytes: KV cache (per-layer capacities); activations + scratch: the segments' one
    // shared buffer (SegmentedDecoderPlan::shared_bytes), or with SegmentArenas::per_segment
    // the sum of every segment's arena and scratch, plus boundary_scratch_bytes(): what the
    // boundaries keep between segments outside the plans (scores, topk scratch, survivors, kept
    // rows and positions; sized in create()).
    int64_t kv_cache_bytes() const;
    int64_t arena_bytes() const;
    int64_t boundary_scratch_bytes() const;
    const SegmentedDecoderPlan& plan() const { return plan_; }
    // sparsevlm: after a prefill, the prompt rows that rated (ascending); merged rows each stage
    // adds (plan-time). A merged row's kept_rows() entry is -1 (it is no prompt row).
    const std::vector<int32_t>& raters() const { return raters_; }
    const std::vector<int64_t>& merged_rows() const { return merged_rows_; }

private:
    DecoderPruning() = default;
    const TextDecoder* decoder_ = nullptr;
    std::vector<DecoderPruneStep> steps_;
    DecoderPruneShape shape_;
    SegmentedDecoderPlan plan_;
    std::vector<int64_t> rows_;         // rows per segment in the last prefill
    std::vector<int64_t> visual_rows_;  // visual rows per segment
    std::vector<int32_t> position_shift_;  // segment 0 position - this segment's, for answer rows
    const Kernel* score_kernel_ = nullptr;
    const Kernel* topk_kernel_ = nullptr;
    const Kernel* gather_kernel_ = nullptr;
    RopeBiasTable rope_bias_;  // the model's RoPE angles, made in create() when a stage debiases
    // Scratch sized in create():
    std::vector<float> score_scratch_;      // query_key_score probabilities (n_head, rows)
    std::vector<float> row_scores_;         // (rows) score of every row
    std::vector<float> visual_scores_;      // (visual rows)
    std::vector<int32_t> visual_index_;     // (visual rows): which row each visual score is
    std::vector<int32_t> visual_pos_;       // (visual rows) their positions, when a stage debiases
    std::vector<int32_t> selected_;         // (keep) topk output
    std::vector<uint8_t> topk_scratch_;     // + 64 bytes to align
    std::vector<uint8_t> is_visual_;        // (rows) of the current segment
    std::vector<uint8_t> is_visual_next_;
    std::vector<int32_t> survivors_;        // (rows) indices into the current segment's rows
    std::vector<std::vector<int32_t>> kept_rows_;
    std::vector<std::vector<int32_t>> segment_positions_;
    DecoderBoundaryTimes boundary_times_;

    // sparsevlm (models/decoder_pruning_sparsevlm.cpp).
    void size_sparsevlm_scratch();
    int64_t sparsevlm_scratch_bytes() const;
    void choose_raters(int64_t n_rows, ThreadPool* pool);  // from segment 0's embeddings, before it runs
    void score_by_raters(const DecoderSegment& seg, int64_t T, ThreadPool* pool);  // -> row_scores_
    // Clusters stage s's dropped rows into merged_rows_[s] rows inserted into the next segment
    // after its last visual row; n = survivors already gathered there. Returns the rows now there.
    int64_t recycle_dropped(size_t s, int64_t n, const int32_t* pos, ThreadPool* pool);
    std::vector<int64_t> merged_rows_;     // per stage
    std::vector<int32_t> raters_;          // prompt rows, all after the last visual row
    std::vector<double> rater_relevance_;  // (rows) softmax over text, mean over visual
    std::vector<float> rater_run_mean_;    // (text rows) query_key_score's output for one run of visual rows
    std::vector<float> rater_scratch_;     // its probability rows (visual rows, text rows)
    std::vector<float> rater_sum_;         // (rows) sum over raters of their score rows
    std::vector<int32_t> dropped_;         // (visual rows) indices into visual_scores_
    std::vector<float> dropped_scores_;    // (visual rows)
    std::vector<int32_t> recycle_pick_;    // (recycled) indices into dropped_
    std::vector<int32_t> recycle_rows_;    // (recycled) segment rows
    std::vector<float> recycle_x_;         // (recycled, n_embd)
    std::vector<float> merged_x_;          // (merged, n_embd)
    std::vector<int32_t> centres_, assign_;
    std::vector<uint8_t> dpc_scratch_;     // + 64 to align
    const Kernel* cosine_kernel_ = nullptr;
    const Kernel* merge_kernel_ = nullptr;
};

}  // namespace glimpse
