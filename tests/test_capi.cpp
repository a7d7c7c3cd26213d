// The C interface (include/glimpse.h) against the C++ Vlm it wraps: the same model, image,
// prompt and settings must give the same answer, token counts and planned memory; every bad
// input ends in an error status with a message and leaves the model usable. The C example
// (examples/caption.c, linked against libglimpse.so) and the Python ctypes example
// (examples/caption.py) are run as programs and must print Vlm's answer. Uses the bundled
// SmolVLM-layout model and its sample scene (models/bundled).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "glimpse.h"
#include "models/vlm.h"
#include "runtime/image.h"
#include "runtime/threadpool.h"
#include "test_util.h"

extern char** environ;

using namespace glimpse;

namespace {

const std::string kBundled = test::source_dir() + "/models/bundled";
const std::string kText = kBundled + "/scenes-smolvlm-q8_0-text.gguf";
const std::string kMmproj = kBundled + "/scenes-smolvlm-f16-mmproj.gguf";
const std::string kImage = kBundled + "/samples/1000000.png";
constexpr const char* kCaptionPrompt = "Describe this image.";  // the CLI's and the C API's default

int test_threads() { return std::min(2, usable_cpu_count()); }

// The oracle: what the C++ class answers for the same inputs, as `glimpse caption` runs it
// (n_predict cut to what the context leaves).
struct VlmAnswer {
    std::string text;
    GenerationStats stats;
    VlmMemory memory;
};

VlmAnswer vlm_answer(const ImageU8& image, const std::string& prompt, int n_predict, const SamplingParams& sp,
                     const VlmConfig& base = {}) {
    VlmConfig cfg = base;
    cfg.n_threads = test_threads();
    auto vlm = Vlm::load(kText, kMmproj, cfg);
    REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().message());
    auto built = (*vlm)->build_prompt(prompt, std::vector<ImageU8>{image});
    REQUIRE_MESSAGE(built.is_ok(), built.status().message());
    const int64_t left = (*vlm)->context_length() - built->n_positions();
    VlmAnswer out;
    Status s = (*vlm)->generate(*built, static_cast<int>(std::min<int64_t>(n_predict, left)), sp,
                                [&](std::string_view bytes) {
                                    out.text.append(bytes);
                                    return true;
                                },
                                &out.stats);
    REQUIRE_MESSAGE(s.is_ok(), s.message());
    out.memory = (*vlm)->memory();
    return out;
}

SamplingParams greedy() {
    SamplingParams sp;
    sp.temperature = 0;
    return sp;
}

ImageU8 sample_image() {
    auto img = image_decode_file(kImage);
    REQUIRE_MESSAGE(img.is_ok(), img.status().message());
    return *img;
}

struct ModelHandle {
    glimpse_model* model = nullptr;
    ~ModelHandle() { glimpse_model_free(model); }
};

ModelHandle load_model(const glimpse_model_options* extra = nullptr) {
    glimpse_model_options opts;
    glimpse_model_options_init(&opts);
    if (extra) opts = *extra;
    opts.n_threads = test_threads();
    ModelHandle h;
    const glimpse_status s = glimpse_model_load(kText.c_str(), kMmproj.c_str(), &opts, &h.model);
    REQUIRE_MESSAGE(s == GLIMPSE_OK, glimpse_last_error());
    REQUIRE(h.model != nullptr);
    return h;
}

glimpse_generate_options greedy_options(int n_predict) {
    glimpse_generate_options o;
    glimpse_generate_options_init(&o);
    o.temperature = 0;
    o.n_predict = n_predict;
    return o;
}

// The answer as a std::string (freeing the library's copy).
struct Asked {
    glimpse_status status = GLIMPSE_INTERNAL;
    std::string answer;
    std::string error;
    bool answer_null = true;
};

Asked take(glimpse_status status, char* answer) {
    Asked a;
    a.status = status;
    a.answer_null = answer == nullptr;
    if (answer) a.answer = answer;
    a.error = glimpse_last_error();
    glimpse_string_free(answer);
    return a;
}

Asked ask_file(glimpse_model* m, const std::string& path, const char* prompt, const glimpse_generate_options* o,
               glimpse_text_callback cb = nullptr, void* user = nullptr) {
    char* answer = nullptr;
    const glimpse_status s = glimpse_ask_file(m, path.c_str(), prompt, o, cb, user, &answer);
    return take(s, answer);
}

