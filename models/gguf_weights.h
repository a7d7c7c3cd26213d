// Binds tensors of a GGUF file to graph constants, checking each tensor's
// shape and type against what the builder expects. Errors are sticky: the
// builder asks for every tensor it needs and checks status() once.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "runtime/gguf.h"
#include "runtime/graph.h"

namespace glimpse {

// f32 copies of small tensors (norms, biases, embeddings), whatever their stored
// type; owned by the model so they outlive every plan built from it.
class OwnedTensors {
public:
    // The stored copy of `name`, or nullptr.
    const float* find(const std::string& name) const;
    const float* add(const std::string& name, std::vector<float> data);

private:
    std::deque<std::pair<std::string, std::vector<float>>> store_;
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
    void fail(const std::string& msg);

    const GgufFile& file_;
    Graph& graph_;
    OwnedTensors& owned_;
    Status status_;
};

}  // namespace glimpse
