// Static graph: define -> compile -> run.
//
// A model builder defines a Graph from a small op vocabulary; compile() checks
// every shape, chooses kernels, and plans all activations into one arena; run()
// executes the node list with no heap allocation.
//
// Shapes are written outermost first: x:(T,C) is T rows of C contiguous f32.
// Activations are 2-D (rows, cols); a graph input may be an image (3,H,W).
// A value may have *dynamic rows*: its shape's row count is an upper bound and
// the live count is fixed per run (RunArgs::n_rows) — the prompt length of a
// decoder pass, for example — so one plan serves every length up to its bound.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "ops/matmul.h"
#include "ops/kernel_registry.h"
#include "ops/unary.h"
#include "runtime/dtype.h"
#include "runtime/kv_cache.h"
#include "runtime/status.h"
#include "runtime/threadpool.h"

namespace glimpse {

using ValueId = int32_t;
constexpr ValueId kNoValue = -1;

struct Shape {
    int rank = 0;
    int64_t dims[4] = {1, 1, 1, 1};

    static Shape of(std::initializer_list<int64_t> d);
    int64_t rows() const { return dims[0]; }
    int64_t cols() const;  // product of the inner dimensions
    int64_t numel() const { return rows() * cols(); }
    std::string to_string() const;
};

enum class ValueKind : uint8_t { input, activation, constant };

struct Value {
    std::string name;
    ValueKind kind = ValueKind::activation;
    DType dtype = DType::f32;
    Shape shape;
    bool dynamic_rows = false;
    bool is_output = false;
    const void* data = nullptr;  // constants: weights in the model file or owned by the model
    int producer = -1;           // index of the node that writes it
    int64_t arena_offset = -1;   // planned by compile()
    int64_t nbytes = 0;
};

enum class OpKind : uint8_t {
    linear,         // x:(T,K), w:(N,K), [b:(N)] -> (T,N)
    layer_norm,     // x:(T,C), g:(C), [b:(C)] -> (T,C)
    rms_norm,       // x:(T,C), g:(C) -> (T,C)
    unary,          // x -> op(x)
    swiglu,         // gate:(T,F), up:(T,F) -> silu(gate)*up
    add,            // a:(T,C), b:(T,C) or (C) -> (T,C)
    mul,            // a:(T,C), b:(T,C) or (C) -> (T,C)
    rope,           // x:(T,H·D), pos:(T) i32 -> (T,H·D)
    attention,      // q:(T,Hq·D), k:(T,Hkv·D), v:(T,Hkv·D) -> (T,Hq·D), all keys of the same pass
    attention_kv,   // same, but k/v are appended to the KV cache at slots [pos0, pos0+T) and
                    // queries attend causally over slots [0, pos0+t]
    im2col,         // img:(3,H,W) -> (N, 3·P·P)
    pixel_shuffle,  // x:(h·w, C) -> ((h/s)·(w/s), s²·C)
    get_rows,       // table:(V,C) any dtype, ids:(T) i32 -> (T,C)
    concat_rows,    // a:(T1,C), b:(T2,C) -> (T1+T2, C)
    slice_rows,     // x:(T,C) -> rows [start, start+count)
    last_row,       // x:(T,C) -> (1,C), the last live row
    attention_row,  // q:(T,Hq·D), k:(S,Hkv·D) -> (Hq, S): one query row's attention per head
    topk,           // scores:(n) f32 -> (k) i32: indices of the k best, ascending (ops/topk.h)
    gather_rows,    // x:(T,C), idx:(k) i32 -> (k,C): the rows idx names (ops/gather.h)
    tome_match,     // keys:(T,H·D) -> assign:(T) i32: ToMe bipartite matching, r merges (ops/tome.h)
    tome_merge,     // x:(T,C), assign:(T) i32, [sizes:(T)] -> (T−r, C) [+ sizes' (T−r) as aux]
    tome_restore,   // x:(T_L,C), assign_1..assign_L -> (N,C): merged tokens back on the full grid
};

// What the plan knows about each op (name, live-rows rule, kernel choice and
// scratch, executor) is its descriptor in runtime/graph_ops.cpp; the shape rule is
// its builder method below.
const char* op_kind_name(OpKind op);

struct NodeParams {
    float eps = 0;
    float scale = 1;
    float rope_base = 10000;
    int64_t n_head = 0, n_head_kv = 0, head_dim = 0, n_rot = 0;
    int64_t patch = 0, grid_h = 0, grid_w = 0, shuffle = 0;
    int64_t start = 0, count = 0;  // slice_rows: rows; attention_row: start = the row; topk: count = k
    int layer = -1;
    UnaryOp unary = UnaryOp::silu;
    bool broadcast_b = false;  // add/mul: b is one row applied to every row of a
    bool round_to_f16 = false; // im2col
};

struct Node {
    OpKind op = OpKind::unary;
    std::vector<ValueId> inputs;  // kNoValue for an absent optional input
    ValueId output = kNoValue;
    ValueId aux = kNoValue;       // a second output (attention: the column-mean tap)
    NodeParams p;
    // Chosen by compile():
    const MatmulKernel* matmul = nullptr;
    const void* packed = nullptr;  // linear: weights repacked for `matmul`, if it packs
    const Kernel* kernel = nullptr;  // ops with a registered kernel family: the one chosen
    // attention_kv over a mixed KV cache: the attention_row kernel that ranks a prefill's rows
    // (runtime/graph_ops.cpp assign_mixed_rows).
    const Kernel* row_kernel = nullptr;
    int64_t scratch_bytes = 0;
};

class Graph {
public:
    // Values -------------------------------------------------------------
    ValueId input(const std::string& name, DType dtype, Shape shape, bool dynamic_rows = false);
    ValueId constant(const std::string& name, DType dtype, Shape shape, const void* data);
    void mark_output(ValueId v);

