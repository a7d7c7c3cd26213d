// Eigen matmul provider, shared by the per-architecture translation units
// ops/providers/eigen_avx2.cpp (x86-64, AVX2+FMA) and eigen_neon.cpp (aarch64). Only
// one of them is compiled per architecture: Eigen's inline templates compiled with
// two different instruction sets in one binary would be merged by the linker (ODR),
// and the AVX2 copy could end up called on a CPU without AVX2.
//
//   yᵀ:(N,M) = W:(N,K) · xᵀ:(K,M)  -- column-major view of y:(M,N) = x · Wᵀ,
//
// computed by Eigen's GEBP kernel (general_matrix_matrix_product, Eigen 3.3/3.4
// internal API) per column slice of y: one slice per ThreadPool thread. Eigen would
// allocate its packing blocks on the heap (or the stack) on every product; here
// they come from the kernel's scratch (a level3_blocking with our pointers), so
// run() allocates nothing. M = 1 uses Eigen's GEMV, which needs no blocks.
//
// Weights: f32 as stored (no packing); f16 widened to f32 once at pack time.
#pragma once

#if !defined(GLIMPSE_EIGEN_ISA) || !defined(GLIMPSE_EIGEN_SUFFIX)
#error "define GLIMPSE_EIGEN_ISA (an Isa) and GLIMPSE_EIGEN_SUFFIX (a name suffix) before including eigen_impl.h"
#endif

#include <Eigen/Core>

#include <algorithm>
#include <cstring>

#include "ops/matmul.h"
#include "ops/weights.h"
#include "runtime/aligned_buffer.h"

namespace glimpse {
namespace {

using EIndex = Eigen::Index;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Eigen's cache blocking for a slice of `rows` output columns over depth K, taken
// for a wide x (kBlockingCols rows) so it does not depend on the call's M: the
// scratch regions then have one size per (N, K, threads), known to scratch_bytes
// and to run() alike. run() uses nc = min(nc, M) (Eigen does the same).
constexpr EIndex kBlockingCols = 4096;

struct Blocking {
    EIndex kc = 0, mc = 0, nc = 0;
    int64_t a_floats = 0, b_floats = 0;  // packing blocks (Eigen packs whole register tiles: margin)
    int64_t region_bytes() const { return align_up((a_floats + b_floats) * 4, 64); }
};

Blocking blocking_for(EIndex rows, EIndex depth) {
    Blocking b;
    b.kc = depth;
    b.mc = rows;
    b.nc = kBlockingCols;
    Eigen::internal::computeProductBlockingSizes<float, float, 1>(b.kc, b.mc, b.nc, EIndex{1});
    b.a_floats = align_up(b.kc * (b.mc + 32), 16);
    b.b_floats = align_up(b.kc * (b.nc + 32), 16);
    return b;
}

// Blocking whose packing buffers are caller memory.
class ScratchBlocking : public Eigen::internal::level3_blocking<float, float> {
public:
    ScratchBlocking(const Blocking& b, float* block_a, float* block_b) {
        m_kc = b.kc;
        m_mc = b.mc;
        m_nc = b.nc;
        m_blockA = block_a;
        m_blockB = block_b;
    }
};

// Column slices of a fixed width (a multiple of Eigen's register tiles: 24 rows of
// W for AVX2, 12 for NEON) that depends on N only: Eigen's tail kernels sum in a
// different order than its main kernels, so a column's result depends on where it
// sits in its slice; fixed slices keep results identical for any thread count.
int64_t slice_cols(int64_t N) { return N < 2048 ? 96 : 192; }

void eigen_run(const MatmulArgs& a, ThreadPool* pool) {
    const float* w = static_cast<const float*>(a.packed ? a.packed : a.w);
    const int T = pool ? pool->n_threads() : 1;
    const int64_t slice = slice_cols(a.N), n_slices = (a.N + slice - 1) / slice;
    const Blocking blk = a.M > 1 ? blocking_for(slice, a.K) : Blocking{};
    // Thread t takes slices [S·t/T, S·(t+1)/T) and reuses its scratch region for each.
    auto body = [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
          int64_t s0, s1;
          ThreadPool::chunk(n_slices, static_cast<int>(t), T, &s0, &s1);
          for (int64_t sl = s0; sl < s1; ++sl) {
            const int64_t n0 = sl * slice, n1 = std::min(a.N, (sl + 1) * slice);
            if (a.M == 1) {
                Eigen::Map<const RowMat> W(w + n0 * a.K, n1 - n0, a.K);
                Eigen::Map<const Eigen::VectorXf> x(a.x, a.K);
                Eigen::Map<Eigen::VectorXf> y(a.y + n0, n1 - n0);
                y.noalias() = W * x;
            } else {
                float* region = reinterpret_cast<float*>(static_cast<uint8_t*>(a.scratch) + t * blk.region_bytes());
                ScratchBlocking blocking(blk, region, region + blk.a_floats);
                // The product accumulates into y: clear this slice first.
                for (int64_t m = 0; m < a.M; ++m) std::memset(a.y + m * a.ldy + n0, 0, (n1 - n0) * 4);
                Eigen::internal::general_matrix_matrix_product<EIndex, float, Eigen::RowMajor, false, float,
                                                               Eigen::ColMajor, false, Eigen::ColMajor, 1>::
                    run(n1 - n0, a.M, a.K, w + n0 * a.K, a.K, a.x, a.ldx, a.y + n0, 1, a.ldy, 1.0f, blocking, nullptr);
            }
            if (a.bias) {
                for (int64_t m = 0; m < a.M; ++m) {
                    float* yr = a.y + m * a.ldy;
                    for (int64_t n = n0; n < n1; ++n) yr[n] += a.bias[n];
                }
            }
          }
        }
    };
    if (pool && T > 1) pool->parallel_for(T, body);
    else body(0, 1, 0);
}

// T regions of packing blocks (none when every call is one row: GEMV).
int64_t eigen_scratch_layout(int64_t M_max, int64_t K, int64_t N, int n_threads) {
    n_threads = std::max(n_threads, 1);
    if (M_max <= 1) return 0;
    return n_threads * blocking_for(slice_cols(N), K).region_bytes();
}

int64_t eigen_packed_f16(int64_t N, int64_t K) { return N * K * 4; }
void eigen_pack_f16(const void* w, int64_t N, int64_t K, void* out) {
    float* o = static_cast<float*>(out);
    for (int64_t n = 0; n < N; ++n) weights_row_to_f32(w, DType::f16, K, n, o + n * K);
}

}  // namespace

