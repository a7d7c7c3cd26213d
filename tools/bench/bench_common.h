// Shared pieces of glimpse-bench: a small JSON writer, the run header (label, commit,
// machine, threads), timing statistics and a STREAM-like memory bandwidth probe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/threadpool.h"
#include "tools/common/args.h"

namespace glimpse::bench {

constexpr const char* kSchema = "glimpse-bench/1";

// Streaming JSON writer with 2-space indentation; keys and values are escaped.
class Json {
public:
    Json& begin_object(const std::string& key = "");
    Json& end_object();
    Json& begin_array(const std::string& key = "");
    Json& end_array();
    Json& value(const std::string& key, const std::string& v);
    Json& value(const std::string& key, const char* v) { return value(key, std::string(v)); }
    Json& value(const std::string& key, double v);
    Json& value(const std::string& key, int64_t v);
    Json& value(const std::string& key, int v) { return value(key, static_cast<int64_t>(v)); }
    Json& value(const std::string& key, bool v);
    Json& null(const std::string& key);
    const std::string& str() const { return out_; }

private:
    void prefix(const std::string& key);
    Json& open(const std::string& key, char bracket);
    // Closes the innermost container: its elements, if any, each stood on a line of their own.
    void close(char bracket);
    std::string out_;
    std::vector<bool> first_;  // per open container: no element written yet
};

// What every report starts with.
struct RunInfo {
    std::string label, commit, commit_source;
    int threads = 1;
};

// --label, --commit and --threads, shared by the subcommands.
void add_common_options(tools::ArgParser& a);
// Fills `info` from the options (commit: --commit, else $GLIMPSE_COMMIT, else
// `git rev-parse --short HEAD` in the source tree at run time). False + error on bad input.
bool read_common_options(const tools::ArgParser& a, RunInfo* info, std::string* error);

// Parses a command's line and its common options. nullopt: go on with `info` filled; otherwise
// the exit code: 0 after printing --help to stdout, 2 after a usage error ("<command>: error" on
// stderr).
std::optional<int> parse_command_line(tools::ArgParser& a, int argc, char** argv, const char* command,
                                      RunInfo* info);

// Writes "schema", "command", "label", "commit", "timestamp", "threads", "machine".
void write_header(Json& j, const std::string& command, const RunInfo& info);

// Median / min / max of samples (ms).
struct Stats {
    double median = 0, min = 0, max = 0;
    int n = 0;
};
Stats stats_of(std::vector<double> samples_ms);

double now_ms();
// CPU time of the calling thread, ms: unlike wall time it does not grow while the
// machine runs someone else's threads. For a kernel on a ThreadPool the caller runs
// chunk 0 and then waits (spinning) for the others, so its CPU time is the kernel's
// wall time on an otherwise idle machine (plus any time a worker was preempted).
double thread_cpu_ms();

// STREAM-like bandwidth over arrays of `bytes_per_array` (much larger than the
// last-level cache) on `pool`'s threads; best of `reps`.
struct Bandwidth {
    double read_gbs = 0;   // sum over one array (what a weight-streaming GEMV does)
    double copy_gbs = 0;   // a = b, counted as 2 arrays
    double triad_gbs = 0;  // a = b + s*c, counted as 3 arrays
    int64_t bytes_per_array = 0;
    int reps = 0;
};
Bandwidth measure_bandwidth(ThreadPool* pool, int64_t bytes_per_array, int reps);
void write_bandwidth(Json& j, const Bandwidth& bw);

// Evicts caches by streaming through a buffer of `bytes` (a write then a read).
class CacheFlusher {
public:
    explicit CacheFlusher(int64_t bytes);
    void flush(ThreadPool* pool);

private:
    std::vector<float> buf_;
};

// Last-level cache size from sysfs (0 if unknown).
int64_t last_level_cache_bytes();

}  // namespace glimpse::bench
