// Every matmul kernel in ops/matmul_registry.cpp against matmul_ref (the
// double-precision dequantize-and-sum oracle), on adversarial shapes: one row,
// tails below every tile size, exact multiples, large and odd shapes, strided
// inputs and outputs, with and without bias, 1 and 3 threads.
//
// Tolerances, per element, with S = Σ_k |x_k·w_k| (+|bias|):
//   activations f32:  |err| ≤ 1e-5·S      (f32 accumulation on random data; the
//                                          worst case K·u·S is 2.4e-4·S at K=4096)
//   activations f16:  |err| ≤ 2^-11·S + 1e-5·S   (x rounded to f16: relative 2^-11)
//   activations bf16: |err| ≤ 2^-8·S + 1e-5·S    (x rounded to bf16: relative 2^-8)
//   activations q8_0/q8_1/q8_k: |err| ≤ Σ_blocks Σ_{k∈b}|w_k|·(amax_b/127)/2 + 1e-5·S
//                     (each x_k moves by at most half a quantization step d_b = amax_b/127)
//   activations bf16_bf16w (providers: x and f16/f32 weights both rounded to bf16):
//                     x̃ = x(1+δ), w̃ = w(1+ε), |δ|,|ε| ≤ u = 2^-8, so
//                     |x̃w̃ − xw| ≤ |xw|(2u + u²):  |err| ≤ (2^-7 + 2^-16)·S + 1e-5·S
//   activations s8_row_s8w (providers: x per row and each weight row quantized to int8,
//                     steps dx = amax|x|/127, dw = amax|w_row|/127, round to nearest):
//                     x̃ = x + δ, w̃ = w + ε, |δ_k| ≤ dx/2, |ε_k| ≤ dw/2, so
//                     |Σ x̃w̃ − Σ xw| ≤ Σ|w_k|·dx/2 + Σ|x_k|·dw/2 + K·dx·dw/4  (+ 1e-5·S)
// Kernels the active CPU level cannot run are skipped with a message, so running
// the suite under GLIMPSE_MAX_ISA=... (or on another CPU) exercises each path.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "ops/quantize_activations.h"
#include "ops/weights.h"
#include "runtime/aligned_buffer.h"
#include "runtime/fp16.h"
#include "quant/formats.h"
#include "quant/quantize.h"
#include "test_util.h"

using namespace glimpse;

namespace {

// Test scale: under emulation (test::emulated(), set by targets/test-aarch64.sh for
// qemu runs) the double-precision oracle on the model-sized shapes would take most
// of an hour: a sparser subset of the small shapes and smaller "large" shapes keep
// every tail and blocking case (one tile, below a tile, K beyond a cache block).

using test::Rng;

// y:(M, N) = x:(M, K) · w:(N, K)ᵀ
struct MatmulShape {
    int64_t M, K, N;
};

// The kernel can run here: its ISA level is usable at the active cap and its library (if any) loaded.
bool runnable(const MatmulKernel& k) { return isa_usable(k.isa) && (!k.available || k.available()); }

// Random weights (N, K) in `type`, built from f32 values with the format's own
// rounding (quantized types use scale = amax/qmax per block).
std::vector<uint8_t> make_weights(DType type, int64_t N, int64_t K, Rng& rng) {
    std::vector<float> f(static_cast<size_t>(N * K));
    for (float& v : f) v = rng.uniform(-1, 1);
    std::vector<uint8_t> out(static_cast<size_t>(dtype_row_bytes(type, K) * N));
    if (type == DType::f32) {
        std::memcpy(out.data(), f.data(), out.size());
    } else if (type == DType::f16 || type == DType::bf16) {
        for (size_t i = 0; i < f.size(); ++i) {
            uint16_t h = type == DType::f16 ? f32_to_f16(f[i]) : f32_to_bf16(f[i]);
            std::memcpy(out.data() + 2 * i, &h, 2);
        }
    } else if (type == DType::q8_0 || type == DType::q4_0) {
        const int qmax = type == DType::q8_0 ? 127 : 8;
        uint8_t* p = out.data();
        for (int64_t b = 0; b < N * K / 32; ++b) {
            float amax = 0;
            for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(f[b * 32 + j]));
            const uint16_t dh = f32_to_f16(amax / qmax);
            const float d = f16_to_f32(dh);
            std::memcpy(p, &dh, 2);
            if (type == DType::q8_0) {
                for (int j = 0; j < 32; ++j) {
                    const float q = d > 0 ? std::round(f[b * 32 + j] / d) : 0;
                    p[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::max(-127.f, std::min(127.f, q))));
                }
                p += 34;
            } else {
                for (int j = 0; j < 16; ++j) {
                    auto q4 = [&](float v) {
                        int q = d > 0 ? static_cast<int>(std::round(v / d)) + 8 : 8;
                        return static_cast<uint8_t>(std::max(0, std::min(15, q)));
                    };
                    p[2 + j] = static_cast<uint8_t>(q4(f[b * 32 + j]) | (q4(f[b * 32 + j + 16]) << 4));
                }
                p += 18;
            }
        }
    } else if (quantize_supported(type)) {
        // Other block formats: ggml's reference quantizers (quant/quantize.h).
        const int64_t row_bytes = dtype_row_bytes(type, K);
        for (int64_t n = 0; n < N; ++n) quantize_row(type, f.data() + n * K, out.data() + n * row_bytes, K);
    } else {
        FAIL("test has no weight generator for " << dtype_name(type));
    }
    return out;
}

