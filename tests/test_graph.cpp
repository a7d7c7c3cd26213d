// Static graph: shape errors at definition, memory plan invariants, zero heap
// allocations in run(), identical results for any thread count, dynamic rows,
// and the KV cache bounds.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "ops/matmul.h"
#include "ops/norm.h"
#include "runtime/aligned_buffer.h"
#include "runtime/fp16.h"
#include "runtime/graph.h"
#include "targets/cpu_features.h"
#include "test_util.h"

// Counting allocator for this test binary (operator new; a malloc hook under ASan).
#include "alloc_counter.h"

using namespace glimpse;

namespace {

struct Weights {
    std::vector<std::vector<float>> store;
    const float* make(size_t n, float scale, uint64_t seed) {
        std::vector<float> w(n);
        for (size_t i = 0; i < n; ++i) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            w[i] = scale * (static_cast<float>((seed >> 40) & 0xffff) / 32768.0f - 1.0f);
        }
        store.push_back(std::move(w));
        return store.back().data();
    }
};

// A small transformer-ish block over dynamic rows with a KV cache:
// x -> rms_norm -> q,k,v -> rope -> attention_kv -> linear -> +x -> swiglu ffn -> last_row
struct TinyDecoder {
    Graph g;
    Weights w;
    ValueId x, pos, out, logits;
    TinyDecoder(int64_t T, int64_t C, int64_t H, int64_t Hkv) {
        const int64_t D = C / H;
        x = g.input("x", DType::f32, Shape::of({T, C}), true);
        pos = g.input("pos", DType::i32, Shape::of({T}), true);
        auto W = [&](int64_t n, int64_t k, uint64_t seed) {
            return g.constant("w" + std::to_string(seed), DType::f32, Shape::of({n, k}), w.make(n * k, 0.3f, seed));
        };
        ValueId gamma = g.constant("gamma", DType::f32, Shape::of({C}), w.make(C, 1.0f, 99));
        ValueId h = g.rms_norm(x, gamma, 1e-5f);
        ValueId q = g.rope(g.linear(h, W(C, C, 1)), pos, H, D, D, 10000.0f);
        ValueId k = g.rope(g.linear(h, W(Hkv * D, C, 2)), pos, Hkv, D, D, 10000.0f);
        ValueId v = g.linear(h, W(Hkv * D, C, 3));
        ValueId a = g.attention_kv(q, k, v, H, Hkv, D, 0.5f, 0);
        ValueId r = g.add(g.linear(a, W(C, C, 4)), x);
        ValueId f = g.linear(g.swiglu(g.linear(r, W(2 * C, C, 5)), g.linear(r, W(2 * C, C, 6))), W(C, 2 * C, 7));
        out = g.add(f, r);
        logits = g.linear(g.last_row(out), W(11, C, 8));
        g.mark_output(out);
        g.mark_output(logits);
    }
};

std::vector<float> random_vec(size_t n, uint64_t seed) {
    Weights w;
    const float* p = w.make(n, 1.0f, seed);
    return std::vector<float>(p, p + n);
}

}  // namespace

TEST_CASE("graph: shape errors are reported by compile with the node and values named") {
    Graph g;
    ValueId x = g.input("x", DType::f32, Shape::of({4, 8}));
    std::vector<float> w(5 * 7);
    ValueId wt = g.constant("proj", DType::f32, Shape::of({5, 7}), w.data());
    g.linear(x, wt);
    auto plan = Plan::compile(std::move(g), {});
    REQUIRE_FALSE(plan.is_ok());
    CHECK(plan.status().message().find("'proj'") != std::string::npos);
    CHECK(plan.status().message().find("8 columns") != std::string::npos);

    Graph g2;
    ValueId y = g2.input("y", DType::f32, Shape::of({4, 8}));
    ValueId pos = g2.input("p", DType::i32, Shape::of({4}));
    g2.attention_kv(y, y, y, 2, 2, 4, 1.0f, 0);
    (void)pos;
    auto p2 = Plan::compile(std::move(g2), {});  // no KV cache
    REQUIRE_FALSE(p2.is_ok());
    CHECK(p2.status().message().find("KV cache") != std::string::npos);
}

