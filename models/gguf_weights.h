// Binds tensors of a GGUF file to graph constants, checking each tensor's
// shape and type against what the builder expects. Errors are sticky: the
// builder asks for every tensor it needs and checks status() once.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "runtime/gguf.h"
#include "runtime/graph.h"

namespace glimpse {

// Weight matrices are handed to kernels at an address aligned to this many bytes (small
// tensors become f32 copies, aligned for float). GGUF's default alignment (32) gives it in
// place; a file with a smaller general.alignment (1 is legal) may place a tensor at any
// address, where loading a float or a block's f16 scale is undefined behaviour (UBSan flags
// it; strict-alignment CPUs fault). Such tensors are copied once at load, which costs their
// size in memory: llama.cpp and glimpse write 32, so only hand-made files pay it.
inline constexpr size_t kTensorDataAlignment = 32;

// f32 copies of small tensors (norms, biases, embeddings), whatever their stored
// type, and aligned copies of tensors the file left misaligned; owned by the model
// so they outlive every plan built from it.
class OwnedTensors {
public:
    // The stored copy of `name`, or nullptr.
    const float* find(const std::string& name) const;
    const float* add(const std::string& name, std::vector<float> data);

    // t's bytes at a kTensorDataAlignment-aligned address: t.data itself when it is aligned
    // (the common case: no copy), else a copy made once per tensor. nullptr if that
    // allocation fails.
    const uint8_t* aligned_data(const GgufTensor& t);

private:
    struct AlignedFree {
        void operator()(uint8_t* p) const;
    };
    std::deque<std::pair<std::string, std::vector<float>>> store_;
    std::deque<std::pair<std::string, std::unique_ptr<uint8_t, AlignedFree>>> aligned_;
};

class GgufWeights {
public:
    GgufWeights(const GgufFile& file, Graph& graph, OwnedTensors& owned) : file_(file), graph_(graph), owned_(owned) {}

    // A weight matrix W:(rows, cols) — GGUF ne = [cols, rows] — in its stored type.
    ValueId matrix(const std::string& name, int64_t rows, int64_t cols);
    // A tensor with `cols` contiguous elements per row and any number of rows
    // (e.g. a conv kernel with ne = [P,P,3,C] read as (C, 3·P·P)).
    ValueId matrix_flat(const std::string& name, int64_t rows, int64_t cols);
    // The matrix with every element rounded to f16 precision (kept as f32), for
    // products that ggml computes in f16 (the patch-embedding convolution).
    ValueId matrix_flat_f16_rounded(const std::string& name, int64_t rows, int64_t cols);
    // An f32 vector of n elements (converted from f16/bf16 if stored so).
    ValueId vector(const std::string& name, int64_t n);
    // An f32 matrix (rows, cols) for elementwise use (position embeddings).
    ValueId f32_matrix(const std::string& name, int64_t rows, int64_t cols);
    // The same, but absent tensors give kNoValue instead of an error.
    ValueId optional_vector(const std::string& name, int64_t n);
    ValueId optional_matrix(const std::string& name, int64_t rows, int64_t cols);

    bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }
    // The tensor's descriptor, or nullptr (no error) — for builders that adapt to a layout.
    const GgufTensor* peek(const std::string& name) const { return file_.find_tensor(name); }
    const Status& status() const { return status_; }

private:
    const GgufTensor* find(const std::string& name);
    const float* as_f32(const GgufTensor& t);
    // t's data at an aligned address (OwnedTensors::aligned_data); fails the builder if nullptr.
    const uint8_t* data_of(const GgufTensor& t);
    // t (already shape-checked) as a (rows, cols) graph constant, if glimpse computes with its type.
    ValueId matrix_constant(const std::string& name, const GgufTensor& t, int64_t rows, int64_t cols);
    void fail(const std::string& msg);

    const GgufFile& file_;
    Graph& graph_;
    OwnedTensors& owned_;
    Status status_;
};

}  // namespace glimpse
