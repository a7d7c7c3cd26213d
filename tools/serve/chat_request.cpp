#include "tools/serve/chat_request.h"

#include <cmath>
#include <random>

#include <nlohmann/json.hpp>

#include "models/chat_template.h"
#include "models/limits.h"

namespace glimpse::serve {

using nlohmann::json;

namespace {

Status bad(const std::string& path, const std::string& what) {
    return Status(StatusCode::invalid_argument, path + ": " + what);
}

// Deepest array/object nesting of a JSON text, counted outside strings; stops early past `limit`.
int json_nesting_depth(std::string_view text, int limit) {
    int depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
            if (deepest > limit) return deepest;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return deepest;
}

// A finite number within [lo, hi] (JSON has no nan/inf, but 1e999 parses to inf).
Result<double> number_in(const json& v, const std::string& path, double lo, double hi) {
    if (!v.is_number()) return bad(path, "must be a number");
    const double x = v.get<double>();
    if (!std::isfinite(x) || x < lo || x > hi) {
        return bad(path, str_printf("%g is out of range [%g, %g]", x, lo, hi));
    }
    return x;
}

Result<int64_t> integer_in(const json& v, const std::string& path, int64_t lo, int64_t hi) {
    if (!v.is_number_integer()) return bad(path, "must be an integer");
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        return bad(path, str_printf("is out of range [%lld, %lld]", static_cast<long long>(lo), static_cast<long long>(hi)));
    }
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) {
        return bad(path, str_printf("%lld is out of range [%lld, %lld]", static_cast<long long>(x),
                                    static_cast<long long>(lo), static_cast<long long>(hi)));
    }
    return x;
}

bool is_png(const std::vector<uint8_t>& b) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return b.size() >= 8 && std::equal(sig, sig + 8, b.begin());
}
bool is_jpeg(const std::vector<uint8_t>& b) { return b.size() >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff; }

Status read_user_content(const json& content, const std::string& path, ChatRequest* out) {
    if (content.is_string()) {
        out->user_text = content.get<std::string>();
        return Status::ok();
    }
    if (!content.is_array()) return bad(path, "must be a string or an array of content parts");
    bool last_was_text = false;
    for (size_t i = 0; i < content.size(); ++i) {
        const json& part = content[i];
        const std::string part_path = path + "[" + std::to_string(i) + "]";
        if (!part.is_object()) return bad(part_path, "must be an object with a \"type\"");
        const auto type = part.find("type");
        if (type == part.end() || !type->is_string()) return bad(part_path + ".type", "must be \"text\" or \"image_url\"");
        if (*type == "text") {
            const auto text = part.find("text");
            if (text == part.end() || !text->is_string()) return bad(part_path + ".text", "must be a string");
            if (last_was_text) out->user_text += '\n';
            out->user_text += text->get<std::string>();
            last_was_text = true;
        } else if (*type == "image_url") {
            const auto image_url = part.find("image_url");
            if (image_url == part.end()) return bad(part_path + ".image_url", "is missing");
            // OpenAI sends {"url": ...}; some clients send the URL string itself.
            const json* url = &*image_url;
            if (image_url->is_object()) {
                const auto u = image_url->find("url");
                if (u == image_url->end()) return bad(part_path + ".image_url.url", "is missing");
                url = &*u;
            }
            if (!url->is_string()) return bad(part_path + ".image_url.url", "must be a string");
            if (static_cast<int64_t>(out->image_files.size()) >= limits::kMaxImagesPerPrompt) {
                return bad(part_path, str_printf("more than %lld images in one request",
                                                 static_cast<long long>(limits::kMaxImagesPerPrompt)));
            }
            auto bytes = decode_image_data_uri(url->get_ref<const std::string&>());
            if (!bytes.is_ok()) return bad(part_path + ".image_url.url", bytes.status().message());
            out->image_files.push_back(std::move(*bytes));
            out->user_text += kMediaMarker;
            last_was_text = false;
        } else {
            return Status(StatusCode::unsupported,
                          part_path + ".type: \"" + type->get<std::string>() +
                              "\" parts are not supported (text and image_url are)");
        }
    }
    return Status::ok();
}

Status read_messages(const json& messages, ChatRequest* out) {
    if (!messages.is_array() || messages.empty()) return bad("messages", "must be a non-empty array");
    // One user turn: Vlm builds a single-turn prompt (chat template + images), so a system
    // message or an earlier exchange could not be rendered the way the model's template would.
    if (messages.size() != 1) {
        return Status(StatusCode::unsupported,
                      str_printf("messages: %zu messages; glimpse serve answers a single user message (no system "
                                 "message, no conversation history)",
                                 messages.size()));
    }
    const json& m = messages[0];
    if (!m.is_object()) return bad("messages[0]", "must be an object");
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return bad("messages[0].role", "must be a string");
    if (*role != "user") {
        return Status(StatusCode::unsupported,
                      "messages[0].role: \"" + role->get<std::string>() + "\"; glimpse serve answers a single user message");
    }
    const auto content = m.find("content");
    if (content == m.end()) return bad("messages[0].content", "is missing");
    return read_user_content(*content, "messages[0].content", out);
}

