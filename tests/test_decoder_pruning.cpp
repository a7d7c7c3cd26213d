// Visual-token pruning inside the language model (issue 24, models/decoder_pruning.h) on the
// bundled models (models/bundled, 4 decoder layers):
// - the rows FastV and PyramidDrop keep equal an oracle computed here from the unpruned
//   decoder's own q/k (captured after RoPE with a node observer), a double-precision softmax
//   of the last row's attention, the mean over heads and a full sort;
// - a stage that keeps every visual row gives the unpruned decoder's logits bit for bit, in the
//   prefill and in decode steps (slots and positions of every segment);
// - the KV cache's per-layer capacities follow the keep table; prefill and decode allocate nothing;
// - bad plans are refused in Vlm::load with messages naming what is wrong (a plan recording
//   another depth in decoder_layers too); the field round-trips and old plans without it fit;
// - Vlm: a keep-1.0 decoder stage gives the unpruned answer ids.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "alloc_counter.h"  // g_allocations: operator new calls
#include "models/decoder_pruning.h"
#include "models/decoder_pruning_feather.h"
#include "models/text_decoder.h"
#include "models/vlm.h"
#include "runtime/pruning_plan.h"
#include "test_bundled.h"
#include "test_util.h"
#include "tools/scenes/scene.h"

using namespace glimpse;

namespace {

using test::bundled_model;
constexpr const char* kSmol = test::kBundledSmolVlm;
constexpr const char* kLlava = test::kBundledLlava;

// A prompt of T rows: token embeddings of pseudo-random ids; rows [v0, v0 + nv) are "visual".
using Prompt = test::DecoderPrompt;
using test::random_token_prompt;

// Every rope output of an unpruned prefill, in node order (layer l: q = 2l, k = 2l + 1).
struct RopeCapture {
    std::vector<std::vector<float>> values;
    std::vector<int64_t> cols;
};

void capture_rope(void* user, const Plan& plan, int node_index) {
    const Node& node = plan.graph().nodes()[static_cast<size_t>(node_index)];
    if (node.op != OpKind::rope) return;
    auto* cap = static_cast<RopeCapture*>(user);
    const int64_t rows = plan.rows(node.output), cols = plan.graph().value(node.output).shape.cols();
    const float* d = plan.f32(node.output);
    cap->values.emplace_back(d, d + rows * cols);
    cap->cols.push_back(cols);
}

// Unpruned prefill of p with the q/k of every layer captured (f32 KV cache, one thread).
RopeCapture capture_unpruned(TextDecoder& dec, const Prompt& p) {
    RopeCapture cap;
    auto plain = dec.compile(p.T, p.T + 1, DType::f32, 1);
    REQUIRE(plain.is_ok());
    std::memcpy(plain->plan->f32(plain->embeddings), p.x.data(), p.x.size() * 4);
    std::memcpy(plain->plan->data(plain->positions), p.pos.data(), p.pos.size() * 4);
    RunArgs args;
    args.n_rows = p.T;
    REQUIRE(plain->plan->run(args, nullptr, capture_rope, &cap).is_ok());
    return cap;
}

// The oracle: visual rows kept after a stage scored by q/k (T rows), the last row rating; in
// prompt order, with the k-th best score returned for the near-tie allowance.
std::vector<int32_t> oracle_keep(const std::vector<float>& q, const std::vector<float>& k, const TextHparams& h,
                                 const std::vector<int32_t>& rows, const std::vector<uint8_t>& visual, int64_t keep,
                                 std::vector<double>* score_out) {
    const int64_t T = static_cast<int64_t>(rows.size()), D = h.head_dim, Hq = h.n_head, Hkv = h.n_head_kv;
    std::vector<double> score(static_cast<size_t>(T), 0.0);
    for (int64_t hd = 0; hd < Hq; ++hd) {
        const int64_t kvh = hd / (Hq / Hkv);
        std::vector<double> logit(static_cast<size_t>(T));
        double mx = -INFINITY;
        for (int64_t s = 0; s < T; ++s) {
            double dot = 0;
            for (int64_t d = 0; d < D; ++d) {
                dot += static_cast<double>(q[static_cast<size_t>((T - 1) * Hq * D + hd * D + d)]) *
                       k[static_cast<size_t>(s * Hkv * D + kvh * D + d)];
            }
            logit[static_cast<size_t>(s)] = dot / std::sqrt(static_cast<double>(D));
            mx = std::max(mx, logit[static_cast<size_t>(s)]);
        }
        double sum = 0;
        for (double& l : logit) sum += (l = std::exp(l - mx));
        for (int64_t s = 0; s < T; ++s) score[static_cast<size_t>(s)] += logit[static_cast<size_t>(s)] / sum / Hq;
    }
    std::vector<int32_t> vis;
    for (int64_t s = 0; s < T; ++s) {
        if (visual[static_cast<size_t>(rows[static_cast<size_t>(s)])]) vis.push_back(static_cast<int32_t>(s));
    }
    std::stable_sort(vis.begin(), vis.end(), [&](int32_t a, int32_t b) { return score[a] > score[b]; });
    vis.resize(static_cast<size_t>(keep));
    std::vector<int32_t> kept;
    for (int64_t s = 0; s < T; ++s) {
        const bool is_vis = visual[static_cast<size_t>(rows[static_cast<size_t>(s)])];
        if (!is_vis || std::find(vis.begin(), vis.end(), s) != vis.end()) kept.push_back(rows[static_cast<size_t>(s)]);
    }
    *score_out = score;
    return kept;
}

std::unique_ptr<TextDecoder> load_text(const char* stem) {
    auto dec = TextDecoder::load(bundled_model(stem, "text"));
    REQUIRE_MESSAGE(dec.is_ok(), dec.status().message());
    return std::move(*dec);
}

}  // namespace

