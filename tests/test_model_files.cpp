// Model files that are not what a loader expects (issue 21): non-regular files given as
// models, files truncated or rewritten while a model is mapped, and GGUF files whose tensors
// are not aligned (general.alignment = 1). Oracles: the golden GGUF files loaded unchanged,
// exit statuses of forked children (a SIGBUS kills the child, not the test), and the
// alignment the runtime promises (models/gguf_weights.h).
#include <doctest/doctest.h>

#include "models/gguf_weights.h"
#include "models/text_decoder.h"
#include "models/vision_encoder.h"
#include "runtime/gguf.h"
#include "runtime/gguf_writer.h"
#include "runtime/graph.h"
#include "runtime/json.h"
#include "runtime/threadpool.h"
#include "test_util.h"
#include "tools/quantize/quantize_gguf.h"

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

using test::write_bytes;

// A scratch directory for this binary, removed at the end of the test.
struct TempDir : test::TempDir {
    TempDir() : test::TempDir("test_model_files") {}
};

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

// One decoder pass over `n` rows of embeddings of tokens 1..n; the logits.
Result<std::vector<float>> decode_once(TextDecoder& dec, DecoderPlan& plan, ThreadPool& pool, int64_t n) {
    float* x = plan.plan->f32(plan.embeddings);
    int32_t* pos = static_cast<int32_t*>(plan.plan->data(plan.positions));
    for (int64_t i = 0; i < n; ++i) {
        dec.embed_token(static_cast<int32_t>(1 + i), x + i * dec.hparams().n_embd);
        pos[i] = static_cast<int32_t>(i);
    }
    Result<const float*> logits = dec.forward(plan, n, 0, &pool);
    if (!logits.is_ok()) return logits.status();
    return std::vector<float>(*logits, *logits + dec.hparams().n_vocab);
}

// The bytes of a metadata value as GGUF stores them after the key and type.
void encode_value(const GgufValue& v, std::vector<uint8_t>& out) {
    auto put = [&](const void* p, size_t n) {
        const uint8_t* b = static_cast<const uint8_t*>(p);
        out.insert(out.end(), b, b + n);
    };
    auto put_u64 = [&](uint64_t x) { put(&x, 8); };
    switch (v.type) {
        case GgufType::string:
            put_u64(v.as_string.size());
            put(v.as_string.data(), v.as_string.size());
            return;
        case GgufType::array: {
            const uint32_t t = static_cast<uint32_t>(v.elem_type);
            put(&t, 4);
            put_u64(v.count);
            if (v.elem_type == GgufType::string) {
                for (std::string_view s : v.strings) {
                    put_u64(s.size());
                    put(s.data(), s.size());
                }
            } else if (v.elem_type == GgufType::array) {
                for (const GgufValue& a : v.arrays) encode_value(a, out);
            } else {
                put(v.packed, v.count * gguf_type_size(v.elem_type));
            }
            return;
        }
        case GgufType::f32: {
            const float f = static_cast<float>(v.as_f64);
            put(&f, 4);
            return;
        }
        case GgufType::f64:
            put(&v.as_f64, 8);
            return;
        case GgufType::i8: case GgufType::i16: case GgufType::i32: case GgufType::i64:
            put(&v.as_i64, gguf_type_size(v.type));  // little-endian: the low bytes come first
            return;
        default:
            put(&v.as_u64, gguf_type_size(v.type));
            return;
    }
}

// `src` rewritten with general.alignment = 1 and a padding string that puts the tensor data
// at an offset of 1 (mod 4), so no tensor is aligned for its element type.
std::vector<uint8_t> rewrite_with_alignment_1(const GgufFile& src) {
    for (int pad = 0; pad < 8; ++pad) {
        GgufWriter w(1);
        for (const auto& [key, value] : src.metadata()) {
            if (key == "general.alignment") continue;
            std::vector<uint8_t> encoded;
            encode_value(value, encoded);
            w.set_raw(key, value.type, std::move(encoded));
        }
        w.set_u32("general.alignment", 1);
        w.set_string("test.padding", std::string(static_cast<size_t>(pad), '#'));
        for (const GgufTensor& t : src.tensors()) {
            REQUIRE(w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims),
                                 std::vector<uint8_t>(t.data, t.data + t.nbytes))
                        .is_ok());
        }
        std::vector<uint8_t> bytes = w.serialize();
        auto parsed = GgufFile::parse(MappedFile::from_bytes(bytes, "rewritten.gguf"));
        REQUIRE_MESSAGE(parsed.is_ok(), parsed.status().to_string());
        if ((*parsed)->data_offset() % 4 == 1) return bytes;
    }
    FAIL("no padding put the data section at 1 (mod 4)");
    return {};
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