double activation_bound(MatmulActivations a, const float* xr, const float* wrow, int64_t K) {
    auto block_bound = [&](int64_t bs) {
        double total = 0;
        for (int64_t b = 0; b < K; b += bs) {
            float amax = 0;
            double wsum = 0;
            for (int64_t k = b; k < std::min(K, b + bs); ++k) {
                amax = std::max(amax, std::fabs(xr[k]));
                wsum += std::fabs(wrow[k]);
            }
            // f16 scale rounding can make the step up to 2^-11 larger than amax/127
            total += wsum * (amax / 127.0) * (1 + 1.0 / 1024) / 2;
        }
        return total;
    };
    double s = 0;
    for (int64_t k = 0; k < K; ++k) s += std::fabs(static_cast<double>(xr[k]) * wrow[k]);
    switch (a) {
        case MatmulActivations::f32: return 0;
        case MatmulActivations::f16: return s * std::ldexp(1.0, -11);
        case MatmulActivations::bf16: return s * std::ldexp(1.0, -8);
        case MatmulActivations::q8_0:
        case MatmulActivations::q8_1: return block_bound(32);
        case MatmulActivations::q8_k: return block_bound(256);
        case MatmulActivations::bf16_bf16w: return s * (std::ldexp(1.0, -7) + std::ldexp(1.0, -16));
        case MatmulActivations::s8_row_s8w: {
            double xsum = 0, wsum = 0, xmax = 0, wmax = 0;
            for (int64_t k = 0; k < K; ++k) {
                xsum += std::fabs(xr[k]);
                wsum += std::fabs(wrow[k]);
                xmax = std::max(xmax, static_cast<double>(std::fabs(xr[k])));
                wmax = std::max(wmax, static_cast<double>(std::fabs(wrow[k])));
            }
            const double dx = xmax / 127, dw = wmax / 127;
            return wsum * dx / 2 + xsum * dw / 2 + static_cast<double>(K) * dx * dw / 4;
        }
    }
    return 0;
}

