// `glimpse caption --each DIR|LIST` and `glimpse caption --json`, run as the real binary on the
// bundled SmolVLM-layout model: every line of a batch must be what a separate `glimpse caption`
// run prints for that image with the same settings (the oracle), images that fail get an error
// line without stopping the others, and every line is valid JSON whatever the file names hold.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/image.h"
#include "runtime/json.h"
#include "test_bundled.h"
#include "test_util.h"
#include "tools/scenes/scene.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace glimpse;

namespace {

using Run = test::ProcessRun;

// The CLI of this build, at the machine's own ISA level whatever cap the test runner has (as
// test_cli does).
Run run_glimpse(const std::vector<std::string>& args, const test::TempDir& dir) {
    std::vector<std::string> argv = {GLIMPSE_CLI_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_process(std::move(argv), dir, {}, {"GLIMPSE_MAX_ISA"});
}

const std::string kBundled = test::bundled_dir();
const std::vector<std::string> kModel = {"-m", kBundled + "/scenes-smolvlm-q8_0-text.gguf", "--mmproj",
                                         kBundled + "/scenes-smolvlm-f16-mmproj.gguf", "-t", "2"};
const std::string kSample = kBundled + "/samples/1000000.png";

std::vector<std::string> with_model(std::vector<std::string> args) {
    std::vector<std::string> a = {"caption"};
    a.insert(a.end(), kModel.begin(), kModel.end());
    a.insert(a.end(), args.begin(), args.end());
    return a;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < text.size()) {
        const size_t nl = text.find('\n', start);
        REQUIRE_MESSAGE(nl != std::string::npos, "output does not end with a newline: " << text);
        lines.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

JsonValue parse(const std::string& line) {
    auto v = json_parse(line, "output line");
    REQUIRE_MESSAGE(v.is_ok(), v.status().message() << "\nline: " << line);
    REQUIRE(v->is_object());
    return *v;
}

// A held-out scene of the bundled preset written as a PNG.
void write_scene(uint64_t seed, const std::string& path) {
    REQUIRE(image_write_png(path, test::bundled_scene_image(seed)).is_ok());
}

// What a separate `glimpse caption` run prints for one image (its stdout without the newline).
std::string separate_caption(const std::string& image, const std::vector<std::string>& settings,
                             const test::TempDir& dir) {
    std::vector<std::string> args = {"--image", image};
    args.insert(args.end(), settings.begin(), settings.end());
    const Run r = run_glimpse(with_model(args), dir);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    REQUIRE(!r.out.empty());
    REQUIRE(r.out.back() == '\n');
    return r.out.substr(0, r.out.size() - 1);
}

}  // namespace

TEST_CASE("caption --each DIR: one line per image, each the caption a separate run prints; bad files skipped") {
    if (test::emulated()) return;  // the CLI binary is not run under qemu (no binfmt there)
    test::TempDir dir("cli_batch_dir");
    const fs::path images = dir.path / "images";
    fs::create_directories(images / "sub.png");  // a directory with an image's name: not listed
    write_scene(1000101, (images / "b-scene.png").string());
    write_scene(1000102, (images / "c-scene.PNG").string());
    fs::copy_file(kSample, images / "a-sample.png");
    test::write_bytes((images / "bb-junk.png").string(), {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 1, 2, 3});
    test::write_bytes((images / "notes.json").string(), {'{', '}'});  // not an image extension: not listed
    // Sampled, not greedy: the same --seed must give each image the answer a separate run gives.
    const std::vector<std::string> settings = {"--temp", "0.8", "--seed", "7", "-n", "24"};

    std::vector<std::string> args = {"--each", images.string()};
    args.insert(args.end(), settings.begin(), settings.end());
    const Run r = run_glimpse(with_model(args), dir);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 1);  // one image failed
    const std::vector<std::string> lines = split_lines(r.out);
    const std::vector<std::string> expected_order = {"a-sample.png", "b-scene.png", "bb-junk.png", "c-scene.PNG"};
    REQUIRE(lines.size() == expected_order.size());
    for (size_t i = 0; i < lines.size(); ++i) {
        const JsonValue v = parse(lines[i]);
        const std::string path = (images / expected_order[i]).string();
        CHECK(v["image"].as_string() == path);
        if (expected_order[i] == "bb-junk.png") {
            CHECK(v.find("caption") == nullptr);
            CHECK(contains(v["error"].as_string(), path));
            CHECK(contains(r.err, path));
            continue;
        }
        REQUIRE(v.find("error") == nullptr);
        CHECK(v["caption"].as_string() == separate_caption(path, settings, dir));
        CHECK(v["ms"].is_number());
        CHECK(v["ms"].as_number() > 0);
        CHECK(v.find("n_generated") == nullptr);  // details only with --json
    }
    CHECK(contains(r.err, "captioned 3 of 4 images"));
    CHECK(!contains(r.err, "\r"));  // stderr is a file here: no progress bar
}

TEST_CASE("caption --each LIST: the listed paths in order, missing ones reported; --json adds counts") {
    if (test::emulated()) return;
    test::TempDir dir("cli_batch_list");
    const std::string scene = dir.file("scene.png"), missing = dir.file("missing.png");
    write_scene(1000103, scene);
    const std::string list = dir.file("list.txt");
    {
        std::ofstream f(list, std::ios::binary);
        f << "# images to caption\n" << scene << "\r\n\n" << missing << "\n" << kSample << "\n";
    }
    const std::vector<std::string> settings = {"--temp", "0", "-n", "16"};
    std::vector<std::string> args = {"--each", list, "--json"};
    args.insert(args.end(), settings.begin(), settings.end());
    Run r = run_glimpse(with_model(args), dir);
    CHECK(r.exit_code == 1);
    std::vector<std::string> lines = split_lines(r.out);
    REQUIRE(lines.size() == 3);
    const JsonValue first = parse(lines[0]), second = parse(lines[1]), third = parse(lines[2]);
    CHECK(first["image"].as_string() == scene);
    CHECK(second["image"].as_string() == missing);
    CHECK(contains(second["error"].as_string(), missing));
    CHECK(third["image"].as_string() == kSample);
    CHECK(first["caption"].as_string() == separate_caption(scene, settings, dir));
    CHECK(third["caption"].as_string() == separate_caption(kSample, settings, dir));
    for (const JsonValue* v : {&first, &third}) {
        CHECK((*v)["n_generated"].as_int() > 0);
        CHECK((*v)["n_generated"].as_int() <= 16);
        CHECK((*v)["n_prompt_tokens"].as_int() > (*v)["n_image_tokens"].as_int());
        CHECK((*v)["timings_ms"]["encode"].as_number() > 0);
    }

    // All good: exit 0.
    {
        std::ofstream f(list, std::ios::binary);
        f << scene << "\n";
    }
    r = run_glimpse(with_model({"--each", list, "--temp", "0", "-n", "4"}), dir);
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    CHECK(split_lines(r.out).size() == 1);
}

TEST_CASE("caption --each refuses what cannot work before loading anything") {
    if (test::emulated()) return;
    test::TempDir dir("cli_batch_bad");
    fs::create_directories(dir.path / "empty");
    const std::string empty_list = dir.file("empty.txt");
    test::write_bytes(empty_list, {'#', '\n', '\n'});
    struct Bad {
        std::vector<std::string> args;
        int exit_code;
        const char* says;
    };
    const std::vector<Bad> bad = {
        {{"--each", (dir.path / "empty").string()}, 1, "no image files"},
        {{"--each", empty_list}, 1, "names no images"},
        {{"--each", dir.file("nonexistent")}, 1, "not a directory or a readable list file"},
        {{"--each", (dir.path / "empty").string(), "--image", kSample}, 2, "does not take --image"},
        {{"--each", (dir.path / "empty").string(), "--keep-map", dir.file("k.png")}, 2, "--keep-map"},
    };
    for (const Bad& b : bad) {
        const Run r = run_glimpse(with_model(b.args), dir);
        INFO(b.says << " -> exit " << r.exit_code << ", stderr: " << r.err);
        CHECK(r.exit_code == b.exit_code);
        CHECK(contains(r.err, b.says));
        CHECK(r.out.empty());
    }
}

TEST_CASE("caption --json prints one object: the plain run's answer, its token counts and memory") {
    if (test::emulated()) return;
    test::TempDir dir("cli_json");
    const std::vector<std::string> settings = {"--image", kSample, "--temp", "0", "-n", "40"};
    const Run plain = run_glimpse(with_model(settings), dir);
    REQUIRE_MESSAGE(plain.exit_code == 0, plain.err);
    std::vector<std::string> args = settings;
    args.push_back("--json");
    const Run r = run_glimpse(with_model(args), dir);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const std::vector<std::string> lines = split_lines(r.out);
    REQUIRE(lines.size() == 1);
    const JsonValue v = parse(lines[0]);
    CHECK(v["answer"].as_string() + "\n" == plain.out);
    CHECK(v["prompt"].as_string() == "Describe this image.");
    REQUIRE(v["images"].size() == 1);
    CHECK(v["images"].items()[0].as_string() == kSample);
    // The plain run's stderr report is the oracle for the counts.
    const long long n_prompt = v["n_prompt_tokens"].as_int(), n_generated = v["n_generated"].as_int();
    CHECK(contains(plain.err, "for " + std::to_string(n_prompt) + " tokens ("));
    CHECK(contains(plain.err, "decode: "));
    CHECK(contains(plain.err, " for " + std::to_string(n_generated) + " tokens"));
    const JsonValue& m = v["memory_bytes"];
    CHECK(m["total"].as_int() == m["weights"].as_int() + m["vision_arena"].as_int() + m["text_arena"].as_int() +
                                     m["kv_cache"].as_int() + m["image_buffers"].as_int());
    CHECK(m["peak_rss"].as_int() > m["weights"].as_int());
    CHECK(v["threads"].as_int() >= 1);
    CHECK(v["ms"].as_number() > 0);
}

TEST_CASE("batch lines stay valid JSON for file names with quotes, control bytes and invalid UTF-8") {
    if (test::emulated()) return;
    test::TempDir dir("cli_batch_names");
    const fs::path images = dir.path / "images";
    fs::create_directories(images);
    // Quote, backslash, tab, newline, valid UTF-8 (é), a stray continuation byte, an overlong
    // '/', a UTF-16 surrogate: the invalid bytes each become U+FFFD, as Python's
    // bytes.decode("utf-8", "replace") makes them.
    const std::string name = std::string("we\"ird\\na\tme\n\xc3\xa9 \x80 \xc0\xaf \xed\xa0\x80") + ".png";
    const std::string shown = std::string("we\"ird\\na\tme\n\xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
                                          "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") + ".png";
    fs::copy_file(kSample, images / name);
    const Run r = run_glimpse(with_model({"--each", images.string(), "--temp", "0", "-n", "4"}), dir);
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    const std::vector<std::string> lines = split_lines(r.out);
    REQUIRE(lines.size() == 1);  // the newline in the name is escaped, not a line break
    const JsonValue v = parse(lines[0]);
    CHECK(v["image"].as_string() == images.string() + "/" + shown);
}
