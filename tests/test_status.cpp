#include <doctest/doctest.h>

#include "runtime/fp16.h"
#include "runtime/status.h"

#include <cmath>
#include <ios>
#include <limits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace glimpse;

static Result<int> parse_positive(int v) {
    GLIMPSE_CHECK_OR_RETURN(v > 0, invalid_argument, "value %d is not positive", v);
    return v * 2;
}

static Status use_parse(int v, int* out) {
    GLIMPSE_ASSIGN_OR_RETURN(*out, parse_positive(v));
    return Status::ok();
}

TEST_CASE("Result carries a value or an error, and the macros propagate it") {
    int out = 0;
    CHECK(use_parse(4, &out).is_ok());
    CHECK(out == 8);
    Status s = use_parse(-1, &out);
    CHECK(s.code() == StatusCode::invalid_argument);
    CHECK(s.message() == "value -1 is not positive");
    CHECK(s.with_context("reading x").to_string() == "invalid_argument: reading x: value -1 is not positive");
}

TEST_CASE("f16 conversion round-trips every half value exactly") {
    for (uint32_t h = 0; h < 0x10000; ++h) {
        float f = f16_to_f32(static_cast<uint16_t>(h));
        if (std::isnan(f)) continue;
        REQUIRE(f32_to_f16(f) == h);
    }
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) {
    return static_cast<uint16_t>(_cvtss_sh(f, 0));  // round to nearest even
}
__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

TEST_CASE("f16 conversion matches the F16C instructions on many floats") {
    if (!__builtin_cpu_supports("f16c")) return;
    // Walk float bit patterns with a stride that visits every exponent and many mantissas,
    // including subnormal-result and overflow ranges.
    for (uint64_t bits = 0; bits <= 0xffffffffull; bits += 4093) {
        float f = f32_from_bits(static_cast<uint32_t>(bits));
        if (std::isnan(f)) continue;
        REQUIRE_MESSAGE(f32_to_f16(f) == hw_f32_to_f16(f), "bits=" << std::hex << bits);
    }
    for (uint32_t h = 0; h < 0x10000; ++h) {
        float a = f16_to_f32(static_cast<uint16_t>(h)), b = hw_f16_to_f32(static_cast<uint16_t>(h));
        if (std::isnan(a)) { CHECK(std::isnan(b)); continue; }
        REQUIRE(f32_bits(a) == f32_bits(b));
    }
}
#endif

TEST_CASE("bf16 rounds to nearest even") {
    CHECK(f32_to_bf16(1.0f) == 0x3f80);
    // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0)
    CHECK(f32_to_bf16(1.00390625f) == 0x3f80);
    // 1 + 3*2^-8 is halfway between 1.0078125 (odd mantissa) and 1.015625: rounds up
    CHECK(f32_to_bf16(1.01171875f) == 0x3f82);
    CHECK(bf16_to_f32(0x3f82) == 1.015625f);
}
