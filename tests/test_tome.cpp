// Token merging inside the vision encoder (ToMe, ops/tome.h, issue 27):
//  - tome_match on a hand-worked case (cosines of small integer vectors, ties, [CLS] in A or B);
//  - tome_match with every registered cosine_similarity kernel against a brute-force statement
//    of the contract (double-precision cosines, rank counting) on random keys of odd sizes;
//  - the graph ops: size-weighted means and sizes worked by hand, sizes sum to T, r = 0 and
//    restore(merge(x)) is the identity;
//  - vision_merge_schedule's arithmetic and refusals;
//  - the encoder on both layouts (SigLIP and CLIP with [CLS]): merging 0 is byte-identical to
//    no merging; with merging, [CLS] is never merged, every merge removes its r rows, the sizes
//    equal the tokens each row absorbed, and the restored grid copies each row to its tokens.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <numeric>

#include "models/vision_encoder.h"
#include "ops/kernel_registry.h"
#include "ops/prune_score.h"
#include "ops/tome.h"
#include "runtime/graph.h"
#include "targets/cpu_features.h"
#include "test_util.h"

using namespace glimpse;

namespace {

std::vector<int32_t> match(const std::vector<float>& keys, int64_t T, int64_t H, int64_t D, int64_t r,
                           int64_t protected_row, TomeCosineFn cosine) {
    std::vector<uint8_t> scratch(tome_match_scratch_bytes(T, D) + 64);
    void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) & ~uintptr_t{63});
    std::vector<int32_t> assign(T, -9);
    tome_match_ref(keys.data(), T, H, D, r, protected_row, cosine, assign.data(), aligned, nullptr);
    return assign;
}

// The contract of ops/tome.h written out independently: double precision, rank counting.
std::vector<int32_t> match_oracle(const std::vector<float>& keys, int64_t T, int64_t H, int64_t D, int64_t r,
                                  int64_t prot) {
    std::vector<std::vector<double>> m(T, std::vector<double>(D, 0.0));
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t d = 0; d < D; ++d) {
            for (int64_t h = 0; h < H; ++h) m[t][d] += keys[t * H * D + h * D + d] / double(H);
        }
    }
    auto cosd = [&](int64_t i, int64_t j) {
        double dot = 0, ni = 0, nj = 0;
        for (int64_t d = 0; d < D; ++d) {
            dot += m[i][d] * m[j][d];
            ni += m[i][d] * m[i][d];
            nj += m[j][d] * m[j][d];
        }
        return dot / std::sqrt(ni * nj);
    };
    std::vector<int64_t> dest(T, -1);
    std::vector<double> best(T, -INFINITY);
    for (int64_t a = 0; a < T; a += 2) {
        for (int64_t b = 1; b < T; b += 2) {
            if (b == prot) continue;
            const double c = cosd(a, b);
            if (dest[a] < 0 || c > best[a]) {
                best[a] = c;
                dest[a] = b;
            }
        }
    }
    std::vector<bool> source(T, false);
    for (int64_t a = 0; a < T; a += 2) {
        if (a == prot) continue;
        int64_t beaten_by = 0;
        for (int64_t o = 0; o < T; o += 2) {
            if (o != prot && o != a && (best[o] > best[a] || (best[o] == best[a] && o < a))) ++beaten_by;
        }
        source[a] = beaten_by < r;
    }
    std::vector<int32_t> assign(T);
    int32_t next = 0;
    for (int64_t t = 0; t < T; ++t) assign[t] = source[t] ? -1 : next++;
    for (int64_t t = 0; t < T; ++t) {
        if (source[t]) assign[t] = assign[dest[t]];
    }
    return assign;
}

// The hand-worked keys: metric rows (head mean of two heads that differ by ±(5,-7)).
//   row: 0 (1,0)  1 (0,1)  2 (0,2)  3 (3,0)  4 (1,1)  5 (-1,0)
//   A = 0, 2, 4; B = 1, 3, 5.  cos: A0 -> B(3) 1;  A2 -> B(1) 1;  A4 -> B(1) and B(3) 0.707 (tie: 1)
std::vector<float> hand_keys() {
    const float metric[6][2] = {{1, 0}, {0, 1}, {0, 2}, {3, 0}, {1, 1}, {-1, 0}};
    std::vector<float> keys;
    for (auto& row : metric) {
        keys.insert(keys.end(), {row[0] + 5, row[1] - 7, row[0] - 5, row[1] + 7});
    }
    return keys;
}

}  // namespace

