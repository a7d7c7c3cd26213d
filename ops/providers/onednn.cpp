// oneDNN matmul provider (Debian's libdnnl 2.6.3, OpenMP runtime).
//
//   x:(M,K) f32 -> [converted to the primitive's source type] -> oneDNN matmul
//   with weights reordered once into the layout the primitive wants
//   (format_tag::any) -> y:(M,N) f32
//
// Variants (see kOnednn* entries at the end):
//   f32:  f32 x f32 (f32 weights as stored; f16 weights widened exactly at pack time)
//   bf16: x rounded to bf16 x bf16 weights (bf16 as stored; f16 weights rounded to bf16
//         at pack time); oneDNN picks AMX-BF16 on Sapphire Rapids ("brg:avx512_core_amx_bf16")
//   s8:   x quantized per row to s8 (scale amax/127, computed per call) x weights
//         quantized per output row to s8 at pack time -> s32, then
//         y = acc·sx[m]·sw[n] + bias[n] (AMX-INT8 / VNNI)
//
// Dynamic rows. oneDNN 2.6 falls back to its slow "gemm:jit" implementation when M
// is a runtime dimension (DNNL_RUNTIME_DIM_VAL), and its brgemm kernels need a
// dense destination (ld = N). So pack() creates one primitive per row bucket
// 1, 2, 4, ..., 256 (all sharing the one reordered weight layout; a bucket whose
// primitive wants a different layout is not used) and run() covers the rows with the
// largest buckets that fit, padding the last piece up to the smallest usable bucket
// through scratch when needed. The chunks depend only on M, never on the thread
// count, so every row is computed by the same primitive for any number of threads
// and results are bit-identical for 1, 2 or 3 threads (as glimpse requires).
//
// Few rows (M <= 8, decode). Splitting rows leaves all but one thread idle, so the
// columns are split instead: when the reordered layout keeps whole blocks of output
// columns contiguous (N-blocks outermost, as brgemm's layouts are), pack() also
// creates primitives for column slices at M = 1, 2, 4, 8 that read their blocks of
// the same packed weights in place; each thread writes its slice densely into
// scratch, and the few rows are copied into y.
//
// Threads. Every primitive is created with one OpenMP thread (omp_set_num_threads(1)
// around creation: oneDNN fixes the thread count of a primitive when it creates it),
// so oneDNN never starts an OpenMP team. run() hands the row chunks to glimpse's
// ThreadPool threads (by starting row, one contiguous part per thread, up to the
// contexts made at pack time) and each thread executes its chunks on its own stream.
// Few rows always take the column slices (sequentially on one thread). Letting oneDNN run its own
// OpenMP team instead would put libgomp's spinning workers next to glimpse's
// spinning pool workers on the same cores (both spin ~1 ms after each loop), and a
// plan's thread count would no longer be what glimpse was given.
//
// Allocation. Memory objects, streams and scratchpad (scratchpad_mode::user, carved
// out of the kernel's scratch) are prepared at pack time, and primitives are
// executed through the C API with a stack argument array; but oneDNN 2.6 builds an
// std::unordered_map of the arguments inside every execute (exec_ctx_t), a handful of
// small heap allocations per primitive call that no public API avoids. See
// matmul_provider_allocates_in_run().
//
// Lifetime. The packed buffer starts with the provider's state (primitives, memory
// objects, streams; placement-constructed) followed by the reordered weights. The
// plan frees packed buffers without a destructor hook, so the state's handles are
// never released: a few hundred KB of oneDNN objects per loaded model, reclaimed at
// exit. MatmulKernel would need a `release` callback to fix this.
#if defined(GLIMPSE_HAVE_ONEDNN)

#include <dlfcn.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "ops/matmul.h"
#include "ops/weights.h"
#include "runtime/aligned_buffer.h"
#include "runtime/fp16.h"