TEST_CASE("decoder pruning: fastv and pyramiddrop keep the rows the oracle picks from the unpruned q/k") {
    for (const char* stem : {kSmol, kLlava}) {
        std::unique_ptr<TextDecoder> dec = load_text(stem);
        const TextHparams& h = dec->hparams();
        REQUIRE(h.n_layer == 4);
        const Prompt p = random_token_prompt(*dec, 61, 7, 48, 11);
        const RopeCapture cap = capture_unpruned(*dec, p);
        REQUIRE(cap.values.size() == static_cast<size_t>(2 * h.n_layer));

        for (int which = 0; which < 2; ++which) {
            // fastv after layer 1 scores with layer 1's own q/k; pyramiddrop after layer 0 with
            // layer 1's (the next layer's), recomputed at the boundary: both are layer 1's q/k of
            // the unpruned run, since layers 0..1 saw every row.
            DecoderPruneStep step;
            step.layer = which == 0 ? 1 : 0;
            step.keep = 12;
            step.score_layer = which == 0 ? PruneScoreLayer::own_last : PruneScoreLayer::next;
            step.compact_positions = which == 1;
            INFO(stem << (which == 0 ? " fastv" : " pyramiddrop"));
            DecoderPruneShape shape{p.T, p.nv, 4};
            auto dp = DecoderPruning::create(*dec, {step}, shape, DType::f32, 1);
            REQUIRE_MESSAGE(dp.is_ok(), dp.status().message());
            std::memcpy((*dp)->embeddings(), p.x.data(), p.x.size() * 4);
            std::memcpy((*dp)->positions(), p.pos.data(), p.pos.size() * 4);
            REQUIRE((*dp)->prefill(p.T, p.is_visual.data(), nullptr).is_ok());

            std::vector<int32_t> all(static_cast<size_t>(p.T));
            std::iota(all.begin(), all.end(), 0);
            std::vector<double> score;
            const std::vector<int32_t> want =
                oracle_keep(cap.values[2], cap.values[3], h, all, p.is_visual, step.keep, &score);
            const std::vector<int32_t>& got = (*dp)->kept_rows()[0];
            REQUIRE(got.size() == want.size());
            // Rows may differ only where the oracle's scores tie within float rounding.
            std::vector<double> vis_scores;
            for (int64_t s = p.v0; s < p.v0 + p.nv; ++s) vis_scores.push_back(score[static_cast<size_t>(s)]);
            std::sort(vis_scores.rbegin(), vis_scores.rend());
            const double kth = vis_scores[static_cast<size_t>(step.keep - 1)];
            for (size_t i = 0; i < got.size(); ++i) {
                if (got[i] != want[i]) {
                    CHECK(std::abs(score[static_cast<size_t>(got[i])] - kth) <= 1e-5 * kth);
                }
            }
            CHECK(std::is_sorted(got.begin(), got.end()));
            CHECK(got.back() == p.T - 1);  // the rater (a text row) survives
            // Positions of the second segment: fastv keeps the rows' ids, pyramiddrop renumbers.
            const std::vector<int32_t>& pos1 = (*dp)->segment_positions()[1];
            REQUIRE(pos1.size() == got.size());
            for (size_t i = 0; i < got.size(); ++i) CHECK(pos1[i] == (which == 0 ? got[i] : static_cast<int32_t>(i)));
            // The KV cache: layers up to the stage hold every row, later ones only the kept.
            const KvCache& kv = *(*dp)->plan().kv_cache;
            for (int l = 0; l < h.n_layer; ++l) {
                CHECK(kv.capacity(l) == (l <= step.layer ? p.T : p.T - (p.nv - step.keep)) + 4);
            }
            // Average visual rows per layer: nv on layers <= the stage, keep after it.
            CHECK((*dp)->visual_rows_layer_sum() == p.nv * (step.layer + 1) + step.keep * (h.n_layer - 1 - step.layer));
        }
    }
}

TEST_CASE("decoder pruning: a stage keeping every visual row is the unpruned decoder, prefill and decode") {
    for (const char* stem : {kSmol, kLlava}) {
        std::unique_ptr<TextDecoder> dec = load_text(stem);
        const TextHparams& h = dec->hparams();
        const Prompt p = random_token_prompt(*dec, 40, 3, 30, 5);
        const int n_steps = 3;
        ThreadPool pool(2);
        auto plain = dec->compile(p.T, p.T + n_steps, DType::f16, 2);
        REQUIRE(plain.is_ok());
        std::memcpy(plain->plan->f32(plain->embeddings), p.x.data(), p.x.size() * 4);
        std::memcpy(plain->plan->data(plain->positions), p.pos.data(), p.pos.size() * 4);
        auto l0 = dec->forward(*plain, p.T, 0, &pool);
        REQUIRE(l0.is_ok());
        std::vector<std::vector<float>> want{std::vector<float>(*l0, *l0 + h.n_vocab)};
        for (int s = 0; s < n_steps; ++s) {
            dec->embed_token(100 + s, plain->plan->f32(plain->embeddings));
            static_cast<int32_t*>(plain->plan->data(plain->positions))[0] = static_cast<int32_t>(p.T + s);
            auto l = dec->forward(*plain, 1, p.T + s, &pool);
            REQUIRE(l.is_ok());
            want.emplace_back(*l, *l + h.n_vocab);
        }
        for (bool compact : {false, true}) {
            for (PruneScoreLayer score : {PruneScoreLayer::own_last, PruneScoreLayer::next}) {
                std::vector<DecoderPruneStep> steps(2);
                steps[0].layer = 0, steps[0].keep = p.nv, steps[0].score_layer = score, steps[0].compact_positions = compact;
                steps[1].layer = 2, steps[1].keep = p.nv, steps[1].score_layer = score, steps[1].compact_positions = compact;
                auto dp = DecoderPruning::create(*dec, steps, DecoderPruneShape{p.T, p.nv, n_steps}, DType::f16, 2);
                REQUIRE(dp.is_ok());
                std::memcpy((*dp)->embeddings(), p.x.data(), p.x.size() * 4);
                std::memcpy((*dp)->positions(), p.pos.data(), p.pos.size() * 4);
                const long before = g_allocations.load();
                auto l = (*dp)->prefill(p.T, p.is_visual.data(), &pool);
                CHECK(g_allocations.load() == before);  // prefill allocates nothing
                REQUIRE(l.is_ok());
                CHECK(std::memcmp(*l, want[0].data(), want[0].size() * 4) == 0);
                for (int s = 0; s < n_steps; ++s) {
                    dec->embed_token(100 + s, (*dp)->embeddings());
                    const long b = g_allocations.load();
                    auto ls = (*dp)->decode(static_cast<int32_t>(p.T + s), s, &pool);
                    CHECK(g_allocations.load() == b);  // decode allocates nothing
                    REQUIRE(ls.is_ok());
                    CHECK_MESSAGE(std::memcmp(*ls, want[static_cast<size_t>(s + 1)].data(), want[0].size() * 4) == 0,
                                  stem << " step " << s << " compact " << compact);
                }
                // The plan holds n_steps answer rows: one more is refused, not written past the cache.
                CHECK(!(*dp)->decode(static_cast<int32_t>(p.T + n_steps), n_steps, &pool).is_ok());
            }
        }
    }
}

