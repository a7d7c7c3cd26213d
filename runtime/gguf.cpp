#include "runtime/gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace glimpse {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr int kMaxArrayNesting = 8;
constexpr uint64_t kMaxKeyLength = 1u << 16;
constexpr uint64_t kMaxTensorNameLength = 1u << 12;
constexpr int kMaxDims = 4;

// Smallest encodings, used to reject counts that cannot fit in the bytes left.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // key length, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // name length, n_dims, 1 dim, type, offset

// Bounds-checked little-endian cursor over the mapping. Every read reports the
// offset where it failed.
class Cursor {
public:
    Cursor(const uint8_t* data, uint64_t size, const std::string& name) : data_(data), size_(size), name_(name) {}

    uint64_t offset() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }

    Status fail(const char* what) const {
        return Status::error(StatusCode::parse_error, "%s: %s at offset %llu (file size %llu)", name_.c_str(), what,
                             static_cast<unsigned long long>(pos_), static_cast<unsigned long long>(size_));
    }
    Status truncated(const char* what, uint64_t need) const {
        return Status::error(StatusCode::parse_error,
                             "%s: truncated: %s needs %llu bytes at offset %llu but only %llu remain", name_.c_str(),
                             what, static_cast<unsigned long long>(need), static_cast<unsigned long long>(pos_),
                             static_cast<unsigned long long>(remaining()));
    }

    Status read_bytes(void* out, uint64_t n, const char* what) {
        if (n > remaining()) return truncated(what, n);
        std::memcpy(out, data_ + pos_, n);
        pos_ += n;
        return Status::ok();
    }
    template <class T>
    Status read(T* out, const char* what) {
        return read_bytes(out, sizeof(T), what);
    }
    Status read_string(std::string_view* out, uint64_t max_len, const char* what) {
        uint64_t len = 0;
        GLIMPSE_RETURN_IF_ERROR(read(&len, what));
        if (len > remaining()) return truncated(what, len);
        if (len > max_len) {
            pos_ -= 8;
            return fail((std::string(what) + ": length " + std::to_string(len) + " exceeds the limit " +
                         std::to_string(max_len))
                            .c_str());
        }
        *out = std::string_view(reinterpret_cast<const char*>(data_ + pos_), len);
        pos_ += len;
        return Status::ok();
    }
    Status skip(uint64_t n, const char* what) {
        if (n > remaining()) return truncated(what, n);
        pos_ += n;
        return Status::ok();
    }
    const uint8_t* here() const { return data_ + pos_; }

private:
    const uint8_t* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
    const std::string& name_;
};

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::f64); }

Status read_value(Cursor& cur, GgufType type, GgufValue* out, int depth);

Status read_array(Cursor& cur, GgufValue* out, int depth) {
    if (depth >= kMaxArrayNesting) return cur.fail("arrays nested deeper than 8 levels");
    uint32_t elem = 0;
    GLIMPSE_RETURN_IF_ERROR(cur.read(&elem, "array element type"));
    if (!valid_type(elem)) {
        return cur.fail(("unknown array element type " + std::to_string(elem)).c_str());
    }
    out->elem_type = static_cast<GgufType>(elem);
    GLIMPSE_RETURN_IF_ERROR(cur.read(&out->count, "array length"));
    size_t elem_size = gguf_type_size(out->elem_type);
    // Every element needs at least 1 byte (8 for strings, 12 for arrays): reject
    // counts the remaining bytes cannot hold before allocating anything.
    uint64_t min_elem = elem_size ? elem_size : (out->elem_type == GgufType::string ? 8 : 12);
    if (out->count > cur.remaining() / min_elem) {
        return cur.fail(("array length " + std::to_string(out->count) + " cannot fit in the " +
                         std::to_string(cur.remaining()) + " bytes left")
                            .c_str());
    }
    if (elem_size) {
        out->packed = cur.here();
        return cur.skip(out->count * elem_size, "array data");
    }
    if (out->elem_type == GgufType::string) {
        out->strings.resize(out->count);
        for (uint64_t i = 0; i < out->count; ++i) {
            GLIMPSE_RETURN_IF_ERROR(cur.read_string(&out->strings[i], std::numeric_limits<uint64_t>::max(),
                                                    "array string"));
        }
        return Status::ok();
    }
    out->arrays.resize(out->count);
    for (uint64_t i = 0; i < out->count; ++i) {
        GLIMPSE_RETURN_IF_ERROR(read_value(cur, GgufType::array, &out->arrays[i], depth + 1));
    }
    return Status::ok();
}

