#include "ops/op_variants.h"

#include "ops/norm.h"
#include "ops/rope.h"

// Headers of SIMD variants (each guards its own architecture).
#include "ops/attention_neon.h"
#include "ops/norm_neon.h"
#if __has_include("ops/op_variants_x86.h")
#include "ops/op_variants_x86.h"
#endif

namespace glimpse {

namespace {
struct Registry {
    std::vector<OpVariant<LayerNormFn>> layer_norm{{"layer_norm__ref", Isa::scalar, layer_norm_ref}};
    std::vector<OpVariant<RmsNormFn>> rms_norm{{"rms_norm__ref", Isa::scalar, rms_norm_ref}};
    std::vector<OpVariant<UnaryFn>> unary{{"unary__ref", Isa::scalar, unary_ref}};
    std::vector<OpVariant<SwigluFn>> swiglu{{"swiglu__ref", Isa::scalar, swiglu_ref}};
    std::vector<OpVariant<BinaryFn>> add{{"add__ref", Isa::scalar, add_ref}};
    std::vector<OpVariant<BinaryFn>> mul{{"mul__ref", Isa::scalar, mul_ref}};
    std::vector<OpVariant<RopeFn>> rope{{"rope__ref", Isa::scalar, rope_norm_ref}};
    std::vector<OpVariant<AttentionFn>> attention{{"attention__ref", Isa::scalar, attention_ref}};

    Registry() {
#define GLIMPSE_OP_VARIANT(family, name, isa, fn) family.push_back({name, isa, fn});
#include "ops/op_variants.inc"
#undef GLIMPSE_OP_VARIANT
    }
};

const Registry& registry() {
    static const Registry r;
    return r;
}
}  // namespace

const std::vector<OpVariant<LayerNormFn>>& layer_norm_variants() { return registry().layer_norm; }
const std::vector<OpVariant<RmsNormFn>>& rms_norm_variants() { return registry().rms_norm; }
const std::vector<OpVariant<UnaryFn>>& unary_variants() { return registry().unary; }
const std::vector<OpVariant<SwigluFn>>& swiglu_variants() { return registry().swiglu; }
const std::vector<OpVariant<BinaryFn>>& add_variants() { return registry().add; }
const std::vector<OpVariant<BinaryFn>>& mul_variants() { return registry().mul; }
const std::vector<OpVariant<RopeFn>>& rope_variants() { return registry().rope; }
const std::vector<OpVariant<AttentionFn>>& attention_variants() { return registry().attention; }

OpKernels op_kernels_for_active_isa() {
    OpKernels k;
    k.layer_norm = select_op_variant(layer_norm_variants());
    k.rms_norm = select_op_variant(rms_norm_variants());
    k.unary = select_op_variant(unary_variants());
    k.swiglu = select_op_variant(swiglu_variants());
    k.add = select_op_variant(add_variants());
    k.mul = select_op_variant(mul_variants());
    k.rope = select_op_variant(rope_variants());
    k.attention = select_op_variant(attention_variants());
    return k;
}

}  // namespace glimpse
