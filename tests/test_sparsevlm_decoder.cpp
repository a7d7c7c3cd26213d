// SparseVLM's decoder stages (models/decoder_pruning_sparsevlm.cpp) on the bundled models:
// - the raters equal the rows an oracle picks here from the prompt's embeddings (softmax over the
//   text rows after the image of e_v·e_t, mean over visual, above the mean), with the visual rows
//   in one run or in several (chunks between wrapper rows), at 1 and 3 threads;
// - the kept rows equal an oracle from the unpruned decoder's layer-1 q/k (captured after RoPE),
//   each rater's causal softmax in f64, mean over heads, then over raters, and a full sort;
// - keep = every visual row, recycle on or off, is the unpruned decoder bit for bit (prefill and
//   decode);
// - recycling adds sparsevlm_merged_rows(dropped) rows right after the kept visual rows: segment
//   sizes, KV capacities, compact positions, the visual rows per layer; prefill and decode
//   allocate nothing;
// - the shorthand's layers (hand-worked) and a VLM plan that runs end to end.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "alloc_counter.h"
#include "models/decoder_pruning.h"
#include "models/text_decoder.h"
#include "models/vlm.h"
#include "ops/dpc_cluster.h"
#include "runtime/pruning_plan.h"
#include "test_bundled.h"
#include "test_util.h"

using namespace glimpse;

namespace {

// T rows of token embeddings: text [0, v0), visual [v0, v0 + nv), text after; positions 0..T-1.
using SparsePrompt = test::DecoderPrompt;

// The visual rows are p.is_visual's (one run in random_token_prompt, several in chunked_prompt).
std::vector<int32_t> oracle_raters(const SparsePrompt& p, int64_t C) {
    int64_t t0 = 0, nv = 0;
    for (int64_t i = 0; i < p.T; ++i) {
        if (p.is_visual[static_cast<size_t>(i)]) t0 = i + 1, ++nv;
    }
    std::vector<double> m(static_cast<size_t>(p.T - t0), 0.0);
    for (int64_t v = 0; v < t0; ++v) {
        if (!p.is_visual[static_cast<size_t>(v)]) continue;
        std::vector<double> l;
        for (int64_t t = t0; t < p.T; ++t) {
            double dot = 0;
            for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(p.x[v * C + c]) * p.x[t * C + c];
            l.push_back(dot);
        }
        const double mx = *std::max_element(l.begin(), l.end());
        double sum = 0;
        for (double& e : l) sum += (e = std::exp(e - mx));
        for (size_t t = 0; t < l.size(); ++t) m[t] += l[t] / sum / static_cast<double>(nv);
    }
    const double mean = std::accumulate(m.begin(), m.end(), 0.0) / static_cast<double>(m.size());
    std::vector<int32_t> r;
    for (size_t t = 0; t < m.size(); ++t) {
        if (m[t] > mean) r.push_back(static_cast<int32_t>(t0 + static_cast<int64_t>(t)));
    }
    return r;
}

struct QkCapture {
    std::vector<std::vector<float>> rope;  // layer l: q = 2l, k = 2l + 1
};

void capture_qk(void* user, const Plan& plan, int node_index) {
    const Node& node = plan.graph().nodes()[static_cast<size_t>(node_index)];
    if (node.op != OpKind::rope) return;
    const float* d = plan.f32(node.output);
    static_cast<QkCapture*>(user)->rope.emplace_back(
        d, d + plan.rows(node.output) * plan.graph().value(node.output).shape.cols());
}

std::unique_ptr<TextDecoder> text_of(const char* stem) {
    auto dec = TextDecoder::load(test::bundled_model(stem, "text"));
    REQUIRE_MESSAGE(dec.is_ok(), dec.status().message());
    return std::move(*dec);
}

// The unpruned decoder planned for the prompt and `answer` more rows, its inputs set.
DecoderPlan unpruned_plan(TextDecoder& dec, const SparsePrompt& p, int64_t answer, DType kv, int threads) {
    auto plain = dec.compile(p.T, p.T + answer, kv, threads);
    REQUIRE(plain.is_ok());
    std::memcpy(plain->plan->f32(plain->embeddings), p.x.data(), p.x.size() * 4);
    std::memcpy(plain->plan->data(plain->positions), p.pos.data(), p.pos.size() * 4);
    return std::move(*plain);
}

DecoderPruneStep sparse_step(int layer, int64_t keep, bool recycle) {
    DecoderPruneStep st;
    st.layer = layer, st.keep = keep, st.score_layer = PruneScoreLayer::own_last;
    st.compact_positions = true, st.text_raters = true, st.recycle = recycle;
    return st;
}

}  // namespace

