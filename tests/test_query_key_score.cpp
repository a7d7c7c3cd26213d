// The query-key score (ops/query_key_score.h): the reference against hand-worked softmax
// rows, then every registered variant against the reference on adversarial shapes (head
// sizes and key counts around the vector widths, grouped-query heads, several raters, very
// peaked and perfectly flat rows), with no pool, 1 and 3 threads giving identical bits.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/kernel_registry.h"
#include "ops/query_key_score.h"
#include "runtime/threadpool.h"
#include "test_util.h"

using namespace glimpse;

namespace {

struct Case {
    int64_t R, S, H, Hkv, D;
    float scale;
    std::vector<float> q, k;  // q:(R, H·D), k:(S, Hkv·D), dense
};

QueryKeyScoreArgs args_of(const Case& c, HeadReduce reduce, float* out) {
    return {.q = c.q.data(), .q_ld = c.H * c.D, .n_raters = c.R, .k = c.k.data(), .k_ld = c.Hkv * c.D, .n_keys = c.S,
            .n_head = c.H, .n_head_kv = c.Hkv, .head_dim = c.D, .scale = c.scale, .reduce = reduce, .out = out};
}

std::vector<float> run(QueryKeyScoreFn fn, const Case& c, HeadReduce reduce, ThreadPool* pool) {
    std::vector<float> out(static_cast<size_t>(c.S), -1.0f);
    std::vector<float> scratch(static_cast<size_t>(query_key_score_scratch_floats(c.R, c.H, c.S)));
    fn(args_of(c, reduce, out.data()), scratch.data(), pool);
    return out;
}

}  // namespace

TEST_CASE("query_key_score reference: hand-worked rows") {
    // One head, D = 1, q = 1, keys 0 and ln 3 (scale 1): softmax = (1/4, 3/4).
    Case c{1, 2, 1, 1, 1, 1.0f, {1.0f}, {0.0f, std::log(3.0f)}};
    std::vector<float> out = run(query_key_score_ref, c, HeadReduce::mean, nullptr);
    CHECK(out[0] == doctest::Approx(0.25).epsilon(1e-6));
    CHECK(out[1] == doctest::Approx(0.75).epsilon(1e-6));

    // Two heads sharing one kv head (GQA), D = 1, keys (0, ln 3): head 0 has q = 1 ->
    // (1/4, 3/4); head 1 has q = -1 -> (3/4, 1/4). Mean over heads (1/2, 1/2); max (3/4, 3/4).
    Case g{1, 2, 2, 1, 1, 1.0f, {1.0f, -1.0f}, {0.0f, std::log(3.0f)}};
    out = run(query_key_score_ref, g, HeadReduce::mean, nullptr);
    CHECK(out[0] == doctest::Approx(0.5).epsilon(1e-6));
    CHECK(out[1] == doctest::Approx(0.5).epsilon(1e-6));
    out = run(query_key_score_ref, g, HeadReduce::max, nullptr);
    CHECK(out[0] == doctest::Approx(0.75).epsilon(1e-6));
    CHECK(out[1] == doctest::Approx(0.75).epsilon(1e-6));

    // Two raters on one head average: rater 0 (1/4, 3/4), rater 1 (q = 0) (1/2, 1/2) -> (3/8, 5/8).
    Case r{2, 2, 1, 1, 1, 1.0f, {1.0f, 0.0f}, {0.0f, std::log(3.0f)}};
    out = run(query_key_score_ref, r, HeadReduce::mean, nullptr);
    CHECK(out[0] == doctest::Approx(0.375).epsilon(1e-6));
    CHECK(out[1] == doctest::Approx(0.625).epsilon(1e-6));

    // Dot products over D with the right kv head: H = 2, Hkv = 2, D = 2; head 1 reads k's
    // second half. q = (0,0 | 1,1), k0 = (9,9 | 0,0), k1 = (0,0 | ln2/2, ln2/2): head 0 is
    // flat (1/2, 1/2), head 1 (1/3, 2/3); mean (5/12, 7/12).
    const float h = std::log(2.0f) / 2;
    Case d{1, 2, 2, 2, 2, 1.0f, {0, 0, 1, 1}, {9, 9, 0, 0, 0, 0, h, h}};
    out = run(query_key_score_ref, d, HeadReduce::mean, nullptr);
    CHECK(out[0] == doctest::Approx(5.0 / 12).epsilon(1e-6));
    CHECK(out[1] == doctest::Approx(7.0 / 12).epsilon(1e-6));
}

