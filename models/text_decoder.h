// Llama-architecture text decoder from a GGUF text model (SmolLM2 and the
// SmolVLM / LLaVA language models): RMSNorm, GQA attention with llama-style
// RoPE, SwiGLU FFN, tied or separate output projection.
//
// One plan serves prefill and decode: its input rows are dynamic up to
// max_rows, and every pass appends its K/V rows to the preallocated cache.
#pragma once

#include <memory>
#include <string>

#include "models/gguf_weights.h"
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

    // A plan for passes of up to max_rows tokens over a cache of `context` slots.
    Result<DecoderPlan> compile(int64_t max_rows, int64_t context, DType kv_type, int n_threads);

    // Runs rows [0, n_rows) of embeddings at positions pos0.. (written by the
    // caller into the plan's inputs), appending to the cache at slot pos0.
    // Returns the logits of the last row (owned by the plan).
    Result<const float*> forward(DecoderPlan& plan, int64_t n_rows, int64_t pos0, ThreadPool* pool) const;

private:
    TextDecoder() = default;
    Result<Graph> build_graph(DecoderPlan* io, int64_t max_rows);

    std::unique_ptr<GgufFile> file_;
    TextHparams hparams_;
    OwnedTensors owned_;
    PackedWeightCache packed_;  // weights repacked for their kernels, shared by every plan
    const GgufTensor* token_embd_ = nullptr;
    const uint8_t* token_embd_data_ = nullptr;  // token_embd_'s bytes, aligned (OwnedTensors::aligned_data)
};

}  // namespace glimpse
