#include "runtime/json.h"

#include "runtime/mapped_file.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace glimpse {

class JsonParser {
public:
    JsonParser(std::string_view text, const std::string& name) : s_(text), name_(name) {}

    Result<JsonValue> parse_document() {
        JsonValue v;
        GLIMPSE_RETURN_IF_ERROR(parse_value(&v, 0));
        skip_ws();
        if (pos_ != s_.size()) return fail("trailing characters after the document");
        return v;
    }

private:
    static constexpr int kMaxDepth = 256;

    Status fail(const char* what) const {
        return Status::error(StatusCode::parse_error, "%s: JSON %s at offset %zu", name_.c_str(), what, pos_);
    }
    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
    }
    bool consume(std::string_view lit) {
        if (s_.substr(pos_, lit.size()) == lit) {
            pos_ += lit.size();
            return true;
        }
        return false;
    }

    Status parse_value(JsonValue* v, int depth) {
        if (depth > kMaxDepth) return fail("nesting too deep");
        skip_ws();
        if (pos_ >= s_.size()) return fail("unexpected end of input");
        char c = s_[pos_];
        if (c == '{') return parse_object(v, depth);
        if (c == '[') return parse_array(v, depth);
        if (c == '"') {
            v->kind_ = JsonValue::Kind::string;
            return parse_string(&v->string_);
        }
        if (consume("true")) { v->kind_ = JsonValue::Kind::boolean; v->boolean_ = true; return Status::ok(); }
        if (consume("false")) { v->kind_ = JsonValue::Kind::boolean; v->boolean_ = false; return Status::ok(); }
        if (consume("null")) { v->kind_ = JsonValue::Kind::null; return Status::ok(); }
        return parse_number(v);
    }

    Status parse_number(JsonValue* v) {
        size_t start = pos_;
        if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
        while (pos_ < s_.size() && ((s_[pos_] >= '0' && s_[pos_] <= '9') || s_[pos_] == '.' || s_[pos_] == 'e' ||
                                    s_[pos_] == 'E' || s_[pos_] == '+' || s_[pos_] == '-')) {
            ++pos_;
        }
        if (pos_ == start) return fail("unexpected character");
        std::string num(s_.substr(start, pos_ - start));
        char* end = nullptr;
        v->number_ = std::strtod(num.c_str(), &end);
        if (end != num.c_str() + num.size()) {
            pos_ = start;
            return fail("malformed number");
        }
        // strtod gives +-HUGE_VAL (infinity) for a literal beyond the double range ("1e400");
        // no JSON document means infinity, and it would poison every later computation.
        if (!std::isfinite(v->number_)) {
            pos_ = start;
            return fail("number out of the double range");
        }
        v->kind_ = JsonValue::Kind::number;
        return Status::ok();
    }

    static void append_utf8(std::string* out, uint32_t cp) {
        if (cp < 0x80) {
            out->push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        } else if (cp < 0x10000) {
            out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
            out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        } else {
            out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
            out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
            out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        }
    }

    Status parse_hex4(uint32_t* out) {
        if (pos_ + 4 > s_.size()) return fail("truncated \\u escape");
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            char h = s_[pos_++];
            v <<= 4;
            if (h >= '0' && h <= '9') v |= h - '0';
            else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
            else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
            else return fail("bad \\u escape");
        }
        *out = v;
        return Status::ok();
    }

    Status parse_string(std::string* out) {
        ++pos_;  // opening quote
        while (true) {
            if (pos_ >= s_.size()) return fail("unterminated string");
            char c = s_[pos_++];
            if (c == '"') return Status::ok();
            if (c != '\\') {
                out->push_back(c);
                continue;
            }
            if (pos_ >= s_.size()) return fail("unterminated escape");
            char e = s_[pos_++];
            switch (e) {
                case '"': out->push_back('"'); break;
                case '\\': out->push_back('\\'); break;
                case '/': out->push_back('/'); break;
                case 'b': out->push_back('\b'); break;
                case 'f': out->push_back('\f'); break;
                case 'n': out->push_back('\n'); break;
                case 'r': out->push_back('\r'); break;
                case 't': out->push_back('\t'); break;
                case 'u': {
                    uint32_t cp = 0;
                    GLIMPSE_RETURN_IF_ERROR(parse_hex4(&cp));
                    if (cp >= 0xd800 && cp < 0xdc00 && s_.substr(pos_, 2) == "\\u") {
                        pos_ += 2;
                        uint32_t lo = 0;
                        GLIMPSE_RETURN_IF_ERROR(parse_hex4(&lo));
                        if (lo < 0xdc00 || lo >= 0xe000) return fail("bad surrogate pair");
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    }
                    append_utf8(out, cp);
                    break;
                }
                default: return fail("unknown escape");
            }
        }
    }

    // From the opening bracket of an array or object to its `close`: no elements, or
    // parse_element() for each, comma-separated; the two messages name the container's errors.
    template <class ParseElement>
    Status parse_elements(char close, const char* unterminated, const char* bad_separator,
                          ParseElement parse_element) {
        ++pos_;
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == close) { ++pos_; return Status::ok(); }
        while (true) {
            GLIMPSE_RETURN_IF_ERROR(parse_element());
            skip_ws();
            if (pos_ >= s_.size()) return fail(unterminated);
            if (s_[pos_] == ',') { ++pos_; continue; }
            if (s_[pos_] == close) { ++pos_; return Status::ok(); }
            return fail(bad_separator);
        }
    }

    Status parse_array(JsonValue* v, int depth) {
        v->kind_ = JsonValue::Kind::array;
        return parse_elements(']', "unterminated array", "expected ',' or ']'", [&] {
            v->items_.emplace_back();
            return parse_value(&v->items_.back(), depth + 1);
        });
    }

    Status parse_object(JsonValue* v, int depth) {
        v->kind_ = JsonValue::Kind::object;
        return parse_elements('}', "unterminated object", "expected ',' or '}'", [&]() -> Status {
            skip_ws();
            if (pos_ >= s_.size() || s_[pos_] != '"') return fail("expected a member name");
            std::string key;
            GLIMPSE_RETURN_IF_ERROR(parse_string(&key));
            skip_ws();
            if (pos_ >= s_.size() || s_[pos_] != ':') return fail("expected ':'");
            ++pos_;
            v->members_.emplace_back(std::move(key), JsonValue());
            return parse_value(&v->members_.back().second, depth + 1);
        });
    }

    std::string_view s_;
    const std::string& name_;
    size_t pos_ = 0;
};