// Tolerance: the variants compute dot products in f32 lanes (the reference in double) and
// exp by vexp (relative error <= 2^-22). With |q|,|k| <= 1, D <= 130 and scale <= 4 a logit is
// off by at most ~1e-5 absolute, so a probability by ~1e-5 relative; plus 1e-9 absolute for
// probabilities that underflow differently. Stated: |v - r| <= 5e-5·|r| + 1e-9.
TEST_CASE("query_key_score variants: every registered kernel against the reference") {
    test::Rng rng{2024};
    ThreadPool p1(1), p3(3);
    int checked = 0;
    for (const Kernel* kernel : kernels_of(OpFamily::query_key_score)) {
        if (!isa_usable(kernel->isa)) {
            MESSAGE("skipping " << std::string(kernel->name) << ": needs " << std::string(isa_name(kernel->isa)));
            continue;
        }
        const QueryKeyScoreFn fn = kernel->fn.query_key_score;
        struct Heads {
            int64_t H, Hkv;
        };
        for (int64_t D : {int64_t{1}, int64_t{3}, int64_t{8}, int64_t{16}, int64_t{17}, int64_t{64}, int64_t{130}}) {
            for (int64_t S : {int64_t{1}, int64_t{2}, int64_t{7}, int64_t{16}, int64_t{17}, int64_t{33}, int64_t{893}}) {
                for (Heads hd : {Heads{1, 1}, Heads{9, 3}, Heads{4, 4}}) {
                    for (int64_t R : {int64_t{1}, int64_t{3}}) {
                        for (int pattern = 0; pattern < 3; ++pattern) {
                            // 0: random; 1: peaked (scale 4, one key aligned with q); 2: every key equal (flat).
                            Case c{R, S, hd.H, hd.Hkv, D, pattern == 1 ? 4.0f : 1.0f / std::sqrt(float(D)), {}, {}};
                            c.q.resize(static_cast<size_t>(R * hd.H * D));
                            c.k.resize(static_cast<size_t>(S * hd.Hkv * D));
                            for (float& v : c.q) v = rng.uniform(-1, 1);
                            for (size_t i = 0; i < c.k.size(); ++i) {
                                c.k[i] = pattern == 2 ? c.k[i % static_cast<size_t>(hd.Hkv * D)] : rng.uniform(-1, 1);
                                if (pattern == 2 && i < static_cast<size_t>(hd.Hkv * D)) c.k[i] = rng.uniform(-1, 1);
                            }
                            if (pattern == 1 && S > 1) {
                                // key S/2 of kv head 0 equals rater 0's head-0 query: the row peaks there.
                                std::memcpy(&c.k[static_cast<size_t>((S / 2) * hd.Hkv * D)], c.q.data(), D * 4);
                            }
                            for (HeadReduce reduce : {HeadReduce::mean, HeadReduce::max}) {
                                INFO(kernel->name << " D=" << D << " S=" << S << " H=" << hd.H << "/" << hd.Hkv
                                                  << " R=" << R << " pattern=" << pattern
                                                  << " reduce=" << (reduce == HeadReduce::max ? "max" : "mean"));
                                const std::vector<float> ref = run(query_key_score_ref, c, reduce, nullptr);
                                const std::vector<float> none = run(fn, c, reduce, nullptr);
                                const std::vector<float> one = run(fn, c, reduce, &p1);
                                const std::vector<float> three = run(fn, c, reduce, &p3);
                                CHECK(std::memcmp(none.data(), one.data(), none.size() * 4) == 0);
                                CHECK(std::memcmp(one.data(), three.data(), one.size() * 4) == 0);
                                double sum = 0;
                                for (int64_t s = 0; s < S; ++s) {
                                    const double r = ref[s], v = three[s];
                                    REQUIRE(std::abs(v - r) <= 5e-5 * std::abs(r) + 1e-9);
                                    if (pattern == 2) REQUIRE(std::abs(r - 1.0 / double(S)) <= 1e-6 / double(S));
                                    sum += r;
                                }
                                // Mean over heads of probability rows: the scores sum to 1.
                                if (reduce == HeadReduce::mean) CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
                                ++checked;
                            }
                        }
                    }
                }
            }
        }
    }
    CHECK(checked > 0);
}
