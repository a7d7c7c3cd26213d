// A vision-language model: a text GGUF + an mmproj GGUF, as llama-mtmd-cli runs
// them. Builds the prompt exactly as llama.cpp's mtmd does (chat template, media
// markers, idefics3 tile wrappers), encodes each image chunk, prefills the
// decoder in one pass and generates tokens with a streaming callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/chat_template.h"
#include "models/decoder_pruning.h"
#include "models/image_preprocess.h"
#include "models/numerics.h"
#include "models/text_decoder.h"
#include "models/tokenizer.h"
#include "models/vision_encoder.h"
#include "runtime/image.h"
#include "runtime/pruning_plan.h"
#include "runtime/threadpool.h"

namespace glimpse {

struct VlmConfig {
    int n_threads = 0;                  // 0: the CPUs this process may use (usable_cpu_count())
    DType kv_type = DType::f16;         // KV-cache storage (llama.cpp's default is f16)
    // --kv-type mixed (with kv_type q8_0): >= 0 keeps this share of the prompt's tokens, those its
    // last token attends to most, in q8_0 and the rest in q4_0 (decode tokens q8_0;
    // runtime/kv_cache.h). Negative: kv_type alone. Set from a plan's kv_cache.type mixed too.
    double kv_mixed_high_share = -1;
    std::string chat_template;          // --chat-template: a built-in name or template text; empty = the model's
    // Visual-token pruning (docs/pruning.md). Checked against the model in load(): a method the
    // model cannot run, or one not wired yet, is refused there, before any work. Empty = none.
    std::optional<PruningPlan> pruning;
    // Position ids of the kept image rows: compact (the prompt simply has fewer positions) or
    // original (each kept row at the position it had unpruned, text after the image and the
    // answer continuing from the unpruned prompt's end; FastV's and DivPrune's choice). The KV
    // cache and the causal order are the pruned prompt's either way. Original is the default:
    // renumbering erases where a token was, and position questions on the bundled models drop
    // from ~97 % to 20-31 % correct with it (docs/pruning.md).
    bool original_positions = true;
    // Token merging inside the vision encoder (ToMe, `--prune tome --merge R`): R as
    // vision_merge_schedule (models/vision_encoder.h) reads it; 0 = none. Checked in load().
    double encoder_merge = 0;
    // Tile budget (SmolVLM/idefics3 only; docs/pruning.md "Tile budget"): at most this many tiles
    // per image (rows*cols, the overview not counted), the grid chosen by idefics3_capped_grid and
    // the image resized to it. 0 = the model's own tiling (llama.cpp's). A pruning plan's max_tiles
    // means the same; giving both with different values is refused. On a model without tiles
    // (LLaVA layout) any cap is refused.
    int max_tiles = 0;
    // How the encoder and projector compute (models/numerics.h): exact (llama.cpp parity) or fast
    // (f16/bf16/f32 weight matrices requantized to Q8_0 at load, as glimpse quantize writes them).
    Numerics numerics = Numerics::exact;
};

// A tokenized prompt: token ids with -1 where image embeddings go, and for each
// image chunk (in prompt order) where its embeddings start.
struct VlmPrompt {
    std::string rendered;               // chat-template output, with media markers
    std::vector<int32_t> ids;           // one per position; -1 = image embedding
    struct Chunk {
        int image = 0;                  // which input image
        int chunk = 0;                  // which chunk of that image (tile, overview)
        int64_t pos = 0;                // first prompt position
        int64_t n_tokens = 0;           // image positions in the prompt (kept by the pruning plan)
        int64_t n_tokens_in = 0;        // visual tokens the encoder produces for the chunk
    };
    std::vector<Chunk> chunks;
    std::vector<PreprocessedImage> images;
    // The user's text tokenized on its own (media markers removed, no specials): the instruction
    // CDPruner scores the visual rows against.
    std::vector<int32_t> instruction_ids;
    int64_t n_positions() const { return static_cast<int64_t>(ids.size()); }
    int64_t n_image_tokens() const;     // image positions (after pruning)
    int64_t n_image_tokens_in() const;  // visual tokens before pruning
};

struct SamplingParams {
    float temperature = 0.2f;  // llama-mtmd-cli's default; <= 0 is greedy
    int top_k = 40;
    float top_p = 0.95f;
    float min_p = 0.05f;
    uint64_t seed = 0;
};

struct GenerationStats {
    double preprocess_ms = 0, encode_ms = 0, prefill_ms = 0, decode_ms = 0;
    int64_t n_prompt = 0, n_image_tokens = 0, n_image_chunks = 0, n_generated = 0;
    int64_t n_image_tokens_in = 0;  // visual tokens before pruning (n_image_tokens: kept)
    double prune_ms = 0;  // of encode_ms: the pruning stage's scores, selection, gather and merge
    // Visual rows each decoder layer processed in the prefill, summed over layers, and the
    // layers (their ratio is the average visual tokens per decoder layer, issue 24).
    int64_t visual_rows_layer_sum = 0, decoder_layers = 0;
    bool stopped_at_eog = false;
    bool stopped_by_caller = false;  // the text callback returned false
};

// Bytes of planned memory by region.
struct VlmMemory {
    int64_t weights = 0;       // resident weights: kernels' repacked copies + tensors read in place
    int64_t packed_weights = 0;  // of which repacked for their kernels
    int64_t file_weights = 0;  // the same tensors as stored in the files (not counted in total())
    int64_t vision_arena = 0;  // encoder activations + scratch
    int64_t text_arena = 0;    // decoder activations + scratch
    int64_t kv_cache = 0;
    int64_t image_buffers = 0; // preprocessed tiles + image embeddings of the last prompt
    int64_t total() const { return weights + vision_arena + text_arena + kv_cache + image_buffers; }
};

class Vlm {
public:
    static Result<std::unique_ptr<Vlm>> load(const std::string& text_path, const std::string& mmproj_path,
                                             const VlmConfig& config);

