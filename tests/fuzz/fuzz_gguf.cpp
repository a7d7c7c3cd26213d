// libFuzzer target: the GGUF reader and everything the model loaders validate on top of it.
// Input: the bytes of a GGUF file. Parsed from memory (MappedFile::from_bytes), then, when it
// parses, every metadata value is read through every typed getter, every tensor's data range
// is touched at both ends, and the file is offered to the tokenizer, the chat-template lookup,
// the text decoder and the vision encoder loaders (which build their graphs: every tensor's
// name, type and shape is checked). Any of these may return an error; none may crash, leak,
// read out of bounds or hit undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "models/chat_template.h"
#include "models/text_decoder.h"
#include "models/tokenizer.h"
#include "models/vision_encoder.h"
#include "runtime/gguf.h"

using namespace glimpse;

namespace {

Result<std::unique_ptr<GgufFile>> parse(const uint8_t* data, size_t size) {
    return GgufFile::parse(MappedFile::from_bytes(std::vector<uint8_t>(data, data + size), "fuzz.gguf"));
}

volatile uint64_t g_sink;

void read_everything(const GgufFile& f) {
    uint64_t acc = 0;
    for (const auto& [key, value] : f.metadata()) {
        if (auto r = f.get_int(key); r.is_ok()) acc += static_cast<uint64_t>(r.value());
        if (auto r = f.get_float(key); r.is_ok()) acc += static_cast<uint64_t>(r.value() != 0);
        if (auto r = f.get_bool(key); r.is_ok()) acc += r.value();
        if (auto r = f.get_string(key); r.is_ok()) acc += r.value().size();
        if (auto r = f.get_string_array(key); r.is_ok()) acc += r.value().size();
        if (auto r = f.get_int_array(key); r.is_ok()) acc += r.value().size();
        if (auto r = f.get_float_array(key); r.is_ok()) acc += r.value().size();
        if (value.type == GgufType::array && value.packed != nullptr && value.count > 0) {
            acc += static_cast<uint64_t>(gguf_array_int(value, value.count - 1));
            acc += static_cast<uint64_t>(gguf_array_float(value, 0) != 0);
        }
        acc += f.find(key) != nullptr;
    }
    for (const GgufTensor& t : f.tensors()) {
        acc += static_cast<uint64_t>(t.n_elements());
        if (t.nbytes > 0) acc += t.data[0] + t.data[t.nbytes - 1];
        acc += f.find_tensor(t.name) != nullptr;
    }
    g_sink = acc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto file = parse(data, size);
    if (!file.is_ok()) return 0;
    read_everything(*file.value());

    if (auto tok = Tokenizer::from_gguf(*file.value()); tok.is_ok()) {
        std::vector<int32_t> ids = tok.value().encode("Hello <image> world\n\n 123 héllo", true, true);
        g_sink = tok.value().decode(ids, true).size() + static_cast<uint64_t>(tok.value().find_token("\n\n"));
    }
    if (auto tmpl = ChatTemplate::for_model(*file.value(), ""); tmpl.is_ok()) {
        g_sink = tmpl.value().format_user_turn("<__media__>hi").size();
    }
    (void)text_hparams_from_gguf(*file.value());
    (void)vision_hparams_from_gguf(*file.value());
    (void)TextDecoder::from_file(std::move(file.value()));
    if (auto again = parse(data, size); again.is_ok()) (void)VisionEncoder::from_file(std::move(again.value()));
    return 0;
}
