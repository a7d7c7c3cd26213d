#include "tools/common/model_writer.h"

#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "models/tokenizer.h"
#include "runtime/fp16.h"
#include "runtime/gguf_writer.h"

namespace glimpse::tools {
namespace {

// The SmolVLM chat template as published with the HF model (llama.cpp detects
// the SmolVLM format from this text).
constexpr const char* kSmolVlmChatTemplate =
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == "
    "'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' "
    "%}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

// SmolLM2's 17 control tokens, ids 0..16.
const char* const kControlTokens[] = {
    "<|endoftext|>",   "<|im_start|>",    "<|im_end|>",     "<repo_name>",    "<reponame>",    "<file_sep>",
    "<filename>",      "<gh_stars>",      "<issue_start>",  "<issue_comment>", "<issue_closed>", "<jupyter_start>",
    "<jupyter_text>",  "<jupyter_code>",  "<jupyter_output>", "<jupyter_script>", "<empty_output>",
};

// Text the merge table is learned from: the words a caption model sees most.
constexpr const char* kMergeCorpus =
    "The image shows a cat sitting on the table. There is a red circle and a blue square in the picture. "
    "A dog is running in the park. The photo shows people walking on the street. What color is the car? "
    "The car is red. How many birds are there? There are three birds on the tree. Describe this image. "
    "This is a picture of a small house with a green door and white windows under the blue sky.\n\n"
    "A man is riding a bicycle. The woman is holding an umbrella in the rain. The sun is shining.";

constexpr int kTokenNormal = 1, kTokenControl = 3;

// splitmix64 + Box-Muller: deterministic normals on every platform.
class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
    float normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        const double r = std::sqrt(-2.0 * std::log(uniform())), a = 2.0 * M_PI * uniform();
        spare_ = static_cast<float>(r * std::sin(a));
        has_spare_ = true;
        return static_cast<float>(r * std::cos(a));
    }

private:
    uint64_t state_;
    bool has_spare_ = false;
    float spare_ = 0;
};

std::vector<uint8_t> encode_values(const std::vector<float>& v, DType type) {
    std::vector<uint8_t> out;
    if (type == DType::f32) {
        out.resize(v.size() * 4);
        std::memcpy(out.data(), v.data(), out.size());
        return out;
    }
    out.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = type == DType::f16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
    }
    return out;
}

class TensorEmitter {
public:
    TensorEmitter(GgufWriter& w, Rng& rng, const VlmSpec& spec) : w_(w), rng_(rng), spec_(spec) {}

    // A 2-D weight W:(rows, cols), GGUF ne = [cols, rows], in the spec's weight type.
    Status matrix(const std::string& name, int64_t rows, int64_t cols) {
        return random(name, {cols, rows}, spec_.weight_type, spec_.weight_std);
    }
    // Norm weights near 1, biases near 0, always f32 (as llama.cpp's converters keep them).
    Status norm(const std::string& name, int64_t n) { return around(name, n, 1.0f); }
    Status bias(const std::string& name, int64_t n) { return around(name, n, 0.0f); }
    Status random(const std::string& name, std::vector<int64_t> ne, DType type, float std) {
        int64_t n = 1;
        for (int64_t d : ne) n *= d;
        std::vector<float> v(static_cast<size_t>(n));
        for (float& x : v) x = std * rng_.normal();
        return w_.add_tensor(name, type, std::move(ne), encode_values(v, type));
    }

private:
    Status around(const std::string& name, int64_t n, float center) {
        std::vector<float> v(static_cast<size_t>(n));
        for (float& x : v) x = center + spec_.weight_std * rng_.normal();
        return w_.add_tensor(name, DType::f32, {n}, encode_values(v, DType::f32));
    }
    GgufWriter& w_;
    Rng& rng_;
    const VlmSpec& spec_;
};

// Byte-level BPE vocabulary: control tokens, the 256 byte symbols, merges learned
// from kMergeCorpus, filler tokens up to the requested size, then the image tokens.
struct Vocab {
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    std::vector<std::string> merges;
    int32_t bos = 1, eos = 0, unk = 0, pad = 2;
};

