// The glimpse command line as a user meets it: every bad flag, file pair, prompt or output
// ends with the documented exit status (0 ok, 1 the run failed, 2 usage) and a message naming
// the problem, before any work that the bad value would have sized. Runs the real binary
// (built beside the tests) on the tiny golden pairs of tests/data/golden.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "models/calibration_budget.h"
#include "runtime/image.h"
#include "runtime/json.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace {

struct Run {
    int exit_code = -1;  // -1: killed by a signal
    int signal = 0;
    std::string out, err;
};

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

fs::path scratch_dir() {
    static const fs::path dir = [] {
        fs::path d = fs::temp_directory_path() / ("glimpse-test-cli-" + std::to_string(getpid()));
        fs::create_directories(d);
        return d;
    }();
    return dir;
}

// Writes `bytes` to scratch_dir()/name (replacing it) and returns its path.
std::string write_scratch_file(const std::string& name, std::string_view bytes) {
    const std::string path = (scratch_dir() / name).string();
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
}

enum class Stdout { capture, dev_full, closed_pipe };

// Runs the glimpse binary with `args`; `env` entries ("NAME=value") are added to the environment.
Run run_glimpse(const std::vector<std::string>& args, Stdout where = Stdout::capture,
                const std::vector<std::string>& env = {}) {
    const std::string out_path = (scratch_dir() / "stdout").string(), err_path = (scratch_dir() / "stderr").string();
    // $GLIMPSE_TEST_CLI_BINARY runs another build's binary (e.g. an older commit's, to see these
    // cases fail there).
    const char* other = std::getenv("GLIMPSE_TEST_CLI_BINARY");
    std::vector<std::string> argv_s = {other && *other ? other : GLIMPSE_CLI_BINARY};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv = test::c_string_array(argv_s);
    std::vector<std::string> env_s = test::child_environment(env, {"GLIMPSE_MAX_ISA"});
    std::vector<char*> envp = test::c_string_array(env_s);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int pipe_fds[2] = {-1, -1};
    if (where == Stdout::capture) {
        posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    } else if (where == Stdout::dev_full) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/full", O_WRONLY, 0);
    } else {
        REQUIRE(pipe(pipe_fds) == 0);
        posix_spawn_file_actions_adddup2(&fa, pipe_fds[1], 1);
        posix_spawn_file_actions_addclose(&fa, pipe_fds[0]);
    }
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    // The reader goes away before the answer is written: a closed pipe.
    if (pipe_fds[0] >= 0) close(pipe_fds[0]);
    if (pipe_fds[1] >= 0) close(pipe_fds[1]);
    REQUIRE_MESSAGE(rc == 0, "cannot start " << argv_s[0]);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    Run r;
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    if (where == Stdout::capture) r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
}

const std::string kSet = test::golden_dir() + "/smolvlm-tiny-f32";
const std::string kText = kSet + "/tiny-smolvlm-text-f32.gguf";
const std::string kMmproj = kSet + "/tiny-smolvlm-mmproj-f32.gguf";
const std::string kImage = kSet + "/tiny.png";
const std::string kLlavaMmproj = test::golden_dir() + "/llava-tiny-f32/tiny-llava-mmproj-f32.gguf";
// The bundled pairs (models/bundled/, docs/models.md); SmolVLM's has 4 decoder layers, 2 KV heads of 64.
const std::string kBundledDir = test::source_dir() + "/models/bundled";
const std::string kBundledText = kBundledDir + "/scenes-smolvlm-f16-text.gguf";
const std::string kBundledMmproj = kBundledDir + "/scenes-smolvlm-f16-mmproj.gguf";

