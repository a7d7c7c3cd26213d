// Scalar references of the visual-token selection methods (see prune_select.h for each
// method's source and the shapes).
#include "ops/prune_select.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace glimpse {
namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// Scratch is handed over as raw bytes; each user carves typed arrays from it in order,
// keeping every array 8-byte aligned.
class ScratchCarver {
public:
    explicit ScratchCarver(void* base) : next_(static_cast<unsigned char*>(base)) {}
    template <class T>
    T* take(int64_t count) {
        T* p = reinterpret_cast<T*>(next_);
        next_ += round_up(static_cast<size_t>(count) * sizeof(T));
        return p;
    }
    static size_t round_up(size_t bytes) { return (bytes + 7) & ~size_t{7}; }

private:
    unsigned char* next_;
};

// "a beats b" in a descending ranking: larger value first, NaN last, then lower index.
bool ranks_before(float value_a, int64_t a, float value_b, int64_t b) {
    const bool nan_a = std::isnan(value_a), nan_b = std::isnan(value_b);
    if (nan_a != nan_b) return nan_b;
    if (!nan_a && value_a != value_b) return value_a > value_b;
    return a < b;
}

Status check_counts(const char* method, int64_t n, int64_t k) {
    GLIMPSE_CHECK_OR_RETURN(n >= 1 && n <= INT32_MAX, invalid_argument, "%s: token count n = %lld must be in [1, %d]",
                            method, static_cast<long long>(n), INT32_MAX);
    GLIMPSE_CHECK_OR_RETURN(k >= 1 && k <= n, invalid_argument, "%s: keep count k = %lld must be in [1, n = %lld]",
                            method, static_cast<long long>(k), static_cast<long long>(n));
    return Status::ok();
}

void sort_ascending(int32_t* indices, int64_t count) { std::sort(indices, indices + count); }

}  // namespace

// ---- scores from an attention tap --------------------------------------------------------------

Status prune_scores_from_tap_ref(const float* tap, int64_t n_head, int64_t n_pos, int64_t h, int64_t w, int64_t s,
                                 float* scores) {
    GLIMPSE_CHECK_OR_RETURN(n_head >= 1 && h >= 1 && w >= 1 && s >= 1 && h % s == 0 && w % s == 0, invalid_argument,
                            "attention scores: %lld heads over a %lld x %lld patch grid with pixel shuffle %lld (the "
                            "grid must split into whole s x s blocks)",
                            static_cast<long long>(n_head), static_cast<long long>(h), static_cast<long long>(w),
                            static_cast<long long>(s));
    GLIMPSE_CHECK_OR_RETURN(n_pos == h * w || n_pos == h * w + 1, invalid_argument,
                            "attention scores: the tap has %lld positions; a %lld x %lld grid needs %lld (or one more "
                            "for [CLS])",
                            static_cast<long long>(n_pos), static_cast<long long>(h), static_cast<long long>(w),
                            static_cast<long long>(h * w));
    const int64_t bw = w / s, bh = h / s;
    const double inv = 1.0 / (static_cast<double>(n_head) * s * s);
    for (int64_t by = 0; by < bh; ++by) {
        for (int64_t bx = 0; bx < bw; ++bx) {
            double sum = 0;
            for (int64_t head = 0; head < n_head; ++head) {
                const float* row = tap + head * n_pos;
                for (int64_t i = 0; i < s; ++i) {
                    for (int64_t j = 0; j < s; ++j) sum += row[(by * s + i) * w + bx * s + j];
                }
            }
            scores[by * bw + bx] = static_cast<float>(sum * inv);
        }
    }
    return Status::ok();
}

// ---- randomness -------------------------------------------------------------------------------

uint64_t SplitMix64::next() {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t bound) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
}

size_t prune_random_scratch_bytes(int64_t n) {
    return ScratchCarver::round_up(static_cast<size_t>(n) * sizeof(int32_t));
}