TEST_CASE("memory plan: values alive at the same time never share bytes; inputs/outputs are never reused") {
    TinyDecoder d(16, 32, 4, 2);
    auto kv = KvCache::create({64}, 16, DType::f32);
    REQUIRE(kv.is_ok());
    PlanOptions opts;
    opts.kv_cache = kv->get();
    auto plan_r = Plan::compile(std::move(d.g), opts);
    REQUIRE_MESSAGE(plan_r.is_ok(), plan_r.status().to_string());
    const Plan& plan = **plan_r;
    const auto& values = plan.graph().values();
    const auto& nodes = plan.graph().nodes();
    const int n_nodes = static_cast<int>(nodes.size());
    std::vector<int> first(values.size()), last(values.size(), -1);
    for (size_t v = 0; v < values.size(); ++v) first[v] = values[v].kind == ValueKind::input ? 0 : values[v].producer;
    for (int i = 0; i < n_nodes; ++i) for (ValueId in : nodes[i].inputs) if (in >= 0) last[in] = i;
    for (size_t v = 0; v < values.size(); ++v) {
        if (values[v].kind == ValueKind::input || values[v].is_output) last[v] = n_nodes;
        last[v] = std::max(last[v], first[v]);
    }
    int64_t sum = 0;
    for (size_t a = 0; a < values.size(); ++a) {
        if (values[a].kind == ValueKind::constant) continue;
        sum += values[a].nbytes;
        CHECK(values[a].arena_offset % 64 == 0);
        CHECK(values[a].arena_offset + values[a].nbytes <= plan.memory().arena_bytes);
        for (size_t b = a + 1; b < values.size(); ++b) {
            if (values[b].kind == ValueKind::constant) continue;
            const bool live_together = first[a] <= last[b] && first[b] <= last[a];
            const bool overlap = values[a].arena_offset < values[b].arena_offset + values[b].nbytes &&
                                 values[b].arena_offset < values[a].arena_offset + values[a].nbytes;
            CHECK_MESSAGE(!(live_together && overlap), values[a].name << " and " << values[b].name);
        }
    }
    CHECK(plan.memory().naive_bytes == sum);
    CHECK(plan.memory().arena_bytes < sum);  // reuse happened
    CHECK(plan.memory().kv_cache_bytes == (*kv)->bytes());
    CHECK(plan.memory().weight_bytes > 0);
    CHECK(plan.memory().scratch_bytes >= 64 * 4);
}