TEST_CASE("decoder pruning: the segments share one buffer of the planned size, with the per-segment arenas' results") {
    // pyramiddrop after layer 0 (keep 20 of 48, compact ids) then fastv after layer 2 (keep 8,
    // original ids): three segments of 61, 33 and 21 rows. The reference is the same plan with
    // one arena per segment (SegmentArenas::per_segment, the layout before sharing): kept rows,
    // prefill logits and three decode steps' logits must be the same bytes.
    for (const char* stem : {kSmol, kLlava}) {
        INFO(stem);
        std::unique_ptr<TextDecoder> dec = load_text(stem);
        const TextHparams& h = dec->hparams();
        const Prompt p = random_token_prompt(*dec, 61, 7, 48, 23);
        const int n_steps = 3;
        std::vector<DecoderPruneStep> steps(2);
        steps[0].layer = 0, steps[0].keep = 20, steps[0].score_layer = PruneScoreLayer::next;
        steps[0].compact_positions = true;
        steps[1].layer = 2, steps[1].keep = 8, steps[1].score_layer = PruneScoreLayer::own_last;
        ThreadPool pool(2);
        struct Run {
            std::vector<std::vector<int32_t>> kept;
            std::vector<std::vector<float>> logits;
        };
        auto run = [&](DecoderPruning& dp) {
            Run r;
            std::memcpy(dp.embeddings(), p.x.data(), p.x.size() * 4);
            std::memcpy(dp.positions(), p.pos.data(), p.pos.size() * 4);
            auto l = dp.prefill(p.T, p.is_visual.data(), &pool);
            REQUIRE(l.is_ok());
            r.kept = dp.kept_rows();
            r.logits.emplace_back(*l, *l + h.n_vocab);
            for (int s = 0; s < n_steps; ++s) {
                dec->embed_token(200 + s, dp.embeddings());
                auto ls = dp.decode(static_cast<int32_t>(p.T + s), s, &pool);
                REQUIRE(ls.is_ok());
                r.logits.emplace_back(*ls, *ls + h.n_vocab);
            }
            return r;
        };
        const DecoderPruneShape shape{p.T, p.nv, n_steps};
        auto separate = DecoderPruning::create(*dec, steps, shape, DType::f16, 2, SegmentArenas::per_segment);
        auto shared = DecoderPruning::create(*dec, steps, shape, DType::f16, 2, SegmentArenas::shared);
        REQUIRE((separate.is_ok() && shared.is_ok()));
        const Run want = run(**separate);
        const Run got = run(**shared);
        CHECK(got.kept == want.kept);
        REQUIRE(got.logits.size() == want.logits.size());
        for (size_t i = 0; i < got.logits.size(); ++i) {
            CHECK_MESSAGE(std::memcmp(got.logits[i].data(), want.logits[i].data(), got.logits[i].size() * 4) == 0,
                          "pass " << i);
        }

        // The buffer: what crosses a boundary (one hidden-state input of the largest segment's
        // rows, each segment's positions), then the largest segment's own arena and scratch.
        const SegmentedDecoderPlan& sp = (*shared)->plan();
        REQUIRE(sp.segments.size() == 3);
        const int64_t rows[3] = {p.T, p.T - (p.nv - 20), p.T - (p.nv - 8)};
        int64_t carried = align_up(p.T * h.n_embd * 4, 64);
        int64_t arena = 0, scratch = 0, separate_sum = 0;
        for (size_t s = 0; s < 3; ++s) {
            carried += align_up(rows[s] * 4, 64);
            arena = std::max(arena, sp.segments[s].plan->memory().arena_bytes);
            scratch = std::max(scratch, sp.segments[s].plan->memory().scratch_bytes);
            const MemoryReport& own = (*separate)->plan().segments[s].plan->memory();
            separate_sum += own.arena_bytes + own.scratch_bytes;
            CHECK(sp.segments[s].max_rows == rows[s]);
        }
        CHECK(sp.carried_bytes == carried);
        CHECK(sp.activation_bytes == arena);
        CHECK(sp.scratch_bytes == scratch);
        CHECK((*shared)->arena_bytes() == carried + arena + scratch + (*shared)->boundary_scratch_bytes());
        CHECK((*shared)->arena_bytes() < separate_sum);  // the regression the sharing removes
        // Every segment's values lie in the one buffer: inputs in the carried region (one
        // hidden-state buffer for all, positions apart), the rest in the activation region.
        const uint8_t* base = sp.buffer.get();
        for (size_t s = 0; s < 3; ++s) {
            const DecoderSegment& seg = sp.segments[s];
            CHECK(seg.plan->data(seg.embeddings) == base);
            const auto* pos = static_cast<const uint8_t*>(seg.plan->data(seg.positions));
            CHECK((pos >= base + align_up(p.T * h.n_embd * 4, 64) && pos + rows[s] * 4 <= base + carried));
            const ValueId out = s + 1 < 3 ? seg.hidden : seg.logits;
            const auto* o = static_cast<const uint8_t*>(seg.plan->data(out));
            CHECK((o >= base + carried && o < base + carried + arena));
        }
    }
}

