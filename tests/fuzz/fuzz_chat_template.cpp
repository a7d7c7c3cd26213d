// libFuzzer target: the chat-template renderer (models/chat_template.*). Input layout, split at
// NUL bytes:
//   byte 0: flags (bit 0: add_generation_prompt)
//   segment 1: a template name or template source text (ChatTemplate::detect)
//   segments 2..: message contents, roles cycling system/user/assistant (a segment starting
//                 with 'u'/'a'/'s' followed by ':' picks its role instead)
// Every message's content must appear in the rendered prompt (templates may trim surrounding
// whitespace, so the check uses the content without leading/trailing spaces; gemma's system
// text is exempt, see below). The tokenizer
// that reads the rendered text has its own target (fuzz_tokenizer.cpp).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "models/chat_template.h"

using namespace glimpse;

namespace {

volatile size_t g_sink;

std::string_view trimmed(std::string_view s) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t flags = data[0];
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    std::vector<std::string_view> segments;
    for (size_t start = 0;;) {
        const size_t nul = rest.find('\0', start);
        segments.push_back(rest.substr(start, nul == std::string_view::npos ? std::string_view::npos : nul - start));
        if (nul == std::string_view::npos) break;
        start = nul + 1;
    }

    auto tmpl = ChatTemplate::detect(segments[0]);
    g_sink = mtmd_cli_antiprompt(segments[0]).size();
    if (!tmpl.is_ok()) return 0;

    static const char* const kRoles[] = {"system", "user", "assistant"};
    std::vector<ChatMessage> messages;
    for (size_t i = 1; i < segments.size(); ++i) {
        std::string_view s = segments[i];
        std::string role = kRoles[i % 3];
        if (s.size() >= 2 && s[1] == ':') {
            if (s[0] == 'u') role = "user";
            if (s[0] == 'a') role = "assistant";
            if (s[0] == 's') role = "system";
            s.remove_prefix(2);
        }
        messages.push_back({role, std::string(s)});
    }
    const std::string prompt = tmpl.value().apply(messages, flags & 1);
    for (const ChatMessage& m : messages) {
        // gemma has no system role: like llama.cpp, it merges system text into the next user
        // turn and drops it when no user turn follows.
        if (m.role == "system" && tmpl.value().name() == "gemma") continue;
        if (prompt.find(trimmed(m.content)) == std::string::npos) std::abort();  // a message was lost
    }
    const std::string_view last = messages.empty() ? std::string_view() : std::string_view(messages.back().content);
    const std::string turn = tmpl.value().format_user_turn(last);
    if (turn.find(trimmed(last)) == std::string::npos) std::abort();

    // ends_with_tokens on ids taken from the input bytes.
    std::vector<int32_t> ids(rest.begin(), rest.end()), tail;
    if (!ids.empty()) tail.assign(ids.end() - static_cast<std::ptrdiff_t>(std::min<size_t>(ids.size(), flags % 5)), ids.end());
    if (!tail.empty() && !ends_with_tokens(ids, tail)) std::abort();
    g_sink = prompt.size() + turn.size();
    return 0;
}
