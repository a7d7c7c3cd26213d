// Llama-architecture text decoder from a GGUF text model (SmolLM2 and the
// SmolVLM / LLaVA language models): RMSNorm, GQA attention with llama-style
// RoPE, SwiGLU FFN, tied or separate output projection.
//
// One plan serves prefill and decode: its input rows are dynamic up to
// max_rows, and every pass appends its K/V rows to the preallocated cache.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/gguf_weights.h"
#include "runtime/aligned_buffer.h"
#include "runtime/gguf.h"
#include "runtime/graph.h"
#include "runtime/kv_cache.h"

namespace glimpse {

struct TextHparams {
    int64_t n_vocab = 0;
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;
    int64_t n_ff = 0;
    int64_t n_rot = 0;
    int64_t n_ctx_train = 0;
    float rms_eps = 1e-5f;
    float rope_base = 10000.0f;
    bool tied_embeddings = false;
};

Result<TextHparams> text_hparams_from_gguf(const GgufFile& file);

struct DecoderPlan {
    std::unique_ptr<KvCache> kv_cache;
    std::unique_ptr<Plan> plan;
    ValueId embeddings = kNoValue;  // input (rows, n_embd) f32, dynamic rows
    ValueId positions = kNoValue;   // input (rows) i32, dynamic rows
    ValueId logits = kNoValue;      // output (1, n_vocab): logits of the last row
    int64_t max_rows = 0;
    int64_t context = 0;            // KV-cache slots
};

// The decoder cut into segments at visual-token prune points (issue 24, models/decoder_pruning.h):
// segment s runs layers [first_layer, end_layer) over at most max_rows rows, and its layers'
// KV cache holds kv_capacity slots (the rows the segment keeps plus the answer). All segments
// share one KvCache whose per-layer capacities follow the keep table.
struct DecoderSegment {
    std::unique_ptr<Plan> plan;
    int first_layer = 0, end_layer = 0;
    int64_t max_rows = 0;
    int64_t kv_capacity = 0;
    ValueId embeddings = kNoValue;  // input (rows, n_embd) f32: the hidden state entering first_layer
    ValueId positions = kNoValue;   // input (rows) i32: this segment's RoPE position ids
    ValueId hidden = kNoValue;      // output (rows, n_embd) f32 leaving end_layer - 1 (all but the last segment)
    ValueId score_q = kNoValue;     // output (rows, n_head·head_dim): the scoring layer's q after RoPE
    ValueId score_k = kNoValue;     // output (rows, n_head_kv·head_dim): its k after RoPE
    ValueId logits = kNoValue;      // output (1, n_vocab): the last segment's last-row logits
};

// Where a segment boundary takes its score: the q/k of the segment's own last layer (FastV:
// the attention of layer K-1 decides what layer K sees), or of the next layer, recomputed
// from its input RMSNorm and q/k projections (PyramidDrop's pdrop_rank_drop).
enum class PruneScoreLayer : uint8_t { own_last, next };

struct SegmentSpec {
    int end_layer = 0;  // the segment runs up to (not including) this layer; the last ends at n_layer
    int64_t max_rows = 0;
    int64_t kv_capacity = 0;
    PruneScoreLayer score_layer = PruneScoreLayer::next;  // ignored for the last segment
};

// How the segments hold their activations. shared (the default): the segments run one after
// another, so they run in one buffer (SegmentedDecoderPlan::buffer). per_segment: each segment
// plan allocates its own arena and scratch, as before the buffer was shared; kept as the
// reference the shared layout is tested against (tests/test_decoder_pruning.cpp).
enum class SegmentArenas : uint8_t { shared, per_segment };

struct SegmentedDecoderPlan {
    std::unique_ptr<KvCache> kv_cache;
    std::vector<DecoderSegment> segments;
    // SegmentArenas::shared: the one buffer of every segment, planned before it is allocated:
    //   [carried: hidden_in (segment 0's max_rows, n_embd) f32 | positions of segment 0 (its
    //    max_rows) i32 | of segment 1 | ...][activations: max over segments of their arena]
    //   [scratch: max over segments of their scratch]
    // The carried region is what crosses a boundary and so must not alias any segment's
    // activations: hidden_in is every segment's input (one buffer: a segment's input is dead
    // once it has run, and the boundary gathers the next input into it from the finished
    // segment's output, which lies in the activation region); each segment keeps its own
    // positions (segment 0's are the prompt's, read back after the prefill; tiny). The
    // activation region holds one segment's values at a time, including its outputs (hidden
    // state, score q/k, logits), which stay valid until the next segment runs.
    std::unique_ptr<uint8_t, void (*)(uint8_t*)> buffer{nullptr, aligned_buffer_free};
    int64_t carried_bytes = 0;     // hidden_in + every segment's positions, each 64-byte aligned
    int64_t activation_bytes = 0;  // max over segments of Plan::memory().arena_bytes
    int64_t scratch_bytes = 0;     // max over segments of Plan::memory().scratch_bytes
    int64_t shared_bytes() const { return carried_bytes + activation_bytes + scratch_bytes; }
};

class TextDecoder {
public:
    static Result<std::unique_ptr<TextDecoder>> load(const std::string& path);
    static Result<std::unique_ptr<TextDecoder>> from_file(std::unique_ptr<GgufFile> file);