Asked ask_rgb(glimpse_model* m, const uint8_t* rgb, int32_t w, int32_t h, size_t stride,
              const glimpse_generate_options* o) {
    char* answer = nullptr;
    const glimpse_status s = glimpse_ask_rgb(m, rgb, w, h, stride, nullptr, o, nullptr, nullptr, &answer);
    return take(s, answer);
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

struct Pieces {
    std::vector<std::string> seen;
    size_t stop_after = 0;  // 0: never stop
};

int record_piece(const char* bytes, size_t n, void* user) {
    Pieces* p = static_cast<Pieces*>(user);
    p->seen.emplace_back(bytes, n);
    return p->stop_after != 0 && p->seen.size() >= p->stop_after ? 1 : 0;
}

// ---- running the examples as programs ----

using Run = test::ProcessRun;

Run run_program(std::vector<std::string> argv_s, const std::vector<std::string>& env_extra,
                const test::TempDir& dir) {
    return test::run_process(std::move(argv_s), dir, env_extra);
}

// Under ASan (make test-asan) libglimpse.so is instrumented; a Python interpreter that loads it
// needs the ASan runtime loaded first, and its own allocations are not ours to leak-check.
std::vector<std::string> python_env() {
    std::vector<std::string> env = {std::string("GLIMPSE_LIBRARY=") + GLIMPSE_SHARED_LIBRARY};
    if (std::strlen(GLIMPSE_ASAN_RUNTIME) > 0) {
        env.push_back(std::string("LD_PRELOAD=") + GLIMPSE_ASAN_RUNTIME);
        env.push_back("ASAN_OPTIONS=detect_leaks=0");
    }
    return env;
}

}  // namespace

TEST_CASE("glimpse_version is the project's version, as the header states it") {
    CHECK(std::string(glimpse_version()) == GLIMPSE_PROJECT_VERSION);
    const std::string from_header = std::to_string(GLIMPSE_VERSION_MAJOR) + "." + std::to_string(GLIMPSE_VERSION_MINOR) +
                                    "." + std::to_string(GLIMPSE_VERSION_PATCH);
    CHECK(from_header == GLIMPSE_PROJECT_VERSION);
    CHECK(std::string(glimpse_status_name(GLIMPSE_OK)) == "ok");
    CHECK(std::string(glimpse_status_name(GLIMPSE_OUT_OF_RANGE)) == "out_of_range");
    CHECK(std::string(glimpse_status_name(99)) == "unknown");
    CHECK(std::string(glimpse_status_name(-1)) == "unknown");
}

TEST_CASE("a caption through the C API is Vlm's, from a file and from pixels in memory with padded rows") {
    const ImageU8 image = sample_image();
    const int n_predict = test::emulated() ? 12 : 48;
    const VlmAnswer expected = vlm_answer(image, kCaptionPrompt, n_predict, greedy());
    REQUIRE(!expected.text.empty());

    ModelHandle h = load_model();
    const glimpse_generate_options o = greedy_options(n_predict);
    Pieces pieces;
    const Asked from_file = ask_file(h.model, kImage, nullptr, &o, record_piece, &pieces);
    REQUIRE_MESSAGE(from_file.status == GLIMPSE_OK, from_file.error);
    CHECK(from_file.answer == expected.text);
    CHECK(from_file.error.empty());
    std::string streamed;
    for (const std::string& p : pieces.seen) streamed += p;
    CHECK(streamed == from_file.answer);  // the callback saw exactly the answer

    glimpse_stats st;
    REQUIRE(glimpse_last_stats(h.model, &st) == GLIMPSE_OK);
    CHECK(st.n_prompt_tokens == expected.stats.n_prompt);
    CHECK(st.n_image_tokens == expected.stats.n_image_tokens);
    CHECK(st.n_image_tokens_in == expected.stats.n_image_tokens_in);
    CHECK(st.n_image_chunks == expected.stats.n_image_chunks);
    CHECK(st.n_generated == expected.stats.n_generated);
    CHECK(st.stopped_at_eog == (expected.stats.stopped_at_eog ? 1 : 0));
    CHECK(st.stopped_by_callback == 0);
    CHECK(st.n_predict == n_predict);
    CHECK(st.encode_ms > 0);
    CHECK(st.prefill_ms > 0);

    glimpse_memory mem;
    REQUIRE(glimpse_memory_report(h.model, &mem) == GLIMPSE_OK);
    CHECK(mem.total == expected.memory.total());
    CHECK(mem.weights == expected.memory.weights);
    CHECK(mem.kv_cache == expected.memory.kv_cache);
    CHECK(mem.total == mem.weights + mem.vision_arena + mem.text_arena + mem.kv_cache + mem.image_buffers);
    CHECK(mem.process_rss > 0);
    CHECK(mem.process_peak_rss >= mem.process_rss / 2);  // statm and getrusage count slightly differently

    // The same pixels, rows 13 bytes apart more than needed; the padding holds bytes that would
    // change the image if they were read.
    const size_t row = static_cast<size_t>(image.width) * 3, stride = row + 13;
    std::vector<uint8_t> padded(stride * static_cast<size_t>(image.height), 0xAB);
    for (int y = 0; y < image.height; ++y) std::memcpy(padded.data() + y * stride, image.rgb.data() + y * row, row);
    const Asked from_pixels = ask_rgb(h.model, padded.data(), image.width, image.height, stride, &o);
    REQUIRE_MESSAGE(from_pixels.status == GLIMPSE_OK, from_pixels.error);
    CHECK(from_pixels.answer == expected.text);
}

