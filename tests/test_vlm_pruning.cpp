// Visual-token pruning after the projector, end to end on the bundled models (models/bundled):
// the pruned prompt's shape and positions, each wired method's kept indices against its scalar
// reference (ops/prune_select.h, ops/topk.h) run on the same encoder output, keep 1.0 against no
// plan byte for byte, and the refusals of what a model cannot run. The selection's inputs come
// from the score ops (ops/prune_score.h): tap scores from tap_scores_ref (its variants are
// bit-identical to it, tests/test_prune_score.cpp); cosine similarities from the kernel the model
// selects (held within 2 ulp of cosine_similarity_ref there), so a 1-ulp near-tie cannot make this
// test depend on the ISA level.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "models/pruning_layout.h"
#include "models/vlm.h"
#include "ops/kernel_registry.h"
#include "ops/prune_score.h"
#include "ops/prune_select.h"
#include "ops/topk.h"
#include "test_bundled.h"
#include "test_util.h"
#include "tools/common/model_writer.h"
#include "tools/scenes/scene.h"

using namespace glimpse;

namespace {

using test::bundled_model;
constexpr const char* kSmol = test::kBundledSmolVlm;
constexpr const char* kLlava = test::kBundledLlava;

bool have_bundled() { return std::filesystem::exists(bundled_model(kSmol, "text")) && std::filesystem::exists(bundled_model(kLlava, "text")); }

Result<std::unique_ptr<Vlm>> load(const char* stem, std::optional<PruningPlan> plan, bool original_positions = true) {
    VlmConfig cfg;
    cfg.n_threads = test::emulated() ? 1 : 2;
    cfg.pruning = std::move(plan);
    cfg.original_positions = original_positions;
    return Vlm::load(bundled_model(stem, "text"), bundled_model(stem, "mmproj"), cfg);
}

PruningPlan shorthand(const char* method, double keep) {
    auto p = pruning_plan_from_shorthand(method, keep);
    REQUIRE_MESSAGE(p.is_ok(), p.status().message());
    return *p;
}

// keep = floor(f * n + 0.5) split over equal chunks: floors, then the leftover units to the
// first chunks (equal fractional parts: lower index wins) -- docs/pruning.md's rounding.
std::vector<int64_t> expected_split(int64_t n_chunks, int64_t per_chunk, double f) {
    const int64_t total = static_cast<int64_t>(std::floor(f * static_cast<double>(n_chunks * per_chunk) + 0.5));
    std::vector<int64_t> k(static_cast<size_t>(n_chunks), total / n_chunks);
    for (int64_t i = 0; i < total % n_chunks; ++i) k[static_cast<size_t>(i)] += 1;
    return k;
}

// The similarity the model's selection reads: the selected cosine_similarity kernel over a and b.
std::vector<float> cosine(const std::vector<float>& a, int64_t n, const std::vector<float>& b, int64_t m, int64_t C) {
    std::vector<float> sim(static_cast<size_t>(n * m));
    std::vector<uint8_t> scratch(cosine_similarity_scratch_bytes(n, m, C) + 64);
    void* aligned = scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64;
    select_kernel(OpFamily::cosine_similarity)->fn.cosine_similarity(a.data(), n, b.data(), m, C, sim.data(), aligned, nullptr);
    return sim;
}

// Per-token scores of the taps (one per tapped block, summed), by the tap_scores reference.
std::vector<float> tap_scores(const std::vector<const float*>& taps, const VisionHparams& vh, int64_t T) {
    const int64_t ps = vh.image_size / vh.patch_size;
    const int64_t n_pos = vh.n_patches() + (vh.projector == ProjectorType::mlp ? 1 : 0);
    const int64_t s = vh.projector == ProjectorType::idefics3 ? vh.scale_factor : 1;
    std::vector<float> scores(static_cast<size_t>(T));
    std::vector<uint8_t> scratch(tap_scores_scratch_bytes(ps, s));
    for (size_t i = 0; i < taps.size(); ++i) tap_scores_ref(taps[i], vh.n_head, n_pos, ps, ps, s, i > 0, scores.data(), scratch.data());
    return scores;
}

std::vector<int32_t> reference_kept(const std::string& method, const std::vector<float>& rows, int64_t T,
                                    int64_t n_embd, int64_t side, int64_t k, uint64_t seed,
                                    const std::vector<const float*>& taps, const VisionHparams& vh,
                                    const std::vector<float>& instruction_rows) {
    std::vector<int32_t> kept(static_cast<size_t>(k));
    if (method == "uniform") {
        REQUIRE(prune_uniform_grid_ref(side, side, k, kept.data()).is_ok());
    } else if (method == "random") {
        std::vector<uint8_t> scratch(prune_random_scratch_bytes(T));
        REQUIRE(prune_random_ref(T, k, SplitMix64{seed}.next(), kept.data(), scratch.data()).is_ok());
    } else if (method == "divprune" || method == "dart" || method == "cdpruner") {
        const std::vector<float> sim = cosine(rows, T, rows, T, n_embd);
        if (method == "cdpruner") {
            // Relevance: the visual rows against the instruction's token embeddings.
            const int64_t P = static_cast<int64_t>(instruction_rows.size()) / n_embd;
            REQUIRE(P > 0);
            const std::vector<float> text_sim = cosine(rows, T, instruction_rows, P, n_embd);
            std::vector<float> relevance(static_cast<size_t>(T));
            REQUIRE(cdpruner_relevance_ref(text_sim.data(), T, P, relevance.data()).is_ok());
            std::vector<uint8_t> scratch(cdpruner_scratch_bytes(T, k));
            REQUIRE(cdpruner_ref(sim.data(), relevance.data(), T, k, kept.data(), nullptr, scratch.data()).is_ok());
        } else if (method == "divprune") {
            std::vector<uint8_t> scratch(divprune_scratch_bytes(T));
            REQUIRE(divprune_ref(sim.data(), T, k, kept.data(), nullptr, scratch.data()).is_ok());
        } else {
            // DART's pivot score after the projector: the L1 norm of each row; the plan's 4 pivots.
            std::vector<float> l1(static_cast<size_t>(T));
            for (int64_t i = 0; i < T; ++i) {
                double a = 0;
                for (int64_t e = 0; e < n_embd; ++e) a += std::fabs(static_cast<double>(rows[i * n_embd + e]));
                l1[i] = static_cast<float>(a);
            }
            std::vector<uint8_t> scratch(dart_scratch_bytes(T));
            REQUIRE(dart_ref(sim.data(), l1.data(), T, k, std::min<int64_t>(k, 4), kept.data(), scratch.data()).is_ok());
        }
    } else {
        const std::vector<float> scores = tap_scores(taps, vh, T);
        std::vector<uint8_t> scratch(static_cast<size_t>(topk_scratch_bytes(T)) + 64);
        topk_ref(scores.data(), T, k, kept.data(),
                 scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64);
    }
    return kept;
}

// Runs `method` at keep 0.25 and checks every chunk's kept indices against the reference on the
// unpruned encoder's rows (and taps), and the pruned rows against those rows.
void check_method(const char* stem, const char* method) {
    INFO(stem << " " << method);
    const ImageU8 image = test::bundled_scene_image(1000003);
    auto plain = load(stem, std::nullopt);
    REQUIRE_MESSAGE(plain.is_ok(), plain.status().message());
    auto pruned = load(stem, shorthand(method, 0.25));
    REQUIRE_MESSAGE(pruned.is_ok(), pruned.status().message());
    auto p_full = (*plain)->build_prompt("Describe this image.", {image});
    auto p_cut = (*pruned)->build_prompt("Describe this image.", {image});
    REQUIRE((p_full.is_ok() && p_cut.is_ok()));
    auto full = (*plain)->encode_images(*p_full, nullptr);
    auto cut = (*pruned)->encode_images(*p_cut, nullptr);
    REQUIRE((full.is_ok() && cut.is_ok()));

    const VisionHparams& vh = (*plain)->vision().hparams();
    const int64_t n_embd = (*plain)->text().hparams().n_embd;
    const int64_t side = (*plain)->visual_tokens_per_side(), T = side * side;
    // The taps come from a separate encoder plan over the same file (the reference's input).
    auto enc = VisionEncoder::load(bundled_model(stem, "mmproj"));
    REQUIRE(enc.is_ok());
    const PruneStage& st = *(*pruned)->pruning_stage();
    VisionTaps taps;
    const std::string name = method;
    const bool encoder_cls = vh.projector == ProjectorType::mlp;
    const bool tap_method = name == "fastervlm" || name == "attn-received" || name == "visionzip" || name == "vtc-cls";
    if (name == "vtc-cls") {
        // VTC-CLS: the [CLS] rows of blocks start_layer .. L-2 (the plan's default start 0).
        for (int l = static_cast<int>(st.number("start_layer")); l <= static_cast<int>(vh.n_layer) - 2; ++l) taps.layers.push_back(l);
        taps.cls_attention = true;
    } else if (tap_method) {
        const int layer = static_cast<int>(st.number("layer"));
        taps.layers = {layer < 0 ? static_cast<int>(vh.n_layer) + layer : layer};
        taps.cls_attention = name == "fastervlm" || (name == "visionzip" && encoder_cls);
        taps.column_mean = !taps.cls_attention;
    }
    // CDPruner's instruction: its token embedding rows.
    std::vector<float> instruction_rows(p_cut->instruction_ids.size() * static_cast<size_t>(n_embd));
    for (size_t t = 0; t < p_cut->instruction_ids.size(); ++t) {
        (*plain)->text().embed_token(p_cut->instruction_ids[t], instruction_rows.data() + t * n_embd);
    }
    if (name == "cdpruner") CHECK(!p_cut->instruction_ids.empty());
    auto plan = (*enc)->compile(1, taps);
    REQUIRE(plan.is_ok());
    ThreadPool pool(1);
    std::vector<float> rows(static_cast<size_t>(T * n_embd));

    const auto& kept = (*pruned)->last_kept();
    REQUIRE(kept.size() == p_cut->chunks.size());
    int64_t row_full = 0, row_cut = 0;
    bool any_non_uniform = false;
    for (size_t ci = 0; ci < p_cut->chunks.size(); ++ci) {
        const VlmPrompt::Chunk& c = p_cut->chunks[ci];
        CAPTURE(ci);
        std::vector<const float*> tap;
        if (tap_method) {
            REQUIRE((*enc)->encode(*plan, p_cut->images[0].chunk(c.chunk), rows.data(), &pool).is_ok());
            REQUIRE(plan->taps.size() == taps.layers.size());
            for (const VisionTapValues& tv : plan->taps) tap.push_back(plan->tap_data(taps.cls_attention ? tv.cls_attention : tv.column_mean));
        }
        std::vector<float> chunk_rows(full->begin() + row_full * n_embd, full->begin() + (row_full + T) * n_embd);
        const uint64_t seed = (std::string(method) == "random" ? static_cast<uint64_t>(st.number("seed")) : 0u) ^
                              ((static_cast<uint64_t>(c.image) * 4096u + static_cast<uint64_t>(c.chunk)) * 0x9e3779b97f4a7c15ull);
        if (name == "visionzip") {
            // visionzip_ref on the same scores, with the projected rows as metric and hidden rows:
            // the kept set is its dominant + contextual targets; each target's row is its merge.
            const std::vector<float> scores = tap_scores(tap, vh, T);
            const int64_t n_ctx = std::min<int64_t>(c.n_tokens - 1, static_cast<int64_t>(std::floor(st.number("contextual_share") * c.n_tokens + 0.5)));
            const int64_t n_dom = c.n_tokens - n_ctx;
            std::vector<int32_t> dominant(static_cast<size_t>(n_dom)), targets(static_cast<size_t>(n_ctx) + 1);
            std::vector<float> merged(static_cast<size_t>((n_ctx + 1) * n_embd));
            std::vector<uint8_t> scratch(visionzip_scratch_bytes(T, n_embd, n_ctx + 1));
            REQUIRE(visionzip_ref(scores.data(), chunk_rows.data(), n_embd, chunk_rows.data(), n_embd, T, n_dom, n_ctx,
                                  dominant.data(), targets.data(), merged.data(), scratch.data()).is_ok());
            std::vector<int32_t> want = dominant;
            want.insert(want.end(), targets.begin(), targets.begin() + n_ctx);
            std::sort(want.begin(), want.end());
            CHECK(kept[ci] == want);
            any_non_uniform = true;
            for (int64_t t = 0; t < c.n_tokens && kept[ci] == want; ++t) {
                const int32_t idx = kept[ci][t];
                const auto at = std::find(targets.begin(), targets.begin() + n_ctx, idx);
                const float* expect = at == targets.begin() + n_ctx ? chunk_rows.data() + idx * n_embd
                                                                    : merged.data() + (at - targets.begin()) * n_embd;
                double worst = 0, scale = 0;
                for (int64_t e = 0; e < n_embd; ++e) {
                    worst = std::max(worst, std::fabs(static_cast<double>(cut->data()[(row_cut + t) * n_embd + e]) - expect[e]));
                    scale = std::max(scale, std::fabs(static_cast<double>(expect[e])));
                }
                CHECK(worst <= 1e-5 * std::max(1.0, scale));  // f32 means in another order
            }
            row_full += T;
            row_cut += c.n_tokens;
            continue;
        }
        const std::vector<int32_t> want =
            reference_kept(method, chunk_rows, T, n_embd, side, c.n_tokens, seed, tap, vh, instruction_rows);
        CHECK(kept[ci] == want);
        std::vector<int32_t> grid(static_cast<size_t>(c.n_tokens));
        REQUIRE(prune_uniform_grid_ref(side, side, c.n_tokens, grid.data()).is_ok());
        any_non_uniform |= kept[ci] != grid;
        // The prompt's rows are exactly the unpruned encoder's kept rows, in raster order.
        for (int64_t t = 0; t < c.n_tokens; ++t) {
            CHECK(std::memcmp(cut->data() + (row_cut + t) * n_embd, chunk_rows.data() + kept[ci][t] * n_embd,
                              static_cast<size_t>(n_embd) * sizeof(float)) == 0);
        }
        row_full += T;
        row_cut += c.n_tokens;
    }
    if (std::string(method) != "uniform") CHECK(any_non_uniform);  // the method chose, not a grid by accident
}

}  // namespace

