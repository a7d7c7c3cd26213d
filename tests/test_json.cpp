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