TEST_CASE("JSON files (tokenizer.json, scenes, golden cases) refuse FIFOs and devices without blocking") {
    // json_parse_file read through an ifstream: a FIFO with no writer blocked the open forever
    // (the child's alarm ends it), /dev/zero was read until memory ran out.
    TempDir tmp;
    const std::string fifo = tmp.file("tokenizer.json");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    const int status = run_in_child(10, [&] {
        return expect_io_error(json_parse_file(fifo).status(),
                               fifo + ": is a FIFO (named pipe); a JSON file must be a regular file") |
               expect_io_error(json_parse_file("/dev/zero").status(),
                               "/dev/zero: is a character device; a JSON file must be a regular file");
    });
    CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe(status));
    // A regular file still parses; a missing one is an io_error naming it.
    const std::string ok = tmp.file("ok.json");
    write_bytes(ok, {'{', '"', 'a', '"', ':', '1', '}'});
    auto r = json_parse_file(ok);
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    CHECK((*r)["a"].as_int() == 1);
    auto missing = json_parse_file(tmp.file("missing.json"));
    REQUIRE_FALSE(missing.is_ok());
    CHECK(missing.status().code() == StatusCode::io_error);
    CHECK(missing.status().message().rfind(tmp.file("missing.json") + ": cannot open", 0) == 0);
}

TEST_CASE("a model truncated while mapped ends with an io_error naming it, never SIGBUS") {
    TempDir tmp;
    const std::string path = tmp.file("text.gguf");
    write_bytes(path, test::read_file_bytes(golden(kText)));
    uint64_t data_offset = 0;
    {
        auto f = GgufFile::open(path);
        REQUIRE(f.is_ok());
        data_offset = (*f)->data_offset();
        REQUIRE((*f)->file_size() > data_offset + 3 * 4096);  // the cut removes whole pages of weights
    }
    // Called in the children: no doctest assertions there (they would unwind into doctest's
    // runner inside the child); failures become exit codes.
    const auto cut = [&] { return ::truncate(path.c_str(), static_cast<off_t>(data_offset)) == 0; };
    // Under qemu-user the truncated pages do not fault in the guest (qemu handles the host's
    // SIGBUS itself), so the SIGBUS path cannot be exercised there; the size check after the pass
    // still reports the file, as "modified while in use". On hardware the message is exact.
    const std::string truncated = test::emulated() ? ": the file was" : ": the file was truncated";

    SUBCASE("between opening and loading the tensors") {
        const int status = run_in_child(60, [&] {
            auto f = GgufFile::open(path);
            if (!f.is_ok() || !cut()) return 2;
            auto dec = TextDecoder::from_file(std::move(*f));
            return expect_io_error(dec.status(), path + ": the file was truncated or could not be read while in use");
        });
        CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe(status));
    }
    SUBCASE("after loading, before the weights are packed") {
        const int status = run_in_child(60, [&] {
            auto dec = TextDecoder::load(path);
            if (!dec.is_ok() || !cut()) return 2;
            auto plan = (*dec)->compile(4, 8, DType::f32, 2);
            return expect_io_error(plan.status(), path + truncated);
        });
        CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe(status));
    }
    SUBCASE("between decoding steps (token embeddings are read from the mapping)") {
        const int status = run_in_child(60, [&] {
            auto dec = TextDecoder::load(path);
            if (!dec.is_ok()) return 2;
            auto plan = (*dec)->compile(4, 8, DType::f32, 2);
            if (!plan.is_ok()) return 3;
            ThreadPool pool(2);
            if (!decode_once(**dec, *plan, pool, 4).is_ok() || !cut()) return 4;
            auto again = decode_once(**dec, *plan, pool, 4);
            return expect_io_error(again.status(), path + truncated);
        });
        CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe(status));
    }
    SUBCASE("after the program replaced the SIGBUS handler (test frameworks do, per test)") {
        const int status = run_in_child(60, [&] {
            auto first = GgufFile::open(golden(kText));  // installs glimpse's handler
            if (!first.is_ok()) return 2;
            std::signal(SIGBUS, SIG_DFL);
            auto dec = TextDecoder::load(path);  // must put it back
            if (!dec.is_ok() || !cut()) return 3;
            auto plan = (*dec)->compile(4, 8, DType::f32, 2);
            return expect_io_error(plan.status(), path + truncated);
        });
        CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe(status));
    }
    SUBCASE("the vision encoder, before packing") {
        const std::string mmproj = tmp.file("mmproj.gguf");
        write_bytes(mmproj, test::read_file_bytes(golden(kMmproj)));
        const int status = run_in_child(60, [&] {
            auto enc = VisionEncoder::load(mmproj);
            if (!enc.is_ok()) return 2;
            auto f = GgufFile::open(mmproj);
            if (!f.is_ok()) return 3;
            if (::truncate(mmproj.c_str(), static_cast<off_t>((*f)->data_offset())) != 0) return 4;
            auto plan = (*enc)->compile(2);
            return expect_io_error(plan.status(), mmproj + truncated);
        });
        CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe(status));
    }
}

