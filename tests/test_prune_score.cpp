// The pruning score and merge ops (ops/prune_score.h): each reference against an oracle
// independent of it (the math in long double, a hand-worked case, the older validated tap
// reduction of ops/prune_select.h), then every registered variant usable at the active level
// (GLIMPSE_MAX_ISA caps it; qemu runs the NEON ones) against its family's reference on
// adversarial shapes: widths below, at and above every vector width (1, 7, 8, 15, 16, 17, 33,
// 576), n = 1, ties (duplicate rows), zero and NaN rows, huge values, k = 1 and k = n slots.
//
// Tolerances (why):
//   cosine_similarity: 2 ulp of f32 on sim and on the unit rows. Reference and variants sum
//     exact f64 products in different orders (relative difference ~C·2^-53), then round to f32:
//     the rounded norm factor can differ by 1 ulp, which scales a row's dots by 1 ulp more.
//   tap_scores, merge_rows: bit-identical (the same additions in the same order per element).
//   References against the long-double oracle: 4e-7 absolute on cosines (unit rows rounded to
//   f32: ~2^-24 relative per element), 1e-6 relative on scores and merged rows.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <tuple>
#include <cstring>
#include <string>
#include <vector>

#include "ops/kernel_registry.h"
#include "ops/prune_score.h"
#include "ops/prune_select.h"
#include "runtime/threadpool.h"
#include "test_util.h"

using namespace glimpse;
using glimpse::test::Rng;

namespace {

const float kNan = std::nanf("");

std::vector<const Kernel*> usable_of(OpFamily op) {
    std::vector<const Kernel*> out;
    for (const Kernel* k : kernels_of(op)) {
        if (isa_usable(k->isa)) out.push_back(k);
        else MESSAGE("skipping " << std::string(k->name) << ": needs " << std::string(isa_name(k->isa)));
    }
    return out;
}

// 64-byte aligned scratch, as a plan gives it.
struct Scratch {
    std::vector<uint8_t> bytes;
    explicit Scratch(size_t n) : bytes(n + 64) {}
    void* get() { return bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64; }
};

// Distance in units in the last place between two floats (NaN == NaN: 0; NaN vs number: huge).
int64_t ulp_distance(float a, float b) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : INT64_MAX;
    auto ordered = [](float f) {
        int32_t i;
        std::memcpy(&i, &f, 4);
        return i < 0 ? int64_t{INT32_MIN} - i : int64_t{i};
    };
    return std::llabs(ordered(a) - ordered(b));
}

bool same_bits_or_both_nan(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) && std::isnan(b[i])) continue;
        if (std::memcmp(&a[i], &b[i], 4) != 0) return false;
    }
    return true;
}

// Rows with the adversarial cases the selection meets: duplicates (ties), a zero row, a NaN
// row, huge values (their squares overflow f32, not f64).
std::vector<float> adversarial_rows(int64_t rows, int64_t C, uint64_t seed, bool specials) {
    Rng rng{seed};
    std::vector<float> x(static_cast<size_t>(rows * C));
    for (float& v : x) v = rng.uniform(-2, 2);
    if (specials && rows >= 4) {
        std::memcpy(&x[static_cast<size_t>(1 * C)], &x[0], static_cast<size_t>(C) * 4);  // row 1 = row 0
        std::fill(x.begin() + 2 * C, x.begin() + 3 * C, 0.0f);                           // zero row
        for (int64_t c = 0; c < C; ++c) x[static_cast<size_t>(3 * C + c)] *= 1e30f;     // huge row
    }
    if (specials && rows >= 6) x[static_cast<size_t>(5 * C + C / 2)] = kNan;  // NaN row
    return x;
}

}  // namespace

