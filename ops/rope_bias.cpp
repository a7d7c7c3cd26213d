#include "ops/rope_bias.h"

#include <algorithm>
#include <cmath>

namespace glimpse {

Result<RopeBiasTable> rope_bias_table(int64_t head_dim, int64_t n_rot, float base) {
    GLIMPSE_CHECK_OR_RETURN(head_dim >= 1 && n_rot >= 2 && n_rot <= head_dim && n_rot % 2 == 0, invalid_argument,
                            "rope bias: n_rot %lld must be even and in [2, head_dim %lld]",
                            static_cast<long long>(n_rot), static_cast<long long>(head_dim));
    GLIMPSE_CHECK_OR_RETURN(std::isfinite(base) && base > 0, invalid_argument,
                            "rope bias: the rope base must be finite and positive, not %g", static_cast<double>(base));
    RopeBiasTable t;
    t.head_dim = head_dim;
    t.n_rot = n_rot;
    t.theta.resize(static_cast<size_t>(n_rot / 2));
    for (int64_t i = 0; i < n_rot / 2; ++i) {
        t.theta[static_cast<size_t>(i)] = std::pow(static_cast<double>(base), -2.0 * static_cast<double>(i) / n_rot);
    }
    return t;
}

double RopeBiasTable::bias(int64_t delta) const {
    double sum = static_cast<double>(head_dim - n_rot);
    for (double th : theta) sum += 2.0 * std::cos(static_cast<double>(delta) * th);
    return sum;
}

double RopeBiasTable::divisor(int64_t delta) const {
    if (delta >= 0 && delta < static_cast<int64_t>(divisors.size())) return divisors[static_cast<size_t>(delta)];
    return std::max(bias(delta), kRopeBiasFloorShare * static_cast<double>(head_dim));
}

void RopeBiasTable::cache_divisors(int64_t n) {
    divisors.clear();
    std::vector<double> table(static_cast<size_t>(std::max<int64_t>(n, 0)));
    for (int64_t d = 0; d < n; ++d) table[static_cast<size_t>(d)] = divisor(d);
    divisors = std::move(table);
}

void rope_debias_ref(const RopeBiasTable& table, int32_t query_pos, const int32_t* key_pos, int64_t n, float* scores) {
    for (int64_t s = 0; s < n; ++s) {
        const int64_t delta = static_cast<int64_t>(query_pos) - key_pos[s];
        scores[s] = static_cast<float>(static_cast<double>(scores[s]) / table.divisor(delta));
    }
}

}  // namespace glimpse