// M_plan: the row count the plan was made for (scratch is sized for it); the
// run uses M <= M_plan rows, as a decode step does in a prefill-sized plan.
void check_kernel(const MatmulKernel& kern, int64_t M, int64_t K, int64_t N, bool bias, bool strided, int threads,
                  int64_t M_plan = 0) {
    if (M_plan < M) M_plan = M;
    Rng rng{static_cast<uint64_t>(M * 1000003 + K * 1009 + N)};
    const int64_t ldx = strided ? K + 5 : K, ldy = strided ? N + 3 : N;
    std::vector<float> x(static_cast<size_t>(M * ldx), 1e30f), b(static_cast<size_t>(N));
    for (int64_t m = 0; m < M; ++m) for (int64_t k = 0; k < K; ++k) x[m * ldx + k] = rng.uniform(-2, 2);
    for (float& v : b) v = rng.uniform(-1, 1);
    std::vector<uint8_t> w = make_weights(kern.w_type, N, K, rng);

    MatmulArgs a;
    a.x = x.data(); a.ldx = ldx; a.M = M; a.K = K; a.N = N;
    a.w = w.data(); a.w_type = kern.w_type; a.bias = bias ? b.data() : nullptr; a.ldy = ldy;
    std::vector<float> ref(static_cast<size_t>(M * ldy), -7.0f), got(static_cast<size_t>(M * ldy), -7.0f);
    a.y = ref.data();
    matmul_ref(a, nullptr);

    uint8_t* packed = nullptr;
    if (kern.pack) {
        packed = aligned_buffer_alloc(static_cast<size_t>(kern.packed_bytes(N, K)));
        kern.pack(w.data(), N, K, packed);
    }
    uint8_t* scratch = nullptr;
    if (kern.scratch_bytes) scratch = aligned_buffer_alloc(static_cast<size_t>(kern.scratch_bytes(M_plan, K, N, threads)) + 64);
    ThreadPool pool(threads);
    a.packed = packed;
    a.scratch = scratch;
    a.y = got.data();
    kern.run(a, &pool);

    std::vector<float> wrow(static_cast<size_t>(K));
    for (int64_t n = 0; n < N; ++n) {
        weights_row_to_f32(w.data(), kern.w_type, K, n, wrow.data());
        for (int64_t m = 0; m < M; ++m) {
            const float* xr = x.data() + m * ldx;
            double s = bias ? std::fabs(b[n]) : 0;
            for (int64_t k = 0; k < K; ++k) s += std::fabs(static_cast<double>(xr[k]) * wrow[k]);
            const double tol = 1e-5 * s + 1e-6 + activation_bound(kern.activations, xr, wrow.data(), K);
            const double err = std::fabs(static_cast<double>(got[m * ldy + n]) - ref[m * ldy + n]);
            if (!(err <= tol)) {
                FAIL_CHECK(kern.name << " M=" << M << " K=" << K << " N=" << N << " bias=" << bias << " strided="
                                     << strided << " threads=" << threads << ": y[" << m << "][" << n
                                     << "] = " << got[m * ldy + n] << ", reference " << ref[m * ldy + n]
                                     << ", |err| " << err << " > " << tol);
                aligned_buffer_free(packed);
                aligned_buffer_free(scratch);
                return;
            }
        }
        if (strided) {
            for (int64_t m = 0; m < M; ++m) {
                for (int64_t j = N; j < ldy; ++j) REQUIRE_MESSAGE(got[m * ldy + j] == -7.0f, kern.name << " wrote past N");
            }
        }
    }
    aligned_buffer_free(packed);
    aligned_buffer_free(scratch);
}

// Packs w, reserves scratch for a.M rows and runs `kern` on `threads` threads into a.y:
// a plan's calling sequence for one product (a.packed and a.scratch are set here).
void run_packed(const MatmulKernel& kern, MatmulArgs a, int threads) {
    uint8_t* packed = nullptr;
    if (kern.pack) {
        packed = aligned_buffer_alloc(static_cast<size_t>(kern.packed_bytes(a.N, a.K)));
        kern.pack(a.w, a.N, a.K, packed);
    }
    uint8_t* scratch =
        kern.scratch_bytes ? aligned_buffer_alloc(static_cast<size_t>(kern.scratch_bytes(a.M, a.K, a.N, threads)) + 64) : nullptr;
    a.packed = packed;
    a.scratch = scratch;
    ThreadPool pool(threads);
    kern.run(a, &pool);
    aligned_buffer_free(packed);
    aligned_buffer_free(scratch);
}

}  // namespace