    const TextHparams& hparams() const { return hparams_; }
    const GgufFile& file() const { return *file_; }

    // Token embedding row `id` (0 <= id < n_vocab) into dst:(n_embd).
    void embed_token(int32_t id, float* dst) const;

    // Whether this model can keep its KV cache as kv_type (f16, f32; q8_0 and q4_0 need
    // head_dim a multiple of 32): ok, or an error saying why not.
    Status check_kv_type(DType kv_type) const;

    // Mixed KV cache (--kv-type mixed): plans compiled after this call with kv_type q8_0 get a
    // KvCache::create_mixed cache keeping share_per_layer[l] of each of layer l's prefill rows in
    // q8_0 (the rest q4_0; one share per decoder layer, checked by create_mixed); the prompt rows
    // it plans for are a plan's max_rows (compile) or a segment's max_rows (compile_segments).
    // An empty list: plain caches again.
    void set_kv_mixed_high_shares(std::vector<double> share_per_layer) { kv_mixed_high_shares_ = std::move(share_per_layer); }
    const std::vector<double>& kv_mixed_high_shares() const { return kv_mixed_high_shares_; }

    // A plan for passes of up to max_rows tokens over a cache of `context` slots.
    Result<DecoderPlan> compile(int64_t max_rows, int64_t context, DType kv_type, int n_threads);
    // Threads that pack the weights a compile asks for (the model's pool; nullptr: the
    // compiling thread alone). The packed bytes are the same either way.
    void set_pack_pool(ThreadPool* pool) { packed_.set_pack_pool(pool); }

    // Runs rows [0, n_rows) of embeddings at positions pos0.. (written by the
    // caller into the plan's inputs), appending to the cache at slot pos0.
    // Returns the logits of the last row (owned by the plan).
    Result<const float*> forward(DecoderPlan& plan, int64_t n_rows, int64_t pos0, ThreadPool* pool) const;

    // Plans for the segments of a pruned decoder (one KvCache, per-layer capacities from the
    // specs). Specs in layer order; the last ends at n_layer.
    Result<SegmentedDecoderPlan> compile_segments(const std::vector<SegmentSpec>& specs, DType kv_type, int n_threads,
                                                  SegmentArenas arenas = SegmentArenas::shared);

private:
    TextDecoder() = default;
    Result<Graph> build_graph(DecoderPlan* io, int64_t max_rows);
    Result<Graph> build_segment_graph(DecoderSegment* io, const SegmentSpec& spec, bool last);
    // One decoder block: x:(T, C) -> (T, C); q_out/k_out (optional) receive its q and k after RoPE.
    ValueId add_layer(Graph& g, GgufWeights& w, ValueId x, ValueId positions, int il, ValueId* q_out = nullptr,
                      ValueId* k_out = nullptr) const;

    // One cache for the decoder's layers (capacity, prompt rows per layer): plain, or mixed.
    Result<std::unique_ptr<KvCache>> create_kv_cache(const std::vector<int64_t>& capacity,
                                                     const std::vector<int64_t>& prompt_rows, DType kv_type) const;

    std::unique_ptr<GgufFile> file_;
    std::vector<double> kv_mixed_high_shares_;  // per layer; empty: not mixed
    TextHparams hparams_;
    OwnedTensors owned_;
    PackedWeightCache packed_;  // weights repacked for their kernels, shared by every plan
    const GgufTensor* token_embd_ = nullptr;
    const uint8_t* token_embd_data_ = nullptr;  // token_embd_'s bytes, aligned (OwnedTensors::aligned_data)
};

}  // namespace glimpse
