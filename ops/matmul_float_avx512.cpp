// f32 / f16 / bf16-weight matmul with AVX-512 FMA, f32 activations: the width-generic
// kernel of ops/simd/matmul_float.h on 16 lanes (32-column panels, 12×32 tile in 24 of
// the 32 zmm registers).
#include "ops/simd/vec_avx512.h"
#include "ops/matmul.h"
#include "ops/simd/matmul_float.h"

namespace glimpse {

using GemmAvx512 = simd::FloatGemm<simd::VecAvx512, /*kMR=*/12>;

extern const MatmulKernel f32_gemm__avx512 =
    GemmAvx512::kernel<float>("f32_gemm__avx512", Isa::avx512, DType::f32, KernelPriority::simd_wide);
extern const MatmulKernel f16_gemm__avx512 =
    GemmAvx512::kernel<uint16_t>("f16_gemm__avx512", Isa::avx512, DType::f16, KernelPriority::simd_wide);
extern const MatmulKernel bf16_gemm__avx512 =
    GemmAvx512::kernel<simd::Bf16>("bf16_gemm__avx512", Isa::avx512, DType::bf16, KernelPriority::simd_wide);

}  // namespace glimpse
