// Every usable variant of every non-matmul op family (ops/kernel_registry.h: the
// scalar references, AVX2/AVX-512 on x86, NEON on aarch64) against the family's
// reference, on adversarial shapes: lengths below, at and above every vector width
// (1, 7, 15, 16, 17, 63, 64, 65, 576, 768, 3072), one row and many, attention with
// T = 1 (decode), causal offsets, S not a multiple of any block, GQA groups 1/3/4,
// head_dim beyond the blocked kernels' bound, f16 and f32 KV; in place where the
// contract allows it (y aliasing x); 1 and 3 threads and no pool, whose outputs
// must be identical bit for bit.
//
// Tolerances (u = 2^-24, γ_n = n·u/(1 − n·u); "ref" is the family's reference):
//   add, mul          exact: one f32 operation per element, as the reference.
//   rope              exact: variants keep the reference's f32 θ recurrence and its
//                     std::cos/std::sin, and the same two products and one sum.
//   unary, f16 forms  exact (gelu_tanh_f16, gelu_quick_f16 reproduce ggml's table).
//   unary, exact forms, with y the reference value:
//     silu, gelu_quick: both compute σ(k·x) with the same rounded argument; the exp
//                     differs by ≤ 2^-22 relative (variant) + 1 ulp (libm), 1 + e, the
//                     reciprocal/quotient and the product add ≤ 3u each side:
//                     |Δ| ≤ (2^-21 + 8u)·|y| + 1e-37
//     gelu_tanh:      the reference computes 0.5·x·(1 + tanh(u)) — tanhf is within
//                     2 ulp ≤ 2^-23 absolute, which 1 + t turns into an absolute error
//                     0.5·|x|·2^-23 (dominant for x ≪ 0); variants may use the
//                     equivalent x/(1 + e^{−2u}): the argument's 4 roundings move y by
//                     ≤ 4u·|2u|·|y| on each side, exp and quotient by 2^-22 + 3u:
//                     |Δ| ≤ 0.5·|x|·2^-22 + (2^-21 + 16u + 8u·|2u|)·|y| + 1e-37
//   swiglu            silu as above, times up (one more rounding): (2^-21 + 10u)·|y| + 1e-37
//   rms_norm          sum of squares in f32 lanes (NEON) or double: relative γ_C, halved
//                     by the square root; mean, +eps, sqrt, 1/x and the products: a few
//                     u each side: |Δ| ≤ (γ_C/2 + 10u)·|y| + 1e-38
//   layer_norm        as rms_norm for the scale, plus the mean: f32 or double sums move
//                     it by Δμ ≤ γ_C·Σ|x|/C + 2u·|μ|, which moves y by |g|·scale·Δμ;
//                     beta adds one rounding: |Δ| ≤ (γ_C/2 + 10u)·|y − b| + |g|·scale·Δμ
//                     + 2u·|b| + 1e-38
//   attention         from double-precision scores x_s = scale·q·k_s: each variant's f32
//                     dot product is off by ≤ scale·γ_D·Σ_d|q_d·k_sd|, its rounding and
//                     the reference's by 2u·|x_s|, the f32 subtraction of the max by
//                     u·|x_s − max|: δ = max_s of their sum. Scores off by δ move each
//                     probability by a factor within e^{±2δ}; exp (2^-22 each side),
//                     the f32 sum of weights γ_n, blocked kernels' per-block rescaling
//                     of numerator and denominator (≤ 2u per block of ≥ 16 keys) and
//                     the final products add relatively:
//                     |Δ| ≤ (2.2δ + 2^-21 + 2γ_n + 4⌈n/16⌉u + 8u)·Σ_s p_s·|v_s| + 1e-30
//                     (n = keys the row sees). The column-mean tap: each probability
//                     within the same relative bound, summed over T rows in f32:
//                     |Δ| ≤ (max_rows rel + γ_T + 2u)·col[s] + 1e-30.
// Variants the active CPU cannot run are skipped with a message; running under
// GLIMPSE_MAX_ISA=... or on another CPU (qemu-aarch64 for NEON) exercises the rest.
// GLIMPSE_TEST_SCALE=emulated skips the largest shapes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "ops/gather.h"
#include "ops/norm.h"
#include "ops/kernel_registry.h"
#include "ops/rope.h"
#include "ops/topk.h"
#include "ops/unary.h"
#include "runtime/fp16.h"
#include "runtime/threadpool.h"
#include "test_util.h"

using namespace glimpse;

namespace {

constexpr double kU = 1.0 / (1 << 24);
double gamma_n(double n) { return n * kU / (1 - n * kU); }


using test::Rng;

const int64_t kLengths[] = {1, 7, 15, 16, 17, 63, 64, 65, 576, 768, 3072};

// A family's entries of the kernel registry with their typed function: the
// registry's union member named by the family.
template <class Fn>
struct OpVariant {
    const char* name;
    Isa isa;
    Fn fn;
};
template <class Fn>
std::vector<OpVariant<Fn>> typed_variants(OpFamily op, Fn KernelFn::*member) {
    std::vector<OpVariant<Fn>> out;
    for (const Kernel* k : kernels_of(op)) out.push_back({k->name, k->isa, k->fn.*member});
    return out;
}
#define GLIMPSE_TEST_FAMILY(family, Fn)                                                                 \
    const std::vector<OpVariant<Fn>>& family##_variants() {                                           \
        static const std::vector<OpVariant<Fn>> list = typed_variants(OpFamily::family, &KernelFn::family); \
        return list;                                                                                  \
    }