Status read_glimpse_extension(const json& ext, ChatRequest* out) {
    if (!ext.is_object()) return bad("glimpse", "must be an object");
    for (const auto& [key, value] : ext.items()) {
        if (key != "prune" && key != "keep" && key != "plan") {
            return bad("glimpse." + key, "unknown field (prune, keep, plan)");
        }
    }
    const auto plan = ext.find("plan");
    const auto prune = ext.find("prune");
    const auto keep = ext.find("keep");
    if (plan != ext.end()) {
        if (prune != ext.end() || keep != ext.end()) return bad("glimpse", "plan and prune/keep are alternatives; give one");
        if (!plan->is_object()) return bad("glimpse.plan", "must be a pruning plan object (docs/pruning.md)");
        auto parsed = pruning_plan_parse(plan->dump(), "glimpse.plan");
        if (!parsed.is_ok()) return Status(StatusCode::invalid_argument, parsed.status().message());
        out->pruning = std::optional<PruningPlan>(std::move(*parsed));
        return Status::ok();
    }
    if (prune == ext.end()) {
        if (keep != ext.end()) return bad("glimpse.keep", "goes with glimpse.prune");
        return Status::ok();
    }
    if (!prune->is_string()) return bad("glimpse.prune", "must be a method name or \"none\"");
    if (*prune == "none") {
        if (keep != ext.end()) return bad("glimpse.keep", "makes no sense with \"prune\": \"none\"");
        out->pruning = std::optional<PruningPlan>();
        return Status::ok();
    }
    if (keep == ext.end()) return bad("glimpse.prune", "needs glimpse.keep (a fraction in (0, 1] or a count > 1)");
    GLIMPSE_ASSIGN_OR_RETURN(double fraction, number_in(*keep, "glimpse.keep", 0, 1e9));
    auto parsed = pruning_plan_from_shorthand(prune->get<std::string>(), fraction);
    if (!parsed.is_ok()) return bad("glimpse", parsed.status().message());
    out->pruning = std::optional<PruningPlan>(std::move(*parsed));
    return Status::ok();
}

Result<ChatRequest> parse_object(const json& doc) {
    if (!doc.is_object()) return bad("request", "must be a JSON object");
    ChatRequest r;
    const auto messages = doc.find("messages");
    if (messages == doc.end()) return bad("messages", "is missing");
    GLIMPSE_RETURN_IF_ERROR(read_messages(*messages, &r));

    auto present = [&](const char* key) -> const json* {
        const auto it = doc.find(key);
        return it == doc.end() || it->is_null() ? nullptr : &*it;
    };
    const json* max_tokens = present("max_tokens");
    const char* max_tokens_name = "max_tokens";
    if (!max_tokens) {
        max_tokens = present("max_completion_tokens");
        max_tokens_name = "max_completion_tokens";
    }
    if (max_tokens) {
        GLIMPSE_ASSIGN_OR_RETURN(r.max_tokens, integer_in(*max_tokens, max_tokens_name, 1, limits::kMaxContextLength));
    }
    if (const json* t = present("temperature")) {
        GLIMPSE_ASSIGN_OR_RETURN(double x, number_in(*t, "temperature", 0, 1e6));
        r.sampling.temperature = static_cast<float>(x);
    }
    if (const json* t = present("top_p")) {
        GLIMPSE_ASSIGN_OR_RETURN(double x, number_in(*t, "top_p", 0, 1));
        if (x == 0) return bad("top_p", "must be above 0");
        r.sampling.top_p = static_cast<float>(x);
    }
    if (const json* t = present("min_p")) {
        GLIMPSE_ASSIGN_OR_RETURN(double x, number_in(*t, "min_p", 0, 1));
        if (x == 1) return bad("min_p", "must be below 1");
        r.sampling.min_p = static_cast<float>(x);
    }
    if (const json* t = present("top_k")) {
        GLIMPSE_ASSIGN_OR_RETURN(int64_t k, integer_in(*t, "top_k", 0, INT32_MAX));
        r.sampling.top_k = static_cast<int>(k);
    }
    int64_t seed = -1;  // as the CLI: -1 or absent = random
    if (const json* t = present("seed")) {
        GLIMPSE_ASSIGN_OR_RETURN(seed, integer_in(*t, "seed", -1, INT64_MAX));
    }
    r.sampling.seed = seed >= 0 ? static_cast<uint64_t>(seed) : std::random_device{}();
    if (const json* n = present("n")) {
        GLIMPSE_ASSIGN_OR_RETURN(int64_t count, integer_in(*n, "n", 1, 1));
        (void)count;
    }
    if (const json* stop = present("stop")) {
        if (!(stop->is_array() && stop->empty())) {
            return Status(StatusCode::unsupported, "stop: stop sequences are not supported (generation stops at the "
                                                   "model's end-of-generation token or max_tokens)");
        }
    }
    if (const json* s = present("stream")) {
        if (!s->is_boolean()) return bad("stream", "must be true or false");
        r.stream = s->get<bool>();
    }
    if (const json* so = present("stream_options")) {
        if (!so->is_object()) return bad("stream_options", "must be an object");
        const auto usage = so->find("include_usage");
        if (usage != so->end()) {
            if (!usage->is_boolean()) return bad("stream_options.include_usage", "must be true or false");
            r.include_usage = usage->get<bool>();
        }
    }
    if (const json* ext = present("glimpse")) {
        GLIMPSE_RETURN_IF_ERROR(read_glimpse_extension(*ext, &r));
    }
    return r;
}

}  // namespace

