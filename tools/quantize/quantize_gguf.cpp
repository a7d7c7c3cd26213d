#include "tools/quantize/quantize_gguf.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <regex>
#include <thread>

#include "quant/quantize.h"
#include "quant/tensor_conversion.h"
#include "runtime/threadpool.h"

namespace glimpse::tools {
namespace {

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
bool ends_with(const std::string& s, const char* suffix) {
    const size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

constexpr FileType kFileTypes[] = {
    {"f32", 0, DType::f32},      {"f16", 1, DType::f16},      {"bf16", 32, DType::bf16},   {"q8_0", 7, DType::q8_0},
    {"q4_0", 2, DType::q4_0},    {"q4_1", 3, DType::q4_1},    {"q5_0", 8, DType::q5_0},    {"q5_1", 9, DType::q5_1},
    {"q4_k_s", 14, DType::q4_k}, {"q4_k_m", 15, DType::q4_k}, {"q5_k_s", 16, DType::q5_k}, {"q5_k_m", 17, DType::q5_k},
    {"q6_k", 18, DType::q6_k},
};
// llama_ftype ids the mix rules test for.
constexpr uint32_t kFtypeQ4KS = 14, kFtypeQ4KM = 15, kFtypeQ5KM = 17;

// ---------------------------------------------------------------- tensor rules

enum class Category { token_embd, attn_q, attn_v, attn_k, attn_qkv, attn_kv_b, attn_output, ffn_up, ffn_gate, ffn_down, output, other };

bool is_token_embd(const std::string& name) { return name == "token_embd.weight" || name == "per_layer_token_embd.weight"; }

Category category_of(const std::string& name) {
    if (name == "output.weight") return Category::output;
    if (is_token_embd(name)) return Category::token_embd;
    if (contains(name, "attn_qkv.weight")) return Category::attn_qkv;
    if (contains(name, "attn_kv_b.weight")) return Category::attn_kv_b;
    if (contains(name, "attn_v.weight")) return Category::attn_v;
    if (contains(name, "attn_k.weight")) return Category::attn_k;
    if (contains(name, "attn_q.weight")) return Category::attn_q;
    if (contains(name, "attn_output.weight")) return Category::attn_output;
    if (contains(name, "ffn_up")) return Category::ffn_up;
    if (contains(name, "ffn_gate")) return Category::ffn_gate;
    if (contains(name, "ffn_down")) return Category::ffn_down;
    return Category::other;
}

// attn_v-like tensors, the ones the mixes give more bits.
bool is_attn_v_like(Category c) { return c == Category::attn_v || c == Category::attn_qkv || c == Category::attn_kv_b; }

// ggml_n_dims: the number of dimensions up to the last one that is not 1.
int effective_dims(const GgufTensor& t) {
    for (int i = 3; i >= 1; --i) {
        if (t.ne[i] > 1) return i + 1;
    }
    return 1;
}

// Which tensors llama.cpp quantizes at all (tensor_allows_quantization).
bool allows_quantization(const GgufTensor& t, const QuantizeOptions& opt) {
    const std::string& n = t.name;
    if (effective_dims(t) < 2) return false;
    if (!ends_with(n, "weight")) return false;
    if (contains(n, "_norm.weight")) return false;
    if (opt.leave_output_tensor && n == "output.weight") return false;
    static const char* const kKeep[] = {
        "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
        "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
        "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
        "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
        "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        // multimodal projector / encoder tensors
        ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger",
        "a.rvq.codebook", "mm.a.code_embd",
    };
    for (const char* k : kKeep) {
        if (contains(n, k)) return false;
    }
    // learned absolute position embeddings and BERT token types
    if (n == "position_embd.weight" || n == "token_types.weight") return false;
    return true;
}

// llama-model-loader's tensor order: non-block tensors first (layer -1), then by
// block number, then by name.
int block_of(const std::string& name) {
    int layer = -1;
    if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) layer = -1;
    return layer;
}

bool tensor_order(const GgufTensor* a, const GgufTensor* b) {
    const int la = block_of(a->name), lb = block_of(b->name);
    if (la != lb) return la < lb;
    return a->name < b->name;
}

// Layers whose attn_v / ffn_down the _M mixes give more bits.
bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

struct ModelFacts {
    std::string arch;
    bool mmproj = false;
    int n_layer = 0;
    int n_expert = 1;
    bool is_70b = false;
};

Result<ModelFacts> model_facts(const GgufFile& f) {
    ModelFacts m;
    GLIMPSE_ASSIGN_OR_RETURN(std::string_view arch, f.get_string_or("general.architecture", ""));
    m.arch = std::string(arch);
    m.mmproj = m.arch == "clip";
    GLIMPSE_CHECK_OR_RETURN(!m.arch.empty(), invalid_argument,
                            "%s: no general.architecture, so this is not a model llama.cpp or glimpse can load",
                            f.path().c_str());
    // llama.cpp loads no hyperparameters for "clip" files (mmproj): 0 layers, no experts.
    if (m.mmproj) return m;
    GLIMPSE_ASSIGN_OR_RETURN(int64_t n_layer, f.get_int(m.arch + ".block_count"));
    GLIMPSE_ASSIGN_OR_RETURN(int64_t n_expert, f.get_int_or(m.arch + ".expert_count", 0));
    GLIMPSE_CHECK_OR_RETURN(n_layer > 0 && n_layer <= 100000, invalid_argument, "%s: %s.block_count = %lld",
                            f.path().c_str(), m.arch.c_str(), static_cast<long long>(n_layer));
    GLIMPSE_CHECK_OR_RETURN(n_expert >= 0 && n_expert <= 100000, invalid_argument, "%s: %s.expert_count = %lld",
                            f.path().c_str(), m.arch.c_str(), static_cast<long long>(n_expert));
    m.n_layer = static_cast<int>(n_layer);
    m.n_expert = std::max<int>(1, static_cast<int>(n_expert));
    // The 70B size class llama.cpp infers for these architectures (only its attn_v rule depends on it).
    if (m.arch == "llama" && m.n_layer == 80) {
        const GgufValue* h = f.find(m.arch + ".attention.head_count");
        const GgufValue* hkv = f.find(m.arch + ".attention.head_count_kv");
        m.is_70b = h && hkv && h->is_integer() && hkv->is_integer() && h->as_i64 != hkv->as_i64;
    } else if ((m.arch == "deci" || m.arch == "olmo" || m.arch == "qwen2") && m.n_layer == 80) {
        m.is_70b = true;
    } else if (m.arch == "jais2" && m.n_layer == 68) {
        m.is_70b = true;
    }
    return m;
}

// Counters llama.cpp advances while it walks the tensors in order.
struct MixState {
    int n_attention_wv = 0, i_attention_wv = 0;
    int i_ffn_down = 0, i_ffn_gate = 0, i_ffn_up = 0;
    bool tied_embeddings = true;
};

// Which layer a ffn tensor belongs to: the running counter, or (MoE) the name.
Result<int> ffn_layer(int counter, const ModelFacts& m, const std::string& name) {
    if (m.n_expert <= 1) return counter;
    const int layer = block_of(name);
    GLIMPSE_CHECK_OR_RETURN(layer >= 0 && layer < m.n_layer, invalid_argument,
                            "tensor '%s': cannot tell its layer (expected blk.N. with N < %d)", name.c_str(), m.n_layer);
    return layer;
}

// llama_tensor_get_type_impl for the file types glimpse writes.
Result<DType> mix_type(MixState& st, const ModelFacts& m, uint32_t ftype, DType type, const GgufTensor& t, Category cat,
                       std::string* note) {
    const bool falcon = m.arch == "falcon";
    auto set = [&](DType to, const char* why) {
        if (to != type) *note = why;
        type = to;
    };
    if (cat == Category::output || (st.tied_embeddings && cat == Category::token_embd)) {
        const int64_t block = dtype_info(type).block_size;
        if (falcon || t.ne[0] % block != 0) {
            set(DType::q8_0, falcon ? "falcon output" : "output/tied embedding, row length not a multiple of the block");
        } else if (type != DType::q8_0) {
            set(DType::q6_k, "output / tied token embedding");
        }
    } else if (cat == Category::token_embd) {
        // untied token embeddings keep the base type for these file types
    } else if (is_attn_v_like(cat)) {
        if ((ftype == kFtypeQ4KM || ftype == kFtypeQ5KM) && use_more_bits(st.i_attention_wv, st.n_attention_wv)) {
            set(DType::q6_k, "attn_v in a use_more_bits layer");
        } else if (ftype == kFtypeQ4KS && st.i_attention_wv < 4) {
            set(DType::q5_k, "one of the first 4 attn_v");
        }
        if (m.is_70b && type == DType::q4_k) set(DType::q5_k, "attn_v of a 70B-class model");
        if (m.n_expert == 8) set(DType::q8_0, "attn_v of an 8-expert model");
        ++st.i_attention_wv;
    } else if (cat == Category::attn_k) {
        if (m.n_expert == 8) set(DType::q8_0, "attn_k of an 8-expert model");
    } else if (cat == Category::ffn_down) {
        GLIMPSE_ASSIGN_OR_RETURN(int i_layer, ffn_layer(st.i_ffn_down, m, t.name));
        const int n_layer = m.n_layer;
        if (ftype == kFtypeQ4KM) {
            if (falcon) {
                if (i_layer < n_layer / 16) set(DType::q6_k, "falcon ffn_down, first 16th");
                else if (use_more_bits(i_layer, n_layer)) set(DType::q5_k, "falcon ffn_down in a use_more_bits layer");
                else set(DType::q4_k, "falcon ffn_down");
            } else if (use_more_bits(i_layer, n_layer)) {
                set(DType::q6_k, "ffn_down in a use_more_bits layer");
            }
        } else if (ftype == kFtypeQ5KM && use_more_bits(i_layer, n_layer)) {
            set(DType::q6_k, "ffn_down in a use_more_bits layer");
        } else if (ftype == kFtypeQ4KS && !falcon && i_layer < n_layer / 8) {
            set(DType::q5_k, "ffn_down in the first eighth of the layers");
        }
        ++st.i_ffn_down;
    } else if (cat == Category::attn_output) {
        if (!falcon && m.n_expert == 8 && (ftype == kFtypeQ4KS || ftype == kFtypeQ4KM)) {
            set(DType::q5_k, "attn_output of an 8-expert model");
        }
    } else if (cat == Category::ffn_gate) {
        GLIMPSE_RETURN_IF_ERROR(ffn_layer(st.i_ffn_gate, m, t.name).status());
        ++st.i_ffn_gate;
    } else if (cat == Category::ffn_up) {
        GLIMPSE_RETURN_IF_ERROR(ffn_layer(st.i_ffn_up, m, t.name).status());
        ++st.i_ffn_up;
    }
    return type;
}

// tensor_type_fallback: a type whose block does not divide the row length.
Result<DType> row_length_fallback(DType type, const GgufTensor& t, std::string* note) {
    const int64_t ncols = t.ne[0];
    if (ncols % dtype_info(type).block_size == 0) return type;
    DType to;
    switch (type) {
        case DType::q4_k: to = DType::q5_0; break;
        case DType::q5_k: to = DType::q5_1; break;
        case DType::q6_k: to = DType::q8_0; break;
        default:
            return Status::error(StatusCode::unsupported,
                                 "tensor '%s': row length %lld is not a multiple of the %s block size %lld and llama.cpp "
                                 "defines no fallback for %s (use --tensor-type '%s=f16')",
                                 t.name.c_str(), static_cast<long long>(ncols), dtype_name(type),
                                 static_cast<long long>(dtype_info(type).block_size), dtype_name(type), t.name.c_str());
    }
    if (ncols % dtype_info(to).block_size != 0) to = DType::f16;
    *note = std::string("row length ") + std::to_string(ncols) + " not a multiple of " +
            std::to_string(dtype_info(type).block_size) + ": " + dtype_name(type) + " -> " + dtype_name(to);
    return to;
}

std::string shape_string(const TensorPlan& p) {
    std::string s = "[";
    for (int i = 0; i < p.n_dims; ++i) s += (i ? ", " : "") + std::to_string(p.ne[i]);
    return s + "]";
}

// ---------------------------------------------------------------- GGUF writing

class ByteSink {
public:
    template <class T>
    void put(T v) {
        uint8_t b[sizeof(T)];
        std::memcpy(b, &v, sizeof(T));
        bytes.insert(bytes.end(), b, b + sizeof(T));
    }
    void put_string(std::string_view s) {
        put<uint64_t>(s.size());
        bytes.insert(bytes.end(), s.begin(), s.end());
    }
    std::vector<uint8_t> bytes;
};

// Re-encodes a metadata value as it was stored (type tag excluded).
void encode_value(ByteSink& out, const GgufValue& v) {
    switch (v.type) {
        case GgufType::u8: out.put<uint8_t>(static_cast<uint8_t>(v.as_u64)); return;
        case GgufType::i8: out.put<int8_t>(static_cast<int8_t>(v.as_i64)); return;
        case GgufType::u16: out.put<uint16_t>(static_cast<uint16_t>(v.as_u64)); return;
        case GgufType::i16: out.put<int16_t>(static_cast<int16_t>(v.as_i64)); return;
        case GgufType::u32: out.put<uint32_t>(static_cast<uint32_t>(v.as_u64)); return;
        case GgufType::i32: out.put<int32_t>(static_cast<int32_t>(v.as_i64)); return;
        case GgufType::u64: out.put<uint64_t>(v.as_u64); return;
        case GgufType::i64: out.put<int64_t>(v.as_i64); return;
        case GgufType::f32: out.put<float>(static_cast<float>(v.as_f64)); return;
        case GgufType::f64: out.put<double>(v.as_f64); return;
        case GgufType::boolean: out.put<uint8_t>(v.as_u64 ? 1 : 0); return;
        case GgufType::string: out.put_string(v.as_string); return;
        case GgufType::array: {
            out.put<uint32_t>(static_cast<uint32_t>(v.elem_type));
            out.put<uint64_t>(v.count);
            if (const size_t size = gguf_type_size(v.elem_type)) {
                out.bytes.insert(out.bytes.end(), v.packed, v.packed + v.count * size);
            } else if (v.elem_type == GgufType::string) {
                for (std::string_view s : v.strings) out.put_string(s);
            } else {
                for (const GgufValue& e : v.arrays) encode_value(out, e);
            }
            return;
        }
    }
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

class OutputFile {
public:
    ~OutputFile() {
        if (f_) std::fclose(f_);
        if (!committed_ && !tmp_path_.empty()) std::remove(tmp_path_.c_str());
    }
    Status open(const std::string& path) {
        path_ = path;
        tmp_path_ = path + ".partial";
        f_ = std::fopen(tmp_path_.c_str(), "wb");
        if (!f_) {
            const int err = errno;
            tmp_path_.clear();
            return Status::error(StatusCode::io_error, "%s: cannot open for writing (%s)", path.c_str(), std::strerror(err));
        }
        return Status::ok();
    }
    Status write(const void* data, size_t n) {
        if (n && std::fwrite(data, 1, n, f_) != n) {
            return Status::error(StatusCode::io_error, "%s: write failed after %llu bytes (%s)", path_.c_str(),
                                 static_cast<unsigned long long>(written_), std::strerror(errno));
        }
        written_ += n;
        return Status::ok();
    }
    Status pad_to(uint64_t alignment) {
        static const uint8_t zeros[256] = {};
        uint64_t n = align_up(written_, alignment) - written_;
        while (n) {
            const size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof(zeros)));
            GLIMPSE_RETURN_IF_ERROR(write(zeros, k));
            n -= k;
        }
        return Status::ok();
    }
    Status commit() {
        const int rc = std::fclose(f_);
        f_ = nullptr;
        GLIMPSE_CHECK_OR_RETURN(rc == 0, io_error, "%s: closing failed (%s)", path_.c_str(), std::strerror(errno));
        if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
            return Status::error(StatusCode::io_error, "%s: cannot move %s into place (%s)", path_.c_str(),
                                 tmp_path_.c_str(), std::strerror(errno));
        }
        committed_ = true;
        return Status::ok();
    }
    uint64_t written() const { return written_; }

private:
    std::FILE* f_ = nullptr;
    std::string path_, tmp_path_;
    uint64_t written_ = 0;
    bool committed_ = false;
};

