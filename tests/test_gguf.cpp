// GGUF reader: golden files from llama.cpp, a writer round trip over every value
// type, and hostile files (truncations at every section boundary, absurd counts,
// offsets past the end, wrong value types, duplicates), each of which must give
// a clear error and never crash.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "runtime/gguf.h"
#include "runtime/gguf_writer.h"
#include "test_util.h"

using namespace glimpse;

namespace {

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
    std::vector<uint8_t> out(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
}

Result<std::unique_ptr<GgufFile>> parse_bytes(std::vector<uint8_t> bytes) {
    return GgufFile::parse(MappedFile::from_bytes(std::move(bytes), "test.gguf"));
}

// A small valid file with two tensors and a few metadata pairs.
GgufWriter small_writer() {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.block_count", 2);
    w.set_f32("llama.rope.freq_base", 10000.0f);
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "c"});
    REQUIRE(w.add_tensor("w0", DType::f32, {4, 2}, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8})).is_ok());
    REQUIRE(w.add_tensor("w1", DType::f32, {3}, f32_bytes({9, 10, 11})).is_ok());
    return w;
}

void put_u64_at(std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
void put_u32_at(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }

// Offset of the first occurrence of `needle` (a name as stored: u64 length + bytes).
size_t find_bytes(const std::vector<uint8_t>& hay, const std::string& needle) {
    for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
        if (std::memcmp(hay.data() + i, needle.data(), needle.size()) == 0) return i;
    }
    FAIL("needle not found: " << needle);
    return 0;
}

void expect_error(const std::vector<uint8_t>& bytes, const char* must_contain) {
    auto r = parse_bytes(bytes);
    REQUIRE_FALSE(r.is_ok());
    CHECK_MESSAGE(r.status().message().find("test.gguf") != std::string::npos, r.status().message());
    CHECK_MESSAGE(r.status().message().find(must_contain) != std::string::npos, r.status().message());
}

}  // namespace

TEST_CASE("golden smolvlm text model: metadata and tensors as the golden README describes") {
    auto r = GgufFile::open(test::golden_dir() + "/smolvlm-tiny-f32/tiny-smolvlm-text-f32.gguf");
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    const GgufFile& g = **r;
    CHECK(g.version() == 3);
    CHECK(*g.get_string("general.architecture") == "llama");
    CHECK(*g.get_int("llama.block_count") == 2);
    CHECK(*g.get_int("llama.embedding_length") == 64);
    CHECK(*g.get_int("llama.attention.head_count") == 4);
    CHECK(*g.get_int("llama.attention.head_count_kv") == 2);
    CHECK(*g.get_int("llama.feed_forward_length") == 128);
    CHECK(*g.get_float("llama.rope.freq_base") == doctest::Approx(100000.0));
    CHECK(g.get_string_array("tokenizer.ggml.tokens")->size() == 449);
    CHECK(g.get_string_array("tokenizer.ggml.merges")->size() == 136);
    CHECK(*g.get_string("tokenizer.ggml.pre") == "smollm");
    CHECK(g.find_tensor("output.weight") == nullptr);  // tied embeddings
    const GgufTensor* emb = g.find_tensor("token_embd.weight");
    REQUIRE(emb);
    CHECK(emb->type == DType::f32);
    CHECK(emb->ne[0] == 64);
    CHECK(emb->ne[1] == 449);
    CHECK(emb->nbytes == 64 * 449 * 4);
    CHECK(g.get_int("llama.embedding_length").is_ok());
    // Wrong-type access is a clear error, not a crash.
    auto wrong = g.get_int("general.architecture");
    REQUIRE_FALSE(wrong.is_ok());
    CHECK(wrong.status().message().find("has type string, expected an integer") != std::string::npos);
    CHECK_FALSE(g.get_int("no.such.key").is_ok());
}

