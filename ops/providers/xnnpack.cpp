// XNNPACK matmul provider (Debian's libxnnpack 0.0~git20220216): f32 fully-connected.
//
//   x:(M,K) f32 · W:(N,K)ᵀ -> y:(M,N) f32, W f32 as stored or f16 widened at pack time.
//
// XNNPACK picks its own micro-kernels (SSE .. AVX-512 on x86, NEON on ARM), so the
// entry needs no glimpse ISA level and is the one provider usable on every board.
//
// Packing. pack() creates the operators (XNNPACK repacks the weights inside
// xnn_create_fully_connected_nc_f32). The process-wide allocator given to
// xnn_initialize hands out memory from the packed buffer while pack() runs, so the
// operators and XNNPACK's packed weights live in glimpse's packed buffer: counted in
// the plan's packed bytes and freed with it (no xnn_delete_operator is needed).
//
// Threads. One operator per column slice: S = hardware threads (at most 16) slices of
// N, each with output stride N writing its own columns of y. run() hands slices to
// glimpse's ThreadPool threads and runs each operator with no pthreadpool (XNNPACK
// then runs inline on the calling thread), so M = 1 uses every thread too.
//
// Bias. The bias is an argument of run(), not of pack(), while XNNPACK binds it at
// creation: the operators are created without bias and run() adds it over each
// 64-row chunk right after XNNPACK wrote it (the chunk is still in cache).
//
// XNNPACK may read up to XNN_EXTRA_BYTES past its input; the last row of x is
// therefore staged through scratch with that much padding.
//
// Quantized: the 2022 API has only statically quantized qs8/qu8 fully-connected
// operators (input scale and zero point fixed at creation, int8 output with a fixed
// scale), which cannot serve dynamic f32 activations; there is no qd8 (dynamically
// quantized) operator before 2023. So this provider is f32 only.
#if defined(GLIMPSE_HAVE_XNNPACK)

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if __has_include(<pthreadpool.h>)
#include <xnnpack.h>
#else
// Debian ships xnnpack.h, which includes <pthreadpool.h>, but pthreadpool's header
// lives in libpthreadpool-dev, which libxnnpack-dev does not pull in. The few
// declarations used here, as in xnnpack.h (ABI: plain C, enum as int, opaque handles).
extern "C" {
typedef struct pthreadpool* pthreadpool_t;
typedef struct xnn_operator* xnn_operator_t;
enum xnn_status {
    xnn_status_success = 0,
    xnn_status_uninitialized = 1,
    xnn_status_invalid_parameter = 2,
    xnn_status_invalid_state = 3,
    xnn_status_unsupported_parameter = 4,
    xnn_status_unsupported_hardware = 5,
    xnn_status_out_of_memory = 6,
};
struct xnn_allocator {
    void* context;
    void* (*allocate)(void* context, size_t size);
    void* (*reallocate)(void* context, void* pointer, size_t size);
    void (*deallocate)(void* context, void* pointer);
    void* (*aligned_allocate)(void* context, size_t alignment, size_t size);
    void (*aligned_deallocate)(void* context, void* pointer);
};
#define XNN_EXTRA_BYTES 16
enum xnn_status xnn_initialize(const struct xnn_allocator* allocator);
enum xnn_status xnn_create_fully_connected_nc_f32(size_t input_channels, size_t output_channels, size_t input_stride,
                                                  size_t output_stride, const float* kernel, const float* bias,
                                                  float output_min, float output_max, uint32_t flags,
                                                  xnn_operator_t* fully_connected_op_out);
enum xnn_status xnn_setup_fully_connected_nc_f32(xnn_operator_t fully_connected_op, size_t batch_size,
                                                 const float* input, float* output, pthreadpool_t threadpool);
enum xnn_status xnn_run_operator(xnn_operator_t op, pthreadpool_t threadpool);
}
#endif