TEST_CASE("a pruned prompt has each chunk's kept count of image positions, re-compacted") {
    REQUIRE_MESSAGE(have_bundled(), "the bundled models are part of the repository (models/bundled/)");
    const ImageU8 image = test::bundled_scene_image(1000003);
    for (const char* stem : {kSmol, kLlava}) {
        INFO(stem);
        auto plain = load(stem, std::nullopt);
        auto pruned = load(stem, shorthand("uniform", 0.3));
        REQUIRE((plain.is_ok() && pruned.is_ok()));
        auto a = (*plain)->build_prompt("How many circles?", {image});
        auto b = (*pruned)->build_prompt("How many circles?", {image});
        REQUIRE((a.is_ok() && b.is_ok()));
        REQUIRE(a->chunks.size() == b->chunks.size());
        const int64_t T = a->chunks[0].n_tokens;
        const std::vector<int64_t> want = expected_split(static_cast<int64_t>(a->chunks.size()), T, 0.3);
        int64_t dropped = 0;
        for (size_t i = 0; i < a->chunks.size(); ++i) {
            CHECK(b->chunks[i].n_tokens_in == T);
            CHECK(b->chunks[i].n_tokens == want[i]);
            CHECK(b->chunks[i].pos == a->chunks[i].pos - dropped);  // earlier chunks' dropped tokens close up
            dropped += T - want[i];
        }
        CHECK(b->n_positions() == a->n_positions() - dropped);
        CHECK(b->n_image_tokens_in() == a->n_image_tokens());
        // The text tokens are the same, in the same order; image positions sit where the chunks say.
        std::vector<int32_t> text_a, text_b;
        for (int32_t id : a->ids) if (id >= 0) text_a.push_back(id);
        for (int32_t id : b->ids) if (id >= 0) text_b.push_back(id);
        CHECK(text_a == text_b);
        for (const VlmPrompt::Chunk& c : b->chunks) {
            for (int64_t p = c.pos; p < c.pos + c.n_tokens; ++p) CHECK(b->ids[static_cast<size_t>(p)] == -1);
            if (c.pos > 0) CHECK(b->ids[static_cast<size_t>(c.pos - 1)] >= 0);
        }
    }
}

