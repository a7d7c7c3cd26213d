// Op descriptors: what a plan needs to know about each graph op, in one place
// (runtime/graph_ops.cpp), instead of one switch per question. Internal to
// runtime/graph.cpp.
//
// Adding an op (docs/architecture.md): its kernels in ops/ (header, reference,
// variants registered in ops/kernel_registry.cpp), an OpKind, a Graph builder method
// (the shape rule), and one descriptor in runtime/graph_ops.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ops/kernel_registry.h"
#include "runtime/graph.h"

namespace glimpse {

// Compile time: the node, with its kernel (of the descriptor's family) already chosen.
struct OpCompileContext {
    Node& node;
    int node_index;
    const std::vector<Value>& values;
    PlanOptions& options;
    std::unique_ptr<PackedWeightCache>& own_cache;  // created on first need when options has none
    int64_t threads;
    const Value& input(int i) const { return values[node.inputs[i]]; }
    // An `unsupported` error naming the node: "node #3 (attention_kv): what".
    Status fail(const std::string& what) const;
};

// Run time: one node of a compiled plan.
struct OpRunContext {
    const Plan& plan;
    const Node& node;
    const RunArgs& args;
    ThreadPool* pool;
    KvCache* kv_cache;
    float* scratch;  // the plan's scratch, at least node.scratch_bytes, 64-byte aligned
    const Value& input(int i) const { return plan.graph().value(node.inputs[i]); }
    const float* in(int i) const {
        return node.inputs[i] == kNoValue ? nullptr : static_cast<const float*>(plan.data(node.inputs[i]));
    }
    float* out() const { return plan.f32(node.output); }
    int64_t rows() const { return plan.rows(node.output); }  // live rows of the output
    int64_t cols() const { return plan.graph().value(node.output).shape.cols(); }
};

struct OpDescriptor {
    OpKind op;
    const char* name;
    // The ops/ family whose registered kernel runs the node: the plan sets node.kernel
    // to select_kernel(family) when it is compiled (nullopt: none, or chosen by `compile`).
    std::optional<OpFamily> kernel_family = std::nullopt;
    // Live rows of a dynamic-row output from the live rows of every value (nullptr:
    // those of input 0).
    int64_t (*live_rows)(const Node& node, const std::vector<int64_t>& live) = nullptr;
    // Compile-time checks against the plan's options, weight packing, scratch
    // (nullptr: nothing beyond the kernel choice).
    Status (*compile)(OpCompileContext& c) = nullptr;
    // Checks before any node of a run executes, with every live row known (nullptr: none).
    Status (*check_run)(const OpRunContext& c) = nullptr;
    void (*execute)(const OpRunContext& c) = nullptr;
};

const OpDescriptor& op_descriptor(OpKind op);

}  // namespace glimpse
