// Mixed-precision KV cache with one q8_0 share per decoder layer (issue 25, runtime/kv_cache.h,
// docs/kv-cache.md), alone and under decoder-layer pruning, on the bundled models. Oracles:
// - bytes: the layout formula of docs/kv-cache.md evaluated here from each layer's share, prompt
//   rows and capacity (the per-layer rows counted from the keep table, not read from the plan);
// - outputs: a layer whose share is 1 reads exactly a plain q8_0 cache, a layer whose share is 0
//   exactly a plain q4_0 one (the chosen attention_kvq kernel over KvCache::create's rows of that
//   type, fed the layer's own q/k/v captured from the mixed run): bit for bit;
// - the q8_0 rows a share in (0, 1) keeps: the last row's softmax in double summed over heads,
//   top ⌈S·T⌉ (the registered attention_row kernel differs from that oracle by ~1 ulp per logit,
//   so the test first requires the data to have no near tie at the cut);
// - end to end: shares all 1 answer as the q8_0 cache with the same pruning plan, shares all 0
//   prefill as the q4_0 cache, a list of one share repeated equals the single number; run()
//   allocates nothing.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "alloc_counter.h"  // g_allocations: operator new calls
#include "models/decoder_pruning.h"
#include "models/text_decoder.h"
#include "models/vlm.h"
#include "ops/attention_kvq.h"
#include "ops/kernel_registry.h"
#include "runtime/kv_cache.h"
#include "runtime/pruning_plan.h"
#include "test_bundled.h"
#include "test_util.h"

using namespace glimpse;

namespace {

using test::bundled_model;

int64_t align64(int64_t n) { return (n + 63) / 64 * 64; }

// ⌈share·n⌉ (shares here are exact binary fractions or 0/1, so no rounding question arises).
int64_t ceil_share(double share, int64_t n) { return static_cast<int64_t>(std::ceil(share * static_cast<double>(n))); }

// docs/kv-cache.md's bytes of one mixed layer: K and V of both precisions and the slot map.
int64_t mixed_layer_bytes_formula(int64_t row_values, int64_t capacity, int64_t prompt, double share) {
    const int64_t row_q8 = row_values / 32 * 34, row_q4 = row_values / 32 * 18;
    const int64_t high = ceil_share(share, prompt) + (capacity - prompt), low = prompt - ceil_share(share, prompt);
    return 2 * align64(high * row_q8) + 2 * align64(low * row_q4) + align64(4 * capacity);
}

std::unique_ptr<TextDecoder> load_text(const char* stem) {
    auto dec = TextDecoder::load(bundled_model(stem, "text"));
    REQUIRE_MESSAGE(dec.is_ok(), dec.status().message());
    return std::move(*dec);
}

// What each attention_kv node of a pass saw and wrote: q:(T, Hq·D), k/v:(T, Hkv·D), out:(T, Hq·D).
struct AttentionCapture {
    std::vector<std::vector<float>> q, k, v, out;
};

void capture_attention_kv(void* user, const Plan& plan, int node_index) {
    const Node& node = plan.graph().nodes()[static_cast<size_t>(node_index)];
    if (node.op != OpKind::attention_kv) return;
    auto* cap = static_cast<AttentionCapture*>(user);
    const int64_t rows = plan.rows(node.output);
    auto copy = [&](ValueId id) {
        const float* d = plan.f32(id);
        return std::vector<float>(d, d + rows * plan.graph().value(id).shape.cols());
    };
    cap->q.push_back(copy(node.inputs[0]));
    cap->k.push_back(copy(node.inputs[1]));
    cap->v.push_back(copy(node.inputs[2]));
    cap->out.push_back(copy(node.output));
}

// The chosen attention_kvq kernel over a plain cache of `type` holding k/v rows [0, S) as
// KvCache stores them, for query rows q:(T, Hq·D) at slots [S − T, S) (causal).
std::vector<float> attention_over_plain_cache(DType type, const TextHparams& h, const std::vector<float>& q,
                                              const std::vector<float>& k, const std::vector<float>& v, int64_t T,
                                              int64_t S) {
    const int64_t row = h.n_head_kv * h.head_dim, q_cols = h.n_head * h.head_dim;
    auto cache = KvCache::create({S}, row, type);
    REQUIRE(cache.is_ok());
    (*cache)->store(0, false, 0, k.data(), S, row);
    (*cache)->store(0, true, 0, v.data(), S, row);
    AttentionArgs a;
    a.q = q.data();
    a.q_ld = q_cols;
    a.k = (*cache)->k(0);
    a.v = (*cache)->v(0);
    a.kv_ld = row;
    a.kv_type = type;
    std::vector<float> out(static_cast<size_t>(T * q_cols));
    a.out = out.data();
    a.out_ld = q_cols;
    a.T = T;
    a.S = S;
    a.n_head = h.n_head;
    a.n_head_kv = h.n_head_kv;
    a.head_dim = h.head_dim;
    a.scale = 1.0f / std::sqrt(static_cast<float>(h.head_dim));
    a.causal = true;
    a.causal_offset = S - T;
    std::vector<float> scratch(static_cast<size_t>(4 * attention_kvq_scratch_floats(S, h.head_dim)));
    select_kernel(OpFamily::attention_kvq)->fn.attention_kvq(a, scratch.data(), nullptr);
    return out;
}

// Prompt embeddings of T pseudo-random token ids: (T, n_embd).
std::vector<float> random_prompt(const TextDecoder& dec, int64_t T, uint64_t seed) {
    const int64_t C = dec.hparams().n_embd;
    std::vector<float> x(static_cast<size_t>(T * C));
    test::Rng rng{seed};
    for (int64_t i = 0; i < T; ++i) {
        dec.embed_token(rng.integer(0, static_cast<int32_t>(dec.hparams().n_vocab) - 1), x.data() + i * C);
    }
    return x;
}

}  // namespace

