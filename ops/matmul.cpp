#include "ops/matmul.h"

#include <vector>

#include "ops/weights.h"

namespace glimpse {

void matmul_ref(const MatmulArgs& a, ThreadPool* pool) {
    // Split the N output columns across threads; each thread converts one weight
    // row at a time and applies it to every row of x. The row buffer is a local
    // array for the common sizes; the reference is a test oracle, so the rare
    // heap allocation for K > 16384 is acceptable here.
    auto body = [&](int64_t n0, int64_t n1, int) {
        constexpr int64_t kStackRow = 16384;
        float stack_row[kStackRow];
        std::vector<float> heap_row;
        float* wrow = stack_row;
        if (a.K > kStackRow) {
            heap_row.resize(a.K);
            wrow = heap_row.data();
        }
        for (int64_t n = n0; n < n1; ++n) {
            weights_row_to_f32(a.w, a.w_type, a.K, n, wrow);
            for (int64_t m = 0; m < a.M; ++m) {
                const float* xr = a.x + m * a.ldx;
                double acc = 0;
                for (int64_t k = 0; k < a.K; ++k) acc += static_cast<double>(xr[k]) * wrow[k];
                if (a.bias) acc += a.bias[n];
                a.y[m * a.ldy + n] = static_cast<float>(acc);
            }
        }
    };
    if (pool) pool->parallel_for(a.N, body);
    else body(0, a.N, 0);
}

}  // namespace glimpse
