// Top-k selection with AVX-512 (ops/topk.h): scores -> order-preserving u32 keys
// (16 lanes), a radix select of the k-th largest key (8 bits per pass; after the
// first pass only the keys sharing the chosen top byte are kept, compressed into a
// candidate list), then one compress-store pass that writes, in ascending index
// order, every index whose key is above the threshold and the lowest-indexed ones
// equal to it. Selects exactly the reference's set (ties by index, NaN last).
#include <immintrin.h>

#include <cstring>

#include "ops/topk.h"

namespace glimpse {

namespace {

inline __mmask16 lanes(int64_t left) { return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1); }

// The `want` lowest set bits of m.
inline __mmask16 lowest_bits(__mmask16 m, int64_t want) {
    unsigned in = m, out = 0;
    for (int64_t i = 0; i < want && in; ++i) {
        out |= in & (0u - in);
        in &= in - 1;
    }
    return static_cast<__mmask16>(out);
}

}  // namespace

void topk_avx512(const float* scores, int64_t n, int64_t k, int32_t* indices, void* scratch) {
    if (k <= 0) return;
    // scratch: keys:(n) u32, candidates:(n) u32, histogram:(256) u32 (topk_scratch_bytes).
    uint32_t* keys = static_cast<uint32_t*>(scratch);
    uint32_t* cand = keys + n;
    uint32_t* hist = cand + n;

    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf_bits = _mm512_set1_epi32(0x7f800000);
    const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u)), ones = _mm512_set1_epi32(-1);
    const __m512i zero = _mm512_setzero_si512();
    // Keys, and the histogram of their top byte.
    std::memset(hist, 0, 256 * sizeof(uint32_t));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes(n - i);
        __m512i bits = _mm512_maskz_loadu_epi32(m, scores + i);
        const __m512i mag = _mm512_and_si512(bits, abs_mask);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(mag, inf_bits);
        bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(mag, zero), zero);  // -0 -> +0
        const __mmask16 neg = _mm512_test_epi32_mask(bits, sign);
        __m512i key = _mm512_mask_xor_epi32(_mm512_or_si512(bits, sign), neg, bits, ones);
        key = _mm512_mask_mov_epi32(key, nan, zero);
        _mm512_mask_storeu_epi32(keys + i, m, key);
    }
    for (int64_t i = 0; i < n; ++i) ++hist[keys[i] >> 24];

    // Radix select: `prefix` holds the threshold's bytes found so far, `left` how many
    // keys are still to take among those sharing it.
    int64_t left = k;
    int bin = 255;
    while (hist[bin] < left) left -= hist[bin--];
    uint32_t prefix = static_cast<uint32_t>(bin) << 24;
    // Candidates: the keys whose top byte is the threshold's.
    int64_t n_cand = 0;
    const __m512i top = _mm512_set1_epi32(static_cast<int>(prefix >> 24));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes(n - i);
        const __m512i key = _mm512_maskz_loadu_epi32(m, keys + i);
        const __mmask16 match = _mm512_mask_cmpeq_epi32_mask(m, _mm512_srli_epi32(key, 24), top);
        _mm512_mask_compressstoreu_epi32(cand + n_cand, match, key);
        n_cand += __builtin_popcount(match);
    }
    for (int shift = 16; shift >= 0; shift -= 8) {
        std::memset(hist, 0, 256 * sizeof(uint32_t));
        for (int64_t i = 0; i < n_cand; ++i) {
            if ((cand[i] >> (shift + 8)) == (prefix >> (shift + 8))) ++hist[(cand[i] >> shift) & 255];
        }
        bin = 255;
        while (hist[bin] < left) left -= hist[bin--];
        prefix |= static_cast<uint32_t>(bin) << shift;
    }

    // Compaction: keys above the threshold, and the first `left` equal to it.
    const __m512i threshold = _mm512_set1_epi32(static_cast<int>(prefix));
    const __m512i step = _mm512_set1_epi32(16);
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int64_t written = 0;
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes(n - i);
        const __m512i key = _mm512_maskz_loadu_epi32(m, keys + i);
        __mmask16 take = _mm512_mask_cmpgt_epu32_mask(m, key, threshold);
        const __mmask16 equal = _mm512_mask_cmpeq_epi32_mask(m, key, threshold);
        if (equal && left > 0) {
            const __mmask16 first = lowest_bits(equal, left);
            left -= __builtin_popcount(first);
            take |= first;
        }
        _mm512_mask_compressstoreu_epi32(indices + written, take, idx);
        written += __builtin_popcount(take);
        idx = _mm512_add_epi32(idx, step);
    }
}

}  // namespace glimpse