Status prune_random_ref(int64_t n, int64_t k, uint64_t seed, int32_t* kept, void* scratch) {
    GLIMPSE_RETURN_IF_ERROR(check_counts("random", n, k));
    int32_t* order = ScratchCarver(scratch).take<int32_t>(n);  // order:(n), a permutation of 0..n-1
    for (int64_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
    SplitMix64 rng{seed};
    for (int64_t i = 0; i < k; ++i) {
        const int64_t j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - i)));
        std::swap(order[i], order[j]);
    }
    std::copy(order, order + k, kept);
    sort_ascending(kept, k);
    return Status::ok();
}

// ---- uniform grid -----------------------------------------------------------------------------

Status prune_uniform_grid_ref(int64_t h, int64_t w, int64_t k, int32_t* kept) {
    GLIMPSE_CHECK_OR_RETURN(h >= 1 && w >= 1 && h <= INT32_MAX / w, invalid_argument,
                            "uniform: token grid %lld x %lld must be at least 1 x 1 and below 2^31 tokens",
                            static_cast<long long>(h), static_cast<long long>(w));
    GLIMPSE_RETURN_IF_ERROR(check_counts("uniform", h * w, k));
    // Rows of the grid: as square a lattice as the token grid's aspect allows, but at least
    // ceil(k / w) rows (no row holds more than w tokens) and at most min(h, k).
    int64_t rows = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(k) * h / w)));
    rows = std::clamp(rows, (k + w - 1) / w, std::min(h, k));
    int64_t out = 0;
    for (int64_t a = 0; a < rows; ++a) {
        const int64_t y = (2 * a + 1) * h / (2 * rows);  // floor((a + 0.5) * h / rows)
        const int64_t count = (a + 1) * k / rows - a * k / rows;
        for (int64_t b = 0; b < count; ++b) {
            const int64_t x = (2 * b + 1) * w / (2 * count);
            kept[out++] = static_cast<int32_t>(y * w + x);
        }
    }
    GLIMPSE_ASSERT(out == k);
    return Status::ok();
}

// ---- DivPrune ---------------------------------------------------------------------------------

size_t divprune_scratch_bytes(int64_t n) {
    return ScratchCarver::round_up(static_cast<size_t>(n) * sizeof(float)) +
           ScratchCarver::round_up(static_cast<size_t>(n));
}

Status divprune_ref(const float* similarity, int64_t n, int64_t k, int32_t* kept, int32_t* pick_order, void* scratch) {
    GLIMPSE_RETURN_IF_ERROR(check_counts("divprune", n, k));
    ScratchCarver carver(scratch);
    float* min_dist = carver.take<float>(n);     // min_dist:(n), min over picked s of D[s][j]
    uint8_t* picked = carver.take<uint8_t>(n);   // picked:(n)
    auto distance = [&](int64_t i, int64_t j) {  // D[i][j] = 1 - S[i][j]; NaN -> -inf
        const float d = 1.0f - similarity[i * n + j];
        return std::isnan(d) ? kMinusInf : d;
    };
    std::fill(picked, picked + n, uint8_t{0});

    // First pick: the token farthest from its nearest neighbour, i.e. the largest
    // second-smallest value of its column (with n = 1 the only token).
    int64_t first = 0;
    if (n > 1) {
        float best = kMinusInf;
        for (int64_t j = 0; j < n; ++j) {
            float smallest = std::numeric_limits<float>::infinity(), second = smallest;
            for (int64_t i = 0; i < n; ++i) {
                const float d = distance(i, j);
                if (d < smallest) {
                    second = smallest;
                    smallest = d;
                } else if (d < second) {
                    second = d;
                }
            }
            if (second > best || j == 0) {
                best = second;
                first = j;
            }
        }
    }
    int64_t pick = first;
    for (int64_t step = 0; step < k; ++step) {
        if (step > 0) {
            // The token farthest from the picked set; ties and all -inf: the lowest index.
            pick = -1;
            float best = kMinusInf;
            for (int64_t j = 0; j < n; ++j) {
                if (picked[j]) continue;
                if (pick < 0 || min_dist[j] > best) {
                    best = min_dist[j];
                    pick = j;
                }
            }
        }
        picked[pick] = 1;
        kept[step] = static_cast<int32_t>(pick);
        if (pick_order) pick_order[step] = static_cast<int32_t>(pick);
        for (int64_t j = 0; j < n; ++j) {
            const float d = distance(pick, j);
            if (step == 0 || d < min_dist[j]) min_dist[j] = d;
        }
    }
    sort_ascending(kept, k);
    return Status::ok();
}