GLIMPSE_TEST_FAMILY(layer_norm, LayerNormFn)
GLIMPSE_TEST_FAMILY(rms_norm, RmsNormFn)
GLIMPSE_TEST_FAMILY(unary, UnaryFn)
GLIMPSE_TEST_FAMILY(swiglu, SwigluFn)
GLIMPSE_TEST_FAMILY(add, BinaryFn)
GLIMPSE_TEST_FAMILY(mul, BinaryFn)
GLIMPSE_TEST_FAMILY(rope, RopeFn)
GLIMPSE_TEST_FAMILY(attention, AttentionFn)
GLIMPSE_TEST_FAMILY(topk, TopkFn)
GLIMPSE_TEST_FAMILY(gather_rows, GatherRowsFn)
#undef GLIMPSE_TEST_FAMILY

// The usable variants of a family, with a message for each skipped one.
template <class Fn>
std::vector<const OpVariant<Fn>*> usable(const std::vector<OpVariant<Fn>>& list) {
    std::vector<const OpVariant<Fn>*> out;
    for (const OpVariant<Fn>& v : list) {
        if (isa_usable(v.isa)) out.push_back(&v);
        else MESSAGE("skipping " << std::string(v.name) << ": needs " << std::string(isa_name(v.isa)) << ", active " << std::string(isa_name(active_isa())));
    }
    return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs `call(pool)` with no pool, 1 and 3 threads; the three outputs (returned by
// `call`) must be identical. Returns the 3-thread one.
template <class Call>
std::vector<float> run_thread_counts(const char* name, Call&& call) {
    std::vector<float> none = call(nullptr);
    ThreadPool p1(1), p3(3);
    std::vector<float> one = call(&p1);
    std::vector<float> three = call(&p3);
    CHECK_MESSAGE(same_bits(none, one), name << ": output without a pool differs from 1 thread");
    CHECK_MESSAGE(same_bits(one, three), name << ": output with 3 threads differs from 1 thread");
    return three;
}

}  // namespace

// ---------------------------------------------------------------------------

TEST_CASE("op variants: lists start with the reference; the plan picks the highest usable level") {
    CHECK(std::string(layer_norm_variants()[0].name) == "layer_norm__ref");
    CHECK(std::string(rms_norm_variants()[0].name) == "rms_norm__ref");
    CHECK(std::string(unary_variants()[0].name) == "unary__ref");
    CHECK(std::string(swiglu_variants()[0].name) == "swiglu__ref");
    CHECK(std::string(add_variants()[0].name) == "add__ref");
    CHECK(std::string(mul_variants()[0].name) == "mul__ref");
    CHECK(std::string(rope_variants()[0].name) == "rope__ref");
    CHECK(std::string(attention_variants()[0].name) == "attention__ref");
    struct {
        const Kernel *layer_norm, *rms_norm, *unary, *swiglu, *add, *mul, *rope, *attention;
    } k = {select_kernel(OpFamily::layer_norm), select_kernel(OpFamily::rms_norm), select_kernel(OpFamily::unary),
           select_kernel(OpFamily::swiglu),     select_kernel(OpFamily::add),      select_kernel(OpFamily::mul),
           select_kernel(OpFamily::rope),       select_kernel(OpFamily::attention)};
    for (const auto* v : usable(attention_variants())) CHECK(static_cast<int>(v->isa) <= static_cast<int>(k.attention->isa));
    for (const auto* v : usable(unary_variants())) CHECK(static_cast<int>(v->isa) <= static_cast<int>(k.unary->isa));
    MESSAGE("active " << std::string(isa_name(active_isa())) << ": " << std::string(k.layer_norm->name) << ", " << std::string(k.rms_norm->name) << ", "
                      << std::string(k.unary->name) << ", " << std::string(k.swiglu->name) << ", " << std::string(k.add->name) << ", " << std::string(k.mul->name) << ", "
                      << std::string(k.rope->name) << ", " << std::string(k.attention->name));
}

TEST_CASE("kernel registry: every family starts with its reference; names are unique and say their op") {
    std::vector<std::string> names;
    for (OpFamily op : {OpFamily::matmul, OpFamily::layer_norm, OpFamily::rms_norm, OpFamily::unary, OpFamily::swiglu,
                        OpFamily::add, OpFamily::mul, OpFamily::rope, OpFamily::attention, OpFamily::weights_row,
                        OpFamily::topk, OpFamily::gather_rows, OpFamily::cosine_similarity, OpFamily::tap_scores,
                        OpFamily::merge_rows, OpFamily::query_key_score,
                        OpFamily::attention_kvq,
                        OpFamily::attention_row}) {
        const std::vector<const Kernel*> list = kernels_of(op);
        REQUIRE_MESSAGE(!list.empty(), op_family_name(op));
        CHECK_MESSAGE(list[0]->isa == Isa::scalar, op_family_name(op));
        CHECK_MESSAGE(list[0]->priority == KernelPriority::reference, op_family_name(op));
        for (const Kernel* k : list) {
            INFO(std::string(k->name));
            if (op != OpFamily::matmul) CHECK(std::string(k->name).rfind(std::string(op_family_name(op)) + "__", 0) == 0);
            CHECK(std::find(names.begin(), names.end(), std::string(k->name)) == names.end());
            CHECK(find_kernel(k->name) == k);
            names.emplace_back(k->name);
        }
        // The dispatch choice is the usable entry of highest priority.
        if (op == OpFamily::matmul) continue;
        const Kernel* chosen = select_kernel(op);
        REQUIRE(chosen != nullptr);
        CHECK(isa_usable(chosen->isa));
        for (const Kernel* k : list) {
            if (isa_usable(k->isa)) CHECK_MESSAGE(k->priority <= chosen->priority, std::string(k->name));
        }
    }
    CHECK(names.size() == kernel_registry().size());
}

TEST_CASE("add and mul variants: exact, broadcast rows, in place") {
    Rng rng{1};
    for (bool is_add : {true, false}) {
        for (const auto* v : usable(is_add ? add_variants() : mul_variants())) {
            const BinaryFn ref = is_add ? add_ref : mul_ref;
            for (int64_t C : kLengths) {
                for (int64_t T : {int64_t{1}, int64_t{3}, int64_t{37}}) {
                    for (int64_t b_rows : {int64_t{1}, T}) {
                        std::vector<float> a(T * C), b(b_rows * C), want(T * C);
                        for (float& x : a) x = rng.uniform(-8, 8);
                        for (float& x : b) x = rng.uniform(-8, 8);
                        ref(a.data(), b.data(), T, C, b_rows, want.data(), nullptr);
                        const std::vector<float> got = run_thread_counts(v->name, [&](ThreadPool* pool) {
                            std::vector<float> y(T * C, -7.0f);
                            v->fn(a.data(), b.data(), T, C, b_rows, y.data(), pool);
                            return y;
                        });
                        CHECK_MESSAGE(same_bits(got, want), v->name << " T=" << T << " C=" << C << " b_rows=" << b_rows);
                        std::vector<float> inplace = a;
                        v->fn(inplace.data(), b.data(), T, C, b_rows, inplace.data(), nullptr);
                        CHECK_MESSAGE(same_bits(inplace, want), v->name << " in place, T=" << T << " C=" << C);
                    }
                }
            }
        }
    }
}

namespace {

// Inputs that stress the f16 forms: both sides of GELU's ±10 shortcuts, f16
// overflow and subnormals, ties of the f16 rounding, infinities.
std::vector<float> unary_inputs(int64_t n, Rng& rng) {
    static const float special[] = {0.0f,      -0.0f,     10.0f,      -10.0f,     9.999f,   -9.999f,  10.001f,
                                    -10.001f,  65504.0f,  65520.0f,   -65520.0f,  1e6f,     -1e6f,    1e-8f,
                                    -3e-8f,    6.1e-5f,   1.00048828125f, 2.0009765625f, -0.5f, 87.5f, -87.5f,
                                    INFINITY,  -INFINITY, 1e-30f,     -60.0f,     60.0f};
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) {
        x[i] = (i % 5 == 3) ? special[(i / 5) % (sizeof(special) / sizeof(float))] : rng.uniform(-12, 12);
    }
    return x;
}

bool unary_exact(UnaryOp op) { return op == UnaryOp::gelu_tanh_f16 || op == UnaryOp::gelu_quick_f16; }

double unary_tolerance(UnaryOp op, float x, float y) {
    const double ay = std::fabs(static_cast<double>(y));
    switch (op) {
        case UnaryOp::silu:
        case UnaryOp::gelu_quick: return (std::ldexp(1.0, -21) + 8 * kU) * ay + 1e-37;
        case UnaryOp::gelu_tanh: {
            const double u = 0.79788456080286535587989211986876 * (x + 0.044715 * static_cast<double>(x) * x * x);
            return 0.5 * std::fabs(x) * std::ldexp(1.0, -22) + (std::ldexp(1.0, -21) + 16 * kU + 8 * kU * std::fabs(2 * u)) * ay +
                   1e-37;
        }
        default: return 0;
    }
}

const char* unary_name(UnaryOp op) {
    switch (op) {
        case UnaryOp::gelu_tanh: return "gelu_tanh";
        case UnaryOp::gelu_quick: return "gelu_quick";
        case UnaryOp::silu: return "silu";
        case UnaryOp::gelu_tanh_f16: return "gelu_tanh_f16";
        case UnaryOp::gelu_quick_f16: return "gelu_quick_f16";
    }
    return "?";
}

}  // namespace

