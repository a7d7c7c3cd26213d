// f32 / f16 / bf16-weight matmul with AVX-512 FMA, f32 activations: the width-generic
// kernel of ops/simd/matmul_float.h on 16 lanes (32-column panels, 12×32 tile in 24 of
// the 32 zmm registers).
#include "ops/simd/vec_avx512.h"
#include "ops/matmul.h"
#include "ops/simd/matmul_float.h"

namespace glimpse {

using GemmAvx512 = simd::FloatGemm<simd::VecAvx512, /*kMR=*/12>;

GLIMPSE_FLOAT_GEMM_KERNELS(GemmAvx512, avx512, Isa::avx512, KernelPriority::simd_wide)

}  // namespace glimpse
