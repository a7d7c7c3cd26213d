// Attention over a q8_0 / q4_0 KV cache (ops/attention_kvq.h, --kv-type q8_0|q4_0).
//
// Oracles:
//  - the reference attention_kvq_ref against attention_ref (ops/attention.h) over the same
//    rows dequantized by quant/dequantize.h (ggml's readers): the same values in the same
//    double-precision arithmetic, so bit for bit;
//  - every usable variant of the family (kernel registry) against the reference, on
//    adversarial shapes: T = 1 (decode) and prefill rows not a multiple of the 16-row items,
//    S not a multiple of the 64-key blocks or of any vector width, head_dim 32/64/96/128/160
//    (multiples of the 32-value blocks but not of 64 or 4·L), GQA groups 1/3/4, causal offsets
//    (chunked prefill), non-causal, K/V rows longer than the heads (row stride), 1 and 3
//    threads and no pool, which must agree bit for bit. Tolerance: the attention bound of
//    tests/test_op_variants.cpp's header, applied to the dequantized values (each K/V value
//    enters a kernel as the same f32 product d·q as in the reference), with the per-block
//    rescaling term for 64-key blocks:
//      |Δ| ≤ (2.2δ + 2^-21 + 2γ_n + 4⌈n/16⌉u + 8u)·Σ_s p_s·|v_s| + 1e-30;
//  - the quantization error against attention over the original f32 rows, bounded from
//    the formats: per value |x − x̂| ≤ e_b with e_b = 0.6·amax_b/127 (q8_0: half a step,
//    plus the f16 rounding of d times |q| ≤ 127) and 1.01·amax_b/8 (q4_0: a whole step
//    at the clamped end, plus d's rounding times |q − 8| ≤ 8); scores move by at most
//    δ = scale·Σ_d |q_d|·e_{k,d}, so each probability by a factor within e^{±2δ}, and
//      |Δout_d| ≤ max_s e_{v,s,d} + (e^{2δ} − 1)·Σ_s p_s·|v_sd| + 1e-5·Σ_s p_s·|v_sd|;
//  - KvCache rows and bytes from the block formats; the plan's attention_kv on a quantized
//    cache (store + kernel choice + causal offsets) equals the family's chosen kernel run
//    on rows quantized by quant/quantize.h's ggml reference quantizer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "ops/attention_kvq.h"
#include "ops/kernel_registry.h"
#include "quant/dequantize.h"
#include "quant/formats.h"
#include "quant/quantize.h"
#include "runtime/graph.h"
#include "runtime/kv_cache.h"
#include "runtime/threadpool.h"
#include "test_util.h"

using namespace glimpse;