    const Tokenizer& tokenizer() const { return *tokenizer_; }
    const ChatTemplate& chat_template() const { return *template_; }
    const TextDecoder& text() const { return *text_; }
    const VisionEncoder& vision() const { return *vision_; }
    int n_threads() const { return pool_->n_threads(); }
    DType kv_type() const { return config_.kv_type; }
    Numerics numerics() const { return config_.numerics; }  // the KV-cache type in use (--kv-type or the plan's)
    // "f16", "q8_0", ... or "mixed" (then kv_type() is q8_0, the high-precision rows' type).
    const char* kv_type_name() const { return config_.kv_mixed_high_share >= 0 ? "mixed" : dtype_name(config_.kv_type); }
    // The share (a plan's per-layer list: their mean over layers, for reports); -1: not mixed.
    double kv_mixed_high_share() const { return config_.kv_mixed_high_share; }
    // Mixed: the share of each decoder layer (a plan's list, or the one share on every layer); else empty.
    const std::vector<double>& kv_mixed_high_shares() const { return text_->kv_mixed_high_shares(); }
    // Whether the shares came as a per-layer list (a plan's kv_cache.high_precision_share array).
    bool kv_mixed_shares_per_layer() const { return config_.pruning && !config_.pruning->kv_high_precision_shares.empty(); }
    // The pruning plan the model was loaded with (nullopt: none); its calibration block, if any, is
    // the budget models/calibration_budget.h checks requests against.
    const std::optional<PruningPlan>& pruning_plan() const { return config_.pruning; }
    // The text model's general.name ("" if the file has none): what a calibrated plan records as `model`.
    std::string model_name() const;

