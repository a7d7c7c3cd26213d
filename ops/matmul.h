// Matrix multiply with a weight matrix in GGUF layout.
//
//   x:(M,K) f32, W:(N,K) stored as `w_type` (row n holds output n's K weights),
//   bias:(N) f32 or null  ->  y:(M,N) = x · Wᵀ + bias
//
// Rows of x and y may be strided (ldx, ldy in elements) so a kernel can read
// or write a slice of a wider tensor.
//
// Implementations are MatmulKernel entries of the kernel registry (ops/kernel_registry.cpp):
// the scalar references, SIMD kernels in their ISA translation units and
// library providers. The plan chooses one per linear node when it is compiled,
// repacks that node's weights once into the kernel's layout, and reserves the
// scratch the kernel asks for; run() then only calls `run`.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/kernel_registry.h"
#include "runtime/dtype.h"
#include "runtime/threadpool.h"
#include "targets/cpu_features.h"

namespace glimpse {

struct MatmulArgs {
    const float* x = nullptr;
    int64_t ldx = 0;
    int64_t M = 0, K = 0, N = 0;
    const void* w = nullptr;       // weights as stored in the file
    DType w_type = DType::f32;
    const void* packed = nullptr;  // the kernel's repacked weights, if it packs
    const float* bias = nullptr;
    float* y = nullptr;
    int64_t ldy = 0;
    void* scratch = nullptr;       // scratch_bytes(...) bytes, 64-byte aligned
};

// What a kernel does to the activations x before multiplying: the source of its
// error against matmul_ref, and the tolerance its tests apply.
enum class MatmulActivations {
    f32,   // used as f32 (only summation order differs from the reference)
    f16,   // rounded to f16 (ggml's f16-weight path)
    bf16,  // rounded to bf16 (AVX512-BF16 / AMX-BF16 dot products)
    q8_0,  // quantized per 32-block to int8 with an f16 scale (ggml's q8_0/q4_0 path)
    q8_1,  // q8_0 plus block sums (q4_1/q5_1 dot products)
    q8_k,  // quantized per 256-block with an f32 scale (k-quant dot products)
    // Library providers (ops/providers/): these also round the weights, which the
    // kernel repacks from the stored type.
    bf16_bf16w,  // x and the (f16/f32) weights both rounded to bf16
    s8_row_s8w,  // x quantized per row to int8 (scale amax/127, f32), weights per output row likewise
};

// A matmul kernel's table. Defined with designated initialisers in the kernel's
// translation unit and listed in ops/kernel_registry.cpp; the optional functions
// default to "not needed".
struct MatmulKernel {
    const char* name;  // "<what>__<isa>", e.g. "q8_0_q8_0_gemm__avx512vnni", "f32_ref"
    Isa isa;           // lowest level it needs
    DType w_type;      // the stored weight type it reads
    int priority;      // a KernelPriority tier (ops/kernel_registry.h); see select_matmul_kernel
    MatmulActivations activations;
    // Shapes it handles (nullptr: any). K is the reduction length.
    bool (*supports)(int64_t M_max, int64_t K, int64_t N) = nullptr;
    // Repacking (both nullptr: reads the file's layout directly).
    int64_t (*packed_bytes)(int64_t N, int64_t K) = nullptr;
    void (*pack)(const void* w, int64_t N, int64_t K, void* out) = nullptr;
    // Scratch for up to M_max rows over n_threads threads (nullptr: none).
    int64_t (*scratch_bytes)(int64_t M_max, int64_t K, int64_t N, int n_threads) = nullptr;
    void (*run)(const MatmulArgs& args, ThreadPool* pool) = nullptr;
    // Library providers: whether the library is usable at run time (nullptr: yes).
    bool (*available)() = nullptr;
};

// y:(M,N) = x:(M,K) · w:(N,K)ᵀ + bias:(N) (bias may be null) with `kernel`, rows stored
// densely (ldx = K, ldy = N): w as stored in the file, packed = kernel.pack's copy of it
// (null if the kernel does not pack), scratch = kernel.scratch_bytes(...) bytes.
inline MatmulArgs dense_matmul_args(const MatmulKernel& kernel, const float* x, const void* w, const void* packed,
                                    const float* bias, float* y, void* scratch, int64_t M, int64_t K, int64_t N) {
    return MatmulArgs{.x = x, .ldx = K, .M = M, .K = K, .N = N, .w = w, .w_type = kernel.w_type, .packed = packed,
                      .bias = bias, .y = y, .ldy = N, .scratch = scratch};
}

// Every matmul kernel of the registry (ops/kernel_registry.h), references first.
const std::vector<const MatmulKernel*>& matmul_kernels();
const MatmulKernel* find_matmul_kernel(const char* name);

// The kernel for a linear node: a decision measured on this machine (`glimpse tune`,
// ops/matmul_decision_file.h), then ops/matmul_decisions.inc, else among kernels for
// w_type whose ISA is usable at the active level, that support the shape and are available, the one with the
// highest priority (ties: later in the list). nullptr if none (unsupported type).
const MatmulKernel* select_matmul_kernel(DType w_type, int64_t M_max, int64_t K, int64_t N);
// The priority rule alone (no decisions): what select_matmul_kernel falls back to, and
// what a decision's numerics policy is judged against (ops/matmul_decision_file.h).
const MatmulKernel* priority_matmul_kernel(DType w_type, int64_t M_max, int64_t K, int64_t N);

// Reference: every output is a double-precision sum over k in order, rounded
// once to f32 — the oracle that faster variants are tested against. Reads any
// type weights_row_to_f32 understands.
void matmul_ref(const MatmulArgs& args, ThreadPool* pool);

}  // namespace glimpse
