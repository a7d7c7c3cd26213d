#include "runtime/graph.h"

#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <mutex>

#include "ops/tome.h"
#include "ops/weights.h"
#include "runtime/aligned_buffer.h"
#include "runtime/graph_ops.h"

namespace glimpse {

// ---------------------------------------------------------------------------
// Shape

Shape Shape::of(std::initializer_list<int64_t> d) {
    Shape s;
    s.rank = static_cast<int>(d.size());
    int i = 0;
    for (int64_t x : d) s.dims[i++] = x;
    return s;
}

int64_t Shape::cols() const {
    int64_t c = 1;
    for (int i = 1; i < rank; ++i) c *= dims[i];
    return c;
}

std::string Shape::to_string() const {
    std::string s = "(";
    for (int i = 0; i < rank; ++i) s += (i ? "," : "") + std::to_string(dims[i]);
    return s + ")";
}

namespace {
int64_t elem_bytes(DType t) { return dtype_info(t).block_bytes / dtype_info(t).block_size; }
Shape mat(int64_t rows, int64_t cols) { return Shape::of({rows, cols}); }
}  // namespace

// ---------------------------------------------------------------------------
// Graph definition

bool Graph::check(bool cond, const char* fmt, ...) {
    if (cond) return true;
    if (status_.is_ok()) {
        va_list args;
        va_start(args, fmt);
        std::string msg = str_vprintf(fmt, args);
        va_end(args);
        status_ = Status(StatusCode::invalid_argument, "graph node #" + std::to_string(nodes_.size()) + ": " + msg);
    }
    return false;
}

std::string Graph::describe(ValueId v) const {
    if (!valid(v)) return "<none>";
    const Value& x = values_[v];
    return "'" + x.name + "' " + x.shape.to_string() + (x.dynamic_rows ? "[dyn]" : "") + " " + dtype_name(x.dtype);
}

ValueId Graph::input(const std::string& name, DType dtype, Shape shape, bool dynamic_rows) {
    values_.push_back(
        Value{.name = name, .kind = ValueKind::input, .dtype = dtype, .shape = shape, .dynamic_rows = dynamic_rows});
    check(shape.rank >= 1 && shape.numel() > 0, "input '%s' has an empty shape", name.c_str());
    check(dtype == DType::f32 || dtype == DType::i32, "input '%s' must be f32 or i32", name.c_str());
    return static_cast<ValueId>(values_.size() - 1);
}

ValueId Graph::constant(const std::string& name, DType dtype, Shape shape, const void* data) {
    const int64_t row_elements = shape.dims[shape.rank - 1];
    values_.push_back(Value{.name = name, .kind = ValueKind::constant, .dtype = dtype, .shape = shape, .data = data,
                            .nbytes = dtype_row_bytes(dtype, row_elements) * (shape.numel() / row_elements)});
    check(data != nullptr, "constant '%s' has no data", name.c_str());
    return static_cast<ValueId>(values_.size() - 1);
}

void Graph::mark_output(ValueId v) {
    if (check(valid(v), "mark_output of an invalid value")) values_[v].is_output = true;
}

ValueId Graph::add_node(OpKind op, std::vector<ValueId> inputs, Shape out_shape, bool dynamic_rows, NodeParams p,
                        DType out_dtype) {
    Node n;
    n.op = op;
    n.inputs = std::move(inputs);
    n.p = p;
    Value v;
    v.name = std::string(op_kind_name(op)) + "#" + std::to_string(nodes_.size());
    v.kind = ValueKind::activation;
    v.dtype = out_dtype;
    v.shape = out_shape;
    v.dynamic_rows = dynamic_rows;
    v.producer = static_cast<int>(nodes_.size());
    values_.push_back(v);
    n.output = static_cast<ValueId>(values_.size() - 1);
    nodes_.push_back(std::move(n));
    return nodes_.back().output;
}

ValueId Graph::linear(ValueId x, ValueId w, ValueId bias) {
    if (!check(valid(x) && valid(w), "linear: invalid operand")) return kNoValue;
    const Value &X = values_[x], &W = values_[w];
    const int64_t K = X.shape.cols();
    const int64_t N = W.shape.rows();
    check(X.dtype == DType::f32, "linear: input %s must be f32", describe(x).c_str());
    check(W.kind == ValueKind::constant, "linear: weight %s must be a constant", describe(w).c_str());
    check(W.shape.cols() == K, "linear: input %s has %lld columns but weight %s has rows of %lld", describe(x).c_str(),
          static_cast<long long>(K), describe(w).c_str(), static_cast<long long>(W.shape.cols()));
    if (bias != kNoValue) {
        check(valid(bias) && values_[bias].shape.numel() == N && values_[bias].dtype == DType::f32,
              "linear: bias %s must be f32 with %lld elements", describe(bias).c_str(), static_cast<long long>(N));
    }
    return add_node(OpKind::linear, {x, w, bias}, mat(X.shape.rows(), N), X.dynamic_rows);
}

ValueId Graph::layer_norm(ValueId x, ValueId gamma, ValueId beta, float eps) {
    if (!check(valid(x), "layer_norm: invalid input")) return kNoValue;
    const int64_t C = values_[x].shape.cols();
    for (ValueId g : {gamma, beta}) {
        if (g == kNoValue) continue;
        check(valid(g) && values_[g].shape.numel() == C && values_[g].dtype == DType::f32,
              "layer_norm: parameter %s must be f32 with %lld elements", describe(g).c_str(), static_cast<long long>(C));
    }
    NodeParams p;
    p.eps = eps;
    return add_node(OpKind::layer_norm, {x, gamma, beta}, mat(values_[x].shape.rows(), C), values_[x].dynamic_rows, p);
}

ValueId Graph::rms_norm(ValueId x, ValueId gamma, float eps) {
    if (!check(valid(x), "rms_norm: invalid input")) return kNoValue;
    const int64_t C = values_[x].shape.cols();
    if (gamma != kNoValue) {
        check(valid(gamma) && values_[gamma].shape.numel() == C && values_[gamma].dtype == DType::f32,
              "rms_norm: weight %s must be f32 with %lld elements", describe(gamma).c_str(), static_cast<long long>(C));
    }
    NodeParams p;
    p.eps = eps;
    return add_node(OpKind::rms_norm, {x, gamma}, mat(values_[x].shape.rows(), C), values_[x].dynamic_rows, p);
}

ValueId Graph::unary(UnaryOp op, ValueId x) {
    if (!check(valid(x) && values_[x].dtype == DType::f32, "unary: input must be a valid f32 value")) return kNoValue;
    NodeParams p;
    p.unary = op;
    const Value& X = values_[x];
    return add_node(OpKind::unary, {x}, mat(X.shape.rows(), X.shape.cols()), X.dynamic_rows, p);
}

ValueId Graph::swiglu(ValueId gate, ValueId up) {
    if (!check(valid(gate) && valid(up), "swiglu: invalid operand")) return kNoValue;
    const Value &G = values_[gate], &U = values_[up];
    check(G.shape.rows() == U.shape.rows() && G.shape.cols() == U.shape.cols() && G.dynamic_rows == U.dynamic_rows,
          "swiglu: gate %s and up %s differ in shape", describe(gate).c_str(), describe(up).c_str());
    return add_node(OpKind::swiglu, {gate, up}, mat(G.shape.rows(), G.shape.cols()), G.dynamic_rows);
}

ValueId Graph::binary(OpKind op, ValueId a, ValueId b) {
    if (!check(valid(a) && valid(b), "%s: invalid operand", op_kind_name(op))) return kNoValue;
    const Value &A = values_[a], &B = values_[b];
    // b is either one row applied to every row of a — a rank-1 (C) or a (1,C)
    // value — or exactly a's shape.
    const bool broadcast =
        !B.dynamic_rows && B.shape.numel() == A.shape.cols() && (B.shape.rank == 1 || B.shape.rows() == 1);
    check(B.dtype == DType::f32 && A.dtype == DType::f32, "%s: operands must be f32", op_kind_name(op));
    check(broadcast || (B.shape.rows() == A.shape.rows() && B.shape.cols() == A.shape.cols() &&
                        B.dynamic_rows == A.dynamic_rows),
          "%s: %s and %s are not compatible", op_kind_name(op), describe(a).c_str(), describe(b).c_str());
    NodeParams p;
    p.broadcast_b = broadcast;
    return add_node(op, {a, b}, mat(A.shape.rows(), A.shape.cols()), A.dynamic_rows, p);
}

ValueId Graph::add(ValueId a, ValueId b) { return binary(OpKind::add, a, b); }

ValueId Graph::mul(ValueId a, ValueId b) { return binary(OpKind::mul, a, b); }

ValueId Graph::rope(ValueId x, ValueId positions, int64_t n_head, int64_t head_dim, int64_t n_rot, float base) {
    if (!check(valid(x) && valid(positions), "rope: invalid operand")) return kNoValue;
    const Value &X = values_[x], &P = values_[positions];
    check(X.shape.cols() == n_head * head_dim, "rope: %s is not %lld heads of %lld", describe(x).c_str(),
          static_cast<long long>(n_head), static_cast<long long>(head_dim));
    check(n_rot > 0 && n_rot <= head_dim && n_rot % 2 == 0, "rope: rotary dims %lld invalid for head dim %lld",
          static_cast<long long>(n_rot), static_cast<long long>(head_dim));
    check(P.dtype == DType::i32 && P.shape.rows() == X.shape.rows() && P.dynamic_rows == X.dynamic_rows,
          "rope: positions %s must be i32 with one entry per row of %s", describe(positions).c_str(),
          describe(x).c_str());
    const NodeParams p{.rope_base = base, .n_head = n_head, .head_dim = head_dim, .n_rot = n_rot};
    return add_node(OpKind::rope, {x, positions}, mat(X.shape.rows(), X.shape.cols()), X.dynamic_rows, p);
}

namespace {

// The head layout and score scale every attention node carries.
NodeParams attention_params(int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale) {
    return {.scale = scale, .n_head = n_head, .n_head_kv = n_head_kv, .head_dim = head_dim};
}

}  // namespace

ValueId Graph::attention(ValueId q, ValueId k, ValueId v, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                         float scale, ValueId* col_mean, ValueId key_sizes) {
    if (!check(valid(q) && valid(k) && valid(v), "attention: invalid operand")) return kNoValue;
    const Value &Q = values_[q], &K = values_[k], &V = values_[v];
    check(n_head > 0 && n_head_kv > 0 && n_head % n_head_kv == 0, "attention: %lld heads over %lld kv heads",
          static_cast<long long>(n_head), static_cast<long long>(n_head_kv));
    check(Q.shape.cols() == n_head * head_dim, "attention: q %s is not %lld heads of %lld", describe(q).c_str(),
          static_cast<long long>(n_head), static_cast<long long>(head_dim));
    check(K.shape.cols() == n_head_kv * head_dim && V.shape.cols() == n_head_kv * head_dim,
          "attention: k %s / v %s are not %lld heads of %lld", describe(k).c_str(), describe(v).c_str(),
          static_cast<long long>(n_head_kv), static_cast<long long>(head_dim));
    check(K.shape.rows() == V.shape.rows() && K.dynamic_rows == V.dynamic_rows, "attention: k and v rows differ");
    NodeParams p = attention_params(n_head, n_head_kv, head_dim, scale);
    const int64_t S = K.shape.rows();
    const bool keys_dynamic = K.dynamic_rows;
    std::vector<ValueId> inputs = {q, k, v};
    if (key_sizes != kNoValue) {
        if (!check(valid(key_sizes), "attention: invalid key sizes")) return kNoValue;
        const Value& Z = values_[key_sizes];
        check(Z.dtype == DType::f32 && !Z.dynamic_rows && !K.dynamic_rows && Z.shape.numel() == K.shape.rows(),
              "attention: key sizes %s must be f32 with one entry per key of %s (fixed rows)",
              describe(key_sizes).c_str(), describe(k).c_str());
        inputs.push_back(key_sizes);
    }
    ValueId out = add_node(OpKind::attention, std::move(inputs), mat(Q.shape.rows(), Q.shape.cols()), Q.dynamic_rows, p);
    if (col_mean) {
        *col_mean = kNoValue;
        if (!check(!keys_dynamic, "attention: the column-mean tap needs a fixed number of keys")) return out;
        Value tap;
        tap.name = "attention_col_mean#" + std::to_string(nodes_.size() - 1);
        tap.shape = mat(n_head, S);
        tap.producer = static_cast<int>(nodes_.size() - 1);
        values_.push_back(tap);
        *col_mean = nodes_.back().aux = static_cast<ValueId>(values_.size() - 1);
    }
    return out;
}

ValueId Graph::attention_row(ValueId q, ValueId k, int64_t row, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                             float scale) {
    if (!check(valid(q) && valid(k), "attention_row: invalid operand")) return kNoValue;
    const Value &Q = values_[q], &K = values_[k];
    check(!Q.dynamic_rows && !K.dynamic_rows, "attention_row: q and k must have fixed rows");
    check(row >= 0 && row < Q.shape.rows(), "attention_row: row %lld outside q %s", static_cast<long long>(row),
          describe(q).c_str());
    check(n_head > 0 && n_head_kv > 0 && n_head % n_head_kv == 0 && Q.shape.cols() == n_head * head_dim &&
              K.shape.cols() == n_head_kv * head_dim,
          "attention_row: q %s / k %s are not %lld / %lld heads of %lld", describe(q).c_str(), describe(k).c_str(),
          static_cast<long long>(n_head), static_cast<long long>(n_head_kv), static_cast<long long>(head_dim));
    NodeParams p = attention_params(n_head, n_head_kv, head_dim, scale);
    p.start = row;
    return add_node(OpKind::attention_row, {q, k}, mat(n_head, K.shape.rows()), false, p);
}

ValueId Graph::attention_kv(ValueId q, ValueId k, ValueId v, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                            float scale, int layer) {
    ValueId out = attention(q, k, v, n_head, n_head_kv, head_dim, scale);
    if (out == kNoValue) return out;
    Node& n = nodes_.back();
    n.op = OpKind::attention_kv;
    n.p.layer = layer;
    values_[out].name = "attention_kv#" + std::to_string(nodes_.size() - 1);
    check(values_[q].shape.rows() == values_[k].shape.rows() && values_[q].dynamic_rows == values_[k].dynamic_rows,
          "attention_kv: q and k/v must have the same rows");
    return out;
}

ValueId Graph::im2col(ValueId image, int64_t patch, bool round_to_f16) {
    if (!check(valid(image), "im2col: invalid input")) return kNoValue;
    const Value& I = values_[image];
    check(I.shape.rank == 3 && I.shape.dims[0] == 3 && I.dtype == DType::f32 && !I.dynamic_rows,
          "im2col: image %s must be f32 (3,H,W)", describe(image).c_str());
    const int64_t H = I.shape.dims[1], W = I.shape.dims[2];
    check(patch > 0 && H % patch == 0 && W % patch == 0, "im2col: image %lldx%lld is not a multiple of patch %lld",
          static_cast<long long>(W), static_cast<long long>(H), static_cast<long long>(patch));
    NodeParams p;
    p.patch = patch;
    p.round_to_f16 = round_to_f16;
    const int64_t gh = patch > 0 ? H / patch : 0, gw = patch > 0 ? W / patch : 0;
    p.grid_h = gh;
    p.grid_w = gw;
    return add_node(OpKind::im2col, {image}, mat(gh * gw, 3 * patch * patch), false, p);
}

ValueId Graph::pixel_shuffle(ValueId x, int64_t grid_h, int64_t grid_w, int64_t scale) {
    if (!check(valid(x), "pixel_shuffle: invalid input")) return kNoValue;
    const Value& X = values_[x];
    check(!X.dynamic_rows && X.shape.rows() == grid_h * grid_w, "pixel_shuffle: %s is not a %lldx%lld grid",
          describe(x).c_str(), static_cast<long long>(grid_h), static_cast<long long>(grid_w));
    check(scale > 0 && grid_h % scale == 0 && grid_w % scale == 0, "pixel_shuffle: grid %lldx%lld not divisible by %lld",
          static_cast<long long>(grid_h), static_cast<long long>(grid_w), static_cast<long long>(scale));
    NodeParams p;
    p.grid_h = grid_h;
    p.grid_w = grid_w;
    p.shuffle = scale;
    const int64_t s = scale > 0 ? scale : 1;
    return add_node(OpKind::pixel_shuffle, {x}, mat((grid_h / s) * (grid_w / s), X.shape.cols() * s * s), false, p);
}

ValueId Graph::get_rows(ValueId table, ValueId ids) {
    if (!check(valid(table) && valid(ids), "get_rows: invalid operand")) return kNoValue;
    const Value &Tb = values_[table], &I = values_[ids];
    check(Tb.kind == ValueKind::constant && weights_type_supported(Tb.dtype),
          "get_rows: table %s must be a constant of a supported type", describe(table).c_str());
    check(I.dtype == DType::i32, "get_rows: ids %s must be i32", describe(ids).c_str());
    return add_node(OpKind::get_rows, {table, ids}, mat(I.shape.rows(), Tb.shape.cols()), I.dynamic_rows);
}

ValueId Graph::concat_rows(ValueId a, ValueId b) {
    if (!check(valid(a) && valid(b), "concat_rows: invalid operand")) return kNoValue;
    const Value &A = values_[a], &B = values_[b];
    check(A.shape.cols() == B.shape.cols() && A.dtype == DType::f32 && B.dtype == DType::f32,
          "concat_rows: %s and %s differ in columns", describe(a).c_str(), describe(b).c_str());
    return add_node(OpKind::concat_rows, {a, b}, mat(A.shape.rows() + B.shape.rows(), A.shape.cols()),
                    A.dynamic_rows || B.dynamic_rows);
}

ValueId Graph::slice_rows(ValueId x, int64_t start, int64_t count) {
    if (!check(valid(x), "slice_rows: invalid input")) return kNoValue;
    const Value& X = values_[x];
    check(!X.dynamic_rows && start >= 0 && count > 0 && start + count <= X.shape.rows(),
          "slice_rows: rows [%lld, %lld) of %s", static_cast<long long>(start), static_cast<long long>(start + count),
          describe(x).c_str());
    NodeParams p;
    p.start = start;
    p.count = count;
    return add_node(OpKind::slice_rows, {x}, mat(count, X.shape.cols()), false, p);
}

ValueId Graph::last_row(ValueId x) {
    if (!check(valid(x), "last_row: invalid input")) return kNoValue;
    return add_node(OpKind::last_row, {x}, mat(1, values_[x].shape.cols()), false);
}

ValueId Graph::topk(ValueId scores, int64_t k) {
    if (!check(valid(scores), "topk: invalid input")) return kNoValue;
    const Value& S = values_[scores];
    check(S.dtype == DType::f32 && !S.dynamic_rows, "topk: scores %s must be f32 with fixed rows",
          describe(scores).c_str());
    check(k >= 1 && k <= S.shape.numel(), "topk: k = %lld outside [1, %lld] for scores %s", static_cast<long long>(k),
          static_cast<long long>(S.shape.numel()), describe(scores).c_str());
    NodeParams p;
    p.count = k;
    return add_node(OpKind::topk, {scores}, Shape::of({k}), false, p, DType::i32);
}

ValueId Graph::gather_rows(ValueId x, ValueId idx) {
    if (!check(valid(x) && valid(idx), "gather_rows: invalid operand")) return kNoValue;
    const Value &X = values_[x], &I = values_[idx];
    check(X.dtype == DType::f32 && !X.dynamic_rows, "gather_rows: x %s must be f32 with fixed rows",
          describe(x).c_str());
    check(I.dtype == DType::i32 && !I.dynamic_rows && I.shape.cols() == 1,
          "gather_rows: idx %s must be an i32 vector with fixed length", describe(idx).c_str());
    const bool from_topk = I.producer >= 0 && nodes_[I.producer].op == OpKind::topk &&
                           values_[nodes_[I.producer].inputs[0]].shape.numel() == X.shape.rows();
    check(I.kind == ValueKind::input || from_topk,
          "gather_rows: idx %s must be a graph input or a topk over the %lld rows of x %s", describe(idx).c_str(),
          static_cast<long long>(X.shape.rows()), describe(x).c_str());
    return add_node(OpKind::gather_rows, {x, idx}, mat(I.shape.rows(), X.shape.cols()), false);
}

ValueId Graph::tome_match(ValueId keys, int64_t n_head, int64_t head_dim, int64_t r, int64_t protected_row) {
    if (!check(valid(keys), "tome_match: invalid keys")) return kNoValue;
    const Value& K = values_[keys];
    const int64_t T = K.shape.rows();
    check(K.dtype == DType::f32 && !K.dynamic_rows && n_head >= 1 && head_dim >= 1 &&
              K.shape.cols() == n_head * head_dim,
          "tome_match: keys %s must be f32 with fixed rows, %lld heads of %lld", describe(keys).c_str(),
          static_cast<long long>(n_head), static_cast<long long>(head_dim));
    check(protected_row >= -1 && protected_row < T, "tome_match: protected row %lld outside [-1, %lld)",
          static_cast<long long>(protected_row), static_cast<long long>(T));
    const int64_t max_r = tome_max_merge(T, protected_row);
    check(r >= 0 && r <= max_r, "tome_match: r = %lld outside [0, %lld] for %lld tokens", static_cast<long long>(r),
          static_cast<long long>(max_r), static_cast<long long>(T));
    NodeParams p;
    p.n_head = n_head;
    p.head_dim = head_dim;
    p.count = r;
    p.start = protected_row;
    return add_node(OpKind::tome_match, {keys}, Shape::of({T}), false, p, DType::i32);
}

ValueId Graph::tome_merge(ValueId x, ValueId assign, ValueId sizes, ValueId* sizes_out) {
    if (!check(valid(x) && valid(assign) && sizes_out, "tome_merge: invalid operand")) return kNoValue;
    const Value &X = values_[x], &A = values_[assign];
    const int64_t T = X.shape.rows();
    const bool from_match = A.producer >= 0 && nodes_[A.producer].op == OpKind::tome_match;
    check(X.dtype == DType::f32 && !X.dynamic_rows && from_match && A.shape.numel() == T,
          "tome_merge: x %s must be f32 with fixed rows and assign %s a tome_match over its %lld rows",
          describe(x).c_str(), describe(assign).c_str(), static_cast<long long>(T));
    if (sizes != kNoValue) {
        check(valid(sizes) && values_[sizes].dtype == DType::f32 && values_[sizes].shape.numel() == T,
              "tome_merge: sizes must be f32 with one entry per row of x %s", describe(x).c_str());
    }
    const int64_t k = from_match ? T - nodes_[A.producer].p.count : T;
    ValueId out = add_node(OpKind::tome_merge, {x, assign, sizes}, mat(k, X.shape.cols()), false);
    Value z;
    z.name = "tome_sizes#" + std::to_string(nodes_.size() - 1);
    z.shape = Shape::of({k});
    z.producer = static_cast<int>(nodes_.size() - 1);
    values_.push_back(z);
    *sizes_out = nodes_.back().aux = static_cast<ValueId>(values_.size() - 1);
    return out;
}

ValueId Graph::tome_restore(ValueId x, const std::vector<ValueId>& assigns) {
    if (!check(valid(x), "tome_restore: invalid input")) return kNoValue;
    check(!assigns.empty() && assigns.size() <= kMaxTomeMerges, "tome_restore: %zu merges (1 to %d)", assigns.size(),
          kMaxTomeMerges);
    // Each assign numbers into the next one's rows; the last into x's.
    for (size_t i = 0; i < assigns.size(); ++i) {
        if (!check(valid(assigns[i]) && values_[assigns[i]].producer >= 0 &&
                       nodes_[values_[assigns[i]].producer].op == OpKind::tome_match,
                   "tome_restore: merge %zu is not a tome_match", i))
            return kNoValue;
        const Node& m = nodes_[values_[assigns[i]].producer];
        const int64_t rows_out = values_[assigns[i]].shape.numel() - m.p.count;
        const int64_t next = i + 1 < assigns.size() ? values_[assigns[i + 1]].shape.numel() : values_[x].shape.rows();
        check(rows_out == next, "tome_restore: merge %zu leaves %lld rows, the next stage has %lld", i,
              static_cast<long long>(rows_out), static_cast<long long>(next));
    }
    std::vector<ValueId> inputs = {x};
    inputs.insert(inputs.end(), assigns.begin(), assigns.end());
    const int64_t N = values_[assigns[0]].shape.numel();
    return add_node(OpKind::tome_restore, std::move(inputs), mat(N, values_[x].shape.cols()), false);
}

// ---------------------------------------------------------------------------
// Compile

Result<std::unique_ptr<Plan>> Plan::compile(Graph graph, const PlanOptions& options) {
    GLIMPSE_RETURN_IF_ERROR(graph.status());
    std::unique_ptr<Plan> plan(new Plan());
    plan->graph_ = std::move(graph);
    plan->options_ = options;
    if (plan->options_.n_threads < 1) plan->options_.n_threads = 1;
    const size_t n_values = plan->graph_.values_.size();
    plan->is_external_.assign(n_values, false);
    plan->external_data_.assign(n_values, nullptr);
    for (ValueId v : plan->options_.external_values) {
        GLIMPSE_CHECK_OR_RETURN(v >= 0 && static_cast<size_t>(v) < n_values, invalid_argument,
                                "plan options: external value id %d is not a value of the graph (%zu values)", v,
                                n_values);
        GLIMPSE_CHECK_OR_RETURN(plan->graph_.values_[v].kind != ValueKind::constant, invalid_argument,
                                "plan options: external value '%s' is a constant; only inputs and activations can be "
                                "placed by the caller",
                                plan->graph_.values_[v].name.c_str());
        plan->is_external_[v] = true;
    }
    GLIMPSE_RETURN_IF_ERROR(plan->check_and_choose_kernels());
    plan->plan_memory();
    if (plan->options_.external_memory) {
        plan->owns_memory_ = false;  // bind_memory() gives the arena and scratch
    } else {
        plan->arena_ = aligned_buffer_alloc(static_cast<size_t>(plan->memory_.arena_bytes));
        GLIMPSE_CHECK_OR_RETURN(plan->memory_.arena_bytes == 0 || plan->arena_, resource_exhausted,
                                "cannot allocate the %lld-byte activation arena",
                                static_cast<long long>(plan->memory_.arena_bytes));
        plan->scratch_ =
            reinterpret_cast<float*>(aligned_buffer_alloc(static_cast<size_t>(plan->memory_.scratch_bytes)));
        GLIMPSE_CHECK_OR_RETURN(plan->memory_.scratch_bytes == 0 || plan->scratch_, resource_exhausted,
                                "cannot allocate %lld bytes of scratch",
                                static_cast<long long>(plan->memory_.scratch_bytes));
    }
    plan->live_rows_.resize(plan->graph_.values_.size());
    for (size_t i = 0; i < plan->live_rows_.size(); ++i) plan->live_rows_[i] = plan->graph_.values_[i].shape.rows();
    return plan;
}

Plan::~Plan() {
    if (!owns_memory_) return;
    aligned_buffer_free(arena_);
    aligned_buffer_free(reinterpret_cast<uint8_t*>(scratch_));
}

void Plan::bind_memory(void* arena, void* scratch) {
    GLIMPSE_ASSERT(!owns_memory_);  // only plans compiled with PlanOptions::external_memory
    arena_ = static_cast<uint8_t*>(arena);
    scratch_ = static_cast<float*>(scratch);
}

Status Plan::bind_value(ValueId v, void* data) {
    GLIMPSE_CHECK_OR_RETURN(v >= 0 && static_cast<size_t>(v) < is_external_.size() && is_external_[v],
                            invalid_argument, "bind_value: value %d is not one of the plan's external values", v);
    GLIMPSE_CHECK_OR_RETURN(data && reinterpret_cast<uintptr_t>(data) % kBufferAlignment == 0, invalid_argument,
                            "bind_value: '%s' needs a %zu-byte aligned buffer", graph_.values_[v].name.c_str(),
                            kBufferAlignment);
    external_data_[v] = data;
    return Status::ok();
}

Status Plan::check_and_choose_kernels() {
    const int64_t threads = options_.n_threads;
    // Every linear node's weights are packed together after the loop (in parallel where
    // the cache has a pack pool); nothing reads a packed copy before that.
    if (options_.weight_cache) options_.weight_cache->start_queue();
    for (size_t i = 0; i < graph_.nodes_.size(); ++i) {
        Node& n = graph_.nodes_[i];
        const OpDescriptor& op = op_descriptor(n.op);
        if (op.kernel_family) n.kernel = select_kernel(*op.kernel_family);
        if (op.compile) {
            OpCompileContext c{n, static_cast<int>(i), graph_.values_, options_, own_cache_, threads};
            if (Status s = op.compile(c); !s.is_ok()) {
                if (options_.weight_cache) options_.weight_cache->drop_queued();
                return s;
            }
            // A plan without a cache of its own gets one at its first packed weight.
            if (options_.weight_cache && own_cache_.get() == options_.weight_cache) own_cache_->start_queue();
        }
        memory_.scratch_bytes = std::max(memory_.scratch_bytes, align_up(n.scratch_bytes, kBufferAlignment));
    }
    if (options_.weight_cache) options_.weight_cache->pack_queued();
    // Constants that stay in use in place: every input that is not a packed matmul weight.
    std::vector<bool> read_in_place(graph_.values_.size(), false);
    for (const Node& n : graph_.nodes_) {
        for (size_t k = 0; k < n.inputs.size(); ++k) {
            if (n.inputs[k] == kNoValue) continue;
            if (n.op == OpKind::linear && k == 1 && n.packed) continue;
            read_in_place[n.inputs[k]] = true;
        }
    }
    memory_.in_place_weight_bytes = 0;
    for (size_t v = 0; v < graph_.values_.size(); ++v) {
        const Value& x = graph_.values_[v];
        if (x.kind == ValueKind::constant && read_in_place[v]) memory_.in_place_weight_bytes += x.nbytes;
    }
    if (options_.kv_cache) memory_.kv_cache_bytes = options_.kv_cache->bytes();
    if (options_.weight_cache) memory_.packed_bytes = options_.weight_cache->bytes();
    return Status::ok();
}

void Plan::plan_memory() {
    std::vector<Value>& values = graph_.values_;
    const int n_nodes = static_cast<int>(graph_.nodes_.size());
    struct Interval {
        ValueId id;
        int start, end;  // inclusive node indices during which the value must stay intact
        int64_t bytes;
        int64_t offset = -1;
    };
    std::vector<int> last_use(values.size(), -1);
    for (int i = 0; i < n_nodes; ++i) {
        for (ValueId in : graph_.nodes_[i].inputs) {
            if (in != kNoValue) last_use[in] = i;
        }
    }
    std::vector<Interval> items;
    for (size_t v = 0; v < values.size(); ++v) {
        Value& x = values[v];
        if (x.kind == ValueKind::constant) {
            memory_.weight_bytes += x.nbytes;
            continue;
        }
        x.nbytes = align_up(x.shape.numel() * elem_bytes(x.dtype), kBufferAlignment);
        if (is_external_[v]) {  // placed by the caller (bind_value)
            memory_.external_value_bytes += x.nbytes;
            continue;
        }
        // Inputs and outputs live for the whole run, so nothing is ever placed on
        // top of them: the caller writes inputs before run() and reads outputs after.
        Interval it;
        it.id = static_cast<ValueId>(v);
        it.start = x.kind == ValueKind::input ? 0 : x.producer;
        it.end = (x.kind == ValueKind::input || x.is_output) ? n_nodes : std::max(last_use[v], x.producer);
        it.bytes = x.nbytes;
        items.push_back(it);
        memory_.naive_bytes += x.nbytes;
    }
    // Largest first, each into the smallest gap between already placed values
    // whose lifetimes overlap its own (best fit).
    std::vector<size_t> order(items.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return items[a].bytes > items[b].bytes; });
    std::vector<size_t> placed;
    int64_t arena = 0;
    for (size_t idx : order) {
        Interval& it = items[idx];
        std::vector<std::pair<int64_t, int64_t>> busy;  // [offset, end) of overlapping placed values
        for (size_t p : placed) {
            const Interval& o = items[p];
            if (o.start <= it.end && it.start <= o.end) busy.emplace_back(o.offset, o.offset + o.bytes);
        }
        std::sort(busy.begin(), busy.end());
        int64_t cursor = 0, best = -1, best_gap = INT64_MAX;
        for (const auto& [b0, b1] : busy) {
            if (b0 > cursor && b0 - cursor >= it.bytes && b0 - cursor < best_gap) {
                best = cursor;
                best_gap = b0 - cursor;
            }
            cursor = std::max(cursor, b1);
        }
        if (best < 0) best = cursor;
        it.offset = best;
        values[it.id].arena_offset = best;
        arena = std::max(arena, best + it.bytes);
        placed.push_back(idx);
    }
    memory_.arena_bytes = arena;
}