TEST_CASE("quantize refuses to write an output from an input truncated while it was read") {
    // The input is cut to its header after the first tensor is written (the per-tensor log
    // line is the hook): the remaining tensors read zero pages (or, under qemu, garbage-free
    // zeros too), so the output must not be committed and the error names the input.
    TempDir tmp;
    const std::string in_path = tmp.file("in.gguf"), out_path = tmp.file("out.gguf");
    write_bytes(in_path, test::read_file_bytes(golden(kText)));
    uint64_t data_offset = 0;
    {
        auto f = GgufFile::open(in_path);
        REQUIRE(f.is_ok());
        data_offset = (*f)->data_offset();
        REQUIRE((*f)->tensors().size() > 2);
    }
    const int status = run_in_child(60, [&] {
        tools::QuantizeOptions opt;
        opt.input_path = in_path;
        opt.output_path = out_path;
        opt.type = "q8_0";
        opt.threads = 1;
        bool cut = false;
        opt.log = [&](const std::string&) {
            if (!cut) cut = ::truncate(in_path.c_str(), static_cast<off_t>(data_offset)) == 0;
        };
        const Status s = tools::quantize_gguf(opt);
        if (!cut) return 5;
        if (fs::exists(out_path)) return 6;  // a partial output was committed
        return expect_io_error(s, in_path + ": the file was");
    });
    CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe(status));

    // The same conversion of an intact input succeeds (the hook alone does not fail it).
    write_bytes(in_path, test::read_file_bytes(golden(kText)));
    tools::QuantizeOptions opt;
    opt.input_path = in_path;
    opt.output_path = out_path;
    opt.type = "q8_0";
    opt.log = [](const std::string&) {};
    const Status ok = tools::quantize_gguf(opt);
    CHECK_MESSAGE(ok.is_ok(), ok.to_string());
    CHECK(fs::exists(out_path));
}

TEST_CASE("a model rewritten in place is reported; one replaced by rename keeps working") {
    TempDir tmp;
    const std::string path = tmp.file("text.gguf");
    const std::vector<uint8_t> original = test::read_file_bytes(golden(kText));
    write_bytes(path, original);
    auto dec = TextDecoder::load(path);
    REQUIRE_MESSAGE(dec.is_ok(), dec.status().to_string());
    auto plan = (*dec)->compile(4, 8, DType::f32, 2);
    REQUIRE(plan.is_ok());
    ThreadPool pool(2);
    auto before = decode_once(**dec, *plan, pool, 4);
    REQUIRE(before.is_ok());

    SUBCASE("replaced by rename: the mapped (old) file is unchanged, results are identical") {
        const std::string other = tmp.file("text.gguf.new");
        std::vector<uint8_t> changed = original;
        for (size_t i = changed.size() - 4096; i < changed.size(); ++i) changed[i] ^= 0x55;
        write_bytes(other, changed);
        REQUIRE(::rename(other.c_str(), path.c_str()) == 0);
        auto after = decode_once(**dec, *plan, pool, 4);
        REQUIRE_MESSAGE(after.is_ok(), after.status().to_string());
        CHECK(*after == *before);
    }
    SUBCASE("rewritten in place with the same size") {
        // Same length, different weights: no SIGBUS, the pages silently change under the run.
        std::vector<uint8_t> changed = original;
        for (size_t i = changed.size() - 4096; i < changed.size(); ++i) changed[i] ^= 0x55;
        const int fd = ::open(path.c_str(), O_WRONLY);
        REQUIRE(fd >= 0);
        REQUIRE(::pwrite(fd, changed.data(), changed.size(), 0) == static_cast<ssize_t>(changed.size()));
        // The kernel stamps writes with a coarse clock (ms); set a later time explicitly so the
        // test does not depend on how much time passed since the file was opened.
        struct stat st {};
        REQUIRE(::fstat(fd, &st) == 0);
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        times[1].tv_sec += 2;
        REQUIRE(::futimens(fd, times) == 0);
        ::close(fd);
        auto after = decode_once(**dec, *plan, pool, 4);
        test::check_error(after.status(), StatusCode::io_error, path + ": the file was modified while in use");
    }
}