TEST_CASE("sampling, a question, the KV type and pruning options reach Vlm as the CLI's flags do") {
    const ImageU8 image = sample_image();
    const int n_predict = test::emulated() ? 8 : 24;
    SUBCASE("temperature 0.7, seed 12345, a question") {
        SamplingParams sp;
        sp.temperature = 0.7f;
        sp.seed = 12345;
        const char* question = "What color is the triangle?";
        const VlmAnswer expected = vlm_answer(image, question, n_predict, sp);
        ModelHandle h = load_model();
        glimpse_generate_options o;
        glimpse_generate_options_init(&o);
        o.temperature = 0.7f;
        o.seed = 12345;
        o.n_predict = n_predict;
        const Asked a = ask_file(h.model, kImage, question, &o);
        REQUIRE_MESSAGE(a.status == GLIMPSE_OK, a.error);
        CHECK(a.answer == expected.text);
    }
    SUBCASE("f32 KV cache and divprune keeping half the visual tokens, compact positions") {
        VlmConfig cfg;
        cfg.kv_type = DType::f32;
        auto plan = pruning_plan_from_shorthand("divprune", 0.5);
        REQUIRE(plan.is_ok());
        cfg.pruning = *plan;
        cfg.original_positions = false;
        const VlmAnswer expected = vlm_answer(image, kCaptionPrompt, n_predict, greedy(), cfg);
        REQUIRE(expected.stats.n_image_tokens * 2 <= expected.stats.n_image_tokens_in + 1);

        glimpse_model_options mo;
        glimpse_model_options_init(&mo);
        mo.kv_type = GLIMPSE_KV_F32;
        mo.prune_method = "divprune";
        mo.prune_keep = 0.5;
        mo.compact_positions = 1;
        ModelHandle h = load_model(&mo);
        const glimpse_generate_options o = greedy_options(n_predict);
        const Asked a = ask_file(h.model, kImage, nullptr, &o);
        REQUIRE_MESSAGE(a.status == GLIMPSE_OK, a.error);
        CHECK(a.answer == expected.text);
        glimpse_stats st;
        REQUIRE(glimpse_last_stats(h.model, &st) == GLIMPSE_OK);
        CHECK(st.n_image_tokens == expected.stats.n_image_tokens);
        CHECK(st.n_image_tokens_in == expected.stats.n_image_tokens_in);
        glimpse_memory mem;
        REQUIRE(glimpse_memory_report(h.model, &mem) == GLIMPSE_OK);
        CHECK(mem.kv_cache == expected.memory.kv_cache);  // f32 entries: twice the f16 bytes
    }
}