std::string human_bytes(uint64_t b) {
    char buf[64];
    if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
    else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", b / 1048576.0);
    else if (b >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
    else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
    return buf;
}

}  // namespace

// ---------------------------------------------------------------- parsing

Result<DType> parse_tensor_type(const std::string& name) {
    const std::string n = lower(name);
    for (uint32_t id = 0; id < 64; ++id) {
        const DTypeInfo* info = dtype_info(id);
        if (!info || n != info->name) continue;
        const DType type = static_cast<DType>(id);
        GLIMPSE_CHECK_OR_RETURN(quantize_supported(type), unsupported,
                                "tensor type '%s' cannot be written by glimpse (supported: f32, f16, bf16, q8_0, q4_0, "
                                "q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)",
                                name.c_str());
        return type;
    }
    return Status::error(StatusCode::invalid_argument,
                         "unknown tensor type '%s' (supported: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, "
                         "q5_k, q6_k)",
                         name.c_str());
}

Result<TensorTypeOverride> parse_tensor_type_override(const std::string& arg) {
    const size_t eq = arg.find('=');
    GLIMPSE_CHECK_OR_RETURN(eq != std::string::npos, invalid_argument,
                            "--tensor-type '%s': expected NAME_REGEX=TYPE, e.g. attn_v=q8_0", arg.c_str());
    GLIMPSE_CHECK_OR_RETURN(eq > 0, invalid_argument, "--tensor-type '%s': missing tensor name pattern", arg.c_str());
    GLIMPSE_CHECK_OR_RETURN(eq + 1 < arg.size(), invalid_argument, "--tensor-type '%s': missing type", arg.c_str());
    TensorTypeOverride o;
    o.pattern = lower(arg.substr(0, eq));
    try {
        std::regex check(o.pattern);
    } catch (const std::regex_error& e) {
        return Status::error(StatusCode::invalid_argument, "--tensor-type '%s': invalid regular expression (%s)",
                             arg.c_str(), e.what());
    }
    Result<DType> type = parse_tensor_type(arg.substr(eq + 1));
    if (!type.is_ok()) return type.status().with_context("--tensor-type '" + arg + "'");
    o.type = *type;
    return o;
}