TEST_CASE("decoder pruning: after a real drop, decode continues at the right positions and slots") {
    // fastv after layer 0 keeping 6 of 30 visual rows. Layer 0 holds all T prompt rows, so the
    // first answer token goes to its slot T; layers 1..3 hold T - 24, so it goes to slot T - 24
    // there. Its position: T everywhere with original ids; T - 24 after the stage with compact
    // ids (PyramidDrop's shift by the rows dropped).
    std::unique_ptr<TextDecoder> dec = load_text(kSmol);
    const Prompt p = random_token_prompt(*dec, 40, 3, 30, 9);
    for (bool compact : {false, true}) {
        DecoderPruneStep st;
        st.layer = 0, st.keep = 6, st.score_layer = PruneScoreLayer::own_last, st.compact_positions = compact;
        auto dp = DecoderPruning::create(*dec, {st}, DecoderPruneShape{p.T, p.nv, 2}, DType::f32, 1);
        REQUIRE(dp.is_ok());
        std::memcpy((*dp)->embeddings(), p.x.data(), p.x.size() * 4);
        std::memcpy((*dp)->positions(), p.pos.data(), p.pos.size() * 4);
        REQUIRE((*dp)->prefill(p.T, p.is_visual.data(), nullptr).is_ok());
        const int64_t kept_rows = p.T - 24;
        REQUIRE((*dp)->kept_rows()[0].size() == static_cast<size_t>(kept_rows));
        const KvCache& kv = *(*dp)->plan().kv_cache;
        const int64_t row = kv.row_elems();
        // Slot kept_rows of layer 1 is empty before the decode step (a fresh f32 cache is zero).
        const float* k1 = static_cast<const float*>(kv.k(1));
        std::vector<float> before(k1 + kept_rows * row, k1 + (kept_rows + 1) * row);
        dec->embed_token(42, (*dp)->embeddings());
        REQUIRE((*dp)->decode(static_cast<int32_t>(p.T), 0, nullptr).is_ok());
        // The decode step's position in segment 1 is read back from its positions input.
        const DecoderSegment& seg1 = (*dp)->plan().segments[1];
        const int32_t pos1 = static_cast<const int32_t*>(seg1.plan->data(seg1.positions))[0];
        CHECK(pos1 == (compact ? static_cast<int32_t>(kept_rows) : static_cast<int32_t>(p.T)));
        const float* k0 = static_cast<const float*>(kv.k(0));
        bool wrote0 = false, wrote1 = false;
        for (int64_t e = 0; e < row; ++e) {
            wrote0 |= k0[p.T * row + e] != 0.0f;
            wrote1 |= k1[kept_rows * row + e] != before[static_cast<size_t>(e)];
        }
        CHECK(wrote0);  // layer 0 holds every prompt row: the answer goes to slot T
        CHECK(wrote1);  // layer 1 holds the kept rows: the answer goes to slot T - 24
    }
}

namespace {

Result<std::unique_ptr<Vlm>> load_vlm(const char* stem, const std::string& plan_json) {
    VlmConfig cfg;
    cfg.n_threads = test::emulated() ? 1 : 2;
    if (!plan_json.empty()) {
        auto plan = pruning_plan_parse(plan_json, "plan.json");
        if (!plan.is_ok()) return plan.status();
        cfg.pruning = *plan;
    }
    return Vlm::load(bundled_model(stem, "text"), bundled_model(stem, "mmproj"), cfg);
}

std::string plan_of(const std::string& stages) {
    return R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [)" + stages + "]}";
}

// Loading SmolVLM with a plan of these stages fails with a message containing `says`.
void check_load_refused(const char* stages, const char* says) {
    INFO(stages);
    auto vlm = load_vlm(kSmol, plan_of(stages));
    REQUIRE(!vlm.is_ok());
    CHECK_MESSAGE(vlm.status().message().find(says) != std::string::npos, vlm.status().message());
}

}  // namespace

TEST_CASE("decoder pruning plans: what does not fit the model is refused in load with a clear message") {
    struct Bad {
        const char* stages;
        const char* says;
    } bad[] = {
        // a layer the 4-layer language model does not have (pruning after the last saves nothing)
        {R"({"at": "decoder_layer", "layer": 3, "method": "fastv", "keep": 0.5})", "the language model has 4 layers"},
        // a table made for a 32-layer model (PyramidDrop's layers 8, 16, 24)
        {R"({"at": "decoder_layer", "layer": 8, "method": "pyramiddrop", "keep": 0.5},
            {"at": "decoder_layer", "layer": 16, "method": "pyramiddrop", "keep": 0.25})",
         "decoder layer 8"},
        // keep counts growing with depth
        {R"({"at": "decoder_layer", "layer": 0, "method": "pyramiddrop", "keep": 0.25},
            {"at": "decoder_layer", "layer": 1, "method": "pyramiddrop", "keep": 0.5})",
         "above the"},
        // a decoder stage keeping more than the after_projector stage left
        {R"({"at": "after_projector", "method": "divprune", "keep": 0.25},
            {"at": "decoder_layer", "layer": 0, "method": "fastv", "keep": 0.5})",
         "above the"},
        // not built yet: said so, not silently ignored
        {R"({"at": "decoder_layer", "layer": 0, "method": "sparsevlm", "keep": 0.5, "args": {"debias": true}})",
         "debias"},
    };
    for (const Bad& b : bad) check_load_refused(b.stages, b.says);
    // A known method at the wrong site is refused by the plan reader.
    auto p = pruning_plan_parse(plan_of(R"({"at": "after_projector", "method": "fastv", "keep": 0.5})"), "plan.json");
    REQUIRE(!p.is_ok());
    CHECK(p.status().message().find("cannot run at after_projector") != std::string::npos);
    auto q = pruning_plan_parse(
        plan_of(R"({"at": "decoder_layer", "layer": 0, "method": "fastv", "keep": 0.5, "args": {"positions": "x"}})"),
        "plan.json");
    CHECK(!q.is_ok());
}