TEST_CASE("cosine_similarity reference: the definition in long double, and a hand-worked case") {
    // a = (3, 4), b = (4, 3): cos = 24 / 25; a against itself 1; a zero row gives 0; NaN stays NaN.
    const std::vector<float> a = {3, 4, 0, 0, kNan, 1};
    const std::vector<float> b = {4, 3, 3, 4};
    std::vector<float> sim(6);
    Scratch s(cosine_similarity_scratch_bytes(3, 2, 2));
    cosine_similarity_ref(a.data(), 3, b.data(), 2, 2, sim.data(), s.get(), nullptr);
    CHECK(sim[0] == doctest::Approx(0.96).epsilon(1e-7));
    CHECK(sim[1] == doctest::Approx(1.0).epsilon(1e-7));
    CHECK(sim[2] == 0.0f);
    CHECK(sim[3] == 0.0f);
    CHECK(std::isnan(sim[4]));
    CHECK(std::isnan(sim[5]));

    for (int64_t C : {int64_t{1}, int64_t{7}, int64_t{17}, int64_t{576}}) {
        const int64_t n = 9, m = 5;
        const std::vector<float> x = adversarial_rows(n, C, 11 + C, true), y = adversarial_rows(m, C, 23 + C, false);
        std::vector<float> got(static_cast<size_t>(n * m)), self(static_cast<size_t>(n * n));
        Scratch sc(cosine_similarity_scratch_bytes(n, n, C));
        cosine_similarity_ref(x.data(), n, y.data(), m, C, got.data(), sc.get(), nullptr);
        auto oracle = [&](const float* p, const float* q) {
            long double pq = 0, pp = 0, qq = 0;
            for (int64_t c = 0; c < C; ++c) pq += (long double)p[c] * q[c], pp += (long double)p[c] * p[c], qq += (long double)q[c] * q[c];
            return pp == 0 || qq == 0 ? 0.0L : pq / std::sqrt(pp * qq);
        };
        for (int64_t i = 0; i < n; ++i) {
            for (int64_t j = 0; j < m; ++j) {
                INFO("C=" << C << " i=" << i << " j=" << j);
                const float g = got[static_cast<size_t>(i * m + j)];
                if (i == 5) {
                    CHECK(std::isnan(g));
                    continue;
                }
                CHECK(std::fabs(static_cast<double>(g - oracle(&x[i * C], &y[j * C]))) <= 4e-7);
            }
        }
        // Self-similarity (b == a): symmetric, 1 on the diagonal of nonzero rows, duplicates tie at 1.
        cosine_similarity_ref(x.data(), n, x.data(), n, C, self.data(), sc.get(), nullptr);
        for (int64_t i = 0; i < n; ++i) {
            if (i == 5) continue;
            for (int64_t j = 0; j < n; ++j) {
                if (j == 5) continue;
                CHECK(self[i * n + j] == self[j * n + i]);
            }
            if (i != 2) CHECK(std::fabs(self[i * n + i] - 1.0f) <= 4e-7f);
        }
        CHECK(self[0 * n + 1] == self[0 * n + 0]);
    }
}

TEST_CASE("cosine_similarity variants: within 2 ulp of the reference (self and cross, any threads)") {
    const bool emulated = test::emulated();
    for (const Kernel* k : usable_of(OpFamily::cosine_similarity)) {
        for (int64_t C : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{15}, int64_t{16}, int64_t{17}, int64_t{33},
                          int64_t{576}}) {
            for (int64_t n : {int64_t{1}, int64_t{6}, int64_t{emulated ? 19 : 67}}) {
                for (int64_t m : {int64_t{0}, int64_t{1}, int64_t{3}, int64_t{4}, int64_t{9}}) {
                    const bool self = m == 0;
                    const int64_t mm = self ? n : m;
                    const std::vector<float> a = adversarial_rows(n, C, 100 + C * 7 + n, true);
                    const std::vector<float> b = adversarial_rows(mm, C, 200 + C * 5 + m, true);
                    const float* bp = self ? a.data() : b.data();
                    Scratch s_ref(cosine_similarity_scratch_bytes(n, mm, C)), s_var(cosine_similarity_scratch_bytes(n, mm, C));
                    std::vector<float> want(static_cast<size_t>(n * mm));
                    cosine_similarity_ref(a.data(), n, bp, mm, C, want.data(), s_ref.get(), nullptr);
                    std::vector<float> first;
                    for (int threads : {0, 1, 3}) {
                        std::unique_ptr<ThreadPool> pool = threads ? std::make_unique<ThreadPool>(threads) : nullptr;
                        std::vector<float> got(static_cast<size_t>(n * mm), -5.0f);
                        k->fn.cosine_similarity(a.data(), n, bp, mm, C, got.data(), s_var.get(), pool.get());
                        INFO(k->name << " C=" << C << " n=" << n << " m=" << mm << (self ? " self" : "") << " threads=" << threads);
                        int64_t worst = 0;
                        for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, ulp_distance(got[i], want[i]));
                        CHECK(worst <= 2);
                        // The unit rows of a, left in scratch, within 2 ulp too.
                        const float* ur = static_cast<const float*>(s_ref.get());
                        const float* uv = static_cast<const float*>(s_var.get());
                        int64_t worst_u = 0;
                        for (int64_t i = 0; i < n * C; ++i) worst_u = std::max(worst_u, ulp_distance(uv[i], ur[i]));
                        CHECK(worst_u <= 2);
                        if (first.empty()) first = got;
                        else CHECK(same_bits_or_both_nan(first, got));  // the thread count changes nothing
                    }
                }
            }
        }
    }
}