Status read_value(Cursor& cur, GgufType type, GgufValue* out, int depth) {
    out->type = type;
    switch (type) {
        case GgufType::u8: { uint8_t v = 0; GLIMPSE_RETURN_IF_ERROR(cur.read(&v, "u8 value")); out->as_u64 = v; out->as_i64 = v; break; }
        case GgufType::i8: { int8_t v = 0; GLIMPSE_RETURN_IF_ERROR(cur.read(&v, "i8 value")); out->as_i64 = v; break; }
        case GgufType::u16: { uint16_t v = 0; GLIMPSE_RETURN_IF_ERROR(cur.read(&v, "u16 value")); out->as_u64 = v; out->as_i64 = v; break; }
        case GgufType::i16: { int16_t v = 0; GLIMPSE_RETURN_IF_ERROR(cur.read(&v, "i16 value")); out->as_i64 = v; break; }
        case GgufType::u32: { uint32_t v = 0; GLIMPSE_RETURN_IF_ERROR(cur.read(&v, "u32 value")); out->as_u64 = v; out->as_i64 = v; break; }
        case GgufType::i32: { int32_t v = 0; GLIMPSE_RETURN_IF_ERROR(cur.read(&v, "i32 value")); out->as_i64 = v; break; }
        case GgufType::u64: {
            uint64_t v = 0;
            GLIMPSE_RETURN_IF_ERROR(cur.read(&v, "u64 value"));
            out->as_u64 = v;
            out->as_i64 = v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? -1 : static_cast<int64_t>(v);
            break;
        }
        case GgufType::i64: { int64_t v = 0; GLIMPSE_RETURN_IF_ERROR(cur.read(&v, "i64 value")); out->as_i64 = v; break; }
        case GgufType::f32: { float v = 0; GLIMPSE_RETURN_IF_ERROR(cur.read(&v, "f32 value")); out->as_f64 = v; break; }
        case GgufType::f64: { double v = 0; GLIMPSE_RETURN_IF_ERROR(cur.read(&v, "f64 value")); out->as_f64 = v; break; }
        case GgufType::boolean: {
            uint8_t v = 0;
            GLIMPSE_RETURN_IF_ERROR(cur.read(&v, "bool value"));
            if (v > 1) return cur.fail(("bool value " + std::to_string(v) + " is neither 0 nor 1").c_str());
            out->as_u64 = v;
            out->as_i64 = v;
            break;
        }
        case GgufType::string:
            return cur.read_string(&out->as_string, std::numeric_limits<uint64_t>::max(), "string value");
        case GgufType::array:
            return read_array(cur, out, depth);
    }
    return Status::ok();
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

const char* gguf_type_name(GgufType type) {
    switch (type) {
        case GgufType::u8: return "u8";
        case GgufType::i8: return "i8";
        case GgufType::u16: return "u16";
        case GgufType::i16: return "i16";
        case GgufType::u32: return "u32";
        case GgufType::i32: return "i32";
        case GgufType::f32: return "f32";
        case GgufType::boolean: return "bool";
        case GgufType::string: return "string";
        case GgufType::array: return "array";
        case GgufType::u64: return "u64";
        case GgufType::i64: return "i64";
        case GgufType::f64: return "f64";
    }
    return "unknown";
}

size_t gguf_type_size(GgufType type) {
    switch (type) {
        case GgufType::u8: case GgufType::i8: case GgufType::boolean: return 1;
        case GgufType::u16: case GgufType::i16: return 2;
        case GgufType::u32: case GgufType::i32: case GgufType::f32: return 4;
        case GgufType::u64: case GgufType::i64: case GgufType::f64: return 8;
        case GgufType::string: case GgufType::array: return 0;
    }
    return 0;
}

bool GgufValue::is_integer() const {
    switch (type) {
        case GgufType::u8: case GgufType::i8: case GgufType::u16: case GgufType::i16:
        case GgufType::u32: case GgufType::i32: case GgufType::u64: case GgufType::i64:
            return true;
        default:
            return false;
    }
}

// gguf_array_int's conversion of a float element: truncated toward zero, saturated to the
// int64 range, NaN -> 0. (A plain cast of a float outside that range is undefined behaviour.)
static int64_t saturating_int(double v) {
    constexpr double kTwo63 = 9223372036854775808.0;  // 2^63, exact in a double
    if (std::isnan(v)) return 0;
    if (v >= kTwo63) return std::numeric_limits<int64_t>::max();
    if (v < -kTwo63) return std::numeric_limits<int64_t>::min();
    return static_cast<int64_t>(v);
}

int64_t gguf_array_int(const GgufValue& a, uint64_t i) {
    const uint8_t* p = a.packed + i * gguf_type_size(a.elem_type);
    switch (a.elem_type) {
        case GgufType::u8: case GgufType::boolean: return *p;
        case GgufType::i8: return static_cast<int8_t>(*p);
        case GgufType::u16: { uint16_t v; std::memcpy(&v, p, 2); return v; }
        case GgufType::i16: { int16_t v; std::memcpy(&v, p, 2); return v; }
        case GgufType::u32: { uint32_t v; std::memcpy(&v, p, 4); return v; }
        case GgufType::i32: { int32_t v; std::memcpy(&v, p, 4); return v; }
        case GgufType::u64: { uint64_t v; std::memcpy(&v, p, 8); return static_cast<int64_t>(v); }
        case GgufType::i64: { int64_t v; std::memcpy(&v, p, 8); return v; }
        case GgufType::f32: { float v; std::memcpy(&v, p, 4); return saturating_int(v); }
        case GgufType::f64: { double v; std::memcpy(&v, p, 8); return saturating_int(v); }
        default: return 0;
    }
}

double gguf_array_float(const GgufValue& a, uint64_t i) {
    const uint8_t* p = a.packed + i * gguf_type_size(a.elem_type);
    if (a.elem_type == GgufType::f32) { float v; std::memcpy(&v, p, 4); return v; }
    if (a.elem_type == GgufType::f64) { double v; std::memcpy(&v, p, 8); return v; }
    return static_cast<double>(gguf_array_int(a, i));
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
    GLIMPSE_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
    return parse(std::move(file));
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(std::shared_ptr<MappedFile> file) {
    std::unique_ptr<GgufFile> g(new GgufFile());
    g->file_ = file;
    const std::string& name = file->name();
    Cursor cur(file->data(), file->size(), name);

    uint32_t magic = 0;
    GLIMPSE_RETURN_IF_ERROR(cur.read(&magic, "magic"));
    if (magic != kGgufMagic) {
        char shown[5] = {0, 0, 0, 0, 0};
        std::memcpy(shown, &magic, 4);
        for (char& c : shown) if (c && (c < 32 || c > 126)) c = '?';
        return Status::error(StatusCode::parse_error, "%s: not a GGUF file (magic \"%s\", expected \"GGUF\")",
                             name.c_str(), shown);
    }
    GLIMPSE_RETURN_IF_ERROR(cur.read(&g->version_, "version"));
    if (g->version_ == 1) {
        return Status::error(StatusCode::unsupported, "%s: GGUF version 1 is not supported (only 2 and 3)",
                             name.c_str());
    }
    if (g->version_ != 2 && g->version_ != 3) {
        // A byte-swapped small version means a big-endian file.
        uint32_t swapped = __builtin_bswap32(g->version_);
        if (swapped >= 1 && swapped <= 3) {
            return Status::error(StatusCode::unsupported, "%s: big-endian GGUF files are not supported", name.c_str());
        }
        return Status::error(StatusCode::unsupported, "%s: unknown GGUF version %u (supported: 2, 3)", name.c_str(),
                             g->version_);
    }
    uint64_t n_tensors = 0, n_kv = 0;
    GLIMPSE_RETURN_IF_ERROR(cur.read(&n_tensors, "tensor count"));
    GLIMPSE_RETURN_IF_ERROR(cur.read(&n_kv, "metadata count"));
    if (n_kv > cur.remaining() / kMinKvBytes) {
        return Status::error(StatusCode::parse_error,
                             "%s: metadata count %llu is impossible: only %llu bytes follow the header", name.c_str(),
                             static_cast<unsigned long long>(n_kv), static_cast<unsigned long long>(cur.remaining()));
    }

    g->kv_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
        const uint64_t kv_offset = cur.offset();
        std::string_view key;
        GLIMPSE_RETURN_IF_ERROR(cur.read_string(&key, kMaxKeyLength, "metadata key"));
        uint32_t type = 0;
        GLIMPSE_RETURN_IF_ERROR(cur.read(&type, "metadata value type"));
        if (!valid_type(type)) {
            return Status::error(StatusCode::parse_error, "%s: metadata key '%.*s' at offset %llu has unknown type %u",
                                 name.c_str(), static_cast<int>(key.size()), key.data(),
                                 static_cast<unsigned long long>(kv_offset), type);
        }
        GgufValue value;
        Status s = read_value(cur, static_cast<GgufType>(type), &value, 0);
        if (!s.is_ok()) {
            return s.with_context("metadata key '" + std::string(key) + "'");
        }
        std::string key_str(key);
        if (!g->kv_index_.emplace(key_str, g->kv_.size()).second) {
            return Status::error(StatusCode::parse_error, "%s: duplicate metadata key '%s' at offset %llu",
                                 name.c_str(), key_str.c_str(), static_cast<unsigned long long>(kv_offset));
        }
        g->kv_.emplace_back(std::move(key_str), std::move(value));
    }

    if (const GgufValue* a = g->find("general.alignment")) {
        if (a->type != GgufType::u32) {
            return Status::error(StatusCode::parse_error, "%s: general.alignment has type %s, expected u32",
                                 name.c_str(), gguf_type_name(a->type));
        }
        if (a->as_u64 == 0 || (a->as_u64 & (a->as_u64 - 1)) != 0) {
            return Status::error(StatusCode::parse_error, "%s: general.alignment %llu is not a power of two",
                                 name.c_str(), static_cast<unsigned long long>(a->as_u64));
        }
        g->alignment_ = static_cast<uint32_t>(a->as_u64);
    }

    if (n_tensors > cur.remaining() / kMinTensorInfoBytes) {
        return Status::error(StatusCode::parse_error,
                             "%s: tensor count %llu is impossible: only %llu bytes remain at offset %llu", name.c_str(),
                             static_cast<unsigned long long>(n_tensors),
                             static_cast<unsigned long long>(cur.remaining()),
                             static_cast<unsigned long long>(cur.offset()));
    }
    g->tensors_.resize(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
        GgufTensor& t = g->tensors_[i];
        const uint64_t info_offset = cur.offset();
        std::string_view tname;
        GLIMPSE_RETURN_IF_ERROR(cur.read_string(&tname, kMaxTensorNameLength, "tensor name"));
        t.name = std::string(tname);
        auto tensor_error = [&](const std::string& what) {
            return Status::error(StatusCode::parse_error, "%s: tensor '%s' (info at offset %llu): %s", name.c_str(),
                                 t.name.c_str(), static_cast<unsigned long long>(info_offset), what.c_str());
        };
        uint32_t n_dims = 0;
        GLIMPSE_RETURN_IF_ERROR(cur.read(&n_dims, "tensor dimension count"));
        if (n_dims < 1 || n_dims > kMaxDims) {
            return tensor_error("dimension count " + std::to_string(n_dims) + " is not in [1, 4]");
        }
        t.n_dims = static_cast<int>(n_dims);
        for (uint32_t d = 0; d < n_dims; ++d) {
            uint64_t ne = 0;
            GLIMPSE_RETURN_IF_ERROR(cur.read(&ne, "tensor dimension"));
            if (ne == 0 || ne > (1ull << 40)) {
                return tensor_error("dimension " + std::to_string(d) + " has size " + std::to_string(ne));
            }
            t.ne[d] = static_cast<int64_t>(ne);
        }
        uint32_t type = 0;
        GLIMPSE_RETURN_IF_ERROR(cur.read(&type, "tensor type"));
        const DTypeInfo* info = dtype_info(type);
        if (!info) return tensor_error("unknown or unsupported tensor type id " + std::to_string(type));
        t.type = static_cast<DType>(type);
        GLIMPSE_RETURN_IF_ERROR(cur.read(&t.offset, "tensor data offset"));
        if (t.ne[0] % info->block_size != 0) {
            return tensor_error("row length " + std::to_string(t.ne[0]) + " is not a multiple of the " + info->name +
                                " block size " + std::to_string(info->block_size));
        }
        // Size with overflow checks: every dimension is <= 2^40, so check the product step by step.
        unsigned __int128 bytes = static_cast<unsigned __int128>(t.ne[0] / info->block_size) * info->block_bytes;
        for (int d = 1; d < 4 && bytes <= file->size(); ++d) bytes *= static_cast<uint64_t>(t.ne[d]);
        if (bytes > file->size()) {
            return tensor_error("its data needs more bytes than the whole file has (" + std::to_string(file->size()) +
                                ")");
        }
        t.nbytes = static_cast<uint64_t>(bytes);
        if (t.offset % g->alignment_ != 0) {
            return tensor_error("data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                                std::to_string(g->alignment_));
        }
        if (!g->tensor_index_.emplace(t.name, i).second) return tensor_error("duplicate tensor name");
    }

    g->data_offset_ = align_up(cur.offset(), g->alignment_);
    if (n_tensors > 0 && g->data_offset_ > file->size()) {
        return Status::error(StatusCode::parse_error, "%s: truncated: data section would start at %llu, past the end "
                             "of the file (%zu bytes)", name.c_str(),
                             static_cast<unsigned long long>(g->data_offset_), file->size());
    }
    const uint64_t data_size = file->size() - std::min<uint64_t>(g->data_offset_, file->size());

    // Every tensor lies inside the data section, and no two overlap.
    std::vector<size_t> order(n_tensors);
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return g->tensors_[a].offset < g->tensors_[b].offset; });
    uint64_t prev_end = 0;
    const GgufTensor* prev = nullptr;
    for (size_t idx : order) {
        GgufTensor& t = g->tensors_[idx];
        if (t.offset > data_size || t.nbytes > data_size - t.offset) {
            return Status::error(StatusCode::parse_error,
                                 "%s: tensor '%s': data [%llu, %llu) runs past the end of the data section (%llu "
                                 "bytes from offset %llu); the file is truncated or corrupt",
                                 name.c_str(), t.name.c_str(), static_cast<unsigned long long>(t.offset),
                                 static_cast<unsigned long long>(t.offset + t.nbytes),
                                 static_cast<unsigned long long>(data_size),
                                 static_cast<unsigned long long>(g->data_offset_));
        }
        if (prev && t.offset < prev_end) {
            return Status::error(StatusCode::parse_error, "%s: tensors '%s' and '%s' overlap in the data section",
                                 name.c_str(), prev->name.c_str(), t.name.c_str());
        }
        t.data = file->data() + g->data_offset_ + t.offset;
        prev_end = t.offset + t.nbytes;
        prev = &t;
    }
    return g;
}