// ---- CDPruner ---------------------------------------------------------------------------------

size_t cdpruner_scratch_bytes(int64_t n, int64_t k) {
    return ScratchCarver::round_up(static_cast<size_t>(k) * n * sizeof(double)) +
           ScratchCarver::round_up(static_cast<size_t>(n) * sizeof(double)) +
           ScratchCarver::round_up(static_cast<size_t>(n));
}

Status cdpruner_ref(const float* similarity, const float* relevance, int64_t n, int64_t k, int32_t* kept,
                    int32_t* pick_order, void* scratch) {
    GLIMPSE_RETURN_IF_ERROR(check_counts("cdpruner", n, k));
    ScratchCarver carver(scratch);
    double* cholesky_rows = carver.take<double>(k * n);  // c:(k, n), row t = e of pick t
    double* gain = carver.take<double>(n);               // d2:(n), the conditional variance of each token
    uint8_t* picked = carver.take<uint8_t>(n);
    auto kernel = [&](int64_t i, int64_t j) {  // L[i][j] = r_i S[i][j] r_j
        return static_cast<double>(relevance[i]) * similarity[i * n + j] * relevance[j];
    };
    double max_diagonal = 0;
    for (int64_t j = 0; j < n; ++j) {
        gain[j] = kernel(j, j);
        if (std::isnan(gain[j])) gain[j] = -std::numeric_limits<double>::infinity();
        max_diagonal = std::max(max_diagonal, gain[j]);
        picked[j] = 0;
    }
    const double exhausted_below = 1e-10 * max_diagonal;
    bool exhausted = false;
    for (int64_t step = 0; step < k; ++step) {
        // NaN (from a NaN similarity or relevance) never wins: it counts as -inf.
        auto not_nan = [](double v) { return std::isnan(v) ? -std::numeric_limits<double>::infinity() : v; };
        int64_t pick = -1;
        double best = 0;
        for (int64_t j = 0; j < n; ++j) {
            if (picked[j]) continue;
            if (pick < 0 || not_nan(gain[j]) > best) {
                best = not_nan(gain[j]);
                pick = j;
            }
        }
        if (!exhausted && !(best > exhausted_below)) exhausted = true;
        if (exhausted) {
            // No direction left in the kernel: the highest diagonal (relevance) among the rest.
            pick = -1;
            for (int64_t j = 0; j < n; ++j) {
                if (picked[j]) continue;
                const double diag = not_nan(kernel(j, j));
                if (pick < 0 || diag > best) {
                    best = diag;
                    pick = j;
                }
            }
        } else {
            double* e = cholesky_rows + step * n;
            const double inv_norm = 1.0 / std::sqrt(best);
            for (int64_t j = 0; j < n; ++j) {
                double v = kernel(pick, j);
                for (int64_t t = 0; t < step; ++t) v -= cholesky_rows[t * n + pick] * cholesky_rows[t * n + j];
                e[j] = v * inv_norm;
                gain[j] -= e[j] * e[j];
            }
        }
        picked[pick] = 1;
        kept[step] = static_cast<int32_t>(pick);
        if (pick_order) pick_order[step] = static_cast<int32_t>(pick);
    }
    sort_ascending(kept, k);
    return Status::ok();
}

