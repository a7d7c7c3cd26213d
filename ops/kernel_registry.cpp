// The list of every kernel (ops/kernel_registry.h). Adding a variant: one entry
// below (its function declared in its family's header; matmul kernels define their
// MatmulKernel in their own translation unit and are named in the per-architecture
// lists). Guard entries whose translation unit exists only on one architecture or
// with one library provider (cmake/GlimpseIsa.cmake, cmake/GlimpseDeps.cmake).
#include "ops/kernel_registry.h"

#include <cstring>

#include "ops/attention.h"
#include "ops/attention_kvq.h"
#include "ops/gather.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/prune_score.h"
#include "ops/rope.h"
#include "ops/topk.h"
#include "ops/query_key_score.h"
#include "ops/unary.h"
#include "ops/weights.h"

// Headers of SIMD variants (each guards its own architecture).
#include "ops/attention_neon.h"
#include "ops/norm_neon.h"
#include "ops/unary_neon.h"
#if __has_include("ops/op_variants_x86.h")
#include "ops/op_variants_x86.h"
#endif

namespace glimpse {

namespace {

// k-quant rows are whole 256-value super-blocks (GGUF files always satisfy this).
bool k_multiple_of_256(int64_t, int64_t K, int64_t) { return K % 256 == 0; }

// The matmul reference reads every type weights_row_to_f32 reads.
constexpr MatmulKernel matmul_reference(const char* name, DType w_type,
                                        bool (*supports)(int64_t, int64_t, int64_t) = nullptr) {
    return {.name = name, .isa = Isa::scalar, .w_type = w_type, .priority = KernelPriority::reference,
            .activations = MatmulActivations::f32, .supports = supports, .run = matmul_ref};
}

const MatmulKernel kMatmulReferences[] = {
    matmul_reference("f32_ref", DType::f32),
    matmul_reference("f16_ref", DType::f16),
    matmul_reference("bf16_ref", DType::bf16),
    matmul_reference("q8_0_ref", DType::q8_0),
    matmul_reference("q4_0_ref", DType::q4_0),
    matmul_reference("q4_1_ref", DType::q4_1),
    matmul_reference("q5_0_ref", DType::q5_0),
    matmul_reference("q5_1_ref", DType::q5_1),
    matmul_reference("q4_k_ref", DType::q4_k, k_multiple_of_256),
    matmul_reference("q5_k_ref", DType::q5_k, k_multiple_of_256),
    matmul_reference("q6_k_ref", DType::q6_k, k_multiple_of_256),
};

}  // namespace

// Matmul kernels defined in their translation units (`extern const MatmulKernel x = {...}`),
// one name per kernel.
#define GLIMPSE_MATMUL_KERNELS_ANY(X) X(q8_0_q8_0__scalar) X(q4_0_q8_0__scalar)
#if defined(__x86_64__)
#define GLIMPSE_MATMUL_KERNELS_X86(X)                                                                              \
    X(q8_0_q8_0__avx2) X(q4_0_q8_0__avx2) X(f32_gemm__avx2) X(f16_gemm__avx2) X(bf16_gemm__avx2)                  \
    X(q8_0_q8_0__avx512vnni) X(q4_0_q8_0__avx512vnni) X(f32_gemm__avx512) X(f16_gemm__avx512) X(bf16_gemm__avx512) \
    X(f16_gemm__amx) X(f16_bf16_gemm__amx) X(bf16_gemm__amx) X(q8_0_q8_0__amx) X(q4_0_q8_0__amx)                \
    X(f16_f16_gemm__avx2)                                                                                          \
    X(q8_0_q8_0_gemm__avx2)
#else
#define GLIMPSE_MATMUL_KERNELS_X86(X)
#endif
// aarch64 (ops/matmul_*_neon.cpp, *_dotprod.cpp, *_i8mm.cpp): NEON for every core,
// SDOT for Armv8.2+dotprod (Pi 5, Jetson Orin), SMMLA for Armv8.6 i8mm.
#if defined(__aarch64__)
#define GLIMPSE_MATMUL_KERNELS_ARM64(X)                                                                     \
    X(kMatmulF32Neon) X(kMatmulF16Neon) X(kMatmulQ8_0Q8_0Neon) X(kMatmulQ4_0Q8_0Neon) X(kMatmulQ8_0Q8_0Dotprod) \
    X(kMatmulQ4_0Q8_0Dotprod) X(kMatmulQ8_0Q8_0I8mm) X(kMatmulQ4_0Q8_0I8mm)
#else
#define GLIMPSE_MATMUL_KERNELS_ARM64(X)
#endif
// Library providers (ops/providers/, KernelPriority::decisions_only: chosen only by
// ops/matmul_decisions.inc).
#if defined(GLIMPSE_HAVE_ONEDNN)
#define GLIMPSE_MATMUL_KERNELS_ONEDNN(X) \
    X(kOnednnF32) X(kOnednnF32F16w) X(kOnednnBf16) X(kOnednnBf16F16w) X(kOnednnS8F16w) X(kOnednnS8F32w)
#else
#define GLIMPSE_MATMUL_KERNELS_ONEDNN(X)
#endif
#if defined(GLIMPSE_HAVE_XNNPACK)
#define GLIMPSE_MATMUL_KERNELS_XNNPACK(X) X(kXnnpackF32) X(kXnnpackF32F16w)
#else
#define GLIMPSE_MATMUL_KERNELS_XNNPACK(X)
#endif
#if defined(GLIMPSE_HAVE_EIGEN) && defined(__x86_64__)
#define GLIMPSE_MATMUL_KERNELS_EIGEN(X) X(kEigenF32_avx2) X(kEigenF32F16w_avx2)
#elif defined(GLIMPSE_HAVE_EIGEN) && defined(__aarch64__)
#define GLIMPSE_MATMUL_KERNELS_EIGEN(X) X(kEigenF32_neon) X(kEigenF32F16w_neon)
#else
#define GLIMPSE_MATMUL_KERNELS_EIGEN(X)
#endif
#define GLIMPSE_MATMUL_KERNELS(X)                                                                     \
    GLIMPSE_MATMUL_KERNELS_ANY(X) GLIMPSE_MATMUL_KERNELS_X86(X) GLIMPSE_MATMUL_KERNELS_ONEDNN(X) \
    GLIMPSE_MATMUL_KERNELS_XNNPACK(X) GLIMPSE_MATMUL_KERNELS_EIGEN(X) GLIMPSE_MATMUL_KERNELS_ARM64(X)

#define GLIMPSE_DECLARE_MATMUL(symbol) extern const MatmulKernel symbol;
GLIMPSE_MATMUL_KERNELS(GLIMPSE_DECLARE_MATMUL)
#undef GLIMPSE_DECLARE_MATMUL

namespace {

Kernel matmul_entry(const MatmulKernel& k) {
    return {.name = k.name, .op = OpFamily::matmul, .isa = k.isa, .priority = k.priority, .fn = {.matmul = &k}};
}

std::vector<Kernel> build_registry() {
    using P = KernelPriority;
    std::vector<Kernel> v = {
        // References: the oracle of each family.
        {.name = "layer_norm__ref", .op = OpFamily::layer_norm, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.layer_norm = layer_norm_ref}},
        {.name = "rms_norm__ref", .op = OpFamily::rms_norm, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.rms_norm = rms_norm_ref}},
        {.name = "unary__ref", .op = OpFamily::unary, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.unary = unary_ref}},
        {.name = "swiglu__ref", .op = OpFamily::swiglu, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.swiglu = swiglu_ref}},
        {.name = "add__ref", .op = OpFamily::add, .isa = Isa::scalar, .priority = P::reference, .fn = {.add = add_ref}},
        {.name = "mul__ref", .op = OpFamily::mul, .isa = Isa::scalar, .priority = P::reference, .fn = {.mul = mul_ref}},
        {.name = "rope__ref", .op = OpFamily::rope, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.rope = rope_norm_ref}},
        {.name = "attention__ref", .op = OpFamily::attention, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.attention = attention_ref}},
        {.name = "weights_row__ref", .op = OpFamily::weights_row, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.weights_row = weights_row_ref}},
        {.name = "topk__ref", .op = OpFamily::topk, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.topk = topk_ref}},
        {.name = "gather_rows__ref", .op = OpFamily::gather_rows, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.gather_rows = gather_rows_ref}},
        {.name = "cosine_similarity__ref", .op = OpFamily::cosine_similarity, .isa = Isa::scalar,
         .priority = P::reference, .fn = {.cosine_similarity = cosine_similarity_ref}},
        {.name = "tap_scores__ref", .op = OpFamily::tap_scores, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.tap_scores = tap_scores_ref}},
        {.name = "merge_rows__ref", .op = OpFamily::merge_rows, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.merge_rows = merge_rows_ref}},
        {.name = "query_key_score__ref", .op = OpFamily::query_key_score, .isa = Isa::scalar, .priority = P::reference,
         .fn = {.query_key_score = query_key_score_ref}},