TEST_CASE("each wired method keeps the indices its scalar reference picks from the same encoder output") {
    REQUIRE_MESSAGE(have_bundled(), "the bundled models are part of the repository (models/bundled/)");
    if (test::emulated()) {
        // Under qemu every check costs minutes (three full encodes of the image); the score ops'
        // NEON variants are held to their references by test_prune_score, so the emulated run
        // checks one method per op path: similarity + merge (visionzip: taps too), similarity +
        // relevance (cdpruner), layer-summed [CLS] taps (vtc-cls), similarity alone (divprune).
        check_method(kSmol, "divprune");
        check_method(kSmol, "visionzip");
        check_method(kLlava, "cdpruner");
        check_method(kLlava, "vtc-cls");
        return;
    }
    for (const char* m : {"random", "uniform", "divprune", "dart", "attn-received", "cdpruner", "visionzip"}) check_method(kSmol, m);
    for (const char* m : {"random", "uniform", "divprune", "dart", "fastervlm", "cdpruner", "visionzip", "vtc-cls"}) {
        check_method(kLlava, m);
    }
}

TEST_CASE("keep 1.0 answers byte for byte as no pruning") {
    REQUIRE_MESSAGE(have_bundled(), "the bundled models are part of the repository (models/bundled/)");
    const ImageU8 image = test::bundled_scene_image(1000001);
    struct Case { const char* stem; const char* method; };
    for (Case c : {Case{kSmol, "attn-received"}, Case{kSmol, "divprune"}, Case{kLlava, "fastervlm"}, Case{kLlava, "random"}}) {
      for (bool original : {false, true}) {
        INFO(c.stem << " " << c.method << (original ? " original ids" : " compact ids"));
        auto plain = load(c.stem, std::nullopt);
        VlmConfig cfg;
        cfg.n_threads = test::emulated() ? 1 : 2;
        cfg.pruning = shorthand(c.method, 1.0);
        cfg.original_positions = original;
        auto pruned = Vlm::load(bundled_model(c.stem, "text"), bundled_model(c.stem, "mmproj"), cfg);
        REQUIRE((plain.is_ok() && pruned.is_ok()));
        SamplingParams greedy;
        greedy.temperature = 0;
        std::string ta, tb;
        auto pa = (*plain)->build_prompt("Describe this image.", {image});
        auto pb = (*pruned)->build_prompt("Describe this image.", {image});
        REQUIRE((pa.is_ok() && pb.is_ok()));
        CHECK(pa->ids == pb->ids);
        REQUIRE((*plain)->generate(*pa, 24, greedy, [&](std::string_view s) { ta += s; return true; }, nullptr).is_ok());
        REQUIRE((*pruned)->generate(*pb, 24, greedy, [&](std::string_view s) { tb += s; return true; }, nullptr).is_ok());
        CHECK(!ta.empty());
        CHECK(ta == tb);
        CHECK((*plain)->last_generated() == (*pruned)->last_generated());
        const auto& la = (*plain)->last_prefill_logits();
        const auto& lb = (*pruned)->last_prefill_logits();
        REQUIRE(la.size() == lb.size());
        CHECK(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)) == 0);
      }
    }
}

