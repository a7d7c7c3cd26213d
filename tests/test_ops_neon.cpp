// aarch64 hot ops against their scalar references: the q8_0 activation quantizer
// (against a scalar model of ggml's ARM semantics, exactly, and hand-worked ties),
// exp, softmax, attention (f32 and f16 KV, GQA, causal, the column-mean tap) and
// RMSNorm, with tolerances
// derived from f32 rounding (u = 2^-24, γ_n = n·u / (1 - n·u)).
// Compiles to a single informational test case on other architectures.
#include <doctest/doctest.h>

#if defined(__aarch64__)

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "ops/attention_neon.h"
#include "ops/norm.h"
#include "ops/norm_neon.h"
#include "ops/quantize_activations_neon.h"
#include "runtime/fp16.h"
#include "runtime/threadpool.h"
#include "test_util.h"

using namespace glimpse;

namespace {

constexpr double kU = 1.0 / (1 << 24);
double gamma_n(double n) { return n * kU / (1 - n * kU); }

// Test scale: under emulation (test::emulated(), set by targets/test-aarch64.sh) the
// largest shapes are skipped; every code path is still covered by the smaller ones.

using test::Rng;

// ggml's ARM quantize_row_q8_0, one block, written plainly.
void quantize_block_model(const float* x, BlockQ8_0* y) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y->d = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) y->qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));  // ties to even
}

}  // namespace

TEST_CASE("NEON q8_0 activation quantizer: ggml ARM semantics, ties to even") {
    // Hand-worked block: amax = 127 -> d = 1, id = 1, so q = round_half_even(x).
    float x[32];
    for (int j = 0; j < 32; ++j) x[j] = 0;
    x[0] = 127;
    x[1] = 2.5f;    // -> 2
    x[2] = -3.5f;   // -> -4
    x[3] = 0.5f;    // -> 0
    x[4] = 1.5f;    // -> 2
    x[5] = -126.5f; // -> -126
    x[6] = 3.49f;   // -> 3
    BlockQ8_0 got;
    quantize_row_q8_0_neon(x, 32, &got);
    CHECK(f16_to_f32(got.d) == 1.0f);
    const int want[] = {127, 2, -4, 0, 2, -126, 3};
    for (int j = 0; j < 7; ++j) CHECK_MESSAGE(got.qs[j] == want[j], "x=" << x[j]);
    // All-zero block: d = 0, every q = 0.
    float z[32] = {};
    quantize_row_q8_0_neon(z, 32, &got);
    CHECK(got.d == 0);
    for (int j = 0; j < 32; ++j) CHECK(got.qs[j] == 0);

    Rng rng{7};
    for (int64_t K : {32, 64, 96, 768, 2048}) {
        std::vector<float> row0(K), row1(K);
        for (int64_t k = 0; k < K; ++k) {
            row0[k] = rng.uniform(-3, 3) * (k % 97 == 0 ? 40.0f : 1.0f);
            row1[k] = rng.uniform(-0.01f, 0.01f);
        }
        std::vector<BlockQ8_0> a(K / 32), b(K / 32), ma(K / 32), mb(K / 32);
        quantize_row_q8_0_neon(row0.data(), K, a.data());
        quantize_row_q8_0_neon(row1.data(), K, b.data());
        for (int64_t i = 0; i < K / 32; ++i) {
            quantize_block_model(row0.data() + 32 * i, &ma[i]);
            quantize_block_model(row1.data() + 32 * i, &mb[i]);
        }
        CHECK(std::memcmp(a.data(), ma.data(), a.size() * sizeof(BlockQ8_0)) == 0);
        CHECK(std::memcmp(b.data(), mb.data(), b.size() * sizeof(BlockQ8_0)) == 0);
        // The i8mm pair layout holds the same integers and the f16 scales as f32.
        std::vector<BlockQ8_0x2> p(K / 32);
        quantize_row_pair_q8_0_neon(row0.data(), row1.data(), K, p.data());
        for (int64_t i = 0; i < K / 32; ++i) {
            CHECK(p[i].d[0] == f16_to_f32(a[i].d));
            CHECK(p[i].d[1] == f16_to_f32(a[i].d));
            CHECK(p[i].d[2] == f16_to_f32(b[i].d));
            CHECK(p[i].d[3] == f16_to_f32(b[i].d));
            for (int c = 0; c < 4; ++c) {
                CHECK(std::memcmp(p[i].qs + 16 * c, a[i].qs + 8 * c, 8) == 0);
                CHECK(std::memcmp(p[i].qs + 16 * c + 8, b[i].qs + 8 * c, 8) == 0);
            }
        }
    }
}

