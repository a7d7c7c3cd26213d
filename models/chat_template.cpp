#include "models/chat_template.h"

#include <algorithm>
#include <utility>

namespace glimpse {

namespace {

// llama.cpp's built-in template names (LLM_CHAT_TEMPLATES), which --chat-template accepts.
constexpr std::string_view kBuiltinNames[] = {
    "chatml", "llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip", "mistral-v1", "mistral-v3",
    "mistral-v3-tekken", "mistral-v7", "mistral-v7-tekken", "phi3", "phi4", "falcon3", "zephyr", "monarch",
    "gemma", "orion", "openchat", "vicuna", "vicuna-orca", "deepseek", "deepseek2", "deepseek3",
    "deepseek-ocr", "command-r", "llama3", "chatglm3", "chatglm4", "glmedge", "minicpm", "exaone3",
    "exaone4", "exaone-moe", "rwkv-world", "granite", "granite-4.0", "granite-4.1", "gigachat", "megrez",
    "yandex", "bailing", "bailing-think", "bailing2", "llama4", "smolvlm", "hunyuan-moe", "gpt-oss",
    "hunyuan-dense", "hunyuan-vl", "kimi-k2", "seed_oss", "grok-2", "pangu-embedded", "solar-open",
};

constexpr std::string_view kRendered[] = {
    "chatml", "smolvlm", "vicuna", "vicuna-orca", "llama2", "llama2-sys", "llama2-sys-bos",
    "llama2-sys-strip", "mistral-v1", "mistral-v3", "mistral-v3-tekken", "mistral-v7", "mistral-v7-tekken",
    "phi3", "phi4", "falcon3", "zephyr", "gemma", "deepseek", "command-r", "llama3",
};

// The Jinja source llama.cpp substitutes for "chatml" or a missing template.
constexpr std::string_view kChatmlSource =
    "{%- for message in messages -%}\n"
    "  {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "  {{- '<|im_start|>assistant\\n' -}}\n"
    "{%- endif -%}";

template <size_t N>
bool contains_name(const std::string_view (&list)[N], std::string_view name) {
    return std::find(std::begin(list), std::end(list), name) != std::end(list);
}

// Same decision list, in the same order, as llama.cpp's llm_chat_detect_template
// (src/llama-chat.cpp). Returns "" when nothing matches.
std::string_view detect_name(std::string_view t) {
    if (contains_name(kBuiltinNames, t)) return t;
    auto has = [&](std::string_view s) { return t.find(s) != std::string_view::npos; };
    if (has("<|im_start|>")) {
        if (has("<|im_sep|>")) return "phi4";
        // SmolVLM starts with <|im_start|> but is not chatml.
        return has("<end_of_utterance>") ? "smolvlm" : "chatml";
    }
    if (t.substr(0, 7) == "mistral" || has("[INST]")) {
        if (has("[SYSTEM_PROMPT]")) return "mistral-v7";
        if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
            if (has(" [INST]")) return "mistral-v1";
            if (has("\"[INST]\"")) return "mistral-v3-tekken";
            return "mistral-v3";
        }
        if (has("content.strip()")) return "llama2-sys-strip";
        if (has("bos_token + '[INST]")) return "llama2-sys-bos";
        if (has("<<SYS>>")) return "llama2-sys";
        return "llama2";
    }
    if (has("<|assistant|>") && has("<|end|>")) return "phi3";
    if (has("[gMASK]<sop>")) return "chatglm4";
    if (has("<|assistant|>") && has("<|user|>")) {
        if (has("<|tool_declare|>")) return "exaone-moe";
        return has("</s>") ? "falcon3" : "glmedge";
    }
    if (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>")) return "glmedge";
    if (has("<|user|>") && has("<|endoftext|>")) return "zephyr";
    if (has("bos_token + message['role']")) return "monarch";
    if (has("<start_of_turn>")) return "gemma";
    if (has("'\\n\\nAssistant: ' + eos_token")) return "orion";
    if (has("GPT4 Correct ")) return "openchat";
    if (has("USER: ") && has("ASSISTANT: ")) return has("SYSTEM: ") ? "vicuna-orca" : "vicuna";
    if (has("### Instruction:") && has("<|EOT|>")) return "deepseek";
    if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) return "command-r";
    if (has("<|start_header_id|>") && has("<|end_header_id|>")) return "llama3";
    if (has("[gMASK]sop")) return "chatglm3";
    if (has("<用户>")) return "minicpm";
    if (has("'Assistant: ' + message['content'] + eos_token")) return "deepseek2";
    if (has("<｜Assistant｜>") && has("<｜User｜>") && has("<｜end▁of▁sentence｜>")) return "deepseek3";
    if (has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]")) {
        return has("[|tool|]") ? "exaone4" : "exaone3";
    }
    if (has("rwkv-world") || has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}")) return "rwkv-world";
    if (has("<|start_of_role|>")) {
        if (has("<tool_call>") || has("<tools>")) {
            return has("g4_default_system_message") ? "granite-4.0" : "granite-4.1";
        }
        return "granite";
    }
    if (has("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]")) {
        return "gigachat";
    }
    if (has("<|role_start|>")) return "megrez";
    if (has(" Ассистент:")) return "yandex";
    if (has("<role>ASSISTANT</role>") && has("'HUMAN'")) return "bailing";
    if (has("<role>ASSISTANT</role>") && has("\"HUMAN\"") && has("<think>")) return "bailing-think";
    if (has("<role>ASSISTANT</role>") && has("<role>HUMAN</role>") && has("<|role_end|>")) return "bailing2";
    if (has("<|header_start|>") && has("<|header_end|>")) return "llama4";
    if (has("<|endofuserprompt|>")) return "dots1";
    if (has("<|extra_0|>") && has("<|extra_4|>")) return "hunyuan-moe";
    if (has("<|start|>") && has("<|channel|>")) return "gpt-oss";
    if (has("<｜hy_Assistant｜>") && has("<｜hy_begin▁of▁sentence｜>")) return "hunyuan-vl";
    if (has("<｜hy_Assistant｜>") && has("<｜hy_place▁holder▁no▁3｜>")) return "hunyuan-dense";
    if (has("<|im_assistant|>assistant<|im_middle|>")) return "kimi-k2";
    if (has("<seed:bos>")) return "seed_oss";
    if (has("'Assistant: '  + message['content'] + '<|separator|>")) return "grok-2";
    if (has("[unused9]系统：[unused10]")) return "pangu-embedded";
    if (has("<|begin|>") && has("<|end|>") && has("<|content|>")) return "solar-open";
    return "";
}