Status cdpruner_relevance_ref(const float* text_cosine, int64_t n, int64_t m, float* relevance) {
    GLIMPSE_CHECK_OR_RETURN(n >= 1 && m >= 1, invalid_argument,
                            "cdpruner relevance: needs at least one visual and one text token (got n = %lld, m = %lld)",
                            static_cast<long long>(n), static_cast<long long>(m));
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (int64_t i = 0; i < n; ++i) {
        double sum = 0;
        for (int64_t t = 0; t < m; ++t) sum += text_cosine[i * m + t];
        const double r = -sum / static_cast<double>(m);
        relevance[i] = static_cast<float>(r);
        GLIMPSE_CHECK_OR_RETURN(std::isfinite(r), invalid_argument,
                                "cdpruner relevance: visual token %lld has a non-finite text similarity",
                                static_cast<long long>(i));
        lo = std::min(lo, r);
        hi = std::max(hi, r);
    }
    for (int64_t i = 0; i < n; ++i) {
        relevance[i] = hi > lo ? static_cast<float>((relevance[i] - lo + 1e-6) / (hi - lo)) : 1.0f;
    }
    return Status::ok();
}

// ---- DART -------------------------------------------------------------------------------------

size_t dart_scratch_bytes(int64_t n) { return ScratchCarver::round_up(static_cast<size_t>(n)); }

Status dart_ref(const float* similarity, const float* pivot_score, int64_t n, int64_t k, int64_t pivots, int32_t* kept,
                void* scratch) {
    GLIMPSE_RETURN_IF_ERROR(check_counts("dart", n, k));
    GLIMPSE_CHECK_OR_RETURN(pivots >= 1 && pivots <= k, invalid_argument,
                            "dart: pivot count %lld must be in [1, keep count %lld]", static_cast<long long>(pivots),
                            static_cast<long long>(k));
    uint8_t* state = ScratchCarver(scratch).take<uint8_t>(n);  // state:(n): 0 pool, 1 pivot, 2 kept by a pivot
    std::fill(state, state + n, uint8_t{0});
    for (int64_t p = 0; p < pivots; ++p) {  // the pivots: largest pivot score first
        int64_t best = -1;
        for (int64_t j = 0; j < n; ++j) {
            if (state[j] == 0 && (best < 0 || ranks_before(pivot_score[j], j, pivot_score[best], best))) best = j;
        }
        state[best] = 1;
    }
    const int64_t extra = k - pivots;
    int64_t pivot_rank = 0;
    for (int64_t pivot = 0; pivot < n; ++pivot) {  // pivots in ascending index order
        if (state[pivot] != 1) continue;
        const int64_t count = extra / pivots + (pivot_rank < extra % pivots ? 1 : 0);
        ++pivot_rank;
        const float* row = similarity + pivot * n;
        for (int64_t c = 0; c < count; ++c) {
            // The least similar token of the pool: the largest -S (NaN last, lower index).
            int64_t best = -1;
            for (int64_t j = 0; j < n; ++j) {
                if (state[j] == 0 && (best < 0 || ranks_before(-row[j], j, -row[best], best))) best = j;
            }
            state[best] = 2;
        }
    }
    int64_t out = 0;
    for (int64_t j = 0; j < n; ++j) {
        if (state[j] != 0) kept[out++] = static_cast<int32_t>(j);
    }
    GLIMPSE_ASSERT(out == k);
    return Status::ok();
}

// ---- VisionZip --------------------------------------------------------------------------------

size_t visionzip_scratch_bytes(int64_t n, int64_t dk, int64_t n_contextual) {
    return ScratchCarver::round_up(static_cast<size_t>(n) * sizeof(int32_t)) +                // ranking / others
           ScratchCarver::round_up(static_cast<size_t>(n)) +                                  // is dominant
           ScratchCarver::round_up(static_cast<size_t>(n_contextual) * dk * sizeof(float)) +  // unit target keys
           ScratchCarver::round_up(static_cast<size_t>(n_contextual) * sizeof(int64_t));      // assigned counts
}