TEST_CASE("tome_match: a hand-worked case (ties to the lower index, [CLS] in A or in B)") {
    const std::vector<float> keys = hand_keys();
    const TomeCosineFn cos = cosine_similarity_ref;
    // r = 0: every token its own row.
    CHECK(match(keys, 6, 2, 2, 0, -1, cos) == std::vector<int32_t>{0, 1, 2, 3, 4, 5});
    // r = 1: A0 and A2 tie at cos 1; the lower (row 0) merges into row 3. Kept rows 1..5 -> 0..4.
    CHECK(match(keys, 6, 2, 2, 1, -1, cos) == std::vector<int32_t>{2, 0, 1, 2, 3, 4});
    // r = 2: rows 0 -> 3 and 2 -> 1. Kept rows 1, 3, 4, 5 -> 0..3.
    CHECK(match(keys, 6, 2, 2, 2, -1, cos) == std::vector<int32_t>{1, 0, 0, 1, 2, 3});
    // r = 3: row 4 too, into row 1 (its tie between rows 1 and 3 goes to the lower).
    CHECK(match(keys, 6, 2, 2, 3, -1, cos) == std::vector<int32_t>{1, 0, 0, 1, 0, 2});
    // [CLS] at row 0 (in A): never a source; r = 1 merges row 2 into row 1.
    CHECK(match(keys, 6, 2, 2, 1, 0, cos) == std::vector<int32_t>{0, 1, 1, 2, 3, 4});
    // [CLS] at row 3 (in B): never a destination; row 0's best is then row 1 (cos 0), so
    // r = 1 merges row 2 (cos 1) into row 1, and r = 2 adds row 4 (0.707) into row 1.
    CHECK(match(keys, 6, 2, 2, 1, 3, cos) == std::vector<int32_t>{0, 1, 1, 2, 3, 4});
    CHECK(match(keys, 6, 2, 2, 2, 3, cos) == std::vector<int32_t>{0, 1, 1, 2, 1, 3});
    CHECK(tome_max_merge(6, -1) == 3);
    CHECK(tome_max_merge(6, 0) == 2);
    CHECK(tome_max_merge(7, 6) == 3);  // [CLS] last, in A: 3 of the 4 A tokens
    CHECK(tome_max_merge(2, 1) == 0);  // the only B token is [CLS]: nothing can merge
}

TEST_CASE("tome_match with every cosine_similarity kernel equals the contract on random keys") {
    struct Case {
        int64_t T, H, D, r, prot;
    };
    const Case cases[] = {{7, 1, 3, 2, -1}, {37, 3, 16, 9, 36}, {64, 2, 17, 31, -1}, {65, 4, 8, 31, 64},
                          {50, 2, 9, 24, 49},  {33, 1, 5, 0, -1},  {2, 1, 4, 1, -1}};
    for (const Kernel* k : kernels_of(OpFamily::cosine_similarity)) {
        if (!isa_usable(k->isa)) continue;
        for (const Case& c : cases) {
            test::Rng rng{static_cast<uint64_t>(c.T * 977 + c.D * 13 + c.r)};
            std::vector<float> keys(c.T * c.H * c.D);
            for (float& x : keys) x = rng.uniform(-1, 1);
            CAPTURE(k->name);
            CAPTURE(c.T);
            CAPTURE(c.r);
            REQUIRE(c.r <= tome_max_merge(c.T, c.prot));
            CHECK(match(keys, c.T, c.H, c.D, c.r, c.prot, k->fn.cosine_similarity) ==
                  match_oracle(keys, c.T, c.H, c.D, c.r, c.prot));
        }
    }
}