TEST_CASE("sparsevlm: raters and kept rows equal the oracles from the embeddings and the unpruned q/k") {
    for (const char* stem : {test::kBundledSmolVlm, test::kBundledLlava}) {
        INFO(stem);
        std::unique_ptr<TextDecoder> dec = text_of(stem);
        const TextHparams& h = dec->hparams();
        const SparsePrompt p = test::random_token_prompt(*dec, 70, 5, 48, 31);
        DecoderPlan plain = unpruned_plan(*dec, p, 1, DType::f32, 1);
        QkCapture cap;
        RunArgs args;
        args.n_rows = p.T;
        REQUIRE(plain.plan->run(args, nullptr, capture_qk, &cap).is_ok());

        const int64_t keep = 12;
        auto dp = DecoderPruning::create(*dec, {sparse_step(1, keep, true)}, DecoderPruneShape{p.T, p.nv, 2}, DType::f32, 1);
        REQUIRE_MESSAGE(dp.is_ok(), dp.status().message());
        std::memcpy((*dp)->embeddings(), p.x.data(), p.x.size() * 4);
        std::memcpy((*dp)->positions(), p.pos.data(), p.pos.size() * 4);
        const long before = g_allocations.load();
        REQUIRE((*dp)->prefill(p.T, p.is_visual.data(), nullptr).is_ok());
        CHECK(g_allocations.load() == before);

        const std::vector<int32_t> raters = oracle_raters(p, h.n_embd);
        REQUIRE(!raters.empty());
        CHECK((*dp)->raters() == raters);

        // Score of every visual row: layer 1's q/k (the stage's own layer saw every row).
        const std::vector<float>&q = cap.rope[2], &k = cap.rope[3];
        const int64_t D = h.head_dim, Hq = h.n_head, Hkv = h.n_head_kv;
        std::vector<double> score(static_cast<size_t>(p.T), 0.0);
        for (int32_t r : raters) {
            for (int64_t hd = 0; hd < Hq; ++hd) {
                std::vector<double> l(static_cast<size_t>(r + 1));
                for (int64_t s = 0; s <= r; ++s) {
                    double dot = 0;
                    for (int64_t e = 0; e < D; ++e) {
                        dot += static_cast<double>(q[static_cast<size_t>(r * Hq * D + hd * D + e)]) *
                               k[static_cast<size_t>(s * Hkv * D + (hd / (Hq / Hkv)) * D + e)];
                    }
                    l[static_cast<size_t>(s)] = dot / std::sqrt(static_cast<double>(D));
                }
                const double mx = *std::max_element(l.begin(), l.end());
                double sum = 0;
                for (double& e : l) sum += (e = std::exp(e - mx));
                for (int64_t s = 0; s <= r; ++s) {
                    score[static_cast<size_t>(s)] += l[static_cast<size_t>(s)] / sum / Hq / raters.size();
                }
            }
        }
        std::vector<int32_t> vis(static_cast<size_t>(p.nv));
        std::iota(vis.begin(), vis.end(), static_cast<int32_t>(p.v0));
        std::stable_sort(vis.begin(), vis.end(), [&](int32_t a, int32_t b) { return score[a] > score[b]; });
        const double kth = score[static_cast<size_t>(vis[static_cast<size_t>(keep - 1)])];
        std::vector<int32_t> want_vis(vis.begin(), vis.begin() + keep);
        std::sort(want_vis.begin(), want_vis.end());

        // Segment 1: text before, the kept visual rows, m merged rows (-1), the text after.
        const int64_t m = sparsevlm_merged_rows(p.nv - keep);
        REQUIRE((*dp)->merged_rows() == std::vector<int64_t>{m});
        const std::vector<int32_t>& got = (*dp)->kept_rows()[0];
        REQUIRE(got.size() == static_cast<size_t>(p.T - (p.nv - keep) + m));
        for (int64_t i = 0; i < p.v0; ++i) CHECK(got[static_cast<size_t>(i)] == i);
        for (int64_t j = 0; j < keep; ++j) {
            const int32_t g = got[static_cast<size_t>(p.v0 + j)], w = want_vis[static_cast<size_t>(j)];
            if (g != w) CHECK(std::abs(score[static_cast<size_t>(g)] - kth) <= 1e-5 * kth);
        }
        for (int64_t j = 0; j < m; ++j) CHECK(got[static_cast<size_t>(p.v0 + keep + j)] == -1);
        for (int64_t i = p.v0 + p.nv; i < p.T; ++i) CHECK(got[static_cast<size_t>(i - (p.nv - keep) + m)] == i);
        // Compact positions, the KV capacities and the visual rows per layer include the merged rows.
        const std::vector<int32_t>& pos1 = (*dp)->segment_positions()[1];
        for (size_t i = 0; i < pos1.size(); ++i) CHECK(pos1[i] == static_cast<int32_t>(i));
        const KvCache& kv = *(*dp)->plan().kv_cache;
        for (int l = 0; l < h.n_layer; ++l) {
            CHECK(kv.capacity(l) == (l <= 1 ? p.T : p.T - (p.nv - keep) + m) + 2);
        }
        CHECK((*dp)->visual_rows_layer_sum() == 2 * p.nv + 2 * (keep + m));
        dec->embed_token(7, (*dp)->embeddings());
        const long b = g_allocations.load();
        REQUIRE((*dp)->decode(static_cast<int32_t>(p.T), 0, nullptr).is_ok());
        CHECK(g_allocations.load() == b);
    }
}