TEST_CASE("KvCache mixed per layer: rows and bytes of each layer from its own share; one share repeated is the "
          "single-share cache; bad lists refused") {
    // 3 layers of 64-value rows: (capacity, planned prompt rows, share).
    const std::vector<int64_t> cap{40, 12, 33}, prompt{30, 12, 20};
    const std::vector<double> shares{0.5, 1.0, 0.0};
    auto kv = KvCache::create_mixed(cap, prompt, 64, shares);
    REQUIRE_MESSAGE(kv.is_ok(), kv.status().message());
    int64_t sum = 0;
    for (int l = 0; l < 3; ++l) {
        INFO("layer " << l);
        CHECK((*kv)->high_share(l) == shares[l]);
        CHECK((*kv)->high_capacity(l) == ceil_share(shares[l], prompt[l]) + cap[l] - prompt[l]);
        CHECK((*kv)->low_capacity(l) == prompt[l] - ceil_share(shares[l], prompt[l]));
        CHECK((*kv)->layer_bytes(l) == mixed_layer_bytes_formula(64, cap[l], prompt[l], shares[l]));
        sum += mixed_layer_bytes_formula(64, cap[l], prompt[l], shares[l]);
    }
    // Hand-worked layer 0: 15 + 10 q8_0 rows of 68 bytes, 15 q4_0 rows of 36, 40 map entries.
    CHECK((*kv)->layer_bytes(0) == 2 * 1728 + 2 * 576 + 192);
    CHECK((*kv)->bytes() == sum + 40 * 4);  // + the ranking scratch of the largest layer

    // A list repeating one share is the single-share cache: same rows and bytes per layer.
    auto single = KvCache::create_mixed(cap, prompt, 64, 0.25);
    auto list = KvCache::create_mixed(cap, prompt, 64, std::vector<double>(3, 0.25));
    REQUIRE((single.is_ok() && list.is_ok()));
    CHECK((*single)->bytes() == (*list)->bytes());
    for (int l = 0; l < 3; ++l) {
        CHECK((*single)->high_capacity(l) == (*list)->high_capacity(l));
        CHECK((*single)->layer_bytes(l) == (*list)->layer_bytes(l));
    }

    auto short_list = KvCache::create_mixed(cap, prompt, 64, std::vector<double>{0.5, 0.5});
    REQUIRE(!short_list.is_ok());
    CHECK(short_list.status().message().find("2 high-precision shares for 3 layers") != std::string::npos);
    auto out_of_range = KvCache::create_mixed(cap, prompt, 64, std::vector<double>{0.5, 1.5, 0});
    REQUIRE(!out_of_range.is_ok());
    CHECK(out_of_range.status().message().find("layer 1's high-precision share 1.5 is outside [0, 1]") !=
          std::string::npos);
    auto nan = KvCache::create_mixed(cap, prompt, 64, std::vector<double>{0.5, std::nan(""), 0});
    CHECK(!nan.is_ok());
}