TEST_CASE("decoder pruning in the VLM: keep 1.0 answers as unpruned; a stack runs and shrinks the KV cache") {
    for (const char* stem : {kSmol, kLlava}) {
        INFO(stem);
        auto base = load_vlm(stem, "");
        REQUIRE_MESSAGE(base.is_ok(), base.status().message());
        auto keep1 = load_vlm(stem, plan_of(R"({"at": "decoder_layer", "layer": 0, "method": "fastv", "keep": 1.0},
                                             {"at": "decoder_layer", "layer": 1, "method": "pyramiddrop", "keep": 1.0})"));
        REQUIRE_MESSAGE(keep1.is_ok(), keep1.status().message());
        auto stack = load_vlm(stem, plan_of(R"({"at": "after_projector", "method": "divprune", "keep": 0.5},
                                             {"at": "decoder_layer", "layer": 0, "method": "pyramiddrop", "keep": 0.25},
                                             {"at": "decoder_layer", "layer": 1, "method": "pyramiddrop", "keep": 0.125})"));
        REQUIRE_MESSAGE(stack.is_ok(), stack.status().message());
        SamplingParams greedy;
        greedy.temperature = 0;
        for (uint64_t seed : {1000000ull, 1000001ull}) {
            const ImageU8 img = test::bundled_scene_image(seed);
            auto run = [&](Vlm& vlm) {
                auto prompt = vlm.build_prompt("Where is the red circle?", std::vector<ImageU8>{img});
                REQUIRE(prompt.is_ok());
                GenerationStats st;
                REQUIRE(vlm.generate(*prompt, 6, greedy, nullptr, &st).is_ok());
                return std::make_pair(vlm.last_generated(), st);
            };
            const auto [ids0, st0] = run(**base);
            const auto [ids1, st1] = run(**keep1);
            CHECK(ids0 == ids1);
            CHECK((*keep1)->last_prefill_logits() == (*base)->last_prefill_logits());
            CHECK(st1.visual_rows_layer_sum == st0.visual_rows_layer_sum);
            const auto [ids2, st2] = run(**stack);
            CHECK(!ids2.empty());
            // Visual rows per layer: divprune's half (rounded half up) on layer 0, then 1/4 of the
            // image's tokens on layer 1 and 1/8 on layers 2 and 3.
            const int64_t n = st0.n_image_tokens;
            const int64_t half = static_cast<int64_t>(std::floor(0.5 * n + 0.5));
            const int64_t quarter = static_cast<int64_t>(std::floor(0.25 * n + 0.5));
            const int64_t eighth = static_cast<int64_t>(std::floor(0.125 * n + 0.5));
            CHECK(st2.visual_rows_layer_sum == half + quarter + 2 * eighth);
            // KV: the unpruned prompt minus the rows each layer drops, plus the 6 answer rows.
            const int64_t row_bytes = 2 * (*stack)->text().hparams().n_head_kv * (*stack)->text().hparams().head_dim;
            const int64_t P = st2.n_prompt;
            int64_t want = 0;
            for (int64_t rows : {P, P - (half - quarter), P - (half - eighth), P - (half - eighth)}) {
                want += 2 * (((rows + 6) * row_bytes + 63) / 64 * 64);
            }
            CHECK((*stack)->memory().kv_cache == want);
            CHECK((*stack)->memory().kv_cache < (*stack)->unpruned_kv_bytes(P + 6));
        }
    }
}

TEST_CASE("decoder pruning plans: decoder_layers records the depth; another depth is refused, old plans still fit") {
    // A 4-layer table whose layers all exist on the bundled models, marked for 30 layers (the
    // SmolVLM-256M depth): refused in load, naming both depths. The same stages marked 4, or not
    // marked (version-1 plans before the field), load.
    const std::string stages = R"({"at": "decoder_layer", "layer": 0, "method": "fastv", "keep": 0.5},
        {"at": "decoder_layer", "layer": 1, "method": "pyramiddrop", "keep": 0.25})";
    auto with_depth = [&](const char* depth) {
        return R"({"format": "glimpse.pruning-plan", "version": 1, "decoder_layers": )" + std::string(depth) +
               R"(, "stages": [)" + stages + "]}";
    };
    auto other = load_vlm(kSmol, with_depth("30"));
    REQUIRE(!other.is_ok());
    const std::string msg = other.status().message();
    CHECK_MESSAGE(msg.find("decoder_layers") != std::string::npos, msg);
    CHECK_MESSAGE(msg.find("made for a language model of 30 layers; this one has 4") != std::string::npos, msg);
    auto same = load_vlm(kSmol, with_depth("4"));
    CHECK_MESSAGE(same.is_ok(), same.status().message());
    auto unmarked = load_vlm(kSmol, plan_of(stages));
    CHECK_MESSAGE(unmarked.is_ok(), unmarked.status().message());

    // pruning_plan_fit itself, against the shape's depth alone.
    auto plan = pruning_plan_parse(with_depth("4"), "plan.json");
    REQUIRE_MESSAGE(plan.is_ok(), plan.status().message());
    CHECK(plan->decoder_layers == 4);
    PruningModelShape shape;
    shape.tokens_per_tile = 16, shape.n_tiles = 4, shape.has_overview = true, shape.pixel_shuffle = 4;
    shape.encoder_layers = 4, shape.decoder_layers = 4;
    CHECK(pruning_plan_fit(*plan, shape, "plan.json").is_ok());
    shape.decoder_layers = 5;  // every layer of the table exists on 5 layers too
    auto refused = pruning_plan_fit(*plan, shape, "plan.json");
    REQUIRE(!refused.is_ok());
    CHECK_MESSAGE(refused.status().message().find("plan.json: decoder_layers") != std::string::npos,
                  refused.status().message());

    // Round trip: written by pruning_plan_to_json, read back the same; absent stays absent.
    auto back = pruning_plan_parse(pruning_plan_to_json(*plan), "back.json");
    REQUIRE_MESSAGE(back.is_ok(), back.status().message());
    CHECK(back->decoder_layers == 4);
    CHECK(pruning_plan_to_json(*back) == pruning_plan_to_json(*plan));
    auto old = pruning_plan_parse(plan_of(stages), "old.json");
    REQUIRE(old.is_ok());
    CHECK(old->decoder_layers == 0);
    CHECK(pruning_plan_to_json(*old).find("decoder_layers") == std::string::npos);

    // The shorthand records the depth it scaled its layers to.
    for (const int depth : {4, 30}) {
        auto sh = decoder_shorthand_plan("pyramiddrop", 0.5, depth, "");
        REQUIRE(sh.is_ok());
        CHECK(sh->decoder_layers == depth);
    }
    // Not a depth: refused by the reader.
    for (const char* bad : {"0", "-4", "2.5", "\"4\"", "5000"}) {
        INFO(bad);
        auto b = pruning_plan_parse(with_depth(bad), "plan.json");
        REQUIRE(!b.is_ok());
        CHECK_MESSAGE(b.status().message().find("decoder_layers") != std::string::npos, b.status().message());
    }
}

TEST_CASE("decoder pruning shorthand: --prune fastv|pyramiddrop --keep F at the paper's layers scaled by depth") {
    // The layers of docs/pruning.md's table, worked by hand: FastV prunes after layer K-1 = 1 of
    // 32, PyramidDrop after layers 7, 15, 23 (layer_list 8, 16, 24); scaled as round(L·r/32) - 1.
    struct Case {
        const char* method;
        double keep;
        int n_layer;
        std::vector<int> layers;
        std::vector<double> fractions;
    } cases[] = {
        {"fastv", 0.25, 4, {0}, {0.25}},                     // round(0.25) - 1 < 0: layer 0
        {"fastv", 0.5, 30, {1}, {0.5}},                      // round(1.875) - 1
        {"fastv", 0.5, 32, {1}, {0.5}},                      // the paper's own
        {"pyramiddrop", 0.5, 4, {0, 1, 2}, {0.5, 0.25, 0.125}},
        {"pyramiddrop", 0.5, 30, {7, 14, 22}, {0.5, 0.25, 0.125}},  // 7.5 -> 8, 15, 22.5 -> 23
        {"pyramiddrop", 0.5, 32, {7, 15, 23}, {0.5, 0.25, 0.125}},
        {"pyramiddrop", 1.0, 4, {0, 1, 2}, {1.0, 1.0, 1.0}},
    };
    for (const Case& c : cases) {
        INFO(c.method << " L=" << c.n_layer);
        auto plan = decoder_shorthand_plan(c.method, c.keep, c.n_layer, "");
        REQUIRE_MESSAGE(plan.is_ok(), plan.status().message());
        REQUIRE(plan->stages.size() == c.layers.size());
        for (size_t i = 0; i < c.layers.size(); ++i) {
            const PruneStage& st = plan->stages[i];
            CHECK(st.site == PruneSite::decoder_layer);
            CHECK(st.method == c.method);
            CHECK(st.layer == c.layers[i]);
            CHECK(st.keep_fraction == c.fractions[i]);
        }
    }
    // A count for fastv; a positions override reaches every stage.
    auto counted = decoder_shorthand_plan("fastv", 12, 4, "");
    REQUIRE(counted.is_ok());
    CHECK(counted->stages[0].keep_count == 12);
    auto original = decoder_shorthand_plan("pyramiddrop", 0.5, 4, "original");
    REQUIRE(original.is_ok());
    for (const PruneStage& st : original->stages) CHECK(st.text("positions") == "original");
    // Refused, each with what is wrong.
    struct Bad {
        const char* method;
        double keep;
        int n_layer;
        const char* says;
    } bad[] = {
        {"pyramiddrop", 0.5, 3, "too few"},     // layers 0, 1, 1: not distinct
        {"fastv", 0.5, 1, "too few"},           // no layer before the last
        {"pyramiddrop", 8, 30, "fraction each"},  // counts per stage need a plan file
        {"fastv", 2.5, 30, "whole number"},
        {"fastv", 0, 30, "(0, 1]"},
        {"divprune", 0.5, 30, "fastv, pyramiddrop"},
    };
    for (const Bad& b : bad) {
        INFO(b.method << " " << b.keep << " L=" << b.n_layer);
        auto plan = decoder_shorthand_plan(b.method, b.keep, b.n_layer, "");
        REQUIRE(!plan.is_ok());
        CHECK_MESSAGE(plan.status().message().find(b.says) != std::string::npos, plan.status().message());
    }
}

// ---- feather and attention debiasing (models/decoder_pruning_feather.h, ops/rope_bias.h) ----

namespace {

// The debias divisor as ops/rope_bias.h states it (b(Δ) = Σ 2cos(Δθ_i) + D − n_rot, clamped at
// D/16); b itself is checked against the RoPE op in tests/test_rope_bias.cpp.
double debias_divisor(const TextHparams& h, int64_t delta) {
    double b = static_cast<double>(h.head_dim - h.n_rot);
    for (int64_t i = 0; i < h.n_rot / 2; ++i) {
        b += 2.0 * std::cos(static_cast<double>(delta) * std::pow(static_cast<double>(h.rope_base), -2.0 * i / h.n_rot));
    }
    return std::max(b, static_cast<double>(h.head_dim) / 16.0);
}

}  // namespace

TEST_CASE("decoder pruning debias: the rows kept are the oracle's attention / RoPE-only bias; it changes the pick") {
    int n_changed = 0;
    for (const char* stem : {kSmol, kLlava}) {
        std::unique_ptr<TextDecoder> dec = load_text(stem);
        const TextHparams& h = dec->hparams();
        const Prompt p = random_token_prompt(*dec, 61, 7, 48, 11);
        const RopeCapture cap = capture_unpruned(*dec, p);
        std::vector<int32_t> all(static_cast<size_t>(p.T));
        std::iota(all.begin(), all.end(), 0);
        std::vector<double> score;
        const std::vector<int32_t> undebiased = oracle_keep(cap.values[2], cap.values[3], h, all, p.is_visual, 12, &score);
        // The oracle: layer 1's attention of the last row, ÷ the bias of each row's distance.
        std::vector<int32_t> vis;
        for (int64_t s = p.v0; s < p.v0 + p.nv; ++s) {
            score[static_cast<size_t>(s)] /= debias_divisor(h, p.T - 1 - s);
            vis.push_back(static_cast<int32_t>(s));
        }
        std::stable_sort(vis.begin(), vis.end(), [&](int32_t a, int32_t b) { return score[a] > score[b]; });
        const double kth = score[static_cast<size_t>(vis[11])];
        for (int which = 0; which < 2; ++which) {
            INFO(stem << (which == 0 ? " fastv" : " pyramiddrop") << " debias");
            DecoderPruneStep step;
            step.layer = which == 0 ? 1 : 0;
            step.keep = 12;
            step.score_layer = which == 0 ? PruneScoreLayer::own_last : PruneScoreLayer::next;
            step.compact_positions = which == 1;  // segment 0 numbers 0..T-1 either way
            step.debias = true;
            auto dp = DecoderPruning::create(*dec, {step}, DecoderPruneShape{p.T, p.nv, 4}, DType::f32, 1);
            REQUIRE_MESSAGE(dp.is_ok(), dp.status().message());
            std::memcpy((*dp)->embeddings(), p.x.data(), p.x.size() * 4);
            std::memcpy((*dp)->positions(), p.pos.data(), p.pos.size() * 4);
            REQUIRE((*dp)->prefill(p.T, p.is_visual.data(), nullptr).is_ok());
            const std::vector<int32_t>& got = (*dp)->kept_rows()[0];
            REQUIRE(got.size() == static_cast<size_t>(p.T - p.nv + 12));
            int64_t n_vis = 0;
            for (int32_t r : got) {
                if (!p.is_visual[static_cast<size_t>(r)]) continue;
                ++n_vis;
                // Every kept visual row is in the oracle's top 12 or ties its 12th within rounding.
                CHECK(score[static_cast<size_t>(r)] >= kth * (1 - 1e-5));
            }
            CHECK(n_vis == 12);
            if (got != undebiased) ++n_changed;
        }
    }
    // The correction is not a no-op on these prompts (the undebiased rows are the plain oracle's).
    CHECK(n_changed >= 1);
}

TEST_CASE("decoder pruning feather: the grid stage keeps exactly its grid, then an attention stage prunes further") {
    for (const char* stem : {kSmol, kLlava}) {
        INFO(stem);
        std::unique_ptr<TextDecoder> dec = load_text(stem);
        const TextHparams& h = dec->hparams();
        const Prompt p = random_token_prompt(*dec, 61, 7, 48, 11);  // visual rows 7..54: three 4 x 4 chunks
        DecoderPruneStep grid;
        grid.layer = 0;
        grid.keep = 12;
        grid.select = DecoderSelect::uniform_grid;
        grid.score_layer = PruneScoreLayer::own_last;
        REQUIRE(feather_grid_rows({{16, 4}, {16, 4}, {16, 4}}, 12, &grid.grid_rows).is_ok());
        DecoderPruneStep attn;
        attn.layer = 1;
        attn.keep = 6;
        attn.score_layer = PruneScoreLayer::own_last;
        attn.debias = true;
        const int n_answer = 3;
        auto dp = DecoderPruning::create(*dec, {grid, attn}, DecoderPruneShape{p.T, p.nv, n_answer}, DType::f32, 1);
        REQUIRE_MESSAGE(dp.is_ok(), dp.status().message());
        std::memcpy((*dp)->embeddings(), p.x.data(), p.x.size() * 4);
        std::memcpy((*dp)->positions(), p.pos.data(), p.pos.size() * 4);
        const long allocs = g_allocations.load();
        REQUIRE((*dp)->prefill(p.T, p.is_visual.data(), nullptr).is_ok());
        CHECK(g_allocations.load() == allocs);  // prefill allocates nothing (grid and debias included)
        // The grid of each 4 x 4 chunk is raster 5, 7, 13, 15 (worked in tests/test_rope_bias.cpp).
        std::vector<int32_t> want;
        for (int64_t r = 0; r < p.v0; ++r) want.push_back(static_cast<int32_t>(r));
        for (int c = 0; c < 3; ++c) {
            for (int g : {5, 7, 13, 15}) want.push_back(static_cast<int32_t>(p.v0 + 16 * c + g));
        }
        for (int64_t r = p.v0 + p.nv; r < p.T; ++r) want.push_back(static_cast<int32_t>(r));
        CHECK((*dp)->kept_rows()[0] == want);
        // Original ids: the second segment runs the kept rows at their prompt positions.
        CHECK((*dp)->segment_positions()[1] == want);
        // The attention stage keeps 6 of the 12 grid rows and every text row.
        const std::vector<int32_t>& second = (*dp)->kept_rows()[1];
        CHECK(second.size() == want.size() - 6);
        for (int32_t r : second) CHECK(std::find(want.begin(), want.end(), r) != want.end());
        CHECK((*dp)->visual_rows_layer_sum() == 48 + 12 + 2 * 6);
        for (int64_t step = 0; step < n_answer; ++step) {
            dec->embed_token(1 + static_cast<int32_t>(step), (*dp)->embeddings());
            const long before = g_allocations.load();
            REQUIRE((*dp)->decode(static_cast<int32_t>(p.T + step), step, nullptr).is_ok());
            CHECK(g_allocations.load() == before);
        }
        const KvCache& kv = *(*dp)->plan().kv_cache;
        CHECK(kv.capacity(0) == p.T + n_answer);
        CHECK(kv.capacity(1) == p.T - 36 + n_answer);
        CHECK(kv.capacity(3) == p.T - 42 + n_answer);
        (void)h;
        // A grid that is not the step's keep, or not ascending, is refused.
        DecoderPruneStep bad = grid;
        bad.grid_rows.pop_back();
        auto refused = DecoderPruning::create(*dec, {bad}, DecoderPruneShape{p.T, p.nv, 1}, DType::f32, 1);
        REQUIRE(!refused.is_ok());
        CHECK(refused.status().message().find("uniform grid has 11 rows") != std::string::npos);
    }
}

TEST_CASE("decoder pruning feather in the VLM: shorthand layers, the budget per layer, debias, refusals") {
    // Shorthand: the uniform grid where FastV prunes (max(0, round(L·2/32) − 1)), the attention
    // prune at round(L·16/32) − 1, keeping F then F².
    struct Case {
        int n_layer;
        std::vector<int> layers;
    } cases[] = {{4, {0, 1}}, {30, {1, 14}}, {32, {1, 15}}};
    for (const Case& c : cases) {
        auto plan = decoder_shorthand_plan("feather", 0.5, c.n_layer, "");
        REQUIRE_MESSAGE(plan.is_ok(), plan.status().message());
        REQUIRE(plan->stages.size() == 2);
        CHECK(plan->stages[0].layer == c.layers[0]);
        CHECK(plan->stages[1].layer == c.layers[1]);
        CHECK(plan->stages[0].keep_fraction == 0.5);
        CHECK(plan->stages[1].keep_fraction == 0.25);
        CHECK(plan->stages[0].text("criterion") == "auto");
    }
    auto counted = decoder_shorthand_plan("feather", 8, 30, "");
    REQUIRE(!counted.is_ok());
    CHECK(counted.status().message().find("fraction each") != std::string::npos);
    // --debias: on every attention stage, not on feather's grid.
    auto fe = decoder_shorthand_plan("feather", 0.5, 4, "");
    REQUIRE(fe.is_ok());
    REQUIRE(pruning_plan_enable_debias(&*fe, "--debias").is_ok());
    CHECK(fe->stages[0].number("debias") == 0);
    CHECK(fe->stages[1].number("debias") == 1);
    auto post = pruning_plan_from_shorthand("divprune", 0.5);
    REQUIRE(post.is_ok());
    auto no_decoder = pruning_plan_enable_debias(&*post, "--debias");
    REQUIRE(!no_decoder.is_ok());
    CHECK(no_decoder.message().find("no such stage") != std::string::npos);

    for (const char* stem : {kSmol, kLlava}) {
        INFO(stem);
        VlmConfig cfg;
        cfg.n_threads = test::emulated() ? 1 : 2;
        cfg.pruning = *fe;  // feather 0.5 after layers 0 and 1, the attention stage debiased
        auto vlm = Vlm::load(bundled_model(stem, "text"), bundled_model(stem, "mmproj"), cfg);
        REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().message());
        SamplingParams greedy;
        greedy.temperature = 0;
        auto prompt = (*vlm)->build_prompt("Where is the red circle?", std::vector<ImageU8>{test::bundled_scene_image(1000000)});
        REQUIRE(prompt.is_ok());
        GenerationStats st;
        REQUIRE((*vlm)->generate(*prompt, 4, greedy, nullptr, &st).is_ok());
        CHECK(!(*vlm)->last_generated().empty());
        // Layer 0 sees every visual token, layer 1 half, layers 2 and 3 a quarter (rounded half up).
        const int64_t n = st.n_image_tokens;
        const int64_t half = static_cast<int64_t>(std::floor(0.5 * n + 0.5));
        const int64_t quarter = static_cast<int64_t>(std::floor(0.25 * n + 0.5));
        CHECK(st.visual_rows_layer_sum == n + half + 2 * quarter);
    }
    // Refused in load, each naming what is wrong.
    struct Bad {
        const char* stages;
        const char* says;
    } bad[] = {
        {R"({"at": "decoder_layer", "layer": 0, "method": "fastv", "keep": 0.5},
            {"at": "decoder_layer", "layer": 1, "method": "feather", "keep": 0.25, "args": {"criterion": "uniform"}})",
         "only the first decoder stage"},
        {R"({"at": "decoder_layer", "layer": 0, "method": "feather", "keep": 0.5, "args": {"debias": true}})",
         "no attention score to debias"},
    };
    for (const Bad& b : bad) check_load_refused(b.stages, b.says);
    auto parse = pruning_plan_parse(
        plan_of(R"({"at": "decoder_layer", "layer": 0, "method": "feather", "keep": 0.5, "args": {"criterion": "x"}})"),
        "plan.json");
    CHECK(!parse.is_ok());
}