// C-locale isspace trim, as llama-chat.cpp's trim().
std::string trim(const std::string& s) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
    size_t b = 0, e = s.size();
    while (b < e && space(s[b])) ++b;
    while (e > b && space(s[e - 1])) --e;
    return s.substr(b, e - b);
}

// The templates that write every message as open + role + separator + content + close and the
// generation prompt as open + "assistant" + separator.
struct RoleTaggedForm {
    const char* open;
    const char* separator;
    const char* close;
    bool trim_content;
};
const std::pair<const char*, RoleTaggedForm> kRoleTaggedTemplates[] = {
    {"chatml", {"<|im_start|>", "\n", "<|im_end|>\n", false}},
    {"phi3", {"<|", "|>\n", "<|end|>\n", false}},
    {"phi4", {"<|im_start|>", "<|im_sep|>", "<|im_end|>", false}},
    {"falcon3", {"<|", "|>\n", "\n", false}},
    {"zephyr", {"<|", "|>\n", "<|endoftext|>\n", false}},
    {"llama3", {"<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>", true}},
};

}  // namespace

Result<ChatTemplate> ChatTemplate::detect(std::string_view name_or_source) {
    const std::string_view name = detect_name(name_or_source);
    if (name.empty()) {
        return Status::error(StatusCode::invalid_argument,
                             "chat template not recognised (%zu bytes; llama.cpp would need --jinja): choose a "
                             "built-in one with --chat-template NAME, e.g. chatml, vicuna, smolvlm, llama2, llama3, "
                             "gemma, phi3",
                             name_or_source.size());
    }
    if (!contains_name(kRendered, name)) {
        return Status::error(StatusCode::unsupported,
                             "chat template '%.*s' (detected as llama.cpp's built-in template) is not implemented in "
                             "glimpse; choose another with --chat-template NAME (chatml, smolvlm, vicuna, llama2, "
                             "llama3, gemma, phi3, mistral-v7, ...)",
                             static_cast<int>(name.size()), name.data());
    }
    return ChatTemplate(std::string(name));
}

