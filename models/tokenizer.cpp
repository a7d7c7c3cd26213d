#include "models/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <queue>

namespace glimpse {

namespace {

// ---------------------------------------------------------------------------
// Unicode: general categories (generated tables) and UTF-8 handling.
// ---------------------------------------------------------------------------

struct UnicodeRangeStart {
    uint32_t first;
    uint8_t category;
};

#include "models/unicode_tables.inc"

enum UnicodeCategory : uint8_t {
    kCatUndefined = 0,
    kCatLetter = 1,
    kCatNumber = 2,
};

// Character classes the pre-tokenizer regexes distinguish. kClsNone marks a position
// outside the piece being split (the regex sees the end of the input there).
enum CharClass : uint8_t {
    kClsNone = 0,
    kClsLetter = 1,  // \p{L}
    kClsNumber = 2,  // \p{N}
    kClsSpace = 3,   // \s (Unicode White_Space)
    kClsOther = 4,   // anything else: [^\s\p{L}\p{N}]
};

uint8_t unicode_category(uint32_t cp) {
    if (cp >= kUnicodeTablesMaxCodepoint) return kCatUndefined;
    const UnicodeRangeStart* begin = kUnicodeCategoryStarts;
    const UnicodeRangeStart* end = kUnicodeCategoryStarts + kUnicodeCategoryStartsCount;
    const UnicodeRangeStart* it =
        std::upper_bound(begin, end, cp, [](uint32_t v, const UnicodeRangeStart& r) { return v < r.first; });
    return (it - 1)->category;
}

bool unicode_is_white_space(uint32_t cp) {
    return std::binary_search(kUnicodeWhiteSpace, kUnicodeWhiteSpace + kUnicodeWhiteSpaceCount, cp);
}

uint8_t char_class_slow(uint32_t cp) {
    if (unicode_is_white_space(cp)) return kClsSpace;
    switch (unicode_category(cp)) {
        case kCatLetter: return kClsLetter;
        case kCatNumber: return kClsNumber;
        default: return kClsOther;
    }
}

uint8_t char_class(uint32_t cp) {
    static const std::array<uint8_t, 128> ascii = [] {
        std::array<uint8_t, 128> t{};
        for (uint32_t c = 0; c < 128; ++c) t[c] = char_class_slow(c);
        return t;
    }();
    return cp < 128 ? ascii[cp] : char_class_slow(cp);
}

constexpr uint32_t kReplacementChar = 0xFFFD;

// Decodes like llama.cpp's unicode_cpts_from_utf8: a lead byte whose continuation bytes
// are missing or malformed becomes U+FFFD and only that byte is consumed; overlong forms
// and surrogates are accepted as decoded. Code points above U+10FFFF (where llama.cpp
// throws) also become U+FFFD.
void decode_utf8_lenient(std::string_view s, std::vector<uint32_t>& out) {
    out.clear();
    out.reserve(s.size());
    const size_t n = s.size();
    auto cont = [&](size_t i) { return (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80; };
    size_t i = 0;
    while (i < n) {
        const uint32_t b0 = static_cast<uint8_t>(s[i]);
        if (b0 < 0x80) {
            out.push_back(b0);
            i += 1;
        } else if (!(b0 & 0x40)) {
            out.push_back(kReplacementChar);
            i += 1;
        } else if (!(b0 & 0x20)) {
            if (i + 1 < n && cont(i + 1)) {
                out.push_back(((b0 & 0x1F) << 6) | (static_cast<uint8_t>(s[i + 1]) & 0x3F));
                i += 2;
            } else {
                out.push_back(kReplacementChar);
                i += 1;
            }
        } else if (!(b0 & 0x10)) {
            if (i + 2 < n && cont(i + 1) && cont(i + 2)) {
                out.push_back(((b0 & 0x0F) << 12) | ((static_cast<uint8_t>(s[i + 1]) & 0x3F) << 6) |
                              (static_cast<uint8_t>(s[i + 2]) & 0x3F));
                i += 3;
            } else {
                out.push_back(kReplacementChar);
                i += 1;
            }
        } else if (!(b0 & 0x08)) {
            if (i + 3 < n && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
                const uint32_t cp = ((b0 & 0x07) << 18) | ((static_cast<uint8_t>(s[i + 1]) & 0x3F) << 12) |
                                    ((static_cast<uint8_t>(s[i + 2]) & 0x3F) << 6) |
                                    (static_cast<uint8_t>(s[i + 3]) & 0x3F);
                out.push_back(cp <= 0x10FFFF ? cp : kReplacementChar);
                i += 4;
            } else {
                out.push_back(kReplacementChar);
                i += 1;
            }
        } else {
            out.push_back(kReplacementChar);
            i += 1;
        }
    }
}

void append_utf8(uint32_t cp, std::string& out) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

// ---------------------------------------------------------------------------
// GPT-2 byte <-> character mapping: printable Latin-1 bytes stand for themselves,
// the other 68 bytes get the code points 256, 257, ... in byte order.
// ---------------------------------------------------------------------------

struct ByteMapping {
    std::array<uint32_t, 256> byte_to_cp{};
    std::array<std::string, 256> byte_to_utf8;
    std::array<int16_t, 324> cp_to_byte{};  // -1: not a byte character

    ByteMapping() {
        auto self = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
        uint32_t next = 256;
        cp_to_byte.fill(-1);
        for (int b = 0; b < 256; ++b) {
            byte_to_cp[b] = self(b) ? static_cast<uint32_t>(b) : next++;
            cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
            append_utf8(byte_to_cp[b], byte_to_utf8[b]);
        }
    }
};

const ByteMapping& byte_mapping() {
    static const ByteMapping m;
    return m;
}

std::string gpt2_encode_bytes(std::string_view raw) {
    const ByteMapping& m = byte_mapping();
    std::string out;
    out.reserve(raw.size() * 2);
    for (char c : raw) out += m.byte_to_utf8[static_cast<uint8_t>(c)];
    return out;
}

// llama.cpp's llama_decode_text: each character of a byte-level token maps back to one
// byte; a character outside the mapping is spelled out as "[UNK_BYTE_0x<hex><token>]".
std::string gpt2_decode_text(const std::string& text) {
    const ByteMapping& m = byte_mapping();
    std::vector<uint32_t> cps;
    decode_utf8_lenient(text, cps);
    std::string out;
    for (uint32_t cp : cps) {
        if (cp < m.cp_to_byte.size() && m.cp_to_byte[cp] >= 0) {
            out.push_back(static_cast<char>(m.cp_to_byte[cp]));
        } else {
            std::string utf8;
            append_utf8(cp, utf8);
            out += "[UNK_BYTE_0x";
            static const char* hex = "0123456789abcdef";
            for (char c : utf8) {
                out.push_back(hex[static_cast<uint8_t>(c) >> 4]);
                out.push_back(hex[static_cast<uint8_t>(c) & 15]);
            }
            out += text;
            out += "]";
        }
    }
    return out;
}

const char kSpmSpace[] = "\xe2\x96\x81";  // U+2581, SentencePiece's visible space

void replace_all(std::string& s, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(s.size());
    size_t pos = 0;
    while (true) {
        size_t m = s.find(from, pos);
        if (m == std::string::npos) break;
        out.append(s, pos, m - pos);
        out.append(to);
        pos = m + from.size();
    }
    out.append(s, pos, std::string::npos);
    s.swap(out);
}

// ---------------------------------------------------------------------------
// Pre-tokenizers. Each splits cps[b, e) into words and appends the end index of every
// word to `ends`. They follow llama.cpp's hand-written matchers (unicode.cpp), which
// are what llama.cpp actually runs for these regexes, including where they differ from
// a backtracking regex engine.
// ---------------------------------------------------------------------------

struct SplitInput {
    const uint32_t* cps;
    const uint8_t* cls;
};

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const SplitInput& in, size_t b, size_t e, std::vector<size_t>& ends) {
    auto cls_at = [&](size_t p) -> uint8_t { return p < e ? in.cls[p] : static_cast<uint8_t>(kClsNone); };
    size_t pos = b;
    while (pos < e) {
        const uint32_t c = in.cps[pos];
        if (c == '\'' && pos + 1 < e) {
            const uint32_t c1 = in.cps[pos + 1];
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                pos += 2;
                ends.push_back(pos);
                continue;
            }
            if (pos + 2 < e) {
                const uint32_t c2 = in.cps[pos + 2];
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    pos += 3;
                    ends.push_back(pos);
                    continue;
                }
            }
        }
        // An optional leading U+0020 joins a run of letters, numbers or other symbols.
        const uint8_t k = (c == ' ') ? cls_at(pos + 1) : in.cls[pos];
        if (k == kClsLetter || k == kClsNumber || k == kClsOther) {
            if (c == ' ') ++pos;
            while (cls_at(pos) == k) ++pos;
            ends.push_back(pos);
            continue;
        }
        size_t n_space = 0;
        while (cls_at(pos + n_space) == kClsSpace) ++n_space;
        if (n_space > 1 && pos + n_space < e) {
            // \s+(?!\S): leave the last space to prefix the following word.
            pos += n_space - 1;
        } else if (n_space > 0) {
            pos += n_space;
        } else {
            pos += 1;
        }
        ends.push_back(pos);
    }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// (Llama 3), or with \p{N} instead of \p{N}{1,3} (Qwen2).
void split_llama3(const SplitInput& in, size_t b, size_t e, bool digit_groups_of_3, std::vector<size_t>& ends) {
    auto cls_at = [&](size_t p) -> uint8_t { return p < e ? in.cls[p] : static_cast<uint8_t>(kClsNone); };
    auto lower = [](uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; };
    size_t last = b;
    auto emit = [&](size_t p) {
        if (p > last) ends.push_back(p);
        last = p;
    };
    size_t pos = b;
    while (pos < e) {
        const uint32_t c = in.cps[pos];
        const uint8_t k = in.cls[pos];
        if (c == '\'' && pos + 1 < e) {
            // Only ASCII letters lower-case to s/t/m/d/r/e/v/l, so ASCII folding is exact.
            const uint32_t c1 = lower(in.cps[pos + 1]);
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                pos += 2;
                emit(pos);
                continue;
            }
            if (pos + 2 < e) {
                const uint32_t c2 = lower(in.cps[pos + 2]);
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    pos += 3;
                    emit(pos);
                    continue;
                }
            }
        }
        if (!(c == '\r' || c == '\n' || k == kClsNumber)) {
            if (k == kClsLetter || cls_at(pos + 1) == kClsLetter) {
                ++pos;
                while (cls_at(pos) == kClsLetter) ++pos;
                emit(pos);
                continue;
            }
        }
        if (k == kClsNumber) {
            if (digit_groups_of_3) {
                size_t group_start = pos;
                while (cls_at(pos) == kClsNumber) {
                    if (++pos - group_start >= 3) {
                        emit(pos);
                        group_start = pos;
                    }
                }
                emit(pos);
            } else {
                ++pos;
                emit(pos);
            }
            continue;
        }
        const uint8_t k2 = (c == ' ') ? cls_at(pos + 1) : k;
        if (k2 != kClsLetter && k2 != kClsNumber && k2 != kClsSpace) {
            if (c == ' ') ++pos;
            while (cls_at(pos) == kClsOther) ++pos;
            while (pos < e && (in.cps[pos] == '\r' || in.cps[pos] == '\n')) ++pos;
            emit(pos);
            continue;
        }
        size_t n_space = 0;
        size_t after_last_newline = 0;
        bool has_newline = false;
        while (cls_at(pos + n_space) == kClsSpace) {
            const uint32_t cs = in.cps[pos + n_space];
            if (cs == '\r' || cs == '\n') {
                after_last_newline = pos + n_space + 1;
                has_newline = true;
            }
            ++n_space;
        }
        if (has_newline) {
            pos = after_last_newline;
        } else if (n_space > 1 && pos + n_space < e) {
            pos += n_space - 1;
        } else if (n_space > 0) {
            pos += n_space;
        } else {
            pos += 1;
        }
        emit(pos);
    }
}

