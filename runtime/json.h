// A small JSON reader and writer helpers: enough for golden data, calibration
// tables and benchmark output, with a depth limit and clear parse errors.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace glimpse {

class JsonValue {
public:
    enum class Kind { null, boolean, number, string, array, object };

    Kind kind() const { return kind_; }
    bool is_null() const { return kind_ == Kind::null; }
    bool is_number() const { return kind_ == Kind::number; }
    bool is_string() const { return kind_ == Kind::string; }
    bool is_array() const { return kind_ == Kind::array; }
    bool is_object() const { return kind_ == Kind::object; }

    bool as_bool() const { return boolean_; }
    double as_number() const { return number_; }
    // The number truncated toward zero, saturated to [INT64_MIN, INT64_MAX] (a double beyond
    // that range, e.g. 1e27, has no int64 value; casting it would be undefined behaviour).
    int64_t as_int() const;
    const std::string& as_string() const { return string_; }
    const std::vector<JsonValue>& items() const { return items_; }
    const std::vector<std::pair<std::string, JsonValue>>& members() const { return members_; }

    // Object member or nullptr. Array element access is items()[i].
    const JsonValue* find(std::string_view key) const;
    // Object member; a shared null value when absent (for chained lookups in tests).
    const JsonValue& operator[](std::string_view key) const;
    size_t size() const { return kind_ == Kind::array ? items_.size() : members_.size(); }

    std::vector<int64_t> int_array() const;
    std::vector<double> number_array() const;
    std::vector<std::string> string_array() const;

private:
    friend class JsonParser;
    Kind kind_ = Kind::null;
    bool boolean_ = false;
    double number_ = 0;
    std::string string_;
    std::vector<JsonValue> items_;
    std::vector<std::pair<std::string, JsonValue>> members_;
};

Result<JsonValue> json_parse(std::string_view text, const std::string& name_for_errors = "json");
// The largest JSON file json_parse_file reads: 128 MiB (the largest tokenizer.json files of
// published models are ~35 MB; scene and golden case files are a few KB).
inline constexpr int64_t kJsonMaxFileBytes = int64_t{128} << 20;
// Refuses anything but a regular file (FIFOs, devices) before reading, and files over the cap.
Result<JsonValue> json_parse_file(const std::string& path);

// "..." with JSON escapes, for writers.
std::string json_quote(std::string_view s);

}  // namespace glimpse
