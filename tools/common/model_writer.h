// Random-weight VLM GGUF pairs in the real layouts llama.cpp reads:
//   SmolVLM (idefics3 mmproj + llama text model) and LLaVA-1.5 style
//   (CLIP mmproj with [CLS] and an MLP projector + llama text model).
// Sizes range from a few hundred KB (tests) to the SmolVLM-256M/500M and
// CLIP-B/16 dimensions (benchmarks), so nothing ever needs a download.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/dtype.h"
#include "runtime/status.h"

namespace glimpse::tools {

enum class VlmLayout { smolvlm, llava };

struct TextSpec {
    int64_t n_embd = 64, n_layer = 2, n_head = 4, n_head_kv = 2, n_ff = 128;
    int64_t n_vocab = 449;  // at least the byte tokens + control + image tokens
    int64_t n_merges = 136;
    int64_t n_ctx_train = 2048;
    float rope_base = 100000.0f;
    float rms_eps = 1e-5f;
};

struct VisionSpec {
    int64_t image_size = 64, patch_size = 16;
    int64_t n_embd = 64, n_layer = 2, n_head = 4, n_ff = 128;
    int64_t scale_factor = 2;          // idefics3 pixel shuffle
    int64_t preproc_image_size = 128;  // idefics3 longest edge
    float eps = 1e-6f;
};

struct VlmSpec {
    VlmLayout layout = VlmLayout::smolvlm;
    TextSpec text;
    VisionSpec vision;
    DType weight_type = DType::f32;  // f32, f16 or bf16 for 2-D weights; norms/biases stay f32
    float weight_std = 0.02f;
    uint64_t seed = 1234;
    std::string name = "glimpse random";
};

// Named presets: "tiny" (the golden tiny layout), "smolvlm-256m", "smolvlm-500m",
// "llava-tiny", "llava-clip-b16" (CLIP ViT-B/16-224 + SmolLM2-135M-size decoder).
Result<VlmSpec> vlm_preset(const std::string& name);

// Writes <text_path> and <mmproj_path>.
Status write_random_vlm(const VlmSpec& spec, const std::string& text_path, const std::string& mmproj_path);

}  // namespace glimpse::tools
