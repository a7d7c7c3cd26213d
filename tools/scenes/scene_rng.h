// The generator's only source of randomness: splitmix64 plus integer range mapping.
// std::uniform_*_distribution is implementation-defined, so it would make the same seed
// draw different scenes under libstdc++, libc++ and MSVC; these functions never do.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace glimpse::scenes {

// splitmix64's finalizer: a bijective 64-bit mix.
inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Independent streams per purpose, so e.g. asking for more QA pairs never changes pixels.
inline uint64_t derive_seed(uint64_t seed, uint64_t stream) {
    return mix64(seed ^ mix64(stream + 0x9E3779B97F4A7C15ull));
}

class SceneRng {
public:
    // The seed is mixed first so that neighbouring seeds start far apart.
    explicit SceneRng(uint64_t seed) : state_(mix64(seed)) {}
    // Plain splitmix64 started at `state` (as in the reference implementation).
    static SceneRng from_state(uint64_t state) {
        SceneRng rng(0);
        rng.state_ = state;
        return rng;
    }

    uint64_t next_u64() {
        state_ += 0x9E3779B97F4A7C15ull;
        return mix64(state_);
    }
    uint32_t next_u32() { return static_cast<uint32_t>(next_u64() >> 32); }

    // Uniform in [0, n), n > 0: Lemire's multiply-shift with rejection (unbiased).
    uint32_t below(uint32_t n) {
        uint64_t product = static_cast<uint64_t>(next_u32()) * n;
        uint32_t low = static_cast<uint32_t>(product);
        if (low < n) {
            const uint32_t threshold = (0u - n) % n;
            while (low < threshold) {
                product = static_cast<uint64_t>(next_u32()) * n;
                low = static_cast<uint32_t>(product);
            }
        }
        return static_cast<uint32_t>(product >> 32);
    }

    // Uniform in [lo, hi], both inclusive; lo <= hi.
    int range(int lo, int hi) {
        return lo + static_cast<int>(below(static_cast<uint32_t>(hi - lo) + 1u));
    }

    // True with probability p, resolved to 1e-6. llround(p * 1e6) is one IEEE multiply
    // and a rounding: identical everywhere.
    bool chance(double p) {
        const uint32_t threshold = static_cast<uint32_t>(std::llround(p * 1e6));
        return below(1000000u) < threshold;
    }

    // Index i with probability weights[i] / sum(weights); the sum must be positive.
    size_t weighted(const int* weights, size_t count) {
        uint32_t total = 0;
        for (size_t i = 0; i < count; ++i) total += static_cast<uint32_t>(weights[i]);
        uint32_t pick = below(total);
        for (size_t i = 0; i < count; ++i) {
            const uint32_t w = static_cast<uint32_t>(weights[i]);
            if (pick < w) return i;
            pick -= w;
        }
        return count - 1;  // unreachable: pick < total
    }

private:
    uint64_t state_;
};

}  // namespace glimpse::scenes