TEST_CASE("every matmul kernel matches the reference on adversarial shapes") {
    // K values: block multiples (quantized formats need K % 32 == 0; 256 for k-quants).
    const int64_t Ks[] = {32, 64, 96, 256, 288, 768, 1536};
    // M: one row (GEMV), tails below common tile heights, multiples, odd.
    const int64_t Ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33};
    // N: tails below 8/16/32/64-wide tiles, multiples, odd.
    const int64_t Ns[] = {1, 3, 8, 15, 16, 17, 31, 64, 65, 130};
    int tested = 0, skipped = 0;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (!runnable(*k)) {
            MESSAGE("skipped " << std::string(k->name) << ": needs " << std::string(isa_name(k->isa)) << " (active: " << std::string(isa_name(active_isa()))
                               << ") or its library");
            ++skipped;
            continue;
        }
        int shapes = 0;
        for (int64_t K : Ks) {
            for (int64_t M : Ms) {
                for (int64_t N : Ns) {
                    if (k->supports && !k->supports(M, K, N)) continue;
                    // a spread subset of the product (sparser under emulation)
                    if ((M * 7 + N * 3 + K) % (test::emulated() ? 11 : 5) != 0 && M != 1) continue;
                    if (test::emulated() && M == 1 && (N * 3 + K) % 3 != 0) continue;
                    check_kernel(*k, M, K, N, (M + N) % 2 == 0, (M + K) % 3 == 0, 1 + (N % 3 == 0) * 2);
                    ++shapes;
                }
            }
        }
        // One large shape per kernel, as in the models (SmolVLM FFN).
        const int64_t big_n = test::emulated() ? 328 : 3072;
        if (!k->supports || k->supports(64, 768, big_n)) {
            check_kernel(*k, 64, 768, big_n, true, false, 3);
            ++shapes;
        }
        // Prefill/encoder-sized M with a K beyond one cache block and an N tail:
        // exercises kernels' row blocking and K chunking.
        const int64_t big_m = test::emulated() ? 40 : 200;
        if (!k->supports || k->supports(big_m, 1536, 83)) {
            check_kernel(*k, big_m, 1536, 83, true, true, 2);
            ++shapes;
        }
        CHECK_MESSAGE(shapes > 0, k->name << " supports none of the test shapes");
        ++tested;
    }
    MESSAGE("tested " << tested << " kernels, skipped " << skipped);
    CHECK(tested >= 5);
}

// Plans are made for their largest row count and run with fewer rows (decode
// steps in the decoder's prefill-sized plan): kernels that only support large
// plans must still be right for M = 1 and other small counts.
TEST_CASE("every matmul kernel is right with fewer rows than planned") {
    int checked = 0;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (!runnable(*k)) continue;
        for (int64_t K : {64, 576}) {
            for (int64_t N : {31, 130}) {
                if (k->supports && !k->supports(512, K, N)) continue;
                for (int64_t M : {1, 2, 5, 17, 40}) {
                    check_kernel(*k, M, K, N, M % 2 == 1, M == 5, 1 + (M % 3 == 2), 512);
                    ++checked;
                }
            }
        }
    }
    MESSAGE("checked " << checked << " kernel/shape pairs with a 512-row plan");
}

TEST_CASE("kernel selection follows the active ISA and falls back to the references") {
    const Isa saved = active_isa();
    for (DType t : {DType::f32, DType::f16, DType::bf16, DType::q8_0, DType::q4_0}) {
        set_active_isa_for_testing(Isa::scalar);
        const MatmulKernel* k = select_matmul_kernel(t, 16, 256, 64);
        REQUIRE(k != nullptr);
        CHECK(k->isa == Isa::scalar);
        set_active_isa_for_testing(saved);
        const MatmulKernel* best = select_matmul_kernel(t, 16, 256, 64);
        REQUIRE(best != nullptr);
        CHECK(isa_usable(best->isa));
        CHECK(best->priority >= k->priority);
    }
    CHECK(select_matmul_kernel(DType::i32, 1, 32, 32) == nullptr);
    set_active_isa_for_testing(saved);
}

