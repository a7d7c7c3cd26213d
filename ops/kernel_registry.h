// The kernel registry: every kernel of every op family (matmul included) is one
// entry of one list (ops/kernel_registry.cpp), written with designated initialisers:
//
//   {.name = "rms_norm__avx2", .op = OpFamily::rms_norm, .isa = Isa::avx2,
//    .priority = KernelPriority::simd, .fn = {.rms_norm = rms_norm_avx2}},
//
// Dispatch (select_kernel, select_matmul_kernel), the variant tests
// (tests/test_op_variants.cpp, tests/test_matmul_kernels.cpp) and the benchmark
// (glimpse-bench kernels) all iterate that list, so a new variant is one entry:
// it is tested against its family's reference and benchmarked with no other edit.
// Each family's first entry is its scalar reference, the oracle of the others.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/attention.h"
#include "ops/query_key_score.h"
#include "ops/unary.h"
#include "runtime/dtype.h"
#include "runtime/threadpool.h"
#include "targets/cpu_features.h"

namespace glimpse {

struct MatmulKernel;  // ops/matmul.h

// Among the usable kernels of a family (and, for matmul, of a weight type and shape)
// the highest priority wins; ties go to the later entry. Named tiers, so an entry
// says why it ranks where it does.
struct KernelPriority {
    // Never chosen by priority, only by a measured decision (ops/matmul_decisions.inc):
    // library providers, and kernels with coarser numerics than the priority choice.
    static constexpr int decisions_only = -1;
    static constexpr int reference = 0;  // the scalar oracle of its family
    static constexpr int scalar = 1;     // portable code faster than the reference
    static constexpr int simd_narrow = 10;  // NEON (every aarch64 core)
    static constexpr int simd = 20;         // AVX2+FMA+F16C; Armv8.2 dotprod
    // A kernel of a higher level that measured slower than that level's simd_wide kernel
    // on the common shapes: it runs only where the simd_wide kernel does not apply.
    static constexpr int simd_wide_fallback = 25;
    static constexpr int simd_wide = 30;  // AVX-512 (F/BW/VL/DQ/VNNI); Armv8.6 i8mm
    static constexpr int matrix = 40;     // AMX tiles
};

// The op families with registered kernels.
enum class OpFamily : uint8_t {
    matmul,
    layer_norm,
    rms_norm,
    unary,
    swiglu,
    add,
    mul,
    rope,
    attention,
    weights_row,
    topk,
    gather_rows,
    cosine_similarity,
    tap_scores,
    merge_rows,
    query_key_score,
    attention_kvq,  // attention over a q8_0 / q4_0 KV cache (ops/attention_kvq.h)
    attention_row,  // one query row's attention per head: the [CLS] tap (ops/prune_score.h)
};
const char* op_family_name(OpFamily op);

// Family signatures ------------------------------------------------------------

// x:(T,C), gamma/beta:(C) or null -> y:(T,C)
using LayerNormFn = void (*)(const float* x, int64_t T, int64_t C, const float* gamma, const float* beta, float eps,
                             float* y, ThreadPool* pool);
using RmsNormFn = void (*)(const float* x, int64_t T, int64_t C, const float* gamma, float eps, float* y,
                           ThreadPool* pool);
// y[i] = op(x[i]) over n elements
using UnaryFn = void (*)(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool);
// y = silu(gate) * up over n elements
using SwigluFn = void (*)(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool);
// a:(T,C) op b:(T,C) or (C) when b_rows == 1 -> y:(T,C)
using BinaryFn = void (*)(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y,
                          ThreadPool* pool);
// x:(T,H·D), pos:(T) -> y (llama "normal" rope over the first n_rot dims of each head)
using RopeFn = void (*)(const float* x, const int32_t* pos, int64_t T, int64_t H, int64_t D, int64_t n_rot, float base,
                        float* y, ThreadPool* pool);
using AttentionFn = void (*)(const AttentionArgs& args, float* scratch, ThreadPool* pool);
// Row `row` of a (rows, n) matrix stored as `type` -> out:(n) f32. Returns false when
// the kernel does not handle `type` (the next kernel of the family is tried; the
// reference handles every type weights_type_supported accepts).
using WeightsRowFn = bool (*)(const void* w, DType type, int64_t n, int64_t row, float* out);
// scores:(n) f32 -> indices:(k) i32, the k best in ascending index order
// (ops/topk.h gives the contract); scratch: topk_scratch_bytes(n) bytes, 64-byte aligned.
using TopkFn = void (*)(const float* scores, int64_t n, int64_t k, int32_t* indices, void* scratch);
// x:(T,C), idx:(k) i32 in [0,T) -> y:(k,C) = the rows idx names (ops/gather.h)
using GatherRowsFn = void (*)(const float* x, int64_t C, const int32_t* idx, int64_t k, float* y, ThreadPool* pool);
// Pruning scores and merge (ops/prune_score.h gives the exact definitions and scratch sizes):
// a:(n,C), b:(m,C) -> sim:(n,m) cosine similarity of the rows (b == a: self-similarity)
using CosineSimilarityFn = void (*)(const float* a, int64_t n, const float* b, int64_t m, int64_t C, float* sim,
                                    void* scratch, ThreadPool* pool);
// tap:(n_head, n_pos) over an h x w patch grid -> scores:((h/s)*(w/s)), mean over heads and s x s blocks
using TapScoresFn = void (*)(const float* tap, int64_t n_head, int64_t n_pos, int64_t h, int64_t w, int64_t s,
                             bool accumulate, float* scores, void* scratch);
// x:(n,C), assign:(n) in [-1,k), weight:(n) or null -> y:(k,C) weighted mean per slot, sizes:(k) or null
using MergeRowsFn = void (*)(const float* x, int64_t n, int64_t C, const int32_t* assign, const float* weight,
                             int64_t k, float* y, float* sizes_out, ThreadPool* pool);
// q:(R,Hq·D), k:(S,Hkv·D) -> out:(S): the raters' attention over the keys, reduced over heads
// (ops/query_key_score.h); scratch: query_key_score_scratch_floats floats.
using QueryKeyScoreFn = void (*)(const QueryKeyScoreArgs& args, float* scratch, ThreadPool* pool);
// q_row:(Hq·D), k:(S, kv_ld) -> out:(Hq, S): softmax over the keys per head (ops/prune_score.h)
using AttentionRowFn = void (*)(const float* q_row, const float* k, int64_t S, int64_t kv_ld, int64_t n_head,
                                int64_t n_head_kv, int64_t head_dim, float scale, float* out, ThreadPool* pool);

// The entry's function, named by its family.
union KernelFn {
    const MatmulKernel* matmul;  // matmul entries carry their own table (ops/matmul.h)
    LayerNormFn layer_norm;
    RmsNormFn rms_norm;
    UnaryFn unary;
    SwigluFn swiglu;
    BinaryFn add;
    BinaryFn mul;
    RopeFn rope;
    AttentionFn attention;
    WeightsRowFn weights_row;
    TopkFn topk;
    GatherRowsFn gather_rows;
    CosineSimilarityFn cosine_similarity;
    TapScoresFn tap_scores;
    MergeRowsFn merge_rows;
    QueryKeyScoreFn query_key_score;
    AttentionFn attention_kvq;  // AttentionArgs::kv_type q8_0 or q4_0
    AttentionRowFn attention_row;
};

struct Kernel {
    const char* name;  // "<op>__<isa>", e.g. "attention__avx512"
    OpFamily op;
    Isa isa;           // lowest level it needs
    int priority;      // a KernelPriority tier
    KernelFn fn;       // the member named by `op`
};

// Every kernel compiled into this binary, each family's reference first.
const std::vector<Kernel>& kernel_registry();
// The kernels of one family, in registry order (reference first).
std::vector<const Kernel*> kernels_of(OpFamily op);
const Kernel* find_kernel(const char* name);
// The usable kernel of highest priority of a non-matmul family at the active ISA
// level (ties: the later entry). Never nullptr: the reference is always usable.
const Kernel* select_kernel(OpFamily op);

}  // namespace glimpse