namespace {

constexpr double kU = 1.0 / (1 << 24);
double gamma_n(double n) { return n * kU / (1 - n * kU); }

using Case = test::AttentionShape;

std::string describe(const char* name, DType type, const Case& c) {
    return std::string(name) + " " + dtype_name(type) + " T=" + std::to_string(c.T) + " S=" + std::to_string(c.S) +
           " Hq=" + std::to_string(c.Hq) + " Hkv=" + std::to_string(c.Hkv) + " D=" + std::to_string(c.D) +
           (c.causal ? " causal+" + std::to_string(c.causal_offset) : "");
}

// Random q, K, V for a case; K/V rows of kv_ld = Hkv·D + 32 values (one block more than
// the heads), quantized by ggml's reference quantizer, and those rows dequantized again.
struct Inputs {
    int64_t q_ld, kv_ld, out_ld;
    std::vector<float> q, k, v;            // original f32
    std::vector<uint8_t> kq, vq;           // quantized rows
    std::vector<float> kd, vd;             // dequantized rows
};

Inputs make_inputs(const Case& c, DType type, uint64_t seed) {
    test::Rng rng{seed};
    Inputs in;
    in.q_ld = c.Hq * c.D + 3;
    in.kv_ld = c.Hkv * c.D + kQK;
    in.out_ld = c.Hq * c.D + 2;
    in.q.resize(c.T * in.q_ld);
    in.k.resize(c.S * in.kv_ld);
    in.v.resize(c.S * in.kv_ld);
    // Scores spread over about ±12 so softmax is far from uniform; some blocks of small
    // magnitude so scales differ between blocks.
    for (float& x : in.q) x = rng.uniform(-1.5f, 1.5f);
    for (size_t i = 0; i < in.k.size(); ++i) {
        const float m = (i / kQK) % 5 == 0 ? 0.05f : 1.5f;
        in.k[i] = rng.uniform(-m, m);
        in.v[i] = rng.uniform(-1, 1) * ((i / kQK) % 7 == 0 ? 0.1f : 1.0f);
    }
    const int64_t row_bytes = dtype_row_bytes(type, in.kv_ld);
    in.kq.resize(c.S * row_bytes);
    in.vq.resize(c.S * row_bytes);
    in.kd.resize(in.k.size());
    in.vd.resize(in.v.size());
    for (int64_t s = 0; s < c.S; ++s) {
        quantize_row(type, in.k.data() + s * in.kv_ld, in.kq.data() + s * row_bytes, in.kv_ld);
        quantize_row(type, in.v.data() + s * in.kv_ld, in.vq.data() + s * row_bytes, in.kv_ld);
        dequantize_row(type, in.kq.data() + s * row_bytes, in.kd.data() + s * in.kv_ld, in.kv_ld);
        dequantize_row(type, in.vq.data() + s * row_bytes, in.vd.data() + s * in.kv_ld, in.kv_ld);
    }
    return in;
}

AttentionArgs args_of(const Case& c, const Inputs& in, DType type) {
    return test::attention_args(c, in.q.data(), in.q_ld, in.kq.data(), in.vq.data(), in.kv_ld, type, in.out_ld);
}

std::vector<float> run_kernel(AttentionFn fn, AttentionArgs a, const Case& c, int64_t out_ld, ThreadPool* pool) {
    const int threads = pool ? pool->n_threads() : 1;
    std::vector<float> scratch(threads * attention_kvq_scratch_floats(c.S, c.D), std::nanf(""));
    std::vector<float> out(c.T * out_ld, -7.0f);
    a.out = out.data();
    fn(a, scratch.data(), pool);
    return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

const std::vector<Case>& decode_and_prefill_cases() {
    static const std::vector<Case> cases = [] {
        std::vector<Case> v = {
            // decode (T = 1), caches of every length class; GQA 9/3 (SmolVLM-256M), 4 and 1
            {1, 1, 9, 3, 64, true, 0},
            {1, 17, 9, 3, 64, true, 16},
            {1, 65, 8, 2, 32, true, 64},
            {1, 129, 4, 4, 128, true, 128},
            {1, 300, 6, 2, 96, true, 299},
            // a few rows over a long cache
            {3, 200, 9, 3, 64, true, 197},
            {7, 70, 4, 1, 64, true, 63},
            // causal prefill: rows not a multiple of the 16-row items, keys not of 64
            {97, 97, 9, 3, 64, true, 0},
            {33, 33, 3, 3, 32, true, 0},
            {16, 16, 2, 1, 64, true, 0},
            {17, 17, 2, 1, 160, true, 0},
            {150, 150, 6, 2, 96, true, 0},
            // chunked prefill: queries [offset, offset + T) over S = offset + T keys
            {40, 100, 9, 3, 64, true, 60},
            {65, 130, 4, 4, 64, true, 65},
            // non-causal
            {20, 45, 2, 1, 160, false, 0},
            {2, 1, 1, 1, 32, false, 0},
            {31, 77, 3, 3, 64, false, 0},
        };
        if (!test::emulated()) {
            v.push_back({1, 1100, 9, 3, 64, true, 1099});
            v.push_back({1, 4096, 9, 3, 64, true, 4095});  // the 256M layout at 4,096 tokens
            v.push_back({300, 300, 9, 3, 64, true, 0});
        }
        return v;
    }();
    return cases;
}

// Every output of `got` within the f32 bound of the header from `ref`, for the case's
// inputs (in.kd / in.vd: the K/V values the kernels read), and nothing written past Hq·D.
void check_within_f32_bound(const AttentionArgs& a, const Case& c, const Inputs& in, const std::vector<float>& ref,
                            const std::vector<float>& got, const std::string& what) {
    const int64_t group = c.Hq / c.Hkv;
    bool ok = true;
    for (int64_t t = 0; t < c.T && ok; ++t) {
        for (int64_t h = 0; h < c.Hq && ok; ++h) {
            const int64_t hk = h / group;
            const int64_t n = c.causal ? std::min<int64_t>(c.S, c.causal_offset + t + 1) : c.S;
            const float* qr = in.q.data() + t * in.q_ld + h * c.D;
            std::vector<double> p(n), mags(n);
            double max = -1e300, sum = 0, delta = 0;
            for (int64_t s = 0; s < n; ++s) {
                double dot = 0, mag = 0;
                for (int64_t d = 0; d < c.D; ++d) {
                    const double prod = static_cast<double>(qr[d]) * in.kd[s * in.kv_ld + hk * c.D + d];
                    dot += prod;
                    mag += std::fabs(prod);
                }
                p[s] = dot * a.scale;
                mags[s] = mag;
                max = std::max(max, p[s]);
            }
            for (int64_t s = 0; s < n; ++s) {
                delta = std::max(delta, a.scale * gamma_n(static_cast<double>(c.D)) * mags[s] +
                                            2 * kU * std::fabs(p[s]) + kU * std::fabs(p[s] - max));
            }
            for (double& x : p) sum += (x = std::exp(x - max));
            for (double& x : p) x /= sum;
            const double rel = 2.2 * delta + std::ldexp(1.0, -21) + 2 * gamma_n(static_cast<double>(n)) +
                               4.0 * static_cast<double>((n + 15) / 16) * kU + 8 * kU;
            for (int64_t d = 0; d < c.D; ++d) {
                double mag = 0;
                for (int64_t s = 0; s < n; ++s) mag += p[s] * std::fabs(in.vd[s * in.kv_ld + hk * c.D + d]);
                const double r = ref[t * in.out_ld + h * c.D + d], g = got[t * in.out_ld + h * c.D + d];
                if (!(std::fabs(g - r) <= rel * mag + 1e-30)) {
                    FAIL_CHECK(what << ": out[" << t << "][" << h << "][" << d << "] = " << g
                                    << ", reference " << r << ", tolerance " << rel * mag);
                    ok = false;
                    break;
                }
            }
        }
        for (int64_t j = c.Hq * c.D; j < in.out_ld && ok; ++j) {
            if (got[t * in.out_ld + j] != -7.0f) {
                FAIL_CHECK(what << ": wrote past the row's Hq·D outputs, at row " << t);
                ok = false;
            }
        }
    }
}

// A mixed cache (AttentionArgs::mixed_rows) over make_inputs' rows: about `high_share` of the
// slots (drawn at random) are q8_0 rows, the rest q4_0 rows, each part stored in the reverse of
// slot order so a kernel that ignored the map would read the wrong rows. in.kd / in.vd hold each
// slot's values as ggml's reader dequantizes its own format.
struct MixedInputs {
    Inputs in;                         // kq / vq: the q8_0 rows
    std::vector<uint8_t> kq_low, vq_low;
    std::vector<int32_t> rows;         // (S) slot -> row (>= 0 q8_0, ~row q4_0)
    AttentionArgs args(const Case& c) const {
        AttentionArgs a = args_of(c, in, DType::q8_0);
        a.mixed_rows = rows.data();
        a.k_low = kq_low.data();
        a.v_low = vq_low.data();
        return a;
    }
};

MixedInputs make_mixed_inputs(const Case& c, double high_share, uint64_t seed) {
    MixedInputs m;
    m.in = make_inputs(c, DType::q8_0, seed);
    Inputs& in = m.in;
    test::Rng rng{seed ^ 0x5eed};
    std::vector<bool> high(c.S);
    int64_t n_high = 0;
    for (int64_t s = 0; s < c.S; ++s) n_high += (high[s] = rng.uniform(0, 1) < high_share);
    const int64_t n_low = c.S - n_high;
    const int64_t hb = dtype_row_bytes(DType::q8_0, in.kv_ld), lb = dtype_row_bytes(DType::q4_0, in.kv_ld);
    std::vector<uint8_t> kq(n_high * hb), vq(n_high * hb);
    m.kq_low.resize(n_low * lb);
    m.vq_low.resize(n_low * lb);
    m.rows.resize(c.S);
    int64_t next_high = n_high, next_low = n_low;
    for (int64_t s = 0; s < c.S; ++s) {
        const int64_t off = s * in.kv_ld;
        if (high[s]) {
            const int64_t r = --next_high;
            m.rows[s] = static_cast<int32_t>(r);
            std::memcpy(kq.data() + r * hb, in.kq.data() + s * hb, hb);
            std::memcpy(vq.data() + r * hb, in.vq.data() + s * hb, hb);
        } else {
            const int64_t r = --next_low;
            m.rows[s] = ~static_cast<int32_t>(r);
            quantize_row(DType::q4_0, in.k.data() + off, m.kq_low.data() + r * lb, in.kv_ld);
            quantize_row(DType::q4_0, in.v.data() + off, m.vq_low.data() + r * lb, in.kv_ld);
            dequantize_row(DType::q4_0, m.kq_low.data() + r * lb, in.kd.data() + off, in.kv_ld);
            dequantize_row(DType::q4_0, m.vq_low.data() + r * lb, in.vd.data() + off, in.kv_ld);
        }
    }
    in.kq = std::move(kq);
    in.vq = std::move(vq);
    return m;
}

// An attention_kv plan over `kv` (layer 0), 2 threads: q:(max_rows, Hq·D), k, v:(max_rows, Hkv·D),
// and random rows for `total` positions (q, k in ±2, v in ±1), which run() passes copy in.
struct AttentionKvPlan {
    int64_t q_dim, kv_dim;
    ValueId q, k, v, out;
    std::unique_ptr<Plan> plan;
    std::vector<float> qs, ks, vs;
    // Runs positions [pos0, pos0+n) through the plan; returns its output (n, Hq·D).
    const float* run(int64_t pos0, int64_t n, ThreadPool* pool) {
        std::copy(qs.begin() + pos0 * q_dim, qs.begin() + (pos0 + n) * q_dim, plan->f32(q));
        std::copy(ks.begin() + pos0 * kv_dim, ks.begin() + (pos0 + n) * kv_dim, plan->f32(k));
        std::copy(vs.begin() + pos0 * kv_dim, vs.begin() + (pos0 + n) * kv_dim, plan->f32(v));
        RunArgs args;
        args.n_rows = n;
        args.pos0 = pos0;
        REQUIRE(plan->run(args, pool).is_ok());
        return plan->f32(out);
    }
};

AttentionKvPlan make_attention_kv_plan(KvCache* kv, int64_t max_rows, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                                       int64_t total, uint64_t seed) {
    AttentionKvPlan p;
    p.q_dim = Hq * D;
    p.kv_dim = Hkv * D;
    Graph g;
    p.q = g.input("q", DType::f32, Shape::of({max_rows, p.q_dim}), true);
    p.k = g.input("k", DType::f32, Shape::of({max_rows, p.kv_dim}), true);
    p.v = g.input("v", DType::f32, Shape::of({max_rows, p.kv_dim}), true);
    p.out = g.attention_kv(p.q, p.k, p.v, Hq, Hkv, D, scale, 0);
    g.mark_output(p.out);
    PlanOptions opts;
    opts.kv_cache = kv;
    opts.n_threads = 2;
    auto plan = Plan::compile(std::move(g), opts);
    REQUIRE_MESSAGE(plan.is_ok(), plan.status().message());
    p.plan = std::move(*plan);
    test::Rng rng{seed};
    p.qs.resize(total * p.q_dim);
    p.ks.resize(total * p.kv_dim);
    p.vs.resize(total * p.kv_dim);
    for (float& x : p.qs) x = rng.uniform(-2, 2);
    for (float& x : p.ks) x = rng.uniform(-2, 2);
    for (float& x : p.vs) x = rng.uniform(-1, 1);
    return p;
}

}  // namespace

TEST_CASE("attention_kvq: the registry lists the reference first; the plan picks the highest usable level") {
    const std::vector<const Kernel*> list = kernels_of(OpFamily::attention_kvq);
    REQUIRE(!list.empty());
    CHECK(std::string(list[0]->name) == "attention_kvq__ref");
    CHECK(list[0]->priority == KernelPriority::reference);
    const Kernel* chosen = select_kernel(OpFamily::attention_kvq);
    for (const Kernel* k : list) {
        if (isa_usable(k->isa)) CHECK(k->priority <= chosen->priority);
    }
    CHECK(attention_kvq_type(DType::q8_0));
    CHECK(attention_kvq_type(DType::q4_0));
    CHECK(!attention_kvq_type(DType::f16));
    CHECK(!attention_kvq_type(DType::q4_1));
}

TEST_CASE("attention_kvq_ref equals attention_ref over the rows ggml's reader dequantizes, bit for bit") {
    for (DType type : {DType::q8_0, DType::q4_0}) {
        for (const Case& c : decode_and_prefill_cases()) {
            if (c.S > 1100) continue;
            const Inputs in = make_inputs(c, type, static_cast<uint64_t>(c.T * 31 + c.S * 7 + c.D));
            AttentionArgs a = args_of(c, in, type);
            const std::vector<float> got = run_kernel(attention_kvq_ref, a, c, in.out_ld, nullptr);
            AttentionArgs f = a;
            f.k = in.kd.data();
            f.v = in.vd.data();
            f.kv_type = DType::f32;
            std::vector<float> want(c.T * in.out_ld, -7.0f);
            std::vector<float> scratch(attention_scratch_floats(c.S));
            f.out = want.data();
            attention_ref(f, scratch.data(), nullptr);
            CHECK_MESSAGE(same_bits(got, want), describe("attention_kvq__ref", type, c));
        }
    }
}

TEST_CASE("attention_kvq variants equal the reference within the f32 bound, for any thread count") {
    for (const Kernel* k : kernels_of(OpFamily::attention_kvq)) {
        if (!isa_usable(k->isa)) {
            MESSAGE("skipping " << std::string(k->name) << ": needs " << std::string(isa_name(k->isa)));
            continue;
        }
        for (DType type : {DType::q8_0, DType::q4_0}) {
            for (const Case& c : decode_and_prefill_cases()) {
                const std::string what = describe(k->name, type, c);
                const Inputs in = make_inputs(c, type, static_cast<uint64_t>(c.T * 131 + c.S * 7 + c.D + c.Hq));
                const AttentionArgs a = args_of(c, in, type);
                const std::vector<float> ref = run_kernel(attention_kvq_ref, a, c, in.out_ld, nullptr);
                const std::vector<float> none = run_kernel(k->fn.attention_kvq, a, c, in.out_ld, nullptr);
                ThreadPool p1(1), p3(3);
                const std::vector<float> one = run_kernel(k->fn.attention_kvq, a, c, in.out_ld, &p1);
                const std::vector<float> got = run_kernel(k->fn.attention_kvq, a, c, in.out_ld, &p3);
                CHECK_MESSAGE(same_bits(none, one), what << ": no pool differs from 1 thread");
                CHECK_MESSAGE(same_bits(one, got), what << ": 3 threads differ from 1 thread");

                check_within_f32_bound(a, c, in, ref, got, what);
            }
        }
    }
}

TEST_CASE("attention over q8_0 / q4_0 K and V stays within the bound the formats' rounding allows") {
    const Case cases[] = {{1, 300, 4, 2, 64, true, 299}, {40, 40, 4, 2, 64, true, 0}, {5, 70, 2, 1, 96, false, 0}};
    for (DType type : {DType::q8_0, DType::q4_0}) {
        double worst_ratio = 0;
        for (const Case& c : cases) {
            const Inputs in = make_inputs(c, type, 99 + c.T);
            const AttentionArgs a = args_of(c, in, type);
            const std::vector<float> got = run_kernel(select_kernel(OpFamily::attention_kvq)->fn.attention_kvq, a, c,
                                                      in.out_ld, nullptr);
            // per-value error bound of each block, from its largest magnitude
            auto bound = [&](const std::vector<float>& x) {
                std::vector<double> e(x.size());
                for (size_t b = 0; b < x.size(); b += kQK) {
                    double amax = 0;
                    for (int i = 0; i < kQK; ++i) amax = std::max(amax, static_cast<double>(std::fabs(x[b + i])));
                    const double eb = type == DType::q8_0 ? 0.6 * amax / 127 : 1.01 * amax / 8;
                    for (int i = 0; i < kQK; ++i) e[b + i] = eb + 1e-7 * amax;
                }
                return e;
            };
            const std::vector<double> ek = bound(in.k), ev = bound(in.v);
            const int64_t group = c.Hq / c.Hkv;
            for (int64_t t = 0; t < c.T; ++t) {
                for (int64_t h = 0; h < c.Hq; ++h) {
                    const int64_t hk = h / group;
                    const int64_t n = c.causal ? std::min<int64_t>(c.S, c.causal_offset + t + 1) : c.S;
                    const float* qr = in.q.data() + t * in.q_ld + h * c.D;
                    std::vector<double> p(n);
                    double max = -1e300, sum = 0, delta = 0;
                    for (int64_t s = 0; s < n; ++s) {
                        double dot = 0, dd = 0;
                        for (int64_t d = 0; d < c.D; ++d) {
                            dot += static_cast<double>(qr[d]) * in.k[s * in.kv_ld + hk * c.D + d];
                            dd += std::fabs(qr[d]) * ek[s * in.kv_ld + hk * c.D + d];
                        }
                        p[s] = dot * a.scale;
                        delta = std::max(delta, dd * a.scale);
                        max = std::max(max, p[s]);
                    }
                    for (double& x : p) sum += (x = std::exp(x - max));
                    for (double& x : p) x /= sum;
                    for (int64_t d = 0; d < c.D; ++d) {
                        double want = 0, mag = 0, ev_max = 0;
                        for (int64_t s = 0; s < n; ++s) {
                            const int64_t i = s * in.kv_ld + hk * c.D + d;
                            want += p[s] * in.v[i];
                            mag += p[s] * std::fabs(in.v[i]);
                            ev_max = std::max(ev_max, ev[i]);
                        }
                        const double tol = ev_max + (std::exp(2 * delta) - 1) * mag + 1e-5 * mag;
                        const double err = std::fabs(got[t * in.out_ld + h * c.D + d] - want);
                        worst_ratio = std::max(worst_ratio, err / tol);
                        REQUIRE_MESSAGE(err <= tol, describe("chosen kernel", type, c) << ": out[" << t << "][" << h
                                                                                         << "][" << d << "] off by "
                                                                                         << err << " > " << tol);
                    }
                }
            }
        }
        MESSAGE(std::string(dtype_name(type)) << ": worst error / bound = " << worst_ratio);
    }
}

TEST_CASE("KvCache q8_0 / q4_0: bytes from the block formats, rows as ggml quantizes them, bad rows refused") {
    for (DType type : {DType::q8_0, DType::q4_0}) {
        const int64_t block_bytes = type == DType::q8_0 ? 34 : 18;
        CHECK(kv_cache_row_bytes(type, 192) == 6 * block_bytes);
        auto kv = KvCache::create({100, 7, 0}, 192, type);
        REQUIRE(kv.is_ok());
        auto align64 = [](int64_t n) { return (n + 63) / 64 * 64; };
        CHECK((*kv)->bytes() ==
              2 * (align64(100 * 6 * block_bytes) + align64(7 * 6 * block_bytes) + align64(0)));
        test::Rng rng{5};
        std::vector<float> x(3 * 200);
        for (float& f : x) f = rng.uniform(-2, 2);
        (*kv)->store(1, true, 4, x.data(), 3, 200);  // rows of 192 values, stride 200
        std::vector<uint8_t> want(6 * block_bytes);
        for (int t = 0; t < 3; ++t) {
            quantize_row(type, x.data() + t * 200, want.data(), 192);
            const uint8_t* got = static_cast<const uint8_t*>((*kv)->v(1)) + (4 + t) * 6 * block_bytes;
            CHECK(std::memcmp(got, want.data(), want.size()) == 0);
        }
        auto bad = KvCache::create({10}, 48, type);
        REQUIRE(!bad.is_ok());
        CHECK(bad.status().message().find("blocks of 32") != std::string::npos);
    }
    // f16 keeps its layout: 2 bytes a value
    auto f16 = KvCache::create({10}, 48, DType::f16);
    REQUIRE(f16.is_ok());
    CHECK((*f16)->bytes() == 2 * 960);
}

TEST_CASE("attention_kv on a quantized cache: prefill and decode passes equal the chosen kernel on rows "
          "quantized by ggml's quantizer; head_dim not a multiple of 32 is refused at compile") {
    const int64_t Hq = 4, Hkv = 2, D = 64, kv_dim = Hkv * D, q_dim = Hq * D, max_rows = 40, context = 48;
    for (DType type : {DType::q8_0, DType::q4_0}) {
        const float scale = 0.125f;
        auto kv = KvCache::create({context}, kv_dim, type);
        REQUIRE(kv.is_ok());
        const int64_t total = 37 + 3;
        AttentionKvPlan p = make_attention_kv_plan(kv->get(), max_rows, Hq, Hkv, D, scale, total, 17);
        const std::vector<float>&qs = p.qs, &ks = p.ks, &vs = p.vs;
        ThreadPool pool(2);
        const int64_t row_bytes = dtype_row_bytes(type, kv_dim);
        std::vector<uint8_t> kq(total * row_bytes), vq(total * row_bytes);
        for (int64_t s = 0; s < total; ++s) {
            quantize_row(type, ks.data() + s * kv_dim, kq.data() + s * row_bytes, kv_dim);
            quantize_row(type, vs.data() + s * kv_dim, vq.data() + s * row_bytes, kv_dim);
        }
        int64_t pos0 = 0;
        for (int64_t n : {int64_t{37}, int64_t{1}, int64_t{1}, int64_t{1}}) {
            const float* got = p.run(pos0, n, &pool);

            const Case c{n, pos0 + n, Hq, Hkv, D, /*causal=*/true, /*causal_offset=*/pos0};
            AttentionArgs a = test::attention_args(c, qs.data() + pos0 * q_dim, q_dim, kq.data(), vq.data(), kv_dim, type, q_dim);
            a.scale = scale;  // the graph's, as given to attention_kv
            std::vector<float> want(n * q_dim), scratch(2 * attention_kvq_scratch_floats(context, D));
            a.out = want.data();
            select_kernel(OpFamily::attention_kvq)->fn.attention_kvq(a, scratch.data(), &pool);
            CHECK_MESSAGE(std::memcmp(got, want.data(), want.size() * 4) == 0,
                          dtype_name(type) << " pass at " << pos0 << " of " << n << " rows");
            pos0 += n;
        }

        // head_dim 48: rows of 96 values are whole blocks, heads are not
        Graph bad;
        const ValueId bq = bad.input("q", DType::f32, Shape::of({4, 96}), true);
        const ValueId bk = bad.input("k", DType::f32, Shape::of({4, 96}), true);
        bad.mark_output(bad.attention_kv(bq, bk, bk, 2, 2, 48, 0.1f, 0));
        auto bad_kv = KvCache::create({8}, 96, type);
        REQUIRE(bad_kv.is_ok());
        PlanOptions bad_opts;
        bad_opts.kv_cache = bad_kv->get();
        auto refused = Plan::compile(std::move(bad), bad_opts);
        REQUIRE(!refused.is_ok());
        CHECK(refused.status().message().find("multiple of 32") != std::string::npos);
    }
}

TEST_CASE("mixed KV: the reference equals attention_ref over each slot's own format dequantized, bit for bit") {
    for (double share : {0.0, 0.3, 1.0}) {
        for (const Case& c : decode_and_prefill_cases()) {
            if (c.S > 1100) continue;
            const MixedInputs m = make_mixed_inputs(c, share, static_cast<uint64_t>(c.T * 37 + c.S * 5 + c.D));
            const std::vector<float> got = run_kernel(attention_kvq_ref, m.args(c), c, m.in.out_ld, nullptr);
            AttentionArgs f = m.args(c);
            f.mixed_rows = nullptr;
            f.k = m.in.kd.data();
            f.v = m.in.vd.data();
            f.kv_type = DType::f32;
            std::vector<float> want(c.T * m.in.out_ld, -7.0f);
            std::vector<float> scratch(attention_scratch_floats(c.S));
            f.out = want.data();
            attention_ref(f, scratch.data(), nullptr);
            CHECK_MESSAGE(same_bits(got, want), describe("attention_kvq__ref mixed", DType::q8_0, c) << " share " << share);
        }
    }
}

TEST_CASE("mixed KV: every variant equals the reference within the f32 bound, for any thread count") {
    for (const Kernel* k : kernels_of(OpFamily::attention_kvq)) {
        if (!isa_usable(k->isa)) continue;  // the test above names what it skips
        for (const Case& c : decode_and_prefill_cases()) {
            const std::string what = describe(k->name, DType::q8_0, c) + " mixed";
            const MixedInputs m = make_mixed_inputs(c, 0.3, static_cast<uint64_t>(c.T * 17 + c.S * 3 + c.D + c.Hq));
            const AttentionArgs a = m.args(c);
            const std::vector<float> ref = run_kernel(attention_kvq_ref, a, c, m.in.out_ld, nullptr);
            const std::vector<float> none = run_kernel(k->fn.attention_kvq, a, c, m.in.out_ld, nullptr);
            ThreadPool p3(3);
            const std::vector<float> got = run_kernel(k->fn.attention_kvq, a, c, m.in.out_ld, &p3);
            CHECK_MESSAGE(same_bits(none, got), what << ": 3 threads differ from no pool");
            check_within_f32_bound(a, c, m.in, ref, got, what);
        }
    }
}

TEST_CASE("KvCache mixed: rows of each precision planned from the share, the most important prefill rows in "
          "q8_0, decode rows in q8_0, rows as ggml quantizes them") {
    auto align64 = [](int64_t n) { return (n + 63) / 64 * 64; };
    // 2 layers: 40 slots planned for a 30-row prompt, and 12 slots all prompt; share 0.25.
    auto kv = KvCache::create_mixed({40, 12}, {30, 12}, 64, 0.25);
    REQUIRE(kv.is_ok());
    KvCache& c = **kv;
    CHECK(c.mixed());
    CHECK(c.type() == DType::q8_0);
    CHECK(c.high_capacity(0) == 8 + 10);  // ⌈0.25·30⌉ + the 10 answer slots
    CHECK(c.low_capacity(0) == 22);
    CHECK(c.high_capacity(1) == 3);
    CHECK(c.low_capacity(1) == 9);
    const int64_t hb = 2 * 34, lb = 2 * 18;  // a 64-value row: 2 blocks
    CHECK(c.bytes() == 2 * align64(18 * hb) + 2 * align64(22 * lb) + align64(40 * 4) + 2 * align64(3 * hb) +
                           2 * align64(9 * lb) + align64(12 * 4) + 40 * 4);

    // Prefill of 30 rows: the 8 of largest importance (one NaN, one tie) keep q8_0.
    test::Rng rng{11};
    std::vector<float> importance(30), x(33 * 70);
    for (float& f : importance) f = rng.uniform(0, 1);
    for (float& f : x) f = rng.uniform(-3, 3);
    importance[4] = std::nanf("");
    importance[9] = importance[21] = 2.0f;  // a tie in the top: both in
    std::vector<int> by_rank(30);
    for (int i = 0; i < 30; ++i) by_rank[i] = i;
    std::stable_sort(by_rank.begin(), by_rank.end(), [&](int a, int b) {
        const float ka = std::isnan(importance[a]) ? -1e30f : importance[a];
        const float kb = std::isnan(importance[b]) ? -1e30f : importance[b];
        return ka > kb;
    });
    std::vector<bool> want_high(30, false);
    for (int i = 0; i < 8; ++i) want_high[by_rank[i]] = true;
    c.assign_mixed(0, 0, 30, importance.data());
    c.store(0, false, 0, x.data(), 30, 70);
    c.store(0, true, 0, x.data() + 5, 30, 70);
    int32_t next_high = 0, next_low = 0;
    std::vector<uint8_t> want(hb);
    for (int s = 0; s < 30; ++s) {
        const int32_t r = c.slot_rows(0)[s];
        CHECK_MESSAGE((r >= 0) == want_high[s], "slot " << s);
        // rows handed out in slot order within each precision
        CHECK(r == (want_high[s] ? next_high++ : ~next_low++));
        const DType t = r >= 0 ? DType::q8_0 : DType::q4_0;
        const int64_t rb = r >= 0 ? hb : lb;
        const uint8_t* k = static_cast<const uint8_t*>(r >= 0 ? c.k(0) : c.k_low(0)) + (r >= 0 ? r : ~r) * rb;
        const uint8_t* v = static_cast<const uint8_t*>(r >= 0 ? c.v(0) : c.v_low(0)) + (r >= 0 ? r : ~r) * rb;
        quantize_row(t, x.data() + s * 70, want.data(), 64);
        CHECK(std::memcmp(k, want.data(), rb) == 0);
        quantize_row(t, x.data() + s * 70 + 5, want.data(), 64);
        CHECK(std::memcmp(v, want.data(), rb) == 0);
    }
    // Decode rows: q8_0, the next rows.
    for (int s = 30; s < 33; ++s) {
        c.assign_mixed(0, s, 1, nullptr);
        CHECK(c.slot_rows(0)[s] == next_high++);
    }
    // A new prompt from slot 0 starts over; one of 12 rows with share 0.25 keeps 3 in q8_0.
    c.assign_mixed(0, 0, 12, importance.data());
    int high = 0;
    for (int s = 0; s < 12; ++s) high += c.slot_rows(0)[s] >= 0;
    CHECK(high == 3);
    // Layer 1 is all prompt: a decode row after its 12 slots... has no slot; a 12-row prefill
    // fills both parts exactly, and a re-prefill of 2 rows from slot 10 reuses their rows.
    c.assign_mixed(1, 0, 12, importance.data());
    c.assign_mixed(1, 10, 2, importance.data() + 10);
    int64_t h1 = 0;
    for (int s = 0; s < 12; ++s) h1 += c.slot_rows(1)[s] >= 0;
    CHECK(h1 <= 3);
    CHECK(12 - h1 <= 9);

    auto bad = KvCache::create_mixed({10}, {11}, 64, 0.5);
    REQUIRE(!bad.is_ok());
    CHECK(bad.status().message().find("prompt rows") != std::string::npos);
    auto bad_share = KvCache::create_mixed({10}, {5}, 64, 1.5);
    REQUIRE(!bad_share.is_ok());
    CHECK(bad_share.status().message().find("share") != std::string::npos);
}

TEST_CASE("attention_kv on a mixed cache: the prompt's last row picks the q8_0 rows; prefill and decode equal the "
          "chosen kernel over rows quantized by ggml's quantizer in that precision") {
    const int64_t Hq = 4, Hkv = 2, D = 64, kv_dim = Hkv * D, q_dim = Hq * D, max_rows = 40, context = 48;
    const int64_t prompt = 37;
    const double share = 0.25;
    const float scale = 0.125f;
    auto kv = KvCache::create_mixed({context}, {max_rows}, kv_dim, share);
    REQUIRE(kv.is_ok());
    const int64_t total = prompt + 3;
    AttentionKvPlan plan = make_attention_kv_plan(kv->get(), max_rows, Hq, Hkv, D, scale, total, 23);
    const std::vector<float>&qs = plan.qs, &ks = plan.ks, &vs = plan.vs;
    ThreadPool pool(2);
    // Oracle of the choice: the last prompt row's softmax over the prompt's keys, per head, in
    // double, summed over the heads; the ⌈0.25·37⌉ = 10 largest keep q8_0.
    std::vector<double> importance(prompt, 0.0);
    for (int64_t h = 0; h < Hq; ++h) {
        const int64_t hk = h / (Hq / Hkv);
        std::vector<double> p(prompt);
        double max = -1e300, sum = 0;
        for (int64_t s = 0; s < prompt; ++s) {
            double dot = 0;
            for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(qs[(prompt - 1) * q_dim + h * D + d]) * ks[s * kv_dim + hk * D + d];
            max = std::max(max, p[s] = dot * scale);
        }
        for (double& x : p) sum += (x = std::exp(x - max));
        for (int64_t s = 0; s < prompt; ++s) importance[s] += p[s] / sum;
    }
    std::vector<int> by_rank(prompt);
    for (int i = 0; i < prompt; ++i) by_rank[i] = i;
    std::stable_sort(by_rank.begin(), by_rank.end(), [&](int a, int b) { return importance[a] > importance[b]; });
    // The plan ranks with the registered attention_row kernel (~1 ulp of f32 per logit from this
    // oracle): the data must have no near tie at the cut, or a swap there would be no error.
    REQUIRE(importance[by_rank[9]] - importance[by_rank[10]] > 1e-4 * importance[by_rank[9]]);
    std::vector<int32_t> rows(total);
    std::vector<bool> high(total, true);
    for (int i = 10; i < prompt; ++i) high[by_rank[i]] = false;
    const int64_t hb = dtype_row_bytes(DType::q8_0, kv_dim), lb = dtype_row_bytes(DType::q4_0, kv_dim);
    std::vector<uint8_t> kh(total * hb), vh(total * hb), kl(total * lb), vl(total * lb);
    int32_t nh = 0, nl = 0;
    for (int64_t s = 0; s < total; ++s) {
        if (high[s]) {
            rows[s] = nh;
            quantize_row(DType::q8_0, ks.data() + s * kv_dim, kh.data() + nh * hb, kv_dim);
            quantize_row(DType::q8_0, vs.data() + s * kv_dim, vh.data() + nh * hb, kv_dim);
            ++nh;
        } else {
            rows[s] = ~nl;
            quantize_row(DType::q4_0, ks.data() + s * kv_dim, kl.data() + nl * lb, kv_dim);
            quantize_row(DType::q4_0, vs.data() + s * kv_dim, vl.data() + nl * lb, kv_dim);
            ++nl;
        }
    }
    CHECK(nh == 10 + 3);
    int64_t pos0 = 0;
    for (int64_t n : {prompt, int64_t{1}, int64_t{1}, int64_t{1}}) {
        const float* got = plan.run(pos0, n, &pool);
        for (int64_t s = 0; s < pos0 + n; ++s) CHECK_MESSAGE((*kv)->slot_rows(0)[s] == rows[s], "slot " << s);

        const Case c{n, pos0 + n, Hq, Hkv, D, /*causal=*/true, /*causal_offset=*/pos0};
        AttentionArgs a = test::attention_args(c, qs.data() + pos0 * q_dim, q_dim, kh.data(), vh.data(), kv_dim,
                                               DType::q8_0, q_dim);
        a.scale = scale;
        a.mixed_rows = rows.data();
        a.k_low = kl.data();
        a.v_low = vl.data();
        std::vector<float> want(n * q_dim), scratch(2 * attention_kvq_scratch_floats(context, D));
        a.out = want.data();
        select_kernel(OpFamily::attention_kvq)->fn.attention_kvq(a, scratch.data(), &pool);
        CHECK_MESSAGE(std::memcmp(got, want.data(), want.size() * 4) == 0,
                      "mixed pass at " << pos0 << " of " << n << " rows");
        pos0 += n;
    }
}