Result<ChatRequest> parse_chat_request(std::string_view body) {
    const int depth = json_nesting_depth(body, kMaxRequestJsonDepth);
    GLIMPSE_CHECK_OR_RETURN(depth <= kMaxRequestJsonDepth, parse_error,
                            "request: JSON nested deeper than %d levels", kMaxRequestJsonDepth);
    // nlohmann reports errors by exception; this is the boundary where they become a Status.
    // Strings must be valid UTF-8 (the parser refuses anything else).
    try {
        const json doc = json::parse(body.begin(), body.end());
        return parse_object(doc);
    } catch (const json::exception& e) {
        return Status(StatusCode::parse_error, std::string("request is not valid JSON: ") + e.what());
    }
}

Result<std::vector<uint8_t>> base64_decode(std::string_view text) {
    auto sextet = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::vector<uint8_t> out;
    out.reserve(text.size() / 4 * 3 + 3);
    uint32_t bits = 0;
    int n_bits = 0;
    size_t padding_at = std::string_view::npos;
    size_t n_symbols = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\r' || c == '\n') continue;
        if (c == '=') {
            if (padding_at == std::string_view::npos) padding_at = i;
            continue;
        }
        const int v = sextet(c);
        if (v < 0 || padding_at != std::string_view::npos) {
            return Status::error(StatusCode::invalid_argument, "bad base64: %s at offset %zu",
                                 v < 0 ? "a character outside the base64 alphabet" : "data after '=' padding", i);
        }
        ++n_symbols;
        bits = (bits << 6) | static_cast<uint32_t>(v);
        n_bits += 6;
        if (n_bits >= 8) {
            n_bits -= 8;
            out.push_back(static_cast<uint8_t>(bits >> n_bits));
            bits &= (1u << n_bits) - 1;
        }
    }
    // A last group of one symbol carries only 6 bits: no byte, so the text was cut.
    GLIMPSE_CHECK_OR_RETURN(n_symbols % 4 != 1, invalid_argument, "bad base64: the data ends in the middle of a byte");
    return out;
}

Result<std::vector<uint8_t>> decode_image_data_uri(std::string_view url) {
    constexpr std::string_view kData = "data:";
    if (url.substr(0, kData.size()) != kData) {
        const size_t colon = url.find(':');
        const std::string scheme(colon == std::string_view::npos || colon > 16 ? "no scheme" : url.substr(0, colon));
        return Status(StatusCode::invalid_argument,
                      "only data: URIs with base64 JPEG or PNG bytes are accepted, not " + scheme +
                          " (glimpse serve never fetches URLs)");
    }
    const size_t comma = url.find(',');
    GLIMPSE_CHECK_OR_RETURN(comma != std::string_view::npos, invalid_argument, "data: URI without a ',' before the data");
    const std::string_view header = url.substr(kData.size(), comma - kData.size());
    constexpr std::string_view kBase64 = ";base64";
    GLIMPSE_CHECK_OR_RETURN(header.size() >= kBase64.size() && header.substr(header.size() - kBase64.size()) == kBase64,
                            invalid_argument, "data: URI must be base64 (data:image/png;base64,...)");
    const std::string_view media_type = header.substr(0, header.size() - kBase64.size());
    GLIMPSE_CHECK_OR_RETURN(media_type.substr(0, 6) == "image/", invalid_argument,
                            "data: URI media type '%.*s' is not an image (image/png or image/jpeg)",
                            static_cast<int>(std::min<size_t>(media_type.size(), 64)), media_type.data());
    GLIMPSE_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, base64_decode(url.substr(comma + 1)));
    GLIMPSE_CHECK_OR_RETURN(is_png(bytes) || is_jpeg(bytes), invalid_argument,
                            "the data: URI holds %zu bytes that are neither a PNG nor a JPEG", bytes.size());
    return bytes;
}

size_t complete_utf8_prefix(std::string_view bytes) {
    // Walk back over at most 3 continuation bytes to the last lead byte; keep it only when all of
    // its sequence is present. Invalid bytes count as complete (they are passed on as they are).
    size_t i = bytes.size();
    int continuation = 0;
    while (i > 0 && continuation < 3 && (static_cast<unsigned char>(bytes[i - 1]) & 0xC0) == 0x80) {
        --i;
        ++continuation;
    }
    if (i == 0) return bytes.size();
    const unsigned char lead = static_cast<unsigned char>(bytes[i - 1]);
    const int need = lead >= 0xF0 && lead < 0xF8 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
    if (lead < 0xC0 || lead >= 0xF8) return bytes.size();
    return continuation < need ? i - 1 : bytes.size();
}

}  // namespace glimpse::serve