TEST_CASE("caller-owned memory: plans sharing one arena run one after another as with their own") {
    // Two plans of the same graph (each with its own KV cache) bound to one arena and one
    // scratch, their inputs placed by the caller: each run gives the own-arena plan's output.
    const int64_t T = 12, C = 32;
    const std::vector<float> x = random_vec(T * C, 5);
    auto run_into = [&](Plan& plan, const TinyDecoder& d) {
        std::copy(x.begin(), x.end(), plan.f32(d.x));
        int32_t* pos = static_cast<int32_t*>(plan.data(d.pos));
        for (int t = 0; t < T; ++t) pos[t] = t;
        REQUIRE(plan.run(RunArgs{}, nullptr).is_ok());
        return std::vector<float>(plan.f32(d.out), plan.f32(d.out) + T * C);
    };
    TinyDecoder own_d(T, C, 4, 2);
    auto own_kv = KvCache::create({32}, 16, DType::f32);
    REQUIRE(own_kv.is_ok());
    PlanOptions own_opts;
    own_opts.kv_cache = own_kv->get();
    auto own = Plan::compile(std::move(own_d.g), own_opts);
    REQUIRE(own.is_ok());
    const std::vector<float> want = run_into(**own, own_d);

    TinyDecoder da(T, C, 4, 2), db(T, C, 4, 2);
    auto kva = KvCache::create({32}, 16, DType::f32), kvb = KvCache::create({32}, 16, DType::f32);
    REQUIRE((kva.is_ok() && kvb.is_ok()));
    PlanOptions oa, ob;
    oa.kv_cache = kva->get();
    ob.kv_cache = kvb->get();
    oa.external_memory = ob.external_memory = true;
    oa.external_values = {da.x, da.pos};
    ob.external_values = {db.x, db.pos};
    auto a = Plan::compile(std::move(da.g), oa);
    auto b = Plan::compile(std::move(db.g), ob);
    REQUIRE((a.is_ok() && b.is_ok()));
    // The caller's values are not in the arena: the input bytes, 64-byte aligned.
    CHECK((*a)->memory().external_value_bytes == align_up(T * C * 4, 64) + align_up(T * 4, 64));
    // Not bound yet: an error, not a crash.
    Status unbound = (*a)->run(RunArgs{}, nullptr);
    REQUIRE(!unbound.is_ok());
    CHECK(unbound.message().find("bind") != std::string::npos);
    CHECK(!(*a)->bind_value(da.out, nullptr).is_ok());  // not an external value

    const int64_t arena = std::max((*a)->memory().arena_bytes, (*b)->memory().arena_bytes);
    const int64_t scratch = std::max((*a)->memory().scratch_bytes, (*b)->memory().scratch_bytes);
    std::vector<uint8_t*> owned;
    for (int64_t n : {arena, scratch, align_up(T * C * 4, 64), align_up(T * 4, 64)}) {
        owned.push_back(aligned_buffer_alloc(static_cast<size_t>(n)));
    }
    for (auto [plan, d] : {std::pair{a->get(), &da}, std::pair{b->get(), &db}}) {
        plan->bind_memory(owned[0], owned[1]);
        REQUIRE(plan->bind_value(d->x, owned[2]).is_ok());
        REQUIRE(plan->bind_value(d->pos, owned[3]).is_ok());
    }
    CHECK(run_into(**a, da) == want);
    CHECK(run_into(**b, db) == want);  // overwrote a's activations: a's next run does not mind
    CHECK(run_into(**a, da) == want);  // the same slots [0, T) of its cache rewritten
    for (uint8_t* p : owned) aligned_buffer_free(p);
}

TEST_CASE("run: zero heap allocations, identical output for 1 and 3 threads") {
    const int64_t T = 12, C = 32;
    std::vector<float> results[2];
    int idx = 0;
    for (int threads : {1, 3}) {
        TinyDecoder d(T, C, 4, 2);
        auto kv = KvCache::create({32}, 16, DType::f16);
        REQUIRE(kv.is_ok());
        PlanOptions opts;
        opts.kv_cache = kv->get();
        opts.n_threads = threads;
        auto plan = Plan::compile(std::move(d.g), opts);
        REQUIRE(plan.is_ok());
        ThreadPool pool(threads);
        std::vector<float> x = random_vec(T * C, 7);
        std::copy(x.begin(), x.end(), (*plan)->f32(d.x));
        int32_t* pos = static_cast<int32_t*>((*plan)->data(d.pos));
        for (int t = 0; t < T; ++t) pos[t] = t;
        RunArgs args;
        // warm up once: the pool's threads start lazily inside the OS, not in run()
        REQUIRE((*plan)->run(args, &pool).is_ok());
        const long before = g_allocations.load();
        for (int rep = 0; rep < 3; ++rep) REQUIRE((*plan)->run(args, &pool).is_ok());
        CHECK(g_allocations.load() == before);
        const float* out = (*plan)->f32(d.out);
        results[idx++] = std::vector<float>(out, out + T * C);
    }
    CHECK(results[0] == results[1]);
}