#if defined(__aarch64__)
        {.name = "layer_norm__neon", .op = OpFamily::layer_norm, .isa = Isa::neon, .priority = P::simd_narrow,
         .fn = {.layer_norm = layer_norm_neon}},
        {.name = "query_key_score__neon", .op = OpFamily::query_key_score, .isa = Isa::neon,
         .priority = P::simd_narrow, .fn = {.query_key_score = query_key_score_neon}},
        {.name = "rms_norm__neon", .op = OpFamily::rms_norm, .isa = Isa::neon, .priority = P::simd_narrow,
         .fn = {.rms_norm = rms_norm_neon}},
        {.name = "attention__neon", .op = OpFamily::attention, .isa = Isa::neon, .priority = P::simd_narrow,
         .fn = {.attention = attention_neon}},
        {.name = "topk__neon", .op = OpFamily::topk, .isa = Isa::neon, .priority = P::simd_narrow,
         .fn = {.topk = topk_neon}},
        {.name = "cosine_similarity__neon", .op = OpFamily::cosine_similarity, .isa = Isa::neon,
         .priority = P::simd_narrow, .fn = {.cosine_similarity = cosine_similarity_neon}},
        {.name = "tap_scores__neon", .op = OpFamily::tap_scores, .isa = Isa::neon, .priority = P::simd_narrow,
         .fn = {.tap_scores = tap_scores_neon}},
        {.name = "merge_rows__neon", .op = OpFamily::merge_rows, .isa = Isa::neon, .priority = P::simd_narrow,
         .fn = {.merge_rows = merge_rows_neon}},
        {.name = "unary__neon", .op = OpFamily::unary, .isa = Isa::neon, .priority = P::simd_narrow,
         .fn = {.unary = unary_neon}},
        {.name = "swiglu__neon", .op = OpFamily::swiglu, .isa = Isa::neon, .priority = P::simd_narrow,
         .fn = {.swiglu = swiglu_neon}},
        {.name = "add__neon", .op = OpFamily::add, .isa = Isa::neon, .priority = P::simd_narrow, .fn = {.add = add_neon}},
        {.name = "mul__neon", .op = OpFamily::mul, .isa = Isa::neon, .priority = P::simd_narrow, .fn = {.mul = mul_neon}},
