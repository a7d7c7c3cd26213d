#include "ops/gather.h"

#include <cstring>

namespace glimpse {

void gather_rows_ref(const float* x, int64_t C, const int32_t* idx, int64_t k, float* y, ThreadPool* pool) {
    auto body = [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) std::memcpy(y + i * C, x + idx[i] * C, static_cast<size_t>(C) * sizeof(float));
    };
    if (pool && k * C >= (int64_t{1} << 16)) pool->parallel_for(k, body);
    else body(0, k, 0);
}

}  // namespace glimpse