TEST_CASE("sparsevlm: raters from visual rows in several runs (chunks between wrapper rows) equal the oracle") {
    // As a SmolVLM prompt lays out its chunks: runs of visual rows with text rows between them.
    // The raters come from the query_key_score op called once per run; the oracle reads the mask.
    ThreadPool pool(3);
    for (const char* stem : {test::kBundledSmolVlm, test::kBundledLlava}) {
        std::unique_ptr<TextDecoder> dec = text_of(stem);
        for (uint64_t seed : {3u, 17u, 29u, 41u}) {
            for (ThreadPool* tp : {static_cast<ThreadPool*>(nullptr), &pool}) {
                INFO(stem << " seed " << seed << (tp ? " 3 threads" : " 1 thread"));
                SparsePrompt p = test::random_token_prompt(*dec, 90, 4, 0, seed);
                int64_t nv = 0;
                for (int64_t i = 0; i < p.T; ++i) {
                    const bool v = (i >= 4 && i < 20) || (i >= 22 && i < 38) || (i >= 40 && i < 57) || (i == 59) ||
                                   (i >= 61 && i < 73);
                    p.is_visual[static_cast<size_t>(i)] = v;
                    nv += v;
                }
                auto dp = DecoderPruning::create(*dec, {sparse_step(1, nv / 2, false)}, DecoderPruneShape{p.T, nv, 1},
                                                 DType::f32, tp ? 3 : 1);
                REQUIRE_MESSAGE(dp.is_ok(), dp.status().message());
                std::memcpy((*dp)->embeddings(), p.x.data(), p.x.size() * 4);
                std::memcpy((*dp)->positions(), p.pos.data(), p.pos.size() * 4);
                REQUIRE((*dp)->prefill(p.T, p.is_visual.data(), tp).is_ok());
                const std::vector<int32_t> want = oracle_raters(p, dec->hparams().n_embd);
                CHECK(!want.empty());
                CHECK((*dp)->raters() == want);
            }
        }
        // Worked by hand: a run of 16 visual rows 4·u1 and a run of one row 4·u2 (u: unit vectors),
        // then the text rows u1, u2, 0, 0. Softmax rows: the 16 rows (e⁴, 1, 1, 1)/(e⁴ + 3), the one
        // row (1, e⁴, 1, 1)/(e⁴ + 3); m = their mean weighted 16:1 = (0.893, 0.072, 0.018, 0.018),
        // above the mean 1/4 only u1. (Weighting the two runs equally would make u2 a rater too.)
        const int64_t C = dec->hparams().n_embd;
        SparsePrompt p = test::random_token_prompt(*dec, 24, 0, 0, 1);
        std::fill(p.x.begin(), p.x.end(), 0.0f);
        for (int64_t i = 1; i < 17; ++i) p.x[static_cast<size_t>(i * C)] = 4.0f, p.is_visual[static_cast<size_t>(i)] = 1;
        p.x[static_cast<size_t>(18 * C + 1)] = 4.0f, p.is_visual[18] = 1;
        p.x[static_cast<size_t>(19 * C)] = 1.0f;
        p.x[static_cast<size_t>(20 * C + 1)] = 1.0f;
        // Rows 21..23: zero, as rows 19 and 20 would be without their one component.
        auto dp = DecoderPruning::create(*dec, {sparse_step(1, 8, false)}, DecoderPruneShape{p.T, 17, 1}, DType::f32, 3);
        REQUIRE(dp.is_ok());
        std::memcpy((*dp)->embeddings(), p.x.data(), p.x.size() * 4);
        std::memcpy((*dp)->positions(), p.pos.data(), p.pos.size() * 4);
        const Status run = (*dp)->prefill(p.T, p.is_visual.data(), &pool).status();
        REQUIRE_MESSAGE(run.is_ok(), run.message());
        CHECK((*dp)->raters() == std::vector<int32_t>{19});
        CHECK(oracle_raters(p, C) == std::vector<int32_t>{19});
    }
}

