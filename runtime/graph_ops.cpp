#include "runtime/graph_ops.h"

#include <cstring>

#include <cmath>

#include "ops/attention.h"
#include "ops/attention_kvq.h"
#include "ops/gather.h"
#include "ops/matmul.h"
#include "ops/prune_score.h"
#include "ops/tome.h"
#include "ops/topk.h"
#include "ops/vision.h"
#include "ops/weights.h"
#include "quant/formats.h"

namespace glimpse {

Status OpCompileContext::fail(const std::string& what) const {
    return Status(StatusCode::unsupported,
                  "node #" + std::to_string(node_index) + " (" + op_kind_name(node.op) + "): " + what);
}

namespace {

// linear: x:(T,K), w:(N,K) any stored type, [b:(N)] -> (T,N) ---------------------

Status compile_linear(OpCompileContext& c) {
    Node& n = c.node;
    const Value& w = c.input(1);
    const Value& x = c.input(0);
    const int64_t M = x.shape.rows(), K = x.shape.cols(), N = w.shape.rows();
    n.matmul = select_matmul_kernel(w.dtype, M, K, N);
    if (!n.matmul) {
        return c.fail(std::string("weight '") + w.name + "' has type " + dtype_name(w.dtype) +
                      ", which has no matmul kernel");
    }
    if (n.matmul->pack) {
        if (!c.options.weight_cache) {
            c.own_cache = std::make_unique<PackedWeightCache>();
            c.options.weight_cache = c.own_cache.get();
        }
        n.packed = c.options.weight_cache->get(*n.matmul, w.data, N, K);
        if (!n.packed) {
            return Status(StatusCode::resource_exhausted, "cannot allocate repacked weights for '" + w.name + "'");
        }
    }
    if (n.matmul->scratch_bytes) n.scratch_bytes = n.matmul->scratch_bytes(M, K, N, static_cast<int>(c.threads));
    return Status::ok();
}

void run_linear(const OpRunContext& c) {
    const Value& x = c.input(0);
    const Value& w = c.input(1);
    MatmulArgs m;
    m.x = c.in(0);
    m.ldx = x.shape.cols();
    m.M = c.rows();
    m.K = x.shape.cols();
    m.N = c.cols();
    m.w = w.data;
    m.w_type = w.dtype;
    m.packed = c.node.packed;
    m.bias = c.in(2);
    m.y = c.out();
    m.ldy = c.cols();
    m.scratch = c.scratch;
    c.node.matmul->run(m, c.pool);
}

// Elementwise and normalisation ops: the node's registered kernel --------------------

void run_layer_norm(const OpRunContext& c) {
    c.node.kernel->fn.layer_norm(c.in(0), c.rows(), c.cols(), c.in(1), c.in(2), c.node.p.eps, c.out(), c.pool);
}
void run_rms_norm(const OpRunContext& c) {
    c.node.kernel->fn.rms_norm(c.in(0), c.rows(), c.cols(), c.in(1), c.node.p.eps, c.out(), c.pool);
}
void run_unary(const OpRunContext& c) {
    c.node.kernel->fn.unary(c.node.p.unary, c.in(0), c.rows() * c.cols(), c.out(), c.pool);
}
void run_swiglu(const OpRunContext& c) {
    c.node.kernel->fn.swiglu(c.in(0), c.in(1), c.rows() * c.cols(), c.out(), c.pool);
}
void run_add(const OpRunContext& c) {
    c.node.kernel->fn.add(c.in(0), c.in(1), c.rows(), c.cols(), c.node.p.broadcast_b ? 1 : c.rows(), c.out(), c.pool);
}
void run_mul(const OpRunContext& c) {
    c.node.kernel->fn.mul(c.in(0), c.in(1), c.rows(), c.cols(), c.node.p.broadcast_b ? 1 : c.rows(), c.out(), c.pool);
}
void run_rope(const OpRunContext& c) {
    const NodeParams& p = c.node.p;
    c.node.kernel->fn.rope(c.in(0), static_cast<const int32_t*>(c.plan.data(c.node.inputs[1])), c.rows(), p.n_head,
                           p.head_dim, p.n_rot, p.rope_base, c.out(), c.pool);
}

// attention: q:(T,Hq·D), k, v:(S,Hkv·D) -> (T,Hq·D) [+ col_mean tap (Hq,S)] ----------

bool has_key_sizes(const Node& node) { return node.inputs.size() > 3 && node.inputs[3] != kNoValue; }

Status compile_attention(OpCompileContext& c) {
    const int64_t S = c.input(1).shape.rows();
    // key_sizes: S more floats after the threads' regions, for log(size) (AttentionArgs::key_bias).
    c.node.scratch_bytes = (c.threads * attention_scratch_floats(S) + (has_key_sizes(c.node) ? S : 0)) * 4;
    return Status::ok();
}

void run_attention(const OpRunContext& c) {
    const NodeParams& p = c.node.p;
    AttentionArgs a;
    a.q = c.in(0);
    a.q_ld = c.cols();
    a.k = c.in(1);
    a.v = c.in(2);
    a.kv_ld = c.input(1).shape.cols();
    a.kv_type = DType::f32;
    a.out = c.out();
    a.out_ld = c.cols();
    a.T = c.rows();
    a.S = c.plan.rows(c.node.inputs[1]);
    a.n_head = p.n_head;
    a.n_head_kv = p.n_head_kv;
    a.head_dim = p.head_dim;
    a.scale = p.scale;
    a.col_mean = c.node.aux != kNoValue ? c.plan.f32(c.node.aux) : nullptr;
    if (has_key_sizes(c.node)) {
        // Proportional attention (ToMe): key s stands for sizes[s] tokens.
        float* bias = c.scratch + c.node.scratch_bytes / 4 - a.S;  // the last S floats (compile_attention)
        const float* sizes = c.in(3);
        for (int64_t s = 0; s < a.S; ++s) bias[s] = std::log(sizes[s]);
        a.key_bias = bias;
    }
    c.node.kernel->fn.attention(a, c.scratch, c.pool);
}

// attention_kv: as attention, k/v appended to the KV cache at [pos0, pos0+T), causal --

Status compile_attention_kv(OpCompileContext& c) {
    const NodeParams& p = c.node.p;
    KvCache* kv = c.options.kv_cache;
    if (!kv) return c.fail("no KV cache was given to the plan");
    if (p.layer < 0 || p.layer >= kv->n_layers()) {
        return c.fail("layer " + std::to_string(p.layer) + " is outside the KV cache's " +
                      std::to_string(kv->n_layers()) + " layers");
    }
    if (kv->row_elems() != p.n_head_kv * p.head_dim) {
        return c.fail("KV cache rows hold " + std::to_string(kv->row_elems()) + " elements, the layer needs " +
                      std::to_string(p.n_head_kv * p.head_dim));
    }
    if (attention_kvq_type(kv->type())) {
        // A block-quantized cache is read by the attention_kvq family (ops/attention_kvq.h).
        if (p.head_dim % kQK != 0) {
            return c.fail(std::string("a ") + dtype_name(kv->type()) + " KV cache needs head_dim a multiple of " +
                          std::to_string(kQK) + " (blocks along the head dimension); this layer's is " +
                          std::to_string(p.head_dim));
        }
        c.node.kernel = select_kernel(OpFamily::attention_kvq);
        c.node.scratch_bytes = c.threads * attention_kvq_scratch_floats(kv->capacity(p.layer), p.head_dim) * 4;
        // Mixed: then the prompt's last-row attention (n_head, T) and its per-key sum (T), T <= capacity.
        if (kv->mixed()) {
            c.node.scratch_bytes += (p.n_head + 1) * kv->capacity(p.layer) * 4;
            c.node.row_kernel = select_kernel(OpFamily::attention_row);
        }
        return Status::ok();
    }
    c.node.scratch_bytes = c.threads * attention_scratch_floats(kv->capacity(p.layer)) * 4;
    return Status::ok();
}

Status check_attention_kv(const OpRunContext& c) {
    const int64_t cap = c.kv_cache->capacity(c.node.p.layer);
    const int64_t rows = c.rows();
    if (c.args.pos0 < 0 || c.args.pos0 + rows > cap) {
        return Status::error(StatusCode::out_of_range,
                             "run: KV cache slots [%lld, %lld) exceed layer %d's capacity of %lld; the plan's "
                             "context is too small for this prompt",
                             static_cast<long long>(c.args.pos0), static_cast<long long>(c.args.pos0 + rows),
                             c.node.p.layer, static_cast<long long>(cap));
    }
    return Status::ok();
}

// Mixed KV cache: which of this pass's rows keep q8_0. The signal is the attention the pass's
// last query row (the prompt's last token, where decoding starts) gives each of its keys,
// summed over the query heads, from the f32 q/k before quantization (the registered attention_row
// kernel the plan chose, as the [CLS] tap runs it): the row precision covers every head. Not the
// column mean over all rows: under the causal mask early keys are seen by more rows, so the mean
// ranks position before relevance.
void assign_mixed_rows(const OpRunContext& c, int64_t rows, int64_t kv_cols) {
    const NodeParams& p = c.node.p;
    KvCache* kv = c.kv_cache;
    float* importance = nullptr;
    if (rows > 1) {
        const int64_t cap = kv->capacity(p.layer);
        float* probs = c.scratch + c.node.scratch_bytes / 4 - (p.n_head + 1) * cap;  // (n_head, rows)
        importance = probs + p.n_head * cap;                                          // (rows)
        const int64_t q_cols = c.input(0).shape.cols();
        c.node.row_kernel->fn.attention_row(c.in(0) + (rows - 1) * q_cols, c.in(1), rows, kv_cols, p.n_head,
                                            p.n_head_kv, p.head_dim, p.scale, probs, c.pool);
        for (int64_t t = 0; t < rows; ++t) {
            float sum = 0;
            for (int64_t h = 0; h < p.n_head; ++h) sum += probs[h * rows + t];
            importance[t] = sum;
        }
    }
    kv->assign_mixed(p.layer, c.args.pos0, rows, importance);
}

void run_attention_kv(const OpRunContext& c) {
    const NodeParams& p = c.node.p;
    KvCache* kv = c.kv_cache;
    const int64_t rows = c.rows();
    const int64_t kv_cols = c.input(1).shape.cols();
    if (kv->mixed()) assign_mixed_rows(c, rows, kv_cols);
    kv->store(p.layer, false, c.args.pos0, c.in(1), rows, kv_cols);
    kv->store(p.layer, true, c.args.pos0, c.in(2), rows, kv_cols);
    AttentionArgs a;
    a.q = c.in(0);
    a.q_ld = c.cols();
    a.k = kv->k(p.layer);
    a.v = kv->v(p.layer);
    a.kv_ld = kv->row_elems();
    a.kv_type = kv->type();
    a.out = c.out();
    a.out_ld = c.cols();
    a.T = rows;
    a.S = c.args.pos0 + rows;
    a.n_head = p.n_head;
    a.n_head_kv = p.n_head_kv;
    a.head_dim = p.head_dim;
    a.scale = p.scale;
    a.causal = true;
    a.causal_offset = c.args.pos0;
    if (kv->mixed()) {
        a.mixed_rows = kv->slot_rows(p.layer);
        a.k_low = kv->k_low(p.layer);
        a.v_low = kv->v_low(p.layer);
    }
    if (attention_kvq_type(a.kv_type)) return c.node.kernel->fn.attention_kvq(a, c.scratch, c.pool);
    c.node.kernel->fn.attention(a, c.scratch, c.pool);
}

// attention_row: q:(T,Hq·D), k:(S,Hkv·D) -> (Hq,S), query row p.start ----------------

void run_attention_row(const OpRunContext& c) {
    const NodeParams& p = c.node.p;
    const Value& q = c.input(0);
    c.node.kernel->fn.attention_row(c.in(0) + p.start * q.shape.cols(), c.in(1), c.cols(), c.input(1).shape.cols(),
                                    p.n_head, p.n_head_kv, p.head_dim, p.scale, c.out(), c.pool);
}

// Vision: im2col img:(3,H,W) -> (N,3·P·P); pixel_shuffle (h·w,C) -> (h·w/s², s²·C) ----

void run_im2col(const OpRunContext& c) {
    const Value& img = c.input(0);
    im2col_patches(c.in(0), img.shape.dims[1], img.shape.dims[2], c.node.p.patch, c.node.p.round_to_f16, c.out(),
                   c.pool);
}

void run_pixel_shuffle(const OpRunContext& c) {
    const NodeParams& p = c.node.p;
    pixel_shuffle_ref(c.in(0), p.grid_h, p.grid_w, c.input(0).shape.cols(), p.shuffle, c.out());
}

// Row movement ------------------------------------------------------------------------

// get_rows: table:(V,C) any stored type, ids:(T) i32 -> (T,C)
int64_t get_rows_live_rows(const Node& n, const std::vector<int64_t>& live) { return live[n.inputs[1]]; }

Status check_get_rows(const OpRunContext& c) {
    if (c.input(1).kind != ValueKind::input) return Status::ok();  // ids computed by the graph
    const int32_t* ids = static_cast<const int32_t*>(c.plan.data(c.node.inputs[1]));
    const int64_t vocab = c.input(0).shape.rows();
    for (int64_t i = 0; i < c.rows(); ++i) {
        if (ids[i] < 0 || ids[i] >= vocab) {
            return Status::error(StatusCode::out_of_range, "run: id %d at row %lld is outside [0, %lld)", ids[i],
                                 static_cast<long long>(i), static_cast<long long>(vocab));
        }
    }
    return Status::ok();
}

void run_get_rows(const OpRunContext& c) {
    const Value& table = c.input(0);
    const int32_t* ids = static_cast<const int32_t*>(c.plan.data(c.node.inputs[1]));
    const int64_t cols = c.cols();
    float* out = c.out();
    for (int64_t r = 0; r < c.rows(); ++r) weights_row_to_f32(table.data, table.dtype, cols, ids[r], out + r * cols);
}

// concat_rows: a:(T1,C), b:(T2,C) -> (T1+T2,C)
int64_t concat_live_rows(const Node& n, const std::vector<int64_t>& live) {
    return live[n.inputs[0]] + live[n.inputs[1]];
}

void run_concat_rows(const OpRunContext& c) {
    const int64_t ra = c.plan.rows(c.node.inputs[0]), rb = c.plan.rows(c.node.inputs[1]);
    const int64_t cols = c.cols();
    std::memmove(c.out(), c.in(0), ra * cols * 4);
    std::memmove(c.out() + ra * cols, c.in(1), rb * cols * 4);
}

void run_slice_rows(const OpRunContext& c) {
    std::memmove(c.out(), c.in(0) + c.node.p.start * c.cols(), c.rows() * c.cols() * 4);
}

void run_last_row(const OpRunContext& c) {
    std::memmove(c.out(), c.in(0) + (c.plan.rows(c.node.inputs[0]) - 1) * c.cols(), c.cols() * 4);
}

// tome_match: keys:(T,H·D) -> assign:(T) i32; the similarity through the registered
// cosine_similarity kernel (the node's kernel), the matching by the reference (ops/tome.h) --
Status compile_tome_match(OpCompileContext& c) {
    c.node.scratch_bytes = static_cast<int64_t>(tome_match_scratch_bytes(c.input(0).shape.rows(), c.node.p.head_dim));
    return Status::ok();
}

void run_tome_match(const OpRunContext& c) {
    const NodeParams& p = c.node.p;
    tome_match_ref(c.in(0), c.input(0).shape.rows(), p.n_head, p.head_dim, p.count, p.start,
                   c.node.kernel->fn.cosine_similarity, static_cast<int32_t*>(c.plan.data(c.node.output)), c.scratch,
                   c.pool);
}

// tome_merge: x:(T,C), assign:(T), [sizes:(T)] -> (T−r, C) + sizes' (T−r) -------------------
void run_tome_merge(const OpRunContext& c) {
    c.node.kernel->fn.merge_rows(c.in(0), c.input(0).shape.rows(), c.cols(),
                                 static_cast<const int32_t*>(c.plan.data(c.node.inputs[1])), c.in(2), c.rows(), c.out(),
                                 c.plan.f32(c.node.aux), c.pool);
}

// tome_restore: x:(T_L,C), assigns -> (N,C) -------------------------------------------------
void run_tome_restore(const OpRunContext& c) {
    const int32_t* maps[kMaxTomeMerges];
    const int n_maps = static_cast<int>(c.node.inputs.size()) - 1;
    for (int i = 0; i < n_maps; ++i) maps[i] = static_cast<const int32_t*>(c.plan.data(c.node.inputs[i + 1]));
    tome_restore_ref(c.in(0), c.cols(), maps, n_maps, c.rows(), c.out(), c.pool);
}

// topk: scores:(n) f32 -> (k) i32 ---------------------------------------------------------

Status compile_topk(OpCompileContext& c) {
    c.node.scratch_bytes = topk_scratch_bytes(c.input(0).shape.numel());
    return Status::ok();
}

void run_topk(const OpRunContext& c) {
    int32_t* indices = static_cast<int32_t*>(c.plan.data(c.node.output));
    c.node.kernel->fn.topk(c.in(0), c.input(0).shape.numel(), c.node.p.count, indices, c.scratch);
}

// gather_rows: x:(T,C), idx:(k) i32 -> (k,C) --------------------------------------------

Status check_gather_rows(const OpRunContext& c) {
    if (c.input(1).kind != ValueKind::input) return Status::ok();  // a topk over T: in range
    const int32_t* idx = static_cast<const int32_t*>(c.plan.data(c.node.inputs[1]));
    const int64_t T = c.input(0).shape.rows();
    for (int64_t i = 0; i < c.rows(); ++i) {
        if (idx[i] < 0 || idx[i] >= T) {
            return Status::error(StatusCode::out_of_range, "run: gather_rows index %d at %lld is outside [0, %lld)",
                                 idx[i], static_cast<long long>(i), static_cast<long long>(T));
        }
    }
    return Status::ok();
}

void run_gather_rows(const OpRunContext& c) {
    c.node.kernel->fn.gather_rows(c.in(0), c.cols(), static_cast<const int32_t*>(c.plan.data(c.node.inputs[1])),
                                  c.rows(), c.out(), c.pool);
}

// The table, in OpKind order (op_descriptor checks it).
const OpDescriptor kOps[] = {
    {.op = OpKind::linear, .name = "linear", .compile = compile_linear, .execute = run_linear},
    {.op = OpKind::layer_norm, .name = "layer_norm", .kernel_family = OpFamily::layer_norm, .execute = run_layer_norm},
    {.op = OpKind::rms_norm, .name = "rms_norm", .kernel_family = OpFamily::rms_norm, .execute = run_rms_norm},
    {.op = OpKind::unary, .name = "unary", .kernel_family = OpFamily::unary, .execute = run_unary},
    {.op = OpKind::swiglu, .name = "swiglu", .kernel_family = OpFamily::swiglu, .execute = run_swiglu},
    {.op = OpKind::add, .name = "add", .kernel_family = OpFamily::add, .execute = run_add},
    {.op = OpKind::mul, .name = "mul", .kernel_family = OpFamily::mul, .execute = run_mul},
    {.op = OpKind::rope, .name = "rope", .kernel_family = OpFamily::rope, .execute = run_rope},
    {.op = OpKind::attention, .name = "attention", .kernel_family = OpFamily::attention,
     .compile = compile_attention, .execute = run_attention},
    {.op = OpKind::attention_kv, .name = "attention_kv", .kernel_family = OpFamily::attention,
     .compile = compile_attention_kv, .check_run = check_attention_kv, .execute = run_attention_kv},
    {.op = OpKind::im2col, .name = "im2col", .execute = run_im2col},
    {.op = OpKind::pixel_shuffle, .name = "pixel_shuffle", .execute = run_pixel_shuffle},
    {.op = OpKind::get_rows, .name = "get_rows", .live_rows = get_rows_live_rows, .check_run = check_get_rows,
     .execute = run_get_rows},
    {.op = OpKind::concat_rows, .name = "concat_rows", .live_rows = concat_live_rows, .execute = run_concat_rows},
    {.op = OpKind::slice_rows, .name = "slice_rows", .execute = run_slice_rows},
    {.op = OpKind::last_row, .name = "last_row", .execute = run_last_row},
    {.op = OpKind::attention_row, .name = "attention_row", .kernel_family = OpFamily::attention_row,
     .execute = run_attention_row},
    {.op = OpKind::topk, .name = "topk", .kernel_family = OpFamily::topk, .compile = compile_topk,
     .execute = run_topk},
    {.op = OpKind::gather_rows, .name = "gather_rows", .kernel_family = OpFamily::gather_rows,
     .check_run = check_gather_rows, .execute = run_gather_rows},
    {.op = OpKind::tome_match, .name = "tome_match", .kernel_family = OpFamily::cosine_similarity,
     .compile = compile_tome_match, .execute = run_tome_match},
    {.op = OpKind::tome_merge, .name = "tome_merge", .kernel_family = OpFamily::merge_rows, .execute = run_tome_merge},
    {.op = OpKind::tome_restore, .name = "tome_restore", .execute = run_tome_restore},
};

}  // namespace

const OpDescriptor& op_descriptor(OpKind op) {
    const size_t i = static_cast<size_t>(op);
    GLIMPSE_ASSERT(i < sizeof(kOps) / sizeof(kOps[0]) && kOps[i].op == op);
    return kOps[i];
}

const char* op_kind_name(OpKind op) { return op_descriptor(op).name; }

}  // namespace glimpse