// The baseline-NEON W8A8 kernel (ops/matmul_q8_neon.cpp) keeps two products per int16
// lane, which needs every activation quant in [-127, 127] (weights may be -128): adversarial
// blocks (values at ±amax, the largest and the smallest floats, subnormals, inf, NaN) never
// give -128 or anything outside, and finite blocks still match ggml's ARM semantics.
TEST_CASE("NEON q8_0 activation quantizer: quants stay within [-127, 127] on any input") {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    const float big = std::numeric_limits<float>::max(), tiny = std::numeric_limits<float>::denorm_min();
    const float fills[] = {1.0f, -1.0f, big, -big, tiny, -tiny, 1e-40f, 3.0e38f, 127.5f, -127.49f, 0.0f};
    Rng rng{11};
    int model_blocks = 0, overflow_blocks = 0;
    for (float fill : fills) {
        for (int special = 0; special < 4; ++special) {
            float x[32];
            for (int j = 0; j < 32; ++j) x[j] = fill * (j % 3 == 0 ? 1.0f : rng.uniform(-1, 1));
            x[31] = -fill;  // both ±amax in the block
            if (special == 1) x[7] = inf;
            if (special == 2) x[7] = -inf;
            if (special == 3) x[7] = nan;
            BlockQ8_0 got;
            quantize_row_q8_0_neon(x, 32, &got);
            for (int j = 0; j < 32; ++j) {
                REQUIRE_MESSAGE(got.qs[j] >= -127, "fill " << fill << " case " << special << ": q[" << j
                                                             << "] = " << int(got.qs[j]));
            }
            if (special != 0) continue;
            float amax = 0;
            for (float v : x) amax = std::max(amax, std::fabs(v));
            const float d = amax / 127.0f;
            if (d != 0.0f && !std::isfinite(1.0f / d)) {
                // 1/d overflows (0 < amax < 127·2^-128): the stored scale is 0, so whatever
                // the quants, the block adds nothing to a product
                CHECK(f16_to_f32(got.d) == 0.0f);
                ++overflow_blocks;
                continue;
            }
            BlockQ8_0 want;
            quantize_block_model(x, &want);
            CHECK(std::memcmp(&got, &want, sizeof got) == 0);
            CHECK((d == 0.0f || std::abs(int(got.qs[31])) == 127));
            ++model_blocks;
        }
    }
    CHECK(model_blocks == 10);
    CHECK(overflow_blocks == 1);  // the 1e-40 fill
}

TEST_CASE("exp_neon: relative error within 2^-22 of std::exp, 0 below -87.3, inf above 88.72") {
    std::vector<float> x, y;
    for (float v = -87.0f; v <= 88.0f; v += 0.01371f) x.push_back(v);
    for (float v : {0.0f, -0.0f, 1.0f, -1.0f, 1e-20f, -1e-20f, 0.34657359f, -0.34657359f, 88.5f}) x.push_back(v);
    y.resize(x.size());
    exp_neon(x.data(), static_cast<int64_t>(x.size()), y.data());
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        const double ref = std::exp(static_cast<double>(x[i]));
        worst = std::max(worst, std::fabs(y[i] - ref) / ref);
    }
    MESSAGE("exp_neon worst relative error " << worst);
    CHECK(worst <= std::ldexp(1.0, -22));
    float low[5] = {-87.4f, -100.0f, -1e30f, -INFINITY, -88.0f}, out[5];
    exp_neon(low, 5, out);
    for (float v : out) CHECK(v == 0.0f);
    float high[3] = {88.8f, 1e30f, INFINITY};
    exp_neon(high, 3, out);
    for (int i = 0; i < 3; ++i) CHECK(out[i] == INFINITY);
}

TEST_CASE("softmax_row_neon matches softmax_row_ref") {
    Rng rng{11};
    for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 31, 64, 257, 1100}) {
        std::vector<float> a(n), b;
        for (float& v : a) v = rng.uniform(-12, 12);
        if (n > 3) a[2] = -1e30f;  // a masked-out score
        b = a;
        softmax_row_ref(a.data(), n);
        softmax_row_neon(b.data(), n);
        // exp 2^-22 each; sum in f32 lanes: γ_n; 1/sum and the product: 2u; ref's own: 3u.
        const double rel = 2 * std::ldexp(1.0, -22) + gamma_n(static_cast<double>(n)) + 5 * kU;
        for (int64_t i = 0; i < n; ++i) {
            CHECK_MESSAGE(std::fabs(static_cast<double>(b[i]) - a[i]) <= rel * a[i] + 1e-37,
                          "n=" << n << " i=" << i << " " << b[i] << " vs " << a[i]);
        }
    }
}