TEST_CASE("mixed KV per layer in the decoder: a layer at 1 reads as a q8_0 cache, at 0 as q4_0; a layer in between "
          "keeps the rows its last row attends to most") {
    std::unique_ptr<TextDecoder> dec = load_text(test::kBundledSmolVlm);
    const TextHparams& h = dec->hparams();
    REQUIRE(h.n_layer == 4);
    const std::vector<double> shares{0.0, 1.0, 0.5, 1.0};
    dec->set_kv_mixed_high_shares(shares);
    const int64_t T = 37;
    auto dp = dec->compile(T, T + 2, DType::q8_0, 2);
    REQUIRE_MESSAGE(dp.is_ok(), dp.status().message());
    const std::vector<float> x = random_prompt(*dec, T, 3);
    std::memcpy(dp->plan->f32(dp->embeddings), x.data(), x.size() * 4);
    for (int64_t t = 0; t < T; ++t) static_cast<int32_t*>(dp->plan->data(dp->positions))[t] = static_cast<int32_t>(t);
    ThreadPool pool(2);
    AttentionCapture prefill;
    RunArgs args;
    args.n_rows = T;
    REQUIRE(dp->plan->run(args, &pool, capture_attention_kv, &prefill).is_ok());
    REQUIRE(prefill.out.size() == 4);
    for (int l = 0; l < 4; ++l) {
        INFO("layer " << l << " share " << shares[l]);
        if (shares[l] == 0.5) continue;
        const DType plain = shares[l] == 1.0 ? DType::q8_0 : DType::q4_0;
        const std::vector<float> want =
            attention_over_plain_cache(plain, h, prefill.q[l], prefill.k[l], prefill.v[l], T, T);
        CHECK(std::memcmp(prefill.out[l].data(), want.data(), want.size() * 4) == 0);
    }
    // Layer 2 (share 0.5): the ⌈0.5·37⌉ = 19 keys of largest last-row attention keep q8_0.
    {
        const int64_t D = h.head_dim, Hq = h.n_head, Hkv = h.n_head_kv;
        const std::vector<float>&q = prefill.q[2], &k = prefill.k[2];
        std::vector<double> importance(static_cast<size_t>(T), 0.0);
        for (int64_t hd = 0; hd < Hq; ++hd) {
            std::vector<double> p(static_cast<size_t>(T));
            double mx = -1e300, sum = 0;
            for (int64_t s = 0; s < T; ++s) {
                double dot = 0;
                for (int64_t d = 0; d < D; ++d) {
                    dot += static_cast<double>(q[(T - 1) * Hq * D + hd * D + d]) * k[s * Hkv * D + (hd / (Hq / Hkv)) * D + d];
                }
                mx = std::max(mx, p[s] = dot / std::sqrt(static_cast<double>(D)));
            }
            for (double& e : p) sum += (e = std::exp(e - mx));
            for (int64_t s = 0; s < T; ++s) importance[s] += p[s] / sum;
        }
        std::vector<int> by_rank(static_cast<size_t>(T));
        std::iota(by_rank.begin(), by_rank.end(), 0);
        std::stable_sort(by_rank.begin(), by_rank.end(), [&](int a, int b) { return importance[a] > importance[b]; });
        // No near tie at the cut: the kernel's ~1 ulp per logit cannot swap the 19th and 20th.
        REQUIRE(importance[by_rank[18]] - importance[by_rank[19]] > 1e-4 * importance[by_rank[18]]);
        for (int i = 0; i < T; ++i) {
            CHECK_MESSAGE((dp->kv_cache->slot_rows(2)[by_rank[i]] >= 0) == (i < 19), "rank " << i);
        }
    }
    // One decode step: the share-1 layers still read as a q8_0 cache (prompt rows and the new one).
    dec->embed_token(7, dp->plan->f32(dp->embeddings));
    static_cast<int32_t*>(dp->plan->data(dp->positions))[0] = static_cast<int32_t>(T);
    AttentionCapture step;
    args.n_rows = 1;
    args.pos0 = T;
    REQUIRE(dp->plan->run(args, &pool, capture_attention_kv, &step).is_ok());
    for (int l : {1, 3}) {
        std::vector<float> k = prefill.k[l], v = prefill.v[l];
        k.insert(k.end(), step.k[l].begin(), step.k[l].end());
        v.insert(v.end(), step.v[l].begin(), step.v[l].end());
        const std::vector<float> want = attention_over_plain_cache(DType::q8_0, h, step.q[l], k, v, 1, T + 1);
        CHECK_MESSAGE(std::memcmp(step.out[l].data(), want.data(), want.size() * 4) == 0, "layer " << l);
    }
    // Without an observer a prefill and a decode step allocate nothing.
    args.n_rows = T;
    args.pos0 = 0;
    std::memcpy(dp->plan->f32(dp->embeddings), x.data(), x.size() * 4);
    for (int64_t t = 0; t < T; ++t) static_cast<int32_t*>(dp->plan->data(dp->positions))[t] = static_cast<int32_t>(t);
    const long before = g_allocations.load();
    REQUIRE(dp->plan->run(args, &pool).is_ok());
    args.n_rows = 1;
    args.pos0 = T;
    REQUIRE(dp->plan->run(args, &pool).is_ok());
    CHECK(g_allocations.load() == before);
}

