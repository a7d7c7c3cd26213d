// libFuzzer target: the tokenizer (models/tokenizer.*) on arbitrary text, as it tokenizes rendered
// chat prompts. Input: byte 0 = flags (bit 0: which golden tokenizer, SmolVLM byte-level BPE or
// LLaVA SentencePiece; bit 1: add_special; bit 2: parse_special; bit 3: render_special), the rest
// is the text. Every id must lie in the vocabulary, decoding must work, and the piece lookups
// (find_token on the decoded pieces) must stay in bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "models/tokenizer.h"
#include "runtime/gguf.h"

using namespace glimpse;

namespace {

volatile size_t g_sink;

std::unique_ptr<Tokenizer> load_tokenizer(const char* path) {
    auto f = GgufFile::open(path);
    if (!f.is_ok()) std::abort();  // the golden files are part of the repository
    auto t = Tokenizer::from_gguf(*f.value());
    if (!t.is_ok()) std::abort();
    return std::make_unique<Tokenizer>(std::move(t.value()));
}

const Tokenizer& tokenizer(int which) {
    static std::unique_ptr<Tokenizer> bpe =
        load_tokenizer(GLIMPSE_SOURCE_DIR "/tests/data/golden/smolvlm-tiny-f32/tiny-smolvlm-text-f32.gguf");
    static std::unique_ptr<Tokenizer> spm =
        load_tokenizer(GLIMPSE_SOURCE_DIR "/tests/data/golden/llava-tiny-f32/tiny-llava-text-f32.gguf");
    return which ? *spm : *bpe;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t flags = data[0];
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    const Tokenizer& tok = tokenizer(flags & 1);
    std::vector<int32_t> ids = tok.encode(text, flags & 2, flags & 4);
    size_t acc = 0;
    for (int32_t id : ids) {
        if (id < 0 || id >= tok.n_vocab()) std::abort();
        acc += tok.token_to_piece(id, flags & 8).size();
    }
    const std::string back = tok.decode(ids, flags & 8);
    if (!ids.empty()) acc += static_cast<size_t>(tok.find_token(tok.token_to_piece(ids.back(), true)) + 1);
    acc += static_cast<size_t>(tok.find_vocab_text(text) + 1);
    g_sink = acc + back.size();
    return 0;
}
