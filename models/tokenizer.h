// Text tokenizer that reproduces llama.cpp's llama_tokenize / llama_token_to_piece
// for the vocabularies glimpse's models use.
//
// Supported (tokenizer.ggml.model / tokenizer.ggml.pre):
//   gpt2 (byte-level BPE) with pre-tokenizers
//     smollm, starcoder, refact, command-r, codeshell, exaone, minerva-7b, mellum2
//         -> split off every \p{N} character, then the GPT-2 regex
//     gpt-2, phi-2, mpt, olmo, jais, roberta-bpe, mellum, exaone4, trillion
//         -> the GPT-2 regex
//     llama3, llama-v3, llama-bpe, falcon3, falcon-h1, pixtral, lfm2, dbrx, smaug-bpe
//         -> the Llama-3 regex (digits in groups of up to 3)
//     qwen2, deepseek-r1-qwen, stablelm2, megrez
//         -> the Llama-3 regex with single digits
//   llama (SentencePiece-style BPE with scores and <0xXX> byte fallback).
// Anything else is a StatusCode::unsupported error at load time.
//
// Known deviations from llama.cpp, all outside well-formed vocabularies:
//   - When several tokens carry a text llama.cpp uses to guess the EOT / FIM ids,
//     llama.cpp keeps whichever its hash map yields first; glimpse keeps the lowest id.
//   - Special tokens of equal length are matched in id order (llama.cpp: std::sort order).
//   - Per-model LSTRIP/RSTRIP attributes (phi-3, jina, modern-bert) are not applied.
//   - Input bytes that decode to a code point above U+10FFFF (llama.cpp throws) become U+FFFD.
//   - Metadata that llama.cpp accepts, warns about or asserts on is an error here: a special
//     id outside the vocabulary, token_type/scores arrays of another length than tokens,
//     merges without a space or naming tokens that are not in the vocabulary, duplicate
//     token texts, BYTE tokens not spelled <0xHH>, add_bos/add_eos without the token.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/gguf.h"
#include "runtime/status.h"

namespace glimpse {

// Token attributes, as llama.cpp derives them from tokenizer.ggml.token_type.
namespace token_attr {
constexpr uint32_t undefined = 0;
constexpr uint32_t unknown = 1u << 0;
constexpr uint32_t unused = 1u << 1;
constexpr uint32_t normal = 1u << 2;
constexpr uint32_t control = 1u << 3;
constexpr uint32_t user_defined = 1u << 4;
constexpr uint32_t byte = 1u << 5;
}  // namespace token_attr

class Tokenizer {
public:
    static constexpr int32_t kNoToken = -1;

    enum class Model { bpe, spm };
    enum class PreTokenizer { none, gpt2, digits_gpt2, llama3, qwen2 };

    // Reads tokenizer.ggml.* from a text-model GGUF and validates it.
    static Result<Tokenizer> from_gguf(const GgufFile& gguf);

    // llama_tokenize(vocab, text, add_special, parse_special).
    // add_special adds BOS/EOS only where the vocabulary asks for them (add_bos/add_eos).
    // parse_special=false still matches user-defined tokens, as llama.cpp does.
    std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

    // llama_token_to_piece(vocab, id, ..., lstrip=0, special=render_special): the raw bytes
    // (not necessarily valid UTF-8). Control and unknown tokens give "" unless render_special.
    // An id outside [0, n_vocab) gives "".
    std::string token_to_piece(int32_t id, bool render_special) const;

    // Concatenated pieces.
    std::string decode(const std::vector<int32_t>& ids, bool render_special) const;

    // The first id whose piece (specials rendered) is exactly `text`, or kNoToken. This is
    // how libmtmd looks up wrapper tokens: find_token("\n\n") finds the vocab entry "ĊĊ".
    int32_t find_token(std::string_view text) const;
    // Exact vocabulary-string lookup ("ĊĊ", "<image>"), or kNoToken.
    int32_t find_vocab_text(std::string_view vocab_text) const;

    int32_t n_vocab() const { return static_cast<int32_t>(texts_.size()); }
    // Vocabulary string and attributes (token_attr::*) of an id; "" and undefined outside the vocab.
    const std::string& token_text(int32_t id) const;
    uint32_t token_attributes(int32_t id) const;

    Model model() const { return model_; }
    PreTokenizer pre_tokenizer() const { return pre_; }
    const std::string& pre_tokenizer_name() const { return pre_name_; }

