// ThreadPool: every index of a loop runs exactly once for any (n, threads, grain),
// including more threads than CPUs; thread indices are valid and never shared by two
// chunks at once; back-to-back loops lose no wake-up; idle pools shut down; one
// stalled thread does not hold a share of the loop; results that are split into
// fixed blocks are bit-identical to a serial loop for every thread count.
#include <doctest/doctest.h>

#include <climits>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/threadpool.h"

#if defined(__linux__)
#include <sched.h>
#endif

using namespace glimpse;

namespace {

// Aborts the test binary if a scope (e.g. a loop that could hang on a lost wake-up)
// takes longer than `seconds`: a hang becomes a failure with a message, not a stuck CI.
class Watchdog {
public:
    Watchdog(const char* what, int seconds) : thread_([this, what, seconds] {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!cv_.wait_for(lock, std::chrono::seconds(seconds), [&] { return done_; })) {
            std::fprintf(stderr, "test_threadpool: '%s' did not finish in %d s (hang)\n", what, seconds);
            std::abort();
        }
    }) {}
    ~Watchdog() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

// Runs one loop of n indices (tiles of `grain` when grain > 0) and checks what the
// body saw: every index once, thread indices in range and exclusive, grain-aligned
// chunk starts.
void check_loop(ThreadPool& pool, int64_t n, int64_t grain) {
    const int T = pool.n_threads();
    std::vector<std::atomic<int>> visits(static_cast<size_t>(std::max<int64_t>(n, 1)));
    for (auto& v : visits) v.store(0);
    std::vector<std::atomic<int>> busy(static_cast<size_t>(T));
    for (auto& b : busy) b.store(0);
    std::atomic<int> bad_thread{0}, shared_thread{0}, bad_range{0}, misaligned{0}, calls{0};
    auto body = [&](int64_t b, int64_t e, int t) {
        calls.fetch_add(1);
        if (t < 0 || t >= T) {
            bad_thread.fetch_add(1);
            return;
        }
        if (busy[t].exchange(1) != 0) shared_thread.fetch_add(1);
        if (b < 0 || e > n || b >= e) bad_range.fetch_add(1);
        if (grain > 0 && b % grain != 0) misaligned.fetch_add(1);
        if (grain > 0 && e != n && e % grain != 0) misaligned.fetch_add(1);
        for (int64_t i = std::max<int64_t>(b, 0); i < std::min(e, n); ++i) visits[i].fetch_add(1);
        busy[t].store(0);
    };
    if (grain > 0) pool.parallel_for_grain(n, grain, body);
    else pool.parallel_for(n, body);

    INFO("n=" << n << " threads=" << T << " grain=" << grain);
    CHECK(bad_thread.load() == 0);
    CHECK(shared_thread.load() == 0);
    CHECK(bad_range.load() == 0);
    CHECK(misaligned.load() == 0);
    if (n <= 0) CHECK(calls.load() == 0);
    int64_t wrong = 0, first_wrong = -1;
    for (int64_t i = 0; i < n; ++i) {
        if (visits[i].load() != 1) {
            if (first_wrong < 0) first_wrong = i;
            ++wrong;
        }
    }
    CHECK_MESSAGE(wrong == 0, wrong << " indices not visited exactly once, first " << first_wrong);
}

}  // namespace

TEST_CASE("usable_cpu_count: at least 1, at most the machine, and follows the affinity mask") {
    const int n = usable_cpu_count();
    CHECK(n >= 1);
    const unsigned hw = std::thread::hardware_concurrency();
    if (hw > 0) CHECK(n <= static_cast<int>(hw));
#if defined(__linux__)
    // Affinity is per thread: pin a fresh thread to one CPU it may use, and it must count 1.
    int seen_in_thread = -1;
    std::thread([&] {
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof(set), &set) != 0) return;
        int first = -1;
        for (int c = 0; c < CPU_SETSIZE && first < 0; ++c)
            if (CPU_ISSET(c, &set)) first = c;
        if (first < 0) return;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(first, &one);
        if (sched_setaffinity(0, sizeof(one), &one) != 0) return;
        seen_in_thread = usable_cpu_count();
    }).join();
    CHECK(seen_in_thread == 1);
#endif
}