Status visionzip_ref(const float* score, const float* metric, int64_t dk, const float* hidden, int64_t d, int64_t n,
                     int64_t n_dominant, int64_t n_contextual, int32_t* dominant, int32_t* targets, float* merged,
                     void* scratch) {
    GLIMPSE_CHECK_OR_RETURN(n_dominant >= 0 && n_contextual >= 0, invalid_argument,
                            "visionzip: dominant (%lld) and contextual (%lld) counts must not be negative",
                            static_cast<long long>(n_dominant), static_cast<long long>(n_contextual));
    GLIMPSE_RETURN_IF_ERROR(check_counts("visionzip", n, n_dominant + n_contextual));
    GLIMPSE_CHECK_OR_RETURN(dk >= 1 && d >= 1, invalid_argument,
                            "visionzip: key width %lld and row width %lld must be >= 1", static_cast<long long>(dk),
                            static_cast<long long>(d));
    ScratchCarver carver(scratch);
    int32_t* order = carver.take<int32_t>(n);
    uint8_t* is_dominant = carver.take<uint8_t>(n);
    float* unit_targets = carver.take<float>(n_contextual * dk);  // (n_contextual, dk)
    int64_t* assigned = carver.take<int64_t>(n_contextual);

    // Dominant: the n_dominant best scores, then raster order.
    for (int64_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
    std::partial_sort(order, order + n_dominant, order + n,
                      [&](int32_t a, int32_t b) { return ranks_before(score[a], a, score[b], b); });
    std::copy(order, order + n_dominant, dominant);
    sort_ascending(dominant, n_dominant);
    std::fill(is_dominant, is_dominant + n, uint8_t{0});
    for (int64_t i = 0; i < n_dominant; ++i) is_dominant[dominant[i]] = 1;
    if (n_contextual == 0) return Status::ok();

    // The others, in raster order (reusing `order`), and the evenly spaced targets among them.
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (!is_dominant[i]) order[m++] = static_cast<int32_t>(i);
    }
    const int64_t step = std::max<int64_t>(1, m / n_contextual);
    auto unit_key = [&](int64_t token, float* out) {  // out:(dk) = metric[token] / max(|metric[token]|, 1e-12)
        double norm2 = 0;
        for (int64_t c = 0; c < dk; ++c) norm2 += static_cast<double>(metric[token * dk + c]) * metric[token * dk + c];
        const float inv = static_cast<float>(1.0 / std::max(std::sqrt(norm2), 1e-12));
        for (int64_t c = 0; c < dk; ++c) out[c] = metric[token * dk + c] * inv;
    };
    for (int64_t t = 0; t < n_contextual; ++t) {
        targets[t] = order[t * step];
        is_dominant[targets[t]] = 2;  // marks a target: not merged into another
        unit_key(targets[t], unit_targets + t * dk);
        assigned[t] = 0;
        std::fill(merged + t * d, merged + (t + 1) * d, 0.0f);
    }
    // Each remaining token joins its most similar target; merged[t] first accumulates the sum.
    for (int64_t r = 0; r < m; ++r) {
        const int64_t token = order[r];
        if (is_dominant[token] == 2) continue;
        double norm2 = 0;
        for (int64_t c = 0; c < dk; ++c) norm2 += static_cast<double>(metric[token * dk + c]) * metric[token * dk + c];
        const float inv = static_cast<float>(1.0 / std::max(std::sqrt(norm2), 1e-12));
        int64_t best = 0;
        float best_cos = kMinusInf;
        for (int64_t t = 0; t < n_contextual; ++t) {
            float dot = 0;
            for (int64_t c = 0; c < dk; ++c) dot += metric[token * dk + c] * inv * unit_targets[t * dk + c];
            if (dot > best_cos) {  // NaN never wins; the first maximum stays
                best_cos = dot;
                best = t;
            }
        }
        ++assigned[best];
        for (int64_t c = 0; c < d; ++c) merged[best * d + c] += hidden[token * d + c];
    }
    for (int64_t t = 0; t < n_contextual; ++t) {
        const float inv_count = 1.0f / static_cast<float>(std::max<int64_t>(assigned[t], 1));
        for (int64_t c = 0; c < d; ++c) merged[t * d + c] = hidden[targets[t] * d + c] + merged[t * d + c] * inv_count;
    }
    return Status::ok();
}

