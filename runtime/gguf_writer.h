// GGUF writer (version 3). Used by glimpse-mkmodel, glimpse quantize and tests that
// build hostile files. Tensor data is written in insertion order, each tensor
// padded to the alignment, exactly as llama.cpp lays files out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/gguf.h"
#include "runtime/status.h"

namespace glimpse {

class GgufWriter {
public:
    explicit GgufWriter(uint32_t alignment = 32) : alignment_(alignment) {}

    void set_u32(const std::string& key, uint32_t v);
    void set_i32(const std::string& key, int32_t v);
    void set_u64(const std::string& key, uint64_t v);
    void set_f32(const std::string& key, float v);
    void set_bool(const std::string& key, bool v);
    void set_string(const std::string& key, const std::string& v);
    void set_string_array(const std::string& key, const std::vector<std::string>& v);
    void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
    void set_f32_array(const std::string& key, const std::vector<float>& v);
    // Any value, encoded as given: `encoded` is the value's bytes without key and type.
    void set_raw(const std::string& key, GgufType type, std::vector<uint8_t> encoded);

    // ne[0] is the contiguous dimension; `data` holds dtype_row_bytes(type, ne[0]) * ne[1] * ... bytes.
    Status add_tensor(const std::string& name, DType type, std::vector<int64_t> ne, std::vector<uint8_t> data);

    // Serialized file. `section_ends` (optional) receives the byte offsets where the
    // header, each metadata pair, each tensor info and the padding end — the places
    // where tests truncate a file.
    std::vector<uint8_t> serialize(std::vector<uint64_t>* section_ends = nullptr) const;
    Status write(const std::string& path) const;

private:
    struct Kv {
        std::string key;
        GgufType type;
        std::vector<uint8_t> encoded;
    };
    struct Tensor {
        std::string name;
        DType type;
        std::vector<int64_t> ne;
        std::vector<uint8_t> data;
    };
    void set(const std::string& key, GgufType type, std::vector<uint8_t> encoded);

    uint32_t alignment_;
    std::vector<Kv> kv_;
    std::vector<Tensor> tensors_;
};

}  // namespace glimpse