// ---------------------------------------------------------------------------
// Vocabulary metadata helpers.
// ---------------------------------------------------------------------------

bool text_in(std::string_view t, std::initializer_list<std::string_view> list) {
    for (std::string_view s : list) {
        if (t == s) return true;
    }
    return false;
}

// Texts llama.cpp uses to find special tokens the converter did not name (llama-vocab.cpp).
const std::initializer_list<std::string_view> kEotTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>"};
const std::initializer_list<std::string_view> kEomTexts = {"<|eom_id|>"};
const std::initializer_list<std::string_view> kFimPreTexts = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"};
const std::initializer_list<std::string_view> kFimSufTexts = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>",
    "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"};
const std::initializer_list<std::string_view> kFimMidTexts = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"};
const std::initializer_list<std::string_view> kFimPadTexts = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
                                                               "[PAD]"};
const std::initializer_list<std::string_view> kFimRepTexts = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                                               "<REPO>", "<reponame>"};
const std::initializer_list<std::string_view> kFimSepTexts = {"<|file_sep|>"};
const std::initializer_list<std::string_view> kEogTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~["};

struct PreTokenizerEntry {
    std::string_view name;
    Tokenizer::PreTokenizer kind;
    bool ignore_merges;
    bool add_bos;
};

const PreTokenizerEntry kPreTokenizers[] = {
    {"smollm", Tokenizer::PreTokenizer::digits_gpt2, false, false},
    {"starcoder", Tokenizer::PreTokenizer::digits_gpt2, false, false},
    {"refact", Tokenizer::PreTokenizer::digits_gpt2, false, false},
    {"command-r", Tokenizer::PreTokenizer::digits_gpt2, false, false},
    {"codeshell", Tokenizer::PreTokenizer::digits_gpt2, false, false},
    {"exaone", Tokenizer::PreTokenizer::digits_gpt2, false, false},
    {"minerva-7b", Tokenizer::PreTokenizer::digits_gpt2, false, false},
    {"mellum2", Tokenizer::PreTokenizer::digits_gpt2, false, false},
    {"gpt-2", Tokenizer::PreTokenizer::gpt2, false, false},
    {"phi-2", Tokenizer::PreTokenizer::gpt2, false, false},
    {"mpt", Tokenizer::PreTokenizer::gpt2, false, false},
    {"olmo", Tokenizer::PreTokenizer::gpt2, false, false},
    {"jais", Tokenizer::PreTokenizer::gpt2, false, false},
    {"roberta-bpe", Tokenizer::PreTokenizer::gpt2, false, false},
    {"mellum", Tokenizer::PreTokenizer::gpt2, false, false},
    {"exaone4", Tokenizer::PreTokenizer::gpt2, false, false},
    {"trillion", Tokenizer::PreTokenizer::gpt2, false, false},
    {"llama3", Tokenizer::PreTokenizer::llama3, true, true},
    {"llama-v3", Tokenizer::PreTokenizer::llama3, true, true},
    {"llama-bpe", Tokenizer::PreTokenizer::llama3, true, true},
    {"falcon3", Tokenizer::PreTokenizer::llama3, true, true},
    {"falcon-h1", Tokenizer::PreTokenizer::llama3, true, true},
    {"pixtral", Tokenizer::PreTokenizer::llama3, true, true},
    {"lfm2", Tokenizer::PreTokenizer::llama3, true, true},
    {"dbrx", Tokenizer::PreTokenizer::llama3, false, false},
    {"smaug-bpe", Tokenizer::PreTokenizer::llama3, false, false},
    {"qwen2", Tokenizer::PreTokenizer::qwen2, false, false},
    {"deepseek-r1-qwen", Tokenizer::PreTokenizer::qwen2, false, false},
    {"stablelm2", Tokenizer::PreTokenizer::qwen2, false, false},
    {"megrez", Tokenizer::PreTokenizer::qwen2, false, false},
};

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// "<0xHH>" -> HH, or -1.
int parse_byte_token(std::string_view t) {
    if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
    const int hi = hex_value(t[3]), lo = hex_value(t[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

uint64_t merge_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

Result<Tokenizer> Tokenizer::from_gguf(const GgufFile& gguf) {
    Tokenizer t;
    const std::string& path = gguf.path();
    GLIMPSE_ASSIGN_OR_RETURN(std::string_view model_name, gguf.get_string("tokenizer.ggml.model"));
    if (model_name == "gpt2") {
        t.model_ = Model::bpe;
        GLIMPSE_ASSIGN_OR_RETURN(std::string_view pre, gguf.get_string_or("tokenizer.ggml.pre", ""));
        t.pre_name_ = std::string(pre);
        const PreTokenizerEntry* entry = nullptr;
        for (const PreTokenizerEntry& e : kPreTokenizers) {
            if (e.name == pre) entry = &e;
        }
        if (!entry) {
            return Status::error(StatusCode::unsupported,
                                 "%s: tokenizer.ggml.pre = '%s' is not supported (supported: smollm, gpt-2, llama3, "
                                 "qwen2 and the pre-tokenizers that share their regexes)",
                                 path.c_str(), t.pre_name_.c_str());
        }
        t.pre_ = entry->kind;
        t.ignore_merges_ = entry->ignore_merges;
        t.add_bos_ = entry->add_bos;
        t.add_eos_ = false;
        // llama.cpp's defaults for BPE vocabularies (token 11 is GPT-2's "<|endoftext|>" slot).
        t.bos_ = 11;
        t.eos_ = 11;
    } else if (model_name == "llama") {
        t.model_ = Model::spm;
        t.pre_ = PreTokenizer::none;
        t.add_bos_ = true;
        t.add_eos_ = false;
        t.add_space_prefix_ = true;
        t.bos_ = 1;
        t.eos_ = 2;
        t.unk_ = 0;
    } else {
        return Status::error(StatusCode::unsupported,
                             "%s: tokenizer.ggml.model = '%.*s' is not supported (supported: gpt2, llama)",
                             path.c_str(), static_cast<int>(model_name.size()), model_name.data());
    }

    GLIMPSE_RETURN_IF_ERROR(t.load_vocab(gguf));
    if (t.model_ == Model::bpe) GLIMPSE_RETURN_IF_ERROR(t.load_merges(gguf));
    GLIMPSE_RETURN_IF_ERROR(t.load_special_ids(gguf));

    GLIMPSE_ASSIGN_OR_RETURN(t.add_bos_, gguf.get_bool_or("tokenizer.ggml.add_bos_token", t.add_bos_));
    GLIMPSE_ASSIGN_OR_RETURN(t.add_eos_, gguf.get_bool_or("tokenizer.ggml.add_eos_token", t.add_eos_));
    GLIMPSE_ASSIGN_OR_RETURN(t.add_space_prefix_,
                             gguf.get_bool_or("tokenizer.ggml.add_space_prefix", t.add_space_prefix_));
    GLIMPSE_CHECK_OR_RETURN(!t.add_bos_ || t.bos_ != kNoToken, parse_error,
                            "%s: tokenizer.ggml.add_bos_token is true but the vocabulary has no BOS token",
                            path.c_str());
    GLIMPSE_CHECK_OR_RETURN(!t.add_eos_ || t.eos_ != kNoToken, parse_error,
                            "%s: tokenizer.ggml.add_eos_token is true but the vocabulary has no EOS token",
                            path.c_str());

    t.detect_special_tokens_by_text();
    GLIMPSE_RETURN_IF_ERROR(t.build_caches());
    return t;
}

Status Tokenizer::load_vocab(const GgufFile& gguf) {
    const std::string& path = gguf.path();
    GLIMPSE_ASSIGN_OR_RETURN(std::vector<std::string_view> tokens, gguf.get_string_array("tokenizer.ggml.tokens"));
    GLIMPSE_CHECK_OR_RETURN(!tokens.empty(), parse_error, "%s: tokenizer.ggml.tokens is empty", path.c_str());
    GLIMPSE_CHECK_OR_RETURN(tokens.size() < (1u << 30), out_of_range,
                            "%s: tokenizer.ggml.tokens has %zu entries (at most 2^30 supported)", path.c_str(),
                            tokens.size());
    const size_t n = tokens.size();

    std::vector<int64_t> types;
    if (gguf.has("tokenizer.ggml.token_type")) {
        GLIMPSE_ASSIGN_OR_RETURN(types, gguf.get_int_array("tokenizer.ggml.token_type"));
        GLIMPSE_CHECK_OR_RETURN(types.size() == n, parse_error,
                                "%s: tokenizer.ggml.token_type has %zu entries but tokenizer.ggml.tokens has %zu",
                                path.c_str(), types.size(), n);
    }
    if (gguf.has("tokenizer.ggml.scores")) {
        GLIMPSE_ASSIGN_OR_RETURN(std::vector<double> scores, gguf.get_float_array("tokenizer.ggml.scores"));
        GLIMPSE_CHECK_OR_RETURN(scores.size() == n, parse_error,
                                "%s: tokenizer.ggml.scores has %zu entries but tokenizer.ggml.tokens has %zu",
                                path.c_str(), scores.size(), n);
        scores_.assign(scores.begin(), scores.end());
    } else {
        scores_.assign(n, 0.0f);
    }

    texts_.resize(n);
    attrs_.resize(n);
    text_to_id_.reserve(n * 2);
    for (size_t i = 0; i < n; ++i) {
        std::string text(tokens[i]);
        if (text.empty()) text = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp names them
        auto [it, inserted] = text_to_id_.emplace(text, static_cast<int32_t>(i));
        GLIMPSE_CHECK_OR_RETURN(inserted, parse_error,
                                "%s: tokenizer.ggml.tokens[%zu] duplicates tokenizer.ggml.tokens[%d] ('%s')",
                                path.c_str(), i, it->second, text.c_str());
        uint32_t attr = token_attr::normal;
        if (!types.empty()) {
            switch (types[i]) {
                case 1: attr = token_attr::normal; break;
                case 2: attr = token_attr::unknown; break;
                case 3: attr = token_attr::control; break;
                case 4: attr = token_attr::user_defined; break;
                case 5: attr = token_attr::unused; break;
                case 6: attr = token_attr::byte; break;
                default: attr = token_attr::undefined; break;
            }
        }
        if (attr == token_attr::byte) {
            GLIMPSE_CHECK_OR_RETURN(parse_byte_token(text) >= 0, parse_error,
                                    "%s: tokenizer.ggml.tokens[%zu] = '%s' has token type BYTE but is not <0xHH>",
                                    path.c_str(), i, text.c_str());
        }
        texts_[i] = std::move(text);
        attrs_[i] = attr;
    }
    return Status::ok();
}

Status Tokenizer::load_merges(const GgufFile& gguf) {
    const std::string& path = gguf.path();
    GLIMPSE_ASSIGN_OR_RETURN(std::vector<std::string_view> merges, gguf.get_string_array("tokenizer.ggml.merges"));
    merges_.reserve(merges.size() * 2);
    for (size_t i = 0; i < merges.size(); ++i) {
        std::string_view m = merges[i];
        // Split at the first space after the first byte, as llama.cpp does.
        const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
        GLIMPSE_CHECK_OR_RETURN(space != std::string_view::npos, parse_error,
                                "%s: tokenizer.ggml.merges[%zu] = '%.*s' is not two tokens separated by a space",
                                path.c_str(), i, static_cast<int>(m.size()), m.data());
        const std::string_view left = m.substr(0, space), right = m.substr(space + 1);
        const int32_t left_id = find_vocab_text(left), right_id = find_vocab_text(right);
        GLIMPSE_CHECK_OR_RETURN(left_id != kNoToken && right_id != kNoToken, parse_error,
                                "%s: tokenizer.ggml.merges[%zu] = '%.*s' names token '%.*s' that is not in the "
                                "vocabulary",
                                path.c_str(), i, static_cast<int>(m.size()), m.data(),
                                static_cast<int>(left_id == kNoToken ? left.size() : right.size()),
                                left_id == kNoToken ? left.data() : right.data());
        std::string merged;
        merged.reserve(left.size() + right.size());
        merged.append(left).append(right);
        // The first occurrence of a pair keeps its rank (llama.cpp uses emplace).
        merges_.emplace(merge_key(left_id, right_id), Merge{static_cast<int32_t>(i), find_vocab_text(merged)});
    }

    const ByteMapping& bm = byte_mapping();
    for (int b = 0; b < 256; ++b) byte_symbol_id_[b] = find_vocab_text(bm.byte_to_utf8[b]);
    return Status::ok();
}

Status Tokenizer::load_special_ids(const GgufFile& gguf) {
    const std::string& path = gguf.path();
    const int32_t n = n_vocab();
    // Defaults that do not fit the vocabulary are dropped, as in llama.cpp.
    for (int32_t* id : {&bos_, &eos_, &unk_}) {
        if (*id >= n) *id = kNoToken;
    }
    struct Key {
        const char* key;
        int32_t* id;
    };
    const Key keys[] = {
        {"tokenizer.ggml.bos_token_id", &bos_},
        {"tokenizer.ggml.eos_token_id", &eos_},
        {"tokenizer.ggml.eot_token_id", &eot_},
        {"tokenizer.ggml.eom_token_id", &eom_},
        {"tokenizer.ggml.unknown_token_id", &unk_},
        {"tokenizer.ggml.seperator_token_id", &sep_},  // sic: llama.cpp's key
        {"tokenizer.ggml.padding_token_id", &pad_},
        {"tokenizer.ggml.mask_token_id", &mask_},
        {"tokenizer.ggml.fim_pre_token_id", &fim_pre_},
        {"tokenizer.ggml.fim_suf_token_id", &fim_suf_},
        {"tokenizer.ggml.fim_mid_token_id", &fim_mid_},
        {"tokenizer.ggml.fim_pad_token_id", &fim_pad_},
        {"tokenizer.ggml.fim_rep_token_id", &fim_rep_},
        {"tokenizer.ggml.fim_sep_token_id", &fim_sep_},
        {"tokenizer.ggml.prefix_token_id", &fim_pre_},  // deprecated names
        {"tokenizer.ggml.suffix_token_id", &fim_suf_},
        {"tokenizer.ggml.middle_token_id", &fim_mid_},
    };
    for (const Key& k : keys) {
        if (!gguf.has(k.key)) continue;
        GLIMPSE_ASSIGN_OR_RETURN(int64_t v, gguf.get_int(k.key));
        GLIMPSE_CHECK_OR_RETURN(v >= 0 && v < n, out_of_range, "%s: %s = %lld is outside the vocabulary [0, %d)",
                                path.c_str(), k.key, static_cast<long long>(v), n);
        *k.id = static_cast<int32_t>(v);
    }
    return Status::ok();
}

// llama.cpp finds EOT/EOM/FIM tokens by their text when the converter did not store their
// ids, marks such tokens as control tokens, and derives the end-of-generation set from
// those ids and a list of known end markers.
void Tokenizer::detect_special_tokens_by_text() {
    const int32_t n = n_vocab();
    struct Slot {
        int32_t* id;
        const std::initializer_list<std::string_view>* texts;
    };
    const Slot slots[] = {
        {&eot_, &kEotTexts},         {&eom_, &kEomTexts},         {&fim_pre_, &kFimPreTexts},
        {&fim_suf_, &kFimSufTexts},  {&fim_mid_, &kFimMidTexts},  {&fim_pad_, &kFimPadTexts},
        {&fim_rep_, &kFimRepTexts},  {&fim_sep_, &kFimSepTexts},
    };
    for (const Slot& slot : slots) {
        if (*slot.id != kNoToken) continue;
        for (int32_t id = 0; id < n; ++id) {
            if (text_in(texts_[id], *slot.texts)) {
                *slot.id = id;
                attrs_[id] |= token_attr::control;
                break;
            }
        }
    }

    std::vector<int32_t> eog;
    for (int32_t id : {fim_pad_, fim_rep_, fim_sep_}) {
        if (id != kNoToken) eog.push_back(id);
    }
    for (int32_t id = 0; id < n; ++id) {
        if (text_in(texts_[id], kEogTexts)) {
            eog.push_back(id);
            attrs_[id] |= token_attr::control;
        }
    }
    // gpt-oss: these are always rendered and matched, whatever their type says.
    for (int32_t id = 0; id < n; ++id) {
        if (text_in(texts_[id], {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})) {
            attrs_[id] = token_attr::user_defined;
        }
    }
    for (int32_t id : {eos_, eot_, eom_}) {
        if (id != kNoToken) eog.push_back(id);
    }
    std::sort(eog.begin(), eog.end());
    eog.erase(std::unique(eog.begin(), eog.end()), eog.end());

    // o200k_harmony / solar-open: "<|end|>" ends a message, not the generation.
    auto find_in_eog = [&](std::string_view text) {
        for (int32_t id : eog) {
            if (texts_[id] == text) return id;
        }
        return kNoToken;
    };
    const bool has_return = find_in_eog("<|return|>") != kNoToken;
    const bool has_call = find_in_eog("<|call|>") != kNoToken || find_in_eog("<|calls|>") != kNoToken;
    const bool has_flush = find_in_eog("<|flush|>") != kNoToken;
    const int32_t end_id = find_in_eog("<|end|>");
    if (end_id != kNoToken && has_call && (has_return || has_flush)) {
        eog.erase(std::find(eog.begin(), eog.end(), end_id));
        attrs_[end_id] = token_attr::user_defined;
    }
    // gemma4 / paddleocr: "</s>" is not an end marker when "<|tool_response>" is.
    const int32_t s_id = find_in_eog("</s>");
    if (s_id != kNoToken && find_in_eog("<|tool_response>") != kNoToken) {
        eog.erase(std::find(eog.begin(), eog.end(), s_id));
        attrs_[s_id] = token_attr::normal;
    }

    eog_ids_ = std::move(eog);
    eog_flags_.assign(static_cast<size_t>(n), 0);
    for (int32_t id : eog_ids_) eog_flags_[id] = 1;
}

Status Tokenizer::build_caches() {
    const int32_t n = n_vocab();
    special_tokens_.clear();
    for (int32_t id = 0; id < n; ++id) {
        if (attrs_[id] & (token_attr::control | token_attr::user_defined | token_attr::unknown)) {
            special_tokens_.push_back(id);
        }
    }
    // Longest first, so that "<|im_start|>" wins over a shorter token it contains.
    std::stable_sort(special_tokens_.begin(), special_tokens_.end(),
                     [&](int32_t a, int32_t b) { return texts_[a].size() > texts_[b].size(); });

    pieces_.resize(static_cast<size_t>(n));
    piece_to_id_.clear();
    piece_to_id_.reserve(static_cast<size_t>(n) * 2);
    for (int32_t id = 0; id < n; ++id) {
        pieces_[id] = render_piece(id);
        if (!pieces_[id].empty()) piece_to_id_.emplace(pieces_[id], id);  // keeps the first id
    }
    return Status::ok();
}

std::string Tokenizer::render_piece(int32_t id) const {
    const uint32_t attr = attrs_[id];
    const std::string& text = texts_[id];
    if (attr & (token_attr::unknown | token_attr::control | token_attr::user_defined)) return text;
    if (attr & token_attr::normal) {
        if (model_ == Model::bpe) return gpt2_decode_text(text);
        std::string s = text;
        replace_all(s, kSpmSpace, " ");
        return s;
    }
    if (attr & token_attr::byte) return std::string(1, static_cast<char>(parse_byte_token(text)));
    return std::string();
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

int32_t Tokenizer::find_vocab_text(std::string_view vocab_text) const {
    auto it = text_to_id_.find(std::string(vocab_text));
    return it == text_to_id_.end() ? kNoToken : it->second;
}

int32_t Tokenizer::find_token(std::string_view text) const {
    auto it = piece_to_id_.find(std::string(text));
    return it == piece_to_id_.end() ? kNoToken : it->second;
}

const std::string& Tokenizer::token_text(int32_t id) const {
    static const std::string empty;
    return (id >= 0 && id < n_vocab()) ? texts_[id] : empty;
}

uint32_t Tokenizer::token_attributes(int32_t id) const {
    return (id >= 0 && id < n_vocab()) ? attrs_[id] : token_attr::undefined;
}

bool Tokenizer::is_eog(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < eog_flags_.size() && eog_flags_[id] != 0;
}

// Splits `text` at every occurrence of each special token's text, longest tokens first,
// leaving the rest as raw-text fragments (llama.cpp's tokenizer_st_partition).
void Tokenizer::partition_special(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
    out.clear();
    if (text.empty()) return;
    out.push_back({kNoToken, 0, text.size()});
    std::vector<Fragment> next;
    for (int32_t id : special_tokens_) {
        if (!parse_special && (attrs_[id] & (token_attr::control | token_attr::unknown))) continue;
        const std::string& st = texts_[id];
        if (text.find(st) == std::string_view::npos) continue;
        next.clear();
        for (const Fragment& f : out) {
            if (f.token != kNoToken) {
                next.push_back(f);
                continue;
            }
            const std::string_view window = text.substr(0, f.end);
            size_t pos = f.begin;
            while (pos < f.end) {
                const size_t m = window.find(st, pos);
                if (m == std::string_view::npos) {
                    next.push_back({kNoToken, pos, f.end});
                    break;
                }
                if (m > pos) next.push_back({kNoToken, pos, m});
                next.push_back({id, m, m + st.size()});
                pos = m + st.size();
            }
        }
        out.swap(next);
    }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 2 + 4);
    std::vector<Fragment> fragments;
    partition_special(text, parse_special, fragments);

    if (add_special && add_bos_) out.push_back(bos_);
    if (model_ == Model::bpe) {
        for (const Fragment& f : fragments) {
            if (f.token != kNoToken) {
                out.push_back(f.token);
            } else {
                encode_bpe_fragment(text.substr(f.begin, f.end - f.begin), out);
            }
        }
    } else {
        // SentencePiece: a space is prepended to the first text and to text after a special token.
        bool prev_special = true;
        for (const Fragment& f : fragments) {
            if (f.token != kNoToken) {
                out.push_back(f.token);
                prev_special = true;
                continue;
            }
            std::string s;
            if (add_space_prefix_ && prev_special) s = " ";
            s.append(text.substr(f.begin, f.end - f.begin));
            replace_all(s, " ", kSpmSpace);
            encode_spm_fragment(s, out);
            prev_special = false;
        }
    }
    if (add_special && add_eos_) out.push_back(eos_);
    return out;
}

void Tokenizer::encode_bpe_fragment(std::string_view text, std::vector<int32_t>& out) const {
    std::vector<uint32_t> cps;
    decode_utf8_lenient(text, cps);
    std::vector<uint8_t> cls(cps.size());
    for (size_t i = 0; i < cps.size(); ++i) cls[i] = char_class(cps[i]);
    const SplitInput in{cps.data(), cls.data()};

    std::vector<size_t> ends;
    ends.reserve(cps.size() / 2 + 1);
    switch (pre_) {
        case PreTokenizer::digits_gpt2: {
            // First regex \p{N}: every number character is a piece of its own; the GPT-2
            // regex then runs inside each piece.
            size_t b = 0;
            while (b < cps.size()) {
                size_t e = b + 1;
                if (cls[b] != kClsNumber) {
                    while (e < cps.size() && cls[e] != kClsNumber) ++e;
                }
                split_gpt2(in, b, e, ends);
                b = e;
            }
            break;
        }
        case PreTokenizer::gpt2: split_gpt2(in, 0, cps.size(), ends); break;
        case PreTokenizer::llama3: split_llama3(in, 0, cps.size(), true, ends); break;
        case PreTokenizer::qwen2: split_llama3(in, 0, cps.size(), false, ends); break;
        case PreTokenizer::none: ends.push_back(cps.size()); break;
    }

    std::string word;
    size_t start = 0;
    for (size_t end : ends) {
        word.clear();
        for (size_t i = start; i < end; ++i) append_utf8(cps[i], word);
        encode_bpe_word(word, out);
        start = end;
    }
}

// Byte-level BPE over one pre-tokenized word: repeatedly merge the adjacent pair with the
// lowest merge rank (leftmost on ties) until no pair has a merge.
void Tokenizer::encode_bpe_word(std::string_view word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
        const int32_t whole = find_vocab_text(gpt2_encode_bytes(word));
        if (whole != kNoToken) {
            out.push_back(whole);
            return;
        }
    }

    struct Symbol {
        uint32_t len;
        int32_t id;  // vocab id of the symbol's text, or kNoToken
        int32_t prev, next;
    };
    struct Bigram {
        int32_t rank;
        int32_t left, right;
        uint32_t left_len, right_len;
        int32_t result;
    };
    struct LaterFirst {
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
        }
    };

    const int32_t n = static_cast<int32_t>(word.size());
    std::vector<Symbol> sym(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) {
        sym[i] = {1, byte_symbol_id_[static_cast<uint8_t>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};
    }
    std::priority_queue<Bigram, std::vector<Bigram>, LaterFirst> queue;
    auto add_bigram = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0 || sym[l].id == kNoToken || sym[r].id == kNoToken) return;
        auto it = merges_.find(merge_key(sym[l].id, sym[r].id));
        if (it == merges_.end()) return;
        queue.push({it->second.rank, l, r, sym[l].len, sym[r].len, it->second.result});
    };
    for (int32_t i = 1; i < n; ++i) add_bigram(i - 1, i);

    while (!queue.empty()) {
        const Bigram bg = queue.top();
        queue.pop();
        Symbol& l = sym[bg.left];
        Symbol& r = sym[bg.right];
        // Stale: one side was merged away or grew since the pair was queued.
        if (l.len == 0 || r.len == 0 || l.len != bg.left_len || r.len != bg.right_len) continue;
        l.len += r.len;
        l.id = bg.result;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = bg.left;
        add_bigram(l.prev, bg.left);
        add_bigram(bg.left, l.next);
    }

    size_t offset = 0;
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        const Symbol& s = sym[i];
        if (s.id != kNoToken) {
            out.push_back(s.id);
        } else {
            // The merged text is not a token: llama.cpp looks up each byte of its
            // byte-level spelling as a one-byte token and skips those it cannot find.
            const std::string spelled = gpt2_encode_bytes(word.substr(offset, s.len));
            for (char c : spelled) {
                const int32_t id = find_vocab_text(std::string_view(&c, 1));
                if (id != kNoToken) out.push_back(id);
            }
        }
        offset += s.len;
    }
}

