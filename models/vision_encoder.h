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
    static Result<std::unique_ptr<VisionEncoder>> load(const std::string& mmproj_path);
    static Result<std::unique_ptr<VisionEncoder>> from_file(std::unique_ptr<GgufFile> file);

    const VisionHparams& hparams() const { return hparams_; }
    const GgufFile& file() const { return *file_; }

    // Builds and compiles the encoder graph for one chunk of image_size², with
    // optional attention taps.
    Result<VisionPlan> compile(int n_threads, const VisionTaps& taps = {});

    // pixels:(3,S,S) -> out:(n_tokens, n_embd_out), with a compiled plan.
    Status encode(VisionPlan& plan, const float* pixels, float* out, ThreadPool* pool) const;

private:
    VisionEncoder() = default;
    Result<Graph> build_graph(VisionPlan* io, const VisionTaps& taps);

    std::unique_ptr<GgufFile> file_;
    VisionHparams hparams_;
    OwnedTensors owned_;
    PackedWeightCache packed_;  // weights repacked for their kernels, shared by every plan
};

}  // namespace glimpse
