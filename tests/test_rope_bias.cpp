// The RoPE-only bias map and the debiasing of a score by it (ops/rope_bias.h), and feather's
// uniform-coverage grid over a prompt's visual chunks (models/decoder_pruning_feather.h):
// - b(Δ) equals the attention logit of all-ones q and k put through the RoPE op itself
//   (rope_norm_ref) at positions p_q and p_k, for several (p_q, p_k) of the same Δ;
// - a flat bias map changes no ranking; the clamp is where the header says;
// - the grid rows equal the closed form worked by hand from the contract.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "models/decoder_pruning_feather.h"
#include "ops/rope.h"
#include "ops/rope_bias.h"

using namespace glimpse;

namespace {

// q·k of all-ones q (position pq) and k (position pk), each one head of D dims rotated by the
// RoPE op, in double from the op's float outputs.
double ones_logit_through_rope(int64_t D, int64_t n_rot, float base, int32_t pq, int32_t pk) {
    std::vector<float> x(static_cast<size_t>(2 * D), 1.0f), y(x.size());
    const int32_t pos[2] = {pq, pk};
    rope_norm_ref(x.data(), pos, 2, 1, D, n_rot, base, y.data(), nullptr);
    double dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(y[static_cast<size_t>(d)]) * y[static_cast<size_t>(D + d)];
    return dot;
}

}  // namespace

TEST_CASE("rope bias: b(delta) is the logit of all-ones q and k through the RoPE op") {
    struct Shape {
        int64_t D, n_rot;
        float base;
    } shapes[] = {{64, 64, 10000.0f}, {48, 32, 100000.0f}, {32, 32, 10000.0f}, {2, 2, 10000.0f}};
    for (const Shape& sh : shapes) {
        INFO("D=" << sh.D << " n_rot=" << sh.n_rot << " base=" << sh.base);
        auto table = rope_bias_table(sh.D, sh.n_rot, sh.base);
        REQUIRE_MESSAGE(table.is_ok(), table.status().message());
        CHECK(table->bias(0) == doctest::Approx(static_cast<double>(sh.D)).epsilon(1e-12));
        for (int32_t delta : {0, 1, 2, 7, 63, 200, 487, 1500}) {
            for (int32_t pk : {0, 5, 1000}) {
                // The op rotates in float: angles up to 2500 rad carry ~2.4e-4 rad of rounding
                // each (one ulp), so each pair's 2cos(Δθ) is off by up to ~1e-3; the closed form
                // is in double. A wrong θ or a missing factor 2 is off by far more.
                const double direct = ones_logit_through_rope(sh.D, sh.n_rot, sh.base, pk + delta, pk);
                CHECK(std::abs(table->bias(delta) - direct) <= 1e-3 * static_cast<double>(sh.n_rot));
            }
        }
    }
    // The cached divisors are the computed ones, inside the cache and past it.
    auto plain = rope_bias_table(64, 64, 10000.0f);
    REQUIRE(plain.is_ok());
    RopeBiasTable cached = *plain;
    cached.cache_divisors(600);
    for (int64_t delta = -3; delta < 700; ++delta) CHECK(cached.divisor(delta) == plain->divisor(delta));
    CHECK(!rope_bias_table(64, 3, 10000.0f).is_ok());   // odd n_rot
    CHECK(!rope_bias_table(64, 128, 10000.0f).is_ok()); // n_rot > head_dim
    CHECK(!rope_bias_table(64, 64, 0.0f).is_ok());
}

