// SparseVLM's recycling clustering (ops/dpc_cluster.h): DPC-kNN over the rows a stage drops.
// - a hand-worked 1-D set (embedded in 3 dims) gives the centres, clusters and merged means
//   worked out on paper below;
// - on random clustered rows, with every usable cosine_similarity variant computing the
//   distances, the centres and clusters equal a naive DPC-kNN written here from the contract
//   (Euclidean distances taken directly, full sorts);
// - merging a cluster (registered merge_rows) weighs each member 1/|cluster|: the weights sum to 1;
// - SparseVLM's recycling counts, worked by hand.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/dpc_cluster.h"
#include "ops/kernel_registry.h"
#include "ops/prune_score.h"
#include "targets/cpu_features.h"
#include "test_util.h"

using namespace glimpse;

namespace {

struct Clusters {
    std::vector<int32_t> centres, assign;
};

Clusters run_dpc(const std::vector<float>& x, int64_t n, int64_t C, int64_t m, DpcCosineFn cosine) {
    Clusters out;
    out.centres.assign(static_cast<size_t>(m), -7);
    out.assign.assign(static_cast<size_t>(n), -7);
    std::vector<uint8_t> scratch(dpc_cluster_scratch_bytes(n, C) + 64);
    void* s = scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64;
    dpc_cluster_ref(x.data(), n, C, m, cosine, out.centres.data(), out.assign.data(), s, nullptr);
    return out;
}

// The contract, literally: direct Euclidean distances, full sorts, no shared code.
Clusters naive_dpc(const std::vector<float>& x, int64_t n, int64_t C, int64_t m) {
    std::vector<double> d(static_cast<size_t>(n * n));
    double d_max = 0;
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t c = 0; c < C; ++c) {
                const double diff = static_cast<double>(x[i * C + c]) - x[j * C + c];
                s += diff * diff;
            }
            d[i * n + j] = std::sqrt(s / C);
            d_max = std::max(d_max, d[i * n + j]);
        }
    }
    std::vector<double> rho(n), score(n);
    for (int64_t i = 0; i < n; ++i) {
        std::vector<double> row(d.begin() + i * n, d.begin() + (i + 1) * n);
        std::sort(row.begin(), row.end());
        double s = 0;
        for (int64_t j = 0; j < m; ++j) s += row[j] * row[j];
        rho[i] = std::exp(-s / m);
    }
    for (int64_t i = 0; i < n; ++i) {
        double delta = d_max;
        for (int64_t j = 0; j < n; ++j) {
            if (rho[j] > rho[i] || (rho[j] == rho[i] && j < i)) delta = std::min(delta, d[i * n + j]);
        }
        score[i] = delta * rho[i];
    }
    std::vector<int32_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return score[a] > score[b]; });
    Clusters out;
    out.centres.assign(order.begin(), order.begin() + m);
    out.assign.resize(n);
    for (int64_t i = 0; i < n; ++i) {
        int32_t best = 0;
        for (int32_t c = 1; c < m; ++c) {
            if (d[out.centres[c] * n + i] < d[out.centres[best] * n + i]) best = c;
        }
        out.assign[i] = best;
    }
    for (int32_t c = 0; c < m; ++c) out.assign[out.centres[c]] = c;
    return out;
}

}  // namespace

TEST_CASE("dpc_cluster: a hand-worked set") {
    // Values v along the direction (0.6, 0.8, 0) (so |x_i - x_j| = |v_i - v_j|, C = 3, d = |dv|/sqrt(3)):
    //   v = 1.0 1.1 1.25 | 5.0 5.2 5.6 | 9.0, m = 2 clusters, so density from the 2 nearest
    //   (itself and its nearest neighbour): rho = exp(-nn²/(3·2)).
    //   nn: 0.1 0.1 0.15 | 0.2 0.2 0.4 | 3.4 -> by density 1.0 = 1.1 (tie: 1.0) > 1.25 > 5.0 = 5.2
    //   (tie: 5.0) > 5.6 > 9.0. delta: 1.0 is densest: d_max = 8/sqrt3; 5.0: 3.75/sqrt3 (to
    //   1.25); the others at most 0.4/sqrt3, except 9.0: 3.4/sqrt3 with rho = exp(-1.93) = 0.145.
    //   score: 1.0 -> 4.61, 5.0 -> 2.15, 9.0 -> 0.29, the rest < 0.23. Centres [1.0, 5.0]; 9.0 is
    //   nearer 5.0 (4.0) than 1.0 (8.0): clusters {1.0, 1.1, 1.25} and {5.0, 5.2, 5.6, 9.0}.
    const float v[] = {1.0f, 1.1f, 1.25f, 5.0f, 5.2f, 5.6f, 9.0f};
    std::vector<float> x;
    for (float e : v) x.insert(x.end(), {0.6f * e, 0.8f * e, 0.0f});
    for (const Kernel* k : kernels_of(OpFamily::cosine_similarity)) {
        if (!isa_usable(k->isa)) continue;
        INFO(k->name);
        const Clusters got = run_dpc(x, 7, 3, 2, k->fn.cosine_similarity);
        CHECK(got.centres == std::vector<int32_t>{0, 3});
        CHECK(got.assign == std::vector<int32_t>{0, 0, 0, 1, 1, 1, 1});
        // Merged rows: the plain means, 3.35/3 and 24.8/4 along the direction.
        std::vector<float> merged(6, -1.0f), sizes(2, -1.0f);
        select_kernel(OpFamily::merge_rows)
            ->fn.merge_rows(x.data(), 7, 3, got.assign.data(), nullptr, 2, merged.data(), sizes.data(), nullptr);
        CHECK(sizes == std::vector<float>{3.0f, 4.0f});
        CHECK(merged[0] == doctest::Approx(0.6 * 3.35 / 3).epsilon(1e-6));
        CHECK(merged[1] == doctest::Approx(0.8 * 3.35 / 3).epsilon(1e-6));
        CHECK(merged[3] == doctest::Approx(0.6 * 24.8 / 4).epsilon(1e-6));
        CHECK(merged[4] == doctest::Approx(0.8 * 24.8 / 4).epsilon(1e-6));
        CHECK(merged[2] == 0.0f);
    }
}

