// Top-k selection: the indices of the k best scores, for visual-token pruning
// (issue 23: keep the k most attended / most relevant rows).
//
//   scores:(n) f32 -> indices:(k) i32, 0 <= k <= n
//
// Order of "best": a higher score is better; equal scores rank by index (the lower
// index wins), so the selected set is unique and does not depend on the kernel; -0
// and +0 are equal; every NaN ranks below every number (-inf included), NaNs among
// themselves by index. The output lists the selected indices in ascending order (the
// raster order of the rows they name), ready for a gather.
//
// Kernels are partial selections, never a full sort: the reference uses
// std::nth_element with that order on floats; SIMD variants map scores to
// order-preserving unsigned keys and find the k-th largest by radix histograms
// (ops/simd/topk.h, one source for AVX2, AVX-512 and NEON). k is fixed when a plan is compiled (static shapes); only
// which rows survive is decided at run time.
#pragma once

#include <cstdint>

namespace glimpse {

// Scratch bytes every topk kernel needs for n scores (64-byte aligned by the caller).
int64_t topk_scratch_bytes(int64_t n);

// The reference (the oracle of the variants).
void topk_ref(const float* scores, int64_t n, int64_t k, int32_t* indices, void* scratch);

// The order-preserving key of a score: a > b in the order above (ignoring the index
// tie-break) iff key(a) > key(b). NaN -> 0, below -inf's key; -0 -> +0's key.
inline uint32_t topk_key(uint32_t float_bits) {
    if ((float_bits & 0x7fffffffu) > 0x7f800000u) return 0;  // NaN
    if ((float_bits & 0x7fffffffu) == 0) float_bits = 0;     // -0 -> +0
    return (float_bits & 0x80000000u) ? ~float_bits : (float_bits | 0x80000000u);
}

// The radix select of ops/simd/topk.h, per ISA (ops/topk_<isa>.cpp).
#if defined(__x86_64__)
void topk_avx2(const float* scores, int64_t n, int64_t k, int32_t* indices, void* scratch);
void topk_avx512(const float* scores, int64_t n, int64_t k, int32_t* indices, void* scratch);
#endif
#if defined(__aarch64__)
void topk_neon(const float* scores, int64_t n, int64_t k, int32_t* indices, void* scratch);
#endif

}  // namespace glimpse