TEST_CASE("tap_scores reference: prune_scores_from_tap_ref's mean, [CLS] skipped, accumulate adds") {
    for (const auto& [n_head, h, w, s, cls] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, bool>>{
             {12, 32, 32, 4, false}, {16, 24, 24, 1, true}, {1, 5, 7, 1, false}, {3, 8, 12, 4, true}, {2, 3, 3, 3, false}}) {
        const int64_t n_pos = h * w + (cls ? 1 : 0), T = (h / s) * (w / s);
        Rng rng{static_cast<uint64_t>(n_head * 1000 + h)};
        std::vector<float> tap(static_cast<size_t>(n_head * n_pos));
        for (float& v : tap) v = rng.uniform(0, 0.01f);
        std::vector<float> want(static_cast<size_t>(T)), got(static_cast<size_t>(T));
        REQUIRE(prune_scores_from_tap_ref(tap.data(), n_head, n_pos, h, w, s, want.data()).ok());
        Scratch sc(tap_scores_scratch_bytes(w, s));
        tap_scores_ref(tap.data(), n_head, n_pos, h, w, s, false, got.data(), sc.get());
        for (int64_t t = 0; t < T; ++t) CHECK(got[t] == doctest::Approx(want[t]).epsilon(1e-6));
        // accumulate: got + the same scores again = twice them.
        tap_scores_ref(tap.data(), n_head, n_pos, h, w, s, true, got.data(), sc.get());
        for (int64_t t = 0; t < T; ++t) CHECK(got[t] == doctest::Approx(2 * want[t]).epsilon(1e-6));
    }
    // Hand-worked: 2 heads over a 2 x 2 grid, one 2 x 2 block: (1+2+3+4 + 5+6+7+8) / (2*4) = 4.5.
    const std::vector<float> tap = {1, 2, 3, 4, 5, 6, 7, 8};
    float score = -1;
    Scratch sc(tap_scores_scratch_bytes(2, 2));
    tap_scores_ref(tap.data(), 2, 4, 2, 2, 2, false, &score, sc.get());
    CHECK(score == 4.5f);
}

TEST_CASE("tap_scores variants: bit-identical to the reference (NaN, widths around every vector width)") {
    for (const Kernel* k : usable_of(OpFamily::tap_scores)) {
        for (const auto& [n_head, h, w, s, cls] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, bool>>{
                 {12, 32, 32, 4, false}, {16, 24, 24, 1, true}, {1, 5, 7, 1, false}, {3, 8, 12, 4, true},
                 {2, 3, 3, 3, false}, {5, 1, 17, 1, true}, {4, 2, 34, 2, false}, {12, 16, 16, 16, false}}) {
            const int64_t n_pos = h * w + (cls ? 1 : 0), T = (h / s) * (w / s);
            Rng rng{static_cast<uint64_t>(n_head * 77 + w)};
            std::vector<float> tap(static_cast<size_t>(n_head * n_pos));
            for (float& v : tap) v = rng.uniform(0, 1);
            if (tap.size() > 3) tap[3] = kNan;
            for (bool accumulate : {false, true}) {
                std::vector<float> want(static_cast<size_t>(T), 0.25f), got(static_cast<size_t>(T), 0.25f);
                Scratch s1(tap_scores_scratch_bytes(w, s)), s2(tap_scores_scratch_bytes(w, s));
                tap_scores_ref(tap.data(), n_head, n_pos, h, w, s, accumulate, want.data(), s1.get());
                k->fn.tap_scores(tap.data(), n_head, n_pos, h, w, s, accumulate, got.data(), s2.get());
                INFO(k->name << " heads=" << n_head << " " << h << "x" << w << " s=" << s << " acc=" << accumulate);
                CHECK(same_bits_or_both_nan(got, want));
            }
        }
    }
}