TEST_CASE("tome graph ops: size-weighted means, sizes, restore; r = 0 is the identity") {
    const std::vector<float> keys = hand_keys();
    const int64_t T = 6, C = 3;
    std::vector<float> x(T * C);
    for (int64_t i = 0; i < T * C; ++i) x[i] = static_cast<float>(i % 7) - 2.5f + 0.25f * static_cast<float>(i);
    const std::vector<float> sizes = {1, 2, 1, 3, 1, 1};
    for (int64_t r : {0, 2}) {
        CAPTURE(r);
        Graph g;
        ValueId k_in = g.input("keys", DType::f32, Shape::of({T, 4}));
        ValueId x_in = g.input("x", DType::f32, Shape::of({T, C}));
        ValueId s_in = g.input("sizes", DType::f32, Shape::of({T}));
        ValueId assign = g.tome_match(k_in, 2, 2, r, -1);
        ValueId sizes_out = kNoValue;
        ValueId merged = g.tome_merge(x_in, assign, s_in, &sizes_out);
        ValueId restored = g.tome_restore(merged, {assign});
        for (ValueId v : {assign, merged, sizes_out, restored}) g.mark_output(v);
        auto plan = Plan::compile(std::move(g), PlanOptions{});
        REQUIRE_MESSAGE(plan.is_ok(), plan.status().to_string());
        Plan& p = **plan;
        std::memcpy(p.f32(k_in), keys.data(), keys.size() * 4);
        std::memcpy(p.f32(x_in), x.data(), x.size() * 4);
        std::memcpy(p.f32(s_in), sizes.data(), sizes.size() * 4);
        REQUIRE(p.run(RunArgs{}, nullptr).is_ok());
        const float* y = p.f32(merged);
        const float* z = p.f32(sizes_out);
        const float* back = p.f32(restored);
        CHECK(p.graph().value(merged).shape.rows() == T - r);
        CHECK(std::accumulate(z, z + (T - r), 0.0f) == doctest::Approx(9.0f));  // the input sizes' sum
        if (r == 0) {
            // Every row alone with its size: y = x exactly, restore(y) = x exactly.
            CHECK(std::memcmp(y, x.data(), x.size() * 4) == 0);
            CHECK(std::memcmp(back, x.data(), x.size() * 4) == 0);
            for (int64_t t = 0; t < T; ++t) CHECK(z[t] == sizes[t]);
        } else {
            // Hand-worked above: slot 0 = rows 1 (size 2) and 2 (size 1); slot 1 = rows 0 (1) and 3 (3).
            CHECK(std::vector<float>(z, z + 4) == std::vector<float>{3, 4, 1, 1});
            for (int64_t c = 0; c < C; ++c) {
                CHECK(y[0 * C + c] == doctest::Approx((2 * x[1 * C + c] + x[2 * C + c]) / 3).epsilon(1e-6));
                CHECK(y[1 * C + c] == doctest::Approx((x[0 * C + c] + 3 * x[3 * C + c]) / 4).epsilon(1e-6));
                CHECK(y[2 * C + c] == x[4 * C + c]);
                CHECK(y[3 * C + c] == x[5 * C + c]);
            }
            const int slot_of[6] = {1, 0, 0, 1, 2, 3};
            for (int64_t t = 0; t < T; ++t) CHECK(std::memcmp(back + t * C, y + slot_of[t] * C, C * 4) == 0);
        }
    }
}

TEST_CASE("tome graph ops refuse bad arguments with a clear error") {
    Graph g;
    ValueId k_in = g.input("keys", DType::f32, Shape::of({6, 4}));
    g.tome_match(k_in, 2, 2, 4, -1);  // at most 3 of 6
    REQUIRE(!g.status().is_ok());
    CHECK(g.status().to_string().find("r = 4 outside [0, 3]") != std::string::npos);
    Graph g2;
    ValueId k2 = g2.input("keys", DType::f32, Shape::of({6, 4}));
    g2.tome_match(k2, 3, 2, 1, -1);  // 4 columns are not 3 heads of 2
    CHECK(!g2.status().is_ok());
}