TEST_CASE("unary variants: f16 GELU forms bit-identical, exact forms within their bound, in place") {
    Rng rng{2};
    for (const auto* v : usable(unary_variants())) {
        for (UnaryOp op : {UnaryOp::gelu_tanh, UnaryOp::gelu_quick, UnaryOp::silu, UnaryOp::gelu_tanh_f16,
                           UnaryOp::gelu_quick_f16}) {
            std::vector<int64_t> lengths(std::begin(kLengths), std::end(kLengths));
            lengths.push_back(9221);  // above the references' parallel threshold
            for (int64_t n : lengths) {
                const std::vector<float> x = unary_inputs(n, rng);
                std::vector<float> want(n);
                unary_ref(op, x.data(), n, want.data(), nullptr);
                const std::vector<float> got = run_thread_counts(v->name, [&](ThreadPool* pool) {
                    std::vector<float> y(n, -7.0f);
                    v->fn(op, x.data(), n, y.data(), pool);
                    return y;
                });
                int failures = 0;
                for (int64_t i = 0; i < n && failures < 5; ++i) {
                    const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
                    const bool ok = both_nan || (unary_exact(op) ? got[i] == want[i] && std::signbit(got[i]) == std::signbit(want[i])
                                                                  : (got[i] == want[i] || std::fabs(static_cast<double>(got[i]) - want[i]) <=
                                                                                              unary_tolerance(op, x[i], want[i])));
                    if (!ok) {
                        ++failures;
                        FAIL_CHECK(v->name << " " << unary_name(op) << " n=" << n << " x[" << i << "]=" << x[i] << ": "
                                           << got[i] << ", reference " << want[i]);
                    }
                }
                std::vector<float> inplace = x;
                v->fn(op, inplace.data(), n, inplace.data(), nullptr);
                CHECK_MESSAGE(same_bits(inplace, got), v->name << " " << unary_name(op) << " in place, n=" << n);
            }
        }
    }
}