    // Ops (shape rules are checked here; a violation records an error that
    // compile() reports, and the builder can go on without checking each call).
    ValueId linear(ValueId x, ValueId w, ValueId bias = kNoValue);
    ValueId layer_norm(ValueId x, ValueId gamma, ValueId beta, float eps);
    ValueId rms_norm(ValueId x, ValueId gamma, float eps);
    ValueId unary(UnaryOp op, ValueId x);
    ValueId swiglu(ValueId gate, ValueId up);
    ValueId add(ValueId a, ValueId b);
    ValueId mul(ValueId a, ValueId b);
    ValueId rope(ValueId x, ValueId positions, int64_t n_head, int64_t head_dim, int64_t n_rot, float base);
    // col_mean (optional) receives a (n_head, S) value: the attention each key
    // gets, averaged over the queries, accumulated by the attention kernel itself.
    // key_sizes (optional, f32 (S), S fixed): ToMe's proportional attention, log(key_sizes[s]) added
    // to every logit of key s (AttentionArgs::key_bias).
    ValueId attention(ValueId q, ValueId k, ValueId v, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                      float scale, ValueId* col_mean = nullptr, ValueId key_sizes = kNoValue);
    // Attention probabilities of query row `row` over all keys, per head: (n_head, S).
    ValueId attention_row(ValueId q, ValueId k, int64_t row, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                          float scale);
    ValueId attention_kv(ValueId q, ValueId k, ValueId v, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                         float scale, int layer);
    // round_to_f16: store patches rounded to f16, as ggml's conv_2d does (its im2col is f16).
    ValueId im2col(ValueId image, int64_t patch, bool round_to_f16 = false);
    ValueId pixel_shuffle(ValueId x, int64_t grid_h, int64_t grid_w, int64_t scale);
    ValueId get_rows(ValueId table, ValueId ids);
    ValueId concat_rows(ValueId a, ValueId b);
    ValueId slice_rows(ValueId x, int64_t start, int64_t count);
    ValueId last_row(ValueId x);
    // Indices (i32, ascending) of the k best of scores' n values (any fixed-row f32 value,
    // read flat), 1 <= k <= n; ties go to the lower index, NaN ranks last (ops/topk.h).
    ValueId topk(ValueId scores, int64_t k);
    // The rows of x (f32, fixed rows T) that idx names: (k,C). idx is an i32 (k) value that is
    // either a graph input (each run checks it lies in [0, T)) or the output of a topk over T
    // scores (in range by construction).
    ValueId gather_rows(ValueId x, ValueId idx);
    // Token merging (ops/tome.h). tome_match: keys (T, n_head·head_dim) f32 with fixed rows ->
    // assign:(T) i32 merging r tokens, 0 <= r <= tome_max_merge(T, protected_row); protected_row
    // (-1: none) is never merged. tome_merge: the size-weighted mean of the rows assign sends to
    // each of its T−r slots; sizes (T) f32 or kNoValue (all 1); *sizes_out receives (T−r) sizes.
    // tome_restore: x (T_L, C) after merges whose assigns are given first to last -> (N, C).
    ValueId tome_match(ValueId keys, int64_t n_head, int64_t head_dim, int64_t r, int64_t protected_row);
    ValueId tome_merge(ValueId x, ValueId assign, ValueId sizes, ValueId* sizes_out);
    ValueId tome_restore(ValueId x, const std::vector<ValueId>& assigns);