#endif
#if defined(__x86_64__)
        {.name = "layer_norm__avx2", .op = OpFamily::layer_norm, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.layer_norm = layer_norm_avx2}},
        {.name = "rms_norm__avx2", .op = OpFamily::rms_norm, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.rms_norm = rms_norm_avx2}},
        {.name = "unary__avx2", .op = OpFamily::unary, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.unary = unary_avx2}},
        {.name = "swiglu__avx2", .op = OpFamily::swiglu, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.swiglu = swiglu_avx2}},
        {.name = "add__avx2", .op = OpFamily::add, .isa = Isa::avx2, .priority = P::simd, .fn = {.add = add_avx2}},
        {.name = "mul__avx2", .op = OpFamily::mul, .isa = Isa::avx2, .priority = P::simd, .fn = {.mul = mul_avx2}},
        {.name = "rope__avx2", .op = OpFamily::rope, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.rope = rope_avx2}},
        {.name = "attention__avx2", .op = OpFamily::attention, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.attention = attention_avx2}},
        {.name = "weights_row__avx2", .op = OpFamily::weights_row, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.weights_row = weights_row_avx2}},
        {.name = "layer_norm__avx512", .op = OpFamily::layer_norm, .isa = Isa::avx512, .priority = P::simd_wide,
         .fn = {.layer_norm = layer_norm_avx512}},
        {.name = "rms_norm__avx512", .op = OpFamily::rms_norm, .isa = Isa::avx512, .priority = P::simd_wide,
         .fn = {.rms_norm = rms_norm_avx512}},
        {.name = "unary__avx512", .op = OpFamily::unary, .isa = Isa::avx512, .priority = P::simd_wide,
         .fn = {.unary = unary_avx512}},
        {.name = "swiglu__avx512", .op = OpFamily::swiglu, .isa = Isa::avx512, .priority = P::simd_wide,
         .fn = {.swiglu = swiglu_avx512}},
        {.name = "add__avx512", .op = OpFamily::add, .isa = Isa::avx512, .priority = P::simd_wide,
         .fn = {.add = add_avx512}},
        {.name = "mul__avx512", .op = OpFamily::mul, .isa = Isa::avx512, .priority = P::simd_wide,
         .fn = {.mul = mul_avx512}},
        {.name = "rope__avx512", .op = OpFamily::rope, .isa = Isa::avx512, .priority = P::simd_wide,
         .fn = {.rope = rope_avx512}},
        {.name = "attention__avx512", .op = OpFamily::attention, .isa = Isa::avx512, .priority = P::simd_wide,
         .fn = {.attention = attention_avx512}},
        {.name = "topk__avx2", .op = OpFamily::topk, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.topk = topk_avx2}},
        {.name = "topk__avx512", .op = OpFamily::topk, .isa = Isa::avx512, .priority = P::simd_wide,
         .fn = {.topk = topk_avx512}},
        {.name = "cosine_similarity__avx2", .op = OpFamily::cosine_similarity, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.cosine_similarity = cosine_similarity_avx2}},
        {.name = "tap_scores__avx2", .op = OpFamily::tap_scores, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.tap_scores = tap_scores_avx2}},
        {.name = "merge_rows__avx2", .op = OpFamily::merge_rows, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.merge_rows = merge_rows_avx2}},
        {.name = "cosine_similarity__avx512", .op = OpFamily::cosine_similarity, .isa = Isa::avx512,
         .priority = P::simd_wide, .fn = {.cosine_similarity = cosine_similarity_avx512}},
        {.name = "tap_scores__avx512", .op = OpFamily::tap_scores, .isa = Isa::avx512, .priority = P::simd_wide,
         .fn = {.tap_scores = tap_scores_avx512}},
        {.name = "merge_rows__avx512", .op = OpFamily::merge_rows, .isa = Isa::avx512, .priority = P::simd_wide,
         .fn = {.merge_rows = merge_rows_avx512}},
        {.name = "query_key_score__avx2", .op = OpFamily::query_key_score, .isa = Isa::avx2, .priority = P::simd,
         .fn = {.query_key_score = query_key_score_avx2}},
        {.name = "query_key_score__avx512", .op = OpFamily::query_key_score, .isa = Isa::avx512,
         .priority = P::simd_wide, .fn = {.query_key_score = query_key_score_avx512}},