    // The prompt for `user_text` and images, as llama-mtmd-cli builds it: one
    // media marker per image is prepended unless the text already contains
    // markers (then their count must equal the number of images).
    // With a plan whose tiles split is overview_scores (HiRED) this encodes each image's overview
    // to score it (not const): the chunk counts are fixed here, before encode_images. That pass's
    // rows are kept for the last image scored, and encode_images uses them for its overview
    // instead of encoding it again (one pass per chunk for a one-image prompt).
    Result<VlmPrompt> build_prompt(std::string_view user_text, const std::vector<ImageU8>& images);
    // The same from images already preprocessed for this model (preprocess_image),
    // so several prompts about one image preprocess it once.
    Result<VlmPrompt> build_prompt(std::string_view user_text, std::vector<PreprocessedImage> images);
    Result<PreprocessedImage> preprocess_image(const ImageU8& image) const;

    // Runs the prompt and generates up to n_predict tokens (stopping at an
    // end-of-generation token or the template's antiprompt), calling on_text
    // with printable bytes as they become available; on_text returns false to stop
    // generation (e.g. the answer can no longer be written). The prompt plus n_predict must
    // fit the context (check_context), otherwise nothing runs and an out_of_range error says so.
    using TextCallback = std::function<bool(std::string_view bytes)>;
    // `image_embeddings` (optional) are encode_images(prompt)'s result for an
    // earlier prompt with the same images, reused instead of encoding again.
    Status generate(const VlmPrompt& prompt, int n_predict, const SamplingParams& sampling,
                    const TextCallback& on_text, GenerationStats* stats,
                    const std::vector<float>* image_embeddings = nullptr);

    // Teacher forcing (glimpse calibrate, models/calibration.h): runs the prompt, then feeds
    // `answer` instead of sampling, calling on_logits(step, logits:(n_vocab)) with the next-token
    // distribution at each answer position, step = 0 .. answer.size() (the last one predicts what
    // follows the answer, e.g. the end of generation). One prefill + answer.size() decode steps.
    using LogitsCallback = std::function<void(int64_t step, const float* logits)>;
    Status score_answer(const VlmPrompt& prompt, const std::vector<int32_t>& answer, const LogitsCallback& on_logits,
                        const std::vector<float>* image_embeddings = nullptr);

    // Ids generated by the last generate() call (for tests).
    const std::vector<int32_t>& last_generated() const { return generated_; }
    // Position ids of the last generate() call's prefill rows (for tests).
    const std::vector<int32_t>& last_prefill_positions() const { return prefill_positions_; }
    // Prefill logits of the last generate() call (for tests).
    const std::vector<float>& last_prefill_logits() const { return prefill_logits_; }

    // Positions a prompt and its answer may use together (the text model's llama.context_length).
    int64_t context_length() const;
    // An error naming the numbers when n_prompt positions + n_predict new tokens exceed the context.
    Status check_context(int64_t n_prompt, int64_t n_predict) const;
    // Memory the plans of the last generate() (or of a prompt of this size) use.
    VlmMemory memory() const;
    // The KV cache's bytes per decoder layer (KvCache::layer_bytes) of the plan memory() reports;
    // empty before a plan exists. Their sum is memory().kv_cache less a mixed cache's ranking scratch.
    std::vector<int64_t> kv_cache_layer_bytes() const;
    // Plans for a prompt of n_prompt positions and n_predict new tokens,
    // without running them (glimpse inspect, budgets).
    Status prepare(int64_t n_prompt, int n_predict);
    // The same for this prompt: with decoder-layer pruning stages the plans depend on its
    // visual rows (glimpse inspect, glimpse-bench e2e).
    Status prepare(const VlmPrompt& prompt, int n_predict);
    // The decoder-layer pruning of the last generate()/prepare() (nullptr: none in the plan).
    const DecoderPruning* decoder_pruning() const { return decoder_pruning_.get(); }
    // The plan's decoder-layer stages (empty: none).
    const std::vector<PruneStage>& decoder_stages() const { return decoder_stages_; }
    // KV-cache bytes the same prompt would take without decoder-layer pruning.
    int64_t unpruned_kv_bytes(int64_t n_positions) const;