// SIMD kernels with ggml's q8_0 activation semantics against the scalar oracle
// (q8_0_q8_0__scalar / q4_0_q8_0__scalar): the activations are quantized with
// the same rounding, every block's integer dot product and the product of the
// two f16 scales are exact, so only the order of the f32 block sums may differ.
// Bound per output: Σ_b |term_b| · nb · 2^-24 (sequential-sum error), which is
// below 1e-6 relative of Σ|term| for K <= 1536; the kernels that accumulate
// blocks in order with one FMA each (all of glimpse's) agree bit for bit.
TEST_CASE("q8_0-activation kernels agree with the scalar ggml-semantics oracle") {
    int compared = 0;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (k->activations != MatmulActivations::q8_0 || k->isa == Isa::scalar) continue;
        if (!runnable(*k)) continue;
        const char* oracle_name = k->w_type == DType::q8_0 ? "q8_0_q8_0__scalar"
                                  : k->w_type == DType::q4_0 ? "q4_0_q8_0__scalar" : nullptr;
        if (!oracle_name) continue;
        const MatmulKernel* oracle = find_matmul_kernel(oracle_name);
        REQUIRE(oracle != nullptr);
        for (MatmulShape s : {MatmulShape{1, 576, 192}, MatmulShape{1, 1536, 65}, MatmulShape{3, 96, 17},
                              MatmulShape{7, 288, 130}, MatmulShape{33, 768, 64}, MatmulShape{64, 1536, 48}}) {
            if (k->supports && !k->supports(s.M, s.K, s.N)) continue;
            Rng rng{static_cast<uint64_t>(s.M * 31 + s.K * 7 + s.N)};
            std::vector<float> x(static_cast<size_t>(s.M * s.K)), bias(static_cast<size_t>(s.N));
            for (float& v : x) v = rng.uniform(-3, 3);
            // a few exact ties (x·127/amax = n + 0.5) and an all-zero block
            if (s.K >= 64) {
                x[0] = 1.0f; x[1] = 0.5f / 127.0f * 3.0f; x[2] = -1.5f / 127.0f * 3.0f;
                for (int j = 32; j < 64; ++j) x[j] = 0.0f;
            }
            for (float& v : bias) v = rng.uniform(-1, 1);
            std::vector<uint8_t> w = make_weights(k->w_type, s.N, s.K, rng);
            auto run = [&](const MatmulKernel& kern, int threads, std::vector<float>& y) {
                MatmulArgs a;
                a.x = x.data(); a.ldx = s.K; a.M = s.M; a.K = s.K; a.N = s.N;
                a.w = w.data(); a.w_type = kern.w_type; a.bias = bias.data(); a.y = y.data(); a.ldy = s.N;
                run_packed(kern, a, threads);
            };
            std::vector<float> want(static_cast<size_t>(s.M * s.N)), got1(want.size()), got2(want.size());
            run(*oracle, 1, want);
            run(*k, 1, got1);
            run(*k, 2, got2);
            // Σ|term_b| per output, from the oracle's own ingredients (quantized x, file weights).
            const int64_t nb = s.K / 32;
            std::vector<float> wrow(static_cast<size_t>(s.K)), xq(x.size());
            std::vector<BlockQ8_0> blocks(static_cast<size_t>(nb));
            for (int64_t m = 0; m < s.M; ++m) {
                quantize_row_q8_0(x.data() + m * s.K, s.K, blocks.data());
                weights_row_to_f32(blocks.data(), DType::q8_0, s.K, 0, xq.data() + m * s.K);
            }
            for (int64_t n = 0; n < s.N; ++n) {
                weights_row_to_f32(w.data(), k->w_type, s.K, n, wrow.data());
                for (int64_t m = 0; m < s.M; ++m) {
                    double mag = std::fabs(bias[n]);
                    for (int64_t kk = 0; kk < s.K; ++kk) mag += std::fabs(static_cast<double>(xq[m * s.K + kk]) * wrow[kk]);
                    const double tol = mag * static_cast<double>(nb + 1) * std::ldexp(1.0, -24);
                    const double e1 = std::fabs(static_cast<double>(got1[m * s.N + n]) - want[m * s.N + n]);
                    REQUIRE_MESSAGE(e1 <= tol, k->name << " M=" << s.M << " K=" << s.K << " N=" << s.N << " y[" << m << "]["
                                                       << n << "] = " << got1[m * s.N + n] << ", oracle "
                                                       << want[m * s.N + n]);
                    REQUIRE_MESSAGE(got2[m * s.N + n] == got1[m * s.N + n], k->name << ": 1 vs 2 threads differ at ["
                                                                                    << m << "][" << n << "]");
                }
            }
            ++compared;
        }
    }
    MESSAGE("compared " << compared << " kernel/shape pairs with the oracle");
}