std::vector<std::string> pretokenize_words(const std::string& text) {
    // Words with their leading space, newlines on their own: enough for learning merges.
    std::vector<std::string> words;
    std::string cur;
    for (char c : text) {
        if (c == ' ' || c == '\n' || c == '.' || c == '?' || c == ',') {
            if (!cur.empty()) words.push_back(cur);
            cur.clear();
            if (c == ' ') cur.push_back(' ');
            else words.push_back(std::string(1, c));
        } else {
            cur.push_back(c);
        }
    }
    if (!cur.empty()) words.push_back(cur);
    return words;
}

Vocab build_vocab(const VlmSpec& spec) {
    Vocab v;
    for (const char* t : kControlTokens) {
        v.tokens.push_back(t);
        v.types.push_back(kTokenControl);
    }
    std::map<std::string, int> known;
    for (int b : gpt2_byte_order()) {
        const std::string sym = gpt2_byte_symbol(static_cast<uint8_t>(b));
        known[sym] = 1;
        v.tokens.push_back(sym);
        v.types.push_back(kTokenNormal);
    }
    // Learn merges: words as symbol sequences, merge the most frequent adjacent pair.
    std::vector<std::vector<std::string>> words;
    for (const std::string& w : pretokenize_words(kMergeCorpus)) {
        std::vector<std::string> syms;
        for (unsigned char c : w) syms.push_back(gpt2_byte_symbol(c));
        words.push_back(syms);
    }
    const int64_t n_special = 1 + 1 + 1 + 36 + 1;  // fake_token, image, global-img, 6x6 rows/cols, end_of_utterance
    const int64_t room = spec.text.n_vocab - static_cast<int64_t>(v.tokens.size()) - n_special;
    // "\n\n" is always one token (SmolLM2 has it; the idefics3 prompt layout looks it up).
    {
        const std::string nl = gpt2_byte_symbol('\n');
        v.merges.push_back(nl + " " + nl);
        v.tokens.push_back(nl + nl);
        v.types.push_back(kTokenNormal);
        known[nl + nl] = 1;
    }
    for (int64_t m = 1; m < spec.text.n_merges && m < room; ++m) {
        std::map<std::pair<std::string, std::string>, int> counts;
        for (const auto& w : words) {
            for (size_t i = 0; i + 1 < w.size(); ++i) counts[{w[i], w[i + 1]}]++;
        }
        std::pair<std::string, std::string> best;
        int best_count = 1;
        for (const auto& [pair, count] : counts) {
            if (count > best_count) {
                best = pair;
                best_count = count;
            }
        }
        if (best_count <= 1) break;
        const std::string merged = best.first + best.second;
        v.merges.push_back(best.first + " " + best.second);
        if (!known.count(merged)) {
            known[merged] = 1;
            v.tokens.push_back(merged);
            v.types.push_back(kTokenNormal);
        }
        for (auto& w : words) {
            std::vector<std::string> out;
            for (size_t i = 0; i < w.size(); ++i) {
                if (i + 1 < w.size() && w[i] == best.first && w[i + 1] == best.second) {
                    out.push_back(merged);
                    ++i;
                } else {
                    out.push_back(w[i]);
                }
            }
            w = std::move(out);
        }
    }
    for (int64_t i = static_cast<int64_t>(v.tokens.size()); i < spec.text.n_vocab - n_special; ++i) {
        v.tokens.push_back("<|filler_" + std::to_string(i) + "|>");
        v.types.push_back(kTokenNormal);
    }
    for (const char* t : {"<fake_token_around_image>", "<image>", "<global-img>"}) {
        v.tokens.push_back(t);
        v.types.push_back(kTokenControl);
    }
    for (int r = 1; r <= 6; ++r) {
        for (int c = 1; c <= 6; ++c) {
            v.tokens.push_back("<row_" + std::to_string(r) + "_col_" + std::to_string(c) + ">");
            v.types.push_back(kTokenControl);
        }
    }
    v.tokens.push_back("<end_of_utterance>");
    v.types.push_back(kTokenControl);
    v.eos = static_cast<int32_t>(v.tokens.size() - 1);
    return v;
}