namespace {

// With `tap`, also the column-mean tap against attention_ref's: each probability within
// its row's bound, summed over T rows in f32 (γ_T + 2u); and the attention output and
// the tap must be the same with and without the tap and for 1 thread and `threads`.
void check_attention(DType kv_type, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, bool causal, int threads,
                     bool tap = false) {
    Rng rng{static_cast<uint64_t>(T * 131 + S * 7 + D + Hq * 3 + causal)};
    const test::AttentionShape c{T, S, Hq, Hkv, D, causal, causal ? S - T : 0};
    const test::AttentionInputs in = test::random_attention_inputs(rng, c, kv_type, 1.0f);
    const int64_t q_ld = in.q_ld, kv_ld = in.kv_ld, out_ld = in.out_ld;
    const std::vector<float>& q = in.q, &kf = in.kf, &vf = in.vf;
    AttentionArgs a = test::attention_args(c, in, kv_type);
    ThreadPool pool(threads);
    std::vector<float> scratch(threads * attention_scratch_floats(S));
    std::vector<float> ref(T * out_ld, -7.0f), got(T * out_ld, -7.0f);
    a.out = ref.data();
    attention_ref(a, scratch.data(), &pool);
    a.out = got.data();
    attention_neon(a, scratch.data(), &pool);
    std::vector<float> ref_tap(tap ? Hq * S : 0), got_tap(tap ? Hq * S : 0, -7.0f);
    if (tap) {
        std::vector<float> ref_with_tap(T * out_ld, -7.0f), got_with_tap(T * out_ld, -7.0f);
        a.out = ref_with_tap.data();
        a.col_mean = ref_tap.data();
        attention_ref(a, scratch.data(), &pool);
        a.out = got_with_tap.data();
        a.col_mean = got_tap.data();
        attention_neon(a, scratch.data(), &pool);
        CHECK_MESSAGE(std::memcmp(got_with_tap.data(), got.data(), got.size() * 4) == 0, "output changed by the tap");
        ThreadPool one(1);
        std::vector<float> one_out(T * out_ld, -7.0f), one_tap(Hq * S, -7.0f);
        a.out = one_out.data();
        a.col_mean = one_tap.data();
        attention_neon(a, scratch.data(), &one);
        CHECK_MESSAGE(std::memcmp(one_out.data(), got.data(), got.size() * 4) == 0, "output depends on the thread count");
        CHECK_MESSAGE(std::memcmp(one_tap.data(), got_tap.data(), got_tap.size() * 4) == 0, "tap depends on the thread count");
        a.col_mean = nullptr;
    }
    std::vector<double> head_rel_max(Hq, 0.0);

    const int64_t group = Hq / Hkv;
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t h = 0; h < Hq; ++h) {
            const int64_t hk = h / group;
            const int64_t n = causal ? std::min<int64_t>(S, a.causal_offset + t + 1) : S;
            const float* qr = q.data() + t * q_ld + h * D;
            // Probabilities in double, and each score's rounding bound δ_s.
            std::vector<double> p(n);
            double max = -1e300, sum = 0, worst_delta = 0;
            for (int64_t s = 0; s < n; ++s) {
                double dot = 0, mag = 0;
                for (int64_t d = 0; d < D; ++d) {
                    const double prod = static_cast<double>(qr[d]) * kf[s * kv_ld + hk * D + d];
                    dot += prod;
                    mag += std::fabs(prod);
                }
                p[s] = dot * a.scale;
                worst_delta = std::max(worst_delta, a.scale * (gamma_n(static_cast<double>(D)) * mag) + 2 * kU * std::fabs(p[s]));
                max = std::max(max, p[s]);
            }
            for (double& v : p) sum += (v = std::exp(v - max));
            for (double& v : p) v /= sum;
            // Scores off by δ move each probability by a factor within e^{±2δ}; softmax's own
            // error (see the softmax test) and the f32 weighted sum γ_n add relatively.
            // The blocked kernel (T >= 8) rescales numerator and denominator once per block
            // of 64 keys (<= 2u each): 4·⌈n/16⌉u covers it, as in tests/test_op_variants.cpp.
            const double rel = 2.2 * worst_delta + 2 * std::ldexp(1.0, -22) + 2 * gamma_n(static_cast<double>(n)) +
                               4 * static_cast<double>((n + 15) / 16) * kU + 8 * kU;
            head_rel_max[h] = std::max(head_rel_max[h], rel);
            for (int64_t d = 0; d < D; ++d) {
                double mag = 0;
                for (int64_t s = 0; s < n; ++s) mag += p[s] * std::fabs(vf[s * kv_ld + hk * D + d]);
                const double r = ref[t * out_ld + h * D + d], g = got[t * out_ld + h * D + d];
                if (!(std::fabs(g - r) <= rel * mag + 1e-30)) {
                    FAIL_CHECK(std::string(dtype_name(kv_type)) << " T=" << T << " S=" << S << " Hq=" << Hq << " Hkv=" << Hkv << " D=" << D
                                                   << " causal=" << causal << ": out[" << t << "][" << h << "][" << d << "] = " << g
                                                   << ", reference " << r << ", tolerance " << rel * mag);
                    return;
                }
            }
        }
        for (int64_t j = Hq * D; j < out_ld; ++j) REQUIRE(got[t * out_ld + j] == -7.0f);
    }
    for (int64_t h = 0; h < (tap ? Hq : 0); ++h) {
        for (int64_t s = 0; s < S; ++s) {
            const double r = ref_tap[h * S + s], g = got_tap[h * S + s];
            const double tol = (head_rel_max[h] + gamma_n(static_cast<double>(T)) + 2 * kU) * std::fabs(r) + 1e-30;
            if (!(std::fabs(g - r) <= tol)) {
                FAIL_CHECK(std::string(dtype_name(kv_type)) << " T=" << T << " S=" << S << " D=" << D << ": col_mean[" << h << "][" << s
                                               << "] = " << g << ", reference " << r << ", tolerance " << tol);
                return;
            }
        }
    }
}

}  // namespace