namespace glimpse {

#if defined(__x86_64__)
void onednn_stage_bf16_avx512(const float* x, int64_t ldx, int64_t rows, int64_t K, uint16_t* out);
void onednn_stage_s8_avx512(const float* x, int64_t ldx, int64_t rows, int64_t K, int8_t* out, float* scales);
#endif

namespace {

using dt = dnnl::memory::data_type;

enum class Kind { f32, bf16, s8 };

constexpr int kNumBuckets = 9;  // row buckets 1, 2, 4, ..., 256
constexpr int64_t bucket_rows(int b) { return int64_t{1} << b; }
constexpr int kMaxContexts = 16;
constexpr int kNumSliceBuckets = 4;  // column-sliced primitives for M = 1, 2, 4, 8
// Conversion / staging buffers per part are kept near this size; chunks that go
// through them are cut to fit (never below the smallest usable bucket).
constexpr int64_t kStagingBytes = int64_t{4} << 20;

// OpenMP's thread count, set to 1 while primitives are created. libgomp is loaded by
// libdnnl; looking the functions up avoids linking glimpse against OpenMP itself.
class OneOmpThread {
public:
    OneOmpThread() {
        static auto get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
        static auto set = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
        set_ = set;
        if (get && set) {
            saved_ = get();
            set(1);
        }
    }
    ~OneOmpThread() {
        if (set_ && saved_ > 0) set_(saved_);
    }

private:
    void (*set_)(int) = nullptr;
    int saved_ = 0;
};

// oneDNN follows GLIMPSE_MAX_ISA: the cap must be set before the first primitive.
dnnl_cpu_isa_t dnnl_isa_cap(Isa isa) {
    switch (isa) {
        case Isa::avx2: return dnnl_cpu_isa_avx2;
        case Isa::avx512: return cpu_features().avx512bf16 ? dnnl_cpu_isa_avx512_core_bf16 : dnnl_cpu_isa_avx512_core_vnni;
        default: return dnnl_cpu_isa_all;
    }
}

struct Global {
    bool ok = false;
    dnnl::engine engine;
};

Global& global() {
    static Global g = [] {
        Global r;
        dnnl_set_max_cpu_isa(dnnl_isa_cap(active_isa()));
        try {
            r.engine = dnnl::engine(dnnl::engine::kind::cpu, 0);
            r.ok = true;
        } catch (const dnnl::error&) {
            r.ok = false;
        }
        return r;
    }();
    return g;
}

bool onednn_available() { return global().ok; }

dt src_type(Kind k) { return k == Kind::f32 ? dt::f32 : k == Kind::bf16 ? dt::bf16 : dt::s8; }
int64_t src_elem_bytes(Kind k) { return k == Kind::f32 ? 4 : k == Kind::bf16 ? 2 : 1; }

// y:(M,N) = x:(M,K) · w:(K,N) [+ bias:(1,N)]; s8 writes s32 (scales applied by run()).
dnnl::matmul::primitive_desc make_pd(Kind kind, int64_t M, int64_t K, int64_t N) {
    const dt st = src_type(kind);
    dnnl::memory::desc x({M, K}, st, {K, 1});
    dnnl::memory::desc w({K, N}, st, dnnl::memory::format_tag::any);
    dnnl::memory::desc y({M, N}, kind == Kind::s8 ? dt::s32 : dt::f32, {N, 1});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (kind == Kind::s8) return dnnl::matmul::primitive_desc(dnnl::matmul::desc(x, w, y), attr, global().engine);
    dnnl::memory::desc b({1, N}, dt::f32, {N, 1});
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(x, w, b, y), attr, global().engine);
}

// Which buckets share the reference bucket's weight layout, and their scratchpads.
struct ShapePlan {
    bool ok = false;
    bool usable[kNumBuckets] = {};
    int smallest = -1, largest = -1;  // usable buckets
    int64_t scratchpad = 0;           // largest oneDNN scratchpad over usable buckets
    int64_t weight_bytes = 0;
    dnnl::memory::desc weights;
    // Column slices for few rows (see the header): n_slices > 1 when usable.
    int n_slices = 0;
    int64_t slice_col[kMaxContexts + 1] = {};        // boundaries, multiples of the N block
    int64_t slice_offset[kMaxContexts] = {};         // element offset of each slice's blocks
    bool slice_usable[kMaxContexts][kNumSliceBuckets] = {};
    dnnl::memory::desc slice_weights[kMaxContexts];  // the slice's own view of its blocks
};

int max_contexts() {
    static const int n = [] {
        const unsigned hc = std::thread::hardware_concurrency();
        return static_cast<int>(std::clamp<unsigned>(hc ? hc : 1, 1, kMaxContexts));
    }();
    return n;
}

// Whether `slice` (a primitive's own layout for a column slice) lays its blocks out as
// `full` does: same blocking and strides, no extra (compensation) data. Then the
// slice's weights are the full matrix's blocks from its first column on.
bool same_blocking(const dnnl::memory::desc& full, const dnnl::memory::desc& slice) {
    const dnnl_memory_desc_t& f = full.data;
    const dnnl_memory_desc_t& s = slice.data;
    if (f.format_kind != dnnl_blocked || s.format_kind != dnnl_blocked || f.data_type != s.data_type) return false;
    if (f.extra.flags != 0 || s.extra.flags != 0) return false;
    const dnnl_blocking_desc_t& fb = f.format_desc.blocking;
    const dnnl_blocking_desc_t& sb = s.format_desc.blocking;
    if (fb.inner_nblks != sb.inner_nblks || fb.strides[0] != sb.strides[0] || fb.strides[1] != sb.strides[1]) return false;
    for (int i = 0; i < fb.inner_nblks; ++i) {
        if (fb.inner_blks[i] != sb.inner_blks[i] || fb.inner_idxs[i] != sb.inner_idxs[i]) return false;
    }
    // The N blocks must be outermost: the stride between N blocks covers all of K.
    return fb.strides[1] >= fb.strides[0];
}

// Columns per N block of a blocked layout (1 if N is not blocked).
int64_t n_block(const dnnl::memory::desc& d) {
    const dnnl_blocking_desc_t& b = d.data.format_desc.blocking;
    int64_t nb = 1;
    for (int i = 0; i < b.inner_nblks; ++i) {
        if (b.inner_idxs[i] == 1) nb *= b.inner_blks[i];
    }
    return nb;
}

void plan_slices(Kind kind, int64_t K, int64_t N, ShapePlan* p) {
    p->n_slices = 0;
    const int S = max_contexts();
    if (S < 2 || p->weights.data.format_kind != dnnl_blocked) return;
    const int64_t nb = n_block(p->weights);
    const int64_t blocks = (N + nb - 1) / nb;
    if (blocks < 2) return;
    const int n = static_cast<int>(std::min<int64_t>(S, blocks));
    const int64_t stride_n = p->weights.data.format_desc.blocking.strides[1];
    for (int s = 0; s <= n; ++s) p->slice_col[s] = std::min(N, blocks * s / n * nb);
    for (int s = 0; s < n; ++s) {
        const int64_t c0 = p->slice_col[s], c1 = p->slice_col[s + 1];
        p->slice_offset[s] = c0 / nb * stride_n;
        for (int b = 0; b < kNumSliceBuckets; ++b) {
            auto pd = make_pd(kind, bucket_rows(b), K, c1 - c0);
            if (!same_blocking(p->weights, pd.weights_desc())) continue;
            p->slice_usable[s][b] = true;
            p->slice_weights[s] = pd.weights_desc();
            p->scratchpad = std::max(p->scratchpad, static_cast<int64_t>(pd.scratchpad_desc().get_size()));
        }
        bool any = false;
        for (int b = 0; b < kNumSliceBuckets; ++b) any = any || p->slice_usable[s][b];
        if (!any) return;
    }
    p->n_slices = n;
}

ShapePlan plan_shape(Kind kind, int64_t K, int64_t N) {
    ShapePlan p;
    if (!onednn_available()) return p;
    OneOmpThread one;
    try {
        // The layout is the one the largest bucket wants: the bucket that does most of the work.
        auto ref = make_pd(kind, bucket_rows(kNumBuckets - 1), K, N);
        p.weights = ref.weights_desc();
        p.weight_bytes = static_cast<int64_t>(p.weights.get_size());
        for (int b = 0; b < kNumBuckets; ++b) {
            auto pd = b == kNumBuckets - 1 ? ref : make_pd(kind, bucket_rows(b), K, N);
            if (pd.weights_desc() != p.weights) continue;
            p.usable[b] = true;
            if (p.smallest < 0) p.smallest = b;
            p.largest = b;
            p.scratchpad = std::max(p.scratchpad, static_cast<int64_t>(pd.scratchpad_desc().get_size()));
        }
        p.ok = p.smallest >= 0;
        if (p.ok) plan_slices(kind, K, N, &p);
    } catch (const dnnl::error&) {
        p.ok = false;
    }
    return p;
}

// Rows a staging buffer holds: at least the smallest usable bucket, at most what the
// chunk needs, otherwise kStagingBytes worth (a power of two, so whole buckets fit).
int64_t staging_rows(int64_t row_bytes, int64_t m_cap, int smallest) {
    int64_t rows = 1;
    while (rows * 2 * row_bytes <= kStagingBytes && rows * 2 <= m_cap) rows *= 2;
    return std::max(rows, bucket_rows(smallest));
}

struct PartLayout {
    int64_t scratchpad = 0, xbuf = 0, ybuf = 0, scales = 0, bytes = 0;
    int64_t x_rows = 0, y_rows = 0;
};

// Scratch of one part (one thread's rows) for up to M_max rows.
PartLayout part_layout(Kind kind, const ShapePlan& p, int64_t M_max, int64_t K, int64_t N) {
    PartLayout l;
    const int64_t cap = std::min<int64_t>(std::max<int64_t>(M_max, 1), bucket_rows(kNumBuckets - 1));
    l.x_rows = std::max(staging_rows(K * src_elem_bytes(kind), cap, p.smallest), bucket_rows(kNumSliceBuckets - 1));
    l.y_rows = std::max(staging_rows(N * 4, cap, p.smallest), bucket_rows(kNumSliceBuckets - 1));
    l.scratchpad = 0;
    l.xbuf = align_up(p.scratchpad, 64);
    l.ybuf = l.xbuf + align_up(l.x_rows * K * src_elem_bytes(kind), 64);
    l.scales = l.ybuf + align_up(l.y_rows * N * 4, 64);
    l.bytes = l.scales + align_up(l.x_rows * 4, 64);
    return l;
}

struct Context {
    dnnl::stream stream;
    dnnl::memory src, dst, bias, scratchpad;  // data handles set per call
};

struct State {
    bool ok = false;
    Kind kind = Kind::f32;
    int64_t K = 0, N = 0;
    ShapePlan plan;
    dnnl::matmul prim[kNumBuckets];
    dnnl::memory weights;
    dnnl::matmul slice_prim[kMaxContexts][kNumSliceBuckets];
    dnnl::memory slice_weights[kMaxContexts];
    Context ctx[kMaxContexts];
    int n_ctx = 0;
    const float* wscale = nullptr;  // s8: per output row
    const float* zeros = nullptr;   // f32/bf16: bias when the node has none
    std::string impl;
};

constexpr int64_t kStateBytes = align_up(static_cast<int64_t>(sizeof(State)), 64);

const State* state_of(const void* packed) { return static_cast<const State*>(packed); }

int64_t packed_bytes_for(Kind kind, int64_t N, int64_t K) {
    const ShapePlan p = plan_shape(kind, K, N);
    // State, reordered weights, per-row weight scales (s8) or a zero bias (f32/bf16).
    return kStateBytes + align_up(std::max<int64_t>(p.weight_bytes, 0), 64) + align_up(N * 4, 64);
}

// Weights (N,K) in `wt` -> the primitive's layout; s8 also computes per-row scales.
void pack_for(Kind kind, DType wt, const void* w, int64_t N, int64_t K, void* out) {
    State* st = new (out) State();
    st->kind = kind;
    st->K = K;
    st->N = N;
    st->plan = plan_shape(kind, K, N);
    if (!st->plan.ok) return;
    uint8_t* base = static_cast<uint8_t*>(out);
    uint8_t* wdata = base + kStateBytes;
    float* tail = reinterpret_cast<float*>(wdata + align_up(st->plan.weight_bytes, 64));
    OneOmpThread one;
    try {
        const dnnl::engine& eng = global().engine;
        dnnl::stream s(eng);
        // The source: (N,K) row-major is (K,N) with strides {1, K} ("ba").
        std::vector<uint8_t> plain(static_cast<size_t>(N * K * src_elem_bytes(kind)));
        std::vector<float> row(static_cast<size_t>(K));
        for (int64_t n = 0; n < N; ++n) {
            weights_row_to_f32(w, wt, K, n, row.data());
            if (kind == Kind::f32) {
                std::memcpy(plain.data() + n * K * 4, row.data(), static_cast<size_t>(K) * 4);
            } else if (kind == Kind::bf16) {
                uint16_t* d = reinterpret_cast<uint16_t*>(plain.data()) + n * K;
                for (int64_t k = 0; k < K; ++k) d[k] = f32_to_bf16(row[k]);
            } else {
                float amax = 0;
                for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(row[k]));
                const float d = amax / 127.0f, inv = d > 0 ? 1.0f / d : 0.0f;
                int8_t* q = reinterpret_cast<int8_t*>(plain.data()) + n * K;
                for (int64_t k = 0; k < K; ++k) q[k] = static_cast<int8_t>(std::lrint(row[k] * inv));
                tail[n] = d;
            }
        }
        dnnl::memory src({{K, N}, src_type(kind), {1, K}}, eng, plain.data());
        st->weights = dnnl::memory(st->plan.weights, eng, wdata);
        dnnl::reorder(src, st->weights).execute(s, src, st->weights);
        s.wait();
        for (int b = 0; b < kNumBuckets; ++b) {
            if (st->plan.usable[b]) st->prim[b] = dnnl::matmul(make_pd(kind, bucket_rows(b), K, N));
        }
        const int64_t esize = static_cast<int64_t>(dnnl::memory::data_type_size(src_type(kind)));
        for (int sl = 0; sl < st->plan.n_slices; ++sl) {
            const int64_t c0 = st->plan.slice_col[sl], c1 = st->plan.slice_col[sl + 1];
            for (int b = 0; b < kNumSliceBuckets; ++b) {
                if (st->plan.slice_usable[sl][b]) st->slice_prim[sl][b] = dnnl::matmul(make_pd(kind, bucket_rows(b), K, c1 - c0));
            }
            st->slice_weights[sl] = dnnl::memory(st->plan.slice_weights[sl], eng, wdata + st->plan.slice_offset[sl] * esize);
        }
        // Memory objects carry data pointers only: oneDNN takes the shapes of
        // non-runtime dimensions from the primitive, so one object of the largest
        // bucket's shape serves every bucket.
        const int64_t Mb = bucket_rows(st->plan.largest);
        st->n_ctx = max_contexts();
        for (int c = 0; c < st->n_ctx; ++c) {
            Context& cx = st->ctx[c];
            cx.stream = dnnl::stream(eng);
            cx.src = dnnl::memory({{Mb, K}, src_type(kind), {K, 1}}, eng, DNNL_MEMORY_NONE);
            cx.dst = dnnl::memory({{Mb, N}, kind == Kind::s8 ? dt::s32 : dt::f32, {N, 1}}, eng, DNNL_MEMORY_NONE);
            cx.bias = dnnl::memory({{1, N}, dt::f32, {N, 1}}, eng, DNNL_MEMORY_NONE);
            cx.scratchpad = dnnl::memory({{std::max<int64_t>(st->plan.scratchpad, 1)}, dt::u8, {1}}, eng, DNNL_MEMORY_NONE);
        }
        if (kind == Kind::s8) st->wscale = tail;
        else st->zeros = tail;  // the buffer arrives zeroed
        st->impl = make_pd(kind, Mb, K, N).impl_info_str();
        if (st->plan.n_slices > 1) st->impl += ", M<=8: " + std::to_string(st->plan.n_slices) + " column slices";
        st->ok = true;
    } catch (const dnnl::error&) {
        st->ok = false;
    }
}