TEST_CASE("sparsevlm: keeping every visual row is the unpruned decoder bit for bit, recycle on or off") {
    for (const char* stem : {test::kBundledSmolVlm, test::kBundledLlava}) {
        INFO(stem);
        std::unique_ptr<TextDecoder> dec = text_of(stem);
        const TextHparams& h = dec->hparams();
        const SparsePrompt p = test::random_token_prompt(*dec, 40, 3, 30, 5);
        ThreadPool pool(2);
        DecoderPlan plain = unpruned_plan(*dec, p, 2, DType::f16, 2);
        auto l0 = dec->forward(plain, p.T, 0, &pool);
        REQUIRE(l0.is_ok());
        const std::vector<float> want0(*l0, *l0 + h.n_vocab);
        dec->embed_token(100, plain.plan->f32(plain.embeddings));
        static_cast<int32_t*>(plain.plan->data(plain.positions))[0] = static_cast<int32_t>(p.T);
        auto l1 = dec->forward(plain, 1, p.T, &pool);
        REQUIRE(l1.is_ok());
        const std::vector<float> want1(*l1, *l1 + h.n_vocab);
        for (bool recycle : {false, true}) {
            INFO("recycle " << recycle);
            auto dp = DecoderPruning::create(*dec, {sparse_step(0, p.nv, recycle), sparse_step(2, p.nv, recycle)},
                                             DecoderPruneShape{p.T, p.nv, 2}, DType::f16, 2);
            REQUIRE(dp.is_ok());
            std::memcpy((*dp)->embeddings(), p.x.data(), p.x.size() * 4);
            std::memcpy((*dp)->positions(), p.pos.data(), p.pos.size() * 4);
            auto l = (*dp)->prefill(p.T, p.is_visual.data(), &pool);
            REQUIRE(l.is_ok());
            CHECK(std::memcmp(*l, want0.data(), want0.size() * 4) == 0);
            dec->embed_token(100, (*dp)->embeddings());
            auto ls = (*dp)->decode(static_cast<int32_t>(p.T), 0, &pool);
            REQUIRE(ls.is_ok());
            CHECK(std::memcmp(*ls, want1.data(), want1.size() * 4) == 0);
        }
    }
}

