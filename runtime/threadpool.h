// A fixed set of worker threads that run one data-parallel loop at a time.
//
// parallel_for cuts [0, n) into chunks whose boundaries depend only on n, the
// thread count and the usable CPUs (chunk_count), and threads claim chunks from a shared counter until
// none is left; the calling thread claims chunks too. So a thread that the OS
// preempts (more threads than cores, or another busy process) holds up at most the
// one chunk it is running, not a fixed share of the loop, and kernels that write
// disjoint outputs give the same bits whichever thread runs which chunk.
//
// Idle workers spin briefly (a decode step issues hundreds of short loops a few
// microseconds apart) and then sleep on a futex, so a pool that waits does not take
// a core from other processes. A sleeping worker is woken only while fewer threads
// than usable CPUs are awake and chunks are left, so a pool with more threads than
// CPUs (-t 64 on 2 cores) runs like one with as many threads as CPUs. No wake-up is
// ever needed for progress: the caller runs every chunk nobody else claims.
//
// It never allocates: the loop body is passed as a pointer to the caller's
// callable, which lives on the caller's stack until every chunk is done.
// One loop at a time: parallel_for must not be called concurrently or from a body.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace glimpse {

// CPUs this process may run on: the affinity mask (sched_getaffinity on Linux, so taskset
// and cgroup cpusets count), else std::thread::hardware_concurrency(), and no more than a
// cgroup v2 CPU quota allows (cpu.max of the process's cgroup and its ancestors: a container
// started with --cpus=2 on a 64-core host gets 2); at least 1.
int usable_cpu_count();

// CPUs a cgroup v2 `cpu.max` file allows: "QUOTA PERIOD" (microseconds of CPU time per
// period) -> ceil(QUOTA / PERIOD), at least 1; 0 for "max ..." (no limit) or text that is not
// two positive integers (then the quota is ignored rather than guessed).
//   "max 100000" -> 0, "200000 100000" -> 2, "150000 100000" -> 2, "50000 100000" -> 1.
int cgroup_cpu_max_limit(const std::string& cpu_max_text);

class ThreadPool {
public:
    // n_threads counts the calling thread: 1 means no workers.
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int n_threads() const { return n_threads_; }

    // fn(begin, end, thread_index) once for each chunk of [0, n); thread_index is in
    // [0, n_threads()) and no two chunks run at the same time with the same index, so
    // it can select per-thread scratch. A thread may run several chunks of one loop.
    template <class Fn>
    void parallel_for(int64_t n, const Fn& fn) {
        if (n <= 0) return;
        if (n_threads_ == 1 || n == 1) {
            fn(int64_t{0}, n, 0);
            return;
        }
        run(n, &invoke<Fn>, &fn);
    }

    // Same, with chunk boundaries at multiples of `grain` (e.g. a kernel's tile
    // height), so every chunk but the last is whole tiles.
    template <class Fn>
    void parallel_for_grain(int64_t n, int64_t grain, const Fn& fn) {
        if (n <= 0) return;
        const int64_t tiles = (n + grain - 1) / grain;
        parallel_for(tiles, [&](int64_t tb, int64_t te, int t) {
            int64_t b = tb * grain, e = te * grain < n ? te * grain : n;
            fn(b, e, t);
        });
    }

    // Part t of T equal parts of [0, n) (for callers that split work themselves).
    static void chunk(int64_t n, int t, int T, int64_t* begin, int64_t* end) {
        *begin = n * t / T;
        *end = n * (t + 1) / T;
    }

    // How parallel_for(n) cuts [0, n): chunk_count(n, P) chunks, chunk c is
    // chunk(n, c, count) (so no chunk is empty), with P = min(n_threads, usable CPUs
    // when the pool was built). Several chunks per thread let the threads that run
    // balance the ones that don't; few enough that the per-chunk work of a body (e.g.
    // rounding the activations) stays small.
    static constexpr int kChunksPerThread = 4;
    static int64_t chunk_count(int64_t n, int T) {
        const int64_t most = static_cast<int64_t>(T) * kChunksPerThread;
        return n < most ? n : most;
    }

private:
    using Trampoline = void (*)(const void* fn, int64_t begin, int64_t end, int thread);
    template <class Fn>
    static void invoke(const void* fn, int64_t begin, int64_t end, int thread) {
        (*static_cast<const Fn*>(fn))(begin, end, thread);
    }

    void run(int64_t n, Trampoline tramp, const void* fn);
    void worker_main(int index);
    // Claims and runs chunks of the current loop until none is left.
    void work(int thread);
    // Wakes one sleeping worker if fewer threads than usable CPUs are awake.
    void maybe_wake_one();
    // The caller plus the workers that are not asleep.
    int awake_threads() const;

    int n_threads_;
    int cpu_limit_;  // usable_cpu_count() at construction
    std::vector<std::thread> workers_;

    // The fields below sit on separate cache lines by who writes them: a spinning
    // worker polls epoch_, every claim writes state_, every finished chunk writes done_;
    // sharing a line would make each claim and each poll steal it from the others.

    // Claims: epoch (which loop) in the high 32 bits, next chunk in the low 32 bits;
    // kClosed in the low bits once the caller has seen every chunk claimed, so a
    // worker that read the parameters of an older loop can never claim a chunk of a
    // newer one (its compare-exchange needs the old epoch with an open counter).
    alignas(64) std::atomic<uint64_t> state_{0xffffffffu};
    // Bumped once per loop (and at shutdown): the word sleeping workers wait on.
    alignas(64) std::atomic<uint32_t> epoch_{0};
    std::atomic<int> sleepers_{0};  // workers asleep (or about to be) on epoch_
    alignas(64) std::atomic<uint32_t> done_{0};  // chunks of the current loop finished
    std::atomic<uint32_t> caller_sleeping_{0};

    // The current loop, written by the caller between closing one epoch and opening
    // the next (atomics because a late worker may read them while they change; it
    // then fails to claim, see state_).
    alignas(64) std::atomic<int64_t> job_n_{0};
    std::atomic<uint32_t> job_chunks_{0};
    std::atomic<Trampoline> job_tramp_{nullptr};
    std::atomic<const void*> job_fn_{nullptr};
    std::atomic<bool> stop_{false};
};

}  // namespace glimpse