TEST_CASE("a plan the model cannot run is refused at load, naming what is wrong") {
    REQUIRE_MESSAGE(have_bundled(), "the bundled models are part of the repository (models/bundled/)");
    auto refused = [](const char* stem, const PruningPlan& plan, const char* needle) {
        auto vlm = load(stem, plan);
        REQUIRE_FALSE(vlm.is_ok());
        INFO(vlm.status().message());
        CHECK(vlm.status().message().find(needle) != std::string::npos);
    };
    refused(kSmol, shorthand("fastervlm", 0.5), "[CLS]");      // SigLIP has no [CLS]
    refused(kSmol, shorthand("vtc-cls", 0.5), "[CLS]");        // VTC-CLS needs [CLS] too
    PruningPlan zip_cls = shorthand("visionzip", 0.5);         // VisionZip told to use [CLS] on SigLIP
    for (PruneArg& a : zip_cls.stages[0].args) {
        if (a.name == "score") a.text = "cls";
    }
    refused(kSmol, zip_cls, "[CLS]");
    PruningPlan decoder = shorthand("uniform", 0.5);           // a site that does not run yet
    decoder.stages[0].site = PruneSite::encoder_layer;
    refused(kSmol, decoder, "encoder_layer");
    refused(kLlava, shorthand("uniform", 100000), "100000");   // more tokens than there are
    PruningPlan split = shorthand("uniform", 0.5);  // HiRED's split needs an overview (LLaVA has none)
    split.stages[0].tile_split = TileSplit::overview_scores;
    refused(kLlava, split, "overview_scores");
    // kv_cache.type q8_0 / q4_0 / mixed run; their refusals (conflicts) are in tests/test_calibrate.cpp.
    // An empty plan is no pruning.
    auto none = load(kSmol, PruningPlan{});
    REQUIRE(none.is_ok());
    CHECK((*none)->pruning_stage() == nullptr);
}

