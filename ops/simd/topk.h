// Width-generic top-k selection (contract in ops/topk.h), written once against a
// vector-traits type V (ops/simd/vec_*.h) and instantiated by ops/topk_avx2.cpp,
// topk_avx512.cpp and topk_neon.cpp:
//   1. keys: each score -> its order-preserving u32 key (topk_key), L lanes at a time;
//   2. radix select of the k-th largest key, 8 bits per pass: a histogram of the top
//      byte over all keys, then the keys sharing the chosen top byte are kept as
//      candidates and the three lower bytes are found over those alone;
//   3. compaction: in ascending index order, every index whose key is above the
//      threshold and the lowest-indexed ones equal to it.
// Exactly the reference's set (ties by index, NaN last). Where V has a compress-store
// (AVX-512) steps 2 and 3 write their survivors with it; elsewhere a lane bitmask is
// walked bit by bit.
#pragma once

#include <cstdint>
#include <cstring>

namespace glimpse::simd {
namespace {

template <class V>
struct Topk {
    using U = typename V::U;
    static constexpr int L = V::kLanes;
    static constexpr bool kCompress = requires(uint32_t* out, typename V::MaskU m, U v) { V::compress_store_u(out, m, v); };

    // The `want` lowest set bits of m.
    static unsigned lowest_bits(unsigned m, int64_t want) {
        unsigned out = 0;
        for (int64_t i = 0; i < want && m; ++i) {
            out |= m & (0u - m);
            m &= m - 1;
        }
        return out;
    }

    // scores:(n) -> keys:(n), keys[i] = topk_key(bits of scores[i])
    static void make_keys(const float* scores, int64_t n, uint32_t* keys) {
        const U abs_mask = V::set1_u(0x7fffffffu), inf_bits = V::set1_u(0x7f800000u);
        const U sign = V::set1_u(0x80000000u), zero = V::set1_u(0);
        for (int64_t i = 0; i < n; i += L) {
            U bits = V::float_bits_tail(scores + i, n - i);
            const U mag = V::and_u(bits, abs_mask);
            bits = V::zero_where(V::eq_u(mag, zero), bits);  // -0 -> +0
            // negative: ~bits; otherwise bits with the sign bit set
            U key = V::xor_u(bits, V::or_u(V::sign_fill(bits), sign));
            key = V::zero_where(V::gt_u(mag, inf_bits), key);  // NaN -> 0, below -inf's key
            V::store_u_tail(keys + i, n - i, key);
        }
    }

    // hist:(256) counts; the highest bin at which the running count from the top reaches
    // *left; *left becomes what is still to take inside that bin.
    static uint32_t select_bin(const uint32_t* hist, int64_t* left) {
        int bin = 255;
        while (hist[bin] < *left) *left -= hist[bin--];
        return static_cast<uint32_t>(bin);
    }

    static void select(const float* scores, int64_t n, int64_t k, int32_t* indices, void* scratch) {
        if (k <= 0) return;
        // scratch: keys:(n) u32, candidates:(n) u32, histogram:(256) u32 (topk_scratch_bytes).
        uint32_t* keys = static_cast<uint32_t*>(scratch);
        uint32_t* cand = keys + n;
        uint32_t* hist = cand + n;
        make_keys(scores, n, keys);

        // Top byte over all keys. `prefix` holds the threshold's bytes found so far,
        // `left` how many keys are still to take among those sharing it.
        std::memset(hist, 0, 256 * sizeof(uint32_t));
        for (int64_t i = 0; i < n; ++i) ++hist[keys[i] >> 24];
        int64_t left = k;
        const uint32_t top = select_bin(hist, &left);
        uint32_t prefix = top << 24;
        int64_t n_cand = 0;
        if constexpr (kCompress) {
            const U top_v = V::set1_u(top);
            for (int64_t i = 0; i < n; i += L) {
                const U key = V::load_u_tail(keys + i, n - i);
                const auto match = V::and_mask(V::eq_u(V::top_byte(key), top_v), V::first_lanes_u(n - i));
                n_cand += V::compress_store_u(cand + n_cand, match, key);
            }
        } else {
            for (int64_t i = 0; i < n; ++i) {  // branch-free: write always, advance on a match
                cand[n_cand] = keys[i];
                n_cand += (keys[i] >> 24) == top;
            }
        }
        for (int shift = 16; shift >= 0; shift -= 8) {
            std::memset(hist, 0, 256 * sizeof(uint32_t));
            for (int64_t i = 0; i < n_cand; ++i) {
                if ((cand[i] >> (shift + 8)) == (prefix >> (shift + 8))) ++hist[(cand[i] >> shift) & 255];
            }
            prefix |= select_bin(hist, &left) << shift;
        }

        // Compaction: keys above the threshold, and the first `left` equal to it.
        const U threshold = V::set1_u(prefix);
        int64_t written = 0;
        for (int64_t i = 0; i < n; i += L) {
            const U key = V::load_u_tail(keys + i, n - i);
            const auto live = V::first_lanes_u(n - i);
            unsigned take = V::mask_bits(V::and_mask(V::gt_u(key, threshold), live));
            const unsigned equal = V::mask_bits(V::and_mask(V::eq_u(key, threshold), live));
            if (equal && left > 0) {
                const unsigned first = lowest_bits(equal, left);
                left -= __builtin_popcount(first);
                take |= first;
            }
            if constexpr (kCompress) {
                written += V::compress_store_u(reinterpret_cast<uint32_t*>(indices) + written, V::mask_from_bits(take),
                                               V::iota_u(static_cast<uint32_t>(i)));
            } else {
                for (; take; take &= take - 1) indices[written++] = static_cast<int32_t>(i + __builtin_ctz(take));
            }
        }
    }
};

}  // namespace
}  // namespace glimpse::simd