Result<ChatTemplate> ChatTemplate::for_model(const GgufFile& text_model, std::string_view chat_template_arg) {
    std::string source;
    if (chat_template_arg.empty()) {
        if (!text_model.has("tokenizer.chat_template")) {
            return Status::error(StatusCode::invalid_argument,
                                 "%s: the model has no chat template (tokenizer.chat_template); pass --chat-template "
                                 "NAME (old LLaVA models: vicuna, MobileVLM: deepseek, Mistral Small 3.1: mistral-v7)",
                                 text_model.path().c_str());
        }
        GLIMPSE_ASSIGN_OR_RETURN(std::string_view src, text_model.get_string("tokenizer.chat_template"));
        source = std::string(src);
    } else {
        source = std::string(chat_template_arg);
    }
    if (source.empty() || source == "chatml") source = std::string(kChatmlSource);
    Result<ChatTemplate> t = detect(source);
    if (!t.is_ok()) {
        return t.status().with_context(chat_template_arg.empty() ? text_model.path() + ": tokenizer.chat_template"
                                                                 : std::string("--chat-template"));
    }
    return t;
}

std::string ChatTemplate::apply(const std::vector<ChatMessage>& chat, bool add_ass) const {
    std::string ss;
    const std::string& t = name_;
    for (const auto& [name, form] : kRoleTaggedTemplates) {
        if (t != name) continue;
        for (const ChatMessage& m : chat) {
            ss += form.open + m.role + form.separator + (form.trim_content ? trim(m.content) : m.content) + form.close;
        }
        if (add_ass) ss += std::string(form.open) + "assistant" + form.separator;
        return ss;
    }
    if (t == "smolvlm") {
        // <|im_start|> acts as BOS; the turns themselves are not chatml.
        ss += "<|im_start|>";
        for (const ChatMessage& m : chat) {
            if (m.role == "system") {
                ss += m.content + "\n\n";
            } else if (m.role == "user") {
                ss += "User: " + m.content + "<end_of_utterance>\n";
            } else {
                ss += "Assistant: " + m.content + "<end_of_utterance>\n";
            }
        }
        if (add_ass) ss += "Assistant:";
    } else if (t == "vicuna" || t == "vicuna-orca") {
        for (const ChatMessage& m : chat) {
            if (m.role == "system") {
                ss += t == "vicuna-orca" ? "SYSTEM: " + m.content + "\n" : m.content + "\n\n";
            } else if (m.role == "user") {
                ss += "USER: " + m.content + "\n";
            } else if (m.role == "assistant") {
                ss += "ASSISTANT: " + m.content + "</s>\n";
            }
        }
        if (add_ass) ss += "ASSISTANT:";
    } else if (t == "llama2" || t == "llama2-sys" || t == "llama2-sys-bos" || t == "llama2-sys-strip") {
        const bool system_supported = t != "llama2";
        const bool bos_inside_history = t == "llama2-sys-bos";
        const bool strip = t == "llama2-sys-strip";
        bool inside_turn = true;  // the leading BOS comes from the tokenizer
        ss += "[INST] ";
        for (const ChatMessage& m : chat) {
            const std::string content = strip ? trim(m.content) : m.content;
            if (!inside_turn) {
                inside_turn = true;
                ss += bos_inside_history ? "<s>[INST] " : "[INST] ";
            }
            if (m.role == "system") {
                ss += system_supported ? "<<SYS>>\n" + content + "\n<</SYS>>\n\n" : content + "\n";
            } else if (m.role == "user") {
                ss += content + " [/INST]";
            } else {
                ss += content + "</s>";
                inside_turn = false;
            }
        }
    } else if (t == "mistral-v7" || t == "mistral-v7-tekken") {
        const std::string sp = t == "mistral-v7" ? " " : "";
        for (const ChatMessage& m : chat) {
            if (m.role == "system") {
                ss += "[SYSTEM_PROMPT]" + sp + m.content + "[/SYSTEM_PROMPT]";
            } else if (m.role == "user") {
                ss += "[INST]" + sp + m.content + "[/INST]";
            } else {
                ss += sp + m.content + "</s>";
            }
        }
    } else if (t == "mistral-v1" || t == "mistral-v3" || t == "mistral-v3-tekken") {
        const std::string leading = t == "mistral-v1" ? " " : "";
        const std::string trailing = t == "mistral-v3-tekken" ? "" : " ";
        const bool trim_assistant = t == "mistral-v3";
        bool inside_turn = false;
        for (const ChatMessage& m : chat) {
            if (!inside_turn) {
                ss += leading + "[INST]" + trailing;
                inside_turn = true;
            }
            if (m.role == "system") {
                ss += m.content + "\n\n";
            } else if (m.role == "user") {
                ss += m.content + leading + "[/INST]";
            } else {
                ss += trailing + (trim_assistant ? trim(m.content) : m.content) + "</s>";
                inside_turn = false;
            }
        }
    } else if (t == "gemma") {
        // No system role: the system text is merged into the next user turn.
        std::string system_prompt;
        for (const ChatMessage& m : chat) {
            if (m.role == "system") {
                system_prompt += trim(m.content);
                continue;
            }
            const std::string role = m.role == "assistant" ? "model" : m.role;
            ss += "<start_of_turn>" + role + "\n";
            if (!system_prompt.empty() && role != "model") {
                ss += system_prompt + "\n\n";
                system_prompt.clear();
            }
            ss += trim(m.content) + "<end_of_turn>\n";
        }
        if (add_ass) ss += "<start_of_turn>model\n";
    } else if (t == "deepseek") {
        for (const ChatMessage& m : chat) {
            if (m.role == "system") {
                ss += m.content;
            } else if (m.role == "user") {
                ss += "### Instruction:\n" + m.content + "\n";
            } else if (m.role == "assistant") {
                ss += "### Response:\n" + m.content + "\n<|EOT|>\n";
            }
        }
        if (add_ass) ss += "### Response:\n";
    } else if (t == "command-r") {
        for (const ChatMessage& m : chat) {
            if (m.role == "system") {
                ss += "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>" + trim(m.content) + "<|END_OF_TURN_TOKEN|>";
            } else if (m.role == "user") {
                ss += "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>" + trim(m.content) + "<|END_OF_TURN_TOKEN|>";
            } else if (m.role == "assistant") {
                ss += "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>" + trim(m.content) + "<|END_OF_TURN_TOKEN|>";
            }
        }
        if (add_ass) ss += "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>";
    }
    return ss;
}

std::string ChatTemplate::format_user_turn(std::string_view user_content) const {
    return apply({ChatMessage{"user", std::string(user_content)}}, /*add_generation_prompt=*/true);
}

std::string_view mtmd_cli_antiprompt(std::string_view chat_template_arg) {
    if (chat_template_arg == "vicuna") return "ASSISTANT:";
    if (chat_template_arg == "deepseek") return "###";
    return {};
}

bool ends_with_tokens(const std::vector<int32_t>& generated, const std::vector<int32_t>& antiprompt_ids) {
    if (antiprompt_ids.empty() || generated.size() < antiprompt_ids.size()) return false;
    return std::equal(generated.end() - static_cast<std::ptrdiff_t>(antiprompt_ids.size()), generated.end(),
                      antiprompt_ids.begin());
}

}  // namespace glimpse