TEST_CASE("original position ids: every kept row and text token at its unpruned position") {
    REQUIRE_MESSAGE(have_bundled(), "the bundled models are part of the repository (models/bundled/)");
    const ImageU8 image = test::bundled_scene_image(1000003);
    for (const char* stem : {kSmol, kLlava}) {
        INFO(stem);
        auto plain = load(stem, std::nullopt);
        VlmConfig cfg;  // original ids are the default
        cfg.n_threads = test::emulated() ? 1 : 2;
        cfg.pruning = shorthand("divprune", 0.25);
        auto pruned = Vlm::load(bundled_model(stem, "text"), bundled_model(stem, "mmproj"), cfg);
        REQUIRE((plain.is_ok() && pruned.is_ok()));
        auto a = (*plain)->build_prompt("How many circles?", {image});
        auto b = (*pruned)->build_prompt("How many circles?", {image});
        REQUIRE((a.is_ok() && b.is_ok()));
        SamplingParams greedy;
        greedy.temperature = 0;
        REQUIRE((*pruned)->generate(*b, 1, greedy, nullptr, nullptr).is_ok());
        const std::vector<int32_t>& pos = (*pruned)->last_prefill_positions();
        REQUIRE(static_cast<int64_t>(pos.size()) == b->n_positions());
        // The oracle: the unpruned prompt. Its text positions in order, and its chunks' starts.
        std::vector<int32_t> text_pos;
        for (size_t i = 0; i < a->ids.size(); ++i) if (a->ids[i] >= 0) text_pos.push_back(static_cast<int32_t>(i));
        size_t t = 0;
        for (size_t i = 0; i < b->ids.size(); ++i) {
            if (b->ids[i] >= 0) CHECK(pos[i] == text_pos.at(t++));
        }
        CHECK(t == text_pos.size());
        for (size_t ci = 0; ci < b->chunks.size(); ++ci) {
            const VlmPrompt::Chunk& c = b->chunks[ci];
            const std::vector<int32_t>& kept = (*pruned)->last_kept()[ci];
            REQUIRE(static_cast<int64_t>(kept.size()) == c.n_tokens);
            for (int64_t r = 0; r < c.n_tokens; ++r) {
                CHECK(pos[static_cast<size_t>(c.pos + r)] == a->chunks[ci].pos + kept[static_cast<size_t>(r)]);
            }
        }
        // Compact ids (--prune-positions compact) are 0..n-1.
        auto compact = load(stem, shorthand("divprune", 0.25), /*original_positions=*/false);
        REQUIRE(compact.is_ok());
        REQUIRE((*compact)->generate(*b, 1, greedy, nullptr, nullptr).is_ok());
        const std::vector<int32_t>& cpos = (*compact)->last_prefill_positions();
        for (size_t i = 0; i < cpos.size(); ++i) CHECK(cpos[i] == static_cast<int32_t>(i));
        // The stage's `positions` argument overrides the run's choice, both ways: compact in a
        // plan run with original ids gives 0..n-1, original in a plan run with compact ids gives
        // the unpruned positions checked above.
        auto with_positions = [&](const char* ids) {
            PruningPlan plan = shorthand("divprune", 0.25);
            bool found = false;
            for (PruneArg& arg : plan.stages[0].args) {
                if (arg.name == "positions") {
                    CHECK(arg.text == "run");  // the default defers to the run
                    arg.text = ids;
                    found = true;
                }
            }
            REQUIRE(found);
            return plan;
        };
        auto plan_compact = load(stem, with_positions("compact"), /*original_positions=*/true);
        REQUIRE(plan_compact.is_ok());
        CHECK_FALSE((*plan_compact)->original_positions());
        REQUIRE((*plan_compact)->generate(*b, 1, greedy, nullptr, nullptr).is_ok());
        const std::vector<int32_t>& ppos = (*plan_compact)->last_prefill_positions();
        REQUIRE(ppos.size() == cpos.size());
        for (size_t i = 0; i < ppos.size(); ++i) CHECK(ppos[i] == static_cast<int32_t>(i));
        auto plan_original = load(stem, with_positions("original"), /*original_positions=*/false);
        REQUIRE(plan_original.is_ok());
        CHECK((*plan_original)->original_positions());
        auto c = (*plan_original)->build_prompt("How many circles?", {image});
        REQUIRE(c.is_ok());
        REQUIRE((*plan_original)->generate(*c, 1, greedy, nullptr, nullptr).is_ok());
        CHECK((*plan_original)->last_prefill_positions() == pos);
    }
}

