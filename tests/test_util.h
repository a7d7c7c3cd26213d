// Shared helpers for tests: where the golden data is, reading raw arrays and JSON-ish
// sidecars, and error metrics with the definitions the golden README uses.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "ops/attention.h"
#include "runtime/status.h"

namespace glimpse {
class JsonValue;
class TextDecoder;
class Vlm;
struct ImageU8;
}  // namespace glimpse

namespace glimpse::test {

// tests/data/golden in the source tree, or $GLIMPSE_GOLDEN_DIR.
std::string golden_dir();
std::string source_dir();

// True under GLIMPSE_TEST_SCALE=emulated (targets/test-aarch64.sh sets it for qemu runs, where
// code runs 20-50x slower): tests then use fewer or smaller cases that keep every code path.
bool emulated();

// A golden case: the run `name` of the model set `set`, in <golden_dir>/<set>/<name>. The golden
// tests' case structs derive from it and add their files and bounds; `{set, name, ...}` fills both.
struct GoldenCase {
    const char* set;
    const char* name;
    std::string set_dir() const { return golden_dir() + "/" + set; }
    std::string case_dir() const { return set_dir() + "/" + name; }
    std::string label() const { return std::string(set) + "/" + name; }  // "<set>/<name>" for messages
};

// `status` is an error of `code` whose message contains `needle` (the test case stops if it is ok).
void check_error(const Status& status, StatusCode code, std::string_view needle);

// Whole file as bytes; fails the current test (and returns empty) if it cannot be read.
std::vector<uint8_t> read_file_bytes(const std::string& path);
std::vector<float> read_f32_file(const std::string& path);

// Lower-case hex of each byte ("\x0aA" -> "0a41"): how the golden JSON records printed text.
std::string to_hex(std::string_view bytes);

// The image embeddings llama.cpp wrote for a golden case (embd_0.f32, embd_1.f32, ... in
// `case_dir`, until the first missing index), concatenated in prompt order: (n_images * T, C).
std::vector<float> read_golden_image_embeddings(const std::string& case_dir);

// A golden prompt's input rows for a text-decoder plan: row i of `embeddings` (n_prompt, n_embd) is
// the decoder's embedding of sequence[i], or for an image position (id < 0) the next row of
// `image_rows`; positions[i] = i. Fails the test if the image positions ask for more rows than
// `image_rows` holds; returns how many it used (the caller checks that all were).
size_t fill_golden_prompt(const TextDecoder& dec, const std::vector<int64_t>& sequence,
                          const std::vector<float>& image_rows, int64_t n_embd, float* embeddings,
                          int32_t* positions);

// The images a golden case.json lists ("images": file names relative to `set_dir`), decoded.
std::vector<ImageU8> decode_golden_images(const std::string& set_dir, const JsonValue& case_json);

// Checks a Vlm's last greedy generation against greedy.json: the token ids step by step, and the
// printed bytes against "text_hex".
void check_golden_generation(const Vlm& vlm, const JsonValue& greedy, const std::string& printed);

// Writes (or replaces) `path` with `bytes`; fails the current test if the write fails.
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);

// A scratch directory, <temp>/glimpse_<tag>_<pid>, created empty and removed with its contents
// at the end of the scope. The tag keeps test binaries that run in parallel (ctest -j) apart.
struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& tag);
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string file(const std::string& name) const { return (path / name).string(); }
};

// A child process's exit code (-1 when a signal ended it) and what it wrote.
struct ProcessRun {
    int exit_code = -1;
    std::string out, err;
};

// This process's environment without the variables named in `drop_env`, plus `extra_env` ("NAME=value").
std::vector<std::string> child_environment(const std::vector<std::string>& extra_env,
                                           const std::vector<std::string>& drop_env);

// `strings` as a null-terminated char* array (argv or envp for posix_spawn), valid while they live.
std::vector<char*> c_string_array(std::vector<std::string>& strings);

// Runs argv[0] (a path) with stdin from /dev/null and stdout/stderr captured through files in
// `dir`; its environment is this process's without the variables named in `drop_env`, plus
// `extra_env` ("NAME=value"). Fails the current test if the program cannot be started.
ProcessRun run_process(std::vector<std::string> argv, const TempDir& dir, const std::vector<std::string>& extra_env = {},
                       const std::vector<std::string>& drop_env = {});

// Deterministic test inputs: a 64-bit LCG (Knuth's MMIX constants), 24 bits per float.
// Aggregate, seeded as Rng{seed}; the sequence is part of what tests with fixed seeds check.
struct Rng {
    uint64_t s;
    float uniform(float lo, float hi) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return lo + (hi - lo) * static_cast<float>((s >> 40) & 0xffffff) / 16777216.0f;
    }
    int32_t integer(int32_t lo, int32_t hi) { return static_cast<int32_t>(lo + uniform(0, 1) * (hi - lo)); }
};

// An attention test case in ops/attention.h's terms: T queries over S keys, Hq query heads
// sharing Hkv K/V heads of D values; with causal, query t sees keys [0, causal_offset + t].
struct AttentionShape {
    int64_t T, S, Hq, Hkv, D;
    bool causal;
    int64_t causal_offset;
};

// Random attention inputs for a case, with row strides wider than the heads so a kernel that
// reads or writes past a row shows (q_ld = Hq·D + 3, kv_ld = Hkv·D + 5, out_ld = Hq·D + 2):
// q:(T, q_ld) and K:(S, kv_ld) uniform in ±qk_range, V:(S, kv_ld) in ±1, drawn from `rng` in
// that order. With kv_type f16, kh/vh hold K/V as f16 and kf/vf their f32 values, the exact
// inputs an oracle must use.
struct AttentionInputs {
    int64_t q_ld, kv_ld, out_ld;
    std::vector<float> q, kf, vf;
    std::vector<uint16_t> kh, vh;
};
AttentionInputs random_attention_inputs(Rng& rng, const AttentionShape& c, DType kv_type, float qk_range);

// The AttentionArgs of case `c` over the given q and K/V rows, scale 1/√D, no output or tap.
AttentionArgs attention_args(const AttentionShape& c, const float* q, int64_t q_ld, const void* k, const void* v,
                             int64_t kv_ld, DType kv_type, int64_t out_ld);
// The same over random_attention_inputs' buffers (K/V as kv_type stores them).
AttentionArgs attention_args(const AttentionShape& c, const AttentionInputs& in, DType kv_type);

// Top-k oracle written from ops/topk.h's contract: the indices i (ascending) that fewer than k
// scores beat, where j beats i when j is a number and i a NaN, or both are numbers and s_j > s_i,
// or they tie (equal numbers, -0 == +0, or both NaN) and j < i.
std::vector<int32_t> topk_by_rank_count(const std::vector<float>& scores, int64_t k);

// rel = max|a-b| / max|b|; rms = RMS(a-b) / RMS(b); b is the reference.
struct ErrorStats {
    double max_abs_diff = 0;
    double rel = 0;
    double rms = 0;
    double cosine = 0;
};
ErrorStats compare(const float* got, const float* ref, size_t n);

}  // namespace glimpse::test
