// Attention taps of the vision encoders (pruning signals):
//  - the [CLS] tap equals the [CLS] row of a full reference attention that this
//    test computes in double precision from the block's own q and k;
//  - the column-mean tap equals the column means of that full matrix;
//  - taps change nothing else (embeddings bit-identical to a plan without taps);
//  - taps cost no heap allocation in run(), and are identical for 1 and 3 threads;
//  - SigLIP (no [CLS]) offers the column-mean tap and rejects the [CLS] tap.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "models/vision_encoder.h"
#include "test_util.h"

#include "alloc_counter.h"  // g_allocations: operator new calls (a malloc hook under ASan)

using namespace glimpse;

namespace {

struct Captured {
    int attention_node = -1;  // the node whose q/k we capture
    std::vector<float> q, k;
    int64_t rows = 0, cols = 0, k_rows = 0;
};

void capture(void* user, const Plan& plan, int node_index) {
    Captured* c = static_cast<Captured*>(user);
    if (node_index != c->attention_node) return;
    const Node& n = plan.graph().nodes()[node_index];
    const Value& q = plan.graph().value(n.inputs[0]);
    const Value& k = plan.graph().value(n.inputs[1]);
    c->rows = q.shape.rows();
    c->cols = q.shape.cols();
    c->k_rows = k.shape.rows();
    c->q.assign(plan.f32(n.inputs[0]), plan.f32(n.inputs[0]) + q.shape.numel());
    c->k.assign(plan.f32(n.inputs[1]), plan.f32(n.inputs[1]) + k.shape.numel());
}

// P[h][t][s] = softmax_s(q_t,h · k_s,h / sqrt(D)), in double.
std::vector<double> full_attention(const Captured& c, int64_t H) {
    const int64_t D = c.cols / H, T = c.rows, S = c.k_rows;
    std::vector<double> p(static_cast<size_t>(H * T * S));
    for (int64_t h = 0; h < H; ++h) {
        for (int64_t t = 0; t < T; ++t) {
            double* row = &p[(h * T + t) * S];
            double mx = -1e300;
            for (int64_t s = 0; s < S; ++s) {
                double dot = 0;
                for (int64_t d = 0; d < D; ++d) dot += double(c.q[t * c.cols + h * D + d]) * c.k[s * c.cols + h * D + d];
                row[s] = dot / std::sqrt(double(D));
                mx = std::max(mx, row[s]);
            }
            double sum = 0;
            for (int64_t s = 0; s < S; ++s) sum += row[s] = std::exp(row[s] - mx);
            for (int64_t s = 0; s < S; ++s) row[s] /= sum;
        }
    }
    return p;
}

int attention_node_with_tap(const Plan& plan, ValueId tap) {
    const auto& nodes = plan.graph().nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (nodes[i].aux == tap) return static_cast<int>(i);
    }
    return -1;
}

}  // namespace

