// W8A8 / W4A8 matmul with ggml's semantics, in portable scalar code: the oracle
// the SIMD quantized kernels are tested against, and the kernel a scalar-only
// build runs for Q8_0/Q4_0 weights.
//
//   x:(M,K) f32 --quantize_row_q8_0--> q8_0 blocks (ggml-cpu x86 rounding)
//   y[m][n] = Σ_b  sumi(m,n,b) · (d_w(n,b) · d_x(m,b))   (+ bias[n])
//
// sumi is the exact integer dot product of block b (Q8_0: w·q; Q4_0: (nibble-8)·q).
// Both scales are f16 values, so d_w·d_x is exact in f32 (11+11 significant
// bits), and so is float(sumi) (|sumi| <= 32·127·128 < 2^24): every block term
// is exact before it is added. The sum runs over blocks in order with one fused
// multiply-add per block, acc = fma(float(sumi), d_w·d_x, acc), which is what
// ggml's x86 dot products do per lane (_mm256_fmadd_ps). Only the association
// differs from ggml (ggml keeps 8 lanes of partial sums), so a SIMD kernel that
// accumulates blocks in order with FMA reproduces this kernel bit for bit.
#include <cmath>
#include <cstring>

#include "ops/matmul.h"
#include "ops/matmul_q8_rows.h"
#include "ops/quantize_activations.h"
#include "quant/formats.h"
#include "runtime/fp16.h"

namespace glimpse {
namespace {

inline int32_t dot_block(const BlockQ8_0& w, const BlockQ8_0& x) {
    int32_t s = 0;
    for (int j = 0; j < kQK; ++j) s += static_cast<int32_t>(w.qs[j]) * x.qs[j];
    return s;
}

inline int32_t dot_block(const BlockQ4_0& w, const BlockQ8_0& x) {
    int32_t s = 0;
    for (int j = 0; j < kQK / 2; ++j) {
        s += ((w.qs[j] & 0x0f) - 8) * static_cast<int32_t>(x.qs[j]);
        s += ((w.qs[j] >> 4) - 8) * static_cast<int32_t>(x.qs[j + kQK / 2]);
    }
    return s;
}

template <class WBlock>
void run_q_scalar(const MatmulArgs& a, ThreadPool* pool) {
    const int64_t nb = a.K / kQK;
    BlockQ8_0* xq = static_cast<BlockQ8_0*>(a.scratch);
    auto multiply = [&](int64_t n0, int64_t n1, int) {
        const WBlock* w = static_cast<const WBlock*>(a.w);
        for (int64_t n = n0; n < n1; ++n) {
            const WBlock* wr = w + n * nb;
            for (int64_t m = 0; m < a.M; ++m) {
                const BlockQ8_0* xr = xq + m * nb;
                float acc = 0.0f;
                for (int64_t b = 0; b < nb; ++b) {
                    const float d = f16_to_f32(wr[b].d) * f16_to_f32(xr[b].d);
                    acc = std::fma(static_cast<float>(dot_block(wr[b], xr[b])), d, acc);
                }
                a.y[m * a.ldy + n] = a.bias ? acc + a.bias[n] : acc;
            }
        }
    };
    q8_rows::quantize_rows(a, xq, pool, quantize_row_q8_0);
    if (pool) pool->parallel_for(a.N, multiply);
    else multiply(0, a.N, 0);
}

}  // namespace

// Priority 1: above the f32-activation references, so a scalar-only run gets ggml's numbers.
extern const MatmulKernel q8_0_q8_0__scalar = {
    .name = "q8_0_q8_0__scalar", .isa = Isa::scalar, .w_type = DType::q8_0, .priority = KernelPriority::scalar,
    .activations = MatmulActivations::q8_0, .supports = q8_rows::supports_whole_blocks,
    .scratch_bytes = q8_rows::scratch_q8_0,
    .run = run_q_scalar<BlockQ8_0>};
extern const MatmulKernel q4_0_q8_0__scalar = {
    .name = "q4_0_q8_0__scalar", .isa = Isa::scalar, .w_type = DType::q4_0, .priority = KernelPriority::scalar,
    .activations = MatmulActivations::q8_0, .supports = q8_rows::supports_whole_blocks,
    .scratch_bytes = q8_rows::scratch_q8_0,
    .run = run_q_scalar<BlockQ4_0>};

}  // namespace glimpse