#include "ops/matmul.h"
#include "ops/weights.h"
#include "runtime/aligned_buffer.h"

namespace glimpse {

namespace {

constexpr int kMaxSlices = 16;
constexpr int64_t kSliceAlign = 16;   // columns; XNNPACK's widest f32 tile on x86 (nr = 16)
constexpr int64_t kChunkRows = 64;    // rows per setup/run, so the bias pass finds y in cache
constexpr size_t kHeader = 64;        // bytes before every pointer this allocator returns

// ---------------------------------------------------------------------------
// Allocator: a bump arena over the packed buffer while pack() runs on this thread,
// malloc otherwise. Every block has a header (its size, whether it is in an arena),
// so free/realloc work for both kinds.

struct Arena {
    uint8_t* cur = nullptr;
    uint8_t* end = nullptr;
    int64_t overflow = 0;  // bytes that did not fit (went to malloc)
};
thread_local Arena* t_arena = nullptr;

struct BlockHeader {
    uint64_t size;
    uint64_t in_arena;
    void* base;  // what to free for malloc'd blocks
};

void* xa_aligned_allocate(void*, size_t alignment, size_t size) {
    alignment = std::max<size_t>(alignment, 16);
    const size_t header = std::max(kHeader, alignment);
    if (Arena* a = t_arena) {
        uintptr_t p = reinterpret_cast<uintptr_t>(a->cur) + header;
        p = (p + alignment - 1) / alignment * alignment;
        if (p + size <= reinterpret_cast<uintptr_t>(a->end)) {
            a->cur = reinterpret_cast<uint8_t*>(p + size);
            auto* h = reinterpret_cast<BlockHeader*>(p - sizeof(BlockHeader));
            *h = {size, 1, nullptr};
            return reinterpret_cast<void*>(p);
        }
        a->overflow += static_cast<int64_t>(size);
    }
    uint8_t* base = static_cast<uint8_t*>(std::malloc(size + header + alignment));
    if (!base) return nullptr;
    uintptr_t p = reinterpret_cast<uintptr_t>(base) + header;
    p = (p + alignment - 1) / alignment * alignment;
    auto* h = reinterpret_cast<BlockHeader*>(p - sizeof(BlockHeader));
    *h = {size, 0, base};
    return reinterpret_cast<void*>(p);
}
void xa_deallocate(void*, void* p) {
    if (!p) return;
    const auto* h = reinterpret_cast<const BlockHeader*>(static_cast<uint8_t*>(p) - sizeof(BlockHeader));
    if (!h->in_arena) std::free(h->base);
}
void* xa_allocate(void* c, size_t size) { return xa_aligned_allocate(c, 16, size); }
void* xa_reallocate(void* c, void* p, size_t size) {
    void* q = xa_aligned_allocate(c, 16, size);
    if (q && p) {
        const auto* h = reinterpret_cast<const BlockHeader*>(static_cast<uint8_t*>(p) - sizeof(BlockHeader));
        std::memcpy(q, p, std::min<size_t>(size, h->size));
        xa_deallocate(c, p);
    }
    return q;
}

bool xnnpack_available() {
    static const bool ok = [] {
        static const xnn_allocator alloc = {nullptr,        xa_allocate,          xa_reallocate,
                                            xa_deallocate, xa_aligned_allocate, xa_deallocate};
        return xnn_initialize(&alloc) == xnn_status_success;
    }();
    return ok;
}

// ---------------------------------------------------------------------------

int slices_for(int64_t N) {
    static const int hw = [] {
        const unsigned hc = std::thread::hardware_concurrency();
        return static_cast<int>(std::clamp<unsigned>(hc ? hc : 1, 1, kMaxSlices));
    }();
    const int64_t by_cols = (N + kSliceAlign - 1) / kSliceAlign;
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(hw, by_cols)));
}

