#include "models/gguf_weights.h"

#include <cstring>

#include "ops/weights.h"
#include "quant/tensor_conversion.h"
#include "runtime/aligned_buffer.h"
#include "runtime/fp16.h"

namespace glimpse {

const float* OwnedTensors::find(const std::string& name) const {
    for (const auto& [n, data] : store_) {
        if (n == name) return data.data();
    }
    return nullptr;
}

const float* OwnedTensors::add(const std::string& name, std::vector<float> data) {
    store_.emplace_back(name, std::move(data));
    return store_.back().second.data();
}

void OwnedTensors::AlignedFree::operator()(uint8_t* p) const { aligned_buffer_free(p); }

const uint8_t* OwnedTensors::aligned_data(const GgufTensor& t) {
    if (reinterpret_cast<uintptr_t>(t.data) % kTensorDataAlignment == 0) return t.data;
    for (const auto& [n, data] : aligned_) {
        if (n == t.name) return data.get();
    }
    std::unique_ptr<uint8_t, AlignedFree> copy(aligned_buffer_alloc(static_cast<size_t>(t.nbytes)));
    if (!copy) return nullptr;
    std::memcpy(copy.get(), t.data, static_cast<size_t>(t.nbytes));
    aligned_.emplace_back(t.name, std::move(copy));
    return aligned_.back().second.get();
}

Result<const uint8_t*> OwnedTensors::requantized_q8_0(const GgufTensor& t, const uint8_t* src) {
    for (Requantized& r : requantized_) {
        if (r.name != t.name) continue;
        if (!r.q8_0.resident()) GLIMPSE_RETURN_IF_ERROR(fill(r));
        return static_cast<const uint8_t*>(r.q8_0.data());
    }
    Requantized r;
    r.name = t.name;
    r.from = t.type;
    r.src = src;
    r.cols = t.ne[0];
    r.rows = t.n_elements() / t.ne[0];
    GLIMPSE_ASSIGN_OR_RETURN(r.q8_0, ReleasableBuffer::allocate(static_cast<size_t>(
                                         r.rows * dtype_row_bytes(DType::q8_0, r.cols))));
    GLIMPSE_RETURN_IF_ERROR(fill(r));
    requantized_.push_back(std::move(r));
    return static_cast<const uint8_t*>(requantized_.back().q8_0.data());
}

// What glimpse quantize does to one tensor (tools/quantize/quantize_gguf.cpp), with the same
// refusals: convert_tensor_rows, on the model's thread pool.
Status OwnedTensors::fill(Requantized& r) const {
    const Status converted = convert_tensor_rows(r.from, r.src, DType::q8_0, r.q8_0.data(), r.rows, r.cols, pool_);
    if (!converted.is_ok()) {
        return Status(converted.code(), "tensor '" + r.name + "' (" + dtype_name(r.from) + "): " + converted.message() +
                                            ": --numerics fast cannot quantize it to q8_0 (use --numerics exact)");
    }
    r.q8_0.mark_filled();
    return Status::ok();
}

int64_t OwnedTensors::requantized_index(const void* w) const {
    for (size_t i = 0; i < requantized_.size(); ++i) {
        if (requantized_[i].q8_0.data() == w) return static_cast<int64_t>(i);
    }
    return -1;
}

bool OwnedTensors::is_requantized(const void* w) const { return requantized_index(w) >= 0; }

void OwnedTensors::release_requantized(const void* w) {
    const int64_t i = requantized_index(w);
    if (i >= 0 && !requantized_[static_cast<size_t>(i)].pinned) requantized_[static_cast<size_t>(i)].q8_0.release();
}

Status OwnedTensors::settle_requantized(const std::function<bool(const void*)>& read_in_place) {
    for (Requantized& r : requantized_) {
        if (!r.pinned && read_in_place(r.q8_0.data())) {
            if (!r.q8_0.resident()) GLIMPSE_RETURN_IF_ERROR(fill(r));
            r.pinned = true;
        }
        if (!r.pinned && r.q8_0.resident()) r.q8_0.release();
    }
    return Status::ok();
}

int64_t OwnedTensors::requantized_bytes() const {
    int64_t n = 0;
    for (const Requantized& r : requantized_) n += static_cast<int64_t>(r.q8_0.size());
    return n;
}

int64_t OwnedTensors::requantized_resident_bytes() const {
    int64_t n = 0;
    for (const Requantized& r : requantized_) n += r.q8_0.resident() ? static_cast<int64_t>(r.q8_0.size()) : 0;
    return n;
}

void GgufWeights::fail(const std::string& msg) {
    if (status_.is_ok()) status_ = Status(StatusCode::parse_error, file_.path() + ": " + msg);
}

const GgufTensor* GgufWeights::find(const std::string& name) {
    const GgufTensor* t = file_.find_tensor(name);
    if (!t) fail("required tensor '" + name + "' is missing");
    return t;
}

const float* GgufWeights::as_f32(const GgufTensor& t) {
    // Copied even when stored as f32: these small tensors sit between the large
    // matrices in the file, and reading them in place at run time would map whole
    // page-cache folios of the (already repacked and released) weights around them.
    if (const float* cached = owned_.find(t.name)) return cached;
    if (!weights_type_supported(t.type) || t.ne[0] <= 0) {
        fail("tensor '" + t.name + "' has unsupported type " + dtype_name(t.type));
        return nullptr;
    }
    const uint8_t* src = data_of(t);
    if (!src) return nullptr;
    const int64_t rows = t.n_elements() / t.ne[0];
    std::vector<float> out(static_cast<size_t>(t.n_elements()));
    for (int64_t r = 0; r < rows; ++r) weights_row_to_f32(src, t.type, t.ne[0], r, out.data() + r * t.ne[0]);
    return owned_.add(t.name, std::move(out));
}

const uint8_t* GgufWeights::data_of(const GgufTensor& t) {
    const uint8_t* data = owned_.aligned_data(t);
    if (!data) fail("cannot allocate " + std::to_string(t.nbytes) + " bytes to align tensor '" + t.name + "'");
    return data;
}

static std::string ne_string(const GgufTensor& t) {
    std::string s = "[";
    for (int d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
    return s + "]";
}

ValueId GgufWeights::matrix_constant(const std::string& name, const GgufTensor& t, int64_t rows, int64_t cols) {
    if (!weights_type_supported(t.type)) {
        fail("tensor '" + name + "' has type " + dtype_name(t.type) + ", which glimpse cannot compute with");
        return kNoValue;
    }
    const uint8_t* data = data_of(t);
    return data ? graph_.constant(name, t.type, Shape::of({rows, cols}), data) : kNoValue;
}

ValueId GgufWeights::matrix(const std::string& name, int64_t rows, int64_t cols) {
    const GgufTensor* t = find(name);
    if (!t) return kNoValue;
    if (t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows) {
        fail("tensor '" + name + "' has shape " + ne_string(*t) + ", expected [" + std::to_string(cols) + ", " +
             std::to_string(rows) + "]");
        return kNoValue;
    }
    // Under fast, every matrix glimpse quantize --type q8_0 would convert (f16, bf16, f32 rows a
    // multiple of 32 long; never an already quantized one) is converted; the rest stay as stored.
    if (numerics_ == Numerics::fast && t->type != DType::q8_0 &&
        check_tensor_conversion(t->type, DType::q8_0, cols, Requantize::refuse).is_ok()) {
        const uint8_t* src = data_of(*t);
        if (!src) return kNoValue;
        Result<const uint8_t*> q = owned_.requantized_q8_0(*t, src);
        if (!q.is_ok()) {
            fail(q.status().message());
            return kNoValue;
        }
        // The stored rows are not read again unless the Q8_0 copy has to be made again.
        file_.mapping()->release_resident_range(src, static_cast<size_t>(t->nbytes));
        return graph_.constant(name, DType::q8_0, Shape::of({rows, cols}), *q);
    }
    return matrix_constant(name, *t, rows, cols);
}

ValueId GgufWeights::matrix_flat(const std::string& name, int64_t rows, int64_t cols) {
    const GgufTensor* t = find(name);
    if (!t) return kNoValue;
    if (t->n_elements() != rows * cols || t->ne[0] > cols || cols % t->ne[0] != 0) {
        fail("tensor '" + name + "' has shape " + ne_string(*t) + ", expected " + std::to_string(rows) + " rows of " +
             std::to_string(cols));
        return kNoValue;
    }
    return matrix_constant(name, *t, rows, cols);
}

ValueId GgufWeights::matrix_flat_f16_rounded(const std::string& name, int64_t rows, int64_t cols) {
    ValueId plain = matrix_flat(name, rows, cols);
    if (plain == kNoValue) return kNoValue;
    const GgufTensor& t = *file_.find_tensor(name);
    if (t.type == DType::f16) return plain;  // already f16 values
    const std::string key = name + "#f16";
    const float* data = owned_.find(key);
    if (!data) {
        std::vector<float> out(static_cast<size_t>(rows * cols));
        const uint8_t* src = data_of(t);
        if (!src) return kNoValue;
        for (int64_t r = 0; r < rows; ++r) weights_row_to_f32(src, t.type, cols, r, out.data() + r * cols);
        for (float& v : out) v = round_to_f16(v);
        data = owned_.add(key, std::move(out));
    }
    return graph_.constant(key, DType::f32, Shape::of({rows, cols}), data);
}

ValueId GgufWeights::vector(const std::string& name, int64_t n) {
    const GgufTensor* t = find(name);
    if (!t) return kNoValue;
    if (t->n_elements() != n || t->ne[0] != n) {
        fail("tensor '" + name + "' has shape " + ne_string(*t) + ", expected [" + std::to_string(n) + "]");
        return kNoValue;
    }
    const float* data = as_f32(*t);
    return data ? graph_.constant(name, DType::f32, Shape::of({n}), data) : kNoValue;
}

ValueId GgufWeights::f32_matrix(const std::string& name, int64_t rows, int64_t cols) {
    const GgufTensor* t = find(name);
    if (!t) return kNoValue;
    if (t->ne[0] != cols || t->n_elements() != rows * cols) {
        fail("tensor '" + name + "' has shape " + ne_string(*t) + ", expected [" + std::to_string(cols) + ", " +
             std::to_string(rows) + "]");
        return kNoValue;
    }
    const float* data = as_f32(*t);
    return data ? graph_.constant(name, DType::f32, Shape::of({rows, cols}), data) : kNoValue;
}

ValueId GgufWeights::optional_vector(const std::string& name, int64_t n) {
    return has(name) ? vector(name, n) : kNoValue;
}

ValueId GgufWeights::optional_matrix(const std::string& name, int64_t rows, int64_t cols) {
    return has(name) ? matrix(name, rows, cols) : kNoValue;
}

}  // namespace glimpse