namespace {

PruningPlan hired_plan(const char* method, double keep, double share) {
    PruningPlan plan = shorthand(method, keep);
    plan.stages[0].tile_split = TileSplit::overview_scores;
    plan.stages[0].overview_share = share;
    return plan;
}

std::vector<int64_t> chunk_counts(const VlmPrompt& p) {
    std::vector<int64_t> out;
    for (const VlmPrompt::Chunk& c : p.chunks) out.push_back(c.n_tokens);
    return out;
}

}  // namespace

TEST_CASE("HiRED split: the overview's block-0 received attention shares the tiles' budget; the total stays planned") {
    REQUIRE_MESSAGE(have_bundled(), "the bundled models are part of the repository (models/bundled/)");
    const ImageU8 image = test::bundled_scene_image(1000003);
    auto equal = load(kSmol, shorthand("divprune", 0.25));
    auto hired = load(kSmol, hired_plan("divprune", 0.25, 0.5));
    REQUIRE_MESSAGE(hired.is_ok(), hired.status().message());
    REQUIRE(equal.is_ok());
    auto pe = (*equal)->build_prompt("How many circles?", {image});
    auto ph = (*hired)->build_prompt("How many circles?", {image});
    REQUIRE_MESSAGE(ph.is_ok(), ph.status().message());
    REQUIRE(pe.is_ok());
    // Plan-time total: the same prompt length and visual tokens as the equal split, so the text
    // plan and the KV cache planned for one serve the other.
    CHECK(ph->n_positions() == pe->n_positions());
    CHECK(ph->n_image_tokens() == pe->n_image_tokens());
    const PreprocessedImage& pre = ph->images[0];
    const int64_t side = (*hired)->visual_tokens_per_side(), T = side * side;
    const int64_t n_tiles = pre.grid_rows * pre.grid_cols;
    REQUIRE(ph->chunks.size() == static_cast<size_t>(n_tiles + 1));
    const int64_t K = static_cast<int64_t>(std::floor(0.25 * static_cast<double>(T * (n_tiles + 1)) + 0.5));

    // The overview's scores, independently: a separate encoder plan tapping block 0's received
    // attention, the overview chunk through it, the tap_scores reference (its variants are
    // bit-identical to it).
    auto enc = VisionEncoder::load(bundled_model(kSmol, "mmproj"));
    REQUIRE(enc.is_ok());
    VisionTaps taps;
    taps.layers = {Vlm::kHiredScoreLayer};
    taps.column_mean = true;
    auto plan = (*enc)->compile(1, taps);
    REQUIRE(plan.is_ok());
    ThreadPool pool(1);
    std::vector<float> rows(static_cast<size_t>(T * (*hired)->text().hparams().n_embd));
    REQUIRE((*enc)->encode(*plan, pre.chunk(pre.n_chunks - 1), rows.data(), &pool).is_ok());
    const std::vector<float> scores = tap_scores({plan->tap_data(plan->taps[0].column_mean)}, (*enc)->hparams(), T);
    REQUIRE((*hired)->last_overview_scores().size() == scores.size());
    CHECK(std::memcmp((*hired)->last_overview_scores().data(), scores.data(), scores.size() * sizeof(float)) == 0);

    // The counts, from the rule stated in docs/pruning.md: the overview keeps round(K/2); the rest
    // goes to the tiles in proportion to the overview's top round(T/2) tokens (by score, ties to
    // the lower index) under each, largest remainders first (ties: lower tile).
    std::vector<int32_t> order(static_cast<size_t>(T));
    for (int64_t i = 0; i < T; ++i) order[i] = static_cast<int32_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return scores[a] > scores[b]; });
    auto token_tile = idefics3_overview_token_tiles(idefics3_geometry_of(pre), static_cast<int>(side));
    REQUIRE(token_tile.is_ok());
    std::vector<int64_t> weight(static_cast<size_t>(n_tiles), 0);
    for (int64_t r = 0; r < (T + 1) / 2; ++r) weight[(*token_tile)[order[r]]] += 1;
    const int64_t overview_keep = std::min<int64_t>(T, static_cast<int64_t>(std::floor(0.5 * K + 0.5)));
    const int64_t rest = K - overview_keep, top = (T + 1) / 2;
    std::vector<int64_t> want(static_cast<size_t>(n_tiles + 1));
    std::vector<std::pair<int64_t, int64_t>> remainders;  // (remainder * top, -tile)
    int64_t given = 0;
    for (int64_t t = 0; t < n_tiles; ++t) {
        want[t] = rest * weight[t] / top;  // exact integer floor of rest * w / top
        REQUIRE(want[t] < T);               // no tile reaches its cap here (the rule's simple case)
        given += want[t];
        remainders.push_back({rest * weight[t] % top, -t});
    }
    std::sort(remainders.rbegin(), remainders.rend());
    for (int64_t u = 0; u < rest - given; ++u) want[-remainders[u].second] += 1;
    want[n_tiles] = overview_keep;
    CHECK(chunk_counts(*ph) == want);
    CHECK(chunk_counts(*ph) != chunk_counts(*pe));  // the overview keeps half, not its token share

    // Encoding keeps exactly those counts, and the answer runs.
    auto embd = (*hired)->encode_images(*ph, nullptr);
    REQUIRE_MESSAGE(embd.is_ok(), embd.status().message());
    for (size_t ci = 0; ci < ph->chunks.size(); ++ci) CHECK((*hired)->last_kept()[ci].size() == static_cast<size_t>(want[ci]));
    SamplingParams greedy;
    greedy.temperature = 0;
    CHECK((*hired)->generate(*ph, 4, greedy, nullptr, nullptr, &*embd).is_ok());

    // A second prompt about the same image reuses the overview's scores (same counts).
    auto ph2 = (*hired)->build_prompt("Is there a red square?", {image});
    REQUIRE(ph2.is_ok());
    CHECK(chunk_counts(*ph2) == want);

    // Overview share 0 and 1 (the counts no longer read the scores): share 0 gives the overview
    // nothing and the tiles shares by the overview tokens over each (all of them count); share 1
    // gives the overview all it can hold and the tiles the rest by their tokens.
    for (double share : {0.0, 1.0}) {
        CAPTURE(share);
        auto v = load(kSmol, hired_plan("divprune", 0.25, share));
        REQUIRE(v.is_ok());
        auto p = (*v)->build_prompt("How many circles?", {image});
        REQUIRE(p.is_ok());
        const std::vector<int64_t> got = chunk_counts(*p);
        int64_t sum = 0;
        for (int64_t g : got) sum += g;
        CHECK(sum == K);
        if (share == 1.0) {
            CHECK(got[n_tiles] == std::min<int64_t>(K, T));
        } else {
            CHECK(got[n_tiles] == 0);
            std::vector<int64_t> under(static_cast<size_t>(n_tiles), 0);
            for (int32_t t : *token_tile) under[t] += 1;
            for (int64_t t = 0; t < n_tiles; ++t) CHECK(std::llabs(got[t] * T - K * under[t]) < T);  // K * under/T, rounded
        }
    }
}