TEST_CASE("merge_rows reference: the weighted mean per slot in double; empty slots are zero") {
    const int64_t n = 10, C = 5, k = 4;
    Rng rng{5};
    std::vector<float> x(static_cast<size_t>(n * C)), w(static_cast<size_t>(n));
    for (float& v : x) v = rng.uniform(-3, 3);
    for (float& v : w) v = rng.uniform(0.5f, 4);
    const std::vector<int32_t> assign = {0, -1, 2, 0, 2, 2, -1, 0, 3, -1};  // slot 1 gets nothing
    for (bool weighted : {false, true}) {
        std::vector<float> y(static_cast<size_t>(k * C), 7.0f), sizes(static_cast<size_t>(k), 7.0f);
        merge_rows_ref(x.data(), n, C, assign.data(), weighted ? w.data() : nullptr, k, y.data(), sizes.data(), nullptr);
        for (int64_t t = 0; t < k; ++t) {
            double ws = 0;
            std::vector<double> acc(static_cast<size_t>(C), 0.0);
            for (int64_t i = 0; i < n; ++i) {
                if (assign[i] != t) continue;
                const double wi = weighted ? w[i] : 1.0;
                ws += wi;
                for (int64_t c = 0; c < C; ++c) acc[c] += wi * x[i * C + c];
            }
            CHECK(sizes[t] == doctest::Approx(ws).epsilon(1e-6));
            for (int64_t c = 0; c < C; ++c) {
                const double want = ws == 0 ? 0.0 : acc[c] / ws;
                CHECK(y[t * C + c] == doctest::Approx(want).epsilon(1e-6));
            }
        }
        CHECK(sizes[1] == 0.0f);
    }
    // Hand-worked: rows (1, 2) and (3, 6) with sizes 1 and 3 -> (10/4, 20/4).
    const std::vector<float> xs = {1, 2, 3, 6}, ws = {1, 3};
    const std::vector<int32_t> one = {0, 0};
    std::vector<float> y(2);
    merge_rows_ref(xs.data(), 2, 2, one.data(), ws.data(), 1, y.data(), nullptr, nullptr);
    CHECK(y == std::vector<float>{2.5f, 5.0f});
}

TEST_CASE("merge_rows variants: bit-identical to the reference (k = 1, k = n, empty slots, NaN, any threads)") {
    for (const Kernel* kern : usable_of(OpFamily::merge_rows)) {
        for (int64_t C : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{17}, int64_t{576}}) {
            for (int64_t n : {int64_t{1}, int64_t{9}, int64_t{64}}) {
                for (int64_t k : {int64_t{1}, n / 2 + 1, n}) {
                    Rng rng{static_cast<uint64_t>(C * 131 + n * 7 + k)};
                    std::vector<float> x(static_cast<size_t>(n * C)), w(static_cast<size_t>(n));
                    for (float& v : x) v = rng.uniform(-3, 3);
                    for (float& v : w) v = rng.uniform(0.1f, 5);
                    if (n > 4) x[static_cast<size_t>(4 * C)] = kNan;
                    std::vector<int32_t> assign(static_cast<size_t>(n));
                    for (int64_t i = 0; i < n; ++i) assign[i] = i % 5 == 3 ? -1 : rng.integer(0, static_cast<int32_t>(k));
                    for (bool weighted : {false, true}) {
                        std::vector<float> want(static_cast<size_t>(k * C)), wsz(static_cast<size_t>(k));
                        merge_rows_ref(x.data(), n, C, assign.data(), weighted ? w.data() : nullptr, k, want.data(),
                                       wsz.data(), nullptr);
                        for (int threads : {0, 1, 3}) {
                            std::unique_ptr<ThreadPool> pool = threads ? std::make_unique<ThreadPool>(threads) : nullptr;
                            std::vector<float> got(static_cast<size_t>(k * C) + 1, -9.0f), gsz(static_cast<size_t>(k));
                            kern->fn.merge_rows(x.data(), n, C, assign.data(), weighted ? w.data() : nullptr, k,
                                                got.data(), gsz.data(), pool.get());
                            INFO(kern->name << " C=" << C << " n=" << n << " k=" << k << " weighted=" << weighted
                                            << " threads=" << threads);
                            CHECK(got.back() == -9.0f);  // nothing written past k rows
                            got.pop_back();
                            CHECK(same_bits_or_both_nan(got, want));
                            CHECK(same_bits_or_both_nan(gsz, wsz));
                        }
                    }
                }
            }
        }
    }
}

