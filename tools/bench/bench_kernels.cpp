// glimpse-bench kernels: every usable kernel of the registry (ops/kernel_registry.h):
// matmul kernels on the SmolVLM shapes, the other op families on one case each.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "ops/attention_kvq.h"
#include "ops/kernel_registry.h"
#include "ops/prune_score.h"
#include "ops/matmul.h"
#include "ops/topk.h"
#include "ops/providers/providers.h"
#include "quant/quantize.h"
#include "runtime/aligned_buffer.h"
#include "runtime/fp16.h"
#include "targets/cpu_features.h"
#include "tools/bench/bench_common.h"
#include "tools/bench/bench_shapes.h"

namespace glimpse::bench {

namespace {

const char* activations_name(MatmulActivations a) {
    switch (a) {
        case MatmulActivations::f32: return "f32";
        case MatmulActivations::f16: return "f16";
        case MatmulActivations::bf16: return "bf16";
        case MatmulActivations::q8_0: return "q8_0";
        case MatmulActivations::q8_1: return "q8_1";
        case MatmulActivations::q8_k: return "q8_k";
        case MatmulActivations::bf16_bf16w: return "bf16_bf16w";
        case MatmulActivations::s8_row_s8w: return "s8_row_s8w";
    }
    return "?";
}

struct Lcg {
    uint64_t s;
    float next() {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<float>((s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
    }
};

bool can_make(DType t) {
    return t == DType::f32 || t == DType::f16 || t == DType::bf16 || quantize_supported(t);
}

// Random weights (N, K) stored as `t`, std 0.02-ish like the models.
std::vector<uint8_t> make_weights(DType t, int64_t N, int64_t K, uint64_t seed) {
    Lcg rng{seed};
    const int64_t row_bytes = dtype_row_bytes(t, K);
    std::vector<uint8_t> out(static_cast<size_t>(row_bytes * N) + 64);
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = 0; n < N; ++n) {
        for (float& v : row) v = 0.05f * rng.next();
        quantize_row(t, row.data(), out.data() + n * row_bytes, K);  // f32, f16 and bf16 too
    }
    return out;
}

// One timed case per non-matmul op family (SmolVLM-sized): a family's new variants are
// benchmarked here without an edit; a new family adds its case. Buffers are sized for
// the largest case and filled with values in [-1, 1).
struct OpCase {
    const char* shape;  // e.g. "T1024xC768"
    double elements;    // values produced per call (throughput = elements / time)
    std::function<void(const Kernel&, ThreadPool*)> run;
};

struct OpBuffers {
    std::vector<float> a, b, c, y;
    std::vector<int32_t> pos, idx;
    uint8_t* scratch = nullptr;
    std::vector<uint8_t> w16;
    explicit OpBuffers(int64_t n, int64_t scratch_bytes) : a(n), b(n), c(n), y(n), pos(4096), idx(n) {
        Lcg rng{7};
        for (int64_t i = 0; i < n; ++i) a[i] = rng.next(), b[i] = rng.next(), c[i] = rng.next();
        for (int32_t i = 0; i < 4096; ++i) pos[i] = i;
        scratch = aligned_buffer_alloc(static_cast<size_t>(scratch_bytes));
        w16.resize(static_cast<size_t>(n) * 2);
        for (int64_t i = 0; i < n; ++i) {
            const uint16_t h = f32_to_f16(a[i]);
            std::memcpy(&w16[2 * i], &h, 2);
        }
    }
    ~OpBuffers() { aligned_buffer_free(scratch); }
};

std::vector<OpCase> op_cases(OpFamily op, OpBuffers& m) {
    const int64_t T = 1024, C = 768;  // SigLIP-B/16 at 512²: 1024 patches of 768
    switch (op) {
        case OpFamily::matmul: return {};
        case OpFamily::layer_norm:
            return {{"T1024xC768", double(T * C), [&m](const Kernel& k, ThreadPool* p) {
                         k.fn.layer_norm(m.a.data(), 1024, 768, m.b.data(), m.c.data(), 1e-6f, m.y.data(), p);
                     }}};
        case OpFamily::rms_norm:
            return {{"T1024xC768", double(T * C), [&m](const Kernel& k, ThreadPool* p) {
                         k.fn.rms_norm(m.a.data(), 1024, 768, m.b.data(), 1e-6f, m.y.data(), p);
                     }}};
        case OpFamily::unary:
            return {{"gelu_tanh_n3145728", 3145728.0, [&m](const Kernel& k, ThreadPool* p) {
                         k.fn.unary(UnaryOp::gelu_tanh, m.a.data(), 3145728, m.y.data(), p);
                     }}};
        case OpFamily::swiglu:
            return {{"n98304", 98304.0, [&m](const Kernel& k, ThreadPool* p) {
                         k.fn.swiglu(m.a.data(), m.b.data(), 98304, m.y.data(), p);
                     }}};
        case OpFamily::add:
            return {{"T1024xC768", double(T * C), [&m](const Kernel& k, ThreadPool* p) {
                         k.fn.add(m.a.data(), m.b.data(), 1024, 768, 1024, m.y.data(), p);
                     }}};
        case OpFamily::mul:
            return {{"T1024xC768", double(T * C), [&m](const Kernel& k, ThreadPool* p) {
                         k.fn.mul(m.a.data(), m.b.data(), 1024, 768, 1, m.y.data(), p);
                     }}};
        case OpFamily::rope:  // SmolLM2-135M: 9 heads of 64, a 256-token prefill
            return {{"T256xH9xD64", 256.0 * 576, [&m](const Kernel& k, ThreadPool* p) {
                         k.fn.rope(m.a.data(), m.pos.data(), 256, 9, 64, 64, 100000.0f, m.y.data(), p);
                     }}};
        case OpFamily::attention:  // SigLIP-B: 1024 queries over 1024 keys, 12 heads of 64
            return {{"T1024xS1024xH12xD64", double(T * C), [&m](const Kernel& k, ThreadPool* p) {
                         const AttentionArgs a{.q = m.a.data(), .q_ld = 768, .k = m.b.data(), .v = m.c.data(),
                                               .kv_ld = 768, .out = m.y.data(), .out_ld = 768, .T = 1024, .S = 1024,
                                               .n_head = 12, .n_head_kv = 12, .head_dim = 64, .scale = 0.125f};
                         k.fn.attention(a, reinterpret_cast<float*>(m.scratch), p);
                     }}};
        case OpFamily::weights_row:  // an f16 embedding table: 1024 rows of 768
            return {{"f16_1024x768", double(T * C), [&m](const Kernel& k, ThreadPool*) {
                         for (int64_t r = 0; r < 1024; ++r) k.fn.weights_row(m.w16.data(), DType::f16, 768, r, m.y.data() + r * 768);
                     }}};
        case OpFamily::topk: {  // pruning: keep a quarter of a tile's 1024 patches, or of 4096
            std::vector<OpCase> cases;
            for (int64_t n : {int64_t{1024}, int64_t{4096}}) {
                cases.push_back({n == 1024 ? "n1024_k256" : "n4096_k1024", double(n), [&m, n](const Kernel& k, ThreadPool*) {
                                     k.fn.topk(m.a.data(), n, n / 4, m.idx.data(), m.scratch);
                                 }});
            }
            return cases;
        }
        case OpFamily::attention_kvq: {
            // SmolVLM-256M's decoder (9 heads / 3 KV heads of 64) over a quantized KV cache:
            // decode at 4,096 tokens (q8_0, q4_0) and a 512-token causal prefill (q8_0).
            std::vector<OpCase> cases;
            struct Kvq {
                const char* shape;
                DType type;
                int64_t T, S;
            };
            for (const Kvq& c : {Kvq{"decode_S4096xH9/3xD64_q8_0", DType::q8_0, 1, 4096},
                                 Kvq{"decode_S4096xH9/3xD64_q4_0", DType::q4_0, 1, 4096},
                                 Kvq{"prefill_T512xH9/3xD64_q8_0", DType::q8_0, 512, 512}}) {
                const int64_t kv_ld = 192, row_bytes = dtype_row_bytes(c.type, kv_ld);
                auto kv = std::make_shared<std::vector<uint8_t>>(2 * c.S * row_bytes);
                for (int64_t s = 0; s < 2 * c.S; ++s) {
                    quantize_row(c.type, m.a.data() + s * kv_ld, kv->data() + s * row_bytes, kv_ld);
                }
                cases.push_back({c.shape, double(c.T * 576), [&m, c, kv, row_bytes](const Kernel& k, ThreadPool* p) {
                                     AttentionArgs a;
                                     a.q = m.b.data();
                                     a.q_ld = 576;
                                     a.k = kv->data();
                                     a.v = kv->data() + c.S * row_bytes;
                                     a.kv_ld = 192;
                                     a.kv_type = c.type;
                                     a.out = m.y.data();
                                     a.out_ld = 576;
                                     a.T = c.T;
                                     a.S = c.S;
                                     a.n_head = 9;
                                     a.n_head_kv = 3;
                                     a.head_dim = 64;
                                     a.scale = 0.125f;
                                     a.causal = true;
                                     a.causal_offset = c.S - c.T;
                                     k.fn.attention_kvq(a, reinterpret_cast<float*>(m.scratch), p);
                                 }});
            }
            return cases;
        }
        case OpFamily::gather_rows:  // keep 256 of 1024 rows of 768
            return {{"T1024xC768_k256", 256.0 * 768, [&m](const Kernel& k, ThreadPool* p) {
                         for (int32_t i = 0; i < 256; ++i) m.idx[i] = 4 * i + 1;
                         k.fn.gather_rows(m.a.data(), 768, m.idx.data(), 256, m.y.data(), p);
                     }}};
        case OpFamily::cosine_similarity: {  // pruning: one SmolVLM chunk (64 x 576), a LLaVA view (576 x 1024 rows)
            std::vector<OpCase> cases;
            cases.push_back({"n64xC576_self", 64.0 * 64, [&m](const Kernel& k, ThreadPool* p) {
                                 k.fn.cosine_similarity(m.a.data(), 64, m.a.data(), 64, 576, m.y.data(), m.scratch, p);
                             }});
            cases.push_back({"n576xC1024_self", 576.0 * 576, [&m](const Kernel& k, ThreadPool* p) {
                                 k.fn.cosine_similarity(m.a.data(), 576, m.a.data(), 576, 1024, m.y.data(), m.scratch, p);
                             }});
            cases.push_back({"n64xm32xC576_text", 64.0 * 32, [&m](const Kernel& k, ThreadPool* p) {
                                 k.fn.cosine_similarity(m.a.data(), 64, m.b.data(), 32, 576, m.y.data(), m.scratch, p);
                             }});
            return cases;
        }
        case OpFamily::tap_scores:  // SigLIP at 512²: 12 heads over 32 x 32 patches, 4 x 4 blocks
            return {{"H12x32x32_s4", 64.0, [&m](const Kernel& k, ThreadPool*) {
                         k.fn.tap_scores(m.a.data(), 12, 1024, 32, 32, 4, false, m.y.data(), m.scratch);
                     }}};
        case OpFamily::merge_rows:  // VisionZip-like: 576 rows of 1024 into 64 slots
            return {{"n576xC1024_k64", 64.0 * 1024, [&m](const Kernel& k, ThreadPool* p) {
                         for (int32_t i = 0; i < 576; ++i) m.idx[i] = i % 9 == 0 ? -1 : i % 64;
                         k.fn.merge_rows(m.a.data(), 576, 1024, m.idx.data(), nullptr, 64, m.y.data(), nullptr, p);
                     }}};
        case OpFamily::query_key_score:  // SmolVLM-256M decoder: last prompt row over 893 keys, 9 heads (3 kv) of 64
            return {{"R1xS893xH9xD64", 893.0 * 9, [&m](const Kernel& k, ThreadPool* p) {
                         const QueryKeyScoreArgs a{.q = m.a.data(), .q_ld = 576, .n_raters = 1, .k = m.b.data(),
                                                   .k_ld = 192, .n_keys = 893, .n_head = 9, .n_head_kv = 3,
                                                   .head_dim = 64, .scale = 0.125f, .out = m.y.data()};
                         k.fn.query_key_score(a, reinterpret_cast<float*>(m.scratch), p);
                     }}};
        case OpFamily::attention_row:  // CLIP-L/336's [CLS] tap: one row over 577 keys, 16 heads of 64
            return {{"S577xH16xD64", 577.0 * 16 * 64, [&m](const Kernel& k, ThreadPool* p) {
                         k.fn.attention_row(m.a.data(), m.b.data(), 577, 1024, 16, 16, 64, 0.125f, m.y.data(), p);
                     }}};
    }
    return {};
}

struct Options {
    std::string filter;
    bool include_ref = false;
    double min_time_ms = 300;
    int max_reps = 50, min_reps = 5;
};

}  // namespace

int cmd_kernels(int argc, char** argv) {
    tools::ArgParser a("glimpse-bench kernels", "[--filter REGEX] [--threads N] [--shapes smolvlm256m|smolvlm500m|all]",
                       "Times every usable registered matmul kernel on the SmolVLM-256M/500M shapes and measures memory\n"
                       "bandwidth. JSON on stdout (schema: tools/bench/README.md), a summary table on stderr.\n"
                       "Decode shapes (M = 1) run cache-cold (caches flushed before every repetition), as a decode\n"
                       "step streams each layer's weights from memory; the others run warm.");
    add_common_options(a);
    a.option("--filter", "REGEX", "only kernels whose name matches (ECMAScript regex, searched)");
    a.option("--shapes", "SET", "smolvlm256m, smolvlm500m or all", "all");
    a.option("--shape-filter", "REGEX", "only shapes whose name matches, e.g. 'enc\\.|conn'");
    a.option("--min-time", "MS", "time each kernel/shape for at least this long", "300");
    a.option("--max-reps", "N", "at most this many timed repetitions", "50");
    a.flag("--include-ref", "also time the scalar kernels (references and oracles; very slow on the big shapes)");
    a.flag("--no-bandwidth", "skip the memory bandwidth measurement");
    RunInfo info;
    if (const std::optional<int> exit_code = parse_command_line(a, argc, argv, "glimpse-bench kernels", &info)) {
        return *exit_code;
    }
    Options opt;
    opt.filter = a.get("--filter");
    opt.include_ref = a.has("--include-ref");
    int64_t max_reps = 50;
    std::string err;
    if (!a.get_float("--min-time", &opt.min_time_ms, &err) || !a.get_int("--max-reps", &max_reps, &err)) {
        std::fprintf(stderr, "glimpse-bench kernels: %s\n", err.c_str());
        return 2;
    }
    opt.max_reps = static_cast<int>(std::max<int64_t>(1, max_reps));
    opt.min_reps = std::min(opt.min_reps, opt.max_reps);
    const std::string set = a.get("--shapes");
    std::vector<BenchShape> shapes;
    if (!bench_shapes(set, &shapes)) {
        std::fprintf(stderr, "glimpse-bench kernels: --shapes must be smolvlm256m, smolvlm500m or all, not '%s'\n",
                     set.c_str());
        return 2;
    }
    std::regex kernel_re, shape_re;
    try {
        kernel_re = std::regex(opt.filter.empty() ? std::string(".*") : opt.filter);
        shape_re = std::regex(a.has("--shape-filter") ? a.get("--shape-filter") : std::string(".*"));
    } catch (const std::regex_error& e) {
        std::fprintf(stderr, "glimpse-bench kernels: bad regex: %s\n", e.what());
        return 2;
    }
    if (Status s = cpu_isa_cap_status(); !s.is_ok()) std::fprintf(stderr, "warning: %s\n", s.message().c_str());

    ThreadPool pool(info.threads);
    Json j;
    j.begin_object();
    write_header(j, "kernels", info);
    j.begin_object("settings");
    j.value("shapes", set);
    j.value("filter", opt.filter);
    j.value("min_time_ms", opt.min_time_ms);
    j.value("max_reps", static_cast<int64_t>(opt.max_reps));
    j.value("include_ref", opt.include_ref);
    j.end_object();

    const int64_t llc = last_level_cache_bytes();
    const int64_t flush_bytes = std::max<int64_t>(2 * llc, int64_t{64} << 20);
    Bandwidth bw;
    if (!a.has("--no-bandwidth")) {
        std::fprintf(stderr, "memory bandwidth (arrays of %lld MiB, %d threads) ...\n",
                     static_cast<long long>(flush_bytes >> 20), info.threads);
        bw = measure_bandwidth(&pool, flush_bytes, 5);
        write_bandwidth(j, bw);
        std::fprintf(stderr, "  read %.1f GB/s, copy %.1f GB/s, triad %.1f GB/s\n", bw.read_gbs, bw.copy_gbs,
                     bw.triad_gbs);
    } else {
        j.null("memory_bandwidth");
    }
    CacheFlusher flusher(flush_bytes);

    std::fprintf(stderr, "%-26s %-30s %5s %6s %6s %10s %9s %9s %s\n", "shape", "kernel", "M", "K", "N", "median ms",
                 "GFLOP/s", "wGB/s", "spread");
    j.begin_array("results");
    std::vector<std::pair<std::string, std::string>> skipped;
    for (const BenchShape& sh : shapes) {
        if (!std::regex_search(sh.name, shape_re)) continue;
        for (const MatmulKernel* k : matmul_kernels()) {
            const std::string name = k->name;
            if (!std::regex_search(name, kernel_re)) continue;
            // The scalar oracles (references, ggml-semantics scalar kernels) take seconds per call.
            const bool is_ref = k->isa == Isa::scalar && !is_matmul_provider(*k);
            if (is_ref && !opt.include_ref) continue;
            if (!isa_usable(k->isa)) {
                skipped.push_back({name, std::string("needs ") + isa_name(k->isa)});
                continue;
            }
            if (k->available && !k->available()) {
                skipped.push_back({name, "library not available"});
                continue;
            }
            if (!can_make(k->w_type)) {
                skipped.push_back({name, std::string("bench cannot make ") + dtype_name(k->w_type) + " weights"});
                continue;
            }
            if (k->supports && !k->supports(sh.M, sh.K, sh.N)) continue;
            const int64_t M = sh.M, K = sh.K, N = sh.N;

            std::vector<uint8_t> w = make_weights(k->w_type, N, K, 1234 + static_cast<uint64_t>(K * 7 + N));
            const int64_t weight_bytes = dtype_row_bytes(k->w_type, K) * N;
            uint8_t* packed = nullptr;
            int64_t packed_bytes = 0;
            double pack_ms = 0;
            if (k->pack) {
                packed_bytes = k->packed_bytes(N, K);
                packed = aligned_buffer_alloc(static_cast<size_t>(packed_bytes));
                const double t0 = now_ms();
                k->pack(w.data(), N, K, packed);
                pack_ms = now_ms() - t0;
            }
            const int64_t scratch_bytes = k->scratch_bytes ? k->scratch_bytes(M, K, N, info.threads) : 0;
            uint8_t* scratch = aligned_buffer_alloc(static_cast<size_t>(scratch_bytes) + 64);
            uint8_t* xbuf = aligned_buffer_alloc(static_cast<size_t>(M * K * 4) + 64);
            uint8_t* ybuf = aligned_buffer_alloc(static_cast<size_t>(M * N * 4) + 64);
            uint8_t* bbuf = aligned_buffer_alloc(static_cast<size_t>(N * 4) + 64);
            float* x = reinterpret_cast<float*>(xbuf);
            Lcg rng{99};
            for (int64_t i = 0; i < M * K; ++i) x[i] = rng.next();
            float* bias = reinterpret_cast<float*>(bbuf);
            for (int64_t i = 0; i < N; ++i) bias[i] = 0.01f * rng.next();

            const MatmulArgs args = dense_matmul_args(*k, x, w.data(), packed, sh.bias ? bias : nullptr,
                                                      reinterpret_cast<float*>(ybuf), scratch, M, K, N);

            const bool cold = M == 1;
            k->run(args, &pool);  // warm-up (first-touch of scratch, library lazy state)
            std::vector<double> samples, cpu_samples;
            double total = 0;
            const double started = now_ms();
            while (static_cast<int>(samples.size()) < opt.max_reps) {
                if (cold) {
                    flusher.flush(&pool);
                    // x and y are what a decode step has hot; the weights are not.
                    volatile float touch = 0;
                    for (int64_t i = 0; i < K; i += 16) touch = touch + x[i];
                }
                const double c0 = thread_cpu_ms();
                const double t0 = now_ms();
                k->run(args, &pool);
                const double dt = now_ms() - t0;
                cpu_samples.push_back(thread_cpu_ms() - c0);
                samples.push_back(dt);
                total += dt;
                const int n = static_cast<int>(samples.size());
                if (n >= opt.min_reps && total >= opt.min_time_ms) break;
                if (n >= 2 && now_ms() - started > 20 * opt.min_time_ms + 10000) break;  // very slow kernels
            }
            const Stats st = stats_of(samples);
            const Stats cst = stats_of(cpu_samples);
            const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
            const double gflops = flops / (st.median * 1e6);
            const double wgbs = static_cast<double>(weight_bytes) / (st.median * 1e6);
            const std::string impl = matmul_provider_impl(*k, packed);

            j.begin_object();
            j.value("kernel", name);
            j.value("isa", isa_name(k->isa));
            j.value("w_type", dtype_name(k->w_type));
            j.value("activations", activations_name(k->activations));
            j.value("priority", static_cast<int64_t>(k->priority));
            j.value("provider", is_matmul_provider(*k));
            j.value("impl", impl);
            j.begin_object("shape");
            j.value("name", sh.name);
            j.value("model", sh.model);
            j.value("class", sh.shape_class);
            j.value("M", M);
            j.value("K", K);
            j.value("N", N);
            j.value("bias", sh.bias);
            j.end_object();
            j.value("cache", cold ? "cold" : "warm");
            j.value("reps", static_cast<int64_t>(st.n));
            j.value("median_ms", st.median);
            j.value("min_ms", st.min);
            j.value("max_ms", st.max);
            j.value("gflops", gflops);
            j.value("gflops_best", flops / (st.min * 1e6));
            j.value("cpu_median_ms", cst.median);
            j.value("cpu_min_ms", cst.min);
            j.value("gflops_cpu", cst.median > 0 ? flops / (cst.median * 1e6) : 0.0);
            j.value("weight_bytes", weight_bytes);
            if (M == 1) {
                j.value("weight_gbs", wgbs);
                if (bw.read_gbs > 0) {
                    const double bound_ms = static_cast<double>(weight_bytes) / (bw.read_gbs * 1e6);
                    j.value("bandwidth_bound_ms", bound_ms);
                    j.value("fraction_of_bandwidth", bound_ms / st.median);
                }
            } else {
                j.null("weight_gbs");
            }
            j.value("packed_bytes", packed_bytes);
            j.value("pack_ms", pack_ms);
            j.value("scratch_bytes", scratch_bytes);
            j.end_object();

            char spread[48];
            std::snprintf(spread, sizeof spread, "%.0f%% (n=%d)", st.median > 0 ? 100.0 * (st.max - st.min) / st.median : 0.0,
                          st.n);
            char wcol[32] = "-";
            if (M == 1) std::snprintf(wcol, sizeof wcol, "%.1f", wgbs);
            std::fprintf(stderr, "%-26s %-30s %5lld %6lld %6lld %10.3f %9.1f %9s %s%s%s\n", sh.name.c_str(), name.c_str(),
                         static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N), st.median,
                         gflops, wcol, spread, impl.empty() ? "" : "  ", impl.c_str());
            aligned_buffer_free(packed);
            aligned_buffer_free(scratch);
            aligned_buffer_free(xbuf);
            aligned_buffer_free(ybuf);
            aligned_buffer_free(bbuf);
        }
    }
    j.end_array();