    // First definition error, or ok.
    const Status& status() const { return status_; }
    const std::vector<Value>& values() const { return values_; }
    const std::vector<Node>& nodes() const { return nodes_; }
    const Value& value(ValueId v) const { return values_[v]; }

private:
    friend class Plan;
    ValueId binary(OpKind op, ValueId a, ValueId b);
    bool check(bool cond, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
    bool valid(ValueId v) const { return v >= 0 && v < static_cast<ValueId>(values_.size()); }
    ValueId add_node(OpKind op, std::vector<ValueId> inputs, Shape out_shape, bool dynamic_rows, NodeParams p = {},
                     DType out_dtype = DType::f32);
    std::string describe(ValueId v) const;

    std::vector<Value> values_;
    std::vector<Node> nodes_;
    Status status_;
};

// Weights repacked for a kernel, shared by every plan built from one model (a
// decoder recompiled for a longer prompt reuses them). Keyed by the weight's
// address and the kernel.
//
// A plan's compile queues the packing (start_queue, then get() only allocates) and
// runs it at the end (pack_queued), on the pack pool's threads when one is set: packing
// is most of a plan's compile time, which the time to first token pays in full.
class PackedWeightCache {
public:
    ~PackedWeightCache();
    // The packed form of w:(N,K) for `kernel`, packing it on first use (or, while
    // queueing, once pack_queued() has run); nullptr if the allocation fails.
    const void* get(const MatmulKernel& kernel, const void* w, int64_t N, int64_t K);
    int64_t bytes() const { return bytes_; }
    // Called with each source weight (address, stored bytes) right after it was
    // packed: a model whose weights are file-mapped drops those pages, so a weight
    // is not resident twice (the file's copy and the packed one) at any time.
    // Called from one thread at a time (pack_queued serialises it).
    void set_packed_source_hook(std::function<void(const void* w, size_t bytes)> hook) { hook_ = std::move(hook); }
    // Threads that run queued packing (nullptr: the thread calling pack_queued). The
    // packed bytes do not depend on it.
    void set_pack_pool(ThreadPool* pool) { pack_pool_ = pool; }
    // From here on get() allocates and queues; pack_queued() packs what is queued and
    // stops queueing, drop_queued() (a failed compile) frees it instead.
    void start_queue() { queueing_ = true; }
    void pack_queued();
    void drop_queued();

private:
    struct Entry {
        const void* w;
        const MatmulKernel* kernel;
        uint8_t* data;
        int64_t N, K, bytes;
        bool packed;
    };
    void pack_entry(Entry& e);
    void release_source(const Entry& e);
    std::vector<Entry> entries_;
    int64_t bytes_ = 0;
    std::function<void(const void*, size_t)> hook_;
    ThreadPool* pack_pool_ = nullptr;
    bool queueing_ = false;
};

struct PlanOptions {
    int n_threads = 1;                          // used only to size per-thread scratch
    KvCache* kv_cache = nullptr;                // required by attention_kv nodes
    PackedWeightCache* weight_cache = nullptr;  // where repacked weights live (default: the plan's own)
    // Memory owned by the caller, for plans that never run at the same time and so can share
    // one buffer (a segmented decoder's segments): compile() plans the arena and the scratch
    // (memory().arena_bytes, memory().scratch_bytes) but allocates neither, and bind_memory()
    // must give them before the first run().
    bool external_memory = false;
    // Values the caller places itself with bind_value() (inputs or outputs that must survive
    // the plan's own activations, such as what one segment hands the next): not planned into
    // the arena, counted in memory().external_value_bytes. Every one must be bound before run().
    std::vector<ValueId> external_values;
};

struct MemoryReport {
    int64_t weight_bytes = 0;    // constants referenced by the plan, as stored in the model file
    int64_t packed_bytes = 0;    // weights repacked for their kernels (held by the weight cache)
    int64_t in_place_weight_bytes = 0;  // constants some node reads from the model file directly
                                        // (not only through a packed copy)
    int64_t arena_bytes = 0;     // planned activations, inputs and outputs
    int64_t naive_bytes = 0;     // what the activations would take without reuse
    int64_t scratch_bytes = 0;   // largest per-node scratch (all threads)
    int64_t kv_cache_bytes = 0;  // the bound KV cache
    int64_t external_value_bytes = 0;  // PlanOptions::external_values, held by the caller (not in total())
    int64_t total() const { return arena_bytes + scratch_bytes + kv_cache_bytes + weight_bytes; }
};

struct RunArgs {
    int64_t n_rows = -1;  // live rows of dynamic-row inputs; -1 = their maximum
    int64_t pos0 = 0;     // first KV-cache slot written by this pass
};

class Plan {
public:
    static Result<std::unique_ptr<Plan>> compile(Graph graph, const PlanOptions& options);
    ~Plan();

