// Library matmul providers (ops/providers/): behaviour the generic kernel test
// (test_matmul_kernels.cpp, which checks every entry against matmul_ref) does not
// cover:
//   - each provider compiled in reports available() on this machine, and its packed
//     state really is the library's (not the reference fallback);
//   - one packing serves runs with different row counts M and thread counts, and
//     every run matches matmul_ref (tolerance from the kernel's activation class,
//     derived in test_matmul_kernels.cpp);
//   - run() makes no heap allocations (operator new and malloc are both counted;
//     XNNPACK allocates with malloc), except oneDNN's documented per-execute ones,
//     which are bounded here;
//   - oneDNN never starts OpenMP threads (its primitives are single-threaded and
//     glimpse's ThreadPool runs them).
#include <doctest/doctest.h>

#include <dirent.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "ops/providers/providers.h"
#include "ops/weights.h"
#include "runtime/aligned_buffer.h"
#include "runtime/fp16.h"
#include "test_util.h"

// ---------------------------------------------------------------------------
// Counting allocators: operator new (as test_graph.cpp) and the C allocator, which
// C libraries (XNNPACK, libgomp) use directly.
#define GLIMPSE_COUNT_C_ALLOCATIONS 1
#include "alloc_counter.h"

using namespace glimpse;

namespace {

using test::Rng;

std::vector<const MatmulKernel*> providers() {
    std::vector<const MatmulKernel*> out;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (is_matmul_provider(*k)) out.push_back(k);
    }
    return out;
}

bool usable(const MatmulKernel& k) { return isa_usable(k.isa) && (!k.available || k.available()); }

std::vector<uint8_t> make_weights(DType type, int64_t N, int64_t K, Rng& rng) {
    std::vector<uint8_t> out(static_cast<size_t>(dtype_row_bytes(type, K) * N));
    for (int64_t i = 0; i < N * K; ++i) {
        const float v = rng.uniform(-1, 1);
        if (type == DType::f32) {
            std::memcpy(out.data() + 4 * i, &v, 4);
        } else {
            const uint16_t h = type == DType::f16 ? f32_to_f16(v) : f32_to_bf16(v);
            std::memcpy(out.data() + 2 * i, &h, 2);
        }
    }
    return out;
}

// The tolerance of test_matmul_kernels.cpp for one output (see its header).
double tolerance(MatmulActivations a, const float* x, const float* w, int64_t K, float bias) {
    double s = std::fabs(bias), xs = 0, ws = 0, xm = 0, wm = 0;
    for (int64_t k = 0; k < K; ++k) {
        s += std::fabs(static_cast<double>(x[k]) * w[k]);
        xs += std::fabs(x[k]);
        ws += std::fabs(w[k]);
        xm = std::max(xm, static_cast<double>(std::fabs(x[k])));
        wm = std::max(wm, static_cast<double>(std::fabs(w[k])));
    }
    double extra = 0;
    switch (a) {
        case MatmulActivations::f32: break;
        case MatmulActivations::bf16: extra = s * std::ldexp(1.0, -8); break;
        case MatmulActivations::bf16_bf16w: extra = s * (std::ldexp(1.0, -7) + std::ldexp(1.0, -16)); break;
        case MatmulActivations::s8_row_s8w: {
            const double dx = xm / 127, dw = wm / 127;
            extra = ws * dx / 2 + xs * dw / 2 + static_cast<double>(K) * dx * dw / 4;
            break;
        }
        default: FAIL("no tolerance for this activation class in test_providers"); break;
    }
    return 1e-5 * s + 1e-6 + extra;
}

int count_threads() {
    int n = 0;
    if (DIR* d = opendir("/proc/self/task")) {
        while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
        closedir(d);
    }
    return n;
}

}  // namespace

