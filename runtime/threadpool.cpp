#include "runtime/threadpool.h"

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>

#if defined(__linux__)
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace glimpse {

namespace {

// How long an idle thread spins before it sleeps. Loops of a decode step come a few
// microseconds apart, and a futex wake-up costs about as much as a short loop, so
// workers spin across those gaps; 100 µs is short enough that a pool waiting for
// the next token or image gives its cores back to other processes almost at once.
// Measured (smolvlm-256m f16, -t 2, 2 CPUs, tok/s idle | with one busy process):
// 0 µs 39-40 | 28-29, 20 µs 52-54 | 31, 100 µs 58-59 | 30-32, 1000 µs 59 | 28.
constexpr auto kSpinTime = std::chrono::microseconds(100);

constexpr uint32_t kClosed = 0xffffffffu;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Spins until pred() or kSpinTime passes; returns pred()'s last value.
template <class Pred>
bool spin_until(const Pred& pred) {
    const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
    for (unsigned i = 1;; ++i) {
        if (pred()) return true;
        cpu_relax();
        // the clock every 64 pauses (~0.5-5 µs): cheap next to the pauses themselves
        if ((i & 63) == 0 && std::chrono::steady_clock::now() >= deadline) return pred();
    }
}

// Sleeps while `word` holds `expected` (spurious returns are fine: callers re-check).
inline void futex_wait(std::atomic<uint32_t>& word, uint32_t expected) {
#if defined(__linux__)
    static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
#else
    word.wait(expected, std::memory_order_seq_cst);
#endif
}

inline void futex_wake(std::atomic<uint32_t>& word, int count) {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
#else
    if (count == 1) word.notify_one();
    else word.notify_all();
#endif
}

}  // namespace

int cgroup_cpu_max_limit(const std::string& text) {
    // Two decimal integers separated by a space, optional trailing newline; nothing else.
    size_t pos = 0;
    auto number = [&](uint64_t* out) {
        const size_t start = pos;
        uint64_t v = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
            if (v > (UINT64_MAX - 9) / 10) return false;
            v = v * 10 + static_cast<uint64_t>(text[pos++] - '0');
        }
        *out = v;
        return pos > start;
    };
    uint64_t quota = 0, period = 0;
    if (!number(&quota)) return 0;  // "max" (no limit) or garbage
    if (pos >= text.size() || text[pos] != ' ') return 0;
    ++pos;
    if (!number(&period)) return 0;
    if (pos < text.size() && text[pos] == '\n') ++pos;
    if (pos != text.size() || quota == 0 || period == 0) return 0;
    const uint64_t cpus = quota / period + (quota % period != 0 ? 1 : 0);
    return cpus >= static_cast<uint64_t>(INT_MAX) ? INT_MAX : static_cast<int>(cpus);
}

namespace {

#if defined(__linux__)
// The smallest cpu.max limit of this process's cgroup v2 and its ancestors (each level caps its
// children), 0 when none is set or cgroup v2 is not mounted at /sys/fs/cgroup.
int cgroup_cpu_limit() {
    std::string cgroup;  // "/user.slice/..." from the "0::PATH" line of /proc/self/cgroup
    if (std::FILE* f = std::fopen("/proc/self/cgroup", "re")) {
        char line[4096];
        while (std::fgets(line, sizeof line, f)) {
            if (std::strncmp(line, "0::", 3) == 0) {
                cgroup = line + 3;
                while (!cgroup.empty() && (cgroup.back() == '\n' || cgroup.back() == '/')) cgroup.pop_back();
                break;
            }
        }
        std::fclose(f);
    }
    int limit = 0;
    for (;;) {
        // Under a cgroup namespace (containers) PATH is relative to the namespace's root, which is
        // what /sys/fs/cgroup shows there; the root itself has no cpu.max.
        const std::string file = "/sys/fs/cgroup" + cgroup + "/cpu.max";
        if (std::FILE* f = std::fopen(file.c_str(), "re")) {
            char text[128] = {};
            const size_t n = std::fread(text, 1, sizeof text - 1, f);
            std::fclose(f);
            const int here = cgroup_cpu_max_limit(std::string(text, n));
            if (here > 0 && (limit == 0 || here < limit)) limit = here;
        }
        const size_t parent = cgroup.rfind('/');
        if (cgroup.empty() || parent == std::string::npos) break;
        cgroup.erase(parent);
    }
    return limit;
}
#endif

int affinity_cpu_count() {
#if defined(__linux__)
    // A fixed cpu_set_t holds 1024 CPUs; larger machines need a bigger set (EINVAL).
    for (int cpus = CPU_SETSIZE; cpus <= (1 << 16); cpus *= 2) {
        cpu_set_t* set = CPU_ALLOC(cpus);
        if (!set) break;
        const size_t bytes = CPU_ALLOC_SIZE(cpus);
        CPU_ZERO_S(bytes, set);
        const int rc = sched_getaffinity(0, bytes, set);
        const int count = rc == 0 ? CPU_COUNT_S(bytes, set) : 0;
        CPU_FREE(set);
        if (count > 0) return count;
        if (rc != 0 && errno != EINVAL) break;
    }
#endif
    const unsigned hw = std::thread::hardware_concurrency();
    return hw > 0 && hw < INT_MAX ? static_cast<int>(hw) : 1;
}

}  // namespace

