#include "test_util.h"

#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

namespace glimpse::test {

std::string golden_dir() {
    if (const char* env = std::getenv("GLIMPSE_GOLDEN_DIR")) return env;
    return GLIMPSE_DEFAULT_GOLDEN_DIR;
}

std::string source_dir() { return GLIMPSE_SOURCE_DIR; }

bool emulated() {
    const char* s = std::getenv("GLIMPSE_TEST_SCALE");
    return s != nullptr && std::string(s) == "emulated";
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        FAIL_CHECK("cannot read " << path);
        return {};
    }
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) FAIL("cannot write " << bytes.size() << " bytes to " << path);
}

TempDir::TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() / ("glimpse_" + tag + "_" + std::to_string(::getpid()));
    std::error_code ec;
    std::filesystem::remove_all(path, ec);  // left over from a crashed run with the same pid
    std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
}

std::vector<float> read_f32_file(const std::string& path) {
    std::vector<uint8_t> bytes = read_file_bytes(path);
    std::vector<float> out(bytes.size() / 4);
    if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * 4);
    return out;
}

ErrorStats compare(const float* got, const float* ref, size_t n) {
    ErrorStats s;
    double max_ref = 0, sum_d2 = 0, sum_r2 = 0, sum_g2 = 0, dot = 0;
    for (size_t i = 0; i < n; ++i) {
        double d = static_cast<double>(got[i]) - ref[i];
        s.max_abs_diff = std::max(s.max_abs_diff, std::fabs(d));
        max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[i])));
        sum_d2 += d * d;
        sum_r2 += static_cast<double>(ref[i]) * ref[i];
        sum_g2 += static_cast<double>(got[i]) * got[i];
        dot += static_cast<double>(got[i]) * ref[i];
    }
    s.rel = max_ref > 0 ? s.max_abs_diff / max_ref : s.max_abs_diff;
    s.rms = sum_r2 > 0 ? std::sqrt(sum_d2 / sum_r2) : std::sqrt(sum_d2);
    s.cosine = (sum_r2 > 0 && sum_g2 > 0) ? dot / std::sqrt(sum_r2 * sum_g2) : 0;
    return s;
}

}  // namespace glimpse::test
