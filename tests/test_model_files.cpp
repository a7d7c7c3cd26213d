// Model files that are not what a loader expects (issue 21): non-regular files given as
// models. Oracle: exit statuses of forked children (a blocked open is ended by an alarm).
#include <doctest/doctest.h>

#include "models/text_decoder.h"
#include "models/vision_encoder.h"
#include "runtime/gguf.h"
#include "test_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

using namespace glimpse;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("glimpse_test_model_files_" + std::to_string(::getpid()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

std::string golden(const std::string& rel) { return test::golden_dir() + "/" + rel; }
const char* kText = "smolvlm-tiny-f32/tiny-smolvlm-text-f32.gguf";
const char* kMmproj = "smolvlm-tiny-f32/tiny-smolvlm-mmproj-f32.gguf";

// Runs `body` in a forked child; returns the wait status. The child exits with body()'s value,
// or is killed by SIGALRM after `seconds` (something blocked), or by the signal that crashed it.
int run_in_child(int seconds, const std::function<int()>& body) {
    std::fflush(nullptr);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(static_cast<unsigned>(seconds));
        const int code = body();
        std::fflush(nullptr);
        _exit(code);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return status;
}

// "exit 0" or what else ended the child, for failure messages.
std::string describe(int status) {
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

// In a child: 0 when `s` is an io_error whose message contains `needle`, else 1 (and says why).
int expect_io_error(const Status& s, const std::string& needle) {
    if (!s.is_ok() && s.code() == StatusCode::io_error && s.message().find(needle) != std::string::npos) return 0;
    std::fprintf(stderr, "expected an io_error containing '%s', got: %s\n", needle.c_str(),
                 s.is_ok() ? "ok" : s.to_string().c_str());
    return 1;
}

}  // namespace

TEST_CASE("GGUF opening refuses FIFOs, devices and directories without blocking or reading them") {
    TempDir tmp;
    const std::string fifo = tmp.file("model.gguf");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    // Before the fix, open() of a FIFO with no writer blocked forever: the child's alarm ends it.
    const int status = run_in_child(10, [&] {
        auto r = GgufFile::open(fifo);
        return expect_io_error(r.status(), fifo + ": is a FIFO (named pipe); a model file must be a regular file") |
               expect_io_error(VisionEncoder::load(fifo).status(), "FIFO");
    });
    CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe(status));

    auto z = GgufFile::open("/dev/zero");
    REQUIRE_FALSE(z.is_ok());
    CHECK(z.status().message() == "/dev/zero: is a character device; a model file must be a regular file");
    auto d = GgufFile::open(tmp.path.string());
    REQUIRE_FALSE(d.is_ok());
    CHECK(d.status().message().find("is a directory") != std::string::npos);
    CHECK(TextDecoder::load("/dev/zero").status().message().find("character device") != std::string::npos);
}
