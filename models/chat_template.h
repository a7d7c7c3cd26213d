// Chat templates as llama.cpp applies them without Jinja (llama-mtmd-cli's default):
// the model's tokenizer.chat_template text, or a --chat-template NAME, is mapped to one
// of llama.cpp's built-in templates by the same heuristics as llm_chat_detect_template,
// and rendered by a small hand-written formatter for that template.
//
// Rendered here: chatml, smolvlm, vicuna, vicuna-orca, llama2, llama2-sys,
// llama2-sys-bos, llama2-sys-strip, mistral-v1, mistral-v3, mistral-v3-tekken,
// mistral-v7, mistral-v7-tekken, phi3, phi4, falcon3, zephyr, gemma, deepseek,
// command-r, llama3. Every other template llama.cpp knows is recognised and reported
// as unsupported by name.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/gguf.h"
#include "runtime/status.h"

namespace glimpse {

struct ChatMessage {
    std::string role;  // "system", "user" or "assistant"
    std::string content;
};

class ChatTemplate {
public:
    // A built-in name ("vicuna", "chatml", "smolvlm", ...) or a template's source text.
    // Unknown text is invalid_argument; a template llama.cpp has but glimpse does not
    // render is unsupported.
    static Result<ChatTemplate> detect(std::string_view name_or_source);

    // What llama-mtmd-cli does with jinja off: `chat_template_arg` (--chat-template) if
    // given, else the model's tokenizer.chat_template; "chatml" (or an empty template)
    // selects chatml. A model without a template and no argument is an error.
    static Result<ChatTemplate> for_model(const GgufFile& text_model, std::string_view chat_template_arg);

    // llama.cpp's name for the detected template ("smolvlm", "vicuna", ...).
    const std::string& name() const { return name_; }

    // llm_chat_apply_template(tmpl, messages, add_ass).
    std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

    // One user turn with the generation prompt: the single-turn prompt of llama-mtmd-cli
    // (no system prompt, no history). Media markers stay in the text as given.
    std::string format_user_turn(std::string_view user_content) const;

private:
    explicit ChatTemplate(std::string name) : name_(std::move(name)) {}
    std::string name_;
};

// The text whose tokenization stops generation in llama-mtmd-cli, besides EOG tokens.
// It depends on the --chat-template argument as typed, not on the detected template:
// "vicuna" -> "ASSISTANT:", "deepseek" -> "###", anything else -> "" (none). The CLI
// tokenizes it with add_special=false, parse_special=true and stops when the generated
// ids end with those ids (the stopping token itself is not printed).
std::string_view mtmd_cli_antiprompt(std::string_view chat_template_arg);

// True when `generated` ends with `antiprompt_ids` (false for an empty antiprompt).
bool ends_with_tokens(const std::vector<int32_t>& generated, const std::vector<int32_t>& antiprompt_ids);

// llama-mtmd-cli's default media marker, prepended once per image when the prompt has none.
inline constexpr std::string_view kMediaMarker = "<__media__>";

}  // namespace glimpse