TEST_CASE("a callback that returns nonzero stops generation after that piece") {
    ModelHandle h = load_model();
    const glimpse_generate_options o = greedy_options(test::emulated() ? 12 : 40);
    Pieces all;
    const Asked full = ask_file(h.model, kImage, nullptr, &o, record_piece, &all);
    REQUIRE_MESSAGE(full.status == GLIMPSE_OK, full.error);
    REQUIRE_MESSAGE(all.seen.size() > 4, "the bundled model's caption should take more than 4 pieces");
    glimpse_stats full_stats;
    REQUIRE(glimpse_last_stats(h.model, &full_stats) == GLIMPSE_OK);

    Pieces three;
    three.stop_after = 3;
    const Asked stopped = ask_file(h.model, kImage, nullptr, &o, record_piece, &three);
    REQUIRE_MESSAGE(stopped.status == GLIMPSE_OK, stopped.error);
    CHECK(three.seen.size() == 3);
    CHECK(stopped.answer == all.seen[0] + all.seen[1] + all.seen[2]);
    glimpse_stats st;
    REQUIRE(glimpse_last_stats(h.model, &st) == GLIMPSE_OK);
    CHECK(st.stopped_by_callback == 1);
    CHECK(st.stopped_at_eog == 0);
    CHECK(st.n_generated >= 3);
    CHECK(st.n_generated < full_stats.n_generated);

    // The model is not left in a stopped state: the next ask answers in full again.
    const Asked again = ask_file(h.model, kImage, nullptr, &o);
    CHECK(again.answer == full.answer);
}

