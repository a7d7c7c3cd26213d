// The C interface (include/glimpse.h) over the C++ Vlm class. Every entry point catches what
// the C++ side could throw (std::bad_alloc from a container, anything else is a bug) and turns
// it into a status: no exception may unwind into a C caller's frames.
#include "include/glimpse.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "models/limits.h"
#include "models/vlm.h"
#include "runtime/image.h"
#include "runtime/pruning_plan.h"
#include "runtime/threadpool.h"

#ifndef GLIMPSE_C_VERSION_STRING
#error "GLIMPSE_C_VERSION_STRING must be defined by the build (the project's version)"
#endif

using namespace glimpse;

struct glimpse_model {
    std::unique_ptr<Vlm> vlm;
    glimpse_stats last_stats{};
};

namespace {

constexpr const char* kDefaultPrompt = "Describe this image.";  // the CLI's default

// The C codes are the C++ codes, value for value.
static_assert(static_cast<int>(StatusCode::ok) == GLIMPSE_OK);
static_assert(static_cast<int>(StatusCode::invalid_argument) == GLIMPSE_INVALID_ARGUMENT);
static_assert(static_cast<int>(StatusCode::parse_error) == GLIMPSE_PARSE_ERROR);
static_assert(static_cast<int>(StatusCode::io_error) == GLIMPSE_IO_ERROR);
static_assert(static_cast<int>(StatusCode::unsupported) == GLIMPSE_UNSUPPORTED);
static_assert(static_cast<int>(StatusCode::out_of_range) == GLIMPSE_OUT_OF_RANGE);
static_assert(static_cast<int>(StatusCode::resource_exhausted) == GLIMPSE_RESOURCE_EXHAUSTED);
static_assert(static_cast<int>(StatusCode::internal) == GLIMPSE_INTERNAL);

thread_local std::string t_last_error;

glimpse_status report(const Status& s) {
    // Assigning the message may itself run out of memory; the status code still gets through.
    try {
        t_last_error = s.message();
    } catch (...) {
        t_last_error.clear();
    }
    return static_cast<glimpse_status>(s.code());
}

glimpse_status report_error(StatusCode code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
glimpse_status report_error(StatusCode code, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    Status s(code, str_vprintf(fmt, args));
    va_end(args);
    return report(s);
}

// Runs `body` (returning glimpse_status) with exceptions turned into statuses.
template <class F>
glimpse_status guarded(const char* what, F&& body) {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return report(Status(StatusCode::resource_exhausted, std::string(what) + ": out of memory"));
    } catch (const std::exception& e) {
        return report(Status(StatusCode::internal, std::string(what) + ": unexpected C++ exception: " + e.what()));
    } catch (...) {
        return report(Status(StatusCode::internal, std::string(what) + ": unexpected C++ exception"));
    }
}

int64_t process_rss_bytes() {
    // /proc/self/statm: size resident shared text lib data dt, in pages.
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long long size = 0, resident = 0;
    const int n = std::fscanf(f, "%lld %lld", &size, &resident);
    std::fclose(f);
    return n == 2 ? resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

int64_t process_peak_rss_bytes() {
    struct rusage ru {};
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

Status check_generate_options(const glimpse_generate_options& o) {
    GLIMPSE_CHECK_OR_RETURN(o.n_predict >= 0 && o.n_predict <= limits::kMaxContextLength, invalid_argument,
                            "n_predict %d is out of range [0, %lld]", o.n_predict,
                            static_cast<long long>(limits::kMaxContextLength));
    GLIMPSE_CHECK_OR_RETURN(o.temperature >= 0, invalid_argument, "temperature %g must be >= 0",
                            static_cast<double>(o.temperature));
    GLIMPSE_CHECK_OR_RETURN(o.top_k >= 0, invalid_argument, "top_k %d must be >= 0", o.top_k);
    GLIMPSE_CHECK_OR_RETURN(o.top_p > 0 && o.top_p <= 1, invalid_argument, "top_p %g must be in (0, 1]",
                            static_cast<double>(o.top_p));
    GLIMPSE_CHECK_OR_RETURN(o.min_p >= 0 && o.min_p < 1, invalid_argument, "min_p %g must be in [0, 1)",
                            static_cast<double>(o.min_p));
    return Status::ok();
}

Result<VlmConfig> config_from_options(const glimpse_model_options& o) {
    VlmConfig cfg;
    GLIMPSE_CHECK_OR_RETURN(o.n_threads >= 0 && o.n_threads <= 1024, invalid_argument,
                            "n_threads %d is out of range [0, 1024] (0: the usable CPUs)", o.n_threads);
    const int cpus = usable_cpu_count();
    cfg.n_threads = o.n_threads == 0 ? cpus : std::min(o.n_threads, cpus);  // as the CLI clamps -t
    // An int32_t field, not the enum type: a C caller may store any int there, and loading an
    // out-of-range value as the C++ enum would be undefined behaviour.
    if (o.kv_type == GLIMPSE_KV_F16) cfg.kv_type = DType::f16;
    else if (o.kv_type == GLIMPSE_KV_F32) cfg.kv_type = DType::f32;
    else return Status::error(StatusCode::invalid_argument, "kv_type %d is neither GLIMPSE_KV_F16 nor GLIMPSE_KV_F32", o.kv_type);
    if (o.chat_template) cfg.chat_template = o.chat_template;
    GLIMPSE_CHECK_OR_RETURN(!(o.pruning_plan_file && o.prune_method), invalid_argument,
                            "pruning_plan_file and prune_method are alternatives; set one");
    if (o.pruning_plan_file) {
        GLIMPSE_ASSIGN_OR_RETURN(PruningPlan plan, pruning_plan_read_file(o.pruning_plan_file));
        cfg.pruning = std::move(plan);
    } else if (o.prune_method) {
        GLIMPSE_ASSIGN_OR_RETURN(PruningPlan plan, pruning_plan_from_shorthand(o.prune_method, o.prune_keep));
        cfg.pruning = std::move(plan);
    }
    cfg.original_positions = o.compact_positions == 0;
    return cfg;
}

// What `glimpse caption` does with one image: prompt, n_predict cut to the context, generate.
glimpse_status ask(glimpse_model* model, const ImageU8& image, double decode_ms, const char* prompt,
                   const glimpse_generate_options* options, glimpse_text_callback on_text, void* user_data,
                   char** answer) {
    glimpse_generate_options opts;
    glimpse_generate_options_init(&opts);
    if (options) opts = *options;
    if (Status s = check_generate_options(opts); !s.is_ok()) return report(s);
    Vlm& vlm = *model->vlm;

    const auto t0 = std::chrono::steady_clock::now();
    auto built = vlm.build_prompt(prompt ? prompt : kDefaultPrompt, std::vector<ImageU8>{image});
    if (!built.is_ok()) return report(built.status());
    const int64_t n_ctx = vlm.context_length();
    if (built->n_positions() > n_ctx) return report(vlm.check_context(built->n_positions(), 0));
    const int n_predict = static_cast<int>(std::min<int64_t>(opts.n_predict, n_ctx - built->n_positions()));
    const double preprocess_ms =
        decode_ms + std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    SamplingParams sp;
    sp.temperature = opts.temperature;
    sp.top_k = opts.top_k;
    sp.top_p = opts.top_p;
    sp.min_p = opts.min_p;
    sp.seed = opts.seed;
    std::string text;
    GenerationStats st;
    Status s = vlm.generate(*built, n_predict, sp,
                            [&](std::string_view bytes) {
                                text.append(bytes);
                                return !on_text || on_text(bytes.data(), bytes.size(), user_data) == 0;
                            },
                            &st);
    if (!s.is_ok()) return report(s);

    model->last_stats = glimpse_stats{
        .preprocess_ms = preprocess_ms, .encode_ms = st.encode_ms, .prefill_ms = st.prefill_ms,
        .decode_ms = st.decode_ms, .n_prompt_tokens = st.n_prompt, .n_image_tokens = st.n_image_tokens,
        .n_image_tokens_in = st.n_image_tokens_in, .n_image_chunks = st.n_image_chunks,
        .n_generated = st.n_generated, .n_predict = n_predict, .stopped_at_eog = st.stopped_at_eog ? 1 : 0,
        .stopped_by_callback = st.stopped_by_caller ? 1 : 0};

    if (answer) {
        char* copy = static_cast<char*>(std::malloc(text.size() + 1));
        if (!copy) return report_error(StatusCode::resource_exhausted, "out of memory for a %zu-byte answer", text.size());
        std::memcpy(copy, text.data(), text.size());
        copy[text.size()] = '\0';
        *answer = copy;
    }
    return report(Status::ok());
}

}  // namespace

extern "C" {

const char* glimpse_version(void) { return GLIMPSE_C_VERSION_STRING; }

const char* glimpse_status_name(int status) {
    if (status < GLIMPSE_OK || status > GLIMPSE_INTERNAL) return "unknown";
    return status_code_name(static_cast<StatusCode>(status));
}

const char* glimpse_last_error(void) { return t_last_error.c_str(); }

void glimpse_model_options_init(glimpse_model_options* options) {
    if (!options) return;
    *options = glimpse_model_options{};
    options->n_threads = 0;
    options->kv_type = GLIMPSE_KV_F16;
}

void glimpse_generate_options_init(glimpse_generate_options* options) {
    if (!options) return;
    // The CLI's defaults (SamplingParams), except the seed: 0 rather than random, so that the
    // same input gives the same answer unless the caller asks otherwise.
    const SamplingParams defaults;
    options->n_predict = 256;
    options->temperature = defaults.temperature;
    options->top_k = defaults.top_k;
    options->top_p = defaults.top_p;
    options->min_p = defaults.min_p;
    options->seed = 0;
}

glimpse_status glimpse_model_load(const char* text_model_path, const char* mmproj_path,
                                  const glimpse_model_options* options, glimpse_model** model) {
    return guarded("glimpse_model_load", [&]() -> glimpse_status {
        if (!model) return report_error(StatusCode::invalid_argument, "glimpse_model_load: model (the output) is NULL");
        *model = nullptr;
        if (!text_model_path || !mmproj_path) {
            return report_error(StatusCode::invalid_argument, "glimpse_model_load: %s path is NULL",
                                !text_model_path ? "the text model" : "the mmproj");
        }
        glimpse_model_options opts;
        glimpse_model_options_init(&opts);
        if (options) opts = *options;
        auto cfg = config_from_options(opts);
        if (!cfg.is_ok()) return report(cfg.status());
        auto vlm = Vlm::load(text_model_path, mmproj_path, *cfg);
        if (!vlm.is_ok()) return report(vlm.status());
        auto handle = std::make_unique<glimpse_model>();
        handle->vlm = std::move(*vlm);
        *model = handle.release();
        return report(Status::ok());
    });
}

void glimpse_model_free(glimpse_model* model) { delete model; }

glimpse_status glimpse_ask_file(glimpse_model* model, const char* image_path, const char* prompt,
                                const glimpse_generate_options* options, glimpse_text_callback on_text,
                                void* user_data, char** answer) {
    return guarded("glimpse_ask_file", [&]() -> glimpse_status {
        if (answer) *answer = nullptr;
        if (!model) return report_error(StatusCode::invalid_argument, "glimpse_ask_file: model is NULL");
        if (!image_path) return report_error(StatusCode::invalid_argument, "glimpse_ask_file: image_path is NULL");
        const auto t0 = std::chrono::steady_clock::now();
        auto image = image_decode_file(image_path);
        if (!image.is_ok()) return report(image.status());
        const double decode_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        return ask(model, *image, decode_ms, prompt, options, on_text, user_data, answer);
    });
}

glimpse_status glimpse_ask_rgb(glimpse_model* model, const uint8_t* rgb, int32_t width, int32_t height,
                               size_t stride_bytes, const char* prompt, const glimpse_generate_options* options,
                               glimpse_text_callback on_text, void* user_data, char** answer) {
    return guarded("glimpse_ask_rgb", [&]() -> glimpse_status {
        if (answer) *answer = nullptr;
        if (!model) return report_error(StatusCode::invalid_argument, "glimpse_ask_rgb: model is NULL");
        if (!rgb) return report_error(StatusCode::invalid_argument, "glimpse_ask_rgb: rgb (the pixels) is NULL");
        if (width <= 0 || height <= 0) {
            return report_error(StatusCode::invalid_argument, "glimpse_ask_rgb: image size %dx%d; both sides must be > 0",
                                width, height);
        }
        // The limits image files have (runtime/image.h), so memory and files take the same sizes.
        if (width > kImageMaxSide || height > kImageMaxSide ||
            static_cast<int64_t>(width) * height > kImageMaxPixels) {
            return report_error(StatusCode::out_of_range,
                                "glimpse_ask_rgb: image %dx%d is over the limits (%d px per side, %lld pixels)", width,
                                height, kImageMaxSide, static_cast<long long>(kImageMaxPixels));
        }
        const size_t row_bytes = static_cast<size_t>(width) * 3;
        if (stride_bytes < row_bytes) {
            return report_error(StatusCode::invalid_argument,
                                "glimpse_ask_rgb: stride %zu bytes is shorter than a row of %d RGB pixels (%zu bytes)",
                                stride_bytes, width, row_bytes);
        }
        // Rows start stride apart; the last one is only row_bytes long. Sizes are bounded above,
        // but a huge stride could still wrap the address arithmetic.
        if (stride_bytes > (SIZE_MAX - row_bytes) / static_cast<size_t>(height)) {
            return report_error(StatusCode::out_of_range, "glimpse_ask_rgb: stride %zu bytes x %d rows overflows",
                                stride_bytes, height);
        }
        const auto t0 = std::chrono::steady_clock::now();
        ImageU8 image;
        image.width = width;
        image.height = height;
        image.rgb.resize(row_bytes * static_cast<size_t>(height));
        for (int32_t y = 0; y < height; ++y) {
            std::memcpy(image.rgb.data() + static_cast<size_t>(y) * row_bytes, rgb + static_cast<size_t>(y) * stride_bytes,
                        row_bytes);
        }
        const double copy_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        return ask(model, image, copy_ms, prompt, options, on_text, user_data, answer);
    });
}

glimpse_status glimpse_last_stats(const glimpse_model* model, glimpse_stats* stats) {
    if (!model || !stats) {
        return report_error(StatusCode::invalid_argument, "glimpse_last_stats: %s is NULL", !model ? "model" : "stats");
    }
    *stats = model->last_stats;
    return report(Status::ok());
}

glimpse_status glimpse_memory_report(const glimpse_model* model, glimpse_memory* memory) {
    if (!model || !memory) {
        return report_error(StatusCode::invalid_argument, "glimpse_memory_report: %s is NULL",
                            !model ? "model" : "memory");
    }
    const VlmMemory m = model->vlm->memory();
    *memory = glimpse_memory{.weights = m.weights, .packed_weights = m.packed_weights, .file_weights = m.file_weights,
                             .vision_arena = m.vision_arena, .text_arena = m.text_arena, .kv_cache = m.kv_cache,
                             .image_buffers = m.image_buffers, .total = m.total(),
                             .process_rss = process_rss_bytes(), .process_peak_rss = process_peak_rss_bytes()};
    return report(Status::ok());
}

void glimpse_string_free(char* text) { std::free(text); }

}  // extern "C"