TEST_CASE("vision_merge_schedule: fractions, counts, refusals") {
    VisionHparams h;
    h.image_size = 512;
    h.patch_size = 16;  // 1024 patches
    h.n_layer_used = 12;
    auto quarter = vision_merge_schedule(h, 0.25);
    REQUIRE(quarter.is_ok());
    // round(0.25 · 1024) = 256 = 12 · 21 + 4: the first four blocks merge 22.
    const std::vector<int> want = {22, 22, 22, 22, 21, 21, 21, 21, 21, 21, 21, 21};
    CHECK(quarter->merge_per_layer == want);
    CHECK(vision_merge_token_counts(h, *quarter).back() == 1024 - 256);
    auto fixed = vision_merge_schedule(h, 8);
    REQUIRE(fixed.is_ok());
    CHECK(vision_merge_token_counts(h, *fixed).back() == 1024 - 96);
    auto none = vision_merge_schedule(h, 0);
    REQUIRE(none.is_ok());
    CHECK(!none->any());
    CHECK(!vision_merge_schedule(h, -0.5).is_ok());
    CHECK(!vision_merge_schedule(h, 2.5).is_ok());
    auto too_many = vision_merge_schedule(h, 100);  // 1024 -> 924 -> ... -> block 6 has 424 < 2·100
    REQUIRE(!too_many.is_ok());
    CHECK(too_many.status().to_string().find("at most") != std::string::npos);
    // With [CLS] (CLIP): 1025 tokens, the last protected.
    h.has_class_embedding = true;
    CHECK(vision_merge_token_counts(h, *quarter).front() == 1025);
}