// Work is split over N without changing any output's arithmetic, so every
// kernel must give bit-identical results for 1, 2 and 3 threads (decode, a
// tail-heavy prefill and an encoder-like row count).
TEST_CASE("every matmul kernel gives identical outputs for any thread count") {
    int checked = 0;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (!runnable(*k)) continue;
        for (MatmulShape s : {MatmulShape{1, 576, 200}, MatmulShape{37, 288, 97}, MatmulShape{130, 768, 130}}) {
            if (k->supports && !k->supports(s.M, s.K, s.N)) continue;
            Rng rng{static_cast<uint64_t>(s.M * 7 + s.N)};
            std::vector<float> x(static_cast<size_t>(s.M * s.K)), bias(static_cast<size_t>(s.N));
            for (float& v : x) v = rng.uniform(-2, 2);
            for (float& v : bias) v = rng.uniform(-1, 1);
            std::vector<uint8_t> w = make_weights(k->w_type, s.N, s.K, rng);
            uint8_t* packed = nullptr;
            if (k->pack) {
                packed = aligned_buffer_alloc(static_cast<size_t>(k->packed_bytes(s.N, s.K)));
                k->pack(w.data(), s.N, s.K, packed);
            }
            std::vector<float> first;
            for (int threads : {1, 2, 3}) {
                uint8_t* scratch = k->scratch_bytes
                                       ? aligned_buffer_alloc(static_cast<size_t>(k->scratch_bytes(s.M, s.K, s.N, threads)) + 64)
                                       : nullptr;
                std::vector<float> y(static_cast<size_t>(s.M * s.N), -3.0f);
                MatmulArgs a;
                a.x = x.data(); a.ldx = s.K; a.M = s.M; a.K = s.K; a.N = s.N;
                a.w = w.data(); a.w_type = k->w_type; a.packed = packed; a.bias = bias.data();
                a.y = y.data(); a.ldy = s.N; a.scratch = scratch;
                ThreadPool pool(threads);
                k->run(a, &pool);
                aligned_buffer_free(scratch);
                if (first.empty()) first = y;
                else CHECK_MESSAGE(std::memcmp(first.data(), y.data(), y.size() * 4) == 0,
                                   k->name << " M=" << s.M << " K=" << s.K << " N=" << s.N << ": " << threads
                                           << " threads differ from 1");
            }
            aligned_buffer_free(packed);
            ++checked;
        }
    }
    MESSAGE("checked " << checked << " kernel/shape pairs");
}

// Kernels declaring MatmulActivations::f16 promise ggml's f16-weight numerics: x rounded to
// f16 (nearest even), then f16·f16 products summed in f32. Oracle: matmul_ref (double sums)
// on x rounded to f16 by runtime/fp16.h's bit-exact conversion, which is independent of the
// kernels' F16C/AMX code. Tolerance: f32 accumulation only, 1e-5·S (S = Σ|x̃_k·w_k| + |bias|);
// products of two f16 values are exact in f32, so only the summation order differs.
// The activations sit 0.4 ulp above f16 values, so a kernel that skipped or misrounded the
// f16 step is off by ~2.6e-4·S: the test also checks that the unrounded result is outside
// the tolerance for these inputs.
TEST_CASE("f16-activation kernels round x to f16 as ggml does") {
    int compared = 0;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (k->activations != MatmulActivations::f16 || k->w_type != DType::f16) continue;
        if (!runnable(*k)) continue;
        for (MatmulShape s : {MatmulShape{1, 768, 40}, MatmulShape{7, 288, 17}, MatmulShape{100, 1536, 33}}) {
            if (k->supports && !k->supports(s.M, s.K, s.N)) continue;
            Rng rng{static_cast<uint64_t>(s.M * 131 + s.K * 3 + s.N)};
            std::vector<float> x(static_cast<size_t>(s.M * s.K)), xr(x.size()), bias(static_cast<size_t>(s.N));
            // x = an f16 value in [0.5, 1) plus 0.4 of its ulp (2^-11), one sign per row: the f16
            // rounding moves every term the same way (by ~2.6e-4 of it), 25× the tolerance
            for (size_t i = 0; i < x.size(); ++i) {
                const float sign = (i / static_cast<size_t>(s.K)) % 2 ? -1.0f : 1.0f;
                const float h = round_to_f16(rng.uniform(0.5f, 0.999f));
                x[i] = sign * (h + 0.4f * std::ldexp(1.0f, -11));
                xr[i] = round_to_f16(x[i]);
            }
            for (float& v : bias) v = rng.uniform(-1, 1);
            std::vector<uint8_t> w = make_weights(DType::f16, s.N, s.K, rng);
            for (size_t i = 0; i < w.size(); i += 2) w[i + 1] &= 0x7f;  // all weights >= 0: no cancellation either
            MatmulArgs a;
            a.ldx = s.K; a.M = s.M; a.K = s.K; a.N = s.N; a.w = w.data(); a.w_type = DType::f16;
            a.bias = bias.data(); a.ldy = s.N;
            std::vector<float> want(static_cast<size_t>(s.M * s.N)), unrounded(want.size()), got(want.size());
            a.x = xr.data(); a.y = want.data();
            matmul_ref(a, nullptr);
            a.x = x.data(); a.y = unrounded.data();
            matmul_ref(a, nullptr);
            uint8_t* packed = nullptr;
            if (k->pack) {
                packed = aligned_buffer_alloc(static_cast<size_t>(k->packed_bytes(s.N, s.K)));
                k->pack(w.data(), s.N, s.K, packed);
            }
            uint8_t* scratch =
                k->scratch_bytes ? aligned_buffer_alloc(static_cast<size_t>(k->scratch_bytes(s.M, s.K, s.N, 2)) + 64) : nullptr;
            a.x = x.data(); a.y = got.data(); a.packed = packed; a.scratch = scratch;
            ThreadPool pool(2);
            k->run(a, &pool);
            aligned_buffer_free(packed);
            aligned_buffer_free(scratch);
            std::vector<float> wrow(static_cast<size_t>(s.K));
            int discriminating = 0;
            for (int64_t n = 0; n < s.N; ++n) {
                weights_row_to_f32(w.data(), DType::f16, s.K, n, wrow.data());
                for (int64_t m = 0; m < s.M; ++m) {
                    double mag = std::fabs(bias[n]);
                    for (int64_t kk = 0; kk < s.K; ++kk) mag += std::fabs(static_cast<double>(xr[m * s.K + kk]) * wrow[kk]);
                    const double tol = 1e-5 * mag;
                    const size_t i = static_cast<size_t>(m * s.N + n);
                    if (std::fabs(static_cast<double>(unrounded[i]) - want[i]) > tol) ++discriminating;
                    REQUIRE_MESSAGE(std::fabs(static_cast<double>(got[i]) - want[i]) <= tol,
                                    k->name << " M=" << s.M << " K=" << s.K << " N=" << s.N << " y[" << m << "][" << n
                                            << "] = " << got[i] << ", f16-rounded oracle " << want[i]
                                            << ", unrounded " << unrounded[i]);
                }
            }
            // most outputs tell the rounded and the unrounded product apart at this tolerance
            CHECK_MESSAGE(discriminating * 2 > s.M * s.N, "inputs do not discriminate: " << discriminating);
            ++compared;
        }
    }
    MESSAGE("compared " << compared << " kernel/shape pairs with the f16-rounded oracle");
