#include "models/gguf_weights.h"

#include <cstring>

#include "ops/weights.h"
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