TEST_CASE("mixed KV under decoder pruning: per-layer bytes from the keep table, shares 1 = q8_0 and 0 = q4_0 "
          "logits, a repeated share = the single share; prefill and decode allocate nothing") {
    for (const char* stem : {test::kBundledSmolVlm, test::kBundledLlava}) {
        // Under qemu one model is enough: the second runs the same kernels on other shapes.
        if (test::emulated() && std::string(stem) == test::kBundledLlava) continue;
        INFO(stem);
        std::unique_ptr<TextDecoder> dec = load_text(stem);
        const TextHparams& h = dec->hparams();
        const int64_t T = 48, v0 = 3, nv = 40, n_answer = 3;
        const int64_t row = h.n_head_kv * h.head_dim;
        // PyramidDrop-style: 40 visual rows, 20 past layer 0, 10 past layer 2.
        std::vector<DecoderPruneStep> steps(2);
        steps[0].layer = 0, steps[0].keep = 20, steps[0].compact_positions = true;
        steps[1].layer = 2, steps[1].keep = 10, steps[1].compact_positions = true;
        const std::vector<int64_t> prompt_rows{T, T - nv + 20, T - nv + 20, T - nv + 10};
        const std::vector<float> x = random_prompt(*dec, T, 9);
        std::vector<uint8_t> visual(static_cast<size_t>(T), 0);
        std::fill(visual.begin() + v0, visual.begin() + v0 + nv, 1);
        ThreadPool pool(2);
        // Logits of the prefill and of n_answer decode steps of one configuration.
        auto run = [&](DType kv_type, const std::vector<double>& shares, int64_t* kv_bytes,
                       std::vector<int64_t>* layer_bytes) {
            dec->set_kv_mixed_high_shares(shares);
            auto dp = DecoderPruning::create(*dec, steps, DecoderPruneShape{T, nv, n_answer}, kv_type, 2);
            dec->set_kv_mixed_high_shares({});
            REQUIRE_MESSAGE(dp.is_ok(), dp.status().message());
            std::memcpy((*dp)->embeddings(), x.data(), x.size() * 4);
            for (int64_t t = 0; t < T; ++t) (*dp)->positions()[t] = static_cast<int32_t>(t);
            std::vector<std::vector<float>> logits;
            const long before = g_allocations.load();
            auto l = (*dp)->prefill(T, visual.data(), &pool);
            CHECK(g_allocations.load() == before);  // prefill allocates nothing
            REQUIRE(l.is_ok());
            logits.emplace_back(*l, *l + h.n_vocab);
            for (int s = 0; s < n_answer; ++s) {
                dec->embed_token(50 + s, (*dp)->embeddings());
                const long b = g_allocations.load();
                auto ls = (*dp)->decode(static_cast<int32_t>(T + s), s, &pool);
                CHECK(g_allocations.load() == b);  // decode allocates nothing
                REQUIRE(ls.is_ok());
                logits.emplace_back(*ls, *ls + h.n_vocab);
            }
            const KvCache& kv = *(*dp)->plan().kv_cache;
            *kv_bytes = kv.bytes();
            layer_bytes->clear();
            for (int layer = 0; layer < kv.n_layers(); ++layer) {
                CHECK(kv.capacity(layer) == prompt_rows[layer] + n_answer);
                layer_bytes->push_back(kv.layer_bytes(layer));
            }
            return logits;
        };
        int64_t bytes = 0;
        std::vector<int64_t> layers;
        // Per-layer shares: bytes per layer are the formula's for that layer's rows and share.
        const std::vector<double> shares{0.5, 0.25, 0.0, 1.0};
        run(DType::q8_0, shares, &bytes, &layers);
        int64_t want_total = 0;
        for (int l = 0; l < 4; ++l) {
            const int64_t want = mixed_layer_bytes_formula(row, prompt_rows[l] + n_answer, prompt_rows[l], shares[l]);
            CHECK_MESSAGE(layers[l] == want, "layer " << l);
            want_total += want;
        }
        CHECK(bytes == want_total + 4 * (T + n_answer));

        // Shares all 1: every row q8_0, so the q8_0 cache's logits, prefill and decode, bit for bit.
        int64_t q8_bytes = 0;
        const auto q8 = run(DType::q8_0, {}, &q8_bytes, &layers);
        const auto all_high = run(DType::q8_0, std::vector<double>(4, 1.0), &bytes, &layers);
        for (size_t s = 0; s < q8.size(); ++s) {
            CHECK_MESSAGE(std::memcmp(all_high[s].data(), q8[s].data(), q8[s].size() * 4) == 0, "pass " << s);
        }
        // Shares all 0: every prompt row q4_0, so the q4_0 cache's prefill logits (decode rows are
        // q8_0 in a mixed cache, q4_0 in the other: only the prefill compares).
        int64_t q4_bytes = 0;
        const auto q4 = run(DType::q4_0, {}, &q4_bytes, &layers);
        const auto all_low = run(DType::q8_0, std::vector<double>(4, 0.0), &bytes, &layers);
        CHECK(std::memcmp(all_low[0].data(), q4[0].data(), q4[0].size() * 4) == 0);
        CHECK(q4_bytes < bytes);
        CHECK(bytes < q8_bytes);
    }
}

