// glimpse quantize: GGUF model -> GGUF model with quantized weights, following
// llama-quantize (src/llama-quant.cpp) so the output is the file llama.cpp would
// write for the same input and file type, and loads in both llama.cpp and glimpse.
//
// What is quantized (as llama.cpp decides it, without an importance matrix):
//  - only tensors with >= 2 dimensions (trailing 1s ignored) whose name ends in
//    "weight"; never norms ("_norm.weight"), MoE gates (ffn_gate_inp), learned
//    position embeddings ("position_embd.weight", ".position_embd"), token types,
//    patch embeddings (".patch_embd"), ".patch_merger", ".rel_pos", conv1d/
//    shortconv/RWKV/T5/altup/laurel small tensors. Everything else is copied.
//  - each quantized tensor gets the file type's base type, then (unless pure):
//      output.weight, and token_embd.weight when the embeddings are tied (no
//      output.weight): q6_k for every quantized file type except q8_0 (which stays
//      q8_0); q8_0 when the row length is not a multiple of the base type's block
//      (64-wide token_embd of the golden tiny SmolVLM: q6_k -> q8_0 in its Q4_0 file);
//      q4_k_m / q5_k_m: attn_v (attn_qkv, attn_kv_b) and ffn_down get q6_k in the
//      layers use_more_bits() selects (first and last eighth, every third between);
//      q4_k_s: the first 4 attn_v and the ffn_down of the first eighth get q5_k;
//      8-expert models: attn_v/attn_k q8_0, attn_output q5_k (q4_k_s/m);
//      70B-class: q4_k attn_v -> q5_k; falcon: its own output/ffn_down rules.
//  - --tensor-type REGEX=TYPE overrides (first match wins, searched in the name)
//    replace the mix rules for the tensors they match (not the row-length fallback).
//  - a row length that is not a multiple of the chosen type's block falls back:
//    q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0, then f16 if still not divisible;
//    for 32-blocks (q4_0, q8_0, ...) llama.cpp defines no fallback: an error.
//  - already-quantized tensors are copied when the target type is their type, and
//    refused otherwise unless allow_requantize (llama-quantize --allow-requantize).
//  - metadata is copied unchanged and in order, minus split.* keys, then
//    general.quantization_version = 2 and general.file_type = llama_ftype are
//    (re)appended, as gguf_set_val does. Tensors are written in llama.cpp's order
//    (non-block tensors by name, then blk.N.* by N, then name), data aligned to the
//    file's alignment (32 unless general.alignment says otherwise).
//
// mmproj files (general.architecture "clip") go through the same rules, as in
// llama-quantize (which loads them as its "clip" dummy architecture, with no
// hyperparameters): the filter keeps patch/position embeddings, norms and biases;
// the mixes run with 0 layers, so e.g. q4_k_m gives every ffn_down q6_k.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/gguf.h"
#include "runtime/status.h"

namespace glimpse::tools {

struct TensorTypeOverride {
    std::string pattern;  // ECMAScript regex searched in the tensor name (lower-cased, like llama-quantize)
    DType type = DType::f32;
};

// "NAME_REGEX=TYPE" (TYPE as ggml names it: q8_0, q4_k, f16, ...).
Result<TensorTypeOverride> parse_tensor_type_override(const std::string& arg);
// A tensor type glimpse can write, by ggml's name (case-insensitive).
Result<DType> parse_tensor_type(const std::string& name);

// The file types `--type` accepts, with their llama_ftype ids.
struct FileType {
    const char* name;      // "q4_k_m"
    uint32_t llama_ftype;  // general.file_type
    DType base;            // type of the ordinary 2-D weights
};
Result<FileType> parse_file_type(const std::string& name);  // case-insensitive; "q4_k" = "q4_k_m", "q5_k" = "q5_k_m"
std::string file_type_names();                               // for help and errors

struct QuantizeOptions {
    std::string input_path;
    std::string output_path;
    std::string type = "q8_0";  // a parse_file_type() name
    std::vector<TensorTypeOverride> tensor_types;
    std::optional<DType> token_embedding_type;  // llama-quantize --token-embedding-type
    std::optional<DType> output_tensor_type;    // llama-quantize --output-tensor-type
    bool allow_requantize = false;
    bool leave_output_tensor = false;  // keep output.weight as it is
    bool pure = false;                 // no mixes: every quantized tensor gets the base type
    int threads = 0;                   // 0: all hardware threads
    // Receives one line per tensor ("name [ne] old -> new, bytes") and a total;
    // unset: silent. glimpse-quantize prints them to stderr.
    std::function<void(const std::string&)> log;
};

struct TensorPlan {
    std::string name;
    int n_dims = 0;                // as written (trailing 1s trimmed, like ggml_n_dims)
    int64_t ne[4] = {1, 1, 1, 1};
    DType from = DType::f32, to = DType::f32;
    uint64_t bytes_in = 0, bytes_out = 0;
    std::string note;              // why the type differs from the base type, if it does
};

struct QuantizePlan {
    FileType file_type{};
    bool mmproj = false;
    std::vector<TensorPlan> tensors;  // in output order
};

// Decides every tensor's output type (and checks the conversions are possible)
// without reading tensor data or writing anything.
Result<QuantizePlan> plan_quantization(const GgufFile& input, const QuantizeOptions& options);

// Reads options.input_path and writes options.output_path (via a temporary file
// renamed at the end, so a failure never leaves a half-written output).
Status quantize_gguf(const QuantizeOptions& options);

}  // namespace glimpse::tools