void slice_cols(int64_t N, int S, int s, int64_t* n0, int64_t* n1) {
    auto at = [&](int i) { return i == S ? N : std::min(N, N * i / S / kSliceAlign * kSliceAlign); };
    *n0 = at(s);
    *n1 = at(s + 1);
}

struct State {
    bool ok = false;
    int64_t K = 0, N = 0;
    int S = 0;
    xnn_operator_t op[kMaxSlices] = {};
    int64_t n0[kMaxSlices + 1] = {};
    int64_t arena_overflow = 0;
};

constexpr int64_t kStateBytes = align_up(static_cast<int64_t>(sizeof(State)), 64);

// XNNPACK's packed f32 weights: columns padded to its tile width (at most 16 here,
// 64 leaves room), K plus one row of bias per column, plus the operator struct.
int64_t arena_bytes(int64_t N, int64_t K) {
    const int S = slices_for(N);
    return S * (int64_t{64} << 10) + (align_up(N, 64) + S * 64) * (K + 8) * 4;
}

int64_t packed_bytes_x(int64_t N, int64_t K) { return kStateBytes + arena_bytes(N, K); }

void pack_x(DType wt, const void* w, int64_t N, int64_t K, void* out) {
    State* st = new (out) State();
    st->K = K;
    st->N = N;
    st->S = slices_for(N);
    if (!xnnpack_available()) return;
    Arena arena;
    arena.cur = static_cast<uint8_t*>(out) + kStateBytes;
    arena.end = arena.cur + arena_bytes(N, K);
    t_arena = &arena;
    // XNNPACK reads the kernel while packing; give it f32 rows with padding.
    std::vector<float> wf(static_cast<size_t>(N * K) + XNN_EXTRA_BYTES / sizeof(float));
    for (int64_t n = 0; n < N; ++n) weights_row_to_f32(w, wt, K, n, wf.data() + n * K);
    bool ok = true;
    for (int s = 0; s < st->S && ok; ++s) {
        int64_t n0, n1;
        slice_cols(N, st->S, s, &n0, &n1);
        st->n0[s] = n0;
        st->n0[s + 1] = n1;
        ok = xnn_create_fully_connected_nc_f32(static_cast<size_t>(K), static_cast<size_t>(n1 - n0),
                                               static_cast<size_t>(K), static_cast<size_t>(N), wf.data() + n0 * K,
                                               nullptr, -INFINITY, INFINITY, 0, &st->op[s]) == xnn_status_success;
    }
    t_arena = nullptr;
    st->arena_overflow = arena.overflow;
    st->ok = ok;
}

// Scratch: the last row of x, padded (per slice, since slices run concurrently),
// and staging for strided x / y (tests; the plan's rows are dense).
struct Layout {
    int64_t last_row = 0, xbuf = 0, ybuf = 0, per_slice = 0;
};
Layout layout(int64_t K, int64_t N) {
    Layout l;
    l.last_row = 0;
    l.xbuf = align_up(K * 4 + XNN_EXTRA_BYTES, 64);
    l.ybuf = l.xbuf + align_up(kChunkRows * K * 4 + XNN_EXTRA_BYTES, 64);
    l.per_slice = l.ybuf + align_up(kChunkRows * N * 4, 64);
    return l;
}

int64_t scratch_x(int64_t, int64_t K, int64_t N, int) { return slices_for(N) * layout(K, N).per_slice; }