std::string file_type_names() {
    std::string s;
    for (const FileType& f : kFileTypes) s += (s.empty() ? "" : ", ") + std::string(f.name);
    return s + " (q4_k = q4_k_m, q5_k = q5_k_m)";
}

Result<FileType> parse_file_type(const std::string& name) {
    std::string n = lower(name);
    if (n == "q4_k") n = "q4_k_m";
    if (n == "q5_k") n = "q5_k_m";
    for (const FileType& f : kFileTypes) {
        if (n == f.name) return f;
    }
    return Status::error(StatusCode::invalid_argument, "unknown quantization type '%s' (supported: %s)", name.c_str(),
                         file_type_names().c_str());
}

// ---------------------------------------------------------------- planning

Result<QuantizePlan> plan_quantization(const GgufFile& in, const QuantizeOptions& opt) {
    QuantizePlan plan;
    GLIMPSE_ASSIGN_OR_RETURN(plan.file_type, parse_file_type(opt.type));
    GLIMPSE_ASSIGN_OR_RETURN(ModelFacts facts, model_facts(in));
    plan.mmproj = facts.mmproj;
    const uint32_t ftype = plan.file_type.llama_ftype;
    const DType base = plan.file_type.base;
    const bool base_quantized = dtype_is_quantized(base);

    std::vector<std::pair<std::regex, DType>> overrides;
    for (const TensorTypeOverride& o : opt.tensor_types) {
        try {
            overrides.emplace_back(std::regex(o.pattern), o.type);
        } catch (const std::regex_error& e) {
            return Status::error(StatusCode::invalid_argument, "--tensor-type pattern '%s': %s", o.pattern.c_str(),
                                 e.what());
        }
    }

    std::vector<const GgufTensor*> order;
    for (const GgufTensor& t : in.tensors()) order.push_back(&t);
    std::stable_sort(order.begin(), order.end(), tensor_order);

    MixState st;
    for (const GgufTensor* t : order) {
        const Category c = category_of(t->name);
        if (is_attn_v_like(c)) ++st.n_attention_wv;
        if (c == Category::output) st.tied_embeddings = false;
    }

    for (const GgufTensor* tp : order) {
        const GgufTensor& t = *tp;
        TensorPlan p;
        p.name = t.name;
        p.n_dims = effective_dims(t);
        for (int i = 0; i < 4; ++i) p.ne[i] = t.ne[i];
        p.from = t.type;
        p.to = t.type;
        if (allows_quantization(t, opt)) {
            const Category cat = category_of(t.name);
            if (opt.token_embedding_type && cat == Category::token_embd) {
                p.to = *opt.token_embedding_type;
                p.note = "--token-embedding-type";
            } else if (opt.output_tensor_type && cat == Category::output) {
                p.to = *opt.output_tensor_type;
                p.note = "--output-tensor-type";
            } else {
                p.to = base;
                if (base_quantized) {
                    bool manual = false;
                    const std::string name = t.name;
                    for (const auto& [re, type] : overrides) {
                        if (std::regex_search(name, re)) {
                            if (type != p.to) p.note = std::string("--tensor-type ") + dtype_name(type);
                            p.to = type;
                            manual = true;
                            break;
                        }
                    }
                    if (!manual && !opt.pure) {
                        GLIMPSE_ASSIGN_OR_RETURN(p.to, mix_type(st, facts, ftype, p.to, t, cat, &p.note));
                    }
                    std::string fallback_note;
                    GLIMPSE_ASSIGN_OR_RETURN(p.to, row_length_fallback(p.to, t, &fallback_note));
                    if (!fallback_note.empty()) p.note = p.note.empty() ? fallback_note : p.note + "; " + fallback_note;
                }
            }
        }
        // The conversion has to be possible (the rules --numerics fast follows too).
        GLIMPSE_RETURN_IF_ERROR(check_tensor_conversion(p.from, p.to, t.ne[0],
                                                        opt.allow_requantize ? Requantize::allow : Requantize::refuse)
                                    .with_context("tensor '" + t.name + "'"));
        p.bytes_in = t.nbytes;
        p.bytes_out = static_cast<uint64_t>(dtype_row_bytes(p.to, t.ne[0]) * (t.n_elements() / t.ne[0]));
        plan.tensors.push_back(std::move(p));
    }
    return plan;
}