// SentencePiece BPE (llama.cpp's llm_tokenizer_spm_session): merge the adjacent pair whose
// concatenation is the highest-scoring token, then re-split any symbol that is not a token
// along the merges that built it, falling back to <0xHH> byte tokens.
void Tokenizer::encode_spm_fragment(const std::string& text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    struct Symbol {
        size_t start, len;
        int32_t prev, next;
    };
    struct Bigram {
        float score;
        int32_t left, right;
        size_t size;
    };
    struct LowerFirst {
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.score < b.score || (a.score == b.score && a.left > b.left);
        }
    };
    std::vector<Symbol> sym;
    static const size_t kUtf8Len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    for (size_t offs = 0; offs < text.size();) {
        const size_t len = std::min(kUtf8Len[static_cast<uint8_t>(text[offs]) >> 4], text.size() - offs);
        const int32_t index = static_cast<int32_t>(sym.size());
        sym.push_back({offs, len, index - 1, offs + len == text.size() ? -1 : index + 1});
        offs += len;
    }
    std::priority_queue<Bigram, std::vector<Bigram>, LowerFirst> queue;
    std::unordered_map<std::string, std::pair<int32_t, int32_t>> rev_merge;
    auto try_add = [&](int32_t l, int32_t r) {
        if (l == -1 || r == -1) return;
        std::string s = text.substr(sym[l].start, sym[l].len + sym[r].len);
        const int32_t id = find_vocab_text(s);
        if (id == kNoToken) return;
        queue.push({scores_[id], l, r, s.size()});
        rev_merge[s] = {l, r};
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
        const Bigram bg = queue.top();
        queue.pop();
        Symbol& l = sym[bg.left];
        Symbol& r = sym[bg.right];
        if (l.len == 0 || r.len == 0 || l.len + r.len != bg.size) continue;
        l.len += r.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = bg.left;
        try_add(l.prev, bg.left);
        try_add(bg.left, l.next);
    }

    auto byte_token = [&](uint8_t b) {
        static const char* hex = "0123456789ABCDEF";
        const char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        int32_t id = find_vocab_text(std::string_view(buf, 6));
        if (id == kNoToken) id = find_vocab_text(std::string_view(reinterpret_cast<const char*>(&b), 1));
        // llama.cpp throws here; emit <unk> when there is one.
        return id != kNoToken ? id : unk_;
    };
    // Iterative version of llama.cpp's recursive resegment().
    std::vector<int32_t> stack;
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        stack.push_back(i);
        while (!stack.empty()) {
            const Symbol& s = sym[stack.back()];
            stack.pop_back();
            const std::string piece = text.substr(s.start, s.len);
            const int32_t id = find_vocab_text(piece);
            if (id != kNoToken) {
                out.push_back(id);
                continue;
            }
            auto it = rev_merge.find(piece);
            if (it == rev_merge.end()) {
                for (char c : piece) {
                    const int32_t b = byte_token(static_cast<uint8_t>(c));
                    if (b != kNoToken) out.push_back(b);
                }
                continue;
            }
            stack.push_back(it->second.second);
            stack.push_back(it->second.first);
        }
    }
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
    if (id < 0 || id >= n_vocab()) return std::string();
    if (!render_special && (attrs_[id] & (token_attr::unknown | token_attr::control))) return std::string();
    return pieces_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
    std::string out;
    for (int32_t id : ids) out += token_to_piece(id, render_special);
    return out;
}