void stage_rows(Kind kind, const MatmulArgs& a, int64_t r0, int64_t rows, int64_t rows_padded, uint8_t* xbuf,
                float* sx);

// Chunk of rows starting at row r: the largest usable bucket that fits the
// remaining rows and the staging buffers it goes through, or (fewer rows than the
// smallest usable bucket) that bucket, padded. A function of (r, M) only.
struct Chunk {
    int bucket = 0;
    int64_t rows = 0;
    bool padded = false;
};

Chunk chunk_at(const State& st, const MatmulArgs& a, const PartLayout& l, int64_t r) {
    const int64_t rem = a.M - r;
    const bool x_direct = st.kind == Kind::f32 && a.ldx == st.K;
    int64_t cap = bucket_rows(st.plan.largest);
    if (!x_direct) cap = std::min(cap, l.x_rows);
    if (a.ldy != st.N) cap = std::min(cap, l.y_rows);
    Chunk c;
    c.bucket = -1;
    for (int i = st.plan.largest; i >= 0; --i) {
        if (st.plan.usable[i] && bucket_rows(i) <= std::min(rem, cap)) {
            c.bucket = i;
            break;
        }
    }
    c.padded = c.bucket < 0;
    if (c.padded) c.bucket = st.plan.smallest;
    c.rows = std::min(bucket_rows(c.bucket), rem);
    return c;
}