TEST_CASE("cgroup v2 cpu.max: ceil(quota / period) CPUs, no limit for 'max' or malformed text") {
    // The format of cgroup v2's cpu.max (Documentation/admin-guide/cgroup-v2.rst): "$MAX $PERIOD",
    // $MAX being "max" for no limit; the CPU count a quota allows is quota/period, rounded up.
    CHECK(cgroup_cpu_max_limit("max 100000\n") == 0);
    CHECK(cgroup_cpu_max_limit("max 100000") == 0);
    CHECK(cgroup_cpu_max_limit("200000 100000\n") == 2);   // docker --cpus=2
    CHECK(cgroup_cpu_max_limit("150000 100000\n") == 2);   // --cpus=1.5: two threads can use it
    CHECK(cgroup_cpu_max_limit("100000 100000\n") == 1);
    CHECK(cgroup_cpu_max_limit("50000 100000\n") == 1);    // half a CPU still runs one thread
    CHECK(cgroup_cpu_max_limit("1 100000\n") == 1);
    CHECK(cgroup_cpu_max_limit("6400000 100000\n") == 64);
    CHECK(cgroup_cpu_max_limit("25000 10000\n") == 3);
    // Malformed: ignored (0), never a crash or a wrapped value.
    CHECK(cgroup_cpu_max_limit("") == 0);
    CHECK(cgroup_cpu_max_limit("\n") == 0);
    CHECK(cgroup_cpu_max_limit("200000") == 0);
    CHECK(cgroup_cpu_max_limit("200000 0\n") == 0);
    CHECK(cgroup_cpu_max_limit("0 100000\n") == 0);
    CHECK(cgroup_cpu_max_limit("-200000 100000") == 0);
    CHECK(cgroup_cpu_max_limit("200000  100000") == 0);
    CHECK(cgroup_cpu_max_limit("200000 100000 7") == 0);
    CHECK(cgroup_cpu_max_limit("99999999999999999999999 1") == 0);  // overflows uint64: ignored
    CHECK(cgroup_cpu_max_limit("18446744073709551615 1") == 0);       // above the parser's bound
    CHECK(cgroup_cpu_max_limit("9000000000000 1") == INT_MAX);        // clamped, not wrapped
}

TEST_CASE("parallel_for visits every index exactly once for many (n, threads, grain)") {
    Watchdog dog("exactly once", 60);
    const int64_t sizes[] = {0, 1, 2, 3, 5, 7, 8, 63, 64, 65, 100, 257, 1000, 4097};
    const int64_t grains[] = {0, 1, 2, 3, 16};
    // 64 threads on a machine with fewer CPUs is the oversubscribed case from issue 21.
    for (int threads : {1, 2, 3, 4, 8, 64}) {
        ThreadPool pool(threads);
        REQUIRE(pool.n_threads() == threads);
        for (int rep = 0; rep < 3; ++rep)
            for (int64_t n : sizes)
                for (int64_t grain : grains) check_loop(pool, n, grain);
    }
    // A negative count or a zero-thread request are harmless.
    ThreadPool zero(0);
    CHECK(zero.n_threads() == 1);
    check_loop(zero, 10, 0);
    bool called = false;
    zero.parallel_for(-5, [&](int64_t, int64_t, int) { called = true; });
    CHECK_FALSE(called);
}

TEST_CASE("chunks: at most n, several per thread, equal to within one index") {
    for (int T : {1, 2, 3, 64})
        for (int64_t n : {1, 2, 5, 100, 1000, 100000}) {
            const int64_t c = ThreadPool::chunk_count(n, T);
            INFO("n=" << n << " T=" << T);
            CHECK(c >= 1);
            CHECK(c <= n);
            CHECK(c == std::min<int64_t>(n, int64_t{T} * ThreadPool::kChunksPerThread));
            // chunk() partitions [0, n) into parts whose sizes differ by at most 1
            int64_t prev_end = 0, lo = n, hi = 0;
            for (int i = 0; i < c; ++i) {
                int64_t b, e;
                ThreadPool::chunk(n, i, static_cast<int>(c), &b, &e);
                CHECK(b == prev_end);
                prev_end = e;
                lo = std::min(lo, e - b);
                hi = std::max(hi, e - b);
            }
            CHECK(prev_end == n);
            CHECK(hi - lo <= 1);
        }
    // A stalled thread holds at most one chunk, so chunks must be smaller than a
    // thread's static share.
    CHECK(ThreadPool::kChunksPerThread >= 2);
}

TEST_CASE("10,000 back-to-back small loops on one pool lose no wake-up") {
    Watchdog dog("back-to-back loops", 60);
    for (int threads : {2, 3, 64}) {
        ThreadPool pool(threads);
        int64_t total = 0, expected = 0;
        for (int job = 0; job < 10000; ++job) {
            const int64_t n = 1 + job % 9;  // 1..9: fewer, equal and more indices than threads
            std::atomic<int64_t> sum{0};
            pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
                int64_t s = 0;
                for (int64_t i = b; i < e; ++i) s += i + 1;
                sum.fetch_add(s);
            });
            total += sum.load();
            expected += n * (n + 1) / 2;
        }
        CHECK_MESSAGE(total == expected, "threads=" << threads);
    }
}

