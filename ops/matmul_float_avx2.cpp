// f32 / f16 / bf16-weight matmul with AVX2 + FMA (+F16C), f32 activations: the
// width-generic kernel of ops/simd/matmul_float.h on 8 lanes (16-column panels, 6×16
// tile in 12 of the 16 ymm registers).
#include "ops/simd/vec_avx2.h"
#include "ops/matmul.h"
#include "ops/simd/matmul_float.h"

namespace glimpse {
namespace {

using Gemm = simd::FloatGemm<simd::VecAvx2, /*kMR=*/6>;
using simd::Bf16;

// The names the MatmulKernel entries below use.
template <class T>
constexpr auto run_float = &Gemm::run<T>;
template <int Bytes>
constexpr auto pack_panels = &Gemm::pack_panels<Bytes>;
template <int Bytes>
constexpr auto packed_bytes_panels = &Gemm::packed_bytes_panels<Bytes>;

}  // namespace

extern const MatmulKernel f32_gemm__avx2 = {
    .name = "f32_gemm__avx2", .isa = Isa::avx2, .w_type = DType::f32, .priority = KernelPriority::simd,
    .activations = MatmulActivations::f32, .packed_bytes = packed_bytes_panels<4>, .pack = pack_panels<4>,
    .run = run_float<float>};
extern const MatmulKernel f16_gemm__avx2 = {
    .name = "f16_gemm__avx2", .isa = Isa::avx2, .w_type = DType::f16, .priority = KernelPriority::simd,
    .activations = MatmulActivations::f32, .packed_bytes = packed_bytes_panels<2>, .pack = pack_panels<2>,
    .run = run_float<uint16_t>};
extern const MatmulKernel bf16_gemm__avx2 = {
    .name = "bf16_gemm__avx2", .isa = Isa::avx2, .w_type = DType::bf16, .priority = KernelPriority::simd,
    .activations = MatmulActivations::f32, .packed_bytes = packed_bytes_panels<2>, .pack = pack_panels<2>,
    .run = run_float<Bf16>};

}  // namespace glimpse