    // Image embeddings of every chunk of `prompt`, (n_image_tokens, n_embd) in prompt order:
    // with a pruning plan only each chunk's kept rows, in raster order.
    Result<std::vector<float>> encode_images(const VlmPrompt& prompt, GenerationStats* stats);

    // Whether kept image rows keep their unpruned position ids: the after-projector stage's
    // `positions` argument when it is original or compact, else VlmConfig::original_positions.
    bool original_positions() const;
    // The pruning stage this model runs (nullptr: none).
    const PruneStage* pruning_stage() const { return prune_ ? &*prune_ : nullptr; }
    // The encoder's token-merging schedule (VlmConfig::encoder_merge; none: all 0).
    const VisionMerge& vision_merge() const { return vision_merge_; }
    double encoder_merge() const { return config_.encoder_merge; }
    // The PruningModelShape of one preprocessed image (tiles, overview, [CLS], layers).
    PruningModelShape pruning_shape(const PreprocessedImage& image) const;
    // How the wired methods choose (each chunk on its own, with the plan's per-chunk count):
    //   random:        prune_random_ref(T, k, SplitMix64{seed ^ (image*4096 + chunk) * 0x9e3779b97f4a7c15}.next());
    //   uniform:       prune_uniform_grid_ref(side, side, k);
    //   divprune:      divprune_ref over S = the registered cosine_similarity op over the chunk's
    //                  projected rows (ops/prune_score.h: f64-accumulated dots of L2-normalised rows);
    //   dart:          dart_ref over the same S, pivot score = L1 norm of each projected row,
    //                  min(k, pivots) pivots;
    //   cdpruner:      cdpruner_ref over the same S and cdpruner_relevance_ref of the cosine op
    //                  between the projected rows and the prompt's instruction_ids' token embeddings;
    //   fastervlm:     topk of the tap_scores op over the [CLS] attention tap at `layer`;
    //   attn-received: the same over the column-mean (attention received) tap;
    //   vtc-cls:       the same over the [CLS] taps of blocks start_layer .. L-2, summed;
    //   visionzip:     visionzip_ref's contract with the ops: dominant = topk of the tap scores at
    //                  `layer` ([CLS] or received, per `score`), contextual targets at a stride,
    //                  the rest merged into the most cosine-similar target (projected rows) by the
    //                  merge_rows op; the target's row becomes row + mean of its merged rows.
    // Per chunk of the last encode_images() call (prompt order): the kept token indices,
    // ascending raster indices into the chunk's side x side token grid.
    const std::vector<std::vector<int32_t>>& last_kept() const { return last_kept_; }
    // HiRED's split: the overview token scores the last build_prompt split its image's budget by
    // (empty: no split by scores yet). (T) raster order.
    const std::vector<float>& last_overview_scores() const { return hired_scores_; }
    // The encoder block whose received attention scores the overview for HiRED's split: 0, as
    // HiRED reads its layer-0 [CLS] attention of the full image to share the budget (SmolVLM's
    // SigLIP has no [CLS]: the attention each token receives, VisPruner's SigLIP score).
    static constexpr int kHiredScoreLayer = 0;
    // Vision encoder passes run since load (build_prompt's HiRED overview scoring and
    // encode_images' chunks; a chunk that keeps nothing, or an overview reused from the scoring
    // pass, runs none) and their time in ms (the passes only, not compiling the plan).
    int64_t encoder_passes() const { return encoder_passes_; }
    double encoder_ms() const { return encoder_ms_; }
    // Visual tokens per chunk side (SmolVLM 8, LLaVA-1.5 24).
    int visual_tokens_per_side() const { return tokens_side_; }
    // The tile budget in force (VlmConfig::max_tiles or the plan's max_tiles); 0 = none.
    int max_tiles() const { return max_tiles_; }

private:
    Vlm() = default;
    Status ensure_vision_plan();
    Status check_pair(const std::string& text_path, const std::string& mmproj_path) const;
    Status ensure_text_plan(int64_t max_rows, int64_t context);
    Status setup_pruning(const PruningPlan& plan);
    // The tile budget from the config and the plan (conflicts and tile-less models refused).
    Status setup_tile_budget(const VlmConfig& config);
    // Decoder-layer stages (issue 24, models/decoder_pruning.h): checked in load(), planned per prompt.
    Status setup_decoder_pruning(const PruningPlan& plan);
    Result<std::vector<DecoderPruneStep>> decoder_steps_for(const VlmPrompt& prompt) const;
    Status ensure_decoder_pruning(const VlmPrompt& prompt, int64_t n_predict);
    // Kept counts of an image's chunks (chunk order) under the plan; all tokens without one.
    // The plan's split: equal, or HiRED's by the overview's scores (overview_scores_of).
    Result<std::vector<int64_t>> chunk_keep_counts(const PreprocessedImage& image);
    // HiRED: the overview chunk's token scores -> hired_scores_:(T), the attention each token
    // receives at encoder block kHiredScoreLayer (tap_scores op). Remembers the last overview
    // scored (its pixels) with that pass's projected rows and, for a tap method, the method's
    // scores of the chunk, so the prompts of several questions about one image encode it once and
    // encode_images does not encode it again (overview_is_scored).
    Status overview_scores_of(const PreprocessedImage& image);
    // Whether `chunk` of `image` is the overview overview_scores_of encoded last (same pixels):
    // its rows are hired_overview_rows_, its tap scores hired_overview_tap_scores_.
    bool overview_is_scored(const PreprocessedImage& image, int chunk) const;
    // One vision encoder pass: pixels:(3, S, S) -> rows:(T, n_embd), counted in encoder_passes_.
    Status encode_chunk(const float* pixels, float* rows);
    // Picks `k` of the chunk's tokens from its embeddings (prune_embd_) and, for the tap methods,
    // its tap scores (prune_scores_, filled by the caller: tap_scores_of_chunk after the encode).
    Status select_tokens(int64_t k, uint64_t chunk_seed, int32_t* kept);
    void cosine_similarity_of_rows();  // prune_embd_ -> prune_sim_ (registered cosine_similarity op)
    // Scores of the last encoded chunk's tokens from the encoder taps (registered tap_scores op):
    // one layer, or VTC-CLS's sum over layers -> scores:(T).
    void tap_scores_of_chunk(float* scores);
    // CDPruner's instruction embeddings of `prompt` -> prune_text_rows_ (token embedding rows).
    void embed_instruction(const VlmPrompt& prompt);
    // VisionZip: dominant + contextual picks of one chunk -> kept:(k) ascending, and the merge of
    // the other tokens into the contextual ones (prune_merged_, prune_merge_rows_).
    Status select_visionzip(int64_t k, int32_t* kept);
    // VisionZip: adds each contextual token's merged mean to its gathered row; rows:(k, n_embd).
    void apply_visionzip_merge(int64_t k, float* rows);