#endif
    };
    // Attention over a q8_0 / q4_0 KV cache (ops/attention_kvq.h): reference first.
    v.push_back({.name = "attention_kvq__ref", .op = OpFamily::attention_kvq, .isa = Isa::scalar,
                 .priority = P::reference, .fn = {.attention_kvq = attention_kvq_ref}});
#if defined(__aarch64__)
    v.push_back({.name = "attention_kvq__neon", .op = OpFamily::attention_kvq, .isa = Isa::neon,
                 .priority = P::simd_narrow, .fn = {.attention_kvq = attention_kvq_neon}});
#endif
#if defined(__x86_64__)
    v.push_back({.name = "attention_kvq__avx2", .op = OpFamily::attention_kvq, .isa = Isa::avx2,
                 .priority = P::simd, .fn = {.attention_kvq = attention_kvq_avx2}});
    v.push_back({.name = "attention_kvq__avx512", .op = OpFamily::attention_kvq, .isa = Isa::avx512,
                 .priority = P::simd_wide, .fn = {.attention_kvq = attention_kvq_avx512}});
#endif
    // The [CLS] tap (ops/prune_score.h): reference first.
    v.push_back({.name = "attention_row__ref", .op = OpFamily::attention_row, .isa = Isa::scalar,
                 .priority = P::reference, .fn = {.attention_row = attention_row_ref}});
