// A fixed set of worker threads that run one data-parallel loop at a time.
//
// parallel_for splits [0, n) into one contiguous chunk per thread (the caller
// runs chunk 0), so the split depends only on n and the thread count, and
// kernels that write disjoint outputs give identical results for any count.
// It never allocates: the loop body is passed as a pointer to the caller's
// callable, which lives on the caller's stack until every chunk is done.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace glimpse {

class ThreadPool {
public:
    // n_threads counts the calling thread: 1 means no workers.
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int n_threads() const { return n_threads_; }

    // fn(begin, end, thread_index) for each non-empty chunk of [0, n).
    template <class Fn>
    void parallel_for(int64_t n, const Fn& fn) {
        if (n <= 0) return;
        if (n_threads_ == 1 || n == 1) {
            fn(int64_t{0}, n, 0);
            return;
        }
        run(n, &invoke<Fn>, &fn);
    }

    // Same, with chunk boundaries rounded to a multiple of `grain` (e.g. a
    // kernel's tile height), so every chunk but the last is whole tiles.
    template <class Fn>
    void parallel_for_grain(int64_t n, int64_t grain, const Fn& fn) {
        if (n <= 0) return;
        const int64_t tiles = (n + grain - 1) / grain;
        parallel_for(tiles, [&](int64_t tb, int64_t te, int t) {
            int64_t b = tb * grain, e = te * grain < n ? te * grain : n;
            fn(b, e, t);
        });
    }

    // The chunk of [0, n) that thread t of T gets.
    static void chunk(int64_t n, int t, int T, int64_t* begin, int64_t* end) {
        *begin = n * t / T;
        *end = n * (t + 1) / T;
    }

private:
    using Trampoline = void (*)(const void* fn, int64_t begin, int64_t end, int thread);
    template <class Fn>
    static void invoke(const void* fn, int64_t begin, int64_t end, int thread) {
        (*static_cast<const Fn*>(fn))(begin, end, thread);
    }

    void run(int64_t n, Trampoline tramp, const void* fn);
    void worker_main(int index);
    void run_chunk(int index);

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};

    // The current job (written before generation_ is bumped).
    int64_t job_n_ = 0;
    Trampoline job_tramp_ = nullptr;
    const void* job_fn_ = nullptr;
};

}  // namespace glimpse