// One chunk on context `cx` with `scratch` the part's region.
void run_chunk(const State& st, const MatmulArgs& a, const Context& cx, int64_t r, const Chunk& c, uint8_t* scratch,
               const PartLayout& l) {
    const int64_t K = st.K, N = st.N;
    uint8_t* xbuf = scratch + l.xbuf;
    float* ybuf = reinterpret_cast<float*>(scratch + l.ybuf);
    float* sx = reinterpret_cast<float*>(scratch + l.scales);
    const int64_t Mb = bucket_rows(c.bucket), rows = c.rows;
    const bool x_direct = st.kind == Kind::f32 && a.ldx == K;

    const void* src = a.x + r * a.ldx;
    if (!x_direct || c.padded) {
        stage_rows(st.kind, a, r, rows, Mb, xbuf, sx);
        src = xbuf;
    }
    const bool y_direct = a.ldy == N && !c.padded;
    float* dst = y_direct ? a.y + r * a.ldy : ybuf;

    dnnl_memory_set_data_handle(cx.src.get(), const_cast<void*>(src));
    dnnl_memory_set_data_handle(cx.dst.get(), dst);
    dnnl_memory_set_data_handle(cx.scratchpad.get(), scratch + l.scratchpad);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, cx.src.get()},
                               {DNNL_ARG_WEIGHTS, st.weights.get()},
                               {DNNL_ARG_DST, cx.dst.get()},
                               {DNNL_ARG_SCRATCHPAD, cx.scratchpad.get()},
                               {DNNL_ARG_BIAS, cx.bias.get()}};
    int nargs = 4;
    if (st.kind != Kind::s8) {
        dnnl_memory_set_data_handle(cx.bias.get(), const_cast<float*>(a.bias ? a.bias : st.zeros));
        nargs = 5;
    }
    dnnl_primitive_execute(st.prim[c.bucket].get(), cx.stream.get(), nargs, args);

    if (st.kind == Kind::s8) {
        // y = acc · sx[m] · sw[n] + bias[n], in place over the s32 result.
        for (int64_t i = 0; i < rows; ++i) {
            const int32_t* acc = reinterpret_cast<const int32_t*>(dst + i * N);
            float* yr = a.y + (r + i) * a.ldy;
            const float s = sx[i];
            if (a.bias) {
                for (int64_t n = 0; n < N; ++n) yr[n] = static_cast<float>(acc[n]) * (s * st.wscale[n]) + a.bias[n];
            } else {
                for (int64_t n = 0; n < N; ++n) yr[n] = static_cast<float>(acc[n]) * (s * st.wscale[n]);
            }
        }
    } else if (!y_direct) {
        for (int64_t i = 0; i < rows; ++i) std::memcpy(a.y + (r + i) * a.ldy, dst + i * N, static_cast<size_t>(N) * 4);
    }
}