TEST_CASE("bad arguments are error statuses with a message, and the model stays usable") {
    ModelHandle h = load_model();
    const glimpse_generate_options o = greedy_options(6);
    const Asked good = ask_file(h.model, kImage, nullptr, &o);
    REQUIRE_MESSAGE(good.status == GLIMPSE_OK, good.error);
    test::TempDir dir("capi_errors");

    SUBCASE("loading") {
        glimpse_model* m = reinterpret_cast<glimpse_model*>(0x1);  // must be reset to NULL on failure
        CHECK(glimpse_model_load(kText.c_str(), kMmproj.c_str(), nullptr, nullptr) == GLIMPSE_INVALID_ARGUMENT);
        CHECK(contains(glimpse_last_error(), "NULL"));
        CHECK(glimpse_model_load(nullptr, kMmproj.c_str(), nullptr, &m) == GLIMPSE_INVALID_ARGUMENT);
        CHECK(m == nullptr);
        CHECK(contains(glimpse_last_error(), "text model path is NULL"));
        const std::string missing = dir.file("missing.gguf");
        CHECK(glimpse_model_load(missing.c_str(), kMmproj.c_str(), nullptr, &m) == GLIMPSE_IO_ERROR);
        CHECK(contains(glimpse_last_error(), missing));
        CHECK(m == nullptr);
        // The pair swapped: each file is the wrong kind.
        CHECK(glimpse_model_load(kMmproj.c_str(), kText.c_str(), nullptr, &m) != GLIMPSE_OK);
        CHECK(std::strlen(glimpse_last_error()) > 0);
        CHECK(m == nullptr);

        struct BadOption {
            void (*set)(glimpse_model_options*);
            const char* says;
        };
        const BadOption bad[] = {
            {[](glimpse_model_options* x) { x->n_threads = -1; }, "n_threads"},
            {[](glimpse_model_options* x) { x->n_threads = 1025; }, "n_threads"},
            {[](glimpse_model_options* x) { x->kv_type = 7; }, "kv_type"},
            {[](glimpse_model_options* x) { x->prune_method = "no-such-method"; x->prune_keep = 0.5; }, "no-such-method"},
            {[](glimpse_model_options* x) { x->prune_method = "divprune"; x->prune_keep = 0; }, "keep"},
            {[](glimpse_model_options* x) { x->prune_method = "divprune"; x->pruning_plan_file = "p.json"; }, "alternatives"},
            {[](glimpse_model_options* x) { x->pruning_plan_file = "/nonexistent/plan.json"; }, "/nonexistent/plan.json"},
        };
        for (const BadOption& b : bad) {
            glimpse_model_options mo;
            glimpse_model_options_init(&mo);
            b.set(&mo);
            const glimpse_status s = glimpse_model_load(kText.c_str(), kMmproj.c_str(), &mo, &m);
            INFO(b.says << ": " << glimpse_last_error());
            CHECK(s != GLIMPSE_OK);
            CHECK(contains(glimpse_last_error(), b.says));
            CHECK(m == nullptr);
        }
    }
    SUBCASE("asking about a file") {
        Asked a = ask_file(nullptr, kImage, nullptr, &o);
        CHECK(a.status == GLIMPSE_INVALID_ARGUMENT);
        CHECK(contains(a.error, "model is NULL"));
        char* answer = reinterpret_cast<char*>(0x1);  // must be reset to NULL on failure
        CHECK(glimpse_ask_file(h.model, nullptr, nullptr, &o, nullptr, nullptr, &answer) == GLIMPSE_INVALID_ARGUMENT);
        CHECK(answer == nullptr);
        CHECK(contains(glimpse_last_error(), "image_path is NULL"));

        const std::string missing = dir.file("missing.png");
        a = ask_file(h.model, missing, nullptr, &o);
        CHECK(a.status == GLIMPSE_IO_ERROR);
        CHECK(contains(a.error, missing));
        CHECK(a.answer_null);

        // A PNG signature followed by junk, and a text file named .jpg.
        const std::string junk_png = dir.file("junk.png"), text_jpg = dir.file("text.jpg");
        std::vector<uint8_t> junk = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        for (int i = 0; i < 200; ++i) junk.push_back(static_cast<uint8_t>(i * 37));
        test::write_bytes(junk_png, junk);
        test::write_bytes(text_jpg, {'h', 'e', 'l', 'l', 'o', '\n'});
        for (const std::string& bad : {junk_png, text_jpg}) {
            a = ask_file(h.model, bad, nullptr, &o);
            INFO(bad << ": " << a.error);
            CHECK(a.status != GLIMPSE_OK);
            CHECK(contains(a.error, bad));
            CHECK(a.answer_null);
        }
        // A directory is not an image file.
        a = ask_file(h.model, dir.path.string(), nullptr, &o);
        CHECK(a.status != GLIMPSE_OK);

        // A prompt longer than the model's context is refused before any work.
        std::string long_prompt;
        for (int i = 0; i < 20000; ++i) long_prompt += "triangle ";
        a = ask_file(h.model, kImage, long_prompt.c_str(), &o);
        CHECK(a.status == GLIMPSE_OUT_OF_RANGE);
        CHECK(contains(a.error, "context"));
    }
    SUBCASE("asking about pixels") {
        std::vector<uint8_t> px(64 * 48 * 3, 100);
        struct BadPixels {
            const uint8_t* rgb;
            int32_t w, h;
            size_t stride;
            glimpse_status expect;
            const char* says;
        };
        const BadPixels bad[] = {
            {nullptr, 64, 48, 192, GLIMPSE_INVALID_ARGUMENT, "NULL"},
            {px.data(), 0, 48, 192, GLIMPSE_INVALID_ARGUMENT, "0x48"},
            {px.data(), 64, -3, 192, GLIMPSE_INVALID_ARGUMENT, "64x-3"},
            {px.data(), 64, 48, 191, GLIMPSE_INVALID_ARGUMENT, "stride 191"},
            {px.data(), 64, 48, 0, GLIMPSE_INVALID_ARGUMENT, "stride 0"},
            {px.data(), 20000, 10, 60000, GLIMPSE_OUT_OF_RANGE, "limits"},
            {px.data(), 16384, 16384, 16384 * 3, GLIMPSE_OUT_OF_RANGE, "limits"},
            {px.data(), 64, 48, std::numeric_limits<size_t>::max() / 8, GLIMPSE_OUT_OF_RANGE, "overflows"},
        };
        for (const BadPixels& b : bad) {
            const Asked a = ask_rgb(h.model, b.rgb, b.w, b.h, b.stride, &o);
            INFO(b.says << ": " << a.error);
            CHECK(a.status == b.expect);
            CHECK(contains(a.error, b.says));
            CHECK(a.answer_null);
        }
        CHECK(ask_rgb(nullptr, px.data(), 64, 48, 192, &o).status == GLIMPSE_INVALID_ARGUMENT);
        // A small valid image works.
        CHECK(ask_rgb(h.model, px.data(), 64, 48, 192, &o).status == GLIMPSE_OK);
    }
    SUBCASE("generation options") {
        struct BadGen {
            void (*set)(glimpse_generate_options*);
            const char* says;
        };
        const BadGen bad[] = {
            {[](glimpse_generate_options* x) { x->n_predict = -1; }, "n_predict"},
            {[](glimpse_generate_options* x) { x->temperature = std::nanf(""); }, "temperature"},
            {[](glimpse_generate_options* x) { x->temperature = -0.5f; }, "temperature"},
            {[](glimpse_generate_options* x) { x->top_k = -1; }, "top_k"},
            {[](glimpse_generate_options* x) { x->top_p = 0; }, "top_p"},
            {[](glimpse_generate_options* x) { x->top_p = 1.5f; }, "top_p"},
            {[](glimpse_generate_options* x) { x->min_p = 1; }, "min_p"},
        };
        for (const BadGen& b : bad) {
            glimpse_generate_options go = o;
            b.set(&go);
            const Asked a = ask_file(h.model, kImage, nullptr, &go);
            INFO(b.says << ": " << a.error);
            CHECK(a.status == GLIMPSE_INVALID_ARGUMENT);
            CHECK(contains(a.error, b.says));
        }
    }
    SUBCASE("getters") {
        glimpse_stats st;
        glimpse_memory mem;
        CHECK(glimpse_last_stats(nullptr, &st) == GLIMPSE_INVALID_ARGUMENT);
        CHECK(glimpse_last_stats(h.model, nullptr) == GLIMPSE_INVALID_ARGUMENT);
        CHECK(glimpse_memory_report(nullptr, &mem) == GLIMPSE_INVALID_ARGUMENT);
        CHECK(glimpse_memory_report(h.model, nullptr) == GLIMPSE_INVALID_ARGUMENT);
        CHECK(contains(glimpse_last_error(), "memory is NULL"));
        glimpse_model_free(nullptr);
        glimpse_string_free(nullptr);
        glimpse_model_options_init(nullptr);
        glimpse_generate_options_init(nullptr);
    }

    // After every failure above, the same model answers exactly as before, and a success clears
    // the thread's message.
    const Asked after = ask_file(h.model, kImage, nullptr, &o);
    CHECK(after.status == GLIMPSE_OK);
    CHECK(after.answer == good.answer);
    CHECK(std::string(glimpse_last_error()).empty());
}