TEST_CASE("HiRED split at keep 1.0 is byte-identical to no plan") {
    REQUIRE_MESSAGE(have_bundled(), "the bundled models are part of the repository (models/bundled/)");
    const ImageU8 image = test::bundled_scene_image(1000007);
    auto plain = load(kSmol, std::nullopt);
    auto hired = load(kSmol, hired_plan("attn-received", 1.0, 0.5));
    REQUIRE((plain.is_ok() && hired.is_ok()));
    auto pa = (*plain)->build_prompt("Describe this image.", {image});
    auto pb = (*hired)->build_prompt("Describe this image.", {image});
    REQUIRE((pa.is_ok() && pb.is_ok()));
    CHECK(pa->ids == pb->ids);
    SamplingParams greedy;
    greedy.temperature = 0;
    REQUIRE((*plain)->generate(*pa, 16, greedy, nullptr, nullptr).is_ok());
    REQUIRE((*hired)->generate(*pb, 16, greedy, nullptr, nullptr).is_ok());
    CHECK((*plain)->last_generated() == (*hired)->last_generated());
    const auto& la = (*plain)->last_prefill_logits();
    const auto& lb = (*hired)->last_prefill_logits();
    REQUIRE(la.size() == lb.size());
    CHECK(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)) == 0);
}