const GgufValue* GgufFile::find(std::string_view key) const {
    auto it = kv_index_.find(std::string(key));
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::find_tensor(std::string_view tname) const {
    auto it = tensor_index_.find(std::string(tname));
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Status GgufFile::type_error(std::string_view key, const GgufValue& v, const char* expected) const {
    std::string got = gguf_type_name(v.type);
    if (v.type == GgufType::array) got += std::string(" of ") + gguf_type_name(v.elem_type);
    return Status::error(StatusCode::parse_error, "%s: metadata key '%.*s' has type %s, expected %s", path().c_str(),
                         static_cast<int>(key.size()), key.data(), got.c_str(), expected);
}

static Status missing_key(const std::string& path, std::string_view key) {
    return Status::error(StatusCode::parse_error, "%s: required metadata key '%.*s' is missing", path.c_str(),
                         static_cast<int>(key.size()), key.data());
}

Result<int64_t> GgufFile::get_int(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return missing_key(path(), key);
    if (!v->is_integer()) return type_error(key, *v, "an integer");
    if (v->type == GgufType::u64 && v->as_u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Status::error(StatusCode::out_of_range, "%s: metadata key '%.*s' value %llu is out of range",
                             path().c_str(), static_cast<int>(key.size()), key.data(),
                             static_cast<unsigned long long>(v->as_u64));
    }
    return v->as_i64;
}

Result<double> GgufFile::get_float(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return missing_key(path(), key);
    if (!v->is_float()) return type_error(key, *v, "f32 or f64");
    return v->as_f64;
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return missing_key(path(), key);
    if (v->type != GgufType::boolean) return type_error(key, *v, "bool");
    return v->as_u64 != 0;
}

Result<std::string_view> GgufFile::get_string(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return missing_key(path(), key);
    if (v->type != GgufType::string) return type_error(key, *v, "string");
    return v->as_string;
}

Result<std::vector<std::string_view>> GgufFile::get_string_array(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return missing_key(path(), key);
    if (v->type != GgufType::array || v->elem_type != GgufType::string) return type_error(key, *v, "array of string");
    return v->strings;
}

Result<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return missing_key(path(), key);
    if (v->type != GgufType::array || v->packed == nullptr || v->elem_type == GgufType::f32 ||
        v->elem_type == GgufType::f64) {
        return type_error(key, *v, "array of integers");
    }
    std::vector<int64_t> out(v->count);
    for (uint64_t i = 0; i < v->count; ++i) out[i] = gguf_array_int(*v, i);
    return out;
}

Result<std::vector<double>> GgufFile::get_float_array(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return missing_key(path(), key);
    if (v->type != GgufType::array || v->packed == nullptr || v->elem_type == GgufType::boolean) {
        return type_error(key, *v, "array of numbers");
    }
    std::vector<double> out(v->count);
    for (uint64_t i = 0; i < v->count; ++i) out[i] = gguf_array_float(*v, i);
    return out;
}

Result<int64_t> GgufFile::get_int_or(std::string_view key, int64_t fallback) const {
    return has(key) ? get_int(key) : Result<int64_t>(fallback);
}
Result<double> GgufFile::get_float_or(std::string_view key, double fallback) const {
    return has(key) ? get_float(key) : Result<double>(fallback);
}
Result<bool> GgufFile::get_bool_or(std::string_view key, bool fallback) const {
    return has(key) ? get_bool(key) : Result<bool>(fallback);
}
Result<std::string_view> GgufFile::get_string_or(std::string_view key, std::string_view fallback) const {
    return has(key) ? get_string(key) : Result<std::string_view>(fallback);
}

}  // namespace glimpse
