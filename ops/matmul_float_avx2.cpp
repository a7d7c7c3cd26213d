// f32 / f16 / bf16-weight matmul with AVX2 + FMA (+F16C), f32 activations: the
// width-generic kernel of ops/simd/matmul_float.h on 8 lanes (16-column panels, 6×16
// tile in 12 of the 16 ymm registers).
#include "ops/simd/vec_avx2.h"
#include "ops/matmul.h"
#include "ops/simd/matmul_float.h"

namespace glimpse {

using GemmAvx2 = simd::FloatGemm<simd::VecAvx2, /*kMR=*/6>;

extern const MatmulKernel f32_gemm__avx2 =
    GemmAvx2::kernel<float>("f32_gemm__avx2", Isa::avx2, DType::f32, KernelPriority::simd);
extern const MatmulKernel f16_gemm__avx2 =
    GemmAvx2::kernel<uint16_t>("f16_gemm__avx2", Isa::avx2, DType::f16, KernelPriority::simd);
extern const MatmulKernel bf16_gemm__avx2 =
    GemmAvx2::kernel<simd::Bf16>("bf16_gemm__avx2", Isa::avx2, DType::bf16, KernelPriority::simd);

}  // namespace glimpse