TEST_CASE("rope debias: a flat bias map keeps every ranking; the divisor's clamp") {
    // A flat map (every angle 0: b = D at every distance) only scales the scores by 1/D.
    RopeBiasTable flat;
    flat.head_dim = 64;
    flat.n_rot = 64;
    flat.theta.assign(32, 0.0);
    std::vector<float> scores = {0.3f, 0.01f, NAN, 0.2f, 0.2f, 1e-30f};
    std::vector<int32_t> key_pos = {0, 3, 9, 40, 41, 99};
    std::vector<float> out = scores;
    rope_debias_ref(flat, 120, key_pos.data(), static_cast<int64_t>(out.size()), out.data());
    for (size_t i = 0; i < out.size(); ++i) {
        if (std::isnan(scores[i])) {
            CHECK(std::isnan(out[i]));
        } else {
            CHECK(out[i] == static_cast<float>(static_cast<double>(scores[i]) / 64.0));
        }
    }
    // Head dim 32, base 1e4: b(487) is negative (−2.4); the divisor is clamped at 32/16 = 2.
    auto t = rope_bias_table(32, 32, 10000.0f);
    REQUIRE(t.is_ok());
    CHECK(t->bias(487) < 0);
    CHECK(t->divisor(487) == 2.0);
    CHECK(t->divisor(0) == 32.0);
    float s = 0.5f;
    const int32_t kp = 13;
    rope_debias_ref(*t, 500, &kp, 1, &s);
    CHECK(s == 0.25f);
    // Nearer keys have the larger bias here, so debiasing lifts the far key above the near one.
    float two[2] = {0.10f, 0.09f};
    const int32_t two_pos[2] = {499, 300};
    rope_debias_ref(*t, 500, two_pos, 2, two);
    CHECK(t->bias(1) > t->bias(200));
    CHECK(two[1] > two[0]);
}

TEST_CASE("feather grid: the closed-form uniform grid of each chunk, the budget split by chunk size") {
    std::vector<int32_t> rows;
    // One 8 x 8 chunk, keep 16: g = round(sqrt(16)) = 4 grid rows at y = floor((a + 0.5)·8/4) =
    // 1, 3, 5, 7, four tokens each at the same x.
    REQUIRE(feather_grid_rows({{64, 8}}, 16, &rows).is_ok());
    std::vector<int32_t> want;
    for (int y : {1, 3, 5, 7}) {
        for (int x : {1, 3, 5, 7}) want.push_back(y * 8 + x);
    }
    CHECK(rows == want);
    // Three 4 x 4 chunks, keep 12: 4 per chunk, 2 rows (y = 1, 3) of 2 (x = 1, 3) = 5, 7, 13, 15.
    REQUIRE(feather_grid_rows({{16, 4}, {16, 4}, {16, 4}}, 12, &rows).is_ok());
    want.clear();
    for (int c = 0; c < 3; ++c) {
        for (int r : {5, 7, 13, 15}) want.push_back(16 * c + r);
    }
    CHECK(rows == want);
    // A chunk an after_projector stage pruned to 10 rows, then a whole 4 x 4 one; keep 13:
    // k = floor(13·10/26) = 5 from the first at floor((2b + 1)·10/10) = 1, 3, 5, 7, 9, and 8
    // from the grid (g = round(sqrt(8)) = 3 rows at y = 0, 2, 3 holding 2, 3, 3 tokens).
    REQUIRE(feather_grid_rows({{10, 4}, {16, 4}}, 13, &rows).is_ok());
    want = {1, 3, 5, 7, 9};
    for (int r : {0 * 4 + 1, 0 * 4 + 3, 2 * 4 + 0, 2 * 4 + 2, 2 * 4 + 3, 3 * 4 + 0, 3 * 4 + 2, 3 * 4 + 3}) {
        want.push_back(10 + r);
    }
    CHECK(rows == want);
    // Keep all: every row.
    REQUIRE(feather_grid_rows({{16, 4}, {7, 4}}, 23, &rows).is_ok());
    std::vector<int32_t> all(23);
    std::iota(all.begin(), all.end(), 0);
    CHECK(rows == all);
    // Refused: keep outside [1, N], a chunk with more rows than its grid.
    CHECK(!feather_grid_rows({{16, 4}}, 0, &rows).is_ok());
    CHECK(!feather_grid_rows({{16, 4}}, 17, &rows).is_ok());
    auto bad = feather_grid_rows({{17, 4}}, 3, &rows);
    REQUIRE(!bad.is_ok());
    CHECK(bad.message().find("17 rows of a 4 x 4 grid") != std::string::npos);
}