std::vector<const Kernel*> Plan::node_kernels() const {
    std::vector<const Kernel*> kernels;
    for (const Node& n : graph_.nodes_) kernels.push_back(n.kernel);
    return kernels;
}

std::vector<std::string> Plan::matmul_kernel_names() const {
    std::vector<std::string> names;
    for (const Node& n : graph_.nodes_) {
        if (n.op == OpKind::linear) names.push_back(n.matmul->name);
    }
    return names;
}

PackedWeightCache::~PackedWeightCache() {
    for (Entry& e : entries_) aligned_buffer_free(e.data);
}

const void* PackedWeightCache::get(const MatmulKernel& kernel, const void* w, int64_t N, int64_t K) {
    for (const Entry& e : entries_) {
        if (e.w == w && e.kernel == &kernel) return e.data;
    }
    const int64_t bytes = kernel.packed_bytes(N, K);
    uint8_t* data = aligned_buffer_alloc_uninitialized(static_cast<size_t>(bytes));
    if (!data) return nullptr;
    entries_.push_back({w, &kernel, data, N, K, bytes, false});
    bytes_ += bytes;
    if (!queueing_) {
        pack_entry(entries_.back());
        release_source(entries_.back());
    }
    return data;
}

void PackedWeightCache::pack_entry(Entry& e) {
    // Zeroed first so padding a packer skips is defined, as in every other buffer.
    std::memset(e.data, 0, aligned_buffer_bytes(static_cast<size_t>(e.bytes)));
    e.kernel->pack(e.w, e.N, e.K, e.data);
    e.packed = true;
}