TEST_CASE("dynamic rows: prefill in one pass equals prefill in two passes over the KV cache") {
    const int64_t T = 10, C = 32;
    std::vector<float> x = random_vec(T * C, 11);
    auto run_passes = [&](std::vector<int64_t> split) {
        TinyDecoder d(T, C, 4, 2);
        auto kv = KvCache::create({T}, 16, DType::f32);
        PlanOptions opts;
        opts.kv_cache = kv->get();
        auto plan = Plan::compile(std::move(d.g), opts);
        REQUIRE(plan.is_ok());
        std::vector<float> out;
        int64_t pos0 = 0;
        for (int64_t n : split) {
            std::copy(x.begin() + pos0 * C, x.begin() + (pos0 + n) * C, (*plan)->f32(d.x));
            int32_t* pos = static_cast<int32_t*>((*plan)->data(d.pos));
            for (int64_t t = 0; t < n; ++t) pos[t] = static_cast<int32_t>(pos0 + t);
            RunArgs args;
            args.n_rows = n;
            args.pos0 = pos0;
            REQUIRE((*plan)->run(args, nullptr).is_ok());
            CHECK((*plan)->rows(d.out) == n);
            out.insert(out.end(), (*plan)->f32(d.out), (*plan)->f32(d.out) + n * C);
            pos0 += n;
        }
        return out;
    };
    std::vector<float> one = run_passes({T});
    std::vector<float> two = run_passes({6, 4});
    std::vector<float> steps = run_passes({3, 1, 1, 1, 4});
    REQUIRE(one.size() == two.size());
    for (size_t i = 0; i < one.size(); ++i) {
        CHECK(two[i] == doctest::Approx(one[i]).epsilon(1e-5));
        CHECK(steps[i] == doctest::Approx(one[i]).epsilon(1e-5));
    }
}

TEST_CASE("run: too many rows or a full KV cache is an error before any node runs") {
    TinyDecoder d(8, 32, 4, 2);
    auto kv = KvCache::create({10}, 16, DType::f16);
    PlanOptions opts;
    opts.kv_cache = kv->get();
    auto plan = Plan::compile(std::move(d.g), opts);
    REQUIRE(plan.is_ok());
    RunArgs args;
    args.n_rows = 9;
    Status s = (*plan)->run(args, nullptr);
    CHECK(s.code() == StatusCode::out_of_range);
    CHECK(s.message().find("at most 8") != std::string::npos);
    args.n_rows = 4;
    args.pos0 = 7;
    s = (*plan)->run(args, nullptr);
    CHECK(s.code() == StatusCode::out_of_range);
    CHECK(s.message().find("capacity of 10") != std::string::npos);
}

// topk through a plan: scores computed by a node (x · gain), k fixed at compile
// time, i32 indices out; checked against a rank count written from the contract
// (ops/topk.h): higher first, ties to the lower index, NaN last, ascending output.
TEST_CASE("topk node: the k best rows' indices in raster order, no allocation in run") {
    const int64_t n = 577, k = 144;
    Graph g;
    ValueId x = g.input("x", DType::f32, Shape::of({1, n}));
    std::vector<float> gain(n, 2.0f);
    ValueId scores = g.mul(x, g.constant("gain", DType::f32, Shape::of({n}), gain.data()));
    ValueId keep = g.topk(scores, k);
    g.mark_output(keep);
    CHECK(g.value(keep).dtype == DType::i32);
    auto plan = Plan::compile(std::move(g), PlanOptions{});
    REQUIRE(plan.is_ok());
    const Kernel* chosen = (*plan)->node_kernels()[1];
    REQUIRE(chosen != nullptr);
    CHECK(chosen == select_kernel(OpFamily::topk));
    MESSAGE("topk kernel: " << std::string(chosen->name));

    std::vector<float> s = random_vec(n, 5);
    for (int64_t i = 0; i < n; i += 7) s[i] = s[i / 2];  // ties
    for (int64_t i = 3; i < n; i += 50) s[i] = std::nanf("");
    s[10] = INFINITY;
    s[11] = -0.0f;
    s[12] = 0.0f;
    std::copy(s.begin(), s.end(), (*plan)->f32(x));
    REQUIRE((*plan)->run(RunArgs{}, nullptr).is_ok());
    const long before = g_allocations.load();
    REQUIRE((*plan)->run(RunArgs{}, nullptr).is_ok());
    CHECK(g_allocations.load() == before);

    const std::vector<int32_t> want = test::topk_by_rank_count(s, k);
    const int32_t* got = static_cast<const int32_t*>((*plan)->data(keep));
    CHECK(std::vector<int32_t>(got, got + k) == want);
}