// Part p of P: the chunks that start in rows [M·p/P, M·(p+1)/P).
void run_part(const State& st, const MatmulArgs& a, int p, int P, uint8_t* scratch, const PartLayout& l) {
    const int64_t lo = a.M * p / P, hi = a.M * (p + 1) / P;
    for (int64_t r = 0; r < a.M;) {
        const Chunk c = chunk_at(st, a, l, r);
        if (r >= lo && r < hi) run_chunk(st, a, st.ctx[p], r, c, scratch, l);
        r += c.rows;
    }
}

// Stages rows [0, M) of x in the primitive's source type into `xbuf` (rows up to
// `rows_padded` zeroed); s8 also writes the per-row scales to `sx`.
void stage_rows(Kind kind, const MatmulArgs& a, int64_t r0, int64_t rows, int64_t rows_padded, uint8_t* xbuf,
                float* sx) {
    const int64_t K = a.K, es = src_elem_bytes(kind);
#if defined(__x86_64__)
    // The same results, vectorized (ops/providers/onednn_stage_avx512.cpp).
    static const bool bf16_fast = isa_usable(Isa::avx512) && cpu_features().avx512bf16;
    static const bool s8_fast = isa_usable(Isa::avx512);
    if (kind == Kind::bf16 && bf16_fast) {
        onednn_stage_bf16_avx512(a.x + r0 * a.ldx, a.ldx, rows, K, reinterpret_cast<uint16_t*>(xbuf));
        if (rows < rows_padded) std::memset(xbuf + rows * K * es, 0, static_cast<size_t>((rows_padded - rows) * K * es));
        return;
    }
    if (kind == Kind::s8 && s8_fast) {
        onednn_stage_s8_avx512(a.x + r0 * a.ldx, a.ldx, rows, K, reinterpret_cast<int8_t*>(xbuf), sx);
        if (rows < rows_padded) std::memset(xbuf + rows * K * es, 0, static_cast<size_t>((rows_padded - rows) * K * es));
        return;
    }
#endif
    for (int64_t i = 0; i < rows; ++i) {
        const float* xr = a.x + (r0 + i) * a.ldx;
        if (kind == Kind::f32) {
            std::memcpy(xbuf + i * K * 4, xr, static_cast<size_t>(K) * 4);
        } else if (kind == Kind::bf16) {
            uint16_t* d = reinterpret_cast<uint16_t*>(xbuf) + i * K;
            for (int64_t k = 0; k < K; ++k) d[k] = f32_to_bf16(xr[k]);
        } else {
            float amax = 0;
            for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(xr[k]));
            const float d = amax / 127.0f, inv = d > 0 ? 1.0f / d : 0.0f;
            int8_t* q = reinterpret_cast<int8_t*>(xbuf) + i * K;
            for (int64_t k = 0; k < K; ++k) q[k] = static_cast<int8_t>(std::lrint(xr[k] * inv));
            sx[i] = d;
        }
    }
    if (rows < rows_padded) std::memset(xbuf + rows * K * es, 0, static_cast<size_t>((rows_padded - rows) * K * es));
}

