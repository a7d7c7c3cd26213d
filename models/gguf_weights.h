// Binds tensors of a GGUF file to graph constants, checking each tensor's
// shape and type against what the builder expects. Errors are sticky: the
// builder asks for every tensor it needs and checks status() once.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/numerics.h"
#include "runtime/gguf.h"
#include "runtime/graph.h"
#include "runtime/releasable_buffer.h"

namespace glimpse {

class ThreadPool;

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

    // --numerics fast (models/numerics.h): t (f16, bf16 or f32, rows a multiple of 32 long,
    // aligned data at `src`) as Q8_0 rows, quantized as glimpse quantize writes them
    // (quantize_row_q8_0_ref of each row widened to f32). Made once per tensor, in its own
    // ReleasableBuffer: once a kernel has repacked it and no plan reads it as stored, its bytes
    // are released (release_requantized, settle_requantized) and its address stays the key of
    // the repacked copy. Asked for again while released, it is quantized again into the same
    // address. Refuses NaN/infinite values and scales beyond f16, as glimpse quantize does
    // (convert_tensor_rows, quant/tensor_conversion.h: the same function, the same bytes).
    Result<const uint8_t*> requantized_q8_0(const GgufTensor& t, const uint8_t* src);
    // The threads that quantize those copies (rows split over them; the bytes do not depend on
    // the count). nullptr (the default): the calling thread. Must outlive these tensors' use.
    void set_requantize_pool(ThreadPool* pool) { pool_ = pool; }
    // True when w is the address of a requantized copy.
    bool is_requantized(const void* w) const;
    // Right after a kernel packed w: drops its bytes unless a plan reads it in place (pinned).
    void release_requantized(const void* w);
    // After a plan is compiled, with `read_in_place(w)` saying whether it reads the constant at w
    // as stored (not only through a packed copy): those copies are pinned (kept resident, refilled
    // first if released), and every copy no plan pinned is released.
    Status settle_requantized(const std::function<bool(const void*)>& read_in_place);
    int64_t requantized_count() const { return static_cast<int64_t>(requantized_.size()); }
    // Q8_0 bytes of the requantized matrices / of those resident now.
    int64_t requantized_bytes() const;
    int64_t requantized_resident_bytes() const;

private:
    struct Requantized {
        std::string name;
        DType from = DType::f16;
        const uint8_t* src = nullptr;  // the tensor's stored rows
        int64_t rows = 0, cols = 0;
        ReleasableBuffer q8_0;         // (rows, cols) as Q8_0 blocks
        bool pinned = false;           // some plan reads it in place: never released
    };
    Status fill(Requantized& r) const;
    // Index in requantized_ of the copy at address w, or -1.
    int64_t requantized_index(const void* w) const;
    std::deque<Requantized> requantized_;
    ThreadPool* pool_ = nullptr;

    struct AlignedFree {
        void operator()(uint8_t* p) const;
    };
    std::deque<std::pair<std::string, std::vector<float>>> store_;
    std::deque<std::pair<std::string, std::unique_ptr<uint8_t, AlignedFree>>> aligned_;
};

class GgufWeights {
public:
    GgufWeights(const GgufFile& file, Graph& graph, OwnedTensors& owned, Numerics numerics = Numerics::exact)
        : file_(file), graph_(graph), owned_(owned), numerics_(numerics) {}

    // A weight matrix W:(rows, cols) — GGUF ne = [cols, rows] — in its stored type; under
    // Numerics::fast an f16/bf16/f32 one with cols a multiple of 32 as Q8_0 instead
    // (OwnedTensors::requantized_q8_0). Only weights of products go through here; matrix_flat
    // (the patch embedding) and the f32 copies never change type, as in a Q8_0 mmproj file.
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
    Numerics numerics_;
    Status status_;
};

}  // namespace glimpse