TEST_CASE("sparsevlm shorthand and plans: layers scaled by depth, a VLM plan runs, bad arguments refused") {
    // pruning_loc [2, 6, 15] of 32 = after layers r - 1 for r = 3, 7, 16: round(L·r/32) - 1, a
    // stage that lands on the one before moves to the next layer.
    struct Case {
        int n_layer;
        std::vector<int> layers;
    } cases[] = {{4, {0, 1, 2}},      // 0.375 -> 0 -> layer 0 (floor at 0); 0.875 -> 1 -> 0 -> 1; 2 -> 1 -> 2
                 {30, {2, 6, 14}},    // 2.8 -> 3, 6.6 -> 7, 15
                 {32, {2, 6, 15}}};   // the paper's
    for (const Case& c : cases) {
        INFO("L=" << c.n_layer);
        auto plan = decoder_shorthand_plan("sparsevlm", 0.5, c.n_layer, "");
        REQUIRE_MESSAGE(plan.is_ok(), plan.status().message());
        REQUIRE(plan->stages.size() == 3);
        for (size_t i = 0; i < 3; ++i) {
            CHECK(plan->stages[i].layer == c.layers[i]);
            CHECK(plan->stages[i].keep_fraction == std::pow(0.5, static_cast<double>(i + 1)));
        }
    }
    auto shallow = decoder_shorthand_plan("sparsevlm", 0.5, 3, "");
    REQUIRE(!shallow.is_ok());
    CHECK(shallow.status().message().find("too few") != std::string::npos);
    auto count = decoder_shorthand_plan("sparsevlm", 40, 4, "");
    REQUIRE(!count.is_ok());
    CHECK(count.status().message().find("fraction each") != std::string::npos);
    auto bad_positions = pruning_plan_parse(
        R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [{"at": "decoder_layer", "layer": 0,
            "method": "sparsevlm", "keep": 0.5, "args": {"positions": "sideways"}}]})",
        "plan.json");
    CHECK(!bad_positions.is_ok());

    // A stack with recycling runs from a plan in the VLM and reports the visual rows per layer:
    // divprune's half on layer 0, then 1/4 of the image's tokens + the merged rows.
    auto plan = pruning_plan_parse(
        R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [
            {"at": "after_projector", "method": "divprune", "keep": 0.5},
            {"at": "decoder_layer", "layer": 0, "method": "sparsevlm", "keep": 0.25}]})",
        "plan.json");
    REQUIRE(plan.is_ok());
    VlmConfig cfg;
    cfg.n_threads = 1;
    cfg.pruning = *plan;
    auto vlm = Vlm::load(test::bundled_model(test::kBundledSmolVlm, "text"),
                         test::bundled_model(test::kBundledSmolVlm, "mmproj"), cfg);
    REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().message());
    auto prompt = (*vlm)->build_prompt("Where is the red circle?", {test::bundled_scene_image(1000000)});
    REQUIRE(prompt.is_ok());
    SamplingParams greedy;
    greedy.temperature = 0;
    GenerationStats st;
    REQUIRE((*vlm)->generate(*prompt, 4, greedy, nullptr, &st).is_ok());
    CHECK(!(*vlm)->last_generated().empty());
    const int64_t n = st.n_image_tokens_in;
    CHECK(st.n_image_tokens == static_cast<int64_t>(std::floor(0.5 * n + 0.5)));
    const int64_t half = static_cast<int64_t>(std::floor(0.5 * n + 0.5));
    const int64_t quarter = static_cast<int64_t>(std::floor(0.25 * n + 0.5));
    CHECK(st.visual_rows_layer_sum == half + 3 * (quarter + sparsevlm_merged_rows(half - quarter)));
}