TEST_CASE("unary variants: f16 GELU forms equal the scalar forms on every f16 input") {
    // All 65536 f16 values, each also nudged up and down within its rounding interval.
    std::vector<float> x;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = f16_to_f32(static_cast<uint16_t>(h));
        if (std::isnan(f)) continue;
        x.push_back(f);
        x.push_back(std::nextafter(f, INFINITY));
        x.push_back(std::nextafter(f, -INFINITY));
    }
    const int64_t n = static_cast<int64_t>(x.size());
    for (const auto* v : usable(unary_variants())) {
        for (UnaryOp op : {UnaryOp::gelu_tanh_f16, UnaryOp::gelu_quick_f16}) {
            std::vector<float> y(n);
            v->fn(op, x.data(), n, y.data(), nullptr);
            int64_t mismatches = 0;
            for (int64_t i = 0; i < n; ++i) {
                const float want = op == UnaryOp::gelu_tanh_f16 ? gelu_tanh_f16_scalar(x[i]) : gelu_quick_f16_scalar(x[i]);
                const bool ok = (std::isnan(want) && std::isnan(y[i])) ||
                                (y[i] == want && std::signbit(y[i]) == std::signbit(want));
                if (!ok && ++mismatches <= 3) {
                    FAIL_CHECK(v->name << " " << unary_name(op) << "(" << x[i] << ") = " << y[i] << ", scalar form " << want);
                }
            }
            CHECK_MESSAGE(mismatches == 0, v->name << " " << unary_name(op) << ": " << mismatches << " mismatches");
        }
    }
}

TEST_CASE("swiglu variants: silu(gate)·up within bound, in place") {
    Rng rng{3};
    for (const auto* v : usable(swiglu_variants())) {
        std::vector<int64_t> lengths(std::begin(kLengths), std::end(kLengths));
        lengths.push_back(9221);
        for (int64_t n : lengths) {
            std::vector<float> gate = unary_inputs(n, rng), up(n), want(n);
            for (float& u : up) u = rng.uniform(-6, 6);
            swiglu_ref(gate.data(), up.data(), n, want.data(), nullptr);
            const std::vector<float> got = run_thread_counts(v->name, [&](ThreadPool* pool) {
                std::vector<float> y(n, -7.0f);
                v->fn(gate.data(), up.data(), n, y.data(), pool);
                return y;
            });
            for (int64_t i = 0; i < n; ++i) {
                if (std::isnan(want[i]) && std::isnan(got[i])) continue;
                const double tol = (std::ldexp(1.0, -21) + 10 * kU) * std::fabs(want[i]) + 1e-37;
                if (!(got[i] == want[i] || std::fabs(static_cast<double>(got[i]) - want[i]) <= tol)) {
                    FAIL_CHECK(v->name << " n=" << n << " gate[" << i << "]=" << gate[i] << " up=" << up[i] << ": " << got[i]
                                       << ", reference " << want[i]);
                    break;
                }
            }
            std::vector<float> inplace = gate;
            v->fn(inplace.data(), up.data(), n, inplace.data(), nullptr);
            CHECK_MESSAGE(same_bits(inplace, got), v->name << " in place (y = gate), n=" << n);
        }
    }
}