TEST_CASE("two models on two threads answer as one model does alone; errors are per thread") {
    if (test::emulated()) return;  // two more model loads under qemu add minutes, no new code path
    ModelHandle alone = load_model();
    const glimpse_generate_options o = greedy_options(24);
    const Asked expected = ask_file(alone.model, kImage, nullptr, &o);
    REQUIRE_MESSAGE(expected.status == GLIMPSE_OK, expected.error);
    const std::string question = "How many crosses are there?";
    const Asked expected_q = ask_file(alone.model, kImage, question.c_str(), &o);

    std::vector<std::string> got(2);
    std::vector<std::string> errors(2);
    auto work = [&](int i) {
        glimpse_model_options mo;
        glimpse_model_options_init(&mo);
        mo.n_threads = 1;
        glimpse_model* m = nullptr;
        if (glimpse_model_load(kText.c_str(), kMmproj.c_str(), &mo, &m) != GLIMPSE_OK) {
            got[i] = std::string("load failed: ") + glimpse_last_error();
            return;
        }
        std::string all;
        for (int k = 0; k < 3; ++k) {
            char* answer = nullptr;
            if (glimpse_ask_file(m, kImage.c_str(), i == 0 ? nullptr : question.c_str(), &o, nullptr, nullptr,
                                 &answer) == GLIMPSE_OK) {
                all += answer;
                all += "|";
            }
            glimpse_string_free(answer);
        }
        // Thread 1 fails once; thread 0 must not see its message.
        if (i == 1) glimpse_ask_file(m, "/nonexistent/x.png", nullptr, &o, nullptr, nullptr, nullptr);
        errors[i] = glimpse_last_error();
        got[i] = all;
        glimpse_model_free(m);
    };
    std::thread t0(work, 0), t1(work, 1);
    t0.join();
    t1.join();
    CHECK(got[0] == expected.answer + "|" + expected.answer + "|" + expected.answer + "|");
    CHECK(got[1] == expected_q.answer + "|" + expected_q.answer + "|" + expected_q.answer + "|");
    CHECK(errors[0].empty());
    CHECK(contains(errors[1], "/nonexistent/x.png"));
}