    // The other op families, from the same registry.
    std::fprintf(stderr, "\n%-22s %-26s %10s %12s %s\n", "op case", "kernel", "median ms", "Melem/s", "spread");
    j.begin_array("op_results");
    {
        const int64_t n_max = 3145728;
        OpBuffers m(n_max, info.threads * std::max(attention_scratch_floats(1024), attention_kvq_scratch_floats(4096, 64)) * 4 +
                               topk_scratch_bytes(n_max) +
                               static_cast<int64_t>(cosine_similarity_scratch_bytes(576, 576, 1024)) + 64);
        for (const Kernel& k : kernel_registry()) {
            if (k.op == OpFamily::matmul) continue;
            const std::string name = k.name;
            if (!std::regex_search(name, kernel_re)) continue;
            // The attention reference takes seconds per call (double-precision sums).
            if ((k.op == OpFamily::attention || k.op == OpFamily::attention_kvq) && k.isa == Isa::scalar &&
                !opt.include_ref) {
                continue;
            }
            if (!isa_usable(k.isa)) {
                skipped.push_back({name, std::string("needs ") + isa_name(k.isa)});
                continue;
            }
            for (const OpCase& c : op_cases(k.op, m)) {
                c.run(k, &pool);  // warm-up
                std::vector<double> samples;
                double total = 0;
                while (static_cast<int>(samples.size()) < opt.max_reps) {
                    const double t0 = now_ms();
                    c.run(k, &pool);
                    const double dt = now_ms() - t0;
                    samples.push_back(dt);
                    total += dt;
                    if (static_cast<int>(samples.size()) >= opt.min_reps && total >= opt.min_time_ms) break;
                }
                const Stats st = stats_of(samples);
                j.begin_object();
                j.value("kernel", name);
                j.value("op", op_family_name(k.op));
                j.value("isa", isa_name(k.isa));
                j.value("priority", static_cast<int64_t>(k.priority));
                j.value("case", c.shape);
                j.value("reps", static_cast<int64_t>(st.n));
                j.value("median_ms", st.median);
                j.value("min_ms", st.min);
                j.value("max_ms", st.max);
                j.value("melem_per_s", c.elements / (st.median * 1e3));
                j.end_object();
                std::fprintf(stderr, "%-22s %-26s %10.4f %12.1f %.0f%% (n=%d)\n", c.shape, name.c_str(), st.median,
                             c.elements / (st.median * 1e3),
                             st.median > 0 ? 100.0 * (st.max - st.min) / st.median : 0.0, st.n);
            }
        }
    }
    j.end_array();
    j.begin_array("skipped");
    std::sort(skipped.begin(), skipped.end());
    skipped.erase(std::unique(skipped.begin(), skipped.end()), skipped.end());
    for (const auto& [name, why] : skipped) {
        j.begin_object();
        j.value("kernel", name);
        j.value("reason", why);
        j.end_object();
    }
    j.end_array();
    // What select_matmul_kernel picks today for each shape (decision table + priorities).
    j.begin_array("selected");
    for (const BenchShape& sh : shapes) {
        if (!std::regex_search(sh.name, shape_re)) continue;
        for (DType t : {DType::f32, DType::f16, DType::bf16, DType::q8_0, DType::q4_0}) {
            const MatmulKernel* k = select_matmul_kernel(t, sh.M, sh.K, sh.N);
            j.begin_object();
            j.value("shape", sh.name);
            j.value("w_type", dtype_name(t));
            j.value("kernel", k ? k->name : "");
            j.end_object();
        }
    }
    j.end_array();
    j.end_object();
    std::fputs(j.str().c_str(), stdout);
    return 0;
}

}  // namespace glimpse::bench