// Few rows, columns split across threads (see the header): part 0's staging holds
// the converted rows; slice s uses context s and part s's scratch for its dense output.
void run_slices(const State& st, const MatmulArgs& a, ThreadPool* pool, uint8_t* scratch, const PartLayout& l) {
    const int64_t K = st.K, N = st.N, M = a.M;
    int b = 0;
    while (bucket_rows(b) < M) ++b;
    // Each slice runs its smallest usable bucket >= M (a slice whose layout changes
    // at small M, like int8's VNNI-vs-AMX, pads up); the staged rows cover the largest.
    int chosen[kMaxContexts];
    int bmax = b;
    for (int sl = 0; sl < st.plan.n_slices; ++sl) {
        int bb = b;
        while (!st.plan.slice_usable[sl][bb]) ++bb;  // a usable bucket >= M exists: run() checked
        chosen[sl] = bb;
        bmax = std::max(bmax, bb);
    }
    const int64_t Mb = bucket_rows(bmax);
    uint8_t* xbuf = scratch + l.xbuf;
    float* sx = reinterpret_cast<float*>(scratch + l.scales);
    const void* src = a.x;
    if (st.kind != Kind::f32 || a.ldx != K || Mb != M) {
        stage_rows(st.kind, a, 0, M, Mb, xbuf, sx);
        src = xbuf;
    }
    auto body = [&](int64_t s0, int64_t s1, int) {
        for (int64_t sl = s0; sl < s1; ++sl) {
            const int64_t c0 = st.plan.slice_col[sl], c1 = st.plan.slice_col[sl + 1], ns = c1 - c0;
            const int bb = chosen[sl];
            uint8_t* part = scratch + sl * l.bytes;
            float* dst = reinterpret_cast<float*>(part + l.ybuf);
            const Context& cx = st.ctx[sl];
            dnnl_memory_set_data_handle(cx.src.get(), const_cast<void*>(src));
            dnnl_memory_set_data_handle(cx.dst.get(), dst);
            dnnl_memory_set_data_handle(cx.scratchpad.get(), part + l.scratchpad);
            dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, cx.src.get()},
                                       {DNNL_ARG_WEIGHTS, st.slice_weights[sl].get()},
                                       {DNNL_ARG_DST, cx.dst.get()},
                                       {DNNL_ARG_SCRATCHPAD, cx.scratchpad.get()},
                                       {DNNL_ARG_BIAS, cx.bias.get()}};
            int nargs = 4;
            if (st.kind != Kind::s8) {
                dnnl_memory_set_data_handle(cx.bias.get(), const_cast<float*>((a.bias ? a.bias : st.zeros) + c0));
                nargs = 5;
            }
            dnnl_primitive_execute(st.slice_prim[sl][bb].get(), cx.stream.get(), nargs, args);
            for (int64_t i = 0; i < M; ++i) {
                float* yr = a.y + i * a.ldy + c0;
                if (st.kind == Kind::s8) {
                    const int32_t* acc = reinterpret_cast<const int32_t*>(dst) + i * ns;
                    const float s = sx[i];
                    const float* ws = st.wscale + c0;
                    if (a.bias) {
                        for (int64_t n = 0; n < ns; ++n) yr[n] = static_cast<float>(acc[n]) * (s * ws[n]) + a.bias[c0 + n];
                    } else {
                        for (int64_t n = 0; n < ns; ++n) yr[n] = static_cast<float>(acc[n]) * (s * ws[n]);
                    }
                } else {
                    std::memcpy(yr, dst + i * ns, static_cast<size_t>(ns) * 4);
                }
            }
        }
    };
    if (pool && pool->n_threads() > 1) pool->parallel_for(st.plan.n_slices, body);
    else body(0, st.plan.n_slices, 0);
    (void)N;
}