Status write_text_model(const VlmSpec& spec, const std::string& path, Rng& rng) {
    const TextSpec& t = spec.text;
    GLIMPSE_CHECK_OR_RETURN(t.n_embd % t.n_head == 0 && t.n_head % t.n_head_kv == 0, invalid_argument,
                            "text: %lld heads / %lld kv heads do not divide width %lld",
                            static_cast<long long>(t.n_head), static_cast<long long>(t.n_head_kv),
                            static_cast<long long>(t.n_embd));
    GLIMPSE_CHECK_OR_RETURN(t.n_vocab >= 17 + 256 + 40, invalid_argument,
                            "text: vocabulary of %lld is smaller than the %d fixed tokens",
                            static_cast<long long>(t.n_vocab), 17 + 256 + 40);
    const Vocab vocab = build_vocab(spec);
    const int64_t head_dim = t.n_embd / t.n_head;
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.type", "model");
    w.set_string("general.name", spec.name + " text");
    w.set_u32("llama.context_length", static_cast<uint32_t>(t.n_ctx_train));
    w.set_u32("llama.embedding_length", static_cast<uint32_t>(t.n_embd));
    w.set_u32("llama.block_count", static_cast<uint32_t>(t.n_layer));
    w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(t.n_ff));
    w.set_u32("llama.attention.head_count", static_cast<uint32_t>(t.n_head));
    w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(t.n_head_kv));
    w.set_f32("llama.rope.freq_base", t.rope_base);
    w.set_f32("llama.attention.layer_norm_rms_epsilon", t.rms_eps);
    w.set_u32("llama.vocab_size", static_cast<uint32_t>(vocab.tokens.size()));
    w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "smollm");
    w.set_string_array("tokenizer.ggml.tokens", vocab.tokens);
    w.set_i32_array("tokenizer.ggml.token_type", vocab.types);
    w.set_string_array("tokenizer.ggml.merges", vocab.merges);
    w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(vocab.bos));
    w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(vocab.eos));
    w.set_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(vocab.unk));
    w.set_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(vocab.pad));
    if (spec.layout == VlmLayout::smolvlm) {
        w.set_bool("tokenizer.ggml.add_bos_token", false);
        w.set_string("tokenizer.chat_template", kSmolVlmChatTemplate);
    } else {
        w.set_bool("tokenizer.ggml.add_bos_token", true);  // LLaVA prompts start with BOS, no template
    }

    TensorEmitter e(w, rng, spec);
    const int64_t n_vocab = static_cast<int64_t>(vocab.tokens.size());
    GLIMPSE_RETURN_IF_ERROR(e.matrix("token_embd.weight", n_vocab, t.n_embd));
    for (int64_t il = 0; il < t.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        GLIMPSE_RETURN_IF_ERROR(e.norm(p + "attn_norm.weight", t.n_embd));
        GLIMPSE_RETURN_IF_ERROR(e.matrix(p + "attn_q.weight", t.n_embd, t.n_embd));
        GLIMPSE_RETURN_IF_ERROR(e.matrix(p + "attn_k.weight", t.n_head_kv * head_dim, t.n_embd));
        GLIMPSE_RETURN_IF_ERROR(e.matrix(p + "attn_v.weight", t.n_head_kv * head_dim, t.n_embd));
        GLIMPSE_RETURN_IF_ERROR(e.matrix(p + "attn_output.weight", t.n_embd, t.n_embd));
        GLIMPSE_RETURN_IF_ERROR(e.norm(p + "ffn_norm.weight", t.n_embd));
        GLIMPSE_RETURN_IF_ERROR(e.matrix(p + "ffn_gate.weight", t.n_ff, t.n_embd));
        GLIMPSE_RETURN_IF_ERROR(e.matrix(p + "ffn_up.weight", t.n_ff, t.n_embd));
        GLIMPSE_RETURN_IF_ERROR(e.matrix(p + "ffn_down.weight", t.n_embd, t.n_ff));
    }
    GLIMPSE_RETURN_IF_ERROR(e.norm("output_norm.weight", t.n_embd));
    return w.write(path);
}