TEST_CASE("attention_neon matches attention_ref") {
    for (DType kv : {DType::f32, DType::f16}) {
        // decode (T = 1) over a long cache, GQA 9/3 and 15/5 with D = 64 (SmolVLM's decoders)
        check_attention(kv, 1, test::emulated() ? 300 : 1100, 9, 3, 64, true, 2);
        check_attention(kv, 1, 257, 15, 5, 64, true, 1);
        // prefill chunk, causal, and a vision-style full attention with D = 72 and odd D
        check_attention(kv, 7, 40, 4, 2, 72, true, 3);
        check_attention(kv, 5, 33, 2, 2, 80, false, 1);
        check_attention(kv, 3, 9, 3, 1, 6, false, 2);
        check_attention(kv, 2, 1, 1, 1, 16, false, 1);
        if (!test::emulated()) check_attention(kv, 64, 196, 12, 12, 64, false, 2);
        // blocked kernel (T >= 8): vision-style, causal prefill, chunked prefill, odd D
        check_attention(kv, 40, 40, 3, 3, 64, false, 2);
        check_attention(kv, 19, 19, 2, 1, 72, true, 2);
        check_attention(kv, 12, 30, 4, 2, 17, true, 3);
    }
}

TEST_CASE("attention_neon column-mean tap matches attention_ref's, leaves the output unchanged, any thread count") {
    for (DType kv : {DType::f32, DType::f16}) {
        check_attention(kv, 40, 40, 3, 3, 64, false, 3, true);   // blocked, one full and one short block of rows
        check_attention(kv, 70, 70, 2, 2, 72, false, 2, true);   // blocked, S past one 64-key block
        check_attention(kv, 3, 50, 2, 1, 64, false, 2, true);    // row kernel (T < 8), GQA
        check_attention(kv, 10, 20, 2, 2, 136, false, 2, true);  // row kernel (head_dim > 128)
        check_attention(kv, 9, 9, 3, 1, 6, false, 2, true);      // blocked, tiny odd D
    }
}

TEST_CASE("rms_norm_neon matches rms_norm_ref") {
    Rng rng{5};
    for (int64_t C : {1, 3, 8, 13, 64, 576, 960, 2049}) {
        for (bool with_gamma : {false, true}) {
            const int64_t T = 3;
            std::vector<float> x(T * C), g(C), ref(T * C), got(T * C);
            for (float& v : x) v = rng.uniform(-4, 4);
            for (float& v : g) v = rng.uniform(-2, 2);
            ThreadPool pool(2);
            rms_norm_ref(x.data(), T, C, with_gamma ? g.data() : nullptr, 1e-5f, ref.data(), &pool);
            rms_norm_neon(x.data(), T, C, with_gamma ? g.data() : nullptr, 1e-5f, got.data(), &pool);
            // f32 sum of squares: γ_C relative, halved by the square root; mean, +eps, sqrt,
            // 1/x and two products: a few u; the reference's own f32 steps: a few u.
            const double rel = gamma_n(static_cast<double>(C)) / 2 + 10 * kU;
            for (int64_t i = 0; i < T * C; ++i) {
                CHECK_MESSAGE(std::fabs(static_cast<double>(got[i]) - ref[i]) <= rel * std::fabs(ref[i]) + 1e-38,
                              "C=" << C << " i=" << i);
            }
            // in place
            std::vector<float> inplace = x;
            rms_norm_neon(inplace.data(), T, C, with_gamma ? g.data() : nullptr, 1e-5f, inplace.data(), &pool);
            CHECK(std::memcmp(inplace.data(), got.data(), got.size() * 4) == 0);
        }
    }
}

#else

TEST_CASE("aarch64 hot ops: not built on this architecture") {
    MESSAGE("ops/*_neon.cpp are aarch64-only; their tests run in the qemu-aarch64 CI runs (targets/test-aarch64.sh)");
}

#endif