void run_for(const MatmulArgs& a, ThreadPool* pool) {
    const State& st = *state_of(a.packed);
    if (!st.ok) {
        matmul_ref(a, pool);  // the library refused this shape at pack time (never seen on x86-64)
        return;
    }
    if (a.M <= 0) return;
    const int T = pool ? pool->n_threads() : 1;
    const PartLayout l = part_layout(st.kind, st.plan, a.M, st.K, st.N);
    if (st.plan.n_slices > 1 && a.M <= bucket_rows(kNumSliceBuckets - 1)) {
        int b = 0;
        while (bucket_rows(b) < a.M) ++b;
        bool ok = true;
        for (int sl = 0; sl < st.plan.n_slices && ok; ++sl) {
            bool any = false;
            for (int bb = b; bb < kNumSliceBuckets; ++bb) any = any || st.plan.slice_usable[sl][bb];
            ok = any;
        }
        if (ok) {
            run_slices(st, a, pool, static_cast<uint8_t*>(a.scratch), l);
            return;
        }
    }
    // One part per thread (at most one per context); part p uses scratch region p.
    const int P = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(T, st.n_ctx)));
    auto body = [&](int64_t p0, int64_t p1, int) {
        for (int64_t p = p0; p < p1; ++p) {
            run_part(st, a, static_cast<int>(p), P, static_cast<uint8_t*>(a.scratch) + p * l.bytes, l);
        }
    };
    if (pool && P > 1) pool->parallel_for(P, body);
    else body(0, P, 0);
}