Status write_mmproj(const VlmSpec& spec, const std::string& path, Rng& rng) {
    const VisionSpec& v = spec.vision;
    const bool llava = spec.layout == VlmLayout::llava;
    GLIMPSE_CHECK_OR_RETURN(v.image_size % v.patch_size == 0 && v.n_embd % v.n_head == 0, invalid_argument,
                            "vision: image %lld / patch %lld or width %lld / heads %lld do not divide",
                            static_cast<long long>(v.image_size), static_cast<long long>(v.patch_size),
                            static_cast<long long>(v.n_embd), static_cast<long long>(v.n_head));
    const int64_t grid = v.image_size / v.patch_size, n_patches = grid * grid;
    GLIMPSE_CHECK_OR_RETURN(llava || grid % v.scale_factor == 0, invalid_argument,
                            "vision: scale factor %lld does not divide the %lld-patch grid",
                            static_cast<long long>(v.scale_factor), static_cast<long long>(grid));
    GgufWriter w;
    w.set_string("general.architecture", "clip");
    w.set_string("general.type", "mmproj");
    w.set_string("general.name", spec.name + " mmproj");
    w.set_bool("clip.has_vision_encoder", true);
    w.set_string("clip.projector_type", llava ? "mlp" : "idefics3");
    w.set_u32("clip.vision.image_size", static_cast<uint32_t>(v.image_size));
    w.set_u32("clip.vision.patch_size", static_cast<uint32_t>(v.patch_size));
    w.set_u32("clip.vision.embedding_length", static_cast<uint32_t>(v.n_embd));
    w.set_u32("clip.vision.feed_forward_length", static_cast<uint32_t>(v.n_ff));
    w.set_u32("clip.vision.block_count", static_cast<uint32_t>(v.n_layer));
    w.set_u32("clip.vision.attention.head_count", static_cast<uint32_t>(v.n_head));
    w.set_u32("clip.vision.projection_dim", static_cast<uint32_t>(spec.text.n_embd));
    w.set_f32("clip.vision.attention.layer_norm_epsilon", v.eps);
    if (llava) {
        w.set_f32_array("clip.vision.image_mean", {0.48145466f, 0.4578275f, 0.40821073f});
        w.set_f32_array("clip.vision.image_std", {0.26862954f, 0.26130258f, 0.27577711f});
        w.set_bool("clip.use_gelu", false);  // CLIP's quick GELU
        w.set_bool("clip.has_llava_projector", true);
    } else {
        w.set_f32_array("clip.vision.image_mean", {0.5f, 0.5f, 0.5f});
        w.set_f32_array("clip.vision.image_std", {0.5f, 0.5f, 0.5f});
        w.set_bool("clip.use_gelu", true);
        w.set_u32("clip.vision.projector.scale_factor", static_cast<uint32_t>(v.scale_factor));
        w.set_u32("clip.vision.preproc_image_size", static_cast<uint32_t>(v.preproc_image_size));
    }

    TensorEmitter e(w, rng, spec);
    const int64_t C = v.n_embd;
    if (llava) GLIMPSE_RETURN_IF_ERROR(e.random("v.class_embd", {C}, DType::f32, spec.weight_std));
    GLIMPSE_RETURN_IF_ERROR(e.random("v.patch_embd.weight", {v.patch_size, v.patch_size, 3, C},
                                     spec.weight_type == DType::f32 ? DType::f32 : DType::f16, spec.weight_std));
    if (!llava) GLIMPSE_RETURN_IF_ERROR(e.bias("v.patch_embd.bias", C));
    GLIMPSE_RETURN_IF_ERROR(e.random("v.position_embd.weight", {C, n_patches + (llava ? 1 : 0)}, DType::f32,
                                     spec.weight_std));
    if (llava) {
        GLIMPSE_RETURN_IF_ERROR(e.norm("v.pre_ln.weight", C));
        GLIMPSE_RETURN_IF_ERROR(e.bias("v.pre_ln.bias", C));
    }
    for (int64_t il = 0; il < v.n_layer; ++il) {
        const std::string p = "v.blk." + std::to_string(il) + ".";
        for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
            GLIMPSE_RETURN_IF_ERROR(e.matrix(p + n + ".weight", C, C));
            GLIMPSE_RETURN_IF_ERROR(e.bias(p + n + ".bias", C));
        }
        for (const char* n : {"ln1", "ln2"}) {
            GLIMPSE_RETURN_IF_ERROR(e.norm(p + n + ".weight", C));
            GLIMPSE_RETURN_IF_ERROR(e.bias(p + n + ".bias", C));
        }
        // LLaVA files from the legacy converter name fc1 "ffn_down" and fc2 "ffn_up".
        const std::string up = llava ? "ffn_down" : "ffn_up", down = llava ? "ffn_up" : "ffn_down";
        GLIMPSE_RETURN_IF_ERROR(e.matrix(p + up + ".weight", v.n_ff, C));
        GLIMPSE_RETURN_IF_ERROR(e.bias(p + up + ".bias", v.n_ff));
        GLIMPSE_RETURN_IF_ERROR(e.matrix(p + down + ".weight", C, v.n_ff));
        GLIMPSE_RETURN_IF_ERROR(e.bias(p + down + ".bias", C));
    }
    if (llava) {
        GLIMPSE_RETURN_IF_ERROR(e.matrix("mm.0.weight", spec.text.n_embd, C));
        GLIMPSE_RETURN_IF_ERROR(e.bias("mm.0.bias", spec.text.n_embd));
        GLIMPSE_RETURN_IF_ERROR(e.matrix("mm.2.weight", spec.text.n_embd, spec.text.n_embd));
        GLIMPSE_RETURN_IF_ERROR(e.bias("mm.2.bias", spec.text.n_embd));
    } else {
        GLIMPSE_RETURN_IF_ERROR(e.norm("v.post_ln.weight", C));
        GLIMPSE_RETURN_IF_ERROR(e.bias("v.post_ln.bias", C));
        GLIMPSE_RETURN_IF_ERROR(e.matrix("mm.model.fc.weight", spec.text.n_embd, C * v.scale_factor * v.scale_factor));
    }
    return w.write(path);
}

}  // namespace