TEST_CASE("providers compiled in are available and pack into the library's own state") {
    const std::vector<const MatmulKernel*> ps = providers();
    MESSAGE("providers: " << matmul_provider_versions() << "; " << ps.size() << " entries");
#if defined(GLIMPSE_HAVE_ONEDNN) || defined(GLIMPSE_HAVE_XNNPACK) || defined(GLIMPSE_HAVE_EIGEN)
    CHECK(!ps.empty());
#endif
    for (const MatmulKernel* k : ps) {
        CAPTURE(std::string(k->name));
        CHECK(k->priority < 0);  // never chosen by priority alone (see ops/matmul_decisions.inc)
        if (!isa_usable(k->isa)) continue;
        // On x86-64 and aarch64 every library we link supports the CPU.
        CHECK((!k->available || k->available()));
        if (!usable(*k) || !k->pack) continue;
        const int64_t N = 96, K = 64;
        Rng rng{7};
        std::vector<uint8_t> w = make_weights(k->w_type, N, K, rng);
        uint8_t* packed = aligned_buffer_alloc(static_cast<size_t>(k->packed_bytes(N, K)));
        REQUIRE(packed != nullptr);
        k->pack(w.data(), N, K, packed);
        const std::string impl = matmul_provider_impl(*k, packed);
        MESSAGE(std::string(k->name) << ": " << impl);
        CHECK(!impl.empty());
        CHECK(impl.find("unavailable") == std::string::npos);
        CHECK(impl.find("outside the packed buffer") == std::string::npos);
        aligned_buffer_free(packed);
    }
}

TEST_CASE("the allocation counter sees C and C++ allocations made on pool workers") {
    // The "no allocations in run()" check below is only as good as the counter: in every build
    // (operator new + malloc replaced; under ASan a malloc hook that skips only ASan's own
    // thread start), an allocation on a worker thread or through the C allocator must count.
    ThreadPool pool(3);
    pool.parallel_for(64, [](int64_t, int64_t, int) {});  // workers started
    const long before = g_allocations.load();
    std::atomic<int> chunks{0};
    pool.parallel_for(64, [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) {
            // Through a volatile sink, or the compiler may elide the new/delete and malloc/free pairs.
            static void* volatile sink;
            int* boxed = new int(static_cast<int>(i));
            sink = boxed;
            delete boxed;
            void* raw = std::malloc(16);
            sink = raw;
            std::free(raw);
        }
        chunks.fetch_add(1);
    });
    const long counted = g_allocations.load() - before;
    CHECK(chunks.load() >= 1);
    CHECK(counted >= 2 * 64);
}

TEST_CASE("one packing serves every M and thread count, without allocating in run()") {
    // (M_max, K, N) shapes: an encoder-like GEMM and a decoder-like projection.
    struct Shape {
        int64_t M_max, K, N;
    };
    const Shape shapes[] = {{96, 256, 160}, {40, 576, 200}};
    const int64_t Ms[] = {1, 7, 96, 33, 2, 64, 1, 17};
    long max_onednn_allocs = 0;
    for (const MatmulKernel* k : providers()) {
        if (!usable(*k)) continue;
        CAPTURE(std::string(k->name));
        for (const Shape& sh : shapes) {
            const int64_t K = sh.K, N = sh.N;
            Rng rng{static_cast<uint64_t>(K * 31 + N)};
            std::vector<uint8_t> w = make_weights(k->w_type, N, K, rng);
            std::vector<float> x(static_cast<size_t>(sh.M_max * K)), bias(static_cast<size_t>(N));
            for (float& v : x) v = rng.uniform(-2, 2);
            for (float& v : bias) v = rng.uniform(-1, 1);
            uint8_t* packed = nullptr;
            if (k->pack) {
                packed = aligned_buffer_alloc(static_cast<size_t>(k->packed_bytes(N, K)));
                k->pack(w.data(), N, K, packed);
            }
            const std::string impl_before = packed ? matmul_provider_impl(*k, packed) : "";
            std::vector<float> wrow(static_cast<size_t>(N * K));
            for (int64_t n = 0; n < N; ++n) weights_row_to_f32(w.data(), k->w_type, K, n, wrow.data() + n * K);

            for (int threads : {1, 2, 3}) {
                CAPTURE(threads);
                ThreadPool pool(threads);
                const int64_t sbytes = k->scratch_bytes ? k->scratch_bytes(sh.M_max, K, N, threads) : 0;
                uint8_t* scratch = aligned_buffer_alloc(static_cast<size_t>(sbytes) + 64);
                std::vector<float> y(static_cast<size_t>(sh.M_max * N)), ref(y.size());
                MatmulArgs a = dense_matmul_args(*k, x.data(), w.data(), packed, bias.data(), y.data(), scratch, sh.M_max, K, N);
                // Warm up once per thread count (pool threads start, libraries set up
                // per-thread state), then count.
                k->run(a, &pool);
                for (int64_t M : Ms) {
                    if (M > sh.M_max) continue;
                    CAPTURE(M);
                    a.M = M;
                    a.bias = (M % 2) ? bias.data() : nullptr;
                    a.y = y.data();
                    std::fill(y.begin(), y.end(), -7.0f);
                    const long before = g_allocations.load();
#if defined(GLIMPSE_TEST_ASAN)
                    static const bool trace = std::getenv("GLIMPSE_TRACE_ALLOCATIONS") != nullptr;
                    g_trace_allocations.store(trace);
#endif
                    k->run(a, &pool);
                    const long allocs = g_allocations.load() - before;
#if defined(GLIMPSE_TEST_ASAN)
                    g_trace_allocations.store(false);
#endif
                    if (matmul_provider_allocates_in_run(*k)) {
                        // oneDNN: a few per primitive execute; at most ~11 executes per part here.
                        CHECK(allocs <= 64 * threads);
                        max_onednn_allocs = std::max(max_onednn_allocs, allocs);
                    } else {
                        CHECK(allocs == 0);
                    }
                    a.y = ref.data();
                    matmul_ref(a, nullptr);
                    int bad = 0;
                    for (int64_t m = 0; m < M && bad < 3; ++m) {
                        for (int64_t n = 0; n < N && bad < 3; ++n) {
                            const double tol = tolerance(k->activations, x.data() + m * K, wrow.data() + n * K, K,
                                                         a.bias ? a.bias[n] : 0.0f);
                            const double err = std::fabs(static_cast<double>(y[m * N + n]) - ref[m * N + n]);
                            if (!(err <= tol)) {
                                ++bad;
                                FAIL_CHECK("y[" << m << "][" << n << "] = " << y[m * N + n] << ", reference "
                                                << ref[m * N + n] << ", |err| " << err << " > " << tol);
                            }
                        }
                    }
                    // Rows past M are untouched.
                    for (int64_t i = M * N; i < sh.M_max * N && bad < 3; ++i) {
                        if (y[i] != -7.0f) {
                            ++bad;
                            FAIL_CHECK("wrote past row M at element " << i);
                        }
                    }
                }
                aligned_buffer_free(scratch);
            }
            if (packed) CHECK(matmul_provider_impl(*k, packed) == impl_before);  // state unchanged by runs
            aligned_buffer_free(packed);
        }
    }
    if (max_onednn_allocs) MESSAGE("oneDNN: at most " << max_onednn_allocs << " heap allocations in one run() (exec_ctx_t)");
}

