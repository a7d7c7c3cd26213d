// f32 / f16 / bf16-weight matmul with AVX-512 FMA, f32 activations: the width-generic
// kernel of ops/simd/matmul_float.h on 16 lanes (32-column panels, 12×32 tile in 24 of
// the 32 zmm registers).
#include "ops/simd/vec_avx512.h"
#include "ops/matmul.h"
#include "ops/simd/matmul_float.h"

namespace glimpse {
namespace {

using Gemm = simd::FloatGemm<simd::VecAvx512, /*kMR=*/12>;
using simd::Bf16;

// The names the MatmulKernel entries below use.
template <class T>
constexpr auto run_float = &Gemm::run<T>;
template <int Bytes>
constexpr auto pack_panels = &Gemm::pack_panels<Bytes>;
template <int Bytes>
constexpr auto packed_bytes_panels = &Gemm::packed_bytes_panels<Bytes>;

}  // namespace

extern const MatmulKernel f32_gemm__avx512 = {
    .name = "f32_gemm__avx512", .isa = Isa::avx512, .w_type = DType::f32, .priority = KernelPriority::simd_wide,
    .activations = MatmulActivations::f32, .packed_bytes = packed_bytes_panels<4>, .pack = pack_panels<4>,
    .run = run_float<float>};
extern const MatmulKernel f16_gemm__avx512 = {
    .name = "f16_gemm__avx512", .isa = Isa::avx512, .w_type = DType::f16, .priority = KernelPriority::simd_wide,
    .activations = MatmulActivations::f32, .packed_bytes = packed_bytes_panels<2>, .pack = pack_panels<2>,
    .run = run_float<uint16_t>};
extern const MatmulKernel bf16_gemm__avx512 = {
    .name = "bf16_gemm__avx512", .isa = Isa::avx512, .w_type = DType::bf16, .priority = KernelPriority::simd_wide,
    .activations = MatmulActivations::f32, .packed_bytes = packed_bytes_panels<2>, .pack = pack_panels<2>,
    .run = run_float<Bf16>};

}  // namespace glimpse