TEST_CASE("planned memory stays the same over many asks about same-size images") {
    ModelHandle h = load_model();
    const glimpse_generate_options o = greedy_options(8);
    const ImageU8 image = sample_image();
    std::vector<uint8_t> px = image.rgb;
    glimpse_memory first{}, mem{};
    const int n = test::emulated() ? 3 : 12;
    for (int i = 0; i < n; ++i) {
        // Different pixels each time (the image's bytes rotated), the same size.
        std::rotate(px.begin(), px.begin() + 3 * 101, px.end());
        const Asked a = ask_rgb(h.model, px.data(), image.width, image.height, image.width * 3, &o);
        REQUIRE_MESSAGE(a.status == GLIMPSE_OK, a.error);
        REQUIRE(glimpse_memory_report(h.model, &mem) == GLIMPSE_OK);
        if (i == 0) first = mem;
        CHECK(mem.total == first.total);
        CHECK(mem.text_arena == first.text_arena);
        CHECK(mem.vision_arena == first.vision_arena);
        CHECK(mem.image_buffers == first.image_buffers);
    }
}

TEST_CASE("the C example (examples/caption.c, linked against libglimpse.so) prints Vlm's caption") {
    if (test::emulated()) return;  // child programs are not run under qemu (no binfmt there)
    const int n_predict = 32;
    const VlmAnswer expected = vlm_answer(sample_image(), kCaptionPrompt, n_predict, greedy());
    test::TempDir dir("capi_example_c");
    const std::vector<std::string> args = {GLIMPSE_EXAMPLE_CAPTION_BINARY, "-m", kText, "--mmproj", kMmproj,
                                           "--image", kImage, "--temp", "0", "-n", std::to_string(n_predict),
                                           "-t", std::to_string(test_threads())};
    Run r = run_program(args, {}, dir);
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out == expected.text + "\n");
    CHECK(contains(r.err, std::string("glimpse ") + GLIMPSE_PROJECT_VERSION));

    // Stopped by its callback after 2 pieces: a prefix of the caption, and it says so.
    std::vector<std::string> stop = args;
    stop.insert(stop.end(), {"--stop-after", "2"});
    r = run_program(stop, {}, dir);
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    REQUIRE(r.out.size() > 1);
    CHECK(r.out.size() < expected.text.size());
    CHECK(expected.text.compare(0, r.out.size() - 1, r.out, 0, r.out.size() - 1) == 0);
    CHECK(contains(r.err, "stopped by the callback"));

    // An image that does not decode: exit 1 with the library's message.
    const std::string junk = dir.file("junk.png");
    test::write_bytes(junk, {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'});
    r = run_program({GLIMPSE_EXAMPLE_CAPTION_BINARY, "-m", kText, "--mmproj", kMmproj, "--image", junk}, {}, dir);
    CHECK(r.exit_code == 1);
    CHECK(contains(r.err, junk));
    CHECK(r.out.empty());
}

TEST_CASE("the Python ctypes example (examples/caption.py) prints Vlm's answer") {
    if (test::emulated()) return;  // the host's python3 cannot load the target's library
    REQUIRE_MESSAGE(std::strlen(GLIMPSE_PYTHON3) > 0,
                    "python3 was not found when the build was configured (make deps installs it)");
    const int n_predict = 32;
    const char* question = "What is the largest shape?";
    const VlmAnswer expected = vlm_answer(sample_image(), question, n_predict, greedy());
    test::TempDir dir("capi_example_py");
    const std::string script = test::source_dir() + "/examples/caption.py";
    Run r = run_program({GLIMPSE_PYTHON3, script, "-m", kText, "--mmproj", kMmproj, "--image", kImage, "-p", question,
                         "--temp", "0", "-n", std::to_string(n_predict), "-t", std::to_string(test_threads())},
                        python_env(), dir);
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out == expected.text + "\n");

    // The library's error reaches Python as an exception with the message, and exit status 1.
    r = run_program({GLIMPSE_PYTHON3, script, "-m", kText, "--mmproj", kMmproj, "--image", "/nonexistent/x.png"},
                    python_env(), dir);
    CHECK(r.exit_code == 1);
    CHECK(contains(r.err, "io_error"));
    CHECK(contains(r.err, "/nonexistent/x.png"));
}