const JsonValue* JsonValue::find(std::string_view key) const {
    for (const auto& m : members_) {
        if (m.first == key) return &m.second;
    }
    return nullptr;
}

const JsonValue& JsonValue::operator[](std::string_view key) const {
    static const JsonValue null_value;
    const JsonValue* v = find(key);
    return v ? *v : null_value;
}

int64_t JsonValue::as_int() const {
    // 2^63 is exactly representable; every double below it (and >= -2^63) converts without UB.
    constexpr double kTwo63 = 9223372036854775808.0;
    if (number_ >= kTwo63) return INT64_MAX;
    if (!(number_ >= -kTwo63)) return INT64_MIN;  // also NaN, which a parsed value never is
    return static_cast<int64_t>(number_);
}

std::vector<int64_t> JsonValue::int_array() const {
    std::vector<int64_t> out;
    for (const JsonValue& v : items_) out.push_back(v.as_int());
    return out;
}
std::vector<double> JsonValue::number_array() const {
    std::vector<double> out;
    for (const JsonValue& v : items_) out.push_back(v.as_number());
    return out;
}
std::vector<std::string> JsonValue::string_array() const {
    std::vector<std::string> out;
    for (const JsonValue& v : items_) out.push_back(v.as_string());
    return out;
}

Result<JsonValue> json_parse(std::string_view text, const std::string& name) {
    JsonParser p(text, name);
    return p.parse_document();
}

Result<JsonValue> json_parse_file(const std::string& path) {
    // Through open_regular_file, not an ifstream: a FIFO given as a scene, case or tokenizer.json
    // path would block the open forever, and /dev/zero would be read until memory runs out.
    GLIMPSE_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_regular_file(path, "a JSON file", kJsonMaxFileBytes));
    return json_parse(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path);
}

std::string json_quote(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) out += str_printf("\\u%04x", c);
                else out.push_back(static_cast<char>(c));
        }
    }
    out += "\"";
    return out;
}

}  // namespace glimpse