void PackedWeightCache::release_source(const Entry& e) {
    if (hook_) hook_(e.w, static_cast<size_t>(e.N * dtype_row_bytes(e.kernel->w_type, e.K)));
}

void PackedWeightCache::pack_queued() {
    queueing_ = false;
    // glimpse's own packers are pure functions of (w, N, K); a library provider's
    // (available != nullptr) may use process-wide library state, so those run one by one.
    std::vector<size_t> parallel, serial;
    for (size_t i = 0; i < entries_.size(); ++i) {
        if (!entries_[i].packed) (entries_[i].kernel->available ? serial : parallel).push_back(i);
    }
    std::mutex hook_mutex;
    auto pack_and_release = [&](Entry& e) {
        pack_entry(e);
        std::lock_guard<std::mutex> lock(hook_mutex);
        release_source(e);
    };
    if (pack_pool_ && parallel.size() > 1) {
        pack_pool_->parallel_for(static_cast<int64_t>(parallel.size()), [&](int64_t begin, int64_t end, int) {
            for (int64_t i = begin; i < end; ++i) pack_and_release(entries_[parallel[static_cast<size_t>(i)]]);
        });
    } else {
        for (size_t i : parallel) pack_and_release(entries_[i]);
    }
    for (size_t i : serial) pack_and_release(entries_[i]);
}