size_t utf8_incomplete_tail(std::string_view s) {
    // Find the last non-continuation byte within the last 4 bytes.
    const size_t n = s.size();
    size_t lead = n;
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        if ((static_cast<uint8_t>(s[n - back]) & 0xC0) != 0x80) {
            lead = n - back;
            break;
        }
    }
    if (lead == n) return 0;
    const uint8_t b0 = static_cast<uint8_t>(s[lead]);
    size_t need = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) need = 2;
    else if (b0 >= 0xE0 && b0 <= 0xEF) need = 3;
    else if (b0 >= 0xF0 && b0 <= 0xF4) need = 4;
    else return 0;  // ASCII or a byte that never starts a valid sequence
    const size_t have = n - lead;
    if (have >= need) return 0;
    // The second byte of some sequences has a narrower range (no overlongs, surrogates or > U+10FFFF).
    if (have >= 2) {
        const uint8_t b1 = static_cast<uint8_t>(s[lead + 1]);
        if ((b0 == 0xE0 && b1 < 0xA0) || (b0 == 0xED && b1 > 0x9F) || (b0 == 0xF0 && b1 < 0x90) ||
            (b0 == 0xF4 && b1 > 0x8F)) {
            return 0;
        }
    }
    return have;
}

std::string TokenStreamDecoder::push(int32_t id) { return push_bytes(tokenizer_->token_to_piece(id, render_special_)); }

std::string TokenStreamDecoder::push_bytes(std::string_view piece) {
    pending_.append(piece);
    const size_t hold = utf8_incomplete_tail(pending_);
    std::string ready = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return ready;
}

std::string TokenStreamDecoder::flush() {
    std::string rest;
    rest.swap(pending_);
    return rest;
}

std::string gpt2_byte_symbol(uint8_t b) { return byte_mapping().byte_to_utf8[b]; }

std::vector<int> gpt2_byte_order() {
    const ByteMapping& m = byte_mapping();
    std::vector<int> order;
    for (uint32_t cp = 0; cp < m.cp_to_byte.size(); ++cp) {
        if (m.cp_to_byte[cp] >= 0) order.push_back(m.cp_to_byte[cp]);
    }
    return order;
}

}  // namespace glimpse
