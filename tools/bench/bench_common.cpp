#include "tools/bench/bench_common.h"

#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <thread>

#include "ops/providers/providers.h"
#include "runtime/json.h"
#include "targets/cpu_features.h"

#ifndef GLIMPSE_BENCH_SOURCE_DIR
#define GLIMPSE_BENCH_SOURCE_DIR "."
#endif

namespace glimpse::bench {

// ---------------------------------------------------------------------------
// Json

void Json::prefix(const std::string& key) {
    if (!first_.empty()) {
        out_ += first_.back() ? "\n" : ",\n";
        first_.back() = false;
        out_.append(2 * first_.size(), ' ');
    }
    if (!key.empty()) out_ += json_quote(key) + ": ";
}

Json& Json::open(const std::string& key, char bracket) {
    prefix(key);
    out_ += bracket;
    first_.push_back(true);
    return *this;
}

void Json::close(char bracket) {
    const bool empty = first_.back();
    first_.pop_back();
    if (!empty) {
        out_ += "\n";
        out_.append(2 * first_.size(), ' ');
    }
    out_ += bracket;
}

Json& Json::begin_object(const std::string& key) { return open(key, '{'); }

Json& Json::end_object() {
    close('}');
    if (first_.empty()) out_ += "\n";
    return *this;
}

Json& Json::begin_array(const std::string& key) { return open(key, '['); }

Json& Json::end_array() {
    close(']');
    return *this;
}

Json& Json::value(const std::string& key, const std::string& v) {
    prefix(key);
    out_ += json_quote(v);
    return *this;
}

Json& Json::value(const std::string& key, double v) {
    prefix(key);
    if (!std::isfinite(v)) {
        out_ += "null";
        return *this;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    out_ += buf;
    return *this;
}

Json& Json::value(const std::string& key, int64_t v) {
    prefix(key);
    out_ += std::to_string(v);
    return *this;
}

Json& Json::value(const std::string& key, bool v) {
    prefix(key);
    out_ += v ? "true" : "false";
    return *this;
}

Json& Json::null(const std::string& key) {
    prefix(key);
    out_ += "null";
    return *this;
}

// ---------------------------------------------------------------------------
// Header

void add_common_options(tools::ArgParser& a) {
    a.option("--label", "TEXT", "free-form label stored in the report (e.g. a branch or experiment name)");
    a.option("--commit", "HASH", "commit the binary was built from (default: $GLIMPSE_COMMIT, else git in the source tree)");
    a.option("-t,--threads", "N", "threads (default: every logical CPU)");
}

namespace {

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
    return s;
}

std::string run_command(const std::string& cmd) {
    std::string out;
    if (FILE* p = popen(cmd.c_str(), "r")) {
        char buf[256];
        while (std::fgets(buf, sizeof buf, p)) out += buf;
        if (pclose(p) != 0) return "";
    }
    return trim(out);
}

std::string cpu_model() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    std::string arm_part;
    while (std::getline(f, line)) {
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        const std::string key = trim(line.substr(0, colon));
        std::string val = line.substr(colon + 1);
        val.erase(0, val.find_first_not_of(' '));
        if (key == "model name" || key == "Model") return val;
        if (key == "CPU part" && arm_part.empty()) arm_part = "arm cpu part " + val;
    }
    return arm_part.empty() ? "unknown" : arm_part;
}

std::string utc_timestamp() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace

bool read_common_options(const tools::ArgParser& a, RunInfo* info, std::string* error) {
    info->label = a.get("--label");
    int64_t threads = 0;
    if (a.has("--threads")) {
        if (!a.get_int("--threads", &threads, error)) return false;
        if (threads < 1 || threads > 1024) {
            *error = "--threads must be 1..1024";
            return false;
        }
    } else {
        const unsigned hc = std::thread::hardware_concurrency();
        threads = hc ? hc : 1;
    }
    info->threads = static_cast<int>(threads);
    if (a.has("--commit")) {
        info->commit = a.get("--commit");
        info->commit_source = "flag";
    } else if (const char* env = std::getenv("GLIMPSE_COMMIT"); env && *env) {
        info->commit = env;
        info->commit_source = "env";
    } else {
        const std::string src = GLIMPSE_BENCH_SOURCE_DIR;
        info->commit = run_command("git -C '" + src + "' rev-parse --short HEAD 2>/dev/null");
        if (!info->commit.empty()) {
            const std::string dirty = run_command("git -C '" + src + "' status --porcelain --untracked-files=no 2>/dev/null");
            if (!dirty.empty()) info->commit += "-dirty";
            info->commit_source = "git at run time (may differ from the build)";
        } else {
            info->commit = "unknown";
            info->commit_source = "none";
        }
    }
    return true;
}

std::optional<int> parse_command_line(tools::ArgParser& a, int argc, char** argv, const char* command,
                                      RunInfo* info) {
    if (const std::optional<int> exit_code = a.parse_or_exit_code(argc, argv)) return exit_code;
    std::string err;
    if (!read_common_options(a, info, &err)) {
        std::fprintf(stderr, "%s: %s\n", command, err.c_str());
        return 2;
    }
    return std::nullopt;
}

void write_header(Json& j, const std::string& command, const RunInfo& info) {
    j.value("schema", kSchema);
    j.value("command", command);
    j.value("label", info.label);
    j.value("commit", info.commit);
    j.value("commit_source", info.commit_source);
    j.value("timestamp", utc_timestamp());
    j.value("threads", info.threads);
    const CpuFeatures& f = cpu_features();
    j.begin_object("machine");
    j.value("cpu_model", cpu_model());
    j.value("logical_cpus", static_cast<int64_t>(std::thread::hardware_concurrency()));
    j.value("features", f.describe());
    j.value("best_isa", isa_name(f.best_isa()));
    j.value("active_isa", isa_name(active_isa()));
    const char* cap = std::getenv("GLIMPSE_MAX_ISA");
    j.value("glimpse_max_isa", cap ? cap : "");
    j.value("llc_bytes", last_level_cache_bytes());
    struct utsname u {};
    uname(&u);
    j.value("kernel", std::string(u.sysname) + " " + u.release + " " + u.machine);
    j.value("compiler", __VERSION__);
#if defined(NDEBUG)
    j.value("build", "release");
#else
    j.value("build", "debug");
#endif
    j.value("providers", matmul_provider_versions());
    j.end_object();
}

// ---------------------------------------------------------------------------
// Timing

Stats stats_of(std::vector<double> s) {
    Stats r;
    if (s.empty()) return r;
    std::sort(s.begin(), s.end());
    r.n = static_cast<int>(s.size());
    r.min = s.front();
    r.max = s.back();
    r.median = s.size() % 2 ? s[s.size() / 2] : 0.5 * (s[s.size() / 2 - 1] + s[s.size() / 2]);
    return r;
}

double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double thread_cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

// ---------------------------------------------------------------------------
// Bandwidth

int64_t last_level_cache_bytes() {
    int64_t best = 0;
    for (int i = 0; i < 8; ++i) {
        std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/size");
        std::string s;
        if (!(f >> s) || s.empty()) continue;
        int64_t v = std::atoll(s.c_str());
        if (s.back() == 'K') v <<= 10;
        if (s.back() == 'M') v <<= 20;
        best = std::max(best, v);
    }
    return best;
}

Bandwidth measure_bandwidth(ThreadPool* pool, int64_t bytes_per_array, int reps) {
    const int64_t n = bytes_per_array / 4;
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n)), c(static_cast<size_t>(n));
    // First touch on the threads that use each part (NUMA / page placement).
    pool->parallel_for(n, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) {
            a[i] = 1.0f;
            b[i] = 2.0f;
            c[i] = 0.5f;
        }
    });
    std::vector<double> partial(static_cast<size_t>(pool->n_threads()) * 16);
    double best_read = 1e30, best_copy = 1e30, best_triad = 1e30;
    for (int r = 0; r < reps; ++r) {
        double t0 = now_ms();
        pool->parallel_for(n, [&](int64_t i0, int64_t i1, int t) {
            // Four 16-byte vector sums (GCC vector extension: SSE2 / NEON, the baseline of
            // both architectures) so the loop is bound by loads, not by one add chain.
            typedef float v4 __attribute__((vector_size(16)));
            v4 s0 = {}, s1 = {}, s2 = {}, s3 = {};
            int64_t i = i0;
            while (i < i1 && (i & 3)) s0[0] += b[i++];
            for (; i + 16 <= i1; i += 16) {
                const v4* p = reinterpret_cast<const v4*>(b.data() + i);
                s0 += p[0];
                s1 += p[1];
                s2 += p[2];
                s3 += p[3];
            }
            for (; i < i1; ++i) s0[0] += b[i];
            const v4 s = s0 + s1 + s2 + s3;
            partial[static_cast<size_t>(t) * 16] = s[0] + s[1] + s[2] + s[3];
        });
        best_read = std::min(best_read, now_ms() - t0);
        t0 = now_ms();
        pool->parallel_for(n, [&](int64_t i0, int64_t i1, int) {
            std::copy(b.data() + i0, b.data() + i1, a.data() + i0);
        });
        best_copy = std::min(best_copy, now_ms() - t0);
        t0 = now_ms();
        pool->parallel_for(n, [&](int64_t i0, int64_t i1, int) {
            for (int64_t i = i0; i < i1; ++i) a[i] = b[i] + 3.0f * c[i];
        });
        best_triad = std::min(best_triad, now_ms() - t0);
    }
    volatile double sink = partial[0];
    (void)sink;
    Bandwidth bw;
    const double bytes = static_cast<double>(n) * 4;
    bw.read_gbs = bytes / (best_read * 1e6);
    bw.copy_gbs = 2 * bytes / (best_copy * 1e6);
    bw.triad_gbs = 3 * bytes / (best_triad * 1e6);
    bw.bytes_per_array = n * 4;
    bw.reps = reps;
    return bw;
}

void write_bandwidth(Json& j, const Bandwidth& bw) {
    j.begin_object("memory_bandwidth");
    j.value("read_gbs", bw.read_gbs);
    j.value("copy_gbs", bw.copy_gbs);
    j.value("triad_gbs", bw.triad_gbs);
    j.value("bytes_per_array", bw.bytes_per_array);
    j.value("reps", bw.reps);
    j.end_object();
}

CacheFlusher::CacheFlusher(int64_t bytes) : buf_(static_cast<size_t>(std::max<int64_t>(bytes / 4, 1024)), 1.0f) {}

void CacheFlusher::flush(ThreadPool* pool) {
    const int64_t n = static_cast<int64_t>(buf_.size());
    pool->parallel_for(n, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; i += 16) buf_[static_cast<size_t>(i)] += 1.0f;
    });
}

}  // namespace glimpse::bench
