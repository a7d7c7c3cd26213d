#include "ops/topk.h"

#include <algorithm>
#include <cmath>

namespace glimpse {

int64_t topk_scratch_bytes(int64_t n) {
    // reference: n i32 candidate indices; radix kernels: n u32 keys, n u32 candidates
    // and a 256-bin histogram.
    return 2 * n * 4 + 256 * 4 + 64;
}

void topk_ref(const float* scores, int64_t n, int64_t k, int32_t* indices, void* scratch) {
    if (k <= 0) return;
    int32_t* order = static_cast<int32_t*>(scratch);
    for (int64_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
    // better(a, b): a ranks above b. Written on floats (not on topk_key), so the
    // radix kernels are checked against an independent statement of the order.
    auto better = [scores](int32_t a, int32_t b) {
        const float sa = scores[a], sb = scores[b];
        const bool na = std::isnan(sa), nb = std::isnan(sb);
        if (na != nb) return nb;          // a number beats a NaN
        if (!na && sa != sb) return sa > sb;  // -0 == +0 falls through to the index
        return a < b;
    };
    if (k < n) std::nth_element(order, order + (k - 1), order + n, better);
    // The first k entries are the selected set (in some order): ascending index.
    std::sort(order, order + k);
    std::copy(order, order + k, indices);
}

}  // namespace glimpse
