// GGUF reader (versions 2 and 3, little-endian).
//
// The file is memory-mapped; metadata strings and tensor data point into the
// mapping. Every count, length, offset and size is checked against the bytes
// that are really there before it is used, so a truncated or hostile file
// yields a Status naming the file, the problem and the byte offset — never a
// crash or an unbounded allocation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/mapped_file.h"
#include "runtime/status.h"

namespace glimpse {

enum class GgufType : uint32_t {
    u8 = 0,
    i8 = 1,
    u16 = 2,
    i16 = 3,
    u32 = 4,
    i32 = 5,
    f32 = 6,
    boolean = 7,
    string = 8,
    array = 9,
    u64 = 10,
    i64 = 11,
    f64 = 12,
};

const char* gguf_type_name(GgufType type);

// One metadata value. Scalars are decoded; a string points into the mapping;
// an array of numbers keeps a pointer to its packed little-endian elements; an
// array of strings or of arrays keeps decoded elements.
struct GgufValue {
    GgufType type = GgufType::u8;
    uint64_t as_u64 = 0;  // u8/u16/u32/u64/bool (zero-extended)
    int64_t as_i64 = 0;   // i8/i16/i32/i64 (sign-extended); also the unsigned value when it fits
    double as_f64 = 0;    // f32/f64
    std::string_view as_string;

    // arrays
    GgufType elem_type = GgufType::u8;
    uint64_t count = 0;
    const uint8_t* packed = nullptr;       // numeric elements, count * size of elem_type bytes
    std::vector<std::string_view> strings; // elem_type == string
    std::vector<GgufValue> arrays;         // elem_type == array (nested)

    bool is_integer() const;
    bool is_float() const { return type == GgufType::f32 || type == GgufType::f64; }
};

struct GgufTensor {
    std::string name;
    DType type = DType::f32;
    int n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous (innermost) dimension, as in ggml
    uint64_t offset = 0;           // relative to the data section
    uint64_t nbytes = 0;
    const uint8_t* data = nullptr; // into the mapping

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
public:
    static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
    static Result<std::unique_ptr<GgufFile>> parse(std::shared_ptr<MappedFile> file);

    const std::string& path() const { return file_->name(); }
    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }
    uint64_t file_size() const { return file_->size(); }

    // Metadata, in file order.
    const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
    const GgufValue* find(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }

    // Typed getters. They accept any integer type for integers (range-checked)
    // and f32 or f64 for floats; a missing key or a wrong type is an error that
    // names the file and the key.
    Result<int64_t> get_int(std::string_view key) const;
    Result<double> get_float(std::string_view key) const;
    Result<bool> get_bool(std::string_view key) const;
    Result<std::string_view> get_string(std::string_view key) const;
    Result<std::vector<std::string_view>> get_string_array(std::string_view key) const;
    Result<std::vector<int64_t>> get_int_array(std::string_view key) const;
    Result<std::vector<double>> get_float_array(std::string_view key) const;
    // Same, with a default when the key is absent (a present key of the wrong type is still an error).
    Result<int64_t> get_int_or(std::string_view key, int64_t fallback) const;
    Result<double> get_float_or(std::string_view key, double fallback) const;
    Result<bool> get_bool_or(std::string_view key, bool fallback) const;
    Result<std::string_view> get_string_or(std::string_view key, std::string_view fallback) const;

    const std::vector<GgufTensor>& tensors() const { return tensors_; }
    const GgufTensor* find_tensor(std::string_view name) const;
    std::shared_ptr<MappedFile> mapping() const { return file_; }

private:
    GgufFile() = default;
    Status type_error(std::string_view key, const GgufValue& v, const char* expected) const;

    std::shared_ptr<MappedFile> file_;
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::unordered_map<std::string, size_t> kv_index_;
    std::vector<GgufTensor> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
};

// Numeric element `i` of a packed numeric array, converted.
int64_t gguf_array_int(const GgufValue& array, uint64_t i);
double gguf_array_float(const GgufValue& array, uint64_t i);
size_t gguf_type_size(GgufType type);  // 0 for string/array

}  // namespace glimpse