TEST_CASE("golden files of every set parse, and quantized tensor sizes follow the block tables") {
    const char* files[] = {
        "smolvlm-tiny-f32/tiny-smolvlm-mmproj-f32.gguf",   "smolvlm-tiny-f16/tiny-smolvlm-text-f16.gguf",
        "smolvlm-tiny-f16/tiny-smolvlm-mmproj-f16.gguf",   "smolvlm-tiny-q8_0/tiny-smolvlm-text-q8_0.gguf",
        "smolvlm-tiny-q4_0/tiny-smolvlm-text-q4_0.gguf",   "llava-tiny-f32/tiny-llava-text-f32.gguf",
        "llava-tiny-f32/tiny-llava-mmproj-f32.gguf",       "llava-tiny-f32/tiny-llava-mmproj-fl-f32.gguf",
    };
    for (const char* f : files) {
        auto r = GgufFile::open(test::golden_dir() + "/" + f);
        REQUIRE_MESSAGE(r.is_ok(), f << ": " << r.status().to_string());
        for (const GgufTensor& t : (*r)->tensors()) {
            // q8_0: 34 bytes per 32 values; q4_0: 18 bytes per 32 (ggml-common.h)
            int64_t rows = t.ne[1] * t.ne[2] * t.ne[3];
            if (t.type == DType::q8_0) CHECK(t.nbytes == static_cast<uint64_t>(rows * t.ne[0] / 32 * 34));
            if (t.type == DType::q4_0) CHECK(t.nbytes == static_cast<uint64_t>(rows * t.ne[0] / 32 * 18));
            if (t.type == DType::f16) CHECK(t.nbytes == static_cast<uint64_t>(rows * t.ne[0] * 2));
        }
    }
    auto q4 = GgufFile::open(test::golden_dir() + "/smolvlm-tiny-q4_0/tiny-smolvlm-text-q4_0.gguf");
    REQUIRE(q4.is_ok());
    // README: token_embd falls back to Q8_0, other 2-D weights are Q4_0, norms F32.
    CHECK((*q4)->find_tensor("token_embd.weight")->type == DType::q8_0);
    CHECK((*q4)->find_tensor("blk.0.attn_q.weight")->type == DType::q4_0);
    CHECK((*q4)->find_tensor("blk.0.attn_norm.weight")->type == DType::f32);
    auto fl = GgufFile::open(test::golden_dir() + "/llava-tiny-f32/tiny-llava-mmproj-fl-f32.gguf");
    REQUIRE(fl.is_ok());
    auto layers = (*fl)->get_int_array("clip.vision.feature_layer");
    REQUIRE(layers.is_ok());
    REQUIRE(layers->size() == 1);
    CHECK((*layers)[0] == 3);
}

