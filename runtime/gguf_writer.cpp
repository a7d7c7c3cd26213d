#include "runtime/gguf_writer.h"

#include <cstdio>
#include <cstring>
#include <type_traits>

namespace glimpse {
namespace {

template <class T>
void put(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
}

// A GGUF array value: element type, count, then the elements (strings length-prefixed).
template <class T>
std::vector<uint8_t> encode_array(GgufType element_type, const std::vector<T>& items) {
    std::vector<uint8_t> e;
    put<uint32_t>(e, static_cast<uint32_t>(element_type));
    put<uint64_t>(e, items.size());
    for (const T& x : items) {
        if constexpr (std::is_same_v<T, std::string>) put_string(e, x);
        else put(e, x);
    }
    return e;
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufType type, std::vector<uint8_t> encoded) {
    for (Kv& kv : kv_) {
        if (kv.key == key) {
            kv.type = type;
            kv.encoded = std::move(encoded);
            return;
        }
    }
    kv_.push_back({key, type, std::move(encoded)});
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) { std::vector<uint8_t> e; put(e, v); set(key, GgufType::u32, e); }
void GgufWriter::set_i32(const std::string& key, int32_t v) { std::vector<uint8_t> e; put(e, v); set(key, GgufType::i32, e); }
void GgufWriter::set_u64(const std::string& key, uint64_t v) { std::vector<uint8_t> e; put(e, v); set(key, GgufType::u64, e); }
void GgufWriter::set_f32(const std::string& key, float v) { std::vector<uint8_t> e; put(e, v); set(key, GgufType::f32, e); }
void GgufWriter::set_bool(const std::string& key, bool v) { set(key, GgufType::boolean, {static_cast<uint8_t>(v ? 1 : 0)}); }
void GgufWriter::set_string(const std::string& key, const std::string& v) {
    std::vector<uint8_t> e;
    put_string(e, v);
    set(key, GgufType::string, e);
}
void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
    set(key, GgufType::array, encode_array(GgufType::string, v));
}
void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
    set(key, GgufType::array, encode_array(GgufType::i32, v));
}
void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
    set(key, GgufType::array, encode_array(GgufType::f32, v));
}
void GgufWriter::set_raw(const std::string& key, GgufType type, std::vector<uint8_t> encoded) {
    set(key, type, std::move(encoded));
}

Status GgufWriter::add_tensor(const std::string& name, DType type, std::vector<int64_t> ne, std::vector<uint8_t> data) {
    GLIMPSE_CHECK_OR_RETURN(!ne.empty() && ne.size() <= 4, invalid_argument, "tensor '%s': %zu dimensions",
                            name.c_str(), ne.size());
    const DTypeInfo& info = dtype_info(type);
    GLIMPSE_CHECK_OR_RETURN(ne[0] % info.block_size == 0, invalid_argument,
                            "tensor '%s': row length %lld is not a multiple of the %s block size %lld", name.c_str(),
                            static_cast<long long>(ne[0]), info.name, static_cast<long long>(info.block_size));
    int64_t bytes = dtype_row_bytes(type, ne[0]);
    for (size_t d = 1; d < ne.size(); ++d) bytes *= ne[d];
    GLIMPSE_CHECK_OR_RETURN(static_cast<int64_t>(data.size()) == bytes, invalid_argument,
                            "tensor '%s': %zu data bytes given, %lld expected", name.c_str(), data.size(),
                            static_cast<long long>(bytes));
    for (const Tensor& t : tensors_) {
        GLIMPSE_CHECK_OR_RETURN(t.name != name, invalid_argument, "duplicate tensor '%s'", name.c_str());
    }
    tensors_.push_back({name, type, std::move(ne), std::move(data)});
    return Status::ok();
}

std::vector<uint8_t> GgufWriter::serialize(std::vector<uint64_t>* section_ends) const {
    auto mark = [&](const std::vector<uint8_t>& out) {
        if (section_ends) section_ends->push_back(out.size());
    };
    auto align = [&](uint64_t x) { return (x + alignment_ - 1) / alignment_ * alignment_; };

    std::vector<uint8_t> out;
    put<uint32_t>(out, 0x46554747);
    put<uint32_t>(out, 3);
    put<uint64_t>(out, tensors_.size());
    bool has_alignment = false;
    for (const Kv& kv : kv_) has_alignment |= kv.key == "general.alignment";
    put<uint64_t>(out, kv_.size() + (alignment_ != 32 && !has_alignment ? 1 : 0));
    mark(out);
    for (const Kv& kv : kv_) {
        put_string(out, kv.key);
        put<uint32_t>(out, static_cast<uint32_t>(kv.type));
        out.insert(out.end(), kv.encoded.begin(), kv.encoded.end());
        mark(out);
    }
    if (alignment_ != 32 && !has_alignment) {
        put_string(out, "general.alignment");
        put<uint32_t>(out, static_cast<uint32_t>(GgufType::u32));
        put<uint32_t>(out, alignment_);
        mark(out);
    }
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
        put_string(out, t.name);
        put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
        for (int64_t n : t.ne) put<uint64_t>(out, static_cast<uint64_t>(n));
        put<uint32_t>(out, static_cast<uint32_t>(t.type));
        put<uint64_t>(out, offset);
        offset = align(offset + t.data.size());
        mark(out);
    }
    out.resize(align(out.size()), 0);
    mark(out);
    for (const Tensor& t : tensors_) {
        out.insert(out.end(), t.data.begin(), t.data.end());
        out.resize(align(out.size()), 0);
        mark(out);
    }
    return out;
}

Status GgufWriter::write(const std::string& path) const {
    std::vector<uint8_t> bytes = serialize();
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return Status::error(StatusCode::io_error, "%s: cannot open for writing", path.c_str());
    size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
    int close_rc = std::fclose(f);
    GLIMPSE_CHECK_OR_RETURN(written == bytes.size() && close_rc == 0, io_error, "%s: write failed (%zu of %zu bytes)",
                            path.c_str(), written, bytes.size());
    return Status::ok();
}

}  // namespace glimpse
