// ToMe bipartite soft matching and restore (ops/tome.h): the scalar reference. The only O(T²·D)
// part, the A×B cosine similarity, runs through the registered cosine_similarity kernel the
// caller passes; the rest (argmax over B, the top-r sort) is O(T²/4) comparisons.
#include "ops/tome.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "ops/prune_score.h"

namespace glimpse {

namespace {

struct TomeScratch {
    float* metric_a;  // (nA, D)
    float* metric_b;  // (nB, D)
    float* sim;       // (nA, nB)
    float* best;      // (nA) sim[a][dest[a]], −inf for the protected / NaN
    int32_t* dest;    // (nA)
    int32_t* order;   // (nA) A tokens by descending best
    uint8_t* source;  // (T) 1 = merged away
    void* cosine;     // cosine_similarity_scratch_bytes(nA, nB, D)
};

size_t align64(size_t n) { return (n + 63) & ~size_t{63}; }

TomeScratch carve(void* scratch, int64_t T, int64_t D) {
    const int64_t nA = (T + 1) / 2, nB = T / 2;
    uint8_t* p = static_cast<uint8_t*>(scratch);
    TomeScratch s;
    auto take = [&](size_t bytes) {
        uint8_t* q = p;
        p += align64(bytes);
        return q;
    };
    s.metric_a = reinterpret_cast<float*>(take(nA * D * sizeof(float)));
    s.metric_b = reinterpret_cast<float*>(take(nB * D * sizeof(float)));
    s.sim = reinterpret_cast<float*>(take(nA * nB * sizeof(float)));
    s.best = reinterpret_cast<float*>(take(nA * sizeof(float)));
    s.dest = reinterpret_cast<int32_t*>(take(nA * sizeof(int32_t)));
    s.order = reinterpret_cast<int32_t*>(take(nA * sizeof(int32_t)));
    s.source = take(static_cast<size_t>(T));
    s.cosine = take(cosine_similarity_scratch_bytes(nA, nB, D));
    return s;
}

}  // namespace

int64_t tome_max_merge(int64_t T, int64_t protected_row) {
    const bool prot = protected_row >= 0 && protected_row < T;
    const int64_t nA = (T + 1) / 2, nB = T / 2;
    const int64_t eligible_a = nA - (prot && protected_row % 2 == 0 ? 1 : 0);
    const int64_t eligible_b = nB - (prot && protected_row % 2 == 1 ? 1 : 0);
    return eligible_b >= 1 ? std::max<int64_t>(eligible_a, 0) : 0;
}

size_t tome_match_scratch_bytes(int64_t T, int64_t D) {
    const int64_t nA = (T + 1) / 2, nB = T / 2;
    return align64(nA * D * 4) + align64(nB * D * 4) + align64(nA * nB * 4) + 3 * align64(nA * 4) +
           align64(static_cast<size_t>(T)) + align64(cosine_similarity_scratch_bytes(nA, nB, D)) + 64;
}

void tome_match_ref(const float* keys, int64_t T, int64_t H, int64_t D, int64_t r, int64_t protected_row,
                    TomeCosineFn cosine, int32_t* assign, void* scratch, ThreadPool* pool) {
    const int64_t nA = (T + 1) / 2, nB = T / 2;
    TomeScratch s = carve(scratch, T, D);
    // metric: mean of the heads' keys, rows split into A (even) and B (odd).
    const float inv_h = 1.0f / static_cast<float>(H);
    for (int64_t t = 0; t < T; ++t) {
        float* m = (t % 2 == 0 ? s.metric_a + (t / 2) * D : s.metric_b + (t / 2) * D);
        const float* k = keys + t * H * D;
        for (int64_t d = 0; d < D; ++d) {
            float acc = 0;
            for (int64_t h = 0; h < H; ++h) acc += k[h * D + d];
            m[d] = acc * inv_h;
        }
    }
    if (nB > 0) cosine(s.metric_a, nA, s.metric_b, nB, D, s.sim, s.cosine, pool);

    const bool prot = protected_row >= 0 && protected_row < T;
    const int64_t prot_a = prot && protected_row % 2 == 0 ? protected_row / 2 : -1;
    const int64_t prot_b = prot && protected_row % 2 == 1 ? protected_row / 2 : -1;
    const int64_t first_b = prot_b == 0 ? 1 : 0;  // the first eligible destination
    for (int64_t a = 0; a < nA; ++a) {
        int64_t dest = first_b;
        float best = -INFINITY;
        const float* row = s.sim + a * nB;
        for (int64_t b = 0; b < nB; ++b) {
            if (b == prot_b) continue;
            if (row[b] > best) {  // strict: ties keep the lower b; NaN never compares greater
                best = row[b];
                dest = b;
            }
        }
        s.dest[a] = static_cast<int32_t>(dest);
        s.best[a] = best;
    }
    // Candidates: eligible A tokens by descending best, ties to the lower a (stable sort of an
    // ascending list); −inf (NaN rows) last.
    int64_t n_cand = 0;
    for (int64_t a = 0; a < nA; ++a) {
        if (a != prot_a) s.order[n_cand++] = static_cast<int32_t>(a);
    }
    std::stable_sort(s.order, s.order + n_cand, [&](int32_t x, int32_t y) { return s.best[x] > s.best[y]; });

    std::memset(s.source, 0, static_cast<size_t>(T));
    for (int64_t i = 0; i < r && i < n_cand; ++i) s.source[2 * static_cast<int64_t>(s.order[i])] = 1;
    int32_t next = 0;
    for (int64_t t = 0; t < T; ++t) assign[t] = s.source[t] ? -1 : next++;
    for (int64_t a = 0; a < nA; ++a) {
        if (s.source[2 * a]) assign[2 * a] = assign[2 * static_cast<int64_t>(s.dest[a]) + 1];
    }
}

void tome_restore_ref(const float* x, int64_t C, const int32_t* const* maps, int n_maps, int64_t N, float* y,
                      ThreadPool* pool) {
    auto body = [&](int64_t p0, int64_t p1, int) {
        for (int64_t p = p0; p < p1; ++p) {
            int64_t row = p;
            for (int i = 0; i < n_maps; ++i) row = maps[i][row];
            std::memcpy(y + p * C, x + row * C, static_cast<size_t>(C) * sizeof(float));
        }
    };
    if (pool) pool->parallel_for(N, body);
    else body(0, N, 0);
}

}  // namespace glimpse