TEST_CASE("general.alignment = 1: tensors reach the kernels aligned, outputs equal the aligned file's") {
    TempDir tmp;
    for (const char* rel_c : {kText, "smolvlm-tiny-f16/tiny-smolvlm-text-f16.gguf", kMmproj}) {
        const std::string rel = rel_c;
        CAPTURE(rel);
        auto src = GgufFile::open(golden(rel));
        REQUIRE(src.is_ok());
        const std::string path = tmp.file("align1.gguf");
        write_bytes(path, rewrite_with_alignment_1(**src));
        auto a1 = GgufFile::open(path);
        REQUIRE_MESSAGE(a1.is_ok(), a1.status().to_string());
        REQUIRE((*a1)->alignment() == 1);
        int misaligned = 0;
        for (const GgufTensor& t : (*a1)->tensors()) misaligned += reinterpret_cast<uintptr_t>(t.data) % 4 != 0;
        REQUIRE(misaligned > 0);  // the rewrite is a meaningful test

        // Every tensor handed to a graph is aligned as models/gguf_weights.h promises.
        Graph g;
        OwnedTensors owned;
        GgufWeights w(**a1, g, owned);
        for (const GgufTensor& t : (*a1)->tensors()) {
            CAPTURE(t.name);
            if (t.n_dims > 2) continue;  // the patch-embedding kernel: checked through the encoder below
            if (t.n_dims == 2) {  // matrices: in place when aligned, else an aligned copy
                const ValueId v = w.matrix(t.name, t.ne[1], t.ne[0]);
                REQUIRE_MESSAGE(w.status().is_ok(), w.status().to_string());
                CHECK(reinterpret_cast<uintptr_t>(g.value(v).data) % 32 == 0);  // kTensorDataAlignment
            } else {  // vectors: f32 copies, aligned for float
                const ValueId v = w.vector(t.name, t.ne[0]);
                REQUIRE_MESSAGE(w.status().is_ok(), w.status().to_string());
                CHECK(reinterpret_cast<uintptr_t>(g.value(v).data) % alignof(float) == 0);
            }
        }

        if (rel.find("mmproj") != std::string::npos) {
            auto ref = VisionEncoder::load(golden(rel));
            auto got = VisionEncoder::load(path);
            REQUIRE_MESSAGE(got.is_ok(), got.status().to_string());
            REQUIRE(ref.is_ok());
            const int64_t S = (*ref)->hparams().image_size;
            std::vector<float> pixels(static_cast<size_t>(3 * S * S));
            for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
            ThreadPool pool(2);
            auto run = [&](VisionEncoder& enc) {
                auto plan = enc.compile(2);
                REQUIRE(plan.is_ok());
                std::vector<float> out(static_cast<size_t>(plan->plan->graph().value(plan->embeddings).shape.numel()));
                REQUIRE(enc.encode(*plan, pixels.data(), out.data(), &pool).is_ok());
                return out;
            };
            CHECK(run(**got) == run(**ref));
        } else {
            auto ref = TextDecoder::load(golden(rel));
            auto got = TextDecoder::load(path);
            REQUIRE_MESSAGE(got.is_ok(), got.status().to_string());
            REQUIRE(ref.is_ok());
            ThreadPool pool(2);
            auto run = [&](TextDecoder& dec) {
                auto plan = dec.compile(4, 8, DType::f32, 2);
                REQUIRE(plan.is_ok());
                auto logits = decode_once(dec, *plan, pool, 4);
                REQUIRE(logits.is_ok());
                return *logits;
            };
            CHECK(run(**got) == run(**ref));
        }
    }
}