void PackedWeightCache::drop_queued() {
    queueing_ = false;
    for (size_t i = entries_.size(); i-- > 0;) {
        if (entries_[i].packed) continue;
        bytes_ -= entries_[i].bytes;
        aligned_buffer_free(entries_[i].data);
        entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
    }
}

// ---------------------------------------------------------------------------
// Run

void* Plan::data(ValueId v) const {
    const Value& x = graph_.values_[v];
    if (x.kind == ValueKind::constant) return const_cast<void*>(x.data);
    if (is_external_[v]) return external_data_[v];
    return arena_ + x.arena_offset;
}

Status Plan::run(const RunArgs& args, ThreadPool* pool, NodeObserver observer, void* observer_user) {
    const std::vector<Value>& values = graph_.values_;
    if (pool && pool->n_threads() > options_.n_threads) {
        return Status::error(StatusCode::invalid_argument,
                             "run: a pool of %d threads, but the plan's scratch was sized for %d", pool->n_threads(),
                             options_.n_threads);
    }
    if (!owns_memory_ && ((memory_.arena_bytes > 0 && !arena_) || (memory_.scratch_bytes > 0 && !scratch_))) {
        return Status::error(StatusCode::invalid_argument,
                             "run: the plan was compiled for caller-owned memory and bind_memory() has not given it");
    }
    for (size_t v = 0; v < values.size(); ++v) {
        if (is_external_[v] && !external_data_[v]) {
            return Status::error(StatusCode::invalid_argument, "run: external value '%s' was never bound",
                                 values[v].name.c_str());
        }
    }
    // Resolve live rows of every value first, so a pass that cannot fit (too many
    // rows, KV cache full) fails before any node has run.
    for (size_t v = 0; v < values.size(); ++v) {
        const Value& x = values[v];
        if (x.kind == ValueKind::activation) continue;
        int64_t rows = x.shape.rows();
        if (x.dynamic_rows && args.n_rows >= 0) {
            if (args.n_rows < 1 || args.n_rows > x.shape.rows()) {
                return Status::error(StatusCode::out_of_range,
                                     "run: %lld rows requested but input '%s' was planned for at most %lld",
                                     static_cast<long long>(args.n_rows), x.name.c_str(),
                                     static_cast<long long>(x.shape.rows()));
            }
            rows = args.n_rows;
        }
        live_rows_[v] = rows;
    }
    auto context = [&](const Node& n) { return OpRunContext{*this, n, args, pool, options_.kv_cache, scratch_}; };
    for (const Node& n : graph_.nodes_) {
        // Static outputs keep their planned rows; dynamic ones follow their inputs.
        const OpDescriptor& op = op_descriptor(n.op);
        int64_t rows = values[n.output].shape.rows();
        if (values[n.output].dynamic_rows) rows = op.live_rows ? op.live_rows(n, live_rows_) : live_rows_[n.inputs[0]];
        live_rows_[n.output] = rows;
        if (op.check_run) GLIMPSE_RETURN_IF_ERROR(op.check_run(context(n)));
    }
    for (size_t i = 0; i < graph_.nodes_.size(); ++i) {
        const Node& n = graph_.nodes_[i];
        op_descriptor(n.op).execute(context(n));
        if (observer) observer(observer_user, *this, static_cast<int>(i));
    }
    return Status::ok();
}

}  // namespace glimpse