TEST_CASE("mixed KV per layer from a plan: a pruned plan with one share listed per layer answers as its single "
          "share; all 1 answers as q8_0; inspect's bytes per layer; bad lists refused naming the depth") {
    // Whole-pipeline runs (10 loads and generations): their kernels are covered per ISA by the
    // cases above; under qemu they would cost minutes of the CI budget for no ARM-specific coverage.
    if (test::emulated()) return;
    const std::string stages = R"("stages": [{"at": "decoder_layer", "layer": 0, "method": "pyramiddrop", "keep": 0.5},
                                             {"at": "decoder_layer", "layer": 2, "method": "fastv", "keep": 0.25}])";
    auto plan_with = [&](const std::string& kv_cache) {
        auto p = pruning_plan_parse(R"({"format": "glimpse.pruning-plan", "version": 1, )" + stages +
                                        R"(, "kv_cache": )" + kv_cache + "}",
                                    "plan.json");
        REQUIRE_MESSAGE(p.is_ok(), p.status().message());
        return *p;
    };
    const ImageU8 img = test::bundled_scene_image(1000002);
    struct Answer {
        std::vector<int32_t> ids;
        std::vector<float> prefill_logits;
        int64_t kv_bytes = 0;
        std::vector<int64_t> layer_bytes;
    };
    auto answer = [&](const char* stem, const PruningPlan& plan) {
        VlmConfig cfg;
        cfg.n_threads = test::emulated() ? 1 : 2;
        cfg.pruning = plan;
        auto vlm = Vlm::load(bundled_model(stem, "text"), bundled_model(stem, "mmproj"), cfg);
        REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().message());
        auto prompt = (*vlm)->build_prompt("How many circles are there?", std::vector<ImageU8>{img});
        REQUIRE(prompt.is_ok());
        SamplingParams greedy;
        greedy.temperature = 0;
        REQUIRE((*vlm)->generate(*prompt, 6, greedy, nullptr, nullptr).is_ok());
        return Answer{(*vlm)->last_generated(), (*vlm)->last_prefill_logits(), (*vlm)->memory().kv_cache,
                      (*vlm)->kv_cache_layer_bytes()};
    };
    for (const char* stem : {test::kBundledSmolVlm, test::kBundledLlava}) {
        INFO(stem);
        const Answer single = answer(stem, plan_with(R"({"type": "mixed", "high_precision_share": 0.25})"));
        const Answer list = answer(stem, plan_with(R"({"type": "mixed", "high_precision_share": [0.25, 0.25, 0.25, 0.25]})"));
        CHECK(list.ids == single.ids);
        CHECK(list.prefill_logits == single.prefill_logits);
        CHECK(list.kv_bytes == single.kv_bytes);
        CHECK(list.layer_bytes == single.layer_bytes);
        const Answer q8 = answer(stem, plan_with(R"({"type": "q8_0"})"));
        const Answer high = answer(stem, plan_with(R"({"type": "mixed", "high_precision_share": [1, 1, 1, 1]})"));
        CHECK(high.ids == q8.ids);
        CHECK(high.prefill_logits == q8.prefill_logits);
        // Lowering one layer's share shrinks that layer's bytes only.
        const Answer lowered = answer(stem, plan_with(R"({"type": "mixed", "high_precision_share": [0.25, 0.25, 0, 0.25]})"));
        REQUIRE(lowered.layer_bytes.size() == 4);
        for (int l = 0; l < 4; ++l) {
            if (l == 2) CHECK(lowered.layer_bytes[l] < single.layer_bytes[l]);
            else CHECK(lowered.layer_bytes[l] == single.layer_bytes[l]);
        }
    }
    // The list's length must be the decoder's depth; values in [0, 1]; only with type mixed.
    VlmConfig cfg;
    cfg.pruning = plan_with(R"({"type": "mixed", "high_precision_share": [0.5, 0.5, 0.5]})");
    auto refused = Vlm::load(bundled_model(test::kBundledSmolVlm, "text"), bundled_model(test::kBundledSmolVlm, "mmproj"), cfg);
    REQUIRE(!refused.is_ok());
    CHECK(refused.status().message().find("lists 3 shares") != std::string::npos);
    CHECK(refused.status().message().find("4 decoder layers") != std::string::npos);
    auto bad_value = pruning_plan_parse(
        R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [], "kv_cache": {"type": "mixed", "high_precision_share": [0.5, 2]}})",
        "plan.json");
    REQUIRE(!bad_value.is_ok());
    CHECK(bad_value.status().message().find("kv_cache.high_precision_share[1]") != std::string::npos);
    auto not_mixed = pruning_plan_parse(
        R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [], "kv_cache": {"type": "q8_0", "high_precision_share": [0.5]}})",
        "plan.json");
    REQUIRE(!not_mixed.is_ok());
    CHECK(not_mixed.status().message().find("only applies to type mixed") != std::string::npos);
    auto empty = pruning_plan_parse(
        R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [], "kv_cache": {"type": "mixed", "high_precision_share": []}})",
        "plan.json");
    CHECK(!empty.is_ok());
    // Written and read back: the list survives.
    PruningPlan p = plan_with(R"({"type": "mixed", "high_precision_share": [0.5, 0.25, 0, 1]})");
    auto reread = pruning_plan_parse(pruning_plan_to_json(p), "plan.json");
    REQUIRE(reread.is_ok());
    CHECK(reread->kv_high_precision_shares == std::vector<double>{0.5, 0.25, 0, 1});
}