// ---- attention_row (the [CLS] tap) ---------------------------------------------------------------
// Tolerances (why):
//   reference against the long-double softmax: the logit is rounded to f32 (|x|·2^-24), expf is
//     within 1 ulp and the normaliser is rounded to f32: relative ≤ max|logit|·2^-22 + 2^-20.
//   variants against the reference: the same frame and softmax code; only the f64 order of the
//     dot's sum differs, so a logit moves by at most 1 ulp of f32 plus the f64 sums' difference
//     (2·D·2^-53·Σ|q·k|, times the scale); exp turns an absolute logit error e into a relative
//     one of e, twice (numerator and normaliser): relative ≤ 2·max_s e_s + 2^-22.
//   thread counts: bit-identical (each element is computed by one task with the same code).

namespace {

struct RowCase {
    int64_t S, n_head, n_head_kv, D;
};

// q:(H·D), k:(S, kv_ld) with kv_ld = Hkv·D + 3 (a row stride wider than the heads, as a fused
// QKV value has), values in [-2, 2].
struct RowInputs {
    std::vector<float> q, k;
    int64_t kv_ld;
    RowInputs(const RowCase& c, uint64_t seed) : kv_ld(c.n_head_kv * c.D + 3) {
        Rng rng{seed};
        q.resize(static_cast<size_t>(c.n_head * c.D));
        k.resize(static_cast<size_t>(c.S * kv_ld));
        for (float& v : q) v = rng.uniform(-2, 2);
        for (float& v : k) v = rng.uniform(-2, 2);
    }
    const float* key(const RowCase& c, int64_t h, int64_t s) const {
        return k.data() + s * kv_ld + (h / (c.n_head / c.n_head_kv)) * c.D;
    }
};

std::vector<float> run_row(AttentionRowFn fn, const RowCase& c, const RowInputs& in, float scale, int threads) {
    std::unique_ptr<ThreadPool> pool = threads ? std::make_unique<ThreadPool>(threads) : nullptr;
    std::vector<float> out(static_cast<size_t>(c.n_head * c.S) + 1, -7.0f);
    fn(in.q.data(), in.k.data(), c.S, in.kv_ld, c.n_head, c.n_head_kv, c.D, scale, out.data(), pool.get());
    CHECK(out.back() == -7.0f);  // nothing written past (H, S)
    out.pop_back();
    return out;
}

const std::vector<RowCase> kRowCases = {{1, 1, 1, 1},   {7, 3, 3, 7},   {63, 2, 1, 8},   {64, 4, 2, 15},
                                        {65, 1, 1, 16}, {129, 3, 1, 17}, {200, 2, 2, 33}, {577, 16, 16, 64}};

}  // namespace