// ---- keep budget over tiles ------------------------------------------------------------------

namespace {

constexpr int64_t kMaxBudgetParts = 256;  // SmolVLM: at most 16 tiles + 1; fixed arrays keep this allocation-free

// Splits `total` units over parts in proportion to weight, each part at most cap (see the header).
// weight:(n), cap:(n) -> out:(n). Requires n <= kMaxBudgetParts and total <= sum(cap). Parts of
// weight 0 get nothing unless every part with weight is full; then the rest goes by cap.
void split_proportional(const double* weight, const int32_t* cap, int64_t n, int64_t total, int32_t* out) {
    bool full[kMaxBudgetParts];
    double ideal[kMaxBudgetParts];
    for (int64_t i = 0; i < n; ++i) {
        out[i] = 0;
        full[i] = cap[i] <= 0;
    }
    bool by_cap = false;
    int64_t remaining = total;
    auto share_weight = [&](int64_t i) { return by_cap ? static_cast<double>(cap[i]) : weight[i]; };
    // Capping rounds: every part whose ideal share reaches its cap is filled, and the rest re-split.
    while (remaining > 0) {
        double sum = 0;
        for (int64_t i = 0; i < n; ++i) sum += full[i] ? 0.0 : share_weight(i);
        if (sum <= 0) {
            GLIMPSE_ASSERT(!by_cap);  // total <= sum(cap): some open part has room
            by_cap = true;
            continue;
        }
        bool capped_any = false;
        for (int64_t i = 0; i < n; ++i)
            ideal[i] = full[i] ? 0.0 : static_cast<double>(remaining) * share_weight(i) / sum;
        for (int64_t i = 0; i < n; ++i) {
            if (!full[i] && ideal[i] >= cap[i]) {
                out[i] = cap[i];
                full[i] = true;
                remaining -= cap[i];
                capped_any = true;
            }
        }
        if (capped_any) continue;
        // No cap reached: floors, then one more unit to the largest fractions (lower index on ties).
        bool bumped[kMaxBudgetParts];
        for (int64_t i = 0; i < n; ++i) {
            bumped[i] = false;
            if (full[i]) continue;
            out[i] = static_cast<int32_t>(std::floor(ideal[i]));
            remaining -= out[i];
        }
        while (remaining > 0) {
            int64_t best = -1;
            for (int64_t i = 0; i < n; ++i) {
                if (full[i] || bumped[i] || out[i] >= cap[i]) continue;
                if (best < 0 || ideal[i] - out[i] > ideal[best] - out[best]) best = i;
            }
            if (best < 0) {  // only after rounding drift: allow a second unit
                for (int64_t i = 0; i < n; ++i) bumped[i] = false;
                continue;
            }
            ++out[best];
            bumped[best] = true;
            --remaining;
        }
    }
}

Status check_budget_parts(const char* what, const int32_t* tokens, int64_t n_parts, int64_t keep_total, int64_t* sum) {
    GLIMPSE_CHECK_OR_RETURN(n_parts >= 1, invalid_argument, "%s: needs at least one part (got %lld)", what,
                            static_cast<long long>(n_parts));
    *sum = 0;
    for (int64_t i = 0; i < n_parts; ++i) {
        GLIMPSE_CHECK_OR_RETURN(tokens[i] >= 0, invalid_argument, "%s: part %lld has %d tokens", what,
                                static_cast<long long>(i), tokens[i]);
        *sum += tokens[i];
    }
    GLIMPSE_CHECK_OR_RETURN(keep_total >= 1 && keep_total <= *sum, invalid_argument,
                            "%s: keep %lld must be in [1, %lld] (the tokens of all %lld parts)", what,
                            static_cast<long long>(keep_total), static_cast<long long>(*sum),
                            static_cast<long long>(n_parts));
    return Status::ok();
}

}  // namespace