#if defined(__x86_64__)
    if (isa_usable(Isa::avx2)) CHECK(compared >= 3);
#endif
}

// The W8A8 kernels for Q8_0 and Q4_0 weights (q8_0_q8_0_* and q4_0_q8_0_*: AVX2, AVX-512
// VNNI, AMX; NEON, dotprod, i8mm) on the tails of the many-row AVX2 GEMM's blocking (3-row
// register tiles, 16-row panels, row blocks of 126 rows at K = 768, 30 at K = 3072, 128 at
// K = 32; fewer than 8 rows and K > 4096 go to the older kernel), the 4x4 ARM tiles, and on
// extreme blocks: q8_0 weights -128 (the file format allows them; ggml's quantizer never
// writes them) and q4_0 nibbles 0 (value -8) against activations quantized to ±127, where an
// int16 pair sum or a saturating product would break. The activations are exactly
// representable: every block is q·2^e with integers q in [-127, 127] and one |q| = 127, so
// x86's inverse scale 127/amax and ARM's 1/d (ops/quantize_activations_neon.h) both give
// q exactly, and the kernels of both architectures see the oracle's quants. Every block
// product and scale product is exact and blocks are summed in order with one FMA, so each
// output must equal the scalar oracle bit for bit, for 1 and 3 threads; and one output is
// checked against its closed form.
TEST_CASE("Q8_0/Q4_0 W8A8 kernels: exact on extreme blocks and on every tile and row-block tail") {
    const MatmulShape shapes[] = {{1, 32, 8},     {7, 64, 9},       {8, 32, 17},    {9, 256, 16},   {13, 96, 8},
                            {127, 768, 23}, {131, 32, 40},    {130, 3072, 24}, {9, 4128, 16}, {5, 32, 1},
                            {3, 4128, 7}};
    int compared = 0;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (k->activations != MatmulActivations::q8_0 || k->isa == Isa::scalar) continue;
        if (k->w_type != DType::q8_0 && k->w_type != DType::q4_0) continue;
        if (!runnable(*k)) continue;
        const bool q4 = k->w_type == DType::q4_0;
        const MatmulKernel* oracle = find_matmul_kernel(q4 ? "q4_0_q8_0__scalar" : "q8_0_q8_0__scalar");
        REQUIRE(oracle != nullptr);
        for (MatmulShape s : shapes) {
            Rng rng{static_cast<uint64_t>(s.M * 131 + s.K * 17 + s.N)};
            const int64_t nb = s.K / 32;
            // Weights: random bytes over all of [-128, 127] (q4_0: all nibbles), random f16
            // scales; row 0 all -128 (q4_0: all -8) with d = 1, so x = +1 everywhere gives
            // sumi = -128·127·32 (q4_0: -8·127·32) per block.
            const int64_t block_bytes = q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
            std::vector<uint8_t> w(static_cast<size_t>(s.N * nb * block_bytes));
            for (int64_t i = 0; i < s.N * nb; ++i) {
                uint8_t* blk = w.data() + i * block_bytes;
                const uint16_t d = f32_to_f16(i < nb ? 1.0f : rng.uniform(0.001f, 0.05f));
                std::memcpy(blk, &d, 2);
                for (int64_t j = 2; j < block_bytes; ++j) {
                    blk[j] = i < nb ? (q4 ? 0x00 : 0x80) : static_cast<uint8_t>(rng.integer(0, 256));
                }
            }
            // Activations: row 0 all +1 (quantized to 127 with d = f16(1/127)); row 1 (if any)
            // alternating ±1000; row 2 all -1 with an all-zero block; the rest q·2^e per block.
            std::vector<float> x(static_cast<size_t>(s.M * s.K)), bias(static_cast<size_t>(s.N));
            for (int64_t m = 3; m < s.M; ++m) {
                for (int64_t b = 0; b < nb; ++b) {
                    const float scale = std::ldexp(1.0f, rng.integer(-12, 6));
                    float* xb = x.data() + m * s.K + b * 32;
                    for (int j = 0; j < 32; ++j) xb[j] = static_cast<float>(rng.integer(-127, 128)) * scale;
                    xb[rng.integer(0, 32)] = (rng.uniform(0, 1) < 0.5f ? -127.0f : 127.0f) * scale;
                }
            }
            for (int64_t kk = 0; kk < s.K; ++kk) x[kk] = 1.0f;
            if (s.M > 1)
                for (int64_t kk = 0; kk < s.K; ++kk) x[s.K + kk] = kk % 2 ? -1000.0f : 1000.0f;
            if (s.M > 2)
                for (int64_t kk = 0; kk < s.K; ++kk) x[2 * s.K + kk] = kk >= 32 && kk < 64 ? 0.0f : -1.0f;
            for (float& v : bias) v = rng.uniform(-1, 1);
            const bool with_bias = s.M % 2 == 1;  // the closed form below needs bias = 0
            auto run = [&](const MatmulKernel& kern, int threads) {
                std::vector<float> y(static_cast<size_t>(s.M * s.N), -7.0f);
                MatmulArgs a;
                a.x = x.data(); a.ldx = s.K; a.M = s.M; a.K = s.K; a.N = s.N;
                a.w = w.data(); a.w_type = kern.w_type; a.bias = with_bias ? bias.data() : nullptr;
                a.y = y.data(); a.ldy = s.N;
                run_packed(kern, a, threads);
                return y;
            };
            const std::vector<float> want = run(*oracle, 1);
            for (int threads : {1, 3}) {
                const std::vector<float> got = run(*k, threads);
                for (int64_t i = 0; i < s.M * s.N; ++i) {
                    REQUIRE_MESSAGE(got[i] == want[i], k->name << " M=" << s.M << " K=" << s.K << " N=" << s.N
                                                             << " threads=" << threads << ": y[" << i / s.N << "]["
                                                             << i % s.N << "] = " << got[i] << ", oracle " << want[i]);
                }
            }
            if (!with_bias && nb <= 8) {
                // nb equal exact terms wmin·127·32 · f16(1/127): every partial sum is exact
                const double dx = f16_to_f32(f32_to_f16(1.0f / 127.0f));
                CHECK(want[0] == static_cast<float>(static_cast<double>(nb) * (q4 ? -8 : -128) * 127 * 32 * dx));
            }
            ++compared;
        }
    }
    // Under GLIMPSE_MAX_ISA=scalar no SIMD W8A8 kernel is usable; from AVX2 (x86) or NEON up at
    // least one must be.
    if (isa_usable(Isa::avx2) || isa_usable(Isa::neon)) CHECK(compared > 0);
    MESSAGE("compared " << compared << " kernel/shape pairs bit for bit with the oracle");
}