TEST_CASE("dpc_cluster: equals a naive DPC-kNN on random clustered rows, every cosine variant") {
    struct Shape {
        int64_t n, C, m;
    } shapes[] = {{1, 5, 1}, {2, 3, 1}, {13, 1, 2}, {37, 16, 4}, {31, 17, 4}, {120, 64, 12}};
    test::Rng rng{77};
    for (const Shape& sh : shapes) {
        // Rows around a few random centres, so clusters exist, with noise so no distances tie.
        std::vector<float> centre(static_cast<size_t>(5 * sh.C));
        for (float& c : centre) c = rng.uniform(-4, 4);
        std::vector<float> x(static_cast<size_t>(sh.n * sh.C));
        for (int64_t i = 0; i < sh.n; ++i) {
            const int64_t g = rng.integer(0, 5);
            for (int64_t c = 0; c < sh.C; ++c) x[i * sh.C + c] = centre[g * sh.C + c] + rng.uniform(-1, 1);
        }
        const Clusters want = naive_dpc(x, sh.n, sh.C, sh.m);
        for (const Kernel* k : kernels_of(OpFamily::cosine_similarity)) {
            if (!isa_usable(k->isa)) continue;
            INFO(k->name << " n=" << sh.n << " C=" << sh.C << " m=" << sh.m);
            const Clusters got = run_dpc(x, sh.n, sh.C, sh.m, k->fn.cosine_similarity);
            CHECK(got.centres == want.centres);
            CHECK(got.assign == want.assign);
            // Every cluster has its centre; the merge weights of a cluster (1/size each) sum to 1:
            // merging rows that are all 1 gives exactly 1.
            std::vector<float> ones(x.size(), 1.0f), merged(static_cast<size_t>(sh.m * sh.C), 0.0f);
            std::vector<float> sizes(static_cast<size_t>(sh.m), 0.0f);
            select_kernel(OpFamily::merge_rows)
                ->fn.merge_rows(ones.data(), sh.n, sh.C, got.assign.data(), nullptr, sh.m, merged.data(), sizes.data(),
                                nullptr);
            for (float e : merged) CHECK(e == 1.0f);
            CHECK(std::accumulate(sizes.begin(), sizes.end(), 0.0f) == static_cast<float>(sh.n));
        }
    }
}

TEST_CASE("sparsevlm recycling counts: int(0.3 d) + 1 recycled, int(r / 10) + 1 merged") {
    // modelling_sparse_llama.py: merge_token_num_stage1 = int(d * 0.3) + 1, cluster_num = int(r / 10) + 1.
    CHECK(sparsevlm_recycled_rows(0) == 0);
    CHECK(sparsevlm_merged_rows(0) == 0);
    CHECK(sparsevlm_recycled_rows(1) == 1);    // int(0.3) + 1
    CHECK(sparsevlm_merged_rows(1) == 1);      // int(0.1) + 1
    CHECK(sparsevlm_recycled_rows(10) == 4);   // int(3.0000000000000004) + 1
    CHECK(sparsevlm_recycled_rows(36) == 11);  // int(10.8) + 1
    CHECK(sparsevlm_merged_rows(36) == 2);     // int(1.1) + 1
    CHECK(sparsevlm_recycled_rows(100) == 31);
    CHECK(sparsevlm_merged_rows(100) == 4);
    CHECK(sparsevlm_merged_rows(432) == 14);   // r = int(129.6) + 1 = 130, int(13.0) + 1
}