TEST_CASE("attention_row reference: softmax of the scaled dots in long double; hand-worked GQA case") {
    // One kv head shared by two query heads; q0 = (1, 0), q1 = (0, 1); keys (0, 5) and (ln 3, 1).
    // head 0 logits: 0, ln 3 -> 1/4, 3/4; head 1 logits: 5, 1 -> e^4/(e^4+1), 1/(e^4+1).
    const std::vector<float> q = {1, 0, 0, 1};
    const std::vector<float> k = {0, 5, std::log(3.0f), 1};
    std::vector<float> out(4);
    attention_row_ref(q.data(), k.data(), 2, 2, 2, 1, 2, 1.0f, out.data(), nullptr);
    CHECK(out[0] == doctest::Approx(0.25).epsilon(1e-6));
    CHECK(out[1] == doctest::Approx(0.75).epsilon(1e-6));
    CHECK(out[2] == doctest::Approx(std::exp(4.0) / (std::exp(4.0) + 1)).epsilon(1e-6));
    CHECK(out[3] == doctest::Approx(1 / (std::exp(4.0) + 1)).epsilon(1e-6));

    for (const RowCase& c : kRowCases) {
        const RowInputs in(c, static_cast<uint64_t>(c.S * 31 + c.D));
        const float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
        const std::vector<float> got = run_row(attention_row_ref, c, in, scale, 0);
        for (int64_t h = 0; h < c.n_head; ++h) {
            std::vector<long double> logit(static_cast<size_t>(c.S));
            long double mx = -INFINITY, sum = 0;
            for (int64_t s = 0; s < c.S; ++s) {
                long double dot = 0;
                for (int64_t d = 0; d < c.D; ++d) dot += (long double)in.q[h * c.D + d] * in.key(c, h, s)[d];
                logit[s] = dot * scale;
                mx = std::max(mx, logit[s]);
            }
            for (long double& l : logit) sum += std::exp(l - mx);
            double max_abs = 0;
            for (long double l : logit) max_abs = std::max(max_abs, static_cast<double>(std::fabs(l)));
            const double rel = max_abs * std::ldexp(1.0, -22) + std::ldexp(1.0, -20);
            for (int64_t s = 0; s < c.S; ++s) {
                const double want = static_cast<double>(std::exp(logit[s] - mx) / sum);
                INFO("S=" << c.S << " H=" << c.n_head << " D=" << c.D << " h=" << h << " s=" << s);
                CHECK(std::fabs(got[h * c.S + s] - want) <= rel * want + 1e-30);
            }
        }
    }
}

TEST_CASE("attention_row variants: within the derived bound of the reference, NaN rows, same bits for any threads") {
    for (const Kernel* kern : usable_of(OpFamily::attention_row)) {
        for (const RowCase& c : kRowCases) {
            RowInputs in(c, static_cast<uint64_t>(c.S * 17 + c.n_head));
            if (c.n_head >= 3) in.q[static_cast<size_t>(1 * c.D)] = kNan;  // head 1: a NaN row
            const float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
            const std::vector<float> want = run_row(attention_row_ref, c, in, scale, 0);
            std::vector<float> first;
            for (int threads : {0, 1, 2, 3}) {
                const std::vector<float> got = run_row(kern->fn.attention_row, c, in, scale, threads);
                INFO(kern->name << " S=" << c.S << " H=" << c.n_head << "/" << c.n_head_kv << " D=" << c.D
                                << " threads=" << threads);
                if (first.empty()) first = got;
                else CHECK(same_bits_or_both_nan(first, got));  // the thread count changes nothing
                for (int64_t h = 0; h < c.n_head; ++h) {
                    // e_s: 1 ulp of the logit + the f64 sums' order, over the row.
                    double e = 0;
                    for (int64_t s = 0; s < c.S; ++s) {
                        double dot = 0, mag = 0;
                        for (int64_t d = 0; d < c.D; ++d) {
                            const double p = static_cast<double>(in.q[h * c.D + d]) * in.key(c, h, s)[d];
                            dot += p;
                            mag += std::fabs(p);
                        }
                        e = std::max(e, (std::fabs(dot) * std::ldexp(1.0, -23) + 2.0 * c.D * std::ldexp(mag, -53)) * scale);
                    }
                    const double rel = 2 * e + std::ldexp(1.0, -22);
                    for (int64_t s = 0; s < c.S; ++s) {
                        const float g = got[h * c.S + s], w = want[h * c.S + s];
                        if (std::isnan(w)) {
                            CHECK(std::isnan(g));
                            continue;
                        }
                        CHECK(std::fabs(static_cast<double>(g) - w) <= rel * w + 1e-30);
                    }
                }
            }
        }
    }
}
