#include <doctest/doctest.h>

#include "runtime/json.h"
#include "test_util.h"

using namespace glimpse;

TEST_CASE("json: values, escapes, nesting, errors") {
    auto r = json_parse(R"({"a": [1, -2.5e1, true, null], "s": "x\"\\\u00e9\ud83d\ude00", "o": {}})");
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    const JsonValue& v = *r;
    CHECK(v["a"].size() == 4);
    CHECK(v["a"].items()[1].as_number() == -25.0);
    CHECK(v["a"].items()[2].as_bool());
    CHECK(v["a"].items()[3].is_null());
    CHECK(v["s"].as_string() == "x\"\\\xc3\xa9\xf0\x9f\x98\x80");
    CHECK(v["o"].is_object());
    CHECK(v["missing"].is_null());
    for (const char* bad : {"", "{", "[1,", "{\"a\" 1}", "\"abc", "[1] x", "tru", "\"\\q\""}) {
        CHECK_MESSAGE(!json_parse(bad).is_ok(), bad);
    }
    std::string deep(10000, '[');
    CHECK_FALSE(json_parse(deep).is_ok());
    CHECK(json_quote("a\"b\n\x01") == "\"a\\\"b\\n\\u0001\"");
}

TEST_CASE("json: golden tokenizer file parses") {
    auto r = json_parse_file(test::golden_dir() + "/tokenizer.json");
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    CHECK((*r)["cases"].size() == 15);  // README: 15 strings
}

// Found by tests/fuzz/fuzz_json: "[1E27]" parsed, and int_array()/as_int() then cast 1e27 to
// int64_t, which is undefined behaviour (UBSan: "outside the range of representable values").
TEST_CASE("json: integers beyond int64 saturate instead of overflowing (fuzz regression)") {
    auto r = json_parse_file(test::source_dir() + "/tests/data/regressions/json/int_1e27.json");
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    REQUIRE(r->size() == 1);
    CHECK(r->items()[0].as_number() == 1e27);
    CHECK(r->int_array() == std::vector<int64_t>{INT64_MAX});
    auto edges = json_parse("[-1e27, 9223372036854775807, -9223372036854775808, 9007199254740993, -2.9, 2.9]");
    REQUIRE(edges.is_ok());
    // 9223372036854775807 rounds to the double 2^63, just out of range: saturates.
    // 9007199254740993 (2^53 + 1) is not a double; it parses as 2^53.
    CHECK(edges->int_array() ==
          std::vector<int64_t>{INT64_MIN, INT64_MAX, INT64_MIN, 9007199254740992, -2, 2});
}

// A literal beyond the double range made strtod return infinity, which parsed as a number.
TEST_CASE("json: numbers beyond the double range are a parse error") {
    auto r = json_parse_file(test::source_dir() + "/tests/data/regressions/json/number_1e400.json");
    REQUIRE_FALSE(r.is_ok());
    CHECK_MESSAGE(r.status().message().find("number out of the double range at offset 1") != std::string::npos,
                  r.status().message());
    CHECK_FALSE(json_parse("-1e999").is_ok());
    auto tiny = json_parse("1e-400");  // underflow is not an error: the nearest double is 0
    REQUIRE(tiny.is_ok());
    CHECK(tiny->as_number() == 0.0);
}