TEST_CASE("oneDNN runs on glimpse's threads: no OpenMP team is started") {
    const MatmulKernel* k = find_matmul_kernel("onednn_bf16_f16w__avx512");
    if (!k || !usable(*k)) {
        MESSAGE("oneDNN bf16 provider not usable here; skipped");
        return;
    }
    const int64_t M = 256, K = 512, N = 512;
    Rng rng{3};
    std::vector<uint8_t> w = make_weights(k->w_type, N, K, rng);
    std::vector<float> x(static_cast<size_t>(M * K)), y(static_cast<size_t>(M * N));
    for (float& v : x) v = rng.uniform(-1, 1);
    ThreadPool pool(2);
    const int threads_before = count_threads();
    uint8_t* packed = aligned_buffer_alloc(static_cast<size_t>(k->packed_bytes(N, K)));
    k->pack(w.data(), N, K, packed);
    uint8_t* scratch = aligned_buffer_alloc(static_cast<size_t>(k->scratch_bytes(M, K, N, 2)));
    const MatmulArgs a = dense_matmul_args(*k, x.data(), w.data(), packed, nullptr, y.data(), scratch, M, K, N);
    for (int i = 0; i < 3; ++i) k->run(a, &pool);
    CHECK(count_threads() == threads_before);
    aligned_buffer_free(scratch);
    aligned_buffer_free(packed);
}

// ---------------------------------------------------------------------------
// The decision table (ops/matmul_decisions.inc) read as data.

namespace {

struct DecisionEntry {
    DType w_type;
    std::string shape, policy;
    Isa isa;
    const char* kernel;
};

const DecisionEntry kDecisionEntries[] = {
#define GLIMPSE_MATMUL_DECISION(type, shape, isa, kernel, policy) {DType::type, #shape, #policy, Isa::isa, kernel},
#include "ops/matmul_decisions.inc"
#undef GLIMPSE_MATMUL_DECISION
    {DType::f32, "", "", Isa::scalar, nullptr},  // end marker
};

// Coarseness of a kernel's arithmetic (its error bound in test_matmul_kernels.cpp).
int coarseness(MatmulActivations a) {
    switch (a) {
        case MatmulActivations::f32: return 0;
        case MatmulActivations::f16: return 1;
        case MatmulActivations::bf16: return 2;
        case MatmulActivations::bf16_bf16w: return 3;
        case MatmulActivations::q8_0:
        case MatmulActivations::q8_1:
        case MatmulActivations::q8_k: return 3;
        case MatmulActivations::s8_row_s8w: return 4;
    }
    return 5;
}

// The priority rule alone (select_matmul_kernel without the table).
const MatmulKernel* priority_choice(DType t, int64_t M, int64_t K, int64_t N) {
    const MatmulKernel* best = nullptr;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (k->w_type != t || !isa_usable(k->isa)) continue;
        if (k->supports && !k->supports(M, K, N)) continue;
        if (k->available && !k->available()) continue;
        if (!best || k->priority >= best->priority) best = k;
    }
    return best;
}

