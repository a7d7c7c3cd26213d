// The body of an OpenAI-style POST /v1/chat/completions, read into what Vlm::generate needs.
// Everything here is a pure function of the request bytes (no model, no I/O), so every refusal
// is decided before a request waits for a model slot.
//
// Accepted (docs/serve.md): one "user" message whose content is a string or an array of parts
// {"type": "text", "text": ...} and {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}
// (JPEG or PNG bytes; any other URL scheme is refused: glimpse never fetches), max_tokens (or
// max_completion_tokens), temperature, top_p, top_k, min_p, seed, n (1 only), stream,
// stream_options.include_usage, and the extension object "glimpse": {"prune": METHOD, "keep": F}
// or {"plan": {...a pruning plan document...}} or {"prune": "none"}.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/vlm.h"
#include "runtime/pruning_plan.h"
#include "runtime/status.h"

namespace glimpse::serve {

// Nesting of arrays/objects a request may have: the accepted shape needs 6
// ({"messages":[{"content":[{"image_url":{...}}]}]} plus a plan's stages); a depth bomb of
// "[[[[..." is refused before it is parsed.
inline constexpr int kMaxRequestJsonDepth = 64;
// Answer tokens when the request names no max_tokens (the CLI's -n default).
inline constexpr int64_t kDefaultMaxTokens = 256;

struct ChatRequest {
    // The user turn: text parts joined by newlines, with the media marker (kMediaMarker) where
    // each image part stood, so Vlm::build_prompt places each image where the client put it.
    std::string user_text;
    std::vector<std::vector<uint8_t>> image_files;  // JPEG or PNG bytes, in part order
    int64_t max_tokens = kDefaultMaxTokens;
    SamplingParams sampling;   // seed drawn at random when the request gives none
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage: a last chunk with token counts
    // The "glimpse" extension: set when the request names a pruning plan (empty optional inside:
    // "prune": "none").
    std::optional<std::optional<PruningPlan>> pruning;
};

// Parses and checks a request body. Errors are invalid_argument (a field the request got wrong,
// named with its JSON path), parse_error (not JSON, or nested deeper than kMaxRequestJsonDepth)
// or unsupported (a valid OpenAI field glimpse does not implement, e.g. a system message).
Result<ChatRequest> parse_chat_request(std::string_view body);

// Strict base64 (RFC 4648 alphabet, '=' padding optional, no other characters; line breaks
// "\r\n" of MIME-wrapped text are skipped). The error names the first offending offset.
Result<std::vector<uint8_t>> base64_decode(std::string_view text);

// "data:image/png;base64,...." -> the image file bytes, which must be a PNG or a JPEG.
// http:, https:, file: and every other scheme are refused (glimpse never fetches).
Result<std::vector<uint8_t>> decode_image_data_uri(std::string_view url);

// Length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence (a stream
// chunk ends there and the rest waits for the next token, so no chunk carries half a character).
size_t complete_utf8_prefix(std::string_view bytes);

}  // namespace glimpse::serve