Status split_keep_budget_equal(const int32_t* tokens, int64_t n_parts, int64_t keep_total, int32_t* keep) {
    int64_t sum = 0;
    GLIMPSE_RETURN_IF_ERROR(check_budget_parts("keep budget (equal)", tokens, n_parts, keep_total, &sum));
    GLIMPSE_CHECK_OR_RETURN(n_parts <= kMaxBudgetParts, invalid_argument,
                            "keep budget (equal): %lld parts (at most %lld)", static_cast<long long>(n_parts),
                            static_cast<long long>(kMaxBudgetParts));
    double weight[kMaxBudgetParts];
    for (int64_t i = 0; i < n_parts; ++i) weight[i] = tokens[i];
    split_proportional(weight, tokens, n_parts, keep_total, keep);
    return Status::ok();
}

Status split_keep_budget_by_overview(const int32_t* tokens, int64_t n_parts, const float* overview_scores,
                                     const int32_t* overview_token_tile, double overview_share, int64_t keep_total,
                                     int32_t* keep) {
    const char* what = "keep budget (by overview)";
    int64_t sum = 0;
    GLIMPSE_RETURN_IF_ERROR(check_budget_parts(what, tokens, n_parts, keep_total, &sum));
    GLIMPSE_CHECK_OR_RETURN(n_parts >= 2, invalid_argument, "%s: needs tiles and an overview (got %lld parts)", what,
                            static_cast<long long>(n_parts));
    GLIMPSE_CHECK_OR_RETURN(n_parts <= kMaxBudgetParts, invalid_argument, "%s: %lld parts (at most %lld)", what,
                            static_cast<long long>(n_parts), static_cast<long long>(kMaxBudgetParts));
    GLIMPSE_CHECK_OR_RETURN(std::isfinite(overview_share) && overview_share >= 0 && overview_share <= 1,
                            invalid_argument, "%s: overview share %g must be in [0, 1]", what, overview_share);
    const int64_t n_tiles = n_parts - 1;
    const int64_t n_overview = tokens[n_tiles];
    for (int64_t i = 0; i < n_overview; ++i) {
        GLIMPSE_CHECK_OR_RETURN(overview_token_tile[i] >= -1 && overview_token_tile[i] < n_tiles, invalid_argument,
                                "%s: overview token %lld maps to tile %d (tiles: %lld)", what,
                                static_cast<long long>(i), overview_token_tile[i], static_cast<long long>(n_tiles));
    }
    int64_t tile_room = sum - n_overview;
    int64_t overview_keep =
        std::min<int64_t>({static_cast<int64_t>(std::floor(overview_share * static_cast<double>(keep_total) + 0.5)),
                           n_overview, keep_total});
    overview_keep = std::max(overview_keep, keep_total - tile_room);  // the tiles cannot hold more
    const int64_t rest = keep_total - overview_keep;

    // Count, per tile, the overview's top tokens: token i is among the top T when fewer than T
    // tokens rank before it (an O(n_overview^2) rank count: no scratch, and n_overview is 64).
    const int64_t top =
        static_cast<int64_t>(std::floor((1.0 - overview_share) * static_cast<double>(n_overview) + 0.5));
    double weight[kMaxBudgetParts] = {};
    for (int64_t i = 0; i < n_overview; ++i) {
        if (overview_token_tile[i] < 0) continue;
        int64_t rank = 0;
        for (int64_t j = 0; j < n_overview && rank < top; ++j) {
            if (j != i && ranks_before(overview_scores[j], j, overview_scores[i], i)) ++rank;
        }
        if (rank < top) weight[overview_token_tile[i]] += 1;
    }
    if (rest > 0) {
        split_proportional(weight, tokens, n_tiles, rest, keep);
    } else {
        for (int64_t t = 0; t < n_tiles; ++t) keep[t] = 0;
    }
    keep[n_tiles] = static_cast<int32_t>(overview_keep);
    return Status::ok();
}

}  // namespace glimpse