Result<VlmSpec> vlm_preset(const std::string& name) {
    VlmSpec s;
    if (name == "tiny") return s;
    if (name == "smolvlm-256m" || name == "smolvlm-500m") {
        // SigLIP-B/16 at 512 px, pixel shuffle 4, as in SmolVLM-256M/500M-Instruct.
        s.vision = VisionSpec{512, 16, 768, 12, 12, 3072, 4, 2048, 1e-6f};
        if (name == "smolvlm-256m") {
            s.text = TextSpec{576, 30, 9, 3, 1536, 49152, 180, 8192, 100000.0f, 1e-5f};
        } else {
            s.text = TextSpec{960, 32, 15, 5, 2560, 49152, 180, 8192, 100000.0f, 1e-5f};
        }
        s.weight_type = DType::f16;
        s.name = "random " + name + " layout";
        return s;
    }
    if (name == "llava-tiny") {
        s.layout = VlmLayout::llava;
        s.vision = VisionSpec{64, 16, 64, 3, 4, 128, 0, 0, 1e-5f};
        return s;
    }
    if (name == "llava-clip-b16") {
        s.layout = VlmLayout::llava;
        s.vision = VisionSpec{224, 16, 768, 12, 12, 3072, 0, 0, 1e-5f};
        s.text = TextSpec{576, 30, 9, 3, 1536, 49152, 180, 8192, 100000.0f, 1e-5f};
        s.weight_type = DType::f16;
        s.name = "random llava clip-b16 layout";
        return s;
    }
    return Status::error(StatusCode::invalid_argument,
                         "unknown preset '%s' (tiny, smolvlm-256m, smolvlm-500m, llava-tiny, llava-clip-b16)",
                         name.c_str());
}

Status write_random_vlm(const VlmSpec& spec, const std::string& text_path, const std::string& mmproj_path) {
    GLIMPSE_CHECK_OR_RETURN(spec.weight_type == DType::f32 || spec.weight_type == DType::f16 ||
                                spec.weight_type == DType::bf16,
                            invalid_argument, "weight type must be f32, f16 or bf16, not %s",
                            dtype_name(spec.weight_type));
    Rng rng(spec.seed);
    GLIMPSE_RETURN_IF_ERROR(write_text_model(spec, text_path, rng));
    return write_mmproj(spec, mmproj_path, rng);
}

}  // namespace glimpse::tools