TEST_CASE("writer round trip: every value type, nested arrays, alignment, tensor data") {
    GgufWriter w(64);
    w.set_u32("k.u32", 4000000000u);
    w.set_i32("k.i32", -7);
    w.set_u64("k.u64", 1ull << 40);
    w.set_f32("k.f32", 0.5f);
    w.set_bool("k.bool", true);
    w.set_string("k.str", "h\xc3\xa9llo");
    w.set_string_array("k.strs", {"x", "", "yz"});
    w.set_i32_array("k.i32s", {1, -2, 3});
    w.set_f32_array("k.f32s", {1.5f, -2.5f});
    // u8, i8, u16, i16, i64, f64 scalars, raw-encoded
    w.set_raw("k.u8", GgufType::u8, {200});
    w.set_raw("k.i8", GgufType::i8, {0xff});
    w.set_raw("k.u16", GgufType::u16, {0x34, 0x12});
    w.set_raw("k.i16", GgufType::i16, {0xfe, 0xff});
    std::vector<uint8_t> i64(8), f64(8);
    int64_t i64v = -(1ll << 50);
    double f64v = 3.25;
    std::memcpy(i64.data(), &i64v, 8);
    std::memcpy(f64.data(), &f64v, 8);
    w.set_raw("k.i64", GgufType::i64, i64);
    w.set_raw("k.f64", GgufType::f64, f64);
    // array of 2 arrays of u8: [[1,2],[3]]
    std::vector<uint8_t> nested;
    auto put32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) nested.push_back((v >> (8 * i)) & 0xff); };
    auto put64 = [&](uint64_t v) { for (int i = 0; i < 8; ++i) nested.push_back((v >> (8 * i)) & 0xff); };
    put32(static_cast<uint32_t>(GgufType::array)); put64(2);
    put32(static_cast<uint32_t>(GgufType::u8)); put64(2); nested.push_back(1); nested.push_back(2);
    put32(static_cast<uint32_t>(GgufType::u8)); put64(1); nested.push_back(3);
    w.set_raw("k.nested", GgufType::array, nested);
    REQUIRE(w.add_tensor("t.a", DType::f32, {3, 2}, f32_bytes({1, 2, 3, 4, 5, 6})).is_ok());
    REQUIRE(w.add_tensor("t.b", DType::f16, {2}, {0x00, 0x3c, 0x00, 0xc0}).is_ok());

    auto r = parse_bytes(w.serialize());
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    const GgufFile& g = **r;
    CHECK(g.alignment() == 64);
    CHECK(g.data_offset() % 64 == 0);
    CHECK(*g.get_int("k.u32") == 4000000000ll);
    CHECK(*g.get_int("k.i32") == -7);
    CHECK(*g.get_int("k.u64") == (1ll << 40));
    CHECK(*g.get_float("k.f32") == 0.5);
    CHECK(*g.get_bool("k.bool") == true);
    CHECK(*g.get_string("k.str") == "h\xc3\xa9llo");
    CHECK(*g.get_string_array("k.strs") == std::vector<std::string_view>{"x", "", "yz"});
    CHECK(*g.get_int_array("k.i32s") == std::vector<int64_t>{1, -2, 3});
    CHECK(*g.get_float_array("k.f32s") == std::vector<double>{1.5, -2.5});
    CHECK(*g.get_int("k.u8") == 200);
    CHECK(*g.get_int("k.i8") == -1);
    CHECK(*g.get_int("k.u16") == 0x1234);
    CHECK(*g.get_int("k.i16") == -2);
    CHECK(*g.get_int("k.i64") == i64v);
    CHECK(*g.get_float("k.f64") == 3.25);
    const GgufValue* n = g.find("k.nested");
    REQUIRE(n);
    REQUIRE(n->elem_type == GgufType::array);
    REQUIRE(n->arrays.size() == 2);
    CHECK(n->arrays[0].count == 2);
    CHECK(gguf_array_int(n->arrays[0], 1) == 2);
    CHECK(gguf_array_int(n->arrays[1], 0) == 3);
    CHECK(*g.get_int_or("absent", 5) == 5);
    CHECK_FALSE(g.get_int_or("k.str", 5).is_ok());  // present with the wrong type is an error

    const GgufTensor* a = g.find_tensor("t.a");
    REQUIRE(a);
    CHECK(a->n_dims == 2);
    CHECK(a->ne[0] == 3);
    CHECK(a->ne[1] == 2);
    float v[6];
    std::memcpy(v, a->data, 24);
    CHECK(v[5] == 6.0f);
    const GgufTensor* b = g.find_tensor("t.b");
    REQUIRE(b);
    CHECK(b->offset % 64 == 0);
    CHECK(b->data[1] == 0x3c);
}

TEST_CASE("hostile: truncation at every section boundary and at every byte of the header region") {
    std::vector<uint64_t> ends;
    std::vector<uint8_t> good = small_writer().serialize(&ends);
    REQUIRE(parse_bytes(good).is_ok());
    // The last boundary is the end of the file itself.
    for (size_t i = 0; i + 1 < ends.size(); ++i) {
        for (int64_t delta : {-1, 0, 1}) {
            int64_t cut = static_cast<int64_t>(ends[i]) + delta;
            if (cut < 0 || cut >= static_cast<int64_t>(good.size())) continue;
            std::vector<uint8_t> t(good.begin(), good.begin() + cut);
            auto r = parse_bytes(t);
            CHECK_MESSAGE(!r.is_ok(), "cut at " << cut << " parsed");
            if (!r.is_ok()) CHECK(r.status().message().find("test.gguf") != std::string::npos);
        }
    }
    // Every prefix up to the start of tensor data must fail cleanly.
    for (size_t cut = 0; cut < ends[ends.size() - 3]; ++cut) {
        std::vector<uint8_t> t(good.begin(), good.begin() + cut);
        REQUIRE_FALSE(parse_bytes(t).is_ok());
    }
}