    // Buffers of inputs and outputs (and, for tests, any activation).
    void* data(ValueId v) const;
    float* f32(ValueId v) const { return static_cast<float*>(data(v)); }
    // The kernel chosen for each linear node (name), in node order; for reports and tests.
    std::vector<std::string> matmul_kernel_names() const;
    // The registered kernel each node of the other op families runs (nullptr for ops
    // without one: data movement), in node order; for reports and tests.
    std::vector<const Kernel*> node_kernels() const;
    // Live rows of a value after the last run().
    int64_t rows(ValueId v) const { return live_rows_[v]; }
    const Graph& graph() const { return graph_; }
    const MemoryReport& memory() const { return memory_; }

    // Called after each node with its index (debugging, dumps of intermediates).
    using NodeObserver = void (*)(void* user, const Plan& plan, int node_index);

    // PlanOptions::external_memory: the arena (at least memory().arena_bytes) and scratch (at
    // least memory().scratch_bytes) this plan runs in, both kBufferAlignment-aligned; the caller
    // keeps them alive and may hand the same bytes to other plans that never run concurrently.
    void bind_memory(void* arena, void* scratch);
    // A value of PlanOptions::external_values: where it lives (kBufferAlignment-aligned, at
    // least its shape's bytes). Its contents are the caller's between runs.
    Status bind_value(ValueId v, void* data);

    // Executes every node in order. Allocates nothing.
    Status run(const RunArgs& args, ThreadPool* pool, NodeObserver observer = nullptr, void* observer_user = nullptr);

private:
    Plan() = default;
    Status check_and_choose_kernels();
    void plan_memory();

    Graph graph_;
    PlanOptions options_;
    std::unique_ptr<PackedWeightCache> own_cache_;
    MemoryReport memory_;
    uint8_t* arena_ = nullptr;
    float* scratch_ = nullptr;
    bool owns_memory_ = true;               // false with PlanOptions::external_memory
    std::vector<void*> external_data_;      // per value: where an external value was bound, else nullptr
    std::vector<bool> is_external_;         // per value: listed in PlanOptions::external_values
    std::vector<int64_t> live_rows_;
};

}  // namespace glimpse
