// Shared helpers for tests: where the golden data is, reading raw arrays and JSON-ish
// sidecars, and error metrics with the definitions the golden README uses.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace glimpse::test {

// tests/data/golden in the source tree, or $GLIMPSE_GOLDEN_DIR.
std::string golden_dir();
std::string source_dir();

// True under GLIMPSE_TEST_SCALE=emulated (targets/test-aarch64.sh sets it for qemu runs, where
// code runs 20-50x slower): tests then use fewer or smaller cases that keep every code path.
bool emulated();

// Whole file as bytes; fails the current test (and returns empty) if it cannot be read.
std::vector<uint8_t> read_file_bytes(const std::string& path);
std::vector<float> read_f32_file(const std::string& path);

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

// rel = max|a-b| / max|b|; rms = RMS(a-b) / RMS(b); b is the reference.
struct ErrorStats {
    double max_abs_diff = 0;
    double rel = 0;
    double rms = 0;
    double cosine = 0;
};
ErrorStats compare(const float* got, const float* ref, size_t n);

}  // namespace glimpse::test