    VlmConfig config_;
    std::unique_ptr<ThreadPool> pool_;
    std::unique_ptr<TextDecoder> text_;
    std::unique_ptr<VisionEncoder> vision_;
    std::optional<Tokenizer> tokenizer_;
    std::optional<ChatTemplate> template_;
    std::vector<int32_t> antiprompt_;
    VisionPlan vision_plan_;
    VisionMerge vision_merge_;  // VlmConfig::encoder_merge as a per-block schedule
    DecoderPlan text_plan_;
    std::vector<int32_t> generated_;
    std::vector<float> prefill_logits_;
    std::vector<int32_t> prefill_positions_;
    int64_t image_buffer_bytes_ = 0;

    // Pruning (after the projector). Scratch sized in load() for one chunk of T tokens, so
    // encoding a pruned image allocates nothing beyond what encode already does.
    std::optional<PruneStage> prune_;
    int prune_tap_layer_ = -1;  // fastervlm / attn-received / visionzip: the encoder block the score is read at
    std::vector<int> prune_tap_layers_;  // every tapped block (vtc-cls: start_layer .. L-2), ascending
    bool prune_tap_cls_ = false;         // the taps read the [CLS] row (else the attention received)
    int tokens_side_ = 0;
    int max_tiles_ = 0;  // the tile budget in force (VlmConfig::max_tiles or the plan's), 0 = none
    std::vector<float> prune_embd_;     // (T, n_embd): one chunk's projected rows
    std::vector<float> prune_unit_;     // (T, n_embd): the same, L2-normalised (divprune)
    std::vector<float> prune_sim_;      // (T, T) cosine similarity (divprune, dart)
    std::vector<float> prune_scores_;   // (T) token scores (tap methods)
    std::vector<int32_t> prune_kept_;   // (T)
    std::vector<uint8_t> prune_scratch_;  // the method's / topk's scratch (+64 bytes to align it to 64)
    std::vector<float> prune_text_rows_;  // (P, n_embd) cdpruner: the instruction's token embeddings
    std::vector<float> prune_text_sim_;   // (T, P) cdpruner: visual-instruction cosines
    std::vector<float> prune_relevance_;  // (T) cdpruner
    std::vector<int32_t> prune_assign_;   // (T) visionzip: contextual slot of each token, -1 none
    std::vector<int32_t> prune_merge_rows_;  // (k) visionzip: per kept row, its contextual slot or -1
    std::vector<float> prune_merged_;     // (T, n_embd) visionzip: merged means per contextual slot
    std::vector<std::vector<int32_t>> last_kept_;
    // HiRED's tile split (tiles.split overview_scores): scores of the last overview encoded for it,
    // and that overview's pixels (the memo's key), projected rows and tap scores. Sized in load().
    bool hired_split_ = false;
    std::vector<float> hired_scores_;
    std::vector<float> hired_overview_pixels_;      // (3, S, S); empty: no overview scored
    std::vector<float> hired_overview_rows_;        // (T, n_embd)
    std::vector<float> hired_overview_tap_scores_;  // (T) tap methods: tap_scores_of_chunk's, else empty
    int64_t encoder_passes_ = 0;
    double encoder_ms_ = 0;