int usable_cpu_count() {
    const int cpus = affinity_cpu_count();
#if defined(__linux__)
    const int quota = cgroup_cpu_limit();
    if (quota > 0 && quota < cpus) return quota;
#endif
    return cpus;
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads < 1 ? 1 : n_threads), cpu_limit_(usable_cpu_count()) {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
    stop_.store(true, std::memory_order_seq_cst);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    futex_wake(epoch_, INT_MAX);
    for (std::thread& t : workers_) t.join();
}

int ThreadPool::awake_threads() const {
    return n_threads_ - sleepers_.load(std::memory_order_seq_cst);  // the caller + workers not asleep
}

void ThreadPool::maybe_wake_one() {
    if (sleepers_.load(std::memory_order_seq_cst) > 0 && awake_threads() < cpu_limit_) futex_wake(epoch_, 1);
}

void ThreadPool::work(int thread) {
    // The acquire load pairs with run()'s release store of the new epoch, so the
    // parameters read below are those of this epoch or of a later one; a later one
    // is only written after this epoch is closed, and then the claim below fails.
    uint64_t s = state_.load(std::memory_order_acquire);
    const uint64_t epoch_bits = s & ~uint64_t{0xffffffffu};
    const int64_t n = job_n_.load(std::memory_order_relaxed);
    const uint32_t chunks = job_chunks_.load(std::memory_order_relaxed);
    const Trampoline tramp = job_tramp_.load(std::memory_order_relaxed);
    const void* fn = job_fn_.load(std::memory_order_relaxed);
    while (true) {
        if ((s & ~uint64_t{0xffffffffu}) != epoch_bits) return;  // a newer loop: rejoin from the top
        const uint32_t c = static_cast<uint32_t>(s);
        if (c >= chunks) return;  // all claimed (or closed)
        // acq_rel: the release half orders this thread's reads of the parameters
        // before run()'s closing exchange (which acquires), so they cannot see the
        // next loop's writes.
        if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
        if (c + 1 < chunks) maybe_wake_one();  // more left: another awake thread may help
        int64_t begin, end;
        chunk(n, static_cast<int>(c), static_cast<int>(chunks), &begin, &end);
        tramp(fn, begin, end, thread);
        // seq_cst with caller_sleeping_ (store-then-load on both sides): either the
        // caller sees every chunk done, or this thread sees it asleep and wakes it.
        if (done_.fetch_add(1, std::memory_order_seq_cst) + 1 == chunks &&
            caller_sleeping_.load(std::memory_order_seq_cst)) {
            futex_wake(done_, 1);
        }
        s = state_.load(std::memory_order_acquire);
    }
}

void ThreadPool::run(int64_t n, Trampoline tramp, const void* fn) {
    // Chunks for the threads that can run at once: with -t above the CPU count, more,
    // smaller chunks would only add per-chunk work (measured: -t 4 on 2 CPUs decoded
    // 57 tok/s with chunks for 4 threads, 71 with chunks for 2; -t 2: 63).
    const uint32_t chunks = static_cast<uint32_t>(chunk_count(n, n_threads_ < cpu_limit_ ? n_threads_ : cpu_limit_));
    // The previous epoch is closed (see the end of this function), so no worker can
    // claim with these parameters until the new epoch is published.
    job_n_.store(n, std::memory_order_relaxed);
    job_chunks_.store(chunks, std::memory_order_relaxed);
    job_tramp_.store(tramp, std::memory_order_relaxed);
    job_fn_.store(fn, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    const uint64_t epoch_bits = (state_.load(std::memory_order_relaxed) & ~uint64_t{0xffffffffu}) + (uint64_t{1} << 32);
    state_.store(epoch_bits, std::memory_order_release);  // epoch + 1, chunk 0
    // seq_cst with a worker's sleepers_ increment then epoch_ load: either it sees
    // the new epoch and does not sleep, or this thread sees it as a sleeper.
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    maybe_wake_one();

    work(0);  // returns once every chunk is claimed

    // Close the epoch before the next loop's parameters are written. The exchange
    // reads the last successful claim, so it synchronises with every claim of this
    // epoch (all are read-modify-writes), see work().
    state_.exchange(epoch_bits | kClosed, std::memory_order_acq_rel);

    // Wait for chunks that other threads are still running.
    auto all_done = [&] { return done_.load(std::memory_order_acquire) == chunks; };
    if (all_done() || spin_until(all_done)) return;
    while (true) {
        caller_sleeping_.store(1, std::memory_order_seq_cst);
        const uint32_t d = done_.load(std::memory_order_seq_cst);
        if (d == chunks) break;
        futex_wait(done_, d);
    }
    caller_sleeping_.store(0, std::memory_order_relaxed);
}

void ThreadPool::worker_main(int index) {
    uint32_t seen = 0;
    while (true) {
        uint32_t e = epoch_.load(std::memory_order_acquire);
        // Spin only while no more threads are awake than there are CPUs to run them:
        // with -t above the CPU count the extra workers sleep until woken.
        if (e == seen && awake_threads() <= cpu_limit_) {
            spin_until([&] { return (e = epoch_.load(std::memory_order_acquire)) != seen; });
        }
        while (e == seen) {
            sleepers_.fetch_add(1, std::memory_order_seq_cst);
            e = epoch_.load(std::memory_order_seq_cst);
            if (e == seen) futex_wait(epoch_, seen);
            sleepers_.fetch_sub(1, std::memory_order_seq_cst);
            e = epoch_.load(std::memory_order_acquire);
        }
        seen = e;
        if (stop_.load(std::memory_order_acquire)) return;
        work(index);
    }
}

}  // namespace glimpse