TEST_CASE("hostile: bad magic, versions, absurd counts") {
    std::vector<uint8_t> good = small_writer().serialize();
    {
        auto b = good;
        b[0] = 'X';
        expect_error(b, "not a GGUF file");
    }
    {
        auto b = good;
        put_u32_at(b, 4, 1);
        expect_error(b, "version 1");
    }
    {
        auto b = good;
        put_u32_at(b, 4, 0x03000000);
        expect_error(b, "big-endian");
    }
    {
        auto b = good;
        put_u32_at(b, 4, 99);
        expect_error(b, "unknown GGUF version 99");
    }
    {
        auto b = good;
        put_u64_at(b, 8, ~0ull);  // tensor count
        expect_error(b, "tensor count");
    }
    {
        auto b = good;
        put_u64_at(b, 16, 1ull << 60);  // metadata count
        expect_error(b, "metadata count");
    }
    {
        // String length far past the end.
        auto b = good;
        size_t at = find_bytes(b, "general.architecture") - 8;
        put_u64_at(b, at, 1ull << 62);
        expect_error(b, "truncated");
    }
    {
        // Array length absurd: tokenizer.ggml.tokens count
        auto b = good;
        size_t key = find_bytes(b, "tokenizer.ggml.tokens");
        size_t count_at = key + std::strlen("tokenizer.ggml.tokens") + 4 + 4;  // value type, elem type
        put_u64_at(b, count_at, 1ull << 61);
        expect_error(b, "array length");
    }
}

TEST_CASE("hostile: wrong value types, unknown types, duplicates") {
    std::vector<uint8_t> good = small_writer().serialize();
    {
        auto b = good;
        size_t key = find_bytes(b, "llama.block_count");
        put_u32_at(b, key + std::strlen("llama.block_count"), 77);  // unknown value type
        expect_error(b, "unknown type 77");
    }
    {
        // The value type of the architecture string changed to bool: the next byte is not 0/1.
        auto b = good;
        size_t key = find_bytes(b, "general.architecture");
        put_u32_at(b, key + std::strlen("general.architecture"), static_cast<uint32_t>(GgufType::boolean));
        auto r = parse_bytes(b);
        CHECK_FALSE(r.is_ok());
    }
    {
        GgufWriter w;
        w.set_string("general.alignment", "sixteen");
        expect_error(w.serialize(), "general.alignment has type string");
    }
    {
        GgufWriter w;
        w.set_u32("general.alignment", 24);
        expect_error(w.serialize(), "not a power of two");
    }
    {
        // Duplicate key: rename the second key to equal the first (same length).
        GgufWriter w;
        w.set_u32("key.aaaa", 1);
        w.set_u32("key.bbbb", 2);
        auto b = w.serialize();
        size_t at = find_bytes(b, "key.bbbb");
        std::memcpy(b.data() + at, "key.aaaa", 8);
        expect_error(b, "duplicate metadata key 'key.aaaa'");
    }
    {
        auto b = small_writer().serialize();
        size_t at = find_bytes(b, "w1");
        b[at + 1] = '0';  // "w1" -> "w0"
        expect_error(b, "duplicate tensor name");
    }
    {
        // Deeply nested arrays beyond the limit.
        std::vector<uint8_t> enc;
        auto put32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) enc.push_back((v >> (8 * i)) & 0xff); };
        auto put64 = [&](uint64_t v) { for (int i = 0; i < 8; ++i) enc.push_back((v >> (8 * i)) & 0xff); };
        for (int d = 0; d < 20; ++d) { put32(static_cast<uint32_t>(GgufType::array)); put64(1); }
        put32(static_cast<uint32_t>(GgufType::u8)); put64(0);
        GgufWriter w;
        w.set_raw("deep", GgufType::array, enc);
        expect_error(w.serialize(), "nested");
    }
}

TEST_CASE("hostile: tensor infos with bad dims, types, offsets past the end, overlap") {
    std::vector<uint8_t> good = small_writer().serialize();
    size_t w1 = find_bytes(good, "w1");  // name bytes; then n_dims u32, ne u64, type u32, offset u64
    size_t ndims_at = w1 + 2, ne0_at = ndims_at + 4, type_at = ne0_at + 8, off_at = type_at + 4;
    // Each case: the good file with one field overwritten, and the error it must give.
    auto expect_patched_error_u32 = [&](size_t at, uint32_t value, const char* error) {
        auto b = good;
        put_u32_at(b, at, value);
        expect_error(b, error);
    };
    auto expect_patched_error_u64 = [&](size_t at, uint64_t value, const char* error) {
        auto b = good;
        put_u64_at(b, at, value);
        expect_error(b, error);
    };
    expect_patched_error_u32(ndims_at, 9, "dimension count 9");
    expect_patched_error_u64(ne0_at, 0, "has size 0");
    expect_patched_error_u64(ne0_at, 1ull << 39, "more bytes than the whole file");
    expect_patched_error_u32(type_at, 1234, "unknown or unsupported tensor type id 1234");
    // w1 has 3 elements, not a multiple of q4_0's 32.
    expect_patched_error_u32(type_at, static_cast<uint32_t>(DType::q4_0), "not a multiple of the q4_0 block size");
    expect_patched_error_u64(off_at, 1ull << 40, "runs past the end");
    expect_patched_error_u64(off_at, 33, "not a multiple of the alignment");
    expect_patched_error_u64(off_at, 0, "overlap");  // w1 at offset 0 overlaps w0
    {
        // Data section truncated: drop the last tensor's bytes.
        auto b = good;
        b.resize(b.size() - 40);
        expect_error(b, "runs past the end");
    }
}