#if defined(__aarch64__)
    v.push_back({.name = "attention_row__neon", .op = OpFamily::attention_row, .isa = Isa::neon,
                 .priority = P::simd_narrow, .fn = {.attention_row = attention_row_neon}});
#endif
#if defined(__x86_64__)
    v.push_back({.name = "attention_row__avx2", .op = OpFamily::attention_row, .isa = Isa::avx2,
                 .priority = P::simd, .fn = {.attention_row = attention_row_avx2}});
    v.push_back({.name = "attention_row__avx512", .op = OpFamily::attention_row, .isa = Isa::avx512,
                 .priority = P::simd_wide, .fn = {.attention_row = attention_row_avx512}});
#endif
    // Matmul: the references, then every kernel of the lists above.
    for (const MatmulKernel& k : kMatmulReferences) v.push_back(matmul_entry(k));
#define GLIMPSE_MATMUL_ENTRY(symbol) v.push_back(matmul_entry(symbol));
    GLIMPSE_MATMUL_KERNELS(GLIMPSE_MATMUL_ENTRY)
#undef GLIMPSE_MATMUL_ENTRY
    return v;
}

}  // namespace

const char* op_family_name(OpFamily op) {
    switch (op) {
        case OpFamily::matmul: return "matmul";
        case OpFamily::layer_norm: return "layer_norm";
        case OpFamily::rms_norm: return "rms_norm";
        case OpFamily::unary: return "unary";
        case OpFamily::swiglu: return "swiglu";
        case OpFamily::add: return "add";
        case OpFamily::mul: return "mul";
        case OpFamily::rope: return "rope";
        case OpFamily::attention: return "attention";
        case OpFamily::weights_row: return "weights_row";
        case OpFamily::topk: return "topk";
        case OpFamily::gather_rows: return "gather_rows";
        case OpFamily::cosine_similarity: return "cosine_similarity";
        case OpFamily::tap_scores: return "tap_scores";
        case OpFamily::merge_rows: return "merge_rows";
        case OpFamily::query_key_score: return "query_key_score";
        case OpFamily::attention_kvq: return "attention_kvq";
        case OpFamily::attention_row: return "attention_row";
    }
    return "?";
}

const std::vector<Kernel>& kernel_registry() {
    static const std::vector<Kernel> all = build_registry();
    return all;
}

std::vector<const Kernel*> kernels_of(OpFamily op) {
    std::vector<const Kernel*> out;
    for (const Kernel& k : kernel_registry()) {
        if (k.op == op) out.push_back(&k);
    }
    return out;
}

const Kernel* find_kernel(const char* name) {
    for (const Kernel& k : kernel_registry()) {
        if (std::strcmp(k.name, name) == 0) return &k;
    }
    return nullptr;
}

const Kernel* select_kernel(OpFamily op) {
    const Kernel* best = nullptr;
    for (const Kernel& k : kernel_registry()) {
        if (k.op != op || !isa_usable(k.isa)) continue;
        if (!best || k.priority >= best->priority) best = &k;
    }
    return best;
}

}  // namespace glimpse