// ---------------------------------------------------------------- quantize

Status quantize_gguf(const QuantizeOptions& opt) {
    GLIMPSE_CHECK_OR_RETURN(!opt.input_path.empty() && !opt.output_path.empty(), invalid_argument,
                            "quantize: input and output paths are required");
    {
        std::error_code ec;
        GLIMPSE_CHECK_OR_RETURN(!std::filesystem::equivalent(opt.input_path, opt.output_path, ec), invalid_argument,
                                "quantize: input and output are the same file: %s", opt.output_path.c_str());
    }
    Result<std::unique_ptr<GgufFile>> opened = GgufFile::open(opt.input_path);
    if (!opened.is_ok()) return opened.status().with_context("quantize: reading input");
    const GgufFile& in = **opened;
    GLIMPSE_ASSIGN_OR_RETURN(QuantizePlan plan, plan_quantization(in, opt));
    if (opt.log && !opt.tensor_types.empty() && !dtype_is_quantized(plan.file_type.base)) {
        opt.log(std::string("warning: --tensor-type is ignored for file type ") + plan.file_type.name +
                " (llama-quantize applies overrides only to quantized file types)");
    }

    // llama.cpp's loader validates every tensor before quantizing (check_tensors):
    // no NaN/inf values, no non-finite block scales.
    for (const GgufTensor& t : in.tensors()) {
        if (!quantized_scales_finite(t.type, t.data, t.n_elements())) {
            return Status::error(StatusCode::invalid_argument, "%s: tensor '%s' (%s) holds NaN or infinite values",
                                 in.path().c_str(), t.name.c_str(), dtype_name(t.type));
        }
    }

    // ---- header, metadata, tensor infos
    const uint64_t alignment = in.alignment();
    ByteSink head;
    head.put<uint32_t>(0x46554747);  // "GGUF"
    head.put<uint32_t>(3);
    head.put<uint64_t>(plan.tensors.size());
    std::vector<const std::pair<std::string, GgufValue>*> kept;
    for (const auto& kv : in.metadata()) {
        const std::string& k = kv.first;
        if (k == "split.no" || k == "split.count" || k == "split.tensors.count" ||
            k == "general.quantization_version" || k == "general.file_type") {
            continue;
        }
        kept.push_back(&kv);
    }
    head.put<uint64_t>(kept.size() + 2);
    for (const auto* kv : kept) {
        head.put_string(kv->first);
        head.put<uint32_t>(static_cast<uint32_t>(kv->second.type));
        encode_value(head, kv->second);
    }
    head.put_string("general.quantization_version");
    head.put<uint32_t>(static_cast<uint32_t>(GgufType::u32));
    head.put<uint32_t>(2);  // GGML_QNT_VERSION
    head.put_string("general.file_type");
    head.put<uint32_t>(static_cast<uint32_t>(GgufType::u32));
    head.put<uint32_t>(plan.file_type.llama_ftype);
    uint64_t offset = 0;
    for (const TensorPlan& p : plan.tensors) {
        head.put_string(p.name);
        head.put<uint32_t>(static_cast<uint32_t>(p.n_dims));
        for (int i = 0; i < p.n_dims; ++i) head.put<uint64_t>(static_cast<uint64_t>(p.ne[i]));
        head.put<uint32_t>(static_cast<uint32_t>(p.to));
        head.put<uint64_t>(offset);
        offset = align_up(offset + p.bytes_out, alignment);
    }

    OutputFile out;
    GLIMPSE_RETURN_IF_ERROR(out.open(opt.output_path));
    GLIMPSE_RETURN_IF_ERROR(out.write(head.bytes.data(), head.bytes.size()));
    GLIMPSE_RETURN_IF_ERROR(out.pad_to(alignment));

    // ---- tensor data, one tensor at a time
    const int threads = opt.threads > 0 ? opt.threads : std::max(1u, std::thread::hardware_concurrency());
    ThreadPool pool(threads);
    std::vector<uint8_t> q;
    uint64_t total_in = 0, total_out = 0;
    int index = 0;
    for (const TensorPlan& p : plan.tensors) {
        ++index;
        const GgufTensor& t = *in.find_tensor(p.name);
        const uint8_t* data = t.data;
        if (p.to != p.from) {
            q.resize(p.bytes_out);
            const int64_t ncols = t.ne[0], nrows = t.n_elements() / ncols;
            const Status converted = convert_tensor_rows(p.from, t.data, p.to, q.data(), nrows, ncols, &pool);
            if (!converted.is_ok()) {
                return converted.with_context("tensor '" + p.name + "' (" + dtype_name(p.from) + " -> " +
                                              dtype_name(p.to) + ", quantized data validation as in llama-quantize)");
            }
            data = q.data();
        }
        GLIMPSE_RETURN_IF_ERROR(out.write(data, p.bytes_out));
        GLIMPSE_RETURN_IF_ERROR(out.pad_to(alignment));
        total_in += p.bytes_in;
        total_out += p.bytes_out;
        if (opt.log) {
            char line[512];
            std::snprintf(line, sizeof line, "[%4d/%4zu] %-36s %-18s %5s -> %-5s %10llu -> %10llu bytes%s%s", index,
                          plan.tensors.size(), p.name.c_str(), shape_string(p).c_str(), dtype_name(p.from),
                          dtype_name(p.to), static_cast<unsigned long long>(p.bytes_in),
                          static_cast<unsigned long long>(p.bytes_out), p.note.empty() ? "" : "  (",
                          p.note.empty() ? "" : (p.note + ")").c_str());
            opt.log(line);
        }
    }
    const uint64_t file_size = out.written();
    // Every input tensor was read from the mapping: if the input was truncated or rewritten in
    // place meanwhile, some of what was written is zeros, so the output is not committed.
    GLIMPSE_RETURN_IF_ERROR(in.mapping()->check_intact().with_context("quantize: reading input"));
    GLIMPSE_RETURN_IF_ERROR(out.commit());
    if (opt.log) {
        char line[512];
        std::snprintf(line, sizeof line,
                      "%s -> %s (%s, general.file_type %u): tensors %s -> %s (%.1f%%), file %s -> %s",
                      opt.input_path.c_str(), opt.output_path.c_str(), plan.file_type.name, plan.file_type.llama_ftype,
                      human_bytes(total_in).c_str(), human_bytes(total_out).c_str(),
                      total_in ? 100.0 * static_cast<double>(total_out) / static_cast<double>(total_in) : 100.0,
                      human_bytes(in.file_size()).c_str(), human_bytes(file_size).c_str());
        opt.log(line);
    }
    return Status::ok();
}

}  // namespace glimpse::tools