void run_slice(const State& st, const MatmulArgs& a, int s, uint8_t* scratch, const Layout& l) {
    const int64_t K = st.K, N = st.N, n0 = st.n0[s], n1 = st.n0[s + 1];
    float* last = reinterpret_cast<float*>(scratch + l.last_row);
    float* xbuf = reinterpret_cast<float*>(scratch + l.xbuf);
    float* ybuf = reinterpret_cast<float*>(scratch + l.ybuf);
    for (int64_t r = 0; r < a.M; r += kChunkRows) {
        const int64_t rows = std::min(kChunkRows, a.M - r);
        const bool has_last = r + rows == a.M;
        // Rows XNNPACK reads straight from x (all but the last of the call) ...
        const float* src = a.x + r * a.ldx;
        int64_t direct = has_last ? rows - 1 : rows;
        if (a.ldx != K) {
            for (int64_t i = 0; i < direct; ++i) std::memcpy(xbuf + i * K, a.x + (r + i) * a.ldx, K * 4);
            src = xbuf;
        }
        const bool y_direct = a.ldy == N;
        float* dst = y_direct ? a.y + r * a.ldy + n0 : ybuf + n0;
        if (direct > 0) {
            xnn_setup_fully_connected_nc_f32(st.op[s], static_cast<size_t>(direct), src, dst, nullptr);
            xnn_run_operator(st.op[s], nullptr);
        }
        // ... and the last one from a padded copy.
        if (has_last) {
            std::memcpy(last, a.x + (a.M - 1) * a.ldx, K * 4);
            xnn_setup_fully_connected_nc_f32(st.op[s], 1, last, dst + direct * N, nullptr);
            xnn_run_operator(st.op[s], nullptr);
        }
        for (int64_t i = 0; i < rows; ++i) {
            float* yr = a.y + (r + i) * a.ldy;
            if (!y_direct) std::memcpy(yr + n0, ybuf + i * N + n0, (n1 - n0) * 4);
            if (a.bias) {
                for (int64_t n = n0; n < n1; ++n) yr[n] += a.bias[n];
            }
        }
    }
}

void run_x(const MatmulArgs& a, ThreadPool* pool) {
    const State& st = *static_cast<const State*>(a.packed);
    if (!st.ok) {
        matmul_ref(a, pool);
        return;
    }
    if (a.M <= 0) return;
    const Layout l = layout(st.K, st.N);
    auto body = [&](int64_t s0, int64_t s1, int) {
        for (int64_t s = s0; s < s1; ++s) {
            run_slice(st, a, static_cast<int>(s), static_cast<uint8_t*>(a.scratch) + s * l.per_slice, l);
        }
    };
    if (pool && st.S > 1) pool->parallel_for(st.S, body);
    else body(0, st.S, 0);
}

template <DType wt>
void pack_k(const void* w, int64_t N, int64_t K, void* out) { pack_x(wt, w, N, K, out); }

}  // namespace

std::string xnnpack_describe(const void* packed) {
    const State& st = *static_cast<const State*>(packed);
    if (!st.ok) return "unavailable (reference fallback)";
    std::string s = "xnnpack f32 gemm, " + std::to_string(st.S) + " column slice(s)";
    if (st.arena_overflow) s += ", " + std::to_string(st.arena_overflow) + " bytes outside the packed buffer";
    return s;
}

// XNNPACK is usable on any CPU of either architecture: Isa::scalar.
extern const MatmulKernel kXnnpackF32, kXnnpackF32F16w;
const MatmulKernel kXnnpackF32 = {
    .name = "xnnpack_f32__scalar", .isa = Isa::scalar, .w_type = DType::f32,
    .priority = KernelPriority::decisions_only, .activations = MatmulActivations::f32,
    .packed_bytes = packed_bytes_x, .pack = pack_k<DType::f32>, .scratch_bytes = scratch_x, .run = run_x,
    .available = xnnpack_available};
const MatmulKernel kXnnpackF32F16w = {
    .name = "xnnpack_f32_f16w__scalar", .isa = Isa::scalar, .w_type = DType::f16,
    .priority = KernelPriority::decisions_only, .activations = MatmulActivations::f32,
    .packed_bytes = packed_bytes_x, .pack = pack_k<DType::f16>, .scratch_bytes = scratch_x, .run = run_x,
    .available = xnnpack_available};

}  // namespace glimpse

#endif  // GLIMPSE_HAVE_XNNPACK