TEST_CASE("layer_norm and rms_norm variants: within bound, with and without gamma/beta, in place") {
    Rng rng{4};
    for (bool layer : {true, false}) {
        const std::vector<const OpVariant<LayerNormFn>*> ln = usable(layer_norm_variants());
        const std::vector<const OpVariant<RmsNormFn>*> rn = usable(rms_norm_variants());
        const size_t count = layer ? ln.size() : rn.size();
        for (size_t vi = 0; vi < count; ++vi) {
            const char* name = layer ? ln[vi]->name : rn[vi]->name;
            for (int64_t C : kLengths) {
                for (int64_t T : {int64_t{1}, int64_t{3}, int64_t{37}}) {
                    for (int affine = 0; affine < 4; ++affine) {
                        if (!layer && affine >= 2) continue;
                        const bool has_g = affine & 1, has_b = affine & 2;
                        std::vector<float> x(T * C), g(C), b(C), want(T * C);
                        // rows with an offset, so the mean matters
                        for (int64_t t = 0; t < T; ++t) {
                            const float off = rng.uniform(-20, 20);
                            for (int64_t c = 0; c < C; ++c) x[t * C + c] = off + rng.uniform(-3, 3);
                        }
                        for (float& v : g) v = rng.uniform(-2, 2);
                        for (float& v : b) v = rng.uniform(-1, 1);
                        const float eps = 1e-6f;
                        const float* gp = has_g ? g.data() : nullptr;
                        const float* bp = has_b ? b.data() : nullptr;
                        auto run = [&](const float* in, float* out, ThreadPool* pool) {
                            if (layer) ln[vi]->fn(in, T, C, gp, bp, eps, out, pool);
                            else rn[vi]->fn(in, T, C, gp, eps, out, pool);
                        };
                        if (layer) layer_norm_ref(x.data(), T, C, gp, bp, eps, want.data(), nullptr);
                        else rms_norm_ref(x.data(), T, C, gp, eps, want.data(), nullptr);
                        const std::vector<float> got = run_thread_counts(name, [&](ThreadPool* pool) {
                            std::vector<float> y(T * C, -7.0f);
                            run(x.data(), y.data(), pool);
                            return y;
                        });
                        bool failed = false;
                        for (int64_t t = 0; t < T && !failed; ++t) {
                            double sum = 0, sum_abs = 0, sum2 = 0;
                            for (int64_t c = 0; c < C; ++c) {
                                sum += x[t * C + c];
                                sum_abs += std::fabs(x[t * C + c]);
                            }
                            const double mean = layer ? sum / C : 0.0;
                            for (int64_t c = 0; c < C; ++c) sum2 += (x[t * C + c] - mean) * (x[t * C + c] - mean);
                            const double scale = 1.0 / std::sqrt(sum2 / C + eps);
                            const double dmu = layer ? gamma_n(static_cast<double>(C)) * sum_abs / C + 2 * kU * std::fabs(mean) : 0.0;
                            for (int64_t c = 0; c < C; ++c) {
                                const double gc = has_g ? std::fabs(g[c]) : 1.0, bc = has_b ? b[c] : 0.0;
                                const double r = want[t * C + c];
                                const double tol = (gamma_n(static_cast<double>(C)) / 2 + 10 * kU) * std::fabs(r - bc) +
                                                   gc * scale * dmu + 2 * kU * std::fabs(bc) + 1e-38;
                                if (!(std::fabs(got[t * C + c] - r) <= tol)) {
                                    FAIL_CHECK(name << " T=" << T << " C=" << C << " gamma=" << has_g << " beta=" << has_b << ": y["
                                                    << t << "][" << c << "] = " << got[t * C + c] << ", reference " << r
                                                    << ", tolerance " << tol);
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        std::vector<float> inplace = x;
                        run(inplace.data(), inplace.data(), nullptr);
                        CHECK_MESSAGE(same_bits(inplace, got), name << " in place, T=" << T << " C=" << C);
                    }
                }
            }
        }
    }
}

TEST_CASE("rope variants: bit-identical to the reference, partial rotation, in place") {
    Rng rng{5};
    struct Case {
        int64_t T, H, D, n_rot;
        float base;
    };
    const Case cases[] = {{1, 9, 64, 64, 100000.0f}, {5, 3, 64, 64, 10000.0f}, {33, 9, 64, 32, 10000.0f},
                          {7, 2, 18, 18, 10000.0f},   {3, 4, 128, 128, 500000.0f}, {2, 1, 2, 2, 10000.0f},
                          {17, 15, 64, 64, 100000.0f}, {4, 3, 30, 16, 10000.0f}};
    for (const auto* v : usable(rope_variants())) {
        for (const Case& c : cases) {
            const int64_t n = c.T * c.H * c.D;
            std::vector<float> x(n), want(n);
            std::vector<int32_t> pos(c.T);
            for (float& f : x) f = rng.uniform(-3, 3);
            for (int64_t t = 0; t < c.T; ++t) pos[t] = t == 0 ? 0 : rng.integer(0, 8192);
            rope_norm_ref(x.data(), pos.data(), c.T, c.H, c.D, c.n_rot, c.base, want.data(), nullptr);
            const std::vector<float> got = run_thread_counts(v->name, [&](ThreadPool* pool) {
                std::vector<float> y(n, -7.0f);
                v->fn(x.data(), pos.data(), c.T, c.H, c.D, c.n_rot, c.base, y.data(), pool);
                return y;
            });
            CHECK_MESSAGE(same_bits(got, want), v->name << " T=" << c.T << " H=" << c.H << " D=" << c.D << " n_rot=" << c.n_rot);
            std::vector<float> inplace = x;
            v->fn(inplace.data(), pos.data(), c.T, c.H, c.D, c.n_rot, c.base, inplace.data(), nullptr);
            CHECK_MESSAGE(same_bits(inplace, want), v->name << " in place, T=" << c.T << " D=" << c.D);
        }
    }
}

// ---------------------------------------------------------------------------
// Attention

namespace {

struct AttnCase : test::AttentionShape {
    bool col_mean = false;
    bool key_bias = false;  // AttentionArgs::key_bias (ToMe's log sizes), from U(-1, 2.5)
};

// The bound of the file header for every output element (and the tap), from
// double-precision scores; fails the test at the first violation.
void check_attention_case(const OpVariant<AttentionFn>& v, DType kv_type, const AttnCase& c) {
    Rng rng{static_cast<uint64_t>(c.T * 131 + c.S * 7 + c.D + c.Hq * 3 + c.causal + (kv_type == DType::f16 ? 1000 : 0))};
    // Scores spread over about ±12 so softmax is far from uniform.
    const test::AttentionInputs in = test::random_attention_inputs(rng, c, kv_type, 1.5f);
    const int64_t q_ld = in.q_ld, kv_ld = in.kv_ld, out_ld = in.out_ld;
    const std::vector<float>& q = in.q, &kf = in.kf, &vf = in.vf;
    std::vector<float> bias(c.key_bias ? c.S : 0);
    for (float& x : bias) x = rng.uniform(-1.0f, 2.5f);
    AttentionArgs a = test::attention_args(c, in, kv_type);
    a.key_bias = c.key_bias ? bias.data() : nullptr;

    std::vector<float> ref(c.T * out_ld, -7.0f), ref_tap(c.col_mean ? c.Hq * c.S : 0);
    {
        std::vector<float> scratch(attention_scratch_floats(c.S));
        a.out = ref.data();
        a.col_mean = c.col_mean ? ref_tap.data() : nullptr;
        attention_ref(a, scratch.data(), nullptr);
    }
    std::vector<float> got_tap;
    const std::vector<float> got = run_thread_counts(v.name, [&](ThreadPool* pool) {
        const int threads = pool ? pool->n_threads() : 1;
        std::vector<float> scratch(threads * attention_scratch_floats(c.S), std::nanf(""));
        std::vector<float> out(c.T * out_ld, -7.0f), tap(c.col_mean ? c.Hq * c.S : 0, -7.0f);
        AttentionArgs b = a;
        b.out = out.data();
        b.col_mean = c.col_mean ? tap.data() : nullptr;
        v.fn(b, scratch.data(), pool);
        if (c.col_mean) got_tap = tap;
        // the tap joins the output, so thread counts are compared on both
        out.insert(out.end(), tap.begin(), tap.end());
        return out;
    });

    const std::string what = std::string(v.name) + " " + dtype_name(kv_type) + " T=" + std::to_string(c.T) +
                             " S=" + std::to_string(c.S) + " Hq=" + std::to_string(c.Hq) + " Hkv=" + std::to_string(c.Hkv) +
                             " D=" + std::to_string(c.D) + (c.causal ? " causal+" + std::to_string(c.causal_offset) : "") +
                             (c.key_bias ? " key_bias" : "");
    const int64_t group = c.Hq / c.Hkv;
    std::vector<double> row_rel_max(c.Hq, 0.0);
    for (int64_t t = 0; t < c.T; ++t) {
        for (int64_t h = 0; h < c.Hq; ++h) {
            const int64_t hk = h / group;
            const int64_t n = c.causal ? std::min<int64_t>(c.S, c.causal_offset + t + 1) : c.S;
            const float* qr = q.data() + t * q_ld + h * c.D;
            std::vector<double> p(n);
            double max = -1e300, sum = 0, worst_delta = 0;
            std::vector<double> mags(n);
            for (int64_t s = 0; s < n; ++s) {
                double dot = 0, mag = 0;
                for (int64_t d = 0; d < c.D; ++d) {
                    const double prod = static_cast<double>(qr[d]) * kf[s * kv_ld + hk * c.D + d];
                    dot += prod;
                    mag += std::fabs(prod);
                }
                // the bias adds one f32 rounding, covered by the 2u·|x_s| term below
                p[s] = dot * a.scale + (c.key_bias ? bias[s] : 0.0);
                mags[s] = mag;
                max = std::max(max, p[s]);
            }
            for (int64_t s = 0; s < n; ++s) {
                worst_delta = std::max(worst_delta, a.scale * gamma_n(static_cast<double>(c.D)) * mags[s] + 2 * kU * std::fabs(p[s]) +
                                                        kU * std::fabs(p[s] - max));
            }
            for (double& x : p) sum += (x = std::exp(x - max));
            for (double& x : p) x /= sum;
            const double rel = 2.2 * worst_delta + std::ldexp(1.0, -21) + 2 * gamma_n(static_cast<double>(n)) +
                               4.0 * static_cast<double>((n + 15) / 16) * kU + 8 * kU;
            row_rel_max[h] = std::max(row_rel_max[h], rel);
            for (int64_t d = 0; d < c.D; ++d) {
                double mag = 0;
                for (int64_t s = 0; s < n; ++s) mag += p[s] * std::fabs(vf[s * kv_ld + hk * c.D + d]);
                const double r = ref[t * out_ld + h * c.D + d], g = got[t * out_ld + h * c.D + d];
                if (!(std::fabs(g - r) <= rel * mag + 1e-30)) {
                    FAIL_CHECK(what << ": out[" << t << "][" << h << "][" << d << "] = " << g << ", reference " << r
                                    << ", tolerance " << rel * mag);
                    return;
                }
            }
        }
        for (int64_t j = c.Hq * c.D; j < out_ld; ++j) {
            if (got[t * out_ld + j] != -7.0f) {
                FAIL_CHECK(what << ": wrote past the row's Hq·D outputs, at row " << t);
                return;
            }
        }
    }
    if (c.col_mean) {
        for (int64_t h = 0; h < c.Hq; ++h) {
            for (int64_t s = 0; s < c.S; ++s) {
                const double r = ref_tap[h * c.S + s], g = got_tap[h * c.S + s];
                const double tol = (row_rel_max[h] + gamma_n(static_cast<double>(c.T)) + 2 * kU) * std::fabs(r) + 1e-30;
                if (!(std::fabs(g - r) <= tol)) {
                    FAIL_CHECK(what << ": col_mean[" << h << "][" << s << "] = " << g << ", reference " << r);
                    return;
                }
            }
        }
    }
}

}  // namespace

TEST_CASE("attention variants: decode, prefill, vision shapes; GQA, masks, f16/f32 KV, taps, any thread count") {
    const bool big = !test::emulated();
    std::vector<AttnCase> cases = {
        // decode (T = 1) over caches of every length class; GQA 9/3 (SmolVLM-256M), 4 and 1
        {1, 1, 9, 3, 64, true, 0},
        {1, 17, 9, 3, 64, true, 16},
        {1, 300, 9, 3, 64, true, 299},
        {1, 65, 8, 2, 64, true, 64},
        {1, 129, 4, 4, 64, true, 128},
        {1, 40, 6, 2, 17, true, 39},
        // a few rows over a long cache (speculative / chunked)
        {3, 200, 9, 3, 64, true, 197},
        {7, 70, 4, 1, 64, true, 63},
        // causal prefill: T = S not a multiple of the blocks, odd, one block, many blocks
        {97, 97, 9, 3, 64, true, 0},
        {33, 33, 3, 3, 64, true, 0},
        {8, 8, 2, 1, 64, true, 0},
        {150, 150, 6, 2, 72, true, 0},
        // chunked prefill: queries [offset, offset + T) over S = offset + T keys
        {40, 100, 9, 3, 64, true, 60},
        {65, 130, 4, 4, 64, true, 65},
        // vision: non-causal, S not a multiple of 64, D = 64 / 72 / 80, odd D, D > 128
        {200, 200, 4, 4, 64, false, 0},
        {31, 77, 3, 3, 72, false, 0},
        {16, 50, 2, 2, 80, false, 0},
        {9, 9, 3, 1, 6, false, 0},
        {12, 23, 2, 2, 17, false, 0},
        {20, 45, 2, 1, 160, false, 0},
        {5, 33, 2, 2, 80, false, 0},
        {2, 1, 1, 1, 16, false, 0},
        // the column-mean tap (vision pruning)
        {40, 40, 3, 3, 64, false, 0, true},
        {70, 70, 2, 2, 72, false, 0, true},
        // ToMe's proportional attention (+log size per key): blocked, row kernel, odd D, with the tap
        {37, 37, 3, 3, 64, false, 0, false, true},
        {5, 70, 2, 2, 24, false, 0, false, true},
        {9, 131, 2, 2, 17, false, 0, false, true},
        {40, 40, 3, 3, 64, false, 0, true, true},
    };
    if (big) {
        cases.push_back({1, 1100, 9, 3, 64, true, 1099});
        cases.push_back({300, 300, 9, 3, 64, true, 0});
        cases.push_back({1024, 1024, 1, 1, 64, false, 0});  // one head of a 512px SigLIP tile
        cases.push_back({197, 197, 12, 12, 64, false, 0, true});  // CLIP-B/16 with [CLS]
    }
    for (const auto* v : usable(attention_variants())) {
        for (DType kv : {DType::f32, DType::f16}) {
            for (const AttnCase& c : cases) check_attention_case(*v, kv, c);
        }
    }
}

// ---------------------------------------------------------------------------
// topk (ops/topk.h): exact, so every variant must return the reference's indices.
// The reference itself is checked against a rank count written from the contract
// (test::topk_by_rank_count).

namespace {

// Score vectors that stress the order: all equal, NaNs, ±inf, signed zeros, few
// distinct values (many ties across radix bins), denormals, random.
std::vector<std::pair<std::string, std::vector<float>>> topk_inputs(int64_t n, uint64_t seed) {
    Rng rng{seed};
    const float nan = std::nanf(""), inf = INFINITY;
    std::vector<std::pair<std::string, std::vector<float>>> cases;
    auto make = [&](const char* name, auto&& gen) {
        std::vector<float> v(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) v[i] = gen(i);
        cases.emplace_back(name, std::move(v));
    };
    make("all equal", [](int64_t) { return 0.25f; });
    make("random", [&](int64_t) { return rng.uniform(-1, 1); });
    make("few values", [&](int64_t) { return static_cast<float>(rng.integer(0, 4)) - 1.5f; });
    make("signed zeros", [&](int64_t i) { return (i % 3 == 0) ? -0.0f : (i % 3 == 1 ? 0.0f : -1e-30f); });
    make("nans and infs", [&](int64_t i) {
        const int r = rng.integer(0, 6);
        if (r == 0) return nan;
        if (r == 1) return -nan;
        if (r == 2) return inf;
        if (r == 3) return -inf;
        return rng.uniform(-3, 3) + (i % 2 ? 0.0f : 1e-40f);
    });
    make("all nan", [&](int64_t i) { return i % 2 ? nan : -nan; });
    make("denormals and zeros", [&](int64_t i) {
        uint32_t bits = static_cast<uint32_t>(rng.integer(0, 1 << 20)) | (i % 2 ? 0x80000000u : 0u);
        float f;
        std::memcpy(&f, &bits, 4);
        return f;
    });
    make("ascending", [](int64_t i) { return static_cast<float>(i); });
    make("descending", [n](int64_t i) { return static_cast<float>(n - i); });
    return cases;
}

}  // namespace

TEST_CASE("topk reference: the rank-count oracle on adversarial scores") {
    for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{15}, int64_t{16}, int64_t{17}, int64_t{64}, int64_t{577}}) {
        for (const auto& [what, s] : topk_inputs(n, 99 + n)) {
            std::vector<uint8_t> scratch(static_cast<size_t>(topk_scratch_bytes(n)));
            for (int64_t k : {int64_t{0}, int64_t{1}, n / 3, n / 2, n - 1, n}) {
                if (k < 0) continue;
                INFO(what << " n=" << n << " k=" << k);
                std::vector<int32_t> got(static_cast<size_t>(k) + 1, -7);
                topk_ref(s.data(), n, k, got.data(), scratch.data());
                CHECK(got[static_cast<size_t>(k)] == -7);  // nothing written past k
                got.resize(static_cast<size_t>(k));
                CHECK(got == test::topk_by_rank_count(s, k));
            }
        }
    }
    // A hand-worked case: NaN last, ties by index, -0 == +0, raster output order.
    const float nan = std::nanf("");
    const std::vector<float> s = {0.0f, nan, 2.0f, -0.0f, INFINITY, 2.0f, -INFINITY};
    std::vector<uint8_t> scratch(static_cast<size_t>(topk_scratch_bytes(7)));
    std::vector<int32_t> got(4);
    topk_ref(s.data(), 7, 4, got.data(), scratch.data());
    CHECK(got == std::vector<int32_t>{0, 2, 4, 5});  // inf, 2 (#2), 2 (#5), 0 (#0 before -0 at #3)
    got.resize(6);
    topk_ref(s.data(), 7, 6, got.data(), scratch.data());
    CHECK(got == std::vector<int32_t>{0, 2, 3, 4, 5, 6});  // the NaN is the one left out
}

TEST_CASE("topk variants: the reference's indices exactly") {
    const bool emulated = test::emulated();
    for (const auto* v : usable(topk_variants())) {
        for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{17}, int64_t{63}, int64_t{576}, int64_t{1089},
                          int64_t{emulated ? 4099 : 100003}}) {
            for (const auto& [what, s] : topk_inputs(n, 7 * n + 1)) {
                std::vector<uint8_t> scratch(static_cast<size_t>(topk_scratch_bytes(n)) + 64);
                // 64-byte aligned, as a plan gives it
                void* aligned = scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64;
                for (int64_t k : {int64_t{0}, int64_t{1}, n / 4, n / 2, n - 1, n}) {
                    if (k < 0) continue;
                    INFO(v->name << ": " << what << " n=" << n << " k=" << k);
                    std::vector<int32_t> want(static_cast<size_t>(k) + 1, -7), got(static_cast<size_t>(k) + 1, -7);
                    topk_ref(s.data(), n, k, want.data(), aligned);
                    v->fn(s.data(), n, k, got.data(), aligned);
                    CHECK(got == want);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// gather_rows (ops/gather.h): y[i] = x[idx[i]], exact. Every variant against the
// definition, element by element, with repeated, unsorted and boundary indices,
// C below and above every vector width, k = 0, and 1/3 threads and no pool.
TEST_CASE("gather_rows variants: the rows the indices name, exactly") {
    for (const auto* v : usable(gather_rows_variants())) {
        for (int64_t C : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{17}, int64_t{768}}) {
            const int64_t T = 300;
            Rng rng{static_cast<uint64_t>(C) * 31 + 1};
            std::vector<float> x(static_cast<size_t>(T * C));
            for (float& f : x) f = rng.uniform(-4, 4);
            for (int64_t k : {int64_t{0}, int64_t{1}, int64_t{75}, int64_t{300}, int64_t{640}}) {
                std::vector<int32_t> idx(static_cast<size_t>(k));
                for (int64_t i = 0; i < k; ++i) idx[i] = i == 0 ? static_cast<int32_t>(T - 1) : rng.integer(0, static_cast<int32_t>(T));
                if (k > 2) idx[2] = 0;
                INFO(v->name << " C=" << C << " k=" << k);
                std::vector<float> got = run_thread_counts(v->name, [&](ThreadPool* pool) {
                    std::vector<float> y(static_cast<size_t>(k * C) + 1, -9.0f);
                    v->fn(x.data(), C, idx.data(), k, y.data(), pool);
                    return y;
                });
                bool same = got[static_cast<size_t>(k * C)] == -9.0f;  // nothing written past k rows
                for (int64_t i = 0; i < k; ++i) {
                    for (int64_t c = 0; c < C; ++c) same = same && got[i * C + c] == x[idx[i] * C + c];
                }
                CHECK(same);
            }
        }
    }
}