TEST_CASE("topk node: k outside [1, n] and dynamic-row scores are refused at definition") {
    Graph g;
    ValueId x = g.input("x", DType::f32, Shape::of({16}));
    g.topk(x, 17);
    CHECK(g.status().code() == StatusCode::invalid_argument);
    CHECK(g.status().message().find("topk: k = 17 outside [1, 16]") != std::string::npos);
    Graph g0;
    g0.topk(g0.input("x", DType::f32, Shape::of({16})), 0);
    CHECK(!g0.status().is_ok());
    Graph gd;
    gd.topk(gd.input("x", DType::f32, Shape::of({16, 4}), true), 3);
    CHECK(gd.status().message().find("fixed rows") != std::string::npos);
}

// Pruning's shape: scores -> topk -> gather_rows keeps the k best rows of x in raster
// order; checked against the rows picked by hand from a sorted copy of the scores.
TEST_CASE("gather_rows node: keeps the rows topk picked; input indices are checked before a run") {
    const int64_t T = 64, C = 24, k = 16;
    Graph g;
    ValueId x = g.input("x", DType::f32, Shape::of({T, C}));
    ValueId score = g.input("score", DType::f32, Shape::of({T}));
    ValueId kept = g.gather_rows(x, g.topk(score, k));
    g.mark_output(kept);
    CHECK(g.value(kept).shape.rows() == k);
    auto plan = Plan::compile(std::move(g), PlanOptions{});
    REQUIRE(plan.is_ok());
    std::vector<float> xs = random_vec(T * C, 3);
    std::copy(xs.begin(), xs.end(), (*plan)->f32(x));
    // Distinct scores: row r scores (r * 37) % 64, so the kept rows are those scoring >= 48.
    for (int64_t r = 0; r < T; ++r) (*plan)->f32(score)[r] = static_cast<float>((r * 37) % 64);
    REQUIRE((*plan)->run(RunArgs{}, nullptr).is_ok());
    std::vector<int64_t> want;
    for (int64_t r = 0; r < T; ++r) {
        if ((r * 37) % 64 >= 48) want.push_back(r);
    }
    REQUIRE(want.size() == static_cast<size_t>(k));
    const float* got = (*plan)->f32(kept);
    for (int64_t i = 0; i < k; ++i) {
        CHECK(std::vector<float>(got + i * C, got + (i + 1) * C) ==
              std::vector<float>(xs.begin() + want[i] * C, xs.begin() + (want[i] + 1) * C));
    }

    // Input indices: out of range is an error before any node runs.
    Graph gi;
    ValueId xi = gi.input("x", DType::f32, Shape::of({T, C}));
    ValueId idx = gi.input("idx", DType::i32, Shape::of({3}));
    gi.mark_output(gi.gather_rows(xi, idx));
    auto pi = Plan::compile(std::move(gi), PlanOptions{});
    REQUIRE(pi.is_ok());
    int32_t* ids = static_cast<int32_t*>((*pi)->data(idx));
    ids[0] = 0, ids[1] = 63, ids[2] = 64;
    Status st = (*pi)->run(RunArgs{}, nullptr);
    CHECK(st.code() == StatusCode::out_of_range);
    CHECK(st.message().find("index 64 at 2 is outside [0, 64)") != std::string::npos);
    ids[2] = 5;
    CHECK((*pi)->run(RunArgs{}, nullptr).is_ok());

    // Indices from a topk over a different number of scores could be out of range: refused.
    Graph gb;
    ValueId xb = gb.input("x", DType::f32, Shape::of({T, C}));
    gb.gather_rows(xb, gb.topk(gb.input("s", DType::f32, Shape::of({T + 1})), 4));
    CHECK(gb.status().message().find("must be a graph input or a topk over the 64 rows") != std::string::npos);
}