TEST_CASE("claims under contention: 100,000 loops of empty-bodied chunks, each index once") {
    // Bodies that do almost nothing make every thread claim back to back, so two threads
    // race for the same chunk as often as the hardware allows; a lost or doubled claim
    // shows up as a count other than 1 (or, if a chunk is never finished, a hang).
    Watchdog dog("contended claims", 60);
    for (int threads : {2, 3}) {
        ThreadPool pool(threads);
        constexpr int64_t n = 64;
        std::atomic<int> counts[n];
        int64_t bad_loops = 0;
        for (int loop = 0; loop < 100000; ++loop) {
            for (auto& c : counts) c.store(0, std::memory_order_relaxed);
            pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
                for (int64_t i = b; i < e; ++i) counts[i].fetch_add(1, std::memory_order_relaxed);
            });
            for (auto& c : counts)
                if (c.load(std::memory_order_relaxed) != 1) {
                    ++bad_loops;
                    break;
                }
        }
        CHECK_MESSAGE(bad_loops == 0, "threads=" << threads << ": " << bad_loops << " loops with an index not run exactly once");
    }
}

TEST_CASE("loops after the workers fell asleep, and destruction while idle") {
    Watchdog dog("idle pools", 60);
    for (int threads : {2, 4, 64}) {
        // built and destroyed at once: workers may not have started yet
        for (int i = 0; i < 20; ++i) ThreadPool pool(threads);
        ThreadPool pool(threads);
        for (int round = 0; round < 3; ++round) {
            // longer than any spin: the workers are asleep on the futex when the next loop comes
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            check_loop(pool, 1000, 0);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }  // each destroyed while asleep
}

TEST_CASE("a stalled thread holds up one small chunk; the others run the rest meanwhile") {
    // A worker that takes a chunk then stops (as if preempted) until every other index
    // is done: with a static split it would hold its whole share (n/T) and the others
    // could never finish it, so the wait would time out.
    Watchdog dog("stalled thread", 60);
    const int T = 2;
    const int64_t n = 1000;
    ThreadPool pool(T);
    int runs_with_worker = 0;
    for (int attempt = 0; attempt < 20 && runs_with_worker < 3; ++attempt) {
        std::atomic<int64_t> done_indices{0};
        std::atomic<int> worker_in{0};
        std::atomic<int64_t> stalled_size{0};
        std::atomic<bool> timed_out{false}, caller_waited{false};
        pool.parallel_for(n, [&](int64_t b, int64_t e, int t) {
            if (t != 0 && worker_in.exchange(1) == 0) {
                stalled_size = e - b;
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                while (done_indices.load() < n - (e - b)) {
                    if (std::chrono::steady_clock::now() > deadline) {
                        timed_out = true;
                        break;
                    }
                    std::this_thread::yield();
                }
            } else if (t == 0 && !caller_waited.exchange(true)) {
                // let a worker join before the caller takes everything (at most 1 s)
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
                while (!worker_in.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
            }
            done_indices.fetch_add(e - b);
        });
        CHECK(done_indices.load() == n);
        if (!worker_in.load()) {  // the worker never got a chunk (one usable CPU: it is never woken)
            if (usable_cpu_count() < 2) break;
            continue;
        }
        ++runs_with_worker;
        CHECK_FALSE(timed_out.load());
        CHECK(stalled_size.load() <= n / (2 * T));
    }
    if (usable_cpu_count() >= 2) CHECK(runs_with_worker > 0);
}

TEST_CASE("a blocked reduction gives the serial loop's bits for every thread count") {
    // Sum of x[i]·y[i] over 1,000,003 floats, in blocks of 4,096 whose partial sums are
    // added in block order: the pool splits blocks among threads, never a block's sum.
    const int64_t n = 1000003, block = 4096, nb = (n + block - 1) / block;
    std::vector<float> x(n), y(n);
    uint32_t r = 12345;
    auto next = [&] {
        r = r * 1664525u + 1013904223u;
        return static_cast<float>(static_cast<int32_t>(r >> 8) - (1 << 23)) / static_cast<float>(1 << 23);
    };
    for (int64_t i = 0; i < n; ++i) {
        x[i] = next();
        y[i] = next();
    }
    // serial oracle, same association order
    float serial = 0;
    double exact = 0;
    for (int64_t b = 0; b < nb; ++b) {
        float s = 0;
        for (int64_t i = b * block; i < std::min(n, (b + 1) * block); ++i) s += x[i] * y[i];
        serial += s;
    }
    for (int64_t i = 0; i < n; ++i) exact += static_cast<double>(x[i]) * y[i];
    // the float sum is a sane dot product (sum of |x·y| ~ n/4, float rounding ~1e-7 per add)
    CHECK(std::fabs(serial - exact) < 1e-3 * n / 4);

    for (int threads : {1, 2, 3, 7, 64}) {
        ThreadPool pool(threads);
        for (int rep = 0; rep < 5; ++rep) {
            std::vector<float> partial(nb, std::nanf(""));
            pool.parallel_for(nb, [&](int64_t b0, int64_t b1, int) {
                for (int64_t b = b0; b < b1; ++b) {
                    float s = 0;
                    for (int64_t i = b * block; i < std::min(n, (b + 1) * block); ++i) s += x[i] * y[i];
                    partial[b] = s;
                }
            });
            float total = 0;
            for (float p : partial) total += p;
            INFO("threads=" << threads << " rep=" << rep);
            CHECK(std::memcmp(&total, &serial, sizeof(float)) == 0);
        }
    }
}
