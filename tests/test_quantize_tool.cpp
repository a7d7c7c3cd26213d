// glimpse quantize against llama-quantize: the golden Q8_0/Q4_0 text models
// (llama-quantize <f32> <out> Q8_0 / Q4_0) are reproduced file for file; the
// per-tensor type rules of llama.cpp's k-quant mixes, worked out by hand for a
// model wide enough to use k-quants; a random model quantized to q4_k stays within
// the format's error budget; and every failure names what went wrong.
// (Beyond these tests, the outputs for the models built here were compared with a
// llama-quantize built from the golden commit, for every file type glimpse writes,
// with overrides, requantization and mmproj files: all byte-identical.)
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include "quant/dequantize.h"
#include "quant/quantize.h"
#include "runtime/fp16.h"
#include "runtime/gguf.h"
#include "runtime/gguf_writer.h"
#include "test_util.h"
#include "tools/common/model_writer.h"
#include "tools/quantize/quantize_gguf.h"

using namespace glimpse;
using namespace glimpse::tools;

namespace {

// Per process, so concurrent runs from several build trees do not share files;
// removed at exit.
struct TempDir {
    std::string path;
    TempDir() {
        path = (std::filesystem::temp_directory_path() / ("glimpse_test_quantize_" + std::to_string(getpid()))).string();
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

std::string temp_dir() {
    static TempDir dir;
    return dir.path;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    REQUIRE(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
    std::fclose(f);
}

std::unique_ptr<GgufFile> open_or_fail(const std::string& path) {
    auto f = GgufFile::open(path);
    REQUIRE_MESSAGE(f.is_ok(), f.status().to_string());
    return std::move(f).value();
}

bool same_value(const GgufValue& a, const GgufValue& b) {
    if (a.type != b.type) return false;
    switch (a.type) {
        case GgufType::string: return a.as_string == b.as_string;
        case GgufType::f32:
        case GgufType::f64: return std::memcmp(&a.as_f64, &b.as_f64, 8) == 0;
        case GgufType::array: {
            if (a.elem_type != b.elem_type || a.count != b.count) return false;
            if (const size_t size = gguf_type_size(a.elem_type)) return std::memcmp(a.packed, b.packed, a.count * size) == 0;
            if (a.elem_type == GgufType::string) return a.strings == b.strings;
            for (size_t i = 0; i < a.arrays.size(); ++i) {
                if (!same_value(a.arrays[i], b.arrays[i])) return false;
            }
            return true;
        }
        default: return a.as_u64 == b.as_u64 && a.as_i64 == b.as_i64;
    }
}

Status quantize(const std::string& in, const std::string& out, const std::string& type,
                std::vector<std::string> overrides = {}, std::vector<std::string>* log = nullptr) {
    QuantizeOptions opt;
    opt.input_path = in;
    opt.output_path = out;
    opt.type = type;
    opt.threads = 2;
    for (const std::string& o : overrides) {
        auto parsed = parse_tensor_type_override(o);
        REQUIRE_MESSAGE(parsed.is_ok(), parsed.status().to_string());
        opt.tensor_types.push_back(*parsed);
    }
    if (log) opt.log = [log](const std::string& line) { log->push_back(line); };
    return quantize_gguf(opt);
}

// A llama-layout text model whose rows are multiples of 256, so k-quants apply:
// n_embd 256, n_ff 512, `layers` blocks, tied embeddings (no output.weight)
// unless `with_output`. Weights are small deterministic values.
std::string write_wide_model(const std::string& path, int layers, bool with_output) {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.name", "wide test model");
    w.set_u32("general.file_type", 0);
    w.set_u32("llama.context_length", 2048);
    w.set_u32("llama.block_count", static_cast<uint32_t>(layers));
    w.set_u32("llama.embedding_length", 256);
    w.set_u32("llama.feed_forward_length", 512);
    w.set_u32("llama.attention.head_count", 4);
    w.set_u32("llama.attention.head_count_kv", 2);
    w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_f32("llama.rope.freq_base", 10000.0f);
    w.set_u32("llama.rope.dimension_count", 64);
    w.set_u32("llama.vocab_size", 300);
    uint32_t state = 12345;
    auto values = [&](int64_t n) {
        std::vector<uint8_t> bytes(static_cast<size_t>(n) * 4);
        for (int64_t i = 0; i < n; ++i) {
            state = state * 1664525u + 1013904223u;
            const float v = (static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 0.1f;
            std::memcpy(bytes.data() + 4 * i, &v, 4);
        }
        return bytes;
    };
    auto add = [&](const std::string& name, std::vector<int64_t> ne) {
        int64_t n = 1;
        for (int64_t d : ne) n *= d;
        REQUIRE(w.add_tensor(name, DType::f32, ne, values(n)).is_ok());
    };
    add("token_embd.weight", {256, 300});
    add("output_norm.weight", {256});
    if (with_output) add("output.weight", {256, 300});
    for (int l = 0; l < layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        add(b + "attn_norm.weight", {256});
        add(b + "attn_q.weight", {256, 256});
        add(b + "attn_k.weight", {256, 128});
        add(b + "attn_v.weight", {256, 128});
        add(b + "attn_output.weight", {256, 256});
        add(b + "ffn_norm.weight", {256});
        add(b + "ffn_gate.weight", {256, 512});
        add(b + "ffn_up.weight", {256, 512});
        add(b + "ffn_down.weight", {512, 256});
    }
    REQUIRE(w.write(path).is_ok());
    return path;
}

// A one-layer llama GGUF holding only blk.0.attn_q.weight: `values`, f32, ne = {cols, rows}.
void write_one_f32_weight(const std::string& path, const std::vector<float>& values, int64_t cols, int64_t rows) {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.block_count", 1);
    std::vector<uint8_t> bytes(values.size() * 4);
    std::memcpy(bytes.data(), values.data(), bytes.size());
    REQUIRE(w.add_tensor("blk.0.attn_q.weight", DType::f32, {cols, rows}, bytes).is_ok());
    REQUIRE(w.write(path).is_ok());
}

}  // namespace

TEST_CASE("q8_0 and q4_0 of the golden f32 text model are byte-identical to llama-quantize's files") {
    const std::string golden = test::golden_dir();
    const std::string f32_path = golden + "/smolvlm-tiny-f32/tiny-smolvlm-text-f32.gguf";
    const struct {
        const char* type;
        const char* golden_file;
        uint32_t file_type;
    } cases[] = {
        {"q8_0", "/smolvlm-tiny-q8_0/tiny-smolvlm-text-q8_0.gguf", 7},  // LLAMA_FTYPE_MOSTLY_Q8_0
        {"q4_0", "/smolvlm-tiny-q4_0/tiny-smolvlm-text-q4_0.gguf", 2},  // LLAMA_FTYPE_MOSTLY_Q4_0
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.type));
        const std::string out = temp_dir() + "/golden-" + c.type + ".gguf";
        std::vector<std::string> log;
        const Status s = quantize(f32_path, out, c.type, {}, &log);
        REQUIRE_MESSAGE(s.is_ok(), s.to_string());

        auto ours = open_or_fail(out);
        auto ref = open_or_fail(golden + c.golden_file);
        auto src = open_or_fail(f32_path);

        // Per tensor: same order, shapes, types and data bytes.
        REQUIRE(ours->tensors().size() == ref->tensors().size());
        for (size_t i = 0; i < ref->tensors().size(); ++i) {
            const GgufTensor& a = ours->tensors()[i];
            const GgufTensor& b = ref->tensors()[i];
            CAPTURE(b.name);
            CHECK(a.name == b.name);
            CHECK(a.type == b.type);
            CHECK(a.n_dims == b.n_dims);
            for (int d = 0; d < 4; ++d) CHECK(a.ne[d] == b.ne[d]);
            CHECK(a.offset == b.offset);
            REQUIRE(a.nbytes == b.nbytes);
            CHECK(std::memcmp(a.data, b.data, a.nbytes) == 0);
        }
        // token_embd falls back from q6_k to q8_0 in the q4_0 file (64 % 256 != 0).
        CHECK(ours->find_tensor("token_embd.weight")->type == DType::q8_0);
        CHECK(ours->find_tensor("blk.0.attn_norm.weight")->type == DType::f32);

        // Metadata: the input's pairs unchanged and in order, then quantization_version and file_type.
        CHECK(ours->get_int("general.file_type").value() == c.file_type);
        CHECK(ours->get_int("general.quantization_version").value() == 2);
        const auto& md = ours->metadata();
        REQUIRE(md.size() >= 2);
        CHECK(md[md.size() - 2].first == "general.quantization_version");
        CHECK(md[md.size() - 1].first == "general.file_type");
        size_t j = 0;
        for (const auto& [key, value] : src->metadata()) {
            if (key == "general.file_type") continue;
            CAPTURE(key);
            REQUIRE(j < md.size());
            CHECK(md[j].first == key);
            CHECK(same_value(md[j].second, value));
            ++j;
        }
        CHECK(j == md.size() - 2);

        // And the whole file, header and padding included.
        const std::vector<uint8_t> a = test::read_file_bytes(out), b = test::read_file_bytes(golden + c.golden_file);
        CHECK(a.size() == b.size());
        CHECK((a == b));

        // One summary line per tensor and a total.
        CHECK(log.size() == ref->tensors().size() + 1);
        CHECK(log.back().find("general.file_type") != std::string::npos);
    }
}

TEST_CASE("an f16 model is quantized from its exactly widened values") {
    // llama-quantize converts f16 rows to f32 (exactly) and quantizes those.
    const std::string f16_path = test::golden_dir() + "/smolvlm-tiny-f16/tiny-smolvlm-text-f16.gguf";
    const std::string out = temp_dir() + "/from-f16-q4_0.gguf";
    const Status s = quantize(f16_path, out, "q4_0");
    REQUIRE_MESSAGE(s.is_ok(), s.to_string());
    auto src = open_or_fail(f16_path);
    auto q = open_or_fail(out);
    int checked = 0;
    for (const GgufTensor& t : q->tensors()) {
        const GgufTensor* o = src->find_tensor(t.name);
        REQUIRE(o != nullptr);
        if (o->type != DType::f16) {
            CHECK(t.type == o->type);  // norms stay f32
            continue;
        }
        CAPTURE(t.name);
        CHECK(t.type == (t.name == "token_embd.weight" ? DType::q8_0 : DType::q4_0));
        std::vector<uint16_t> halves(static_cast<size_t>(o->n_elements()));
        std::memcpy(halves.data(), o->data, halves.size() * 2);
        std::vector<float> values(halves.size());
        for (size_t i = 0; i < halves.size(); ++i) values[i] = f16_to_f32(halves[i]);
        std::vector<uint8_t> want(t.nbytes);
        quantize_row(t.type, values.data(), want.data(), o->n_elements());
        CHECK(std::memcmp(want.data(), t.data, t.nbytes) == 0);
        ++checked;
    }
    CHECK(checked == 15);
}

TEST_CASE("k-quant mixes pick llama.cpp's per-tensor types") {
    // use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2; with n = 8
    // layers that is i = 0, 3, 6, 7. Worked out from llama-quant.cpp's rules:
    //   q4_k_m: attn_v and ffn_down of layers 0, 3, 6, 7 -> q6_k; tied token_embd -> q6_k;
    //           everything else quantized q4_k; norms f32.
    //   q4_k_s: the first 4 attn_v (layers 0..3) and ffn_down of layer 0 (< 8/8) -> q5_k; token_embd q6_k.
    //   q5_k_m: as q4_k_m with q5_k as the base.
    //   q4_0 / q8_0: all base type, tied token_embd q6_k / q8_0.
    const std::string in = write_wide_model(temp_dir() + "/wide8.gguf", 8, false);
    auto input = open_or_fail(in);
    auto expected = [](const std::string& ftype, const std::string& name) -> DType {
        if (name.find("_norm") != std::string::npos) return DType::f32;
        const bool more = name.rfind("blk.0.", 0) == 0 || name.rfind("blk.3.", 0) == 0 || name.rfind("blk.6.", 0) == 0 ||
                          name.rfind("blk.7.", 0) == 0;
        const bool attn_v = name.find("attn_v") != std::string::npos, ffn_down = name.find("ffn_down") != std::string::npos;
        if (ftype == "q8_0") return DType::q8_0;
        if (name == "token_embd.weight") return DType::q6_k;
        if (ftype == "q4_0") return DType::q4_0;
        if (ftype == "q4_k_m" || ftype == "q5_k_m") {
            if ((attn_v || ffn_down) && more) return DType::q6_k;
            return ftype == "q4_k_m" ? DType::q4_k : DType::q5_k;
        }
        // q4_k_s
        const int layer = std::stoi(name.substr(4));
        if (attn_v && layer < 4) return DType::q5_k;
        if (ffn_down && layer == 0) return DType::q5_k;
        return DType::q4_k;
    };
    for (const char* ftype : {"q4_k_m", "q4_k_s", "q5_k_m", "q4_0", "q8_0"}) {
        CAPTURE(std::string(ftype));
        QuantizeOptions opt;
        opt.type = ftype;
        auto plan = plan_quantization(*input, opt);
        REQUIRE_MESSAGE(plan.is_ok(), plan.status().to_string());
        REQUIRE(plan->tensors.size() == input->tensors().size());
        for (const TensorPlan& p : plan->tensors) {
            CAPTURE(p.name);
            CHECK(std::string(dtype_name(p.to)) == std::string(dtype_name(expected(ftype, p.name))));
        }
    }
    SUBCASE("'q4_k' means q4_k_m and writes general.file_type 15") {
        QuantizeOptions opt;
        opt.type = "Q4_K";
        auto plan = plan_quantization(*input, opt);
        REQUIRE(plan.is_ok());
        CHECK(plan->file_type.llama_ftype == 15);
    }
    SUBCASE("with an output.weight the embeddings are untied: output q6_k, token_embd the base type") {
        auto untied = open_or_fail(write_wide_model(temp_dir() + "/wide8-untied.gguf", 8, true));
        QuantizeOptions opt;
        opt.type = "q4_k_m";
        auto plan = plan_quantization(*untied, opt);
        REQUIRE(plan.is_ok());
        for (const TensorPlan& p : plan->tensors) {
            if (p.name == "output.weight") CHECK(p.to == DType::q6_k);
            if (p.name == "token_embd.weight") CHECK(p.to == DType::q4_k);
        }
    }
    SUBCASE("--pure gives every quantized tensor the base type") {
        QuantizeOptions opt;
        opt.type = "q4_k_m";
        opt.pure = true;
        auto plan = plan_quantization(*input, opt);
        REQUIRE(plan.is_ok());
        for (const TensorPlan& p : plan->tensors) {
            if (p.name.find("_norm") == std::string::npos) CHECK(p.to == DType::q4_k);
        }
    }
    SUBCASE("the written file has those types and llama.cpp's tensor order (blk.N by N, then name)") {
        const std::string out = temp_dir() + "/wide8-q4km.gguf";
        REQUIRE(quantize(in, out, "q4_k_m").is_ok());
        auto f = open_or_fail(out);
        CHECK(f->get_int("general.file_type").value() == 15);
        std::vector<std::string> names;
        for (const GgufTensor& t : f->tensors()) {
            names.push_back(t.name);
            CHECK(std::string(dtype_name(t.type)) == std::string(dtype_name(expected("q4_k_m", t.name))));
        }
        CHECK(names[0] == "output_norm.weight");
        CHECK(names[1] == "token_embd.weight");
        CHECK(names[2] == "blk.0.attn_k.weight");
        CHECK(names.back() == "blk.7.ffn_up.weight");
    }
}

TEST_CASE("mmproj files follow llama-quantize's 'clip' handling: same filter, mixes with 0 layers") {
    // llama.cpp loads a clip file with no hyperparameters (n_layer 0), so in q4_k_m
    // use_more_bits(i, 0) holds for every ffn_down (i >= 7*0/8), and attn_v uses its own
    // count (2 here: layer 1 is "more bits"). Rows of 64/128 then fall back:
    // q4_k -> q5_0, q6_k -> q8_0. mm.model.fc has 256-wide rows and stays q4_k.
    auto mmproj = open_or_fail(test::golden_dir() + "/smolvlm-tiny-f32/tiny-smolvlm-mmproj-f32.gguf");
    QuantizeOptions opt;
    opt.type = "q4_k_m";
    auto plan = plan_quantization(*mmproj, opt);
    REQUIRE_MESSAGE(plan.is_ok(), plan.status().to_string());
    CHECK(plan->mmproj);
    for (const TensorPlan& p : plan->tensors) {
        CAPTURE(p.name);
        DType want = DType::q5_0;
        if (p.n_dims < 2 || p.name == "v.patch_embd.weight" || p.name == "v.position_embd.weight") want = p.from;
        else if (p.name == "mm.model.fc.weight") want = DType::q4_k;
        else if (p.name.find("ffn_down") != std::string::npos || p.name == "v.blk.1.attn_v.weight") want = DType::q8_0;
        CHECK(std::string(dtype_name(p.to)) == std::string(dtype_name(want)));
    }
}

TEST_CASE("--tensor-type overrides: first match wins, replaces the mix, still subject to the row-length fallback") {
    const std::string in = write_wide_model(temp_dir() + "/wide2.gguf", 2, false);
    auto input = open_or_fail(in);
    QuantizeOptions opt;
    opt.type = "q4_k_m";
    for (const char* o : {"attn_v=q8_0", "BLK\\.1\\.ffn_.*=F16", "ffn_down=q5_1", "attn=q4_k"}) {
        auto parsed = parse_tensor_type_override(o);
        REQUIRE_MESSAGE(parsed.is_ok(), parsed.status().to_string());
        opt.tensor_types.push_back(*parsed);
    }
    auto plan = plan_quantization(*input, opt);
    REQUIRE_MESSAGE(plan.is_ok(), plan.status().to_string());
    std::map<std::string, DType> got;
    for (const TensorPlan& p : plan->tensors) got[p.name] = p.to;
    CHECK(got["blk.0.attn_v.weight"] == DType::q8_0);       // first pattern
    CHECK(got["blk.1.attn_v.weight"] == DType::q8_0);       // (the mix would say q6_k)
    CHECK(got["blk.1.ffn_down.weight"] == DType::f16);      // second pattern (lower-cased) before the third
    CHECK(got["blk.1.ffn_gate.weight"] == DType::f16);
    CHECK(got["blk.0.ffn_down.weight"] == DType::q5_1);     // third pattern instead of the mix's q6_k
    CHECK(got["blk.0.attn_q.weight"] == DType::q4_k);       // fourth
    CHECK(got["blk.0.ffn_up.weight"] == DType::q4_k);       // no match: the mix (base type)
    CHECK(got["token_embd.weight"] == DType::q6_k);         // no match: tied embedding rule
    CHECK(got["blk.0.attn_norm.weight"] == DType::f32);     // never quantized, override or not

    SUBCASE("an override to q4_k on a 64-wide tensor falls back to q5_0") {
        QuantizeOptions o2;
        o2.type = "q8_0";
        o2.tensor_types.push_back(*parse_tensor_type_override("attn_k=q4_k"));
        auto golden = open_or_fail(test::golden_dir() + "/smolvlm-tiny-f32/tiny-smolvlm-text-f32.gguf");
        auto p2 = plan_quantization(*golden, o2);
        REQUIRE(p2.is_ok());
        for (const TensorPlan& p : p2->tensors) {
            if (p.name.find("attn_k") != std::string::npos) CHECK(p.to == DType::q5_0);
        }
    }
    SUBCASE("malformed overrides are rejected with the reason") {
        for (const char* bad : {"attn_v", "=q8_0", "attn_v=", "attn_v=q9_9", "attn_v=iq2_xxs", "(=q8_0"}) {
            CAPTURE(std::string(bad));
            auto r = parse_tensor_type_override(bad);
            CHECK_FALSE(r.is_ok());
            CHECK(r.status().message().find(bad) != std::string::npos);
        }
    }
}

TEST_CASE("a random tiny VLM quantized to q4_k loads and stays within the q4_k error budget") {
    // Relative RMS error of q4_k on Gaussian weights is ~0.0715 (tests/test_quant_formats.cpp,
    // kRmsBudgetQ4K = 0.0752); the tiny model's 64/128-wide rows fall back to q5_0 / q8_0,
    // which are more precise, so every tensor must meet the q4_k budget. The wide variant
    // (n_embd 256) makes the text weights real q4_k / q6_k.
    constexpr double kQ4KBudget = 0.0752;
    auto spec = vlm_preset("tiny");
    REQUIRE(spec.is_ok());
    for (int64_t n_embd : {int64_t{64}, int64_t{256}}) {
        CAPTURE(n_embd);
        VlmSpec s = *spec;
        s.text.n_embd = n_embd;
        s.text.n_ff = 2 * n_embd;
        const std::string prefix = temp_dir() + "/random-" + std::to_string(n_embd);
        REQUIRE(write_random_vlm(s, prefix + "-text.gguf", prefix + "-mmproj.gguf").is_ok());
        for (const char* part : {"-text", "-mmproj"}) {
            CAPTURE(std::string(part));
            const std::string in = prefix + part + ".gguf", out = prefix + part + "-q4_k.gguf";
            const Status st = quantize(in, out, "q4_k");
            REQUIRE_MESSAGE(st.is_ok(), st.to_string());
            auto src = open_or_fail(in);
            auto q = open_or_fail(out);
            CHECK(q->get_int("general.file_type").value() == 15);
            REQUIRE(q->tensors().size() == src->tensors().size());
            int quantized = 0, k_quants = 0;
            for (const GgufTensor& t : q->tensors()) {
                CAPTURE(t.name);
                const GgufTensor* o = src->find_tensor(t.name);
                REQUIRE(o != nullptr);
                REQUIRE(t.n_elements() == o->n_elements());
                if (t.type == o->type) {
                    CHECK(std::memcmp(t.data, o->data, t.nbytes) == 0);
                    continue;
                }
                ++quantized;
                k_quants += t.type == DType::q4_k || t.type == DType::q6_k;
                std::vector<float> a(static_cast<size_t>(t.n_elements())), b(a.size());
                dequantize_row(t.type, t.data, a.data(), t.n_elements());
                dequantize_row(o->type, o->data, b.data(), o->n_elements());
                const double err = test::compare(a.data(), b.data(), a.size()).rms;
                CHECK(err <= kQ4KBudget);
            }
            CHECK(quantized > 0);
            if (n_embd == 256 && std::string(part) == "-text") CHECK(k_quants >= 8);
            // mmproj: the patch and position embeddings stay as they were
            if (std::string(part) == "-mmproj") {
                CHECK(q->find_tensor("v.patch_embd.weight")->type == src->find_tensor("v.patch_embd.weight")->type);
                CHECK(q->find_tensor("v.position_embd.weight")->type == src->find_tensor("v.position_embd.weight")->type);
            }
        }
    }
}

TEST_CASE("errors say what is wrong") {
    const std::string dir = temp_dir();
    const std::string f32_path = test::golden_dir() + "/smolvlm-tiny-f32/tiny-smolvlm-text-f32.gguf";
    auto message = [](const Status& s) { return s.message(); };

    SUBCASE("unknown file type") {
        const Status s = quantize(f32_path, dir + "/x.gguf", "q3_k_m");
        CHECK(s.code() == StatusCode::invalid_argument);
        CHECK(message(s).find("q3_k_m") != std::string::npos);
    }
    SUBCASE("input already quantized") {
        const std::string q4 = test::golden_dir() + "/smolvlm-tiny-q4_0/tiny-smolvlm-text-q4_0.gguf";
        const Status s = quantize(q4, dir + "/x.gguf", "q8_0");
        CHECK_FALSE(s.is_ok());
        CHECK(message(s).find("already quantized to q4_0") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(dir + "/x.gguf"));
        // the same type again is a plain copy, as in llama-quantize
        const Status same = quantize(q4, dir + "/same.gguf", "q4_0");
        CHECK_MESSAGE(same.is_ok(), same.to_string());
        CHECK((test::read_file_bytes(dir + "/same.gguf") == test::read_file_bytes(q4)));
    }
    SUBCASE("unwritable output") {
        const Status s = quantize(f32_path, dir + "/no/such/dir/x.gguf", "q8_0");
        CHECK(s.code() == StatusCode::io_error);
        CHECK(message(s).find("cannot open for writing") != std::string::npos);
    }
    SUBCASE("output is the input") {
        const std::string copy = dir + "/copy.gguf";
        write_bytes(copy, test::read_file_bytes(f32_path));
        const Status s = quantize(copy, copy, "q8_0");
        CHECK_FALSE(s.is_ok());
        CHECK(message(s).find("same file") != std::string::npos);
    }
    SUBCASE("hostile input: the reader's error, with context") {
        std::vector<uint8_t> bytes = test::read_file_bytes(f32_path);
        bytes.resize(1000);
        const std::string bad = dir + "/truncated.gguf";
        write_bytes(bad, bytes);
        const Status s = quantize(bad, dir + "/x.gguf", "q8_0");
        CHECK(s.code() == StatusCode::parse_error);
        CHECK(message(s).find("reading input") != std::string::npos);
    }
    SUBCASE("NaN weights are refused, as llama.cpp's loader refuses them") {
        std::vector<float> v(64 * 32, 0.5f);
        v[77] = std::nanf("");
        write_one_f32_weight(dir + "/nan.gguf", v, 64, 32);
        const Status s = quantize(dir + "/nan.gguf", dir + "/x.gguf", "q8_0");
        CHECK_FALSE(s.is_ok());
        CHECK(message(s).find("blk.0.attn_q.weight") != std::string::npos);
        CHECK(message(s).find("NaN") != std::string::npos);
    }
    SUBCASE("a row length no 32-block type can hold has no fallback in llama.cpp") {
        write_one_f32_weight(dir + "/odd.gguf", std::vector<float>(48 * 4, 0.0f), 48, 4);
        const Status s = quantize(dir + "/odd.gguf", dir + "/x.gguf", "q4_0");
        CHECK(s.code() == StatusCode::unsupported);
        CHECK(message(s).find("row length 48") != std::string::npos);
        // q4_k falls back q4_k -> q5_0 -> (48 % 32 != 0) f16
        CHECK(quantize(dir + "/odd.gguf", dir + "/odd-q4k.gguf", "q4_k").is_ok());
        auto q = open_or_fail(dir + "/odd-q4k.gguf");
        CHECK(q->find_tensor("blk.0.attn_q.weight")->type == DType::f16);
    }
    SUBCASE("weights too large for f16 block scales") {
        std::vector<float> v(64 * 2, 1.0f);
        v[5] = 1e9f;
        write_one_f32_weight(dir + "/huge.gguf", v, 64, 2);
        const Status s = quantize(dir + "/huge.gguf", dir + "/x.gguf", "q8_0");
        CHECK_FALSE(s.is_ok());
        CHECK(message(s).find("too large") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(dir + "/x.gguf"));
        CHECK_FALSE(std::filesystem::exists(dir + "/x.gguf.partial"));
    }
}