    // Decoder-layer pruning (issue 24).
    std::optional<PruningPlan> full_plan_;        // the whole plan (after_projector + decoder stages)
    std::vector<PruneStage> decoder_stages_;      // its decoder_layer stages
    std::unique_ptr<DecoderPruning> decoder_pruning_;
    std::vector<uint8_t> decoder_is_visual_;      // (prompt rows) sized with the plan

    // score_answer's teacher forcing while it runs generate() (nullptr otherwise).
    const std::vector<int32_t>* forced_answer_ = nullptr;
    const LogitsCallback* forced_logits_ = nullptr;
};

// The KV-cache type a run uses: the plan's kv_cache.type (q8_0, q4_0) or, when the plan says f16
// or nothing, `configured` (--kv-type). An explicit --kv-type other than f16 that differs from the
// plan's, are refused. kv_cache.type mixed gives q8_0 (the type of its high-precision rows; the share
// is plan.kv_high_precision_share, which Vlm::load applies).
Result<DType> kv_type_of_plan(const PruningPlan& plan, DType configured);

// Picks the next token from logits:(n_vocab) (greedy when temperature <= 0).
// `scratch` is reused between calls.
int32_t sample_token(const float* logits, int64_t n_vocab, const SamplingParams& params, uint64_t* rng_state,
                     std::vector<std::pair<float, int32_t>>* scratch);

}  // namespace glimpse