    int32_t bos() const { return bos_; }
    int32_t eos() const { return eos_; }
    int32_t eot() const { return eot_; }
    int32_t eom() const { return eom_; }
    int32_t unk() const { return unk_; }
    int32_t pad() const { return pad_; }
    int32_t sep() const { return sep_; }
    bool add_bos() const { return add_bos_; }
    bool add_eos() const { return add_eos_; }

    // End-of-generation set, as llama.cpp computes it (llama_vocab_is_eog).
    bool is_eog(int32_t id) const;
    const std::vector<int32_t>& eog_ids() const { return eog_ids_; }

private:
    struct Merge {
        int32_t rank;
        int32_t result;  // id of the merged text, or kNoToken when the vocab lacks it
    };
    struct Fragment {
        int32_t token;   // kNoToken for raw text
        size_t begin, end;
    };

    Tokenizer() = default;
    Status load_vocab(const GgufFile& gguf);
    Status load_merges(const GgufFile& gguf);
    Status load_special_ids(const GgufFile& gguf);
    void detect_special_tokens_by_text();
    Status build_caches();

    void partition_special(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;
    void encode_bpe_fragment(std::string_view text, std::vector<int32_t>& out) const;
    void encode_bpe_word(std::string_view word, std::vector<int32_t>& out) const;
    void encode_spm_fragment(const std::string& escaped, std::vector<int32_t>& out) const;
    std::string render_piece(int32_t id) const;

    Model model_ = Model::bpe;
    PreTokenizer pre_ = PreTokenizer::none;
    std::string pre_name_;
    bool ignore_merges_ = false;
    bool add_bos_ = false;
    bool add_eos_ = false;
    bool add_space_prefix_ = false;

    std::vector<std::string> texts_;
    std::vector<uint32_t> attrs_;
    std::vector<float> scores_;
    std::unordered_map<std::string, int32_t> text_to_id_;
    std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> merge
    int32_t byte_symbol_id_[256] = {};            // id of the GPT-2 character of each byte

    std::vector<std::string> pieces_;             // token_to_piece(id, true)
    std::unordered_map<std::string, int32_t> piece_to_id_;
    std::vector<int32_t> special_tokens_;         // control/user-defined/unknown, longest first

    int32_t bos_ = kNoToken, eos_ = kNoToken, eot_ = kNoToken, eom_ = kNoToken;
    int32_t unk_ = kNoToken, pad_ = kNoToken, sep_ = kNoToken, mask_ = kNoToken;
    int32_t fim_pre_ = kNoToken, fim_suf_ = kNoToken, fim_mid_ = kNoToken;
    int32_t fim_pad_ = kNoToken, fim_rep_ = kNoToken, fim_sep_ = kNoToken;
    std::vector<int32_t> eog_ids_;                // sorted
    std::vector<uint8_t> eog_flags_;
};

// Streaming detokenizer for printing while generating. Pieces are raw bytes; a piece can
// end inside a UTF-8 sequence that the next token completes. push() returns the bytes
// that are safe to print now and holds back a trailing incomplete (but so far valid)
// UTF-8 prefix; flush() returns whatever is held, valid or not, because llama-mtmd-cli
// prints each token's raw bytes. The concatenation of all push() results and flush()
// equals the concatenation of the pieces.
class TokenStreamDecoder {
public:
    explicit TokenStreamDecoder(const Tokenizer& tokenizer, bool render_special = true)
        : tokenizer_(&tokenizer), render_special_(render_special) {}

    std::string push(int32_t id);
    std::string push_bytes(std::string_view piece);
    std::string flush();
    size_t pending_bytes() const { return pending_.size(); }

private:
    const Tokenizer* tokenizer_;
    bool render_special_;
    std::string pending_;
};

// Length of the trailing bytes of `s` that form an incomplete but valid UTF-8 prefix (0-3).
size_t utf8_incomplete_tail(std::string_view s);

// GPT-2's byte-level alphabet: the character (UTF-8) that stands for byte b in the
// strings of a gpt2 vocabulary, e.g. 'Ġ' for a space.
std::string gpt2_byte_symbol(uint8_t b);
// The 256 bytes in the order byte-level vocabularies list their symbols (by code point).
std::vector<int> gpt2_byte_order();

}  // namespace glimpse