bool compiled_here(const std::string& name) {
    auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
#if !defined(GLIMPSE_HAVE_ONEDNN)
    if (starts("onednn_")) return false;
#endif
#if !defined(GLIMPSE_HAVE_XNNPACK)
    if (starts("xnnpack_")) return false;
#endif
#if !defined(GLIMPSE_HAVE_EIGEN)
    if (starts("eigen_")) return false;
#endif
    (void)starts;
    return true;
}

}  // namespace

TEST_CASE("decision table: entries name real kernels, declare their policy honestly, and are what selection returns") {
    const char* env = std::getenv("GLIMPSE_MATMUL_DECISIONS");
    const std::string mode = env && *env ? env : "exact";
    const Isa saved = active_isa();
    int checked = 0;
    for (const DecisionEntry& d : kDecisionEntries) {
        if (!d.kernel) continue;
        CAPTURE(std::string(d.kernel));
        CAPTURE(d.shape);
        CHECK((d.policy == "exact" || d.policy == "fast"));
        CHECK((d.shape == "decode" || d.shape == "small" || d.shape == "large"));
        const MatmulKernel* k = find_matmul_kernel(d.kernel);
#if defined(__aarch64__)
        const bool other_arch = d.isa != Isa::scalar && d.isa < Isa::neon;
#else
        const bool other_arch = d.isa >= Isa::neon;
#endif
        if (!k) {
            CHECK_MESSAGE((!compiled_here(d.kernel) || other_arch), "decision names an unknown kernel");
            continue;
        }
        CHECK(k->w_type == d.w_type);
        if (!isa_usable(d.isa) || d.isa > cpu_features().best_isa()) continue;  // cannot emulate that level here
        set_active_isa_for_testing(d.isa);
        const int64_t M = d.shape == "decode" ? 1 : d.shape == "small" ? 64 : 512, K = 768, N = 768;
        const MatmulKernel* prio = priority_choice(d.w_type, M, K, N);
        REQUIRE(prio != nullptr);
        const bool coarser = coarseness(k->activations) > coarseness(prio->activations);
        const bool allocates = is_matmul_provider(*k) && matmul_provider_allocates_in_run(*k);
        if (d.policy == "exact") {
            CHECK_MESSAGE(!coarser, "`exact` entry is coarser than the priority choice " << std::string(prio->name));
            CHECK_MESSAGE(!allocates, "`exact` entry allocates in run()");
        } else {
            CHECK_MESSAGE((coarser || allocates), "`fast` entry is neither coarser than " << std::string(prio->name)
                                                                                      << " nor allocating: make it exact");
        }
        // The first applicable entry for its key is what the plan gets.
        auto applies = [&](const DecisionEntry& e) {
            if (mode == "off" || (mode != "fast" && e.policy != "exact")) return false;
            const MatmulKernel* ek = find_matmul_kernel(e.kernel);
            return ek && isa_usable(ek->isa) && (!ek->available || ek->available()) &&
                   (!ek->supports || ek->supports(M, K, N));
        };
        bool first = true;
        for (const DecisionEntry& e : kDecisionEntries) {
            if (&e == &d) break;
            if (e.kernel && e.w_type == d.w_type && e.shape == d.shape && e.isa == d.isa && applies(e)) first = false;
        }
        if (first && applies(d)) CHECK(select_matmul_kernel(d.w_type, M, K, N) == k);
        ++checked;
        set_active_isa_for_testing(saved);
    }
    set_active_isa_for_testing(saved);
    MESSAGE(checked << " decision entries checked at levels this CPU has");
    // Tiny shapes (test and toy models) are never decided: the priority rule stands.
    for (DType t : {DType::f32, DType::f16, DType::bf16}) CHECK(select_matmul_kernel(t, 512, 64, 128) == priority_choice(t, 512, 64, 128));
}