std::vector<std::string> caption_args(std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"caption", "-m", kText, "--mmproj", kMmproj, "--image", kImage, "--temp", "0", "-n", "4"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// A copy of `src` with `key`'s u32 value set to `value` (the key must hold a u32: GGUF type 4).
std::string with_u32(const std::string& src, const std::string& key, uint32_t value, const std::string& name) {
    std::vector<uint8_t> bytes = test::read_file_bytes(src);
    const std::string needle = key;
    auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
    REQUIRE_MESSAGE(it != bytes.end(), key << " not in " << src);
    const size_t at = static_cast<size_t>(it - bytes.begin()) + needle.size();
    uint32_t type = 0;
    std::memcpy(&type, bytes.data() + at, 4);
    REQUIRE_MESSAGE(type == 4, key << " is not a u32");
    std::memcpy(bytes.data() + at + 4, &value, 4);
    return write_scratch_file(name, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

// A copy of `src` with the bytes `from` replaced by `to` (same length) once.
std::string with_bytes(const std::string& src, const std::string& from, const std::string& to, const std::string& name) {
    REQUIRE(from.size() == to.size());
    std::vector<uint8_t> bytes = test::read_file_bytes(src);
    auto it = std::search(bytes.begin(), bytes.end(), from.begin(), from.end());
    REQUIRE(it != bytes.end());
    std::copy(to.begin(), to.end(), it);
    return write_scratch_file(name, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace

TEST_CASE("a good run exits 0 and prints the answer on stdout") {
    if (test::emulated()) return;  // the CLI binary is not run under qemu (no binfmt there)
    const Run r = run_glimpse(caption_args());
    CHECK(r.exit_code == 0);
    CHECK_MESSAGE(!r.out.empty(), r.err);
}

TEST_CASE("usage errors exit 2 with a message naming the option, before loading anything") {
    if (test::emulated()) return;
    struct Bad {
        std::vector<std::string> args;
        const char* says;
    };
    const std::vector<Bad> bad = {
        {{"caption", "--image", kImage}, "-m TEXT.gguf and --mmproj"},
        {caption_args({"--top-k", "4294967297"}), "--top-k"},  // used to wrap to 1
        {caption_args({"--top-k", "2147483648"}), "--top-k"},  // used to become "off"
        {caption_args({"--top-k", "-1"}), "--top-k"},
        {caption_args({"-t", "0"}), "--threads"},
        {caption_args({"-t", "1025"}), "--threads"},
        {caption_args({"-t", "99999999999999999999"}), "--threads"},
        {{"caption", "-m", kText, "--mmproj", kMmproj, "--image", kImage, "-n", "-1"}, "--n-predict"},
        {{"caption", "-m", kText, "--mmproj", kMmproj, "--image", kImage, "-n", "1048577"}, "--n-predict"},
        {caption_args({"--temp", "nan"}), "--temp"},
        {caption_args({"--seed", "12abc"}), "--seed"},
        {caption_args({"--no-such-flag"}), "no-such-flag"},
        {{"eval", "-m", kText, "--mmproj", kMmproj, "--scenes", "0:18446744073709551615"}, "--scenes"},
        {{"eval", "-m", kText, "--mmproj", kMmproj, "--scenes", "-5:3"}, "--scenes"},
        {{"eval", "-m", kText, "--mmproj", kMmproj, "--scenes", "0:2000000"}, "at most"},
        {{"eval", "-m", kText, "--mmproj", kMmproj, "--scenes", "0:10", "--qa-per-scene", "4294967296"}, "--qa-per-scene"},
        {{"inspect", "-m", kText, "--mmproj", kMmproj, "-n", "-5"}, "--n-predict"},
        {{"inspect", "-m", kText, "--mmproj", kMmproj, "-n", "99999999999"}, "--n-predict"},
        {{"inspect", "--mmproj", kMmproj}, "-m TEXT.gguf and --mmproj"},
    };
    for (const Bad& b : bad) {
        std::string line;
        for (const std::string& s : b.args) line += s + " ";
        const Run r = run_glimpse(b.args);
        INFO(line << "-> exit " << r.exit_code << ", stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(contains(r.err, b.says));
        CHECK(r.out.empty());
    }
    // 17 images: refused by count before any is decoded (the file list names a missing file).
    std::vector<std::string> many = {"caption", "-m", kText, "--mmproj", kMmproj};
    for (int i = 0; i < 17; ++i) many.insert(many.end(), {"--image", "/nonexistent.png"});
    const Run r = run_glimpse(many);
    CHECK(r.exit_code == 2);
    CHECK(contains(r.err, "at most 16 images"));
}

TEST_CASE("GLIMPSE_MAX_ISA must name a level") {
    if (test::emulated()) return;
    const Run bad = run_glimpse(caption_args(), Stdout::capture, {"GLIMPSE_MAX_ISA=foo"});
    CHECK(bad.exit_code == 2);
    CHECK(contains(bad.err, "GLIMPSE_MAX_ISA"));
    const Run ok = run_glimpse(caption_args(), Stdout::capture, {"GLIMPSE_MAX_ISA=scalar"});
    CHECK(ok.exit_code == 0);
}

TEST_CASE("--help states the exit codes, and so does every command's help") {
    if (test::emulated()) return;
    for (const char* cmd : {"caption", "inspect", "eval"}) {
        const Run r = run_glimpse({cmd, "--help"});
        CHECK(r.exit_code == 0);
        CHECK(contains(r.out, "exit status: 0 success; 1 the run failed"));
        CHECK(contains(r.out, "2 usage error"));
    }
    const Run top = run_glimpse({});
    CHECK(top.exit_code == 2);
}

TEST_CASE("-t above the CPUs this process may use is clamped with a warning; the answer is the same") {
    if (test::emulated()) return;
    const Run one = run_glimpse(caption_args({"-t", "1"}));
    const Run many = run_glimpse(caption_args({"-t", "1024"}));
    REQUIRE(one.exit_code == 0);
    REQUIRE(many.exit_code == 0);
    CHECK(contains(many.err, "-t 1024 is more than the"));
    CHECK(many.out == one.out);
}

TEST_CASE("an answer that cannot be written fails the run: full disk, closed pipe") {
    if (test::emulated()) return;
    const Run full = run_glimpse(caption_args(), Stdout::dev_full);
    CHECK(full.signal == 0);
    CHECK(full.exit_code == 1);
    CHECK(contains(full.err, "cannot write the answer"));
    const Run pipe = run_glimpse(caption_args(), Stdout::closed_pipe);
    CHECK(pipe.signal == 0);
    CHECK(pipe.exit_code == 1);
    CHECK(contains(pipe.err, "cannot write the answer"));
}

TEST_CASE("a LLaVA mmproj with a SmolVLM text model of the same width is refused as not a pair") {
    if (test::emulated()) return;
    const Run r = run_glimpse({"caption", "-m", kText, "--mmproj", kLlavaMmproj, "--image", kImage});
    CHECK(r.exit_code == 1);
    CHECK(contains(r.err, "not a pair"));
    CHECK(r.out.empty());
}

TEST_CASE("prompt and answer are bounded by the model's context length") {
    if (test::emulated()) return;
    // The same text model with a 64-position context: the tiny.png prompt takes 46 positions.
    const std::string small_ctx = with_u32(kText, "llama.context_length", 64, "ctx64-text.gguf");
    const Run clamped = run_glimpse({"caption", "-m", small_ctx, "--mmproj", kMmproj, "--image", kImage, "--temp", "0",
                                     "-n", "1000"});
    CHECK(clamped.exit_code == 0);
    CHECK(contains(clamped.err, "generating at most 18 tokens"));
    // A prompt over the context: refused before encoding, with both numbers.
    std::string words;
    for (int i = 0; i < 40; ++i) words += "cat ";
    const Run over = run_glimpse({"caption", "-m", small_ctx, "--mmproj", kMmproj, "--image", kImage, "-p", words});
    CHECK(over.exit_code == 1);
    CHECK(contains(over.err, "but the model's context is 64"));
    CHECK(over.out.empty());
    // inspect plans for what the context leaves.
    const Run plan = run_glimpse({"inspect", "-m", small_ctx, "--mmproj", kMmproj, "-n", "1000"});
    CHECK(plan.exit_code == 0);
    CHECK(contains(plan.err, "planning for 18"));
}

TEST_CASE("model metadata that asks for absurd preprocessing is refused at load") {
    if (test::emulated()) return;
    // 64 px tiles: a longest edge of 512 is an 8x8 grid (the cap), 8192 would be 128x128 tiles.
    const std::string at_cap = with_u32(kMmproj, "clip.vision.preproc_image_size", 512, "pre512-mmproj.gguf");
    const std::string absurd = with_u32(kMmproj, "clip.vision.preproc_image_size", 8192, "pre8192-mmproj.gguf");
    const Run ok = run_glimpse({"inspect", "-m", kText, "--mmproj", at_cap, "--image", kImage, "-n", "8"});
    CHECK(ok.exit_code == 0);
    CHECK(contains(ok.out, "65 chunks"));
    const Run bad = run_glimpse({"inspect", "-m", kText, "--mmproj", absurd});
    CHECK(bad.exit_code == 1);
    CHECK(contains(bad.err, "clip.vision.preproc_image_size"));
    const Run ctx = run_glimpse({"inspect", "-m", with_u32(kText, "llama.context_length", 0x7fffffff, "ctxhuge-text.gguf"),
                                 "--mmproj", kMmproj});
    CHECK(ctx.exit_code == 1);
    CHECK(contains(ctx.err, "llama.context_length"));
}

TEST_CASE("inspect shows control characters in metadata escaped, not raw") {
    if (test::emulated()) return;
    // general.name "Tiny SmolVLM Text (random)" -> an OSC title sequence + a forged line.
    const std::string hostile = with_bytes(kText, "Tiny SmolVLM Text (random)", std::string("\x1b]0;pwned\x07\nfake: k 1 2 3 4", 26),
                                           "escape-text.gguf");
    const Run r = run_glimpse({"inspect", "-m", hostile, "--mmproj", kMmproj, "-n", "1"});
    CHECK(r.exit_code == 0);
    CHECK_FALSE(contains(r.out, "\x1b"));
    CHECK_FALSE(contains(r.out, "\x07"));
    CHECK(contains(r.out, "\\x1b]0;pwned\\x07\\x0afake"));
}

TEST_CASE("--prune/--keep/--plan: usage errors exit 2, a method the model cannot run exits 1 before any work") {
    if (test::emulated()) return;
    const Run alone = run_glimpse(caption_args({"--prune", "uniform"}));
    CHECK(alone.exit_code == 2);
    CHECK(contains(alone.err, "--keep"));
    const Run both = run_glimpse(caption_args({"--prune", "uniform", "--keep", "0.5", "--plan", "/nonexistent.json"}));
    CHECK(both.exit_code == 2);
    CHECK(contains(both.err, "--plan"));
    const Run zero = run_glimpse(caption_args({"--prune", "uniform", "--keep", "0"}));
    CHECK(zero.exit_code == 2);
    CHECK(contains(zero.err, "keep"));
    const Run missing = run_glimpse(caption_args({"--plan", "/nonexistent.json"}));
    CHECK(missing.exit_code == 2);
    CHECK(contains(missing.err, "/nonexistent.json"));
    // The decoder-layer shorthand reads the text model's depth before the load: a text GGUF that
    // cannot be opened is a failed run (exit 1) naming the file, as the load would report it.
    const Run no_text = run_glimpse({"caption", "-m", "/nonexistent-text.gguf", "--mmproj", kMmproj, "--image", kImage,
                                     "--prune", "fastv", "--keep", "0.5"});
    CHECK(no_text.exit_code == 1);
    CHECK(contains(no_text.err, "/nonexistent-text.gguf"));
    // The tiny SmolVLM's SigLIP has no [CLS] token.
    const Run cls = run_glimpse(caption_args({"--prune", "fastervlm", "--keep", "0.5"}));
    CHECK(cls.exit_code == 1);
    CHECK(contains(cls.err, "[CLS]"));
    CHECK(cls.out.empty());
}

TEST_CASE("caption --keep-map writes a PNG of the image's size or wider; inspect shows the kept tokens") {
    if (test::emulated()) return;
    const std::string map = (scratch_dir() / "keep.png").string();
    const Run r = run_glimpse(caption_args({"--prune", "uniform", "--keep", "0.25", "--keep-map", map}));
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    auto picture = image_decode_file(map);
    REQUIRE_MESSAGE(picture.is_ok(), picture.status().message());
    auto input = image_decode_file(kImage);
    REQUIRE(input.is_ok());
    CHECK(picture->height >= input->height);
    CHECK(picture->width > input->width);  // the overview sits to the right of the main view
    CHECK(contains(r.err, "kept of"));
    const Run two = run_glimpse(caption_args({"--image", kImage, "--keep-map", map}));
    CHECK(two.exit_code == 2);
    const Run ins = run_glimpse({"inspect", "-m", kText, "--mmproj", kMmproj, "--prune", "uniform", "--keep", "0.25"});
    CHECK_MESSAGE(ins.exit_code == 0, ins.err);
    CHECK(contains(ins.out, "pruning: uniform after the projector, keeping"));
}

TEST_CASE("--kv-type: an unknown type is a usage error; q8_0 on a head_dim that is not a multiple of 32 is refused "
          "at load") {
    if (test::emulated()) return;
    const Run bad = run_glimpse(caption_args({"--kv-type", "q5_0"}));
    CHECK(bad.exit_code == 2);
    CHECK(contains(bad.err, "--kv-type"));
    CHECK(bad.out.empty());
    // The tiny SmolVLM has head_dim 16.
    for (const char* type : {"q8_0", "q4_0"}) {
        const Run r = run_glimpse(caption_args({"--kv-type", type}));
        INFO(r.err);
        CHECK(r.exit_code == 1);
        CHECK(contains(r.err, "head_dim 16 is not a multiple of 32"));
        CHECK(r.out.empty());
    }
}

TEST_CASE("inspect --json: the memory plan by part; total is their sum, kv_cache the formula of --kv-type") {
    if (test::emulated()) return;
    // The bundled SmolVLM layout: 4 decoder layers, 2 KV heads of 64 (docs/models.md).
    const std::string plan_path = write_scratch_file("uniform-half.json", R"({"format": "glimpse.pruning-plan",
        "version": 1, "stages": [{"at": "after_projector", "method": "uniform", "keep": 0.5}]})");
    struct Want {
        const char* type;
        int64_t bytes_per_row;  // 128 values: f16 2 each, q8_0 4 blocks of 34, q4_0 4 of 18
    };
    for (bool with_plan : {false, true}) {
        int64_t total_f16 = 0;
        for (const Want& w : {Want{"f16", 256}, Want{"f32", 512}, Want{"q8_0", 136}, Want{"q4_0", 72}}) {
            std::vector<std::string> args = {"inspect", "-m",     kBundledText, "--mmproj", kBundledMmproj,
                                             "--kv-type", w.type, "--json",       "-n",       "100"};
            if (with_plan) args.insert(args.end(), {"--plan", plan_path});
            const Run r = run_glimpse(args);
            INFO(w.type << (with_plan ? " with --plan" : "") << ": " << r.err << r.out);
            REQUIRE(r.exit_code == 0);
            auto doc = json_parse(r.out);
            REQUIRE_MESSAGE(doc.is_ok(), doc.status().message());
            const JsonValue* bytes = doc->find("bytes");
            REQUIRE(bytes != nullptr);
            auto part = [&](const char* name) {
                const JsonValue* v = bytes->find(name);
                REQUIRE_MESSAGE(v != nullptr, name);
                CHECK(v->as_int() >= 0);
                return v->as_int();
            };
            const int64_t weights = part("weights"), kv = part("kv_cache"), act = part("activations"),
                          images = part("image_buffers"), total = part("total");
            CHECK(total == weights + kv + act + images);
            CHECK(weights > 0);
            CHECK(act > 0);
            CHECK(images > 0);
            CHECK(doc->find("kv_type")->as_string() == w.type);
            const int64_t positions = doc->find("prompt_positions")->as_int();
            CHECK(doc->find("n_predict")->as_int() == 100);
            // K and V of each of the 4 layers: prompt + 100 slots, each 64-byte aligned.
            const int64_t slots = positions + 100;
            CHECK(kv == 4 * 2 * ((slots * w.bytes_per_row + 63) / 64 * 64));
            const int64_t image_tokens = doc->find("image")->find("tokens")->as_int();
            CHECK(image_tokens == (with_plan ? 40 : 80));  // 2×2 tiles + overview of 16 tokens
            CHECK(doc->find("plan")->is_null() == !with_plan);
            if (std::string(w.type) == "f16") total_f16 = total;
            if (std::string(w.type) == "q8_0") CHECK(total < total_f16);
        }
    }
    // --json prints nothing but the JSON: a bad flag is still a usage error.
    const Run bad =
        run_glimpse({"inspect", "-m", kBundledText, "--mmproj", kBundledMmproj, "--json", "--kv-type", "int4"});
    CHECK(bad.exit_code == 2);
    CHECK(bad.out.empty());
}

TEST_CASE("inspect --json with a per-layer mixed KV plan: each layer's share and bytes, the cache their sum") {
    if (test::emulated()) return;
    // The bundled SmolVLM layout: 4 decoder layers, 2 KV heads of 64 (128 values: q8_0 136 bytes, q4_0 72).
    const std::string plan_path = write_scratch_file("mixed-per-layer.json", R"({"format": "glimpse.pruning-plan",
        "version": 1, "stages": [], "kv_cache": {"type": "mixed", "high_precision_share": [0.5, 0.25, 0, 1]}})");
    const Run r = run_glimpse(
        {"inspect", "-m", kBundledText, "--mmproj", kBundledMmproj, "--plan", plan_path, "--json", "-n", "100"});
    INFO(r.err << r.out);
    REQUIRE(r.exit_code == 0);
    auto doc = json_parse(r.out);
    REQUIRE_MESSAGE(doc.is_ok(), doc.status().message());
    CHECK(doc->find("kv_type")->as_string() == "mixed");
    const JsonValue* shares = doc->find("kv_high_share_per_layer");
    const JsonValue* layer_bytes = doc->find("kv_cache_layer_bytes");
    REQUIRE((shares && layer_bytes && shares->size() == 4 && layer_bytes->size() == 4));
    const double want_share[4] = {0.5, 0.25, 0, 1};
    const int64_t P = doc->find("prompt_positions")->as_int(), slots = P + 100;
    auto align64 = [](int64_t n) { return (n + 63) / 64 * 64; };
    int64_t sum = 0;
    for (size_t l = 0; l < 4; ++l) {
        CHECK(shares->items()[l].as_number() == want_share[l]);
        // q8_0 rows: ⌈S·P⌉ of the prompt + the 100 answer slots; q4_0 the rest; a 4-byte map entry per slot.
        const int64_t high = static_cast<int64_t>(std::ceil(want_share[l] * static_cast<double>(P))) + 100;
        const int64_t want = 2 * align64(high * 136) + 2 * align64((slots - high) * 72) + align64(4 * slots);
        CHECK_MESSAGE(layer_bytes->items()[l].as_int() == want, "layer " << l);
        sum += want;
    }
    CHECK(doc->find("bytes")->find("kv_cache")->as_int() == sum + 4 * slots);  // + the ranking scratch
    // The text report names each layer's share.
    const Run t =
        run_glimpse({"inspect", "-m", kBundledText, "--mmproj", kBundledMmproj, "--plan", plan_path, "-n", "100"});
    REQUIRE(t.exit_code == 0);
    CHECK(contains(t.out, "mixed KV cache per layer (q8_0 share, bytes): 0: 0.5 "));
}

TEST_CASE("calibrate: bad sizes exit 2, an impossible budget exits 1 naming the minimum, a plan is written and runs") {
    if (test::emulated()) return;
    const std::vector<std::string> model = {"-m", kBundledText, "--mmproj", kBundledMmproj};
    const std::string plan_path = (scratch_dir() / "calibrated.json").string();
    const std::string svg_path = (scratch_dir() / "calibrated.svg").string();
    auto calibrate = [&](const std::string& budget) {
        std::vector<std::string> args = {"calibrate"};
        args.insert(args.end(), model.begin(), model.end());
        for (const char* a : {"--scenes", "1001000:1001002", "--preset", "bundled", "--questions-per-scene", "1", "-n", "2"}) {
            args.emplace_back(a);
        }
        for (const std::string& a : {std::string("--memory-budget"), budget, std::string("-o"), plan_path,
                                     std::string("--plot"), svg_path}) {
            args.push_back(a);
        }
        return run_glimpse(args);
    };
    const Run garbage = calibrate("12 bananas");
    CHECK(garbage.exit_code == 2);
    CHECK(contains(garbage.err, "12 bananas"));
    const Run tiny = calibrate("1MiB");
    CHECK(tiny.exit_code == 1);
    CHECK(contains(tiny.err, "below the smallest plan"));
    CHECK(contains(tiny.err, "weights"));
    CHECK_FALSE(fs::exists(plan_path));
    // A budget the unpruned model fits: the plan prunes nothing and records the budget.
    const Run ok = calibrate("1GiB");
    REQUIRE(ok.exit_code == 0);
    CHECK(contains(ok.out, "unpruned"));
    const std::string plan = slurp(plan_path);
    CHECK(contains(plan, "\"budget_bytes\": 1073741824"));
    CHECK(contains(plan, "\"model\": \"glimpse scenes smolvlm text\""));
    CHECK(contains(slurp(svg_path), "<svg"));
    std::vector<std::string> inspect = {"inspect"};
    inspect.insert(inspect.end(), model.begin(), model.end());
    inspect.insert(inspect.end(), {"--plan", plan_path, "-n", "2"});
    const Run shown = run_glimpse(inspect);
    CHECK(shown.exit_code == 0);
    CHECK(contains(shown.out, "plan calibrated (greedy)"));
    // Another model refuses it; a plan's kv_cache.type against another --kv-type is a usage error.
    const Run other = run_glimpse({"inspect", "-m", kBundledDir + "/scenes-llava-f16-text.gguf", "--mmproj",
                                   kBundledDir + "/scenes-llava-f16-mmproj.gguf", "--plan", plan_path});
    CHECK(other.exit_code == 1);
    CHECK(contains(other.err, "calibrate again"));
    const std::string q4_path = write_scratch_file(
        "q4.json", R"({"format": "glimpse.pruning-plan", "version": 1, "stages": [], "kv_cache": {"type": "q4_0"}})");
    std::vector<std::string> conflict = inspect;
    conflict[conflict.size() - 3] = q4_path;
    conflict.insert(conflict.end(), {"--kv-type", "q8_0"});
    const Run clash = run_glimpse(conflict);
    CHECK(clash.exit_code == 2);
    CHECK(contains(clash.err, "conflicts"));
}

TEST_CASE("a calibrated plan's budget: caption, inspect and eval refuse a request that plans more, naming both; "
          "--over-budget runs it with a warning; a plan without the block is not checked") {
    if (test::emulated()) return;
    const std::vector<std::string> model = {"-m", kBundledText, "--mmproj", kBundledMmproj};
    const std::string prompt = "Is there a small purple triangle in the image?";
    // Images: the reference 320x160 (a 2x1 tile grid on the bundled model: 80 px tiles, 160 px longest
    // edge), a smaller 160x80 (the same grid) and a 480x480 (2x2: more tiles, more planned bytes).
    auto png = [&](const std::string& name, int w, int h) {
        ImageU8 img;
        img.width = w;
        img.height = h;
        img.rgb.resize(static_cast<size_t>(w) * h * 3);
        for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<uint8_t>((i * 37) % 251);
        const std::string path = (scratch_dir() / name).string();
        REQUIRE(image_write_png(path, img).is_ok());
        return path;
    };
    const std::string ref_png = png("budget-ref.png", 320, 160), small_png = png("budget-small.png", 160, 80),
                      large_png = png("budget-large.png", 480, 480);
    const std::string stages = R"("format": "glimpse.pruning-plan", "version": 1,
        "stages": [{"at": "after_projector", "method": "divprune", "keep": 0.5}], "kv_cache": {"type": "q8_0"})";
    const std::string plain_path = write_scratch_file("budget-plain.json", "{" + stages + "}");
    auto with_plan = [&](std::vector<std::string> args, const std::string& plan) {
        args.insert(args.begin() + 1, model.begin(), model.end());
        args.insert(args.end(), {"--plan", plan});
        if (args[0] != "eval") args.insert(args.end(), {"-p", prompt});  // eval asks the scenes' own questions
        return run_glimpse(args);
    };
    // The oracle: the planner's own total for the reference request (inspect --json with the plan
    // without its calibration block) + the process overhead of its weights.
    const Run ref = with_plan({"inspect", "--json", "--image", ref_png, "-n", "8"}, plain_path);
    REQUIRE_MESSAGE(ref.exit_code == 0, ref.err);
    auto doc = json_parse(ref.out);
    REQUIRE(doc.is_ok());
    const int64_t planned = doc->find("bytes")->find("total")->as_int();
    const int64_t budget = planned + calibration_process_overhead(doc->find("bytes")->find("weights")->as_int());
    // Text tokens of the prompt (tile markers included), as calibrate records them.
    const int64_t prompt_tokens = doc->find("prompt_positions")->as_int() - doc->find("image")->find("tokens")->as_int();
    const std::string plan_path = write_scratch_file(
        "budget-calibrated.json", "{" + stages + R"(, "calibration": {"budget_bytes": )" + std::to_string(budget) +
                                      R"(, "image_size": [320, 160], "prompt_tokens": )" + std::to_string(prompt_tokens) +
                                      R"(, "answer_tokens": 8, "search": "greedy"}})");
    auto caption = [&](const std::string& image, const std::string& n, const std::string& plan, bool anyway = false) {
        std::vector<std::string> args = {"caption", "--image", image, "-n", n, "--temp", "0"};
        if (anyway) args.push_back("--over-budget");
        return with_plan(args, plan);
    };

    // The same request and a smaller image run.
    const Run same = caption(ref_png, "8", plan_path);
    CHECK_MESSAGE(same.exit_code == 0, same.err);
    const Run smaller = caption(small_png, "8", plan_path);
    CHECK_MESSAGE(smaller.exit_code == 0, smaller.err);
    CHECK_FALSE(contains(same.err + smaller.err, "budget"));
    // A larger image and a longer answer are refused, naming both geometries and what to do.
    const Run larger = caption(large_png, "8", plan_path);
    CHECK(larger.exit_code == 1);
    CHECK(contains(larger.err, "(a 480x480 image, "));
    CHECK(contains(larger.err, "calibrated for a 320x160 image, " + std::to_string(prompt_tokens) +
                                   " prompt tokens and 8 answer tokens"));
    CHECK(contains(larger.err, "budget of " + std::to_string(budget) + " bytes"));
    CHECK(contains(larger.err, "calibrate again for it (--image-size 480x480 -n 8"));
    CHECK(contains(larger.err, "--over-budget"));
    CHECK(larger.out.empty());  // refused before generating
    const Run longer = caption(ref_png, "64", plan_path);
    CHECK(longer.exit_code == 1);
    CHECK(contains(longer.err, "(a 320x160 image, "));
    CHECK(contains(longer.err, ", 64 answer tokens) plans "));
    // --over-budget runs it, with one warning line carrying the numbers.
    const Run anyway = caption(large_png, "8", plan_path, true);
    CHECK_MESSAGE(anyway.exit_code == 0, anyway.err);
    CHECK(contains(anyway.err, "glimpse: warning: this request (a 480x480 image, "));
    CHECK(contains(anyway.err, "running anyway (--over-budget)"));
    // inspect (--json too) checks the request it plans for.
    const Run inspect_large = with_plan({"inspect", "--json", "--image", large_png, "-n", "8"}, plan_path);
    CHECK(inspect_large.exit_code == 1);
    CHECK(contains(inspect_large.err, "over the pruning plan's budget"));
    const Run inspect_ref = with_plan({"inspect", "--json", "--image", ref_png, "-n", "8"}, plan_path);
    CHECK_MESSAGE(inspect_ref.exit_code == 0, inspect_ref.err);
    // eval checks every request: its captions plan 96 answer tokens, over this budget; the error names the scene.
    const Run eval = with_plan({"eval", "--scenes", "1000000:1000001", "--preset", "bundled"}, plan_path);
    CHECK(eval.exit_code == 1);
    CHECK(contains(eval.err, "scene 1000000 (caption) ("));
    CHECK(contains(eval.err, ", 96 answer tokens) plans "));
    const Run eval_anyway =
        with_plan({"eval", "--scenes", "1000000:1000001", "--preset", "bundled", "--over-budget"}, plan_path);
    CHECK_MESSAGE(eval_anyway.exit_code == 0, eval_anyway.err);
    CHECK(contains(eval_anyway.err, "ran over the calibrated plan's budget (--over-budget)"));
    // The plan without its calibration block is never checked.
    const Run unchecked = caption(large_png, "64", plain_path);
    CHECK_MESSAGE(unchecked.exit_code == 0, unchecked.err);
    CHECK_FALSE(contains(unchecked.err, "budget"));
}

TEST_CASE("calibrate: the summary names the KV cache the plan file holds, per decoder layer when it has a list") {
    if (test::emulated()) return;
    const std::string dir = test::source_dir() + "/models/bundled";
    const std::string prefix = (scratch_dir() / "kv-path-").string();
    auto calibrate = [&](const std::string& budget, const std::string& out, bool path_plans) {
        std::vector<std::string> args = {"calibrate", "-m", dir + "/scenes-smolvlm-f16-text.gguf", "--mmproj",
                                         dir + "/scenes-smolvlm-f16-mmproj.gguf", "--scenes", "1001000:1001002",
                                         "--preset", "bundled", "--questions-per-scene", "1", "-n", "2", "--methods",
                                         "kv", "--memory-budget", budget, "-o", out};
        if (path_plans) args.insert(args.end(), {"--path-plans", prefix});
        return run_glimpse(args);
    };
    auto kv_cache_of = [](const std::string& path) {
        auto doc = json_parse_file(path);
        REQUIRE_MESSAGE(doc.is_ok(), doc.status().message());
        const JsonValue* kv = doc->find("kv_cache");
        REQUIRE(kv != nullptr);
        return *kv;
    };
    // The smallest plan the KV lever reaches (the error names it), then the search down to it: its
    // path passes through plans that lower single layers' q8_0 shares (one share per layer).
    const Run too_small = calibrate("1MiB", (scratch_dir() / "none.json").string(), false);
    REQUIRE(too_small.exit_code == 1);
    const size_t at = too_small.err.find(" answer tokens: ");
    REQUIRE(at != std::string::npos);
    const long long smallest = std::atoll(too_small.err.c_str() + at + std::strlen(" answer tokens: "));
    REQUIRE(smallest > 0);
    const Run down = calibrate(std::to_string(smallest), (scratch_dir() / "kv-smallest.json").string(), true);
    REQUIRE_MESSAGE(down.exit_code == 0, down.err);
    long long per_layer_budget = 0;
    for (int step = 0; fs::exists(prefix + std::to_string(step) + ".json") && per_layer_budget == 0; ++step) {
        auto step_plan = json_parse_file(prefix + std::to_string(step) + ".json");
        REQUIRE_MESSAGE(step_plan.is_ok(), step_plan.status().message());
        const JsonValue* kv = step_plan->find("kv_cache");  // absent: f16
        const JsonValue* share = kv ? kv->find("high_precision_share") : nullptr;
        if (share && share->is_array()) per_layer_budget = step_plan->find("calibration")->find("budget_bytes")->as_int();
    }
    REQUIRE_MESSAGE(per_layer_budget > 0, "no point of the search path lowers a single layer:\n" << down.out);
    // Calibrated for that point's total: the plan written has one share per layer, and the summary
    // says so (their range on the plan line, each share on its own line), not one global level.
    const std::string plan_path = (scratch_dir() / "kv-per-layer.json").string();
    const Run r = calibrate(std::to_string(per_layer_budget), plan_path, false);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const JsonValue kv = kv_cache_of(plan_path);
    CHECK(kv.find("type")->as_string() == "mixed");
    const JsonValue* shares = kv.find("high_precision_share");
    REQUIRE((shares && shares->is_array() && shares->size() == 4));
    double lo = 1, hi = 0, sum = 0;
    std::string listed;
    for (const JsonValue& v : shares->items()) {
        lo = std::min(lo, v.as_number());
        hi = std::max(hi, v.as_number());
        sum += v.as_number();
        char share[32];
        std::snprintf(share, sizeof share, " %g", v.as_number());
        listed += share;
    }
    CHECK(lo < hi);  // a list with one value would be the level itself
    char range[160];
    std::snprintf(range, sizeof range, "KV cache mixed (q8_0 share per decoder layer min %g, mean %g, max %g),", lo,
                  sum / 4, hi);
    INFO(r.out);
    CHECK(contains(r.out, range));
    CHECK(contains(r.out, "KV cache q8_0 share per decoder layer:" + listed + "\n"));
    // A plan with one level is named by it: the search down to the smallest plan ended at q4_0.
    const JsonValue smallest_kv = kv_cache_of((scratch_dir() / "kv-smallest.json").string());
    CHECK(contains(down.out, "KV cache " + smallest_kv.find("type")->as_string() + ","));
    CHECK_FALSE(contains(down.out, "share per decoder layer:"));
}

TEST_CASE("--debias is refused where it has nothing to debias; a plan for another depth is refused (issue 24)") {
    if (test::emulated()) return;
    const std::string head = R"({"format": "glimpse.pruning-plan", "version": 1, )";
    const std::string fastv = write_scratch_file(
        "fastv.json", head + R"("stages": [{"at": "decoder_layer", "layer": 0, "method": "fastv", "keep": 0.5}]})");
    // Usage errors (exit 2): --debias without a decoder shorthand, after_projector methods and
    // plan files included (a plan says "debias": true per stage instead).
    const char* usage = "--debias goes with --prune fastv|pyramiddrop|feather";
    for (const std::vector<std::string>& extra : std::vector<std::vector<std::string>>{
             {"--debias"}, {"--prune", "divprune", "--keep", "0.5", "--debias"}, {"--plan", fastv, "--debias"}}) {
        const Run r = run_glimpse(caption_args(extra));
        INFO(extra.front() << " ... -> exit " << r.exit_code << ", stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(contains(r.err, usage));
        CHECK(r.out.empty());
    }
    // Refused at load (exit 1), naming the stage: sparsevlm's rater scores are not debiased; and a
    // table recorded for 30 layers on this 2-layer model, naming both depths.
    const std::string sparse = write_scratch_file(
        "sparsevlm-debias.json",
        head + R"("stages": [{"at": "decoder_layer", "layer": 0, "method": "sparsevlm", "keep": 0.5, "args": {"debias": true}}]})");
    const std::string deep = write_scratch_file(
        "depth30.json", head + R"("decoder_layers": 30, "stages": [{"at": "decoder_layer", "layer": 0, "method": "fastv", "keep": 0.5}]})");
    const struct {
        std::string plan;
        const char* says;
    } refused[] = {
        {sparse, "stages[0].args.debias: sparsevlm's rater scores are not debiased"},
        {deep, "decoder_layers: the plan was made for a language model of 30 layers; this one has 2"},
    };
    for (const auto& c : refused) {
        const Run r = run_glimpse(caption_args({"--plan", c.plan}));
        INFO(c.plan << " -> exit " << r.exit_code << ", stderr: " << r.err);
        CHECK(r.exit_code == 1);
        CHECK(contains(r.err, c.says));
        CHECK(r.out.empty());
    }
}