TEST_CASE("hostile: random byte flips never crash") {
    std::vector<uint8_t> good = small_writer().serialize();
    uint64_t state = 12345;
    auto next = [&]() {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<uint32_t>(state >> 33);
    };
    int errors = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        auto b = good;
        int flips = 1 + next() % 4;
        for (int f = 0; f < flips; ++f) b[next() % b.size()] = static_cast<uint8_t>(next());
        auto r = parse_bytes(b);
        if (!r.is_ok()) {
            ++errors;
            CHECK(!r.status().message().empty());
        } else {
            for (const GgufTensor& t : (*r)->tensors()) {
                // Whatever parsed must lie inside the buffer.
                CHECK(t.data + t.nbytes <= (*r)->mapping()->data() + (*r)->mapping()->size());
            }
        }
    }
    CHECK(errors > 0);
}

TEST_CASE("open: missing file and directory give io errors") {
    auto r = GgufFile::open("/nonexistent/x.gguf");
    test::check_error(r.status(), StatusCode::io_error, "/nonexistent/x.gguf");
    auto d = GgufFile::open("/tmp");
    REQUIRE_FALSE(d.is_ok());
    auto empty = parse_bytes({});
    REQUIRE_FALSE(empty.is_ok());
    CHECK(empty.status().message().find("truncated") != std::string::npos);
}

// Found by tests/fuzz/fuzz_gguf: gguf_array_int() on an f32 array element of -2.04e37 cast it to
// int64_t, which is undefined behaviour (UBSan: "outside the range of representable values").
// Float elements now truncate and saturate; NaN gives 0. The file: one f32 array
// [-2.04392e37, 3e38, +inf, NaN] under clip.vision.image_mean, no tensors.
TEST_CASE("gguf: float array elements beyond int64 saturate in gguf_array_int (fuzz regression)") {
    auto r = GgufFile::open(test::source_dir() + "/tests/data/regressions/gguf/f32_array_beyond_int64.gguf");
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    const GgufValue* v = (*r)->find("clip.vision.image_mean");
    REQUIRE(v != nullptr);
    REQUIRE(v->type == GgufType::array);
    REQUIRE(v->elem_type == GgufType::f32);
    REQUIRE(v->count == 4);
    CHECK(gguf_array_int(*v, 0) == INT64_MIN);
    CHECK(gguf_array_int(*v, 1) == INT64_MAX);
    CHECK(gguf_array_int(*v, 2) == INT64_MAX);
    CHECK(gguf_array_int(*v, 3) == 0);
    CHECK(gguf_array_float(*v, 0) == doctest::Approx(-2.04392e37).epsilon(1e-6));
    CHECK(std::isinf(gguf_array_float(*v, 2)));
    CHECK(std::isnan(gguf_array_float(*v, 3)));
    // In range: truncation toward zero, as a C cast of an in-range value.
    GgufWriter w;
    w.set_f32_array("f", {-2.75f, 2.75f, 3221225472.0f});  // 3 * 2^30, exact in f32, beyond int32
    auto small = parse_bytes(w.serialize());
    REQUIRE(small.is_ok());
    const GgufValue* f = (*small)->find("f");
    REQUIRE(f != nullptr);
    CHECK(gguf_array_int(*f, 0) == -2);
    CHECK(gguf_array_int(*f, 1) == 2);
    CHECK(gguf_array_int(*f, 2) == int64_t{3} << 30);
}