namespace {

struct MergeCapture {
    std::vector<std::vector<int32_t>> assigns;  // each tome_match's output, in node order
    std::vector<std::vector<float>> sizes;      // each tome_merge's sizes
    std::vector<float> restore_in, restore_out;
    int64_t C = 0;
};

void capture_merges(void* user, const Plan& plan, int node_index) {
    MergeCapture* mc = static_cast<MergeCapture*>(user);
    const Node& n = plan.graph().nodes()[node_index];
    if (n.op == OpKind::tome_match) {
        const int32_t* a = static_cast<const int32_t*>(plan.data(n.output));
        mc->assigns.emplace_back(a, a + plan.graph().value(n.output).shape.numel());
    } else if (n.op == OpKind::tome_merge) {
        mc->sizes.emplace_back(plan.f32(n.aux), plan.f32(n.aux) + plan.graph().value(n.aux).shape.numel());
    } else if (n.op == OpKind::tome_restore) {
        const Value& in = plan.graph().value(n.inputs[0]);
        mc->C = in.shape.cols();
        mc->restore_in.assign(plan.f32(n.inputs[0]), plan.f32(n.inputs[0]) + in.shape.numel());
        const Value& out = plan.graph().value(n.output);
        mc->restore_out.assign(plan.f32(n.output), plan.f32(n.output) + out.shape.numel());
    }
}

void check_encoder_merging(const std::string& mmproj) {
    auto enc = VisionEncoder::load(mmproj);
    REQUIRE_MESSAGE(enc.is_ok(), enc.status().to_string());
    const VisionHparams& h = (*enc)->hparams();
    const int64_t S = h.image_size;
    std::vector<float> pixels(3 * S * S);
    test::Rng rng{12345};
    for (float& p : pixels) p = rng.uniform(-1, 1);
    const int64_t out_n = h.n_tokens_per_chunk() * h.n_embd_out;

    auto base = (*enc)->compile(1);
    REQUIRE(base.is_ok());
    std::vector<float> want(out_n);
    REQUIRE((*enc)->encode(*base, pixels.data(), want.data(), nullptr).is_ok());

    // Merging 0 everywhere: the same graph, the same bytes.
    auto zero = vision_merge_schedule(h, 0);
    REQUIRE(zero.is_ok());
    auto plan0 = (*enc)->compile(1, {}, *zero);
    REQUIRE(plan0.is_ok());
    CHECK(plan0->plan->graph().nodes().size() == base->plan->graph().nodes().size());
    std::vector<float> got0(out_n);
    REQUIRE((*enc)->encode(*plan0, pixels.data(), got0.data(), nullptr).is_ok());
    CHECK(std::memcmp(got0.data(), want.data(), want.size() * 4) == 0);

    // Merging half the tokens (the most the schedule allows is about that).
    auto half = vision_merge_schedule(h, 0.5);
    REQUIRE_MESSAGE(half.is_ok(), half.status().to_string());
    auto plan = (*enc)->compile(1, {}, *half);
    REQUIRE_MESSAGE(plan.is_ok(), plan.status().to_string());
    MergeCapture mc;
    std::vector<float> got(out_n);
    REQUIRE(plan->plan->run(RunArgs{}, nullptr, nullptr, nullptr).is_ok());  // warm, then observed
    std::memcpy(plan->plan->f32(plan->pixels), pixels.data(), pixels.size() * 4);
    REQUIRE(plan->plan->run(RunArgs{}, nullptr, capture_merges, &mc).is_ok());
    std::memcpy(got.data(), plan->plan->f32(plan->embeddings), got.size() * 4);
    for (float v : got) REQUIRE(std::isfinite(v));

    // Proportional attention: every block after the first merging one reads the key sizes.
    int64_t first_merge = -1, biased = 0, attentions = 0;
    for (int64_t l = 0; l < h.n_layer_used && first_merge < 0; ++l) first_merge = half->merge_per_layer[l] > 0 ? l : -1;
    for (const Node& n : plan->plan->graph().nodes()) {
        if (n.op != OpKind::attention) continue;
        ++attentions;
        biased += n.inputs.size() > 3 && n.inputs[3] != kNoValue;
    }
    REQUIRE(first_merge >= 0);
    CHECK(attentions == h.n_layer_used);
    CHECK(biased == h.n_layer_used - 1 - first_merge);

    const std::vector<int64_t> counts = vision_merge_token_counts(h, *half);
    REQUIRE(mc.assigns.size() == mc.sizes.size());
    int64_t n_merges = 0;
    for (int r : half->merge_per_layer) n_merges += r > 0;
    REQUIRE(static_cast<int64_t>(mc.assigns.size()) == n_merges);
    // Follow every original token through the merges: its row, and each row's absorbed count.
    const int64_t N0 = counts[0];
    std::vector<int64_t> row(N0);
    std::iota(row.begin(), row.end(), 0);
    size_t m = 0;
    for (int64_t l = 0; l < h.n_layer_used; ++l) {
        if (half->merge_per_layer[l] == 0) continue;
        const std::vector<int32_t>& a = mc.assigns[m];
        REQUIRE(static_cast<int64_t>(a.size()) == counts[l]);
        const int64_t out_rows = counts[l + 1];
        std::vector<int64_t> hits(out_rows, 0);
        for (int32_t v : a) {
            REQUIRE(v >= 0);
            REQUIRE(v < out_rows);
            ++hits[v];
        }
        for (int64_t v = 0; v < out_rows; ++v) CHECK(hits[v] >= 1);
        if (h.has_class_embedding) {
            // [CLS] (the last row) stays alone in the last row.
            CHECK(a.back() == out_rows - 1);
            CHECK(hits[out_rows - 1] == 1);
        }
        for (int64_t& p : row) p = a[p];
        std::vector<float> absorbed(out_rows, 0.0f);
        for (int64_t p : row) absorbed[p] += 1;
        CHECK(mc.sizes[m] == absorbed);  // sizes = tokens absorbed, so they sum to N0
        ++m;
    }
    // The restore copies each final row back to every token it absorbed.
    REQUIRE(static_cast<int64_t>(mc.restore_out.size()) == N0 * mc.C);
    for (int64_t p = 0; p < N0; ++p) {
        REQUIRE(std::memcmp(&mc.restore_out[p * mc.C], &mc.restore_in[row[p] * mc.C], mc.C * 4) == 0);
    }
    // Merging changes the result, but not beyond recognition on a random image: same scale.
    double num = 0, den = 0;
    for (int64_t i = 0; i < out_n; ++i) {
        num += (got[i] - want[i]) * double(got[i] - want[i]);
        den += want[i] * double(want[i]);
    }
    CHECK(num > 0);
    CHECK(num < den);
}

}  // namespace

TEST_CASE("encoder merging, SigLIP layout (SmolVLM): r = 0 identical, merges and restore consistent") {
    check_encoder_merging(test::golden_dir() + "/smolvlm-tiny-f32/tiny-smolvlm-mmproj-f32.gguf");
}

TEST_CASE("encoder merging, CLIP layout with [CLS] (LLaVA): [CLS] never merged") {
    check_encoder_merging(test::golden_dir() + "/llava-tiny-f32/tiny-llava-mmproj-f32.gguf");
}