int64_t scratch_for(Kind kind, int64_t M_max, int64_t K, int64_t N, int n_threads) {
    const ShapePlan p = plan_shape(kind, K, N);
    if (!p.ok) return 0;
    const int parts = std::max({1, std::min(n_threads, max_contexts()), p.n_slices});
    return parts * part_layout(kind, p, M_max, K, N).bytes;
}

bool supports_any(int64_t, int64_t K, int64_t N) { return K >= 1 && N >= 1; }

template <Kind kind>
int64_t packed_bytes_k(int64_t N, int64_t K) { return packed_bytes_for(kind, N, K); }
template <Kind kind, DType wt>
void pack_k(const void* w, int64_t N, int64_t K, void* out) { pack_for(kind, wt, w, N, K, out); }
template <Kind kind>
int64_t scratch_k(int64_t M_max, int64_t K, int64_t N, int n_threads) { return scratch_for(kind, M_max, K, N, n_threads); }

}  // namespace

std::string onednn_describe(const void* packed) {
    const State& st = *state_of(packed);
    return st.ok ? st.impl : std::string("unavailable (reference fallback)");
}

std::string onednn_version() {
    const dnnl_version_t* v = dnnl_version();
    return "onednn " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
           " (cpu runtime " + (v->cpu_runtime == DNNL_RUNTIME_OMP ? "omp" : "other") + ", primitives single-threaded)";
}

#define GLIMPSE_ONEDNN_ENTRY(symbol, kernel_name, level, wt, kind, acts)                                       \
    extern const MatmulKernel symbol;                                                                            \
    const MatmulKernel symbol = {.name = kernel_name, .isa = level, .w_type = wt,                                \
                                 .priority = KernelPriority::decisions_only, .activations = acts,                \
                                 .supports = supports_any, .packed_bytes = packed_bytes_k<kind>,                 \
                                 .pack = pack_k<kind, wt>, .scratch_bytes = scratch_k<kind>, .run = run_for,     \
                                 .available = onednn_available};

GLIMPSE_ONEDNN_ENTRY(kOnednnF32, "onednn_f32__avx2", Isa::avx2, DType::f32, Kind::f32, MatmulActivations::f32)
GLIMPSE_ONEDNN_ENTRY(kOnednnF32F16w, "onednn_f32_f16w__avx2", Isa::avx2, DType::f16, Kind::f32, MatmulActivations::f32)
GLIMPSE_ONEDNN_ENTRY(kOnednnBf16, "onednn_bf16__avx512", Isa::avx512, DType::bf16, Kind::bf16, MatmulActivations::bf16)
GLIMPSE_ONEDNN_ENTRY(kOnednnBf16F16w, "onednn_bf16_f16w__avx512", Isa::avx512, DType::f16, Kind::bf16,
                     MatmulActivations::bf16_bf16w)
GLIMPSE_ONEDNN_ENTRY(kOnednnS8F16w, "onednn_s8_f16w__avx512", Isa::avx512, DType::f16, Kind::s8,
                     MatmulActivations::s8_row_s8w)
GLIMPSE_ONEDNN_ENTRY(kOnednnS8F32w, "onednn_s8_f32w__avx512", Isa::avx512, DType::f32, Kind::s8,
                     MatmulActivations::s8_row_s8w)

}  // namespace glimpse

#endif  // GLIMPSE_HAVE_ONEDNN