TEST_CASE("LLaVA/CLIP taps: [CLS] row and column means equal a full reference attention") {
    const std::string dir = test::golden_dir() + "/llava-tiny-f32";
    auto enc = VisionEncoder::load(dir + "/tiny-llava-mmproj-fl-f32.gguf");
    REQUIRE_MESSAGE(enc.is_ok(), enc.status().to_string());
    const VisionHparams& h = (*enc)->hparams();
    REQUIRE(h.has_class_embedding);
    std::vector<float> pixels = test::read_f32_file(dir + "/chelsea__describe__feature-layer/preproc_0.f32");
    REQUIRE(pixels.size() == static_cast<size_t>(3 * h.image_size * h.image_size));

    VisionTaps taps;
    taps.layers = {0, 2};
    taps.cls_attention = true;
    taps.column_mean = true;
    std::vector<float> embd_plain(h.n_tokens_per_chunk() * h.n_embd_out), embd_tapped(embd_plain.size());
    std::vector<std::vector<float>> tap_by_threads[2];
    for (int threads : {1, 3}) {
        auto plain = (*enc)->compile(threads);
        auto tapped = (*enc)->compile(threads, taps);
        REQUIRE_MESSAGE(tapped.is_ok(), tapped.status().to_string());
        REQUIRE(tapped->taps.size() == 2);
        ThreadPool pool(threads);
        REQUIRE((*enc)->encode(*plain, pixels.data(), embd_plain.data(), &pool).is_ok());
        REQUIRE((*enc)->encode(*tapped, pixels.data(), embd_tapped.data(), &pool).is_ok());
        CHECK(embd_plain == embd_tapped);

        const int64_t n_pos = h.n_patches() + 1;
        for (const VisionTapValues& tv : tapped->taps) {
            Captured c;
            c.attention_node = attention_node_with_tap(*tapped->plan, tv.column_mean);
            REQUIRE(c.attention_node >= 0);
            std::memcpy(tapped->plan->f32(tapped->pixels), pixels.data(), pixels.size() * 4);
            const long before = g_allocations.load();
            REQUIRE(tapped->plan->run(RunArgs{}, &pool).is_ok());
            CHECK(g_allocations.load() == before);  // taps allocate nothing
            REQUIRE(tapped->plan->run(RunArgs{}, &pool, capture, &c).is_ok());
            REQUIRE(c.k_rows == n_pos);
            const std::vector<double> p = full_attention(c, h.n_head);
            const float* cls = tapped->tap_data(tv.cls_attention);
            const float* colmean = tapped->tap_data(tv.column_mean);
            // The [CLS] query is row N (llama.cpp appends [CLS] after the patches).
            double max_err_cls = 0, max_err_col = 0;
            for (int64_t hh = 0; hh < h.n_head; ++hh) {
                double row_sum = 0;
                for (int64_t s = 0; s < n_pos; ++s) {
                    const double want = p[(hh * n_pos + (n_pos - 1)) * n_pos + s];
                    max_err_cls = std::max(max_err_cls, std::fabs(cls[hh * n_pos + s] - want));
                    row_sum += cls[hh * n_pos + s];
                    double col = 0;
                    for (int64_t t = 0; t < n_pos; ++t) col += p[(hh * n_pos + t) * n_pos + s];
                    max_err_col = std::max(max_err_col, std::fabs(colmean[hh * n_pos + s] - col / n_pos));
                }
                CHECK(row_sum == doctest::Approx(1.0).epsilon(1e-5));
            }
            // f32 softmax of f32 scores vs a double reference: a few ulp of probabilities ≤ 1
            CHECK(max_err_cls < 1e-6);
            CHECK(max_err_col < 1e-6);
            std::vector<float> both(cls, cls + h.n_head * n_pos);
            both.insert(both.end(), colmean, colmean + h.n_head * n_pos);
            tap_by_threads[threads == 1 ? 0 : 1].push_back(both);
        }
    }
    CHECK(tap_by_threads[0] == tap_by_threads[1]);  // identical for 1 and 3 threads
}

TEST_CASE("SigLIP taps: column means offered, [CLS] rejected with a clear error") {
    const std::string dir = test::golden_dir() + "/smolvlm-tiny-f32";
    auto enc = VisionEncoder::load(dir + "/tiny-smolvlm-mmproj-f32.gguf");
    REQUIRE(enc.is_ok());
    const VisionHparams& h = (*enc)->hparams();
    VisionTaps cls;
    cls.layers = {1};
    cls.cls_attention = true;
    auto bad = (*enc)->compile(1, cls);
    REQUIRE_FALSE(bad.is_ok());
    CHECK(bad.status().message().find("no [CLS]") != std::string::npos);
    VisionTaps out_of_range;
    out_of_range.layers = {7};
    out_of_range.column_mean = true;
    CHECK_FALSE((*enc)->compile(1, out_of_range).is_ok());

    VisionTaps col;
    col.layers = {1};
    col.column_mean = true;
    auto plan = (*enc)->compile(2, col);
    REQUIRE_MESSAGE(plan.is_ok(), plan.status().to_string());
    std::vector<float> pixels = test::read_f32_file(dir + "/chelsea__describe/preproc_2.f32");
    std::vector<float> embd(h.n_tokens_per_chunk() * h.n_embd_out);
    ThreadPool pool(2);
    Captured c;
    c.attention_node = attention_node_with_tap(*plan->plan, plan->taps[0].column_mean);
    std::memcpy(plan->plan->f32(plan->pixels), pixels.data(), pixels.size() * 4);
    REQUIRE(plan->plan->run(RunArgs{}, &pool, capture, &c).is_ok());
    const std::vector<double> p = full_attention(c, h.n_head);
    const float* colmean = plan->tap_data(plan->taps[0].column_mean);
    const int64_t N = h.n_patches();
    double total = 0;
    for (int64_t hh = 0; hh < h.n_head; ++hh) {
        for (int64_t s = 0; s < N; ++s) {
            double col = 0;
            for (int64_t t = 0; t < N; ++t) col += p[(hh * N + t) * N + s];
            CHECK(std::fabs(colmean[hh * N + s] - col / N) < 1e-6);
            total += colmean[hh * N + s];
        }
    }
    CHECK(total == doctest::Approx(static_cast<double>(h.n_head)).epsilon(1e-5));  // each head's means sum to 1
}
