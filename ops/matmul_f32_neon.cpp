// f32 and f16 weights x f32 activations with NEON FMA (any aarch64 core).
//
//   x:(M,K) f32, W:(N,K) f32 or f16 (read in the file's layout) -> y:(M,N)
//
// A tile is MR <= 4 rows of x by 4 weight rows: per 4 values of k it loads 4 weight
// vectors (f16: 4-lane FCVTL, part of armv8-a, no FP16 arithmetic needed) and MR x
// vectors and issues 4·MR FMAs into 4·MR accumulators, reduced pairwise at the end.
// The f16 path keeps x in f32, so only summation order differs from the reference.
#include <arm_neon.h>

#include <algorithm>

#include "ops/matmul.h"

namespace glimpse {
namespace {

template <bool kF16>
inline float32x4_t load_w(const void* w, int64_t index) {
    if constexpr (kF16) {
        return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(static_cast<const uint16_t*>(w) + index)));
    } else {
        return vld1q_f32(static_cast<const float*>(w) + index);
    }
}

template <bool kF16>
inline float load_w1(const void* w, int64_t index) {
    if constexpr (kF16) {
        return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vld1_dup_u16(static_cast<const uint16_t*>(w) + index))), 0);
    } else {
        return static_cast<const float*>(w)[index];
    }
}

// Rows [m, m+MR) x weight rows n..n+3 (rows past N repeat row N-1 and are not stored).
template <bool kF16, int MR>
void tile(const MatmulArgs& a, int64_t m, int64_t n) {
    const int64_t K = a.K;
    int64_t wrow[4];
    for (int j = 0; j < 4; ++j) wrow[j] = std::min(n + j, a.N - 1) * K;
    const float* xr[MR];
    for (int r = 0; r < MR; ++r) xr[r] = a.x + (m + r) * a.ldx;

    float32x4_t acc[MR][4];
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < 4; ++j) acc[r][j] = vdupq_n_f32(0.0f);
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) {
        float32x4_t w[4];
        for (int j = 0; j < 4; ++j) w[j] = load_w<kF16>(a.w, wrow[j] + k);
        for (int r = 0; r < MR; ++r) {
            const float32x4_t xv = vld1q_f32(xr[r] + k);
            for (int j = 0; j < 4; ++j) acc[r][j] = vfmaq_f32(acc[r][j], xv, w[j]);
        }
    }
    for (int r = 0; r < MR; ++r) {
        // [Σ acc[r][0], Σ acc[r][1], Σ acc[r][2], Σ acc[r][3]]
        float32x4_t s = vpaddq_f32(vpaddq_f32(acc[r][0], acc[r][1]), vpaddq_f32(acc[r][2], acc[r][3]));
        float out[4];
        vst1q_f32(out, s);
        for (int j = 0; j < 4 && n + j < a.N; ++j) {
            float v = out[j];
            for (int64_t kk = k; kk < K; ++kk) v += xr[r][kk] * load_w1<kF16>(a.w, wrow[j] + kk);
            if (a.bias) v += a.bias[n + j];
            a.y[(m + r) * a.ldy + n + j] = v;
        }
    }
}

template <bool kF16>
void run_f(const MatmulArgs& a, ThreadPool* pool) {
    auto body = [&](int64_t n0, int64_t n1, int) {
        for (int64_t n = n0; n < n1; n += 4) {
            int64_t m = 0;
            for (; m + 4 <= a.M; m += 4) tile<kF16, 4>(a, m, n);
            switch (a.M - m) {
                case 3: tile<kF16, 3>(a, m, n); break;
                case 2: tile<kF16, 2>(a, m, n); break;
                case 1: tile<kF16, 1>(a, m, n); break;
                default: break;
            }
        }
    };
    if (pool) pool->parallel_for_grain(a.N, 4, body);
    else body(0, a.N, 0);
}

void run_f32(const MatmulArgs& a, ThreadPool* pool) { run_f<false>(a, pool); }
void run_f16(const MatmulArgs& a, ThreadPool* pool) { run_f<true>(a, pool); }

}  // namespace

extern const MatmulKernel kMatmulF32Neon = {
    .name = "f32_gemm__neon", .isa = Isa::neon, .w_type = DType::f32, .priority = KernelPriority::simd_narrow,
    .activations = MatmulActivations::f32, .run = run_f32};
extern const MatmulKernel kMatmulF16Neon = {
    .name = "f16_gemm__neon", .isa = Isa::neon, .w_type = DType::f16, .priority = KernelPriority::simd_narrow,
    .activations = MatmulActivations::f32, .run = run_f16};

}  // namespace glimpse