TEST_CASE("packed weights: queued packing on a pool gives the bytes of packing one by one") {
    // Oracle: kernel.pack called directly on a zeroed buffer, weight by weight (what get()
    // does when nothing is queued). A plan's compile queues every weight and packs them
    // together on the model's pool (PackedWeightCache::pack_queued).
    const MatmulKernel* kernel = nullptr;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (k->pack && !k->available && isa_usable(k->isa) && (k->w_type == DType::f16 || k->w_type == DType::f32)) {
            kernel = k;
            break;
        }
    }
    if (!kernel) {
        MESSAGE("no packing f16/f32 kernel at " << std::string(isa_name(active_isa())) << ": skipped");
        return;
    }
    MESSAGE("kernel " << std::string(kernel->name));
    // Weights of different sizes (row counts with tails), as raw bytes of the kernel's type.
    const int64_t shapes[][2] = {{64, 96}, {17, 288}, {130, 32}, {3, 768}, {65, 64}, {1, 1536}, {31, 256}};
    std::vector<std::vector<uint8_t>> weights;
    uint64_t seed = 5;
    for (const auto& s : shapes) {
        std::vector<uint8_t> w(static_cast<size_t>(s[0] * dtype_row_bytes(kernel->w_type, s[1])));
        for (size_t i = 0; i + 1 < w.size(); i += 2) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            const uint16_t h = f32_to_f16(static_cast<float>((seed >> 40) & 0xffff) / 32768.0f - 1.0f);
            std::memcpy(w.data() + i, &h, 2);  // f16 bits (f32 weights: pairs of them, still finite)
        }
        weights.push_back(std::move(w));
    }
    std::vector<std::vector<uint8_t>> oracle;
    for (size_t i = 0; i < weights.size(); ++i) {
        std::vector<uint8_t> out(static_cast<size_t>(kernel->packed_bytes(shapes[i][0], shapes[i][1])), 0);
        kernel->pack(weights[i].data(), shapes[i][0], shapes[i][1], out.data());
        oracle.push_back(std::move(out));
    }
    auto check_cache = [&](PackedWeightCache& cache, bool queue) {
        std::vector<const void*> released;
        cache.set_packed_source_hook([&](const void* w, size_t) { released.push_back(w); });
        if (queue) cache.start_queue();
        std::vector<const void*> packed;
        for (size_t i = 0; i < weights.size(); ++i) {
            packed.push_back(cache.get(*kernel, weights[i].data(), shapes[i][0], shapes[i][1]));
            REQUIRE(packed.back() != nullptr);
        }
        // Asked again while queued: the same buffer, queued once.
        CHECK(cache.get(*kernel, weights[0].data(), shapes[0][0], shapes[0][1]) == packed[0]);
        if (queue) {
            CHECK(released.empty());  // nothing packed (so nothing released) before pack_queued
            cache.pack_queued();
        }
        CHECK(released.size() == weights.size());
        for (size_t i = 0; i < weights.size(); ++i) {
            CHECK(std::find(released.begin(), released.end(), weights[i].data()) != released.end());
            CHECK(std::memcmp(packed[i], oracle[i].data(), oracle[i].size()) == 0);
        }
    };
    PackedWeightCache direct, queued_alone, queued_pool;
    check_cache(direct, false);
    check_cache(queued_alone, true);
    ThreadPool pool(3);
    queued_pool.set_pack_pool(&pool);
    check_cache(queued_pool, true);
    CHECK(queued_pool.bytes() == direct.bytes());

    // A failed compile drops what it queued: nothing counted, nothing handed out later.
    PackedWeightCache dropped;
    dropped.start_queue();
    REQUIRE(dropped.get(*kernel, weights[1].data(), shapes[1][0], shapes[1][1]) != nullptr);
    dropped.drop_queued();
    CHECK(dropped.bytes() == 0);
    const void* again = dropped.get(*kernel, weights[1].data(), shapes[1][0], shapes[1][1]);
    REQUIRE(again != nullptr);
    CHECK(std::memcmp(again, oracle[1].data(), oracle[1].size()) == 0);
    CHECK(dropped.bytes() == static_cast<int64_t>(oracle[1].size()));
}
