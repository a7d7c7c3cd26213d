// libFuzzer target: the JSON reader (golden data, calibration tables, tokenizer.json, eval scene
// files). Input: any bytes as JSON text. A parse must either fail with an error or give a value
// that can be walked completely and whose helpers (int_array, number_array, string_array,
// find, operator[]) are safe on every node; json_quote of every string must parse back to it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "runtime/json.h"

using namespace glimpse;

namespace {

volatile size_t g_sink;

void walk(const JsonValue& v, int depth) {
    size_t acc = v.size();
    switch (v.kind()) {
        case JsonValue::Kind::array:
            acc += v.int_array().size() + v.number_array().size() + v.string_array().size();
            for (const JsonValue& item : v.items()) walk(item, depth + 1);
            break;
        case JsonValue::Kind::object:
            for (const auto& [key, member] : v.members()) {
                if (v.find(key) == nullptr) std::abort();  // a member must be found by its own key
                acc += v[key].size();
                walk(member, depth + 1);
            }
            acc += v["\x01no such key"].is_null() ? 0 : 1;
            break;
        case JsonValue::Kind::string: {
            // Round trip: quoting a parsed string and parsing it again gives the same bytes.
            auto again = json_parse(json_quote(v.as_string()), "quoted");
            if (!again.is_ok() || !again.value().is_string() || again.value().as_string() != v.as_string()) std::abort();
            break;
        }
        case JsonValue::Kind::number:
            acc += static_cast<size_t>(v.as_number() == v.as_number());
            break;
        default:
            acc += v.as_bool();
    }
    g_sink = acc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto r = json_parse(text, "fuzz.json");
    if (r.is_ok()) walk(r.value(), 0);
    return 0;
}
