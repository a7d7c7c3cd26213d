// f32 / f16 / bf16-weight matmul with AVX2 + FMA (+F16C), f32 activations: the
// width-generic kernel of ops/simd/matmul_float.h on 8 lanes (16-column panels, 6×16
// tile in 12 of the 16 ymm registers).
//
// f16_f16_gemm__avx2: the cache-blocked BlockedF16Gemm of the same header, with ggml's
// rounding of the activations to f16 (one vcvtps2ph + vcvtph2ps per 8 values when x is
// packed): the exact path for f16 weights on CPUs without AMX (Zen 3, Haswell..Alder Lake).
#include "ops/simd/vec_avx2.h"
#include "ops/matmul.h"
#include "ops/simd/matmul_float.h"

namespace glimpse {
namespace {

// VecAvx2 plus the f16 round trip of the activations (nearest even, as ggml's
// GGML_CPU_FP32_TO_FP16 does with F16C).
struct VecAvx2F16Round : simd::VecAvx2 {
    static F round_f16(F x) {
        return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
};

}  // namespace

using GemmAvx2 = simd::FloatGemm<simd::VecAvx2, /*kMR=*/6>;

GLIMPSE_FLOAT_GEMM_KERNELS(GemmAvx2, avx2, Isa::avx2, KernelPriority::simd)
// Listed after f16_gemm__avx2 in ops/kernel_registry.cpp: the same tier, so it wins the
// priority choice for f16 weights at the AVX2 level (ggml's numerics, and 2-3× faster on
// the encoder shapes: docs/benchmarks.md, "AVX2-only CPUs").
extern const MatmulKernel f16_f16_gemm__avx2 =
    simd::BlockedF16Gemm<VecAvx2F16Round, /*kMR=*/6>::kernel("f16_f16_gemm__avx2", Isa::avx2, KernelPriority::simd);

}  // namespace glimpse