namespace {

// A random SmolVLM-layout pair tiled as SmolVLM-256M (tile 512 px, longest edge 2048 = 4 tiles)
// at an eighth of the size: tile 64 px, longest edge 256, and 8 x 8 tokens per chunk (patch 4,
// pixel shuffle 2), so a 1024 x 768 image makes 4 x 3 tiles + the overview: 13 chunks of 64.
struct TiledRandomPair {
    test::TempDir dir{"vlm_pruning_tiled"};
    std::string text = dir.file("text.gguf"), mmproj = dir.file("mmproj.gguf");
    TiledRandomPair() {
        auto spec = tools::vlm_preset("tiny");
        REQUIRE(spec.is_ok());
        spec->vision.patch_size = 4;
        spec->vision.preproc_image_size = 256;
        REQUIRE(tools::write_random_vlm(*spec, text, mmproj).is_ok());
    }
    Result<std::unique_ptr<Vlm>> load(const PruningPlan& plan) const {
        VlmConfig cfg;
        cfg.n_threads = test::emulated() ? 1 : 2;
        cfg.pruning = plan;
        return Vlm::load(text, mmproj, cfg);
    }
};

// w x h pixels: a gradient with pseudo-random noise (test::Rng{seed}) on top.
ImageU8 noisy_gradient(int w, int h, uint64_t seed) {
    ImageU8 img;
    img.width = w;
    img.height = h;
    img.rgb.resize(img.n_bytes());
    test::Rng rng{seed};
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            uint8_t* p = img.pixel(x, y);
            p[0] = static_cast<uint8_t>((x * 255 / w + rng.integer(0, 64)) & 255);
            p[1] = static_cast<uint8_t>((y * 255 / h + rng.integer(0, 64)) & 255);
            p[2] = static_cast<uint8_t>(rng.integer(0, 256));
        }
    }
    return img;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("HiRED encodes the overview once: build_prompt's scoring pass serves the prompt, byte for byte") {
    const TiledRandomPair pair;
    const ImageU8 image = noisy_gradient(1024, 768, 27), other = noisy_gradient(1024, 768, 28);
    // The overview's rows, independently: a separately compiled encoder plan without taps.
    auto enc = VisionEncoder::load(pair.mmproj);
    REQUIRE(enc.is_ok());
    auto enc_plan = (*enc)->compile(1);
    REQUIRE(enc_plan.is_ok());
    ThreadPool pool(1);
    SamplingParams greedy;
    greedy.temperature = 0;
    // Share 0.1: the overview is pruned (keeps round(0.1 K)) and nearly every overview token counts
    // for the tiles (the top 58 of 64), so every chunk keeps some tokens; share 0.9: the overview
    // keeps all its 64 tokens (the copy path) and tiles under none of the top 6 may keep none.
    // divprune reads the rows, attn-received the taps, visionzip both and merges.
    for (double share : {0.1, 0.9}) {
        for (const char* method : {"divprune", "attn-received", "visionzip"}) {
            CAPTURE(share);
            const std::string method_name = method;
            CAPTURE(method_name);
            const PruningPlan plan = hired_plan(method, 0.5, share);
            auto once = pair.load(plan);
            REQUIRE_MESSAGE(once.is_ok(), once.status().message());
            auto p = (*once)->build_prompt("What is in the image?", {image});
            REQUIRE_MESSAGE(p.is_ok(), p.status().message());
            REQUIRE(p->chunks.size() == 13);  // 4 x 3 tiles + the overview
            CHECK((*once)->encoder_passes() == 1);  // the overview, to score it
            auto rows = (*once)->encode_images(*p, nullptr);
            REQUIRE_MESSAGE(rows.is_ok(), rows.status().message());
            int64_t encoded = 0;  // chunks that keep tokens: each takes one pass, the overview's the scoring one
            for (const VlmPrompt::Chunk& c : p->chunks) encoded += c.n_tokens > 0 ? 1 : 0;
            CHECK((*once)->encoder_passes() == encoded);
            const VlmPrompt::Chunk& ov = p->chunks.back();
            REQUIRE(ov.n_tokens > 0);
            if (share == 0.1) {
                CHECK(encoded == 13);  // 13 passes for 13 chunks, not 14
                CHECK(ov.n_tokens < ov.n_tokens_in);
            } else {
                CHECK(ov.n_tokens == ov.n_tokens_in);
            }

            // The overview's rows in the prompt are the separately encoded overview's at the kept
            // indices (visionzip adds its merged means: checked against the two-pass path below).
            const int64_t n_embd = (*once)->text().hparams().n_embd;
            std::vector<float> overview_rows(static_cast<size_t>(ov.n_tokens_in * n_embd));
            const PreprocessedImage& pre = p->images[0];
            REQUIRE((*enc)->encode(*enc_plan, pre.chunk(pre.n_chunks - 1), overview_rows.data(), &pool).is_ok());
            if (std::string(method) != "visionzip") {
                const int64_t first = p->n_image_tokens() - ov.n_tokens;  // the overview is the last chunk
                const std::vector<int32_t>& kept = (*once)->last_kept().back();
                REQUIRE(static_cast<int64_t>(kept.size()) == ov.n_tokens);
                for (int64_t i = 0; i < ov.n_tokens; ++i) {
                    CHECK(std::memcmp(rows->data() + (first + i) * n_embd, overview_rows.data() + kept[i] * n_embd,
                                      static_cast<size_t>(n_embd) * sizeof(float)) == 0);
                }
            }

            // The two-pass path: scoring another image in between leaves this overview unscored,
            // and encode_images encodes it again (1 + 1 + 13 passes). The same prompt, rows, kept
            // tokens and logits.
            auto twice = pair.load(plan);
            REQUIRE(twice.is_ok());
            auto q = (*twice)->build_prompt("What is in the image?", {image});
            REQUIRE(q.is_ok());
            REQUIRE((*twice)->build_prompt("What is in the image?", {other}).is_ok());
            auto rows2 = (*twice)->encode_images(*q, nullptr);
            REQUIRE(rows2.is_ok());
            CHECK((*twice)->encoder_passes() == encoded + 2);
            CHECK(q->ids == p->ids);
            CHECK(chunk_counts(*q) == chunk_counts(*p));
            CHECK(same_bytes(*rows, *rows2));
            CHECK((*twice)->last_kept() == (*once)->last_kept());
            REQUIRE((*once)->generate(*p, 4, greedy, nullptr, nullptr, &*rows).is_ok());
            REQUIRE((*twice)->generate(*q, 4, greedy, nullptr, nullptr, &*rows2).is_ok());
            CHECK(same_bytes((*once)->last_prefill_logits(), (*twice)->last_prefill_logits()));
            CHECK((*once)->last_generated() == (*twice)->last_generated());
            // generate() with its own encode: the overview is still the scored one (no new pass
            // for it), and the rows are the same as before.
            const int64_t before = (*once)->encoder_passes();
            REQUIRE((*once)->generate(*p, 4, greedy, nullptr, nullptr).is_ok());
            CHECK((*once)->encoder_passes() == before + encoded - 1);
            CHECK(same_bytes((*once)->last_prefill_logits(), (*twice)->last_prefill_logits()));
        }
    }
}