#define GLIMPSE_EIGEN_CAT2(a, b) a##b
#define GLIMPSE_EIGEN_CAT(a, b) GLIMPSE_EIGEN_CAT2(a, b)
#define GLIMPSE_EIGEN_STR2(a) #a
#define GLIMPSE_EIGEN_STR(a) GLIMPSE_EIGEN_STR2(a)

extern const MatmulKernel GLIMPSE_EIGEN_CAT(kEigenF32_, GLIMPSE_EIGEN_SUFFIX);
extern const MatmulKernel GLIMPSE_EIGEN_CAT(kEigenF32F16w_, GLIMPSE_EIGEN_SUFFIX);
const MatmulKernel GLIMPSE_EIGEN_CAT(kEigenF32_, GLIMPSE_EIGEN_SUFFIX) = {
    .name = "eigen_f32__" GLIMPSE_EIGEN_STR(GLIMPSE_EIGEN_SUFFIX), .isa = GLIMPSE_EIGEN_ISA, .w_type = DType::f32,
    .priority = KernelPriority::decisions_only, .activations = MatmulActivations::f32,
    .scratch_bytes = eigen_scratch_layout, .run = eigen_run};
const MatmulKernel GLIMPSE_EIGEN_CAT(kEigenF32F16w_, GLIMPSE_EIGEN_SUFFIX) = {
    .name = "eigen_f32_f16w__" GLIMPSE_EIGEN_STR(GLIMPSE_EIGEN_SUFFIX), .isa = GLIMPSE_EIGEN_ISA,
    .w_type = DType::f16, .priority = KernelPriority::decisions_only, .activations = MatmulActivations::f32,
    .packed_bytes = eigen_packed_f16, .pack = eigen_pack_f16, .scratch_bytes = eigen_scratch_layout, .run = eigen_run};

}  // namespace glimpse
