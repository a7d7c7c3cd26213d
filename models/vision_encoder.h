// Vision encoders read from llama.cpp mmproj GGUF files:
//   idefics3 (SmolVLM): SigLIP ViT without [CLS], post-LayerNorm, pixel shuffle, fc.
//   mlp (LLaVA-1.5 style): CLIP ViT with [CLS], pre-LayerNorm, 2-layer MLP projector.
// One plan encodes one image chunk (a tile or an overview) of the model's fixed
// size into (n_tokens, n_embd_text) embeddings.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/gguf_weights.h"
#include "runtime/gguf.h"
#include "runtime/graph.h"
#include "runtime/status.h"

namespace glimpse {

enum class ProjectorType { idefics3, mlp };

struct VisionHparams {
    ProjectorType projector = ProjectorType::idefics3;
    int64_t image_size = 0;   // tile side in pixels (clip.vision.image_size)
    int64_t patch_size = 0;
    int64_t n_embd = 0;
    int64_t n_ff = 0;
    int64_t n_layer = 0;      // blocks stored in the file
    int64_t n_head = 0;
    float eps = 1e-6f;
    float image_mean[3] = {0.5f, 0.5f, 0.5f};
    float image_std[3] = {0.5f, 0.5f, 0.5f};
    UnaryOp ffn_act = UnaryOp::gelu_tanh_f16;  // clip.use_gelu ? GELU (tanh) : quick GELU, as ggml-cpu evaluates them
    // idefics3
    int64_t scale_factor = 0;        // pixel-shuffle factor
    int64_t preproc_image_size = 0;  // longest edge of the resized image before tiling
    // mlp
    bool has_class_embedding = false;
    int64_t n_layer_used = 0;  // blocks the graph runs (see load())
    // output
    int64_t n_embd_out = 0;    // = the text model's n_embd

    int64_t n_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
    int64_t n_tokens_per_chunk() const;
};

Result<VisionHparams> vision_hparams_from_gguf(const GgufFile& file);

// Attention taps for token pruning, per chosen encoder block (0-based):
//   cls_attention: the [CLS] query's post-softmax attention over every position,
//                  per head — (n_head, n_pos); needs an encoder with [CLS] (mlp).
//                  Positions follow llama.cpp's layout: patches 0..N-1, then [CLS] at N.
//   column_mean:   the attention each position receives, averaged over all queries,
//                  per head — (n_head, n_pos); the fallback signal without [CLS].
// Both are computed inside the plan (one extra query row; a running sum in the
// attention kernel), with no N×N matrix and no allocation at run time.
struct VisionTaps {
    std::vector<int> layers;
    bool cls_attention = false;
    bool column_mean = false;
};

struct VisionTapValues {
    int layer = 0;
    ValueId cls_attention = kNoValue;  // (n_head, n_pos)
    ValueId column_mean = kNoValue;    // (n_head, n_pos)
};

// Token merging inside the encoder (ToMe, ops/tome.h): merge_per_layer[l] tokens are merged
// in block l, between its attention and its MLP (empty, or all 0: no merging, the same graph
// as without). Token counts are fixed when the plan is compiled; which tokens merge is decided
// per image. Blocks after the first merge use proportional attention (+log size per key);
// before the projector, merged tokens are copied back to every patch they absorbed, so the
// connector sees the full grid. [CLS] is never merged.
struct VisionMerge {
    std::vector<int> merge_per_layer;
    bool any() const {
        for (int r : merge_per_layer) {
            if (r > 0) return true;
        }
        return false;
    }
};

// `--merge R` as a per-block schedule over the n_layer_used blocks of an encoder:
//   R = 0:              no merging;
//   0 < R < 1:          a fraction: round(R · patches) fewer tokens after the last block, spread
//                       as a constant r over every block (the first blocks take the remainder);
//   R >= 1 (integer):   r = R tokens merged in every block (ToMe's constant schedule).
// Refuses a schedule that merges more than a block can (half of its tokens, [CLS] excluded).
// `label` names the request in messages (default "--merge R"; a plan: "pruning plan: stages[0].args.r").
Result<VisionMerge> vision_merge_schedule(const VisionHparams& h, double merge, const std::string& label = "");

// A plan's per-block list (`"args": {"r": [r0, r1, ...]}`): r_l tokens merged in block l, blocks
// past the list none. Refuses a list longer than the blocks run, or a block merging more than half
// its tokens ([CLS] excluded), naming `label`.
Result<VisionMerge> vision_merge_from_list(const VisionHparams& h, const std::vector<int>& per_block,
                                           const std::string& label);

// Tokens entering each block and leaving the last one under `merge` ((n_layer_used + 1) counts).
std::vector<int64_t> vision_merge_token_counts(const VisionHparams& h, const VisionMerge& merge);

// What a compiled encoder plan exposes.
struct VisionPlan {
    std::unique_ptr<Plan> plan;
    ValueId pixels = kNoValue;      // input (3, S, S) f32, normalized planar RGB
    ValueId embeddings = kNoValue;  // output (n_tokens, n_embd_out)
    std::vector<VisionTapValues> taps;
    // A tap's data after encode(): (n_head, n_pos) floats, owned by the plan.
    const float* tap_data(ValueId v) const { return plan->f32(v); }
};

class VisionEncoder {
public:
    // numerics: models/numerics.h (fast requantizes the weight matrices here, at load).
    // requantize_pool: the threads that requantization runs on, at load and when a later
    // compile needs a released copy again (the model's pool; the bytes do not depend on its
    // size). It must outlive the encoder; nullptr: the calling thread.
    static Result<std::unique_ptr<VisionEncoder>> load(const std::string& mmproj_path,
                                                       Numerics numerics = Numerics::exact,
                                                       ThreadPool* requantize_pool = nullptr);
    static Result<std::unique_ptr<VisionEncoder>> from_file(std::unique_ptr<GgufFile> file,
                                                            Numerics numerics = Numerics::exact,
                                                            ThreadPool* requantize_pool = nullptr);

    const VisionHparams& hparams() const { return hparams_; }
    const GgufFile& file() const { return *file_; }
    Numerics numerics() const { return numerics_; }
    // Numerics::fast: weight matrices quantized to Q8_0 at load, and their Q8_0 bytes (the
    // copies themselves are released once packed: owned_.requantized_resident_bytes()).
    int64_t requantized_matrices() const { return owned_.requantized_count(); }
    int64_t requantized_bytes() const { return owned_.requantized_bytes(); }
    int64_t requantized_resident_bytes() const { return owned_.requantized_resident_bytes(); }

    // Builds and compiles the encoder graph for one chunk of image_size², with
    // optional attention taps.
    Result<VisionPlan> compile(int n_threads, const VisionTaps& taps = {}, const VisionMerge& merge = {});
    // Threads that pack the weights a compile asks for (the model's pool; nullptr: the
    // compiling thread alone). The packed bytes are the same either way.
    void set_pack_pool(ThreadPool* pool) { packed_.set_pack_pool(pool); }

    // pixels:(3,S,S) -> out:(n_tokens, n_embd_out), with a compiled plan.
    Status encode(VisionPlan& plan, const float* pixels, float* out, ThreadPool* pool) const;

private:
    VisionEncoder() = default;
    Result<Graph> build_graph(VisionPlan* io, const VisionTaps& taps, const VisionMerge& merge = {});

    std::unique_ptr<GgufFile> file_;
    VisionHparams hparams_;
    Numerics numerics_ = Numerics::exact;
    OwnedTensors owned_;
    PackedWeightCache packed_;  // weights repacked for their kernels, shared by every plan
};

}  // namespace glimpse
