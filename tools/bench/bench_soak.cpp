// glimpse-bench soak: caption many images in one process with one loaded model, and record
// resident memory and time per image as it goes. A device captioning a camera feed for days
// needs both flat: memory that creeps up ends in the OOM killer, time that creeps up means
// something grows per image (a cache, a plan, a leak the allocator hides).
//
// Each image is a procedural scene (tools/scenes, a different size every time, so the number
// of tiles and the prompt length change), written to PNG in memory and decoded through
// image_decode_memory as a file would be; the prompt alternates between a caption and the
// scene's questions. Decoding is greedy.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <stb_image_write.h>

#include "models/vlm.h"
#include "runtime/image.h"
#include "tools/bench/bench_common.h"
#include "tools/scenes/scene.h"

namespace glimpse::bench {

namespace {

// Resident set size now (not the peak): /proc/self/statm's second field, in pages.
int64_t current_rss_bytes() {
    std::ifstream in("/proc/self/statm");
    int64_t size = 0, resident = 0;
    if (!(in >> size >> resident)) return -1;
    return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

// User + system CPU time of the whole process so far, in ms: unlike wall time it does not grow
// when another process takes the CPU, so windows stay comparable on a shared machine.
double process_cpu_ms() {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
            static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0);
}

void append_bytes(void* context, void* data, int size) {
    auto* out = static_cast<std::vector<uint8_t>*>(context);
    const auto* p = static_cast<const uint8_t*>(data);
    out->insert(out->end(), p, p + size);
}

struct Sample {
    int64_t images = 0;    // images captioned so far
    double rss_mib = 0;    // resident memory after them
    double ms_per_image = 0;  // mean over the window that ended here
    // Image sizes differ, so time per image moves with the tiles drawn; these do not.
    double encode_ms_per_chunk = 0, decode_ms_per_token = 0;
    double cpu_ms_per_image = 0;  // process CPU time (all threads), mean over the window
};

// RSS (left axis) and encoder time per tile (right axis) against images captioned, as SVG.
std::string soak_svg(const std::vector<Sample>& s, const std::string& title) {
    const double W = 720, H = 360, L = 70, R = 70, T = 40, B = 50;
    double rss_max = 1, ms_max = 1;
    for (const Sample& x : s) {
        rss_max = std::max(rss_max, x.rss_mib);
        ms_max = std::max(ms_max, x.encode_ms_per_chunk);
    }
    rss_max *= 1.15;
    ms_max *= 1.15;
    const double n_max = s.empty() ? 1.0 : static_cast<double>(std::max<int64_t>(1, s.back().images));
    auto px = [&](double images) { return L + (W - L - R) * images / n_max; };
    auto py = [&](double v, double vmax) { return H - B - (H - T - B) * v / vmax; };
    std::string svg;
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' font-family='sans-serif' "
                  "font-size='12'>\n<rect width='100%%' height='100%%' fill='white'/>\n"
                  "<text x='%.0f' y='22' font-size='14'>%s</text>\n",
                  W, H, L, title.c_str());
    svg += buf;
    std::snprintf(buf, sizeof(buf),
                  "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='black'/>\n"
                  "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='black'/>\n"
                  "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='black'/>\n",
                  L, H - B, W - R, H - B, L, T, L, H - B, W - R, T, W - R, H - B);
    svg += buf;
    for (int i = 0; i <= 4; ++i) {
        const double f = i / 4.0;
        std::snprintf(buf, sizeof(buf),
                      "<text x='%.0f' y='%.0f' text-anchor='end' fill='#1f5fbf'>%.0f</text>\n"
                      "<text x='%.0f' y='%.0f' fill='#c0392b'>%.0f</text>\n"
                      "<text x='%.0f' y='%.0f' text-anchor='middle'>%.0f</text>\n",
                      L - 6, py(f * rss_max, rss_max) + 4, f * rss_max, W - R + 6, py(f * ms_max, ms_max) + 4,
                      f * ms_max, px(f * n_max), H - B + 18, f * n_max);
        svg += buf;
    }
    std::snprintf(buf, sizeof(buf),
                  "<text x='%.0f' y='%.0f' text-anchor='middle'>images captioned</text>\n"
                  "<text x='16' y='%.0f' fill='#1f5fbf' transform='rotate(-90 16 %.0f)' text-anchor='middle'>RSS "
                  "(MiB)</text>\n"
                  "<text x='%.0f' y='%.0f' fill='#c0392b' transform='rotate(90 %.0f %.0f)' "
                  "text-anchor='middle'>encode ms per tile</text>\n",
                  (L + W - R) / 2, H - 12, (T + H - B) / 2, (T + H - B) / 2, W - 18, (T + H - B) / 2, W - 18,
                  (T + H - B) / 2);
    svg += buf;
    std::string rss_line, ms_line;
    for (const Sample& x : s) {
        std::snprintf(buf, sizeof(buf), "%.1f,%.1f ", px(static_cast<double>(x.images)), py(x.rss_mib, rss_max));
        rss_line += buf;
        std::snprintf(buf, sizeof(buf), "%.1f,%.1f ", px(static_cast<double>(x.images)), py(x.encode_ms_per_chunk, ms_max));
        ms_line += buf;
    }
    svg += "<polyline fill='none' stroke='#1f5fbf' stroke-width='2' points='" + rss_line + "'/>\n";
    svg += "<polyline fill='none' stroke='#c0392b' stroke-width='2' points='" + ms_line + "'/>\n</svg>\n";
    return svg;
}

}  // namespace

int cmd_soak(int argc, char** argv) {
    tools::ArgParser a("glimpse-bench soak", "-m TEXT.gguf --mmproj MMPROJ.gguf [--images N] [options]",
                       "Captions N procedural scenes in one process with one loaded model and records resident\n"
                       "memory and time per image every --every images (JSON on stdout, progress on stderr).");
    add_common_options(a);
    a.option("-m,--model", "FILE", "text model GGUF");
    a.option("--mmproj", "FILE", "vision projector GGUF");
    a.option("--images", "N", "images to caption, 1..1000000", "1000");
    a.option("--every", "K", "record a sample every K images", "50");
    a.option("--first-seed", "S", "seed of the first scene", "2000000");
    a.option("--distinct", "K", "cycle through K scenes (0: every image a new scene); with K = --every every window "
                                "does the same work, so its times compare directly", "0");
    a.option("--preset", "NAME", "scene distribution (tools/scenes presets)", "bundled");
    a.option("-n,--n-predict", "N", "tokens per answer, 1..4096", "16");
    a.option("--svg", "FILE", "also draw RSS and ms/image against images captioned");
    std::string err;
    int64_t n_images = 1000, every = 50, first_seed = 2000000, n_predict = 16, distinct = 0;
    RunInfo info;
    if (!a.parse(argc, argv, &err) || !a.get_int("--images", 1, 1000000, &n_images, &err) ||
        !a.get_int("--every", 1, 1000000, &every, &err) || !a.get_int("--first-seed", 0, INT64_MAX / 2, &first_seed, &err) ||
        !a.get_int("--n-predict", 1, 4096, &n_predict, &err) || !a.get_int("--distinct", 0, 1000000, &distinct, &err) || !read_common_options(a, &info, &err)) {
        std::fprintf(stderr, "glimpse-bench soak: %s\n", err.c_str());
        return 2;
    }
    if (a.has("--help")) {
        std::fputs(a.help().c_str(), stdout);
        return 0;
    }
    if (!a.has("--model") || !a.has("--mmproj")) {
        std::fprintf(stderr, "glimpse-bench soak: -m and --mmproj are required\n");
        return 2;
    }
    auto preset = scenes::scene_preset(a.get("--preset"));
    if (!preset.is_ok()) {
        std::fprintf(stderr, "glimpse-bench soak: --preset: %s\n", preset.status().message().c_str());
        return 2;
    }
    VlmConfig cfg;
    cfg.n_threads = info.threads;
    const int64_t rss_before_load = current_rss_bytes();
    auto vlm = Vlm::load(a.get("--model"), a.get("--mmproj"), cfg);
    if (!vlm.is_ok()) {
        std::fprintf(stderr, "glimpse-bench soak: %s\n", vlm.status().message().c_str());
        return 1;
    }
    const int64_t rss_after_load = current_rss_bytes();

    SamplingParams greedy;
    greedy.temperature = 0;
    std::vector<Sample> samples;
    std::vector<uint8_t> png;
    double window_ms = 0, total_ms = 0, window_encode_ms = 0, window_decode_ms = 0;
    double window_cpu_start = process_cpu_ms();
    int64_t window_n = 0, tokens = 0, window_chunks = 0, window_tokens = 0;
    const double t_start = now_ms();
    for (int64_t i = 0; i < n_images; ++i) {
        const int64_t scene_index = distinct > 0 ? i % distinct : i;
        const scenes::Scene scene = scenes::scene_generate(static_cast<uint64_t>(first_seed + scene_index), *preset);
        const double t0 = now_ms();
        png.clear();
        if (!stbi_write_png_to_func(append_bytes, &png, scene.image.width, scene.image.height, 3,
                                    scene.image.rgb.data(), scene.image.width * 3)) {
            std::fprintf(stderr, "glimpse-bench soak: cannot encode scene %lld\n", static_cast<long long>(first_seed + i));
            return 1;
        }
        auto image = image_decode_memory(png.data(), png.size(), "scene");
        if (!image.is_ok()) {
            std::fprintf(stderr, "glimpse-bench soak: %s\n", image.status().message().c_str());
            return 1;
        }
        // A caption every other image, else one of the scene's questions in turn.
        const std::string prompt_text =
            (i % 2 == 0 || scene.qa.empty()) ? std::string("Describe this image.")
                                             : scene.qa[static_cast<size_t>(i / 2) % scene.qa.size()].question;
        auto prompt = (*vlm)->build_prompt(prompt_text, std::vector<ImageU8>{std::move(*image)});
        if (!prompt.is_ok()) {
            std::fprintf(stderr, "glimpse-bench soak: %s\n", prompt.status().message().c_str());
            return 1;
        }
        GenerationStats st;
        Status s = (*vlm)->generate(*prompt, static_cast<int>(n_predict), greedy, nullptr, &st);
        if (!s.is_ok()) {
            std::fprintf(stderr, "glimpse-bench soak: %s\n", s.message().c_str());
            return 1;
        }
        tokens += st.n_generated;
        window_encode_ms += st.encode_ms;
        window_chunks += st.n_image_chunks;
        window_decode_ms += st.decode_ms;
        window_tokens += st.n_generated;
        const double dt = now_ms() - t0;
        window_ms += dt;
        total_ms += dt;
        ++window_n;
        if ((i + 1) % every == 0 || i + 1 == n_images) {
            samples.push_back({i + 1, static_cast<double>(current_rss_bytes()) / (1024.0 * 1024.0), window_ms / window_n,
                               window_chunks ? window_encode_ms / static_cast<double>(window_chunks) : 0.0,
                               window_tokens ? window_decode_ms / static_cast<double>(window_tokens) : 0.0});
            const double cpu_now = process_cpu_ms();
            samples.back().cpu_ms_per_image = (cpu_now - window_cpu_start) / static_cast<double>(window_n);
            window_cpu_start = cpu_now;
            window_ms = window_encode_ms = window_decode_ms = 0;
            window_n = window_chunks = window_tokens = 0;
            const double elapsed = (now_ms() - t_start) / 1000.0;
            const double eta = elapsed / static_cast<double>(i + 1) * static_cast<double>(n_images - i - 1);
            std::fprintf(stderr, "\r[%-30s] %lld/%lld images, RSS %.1f MiB, %.0f ms/image, ETA %.0f s   ",
                         std::string(static_cast<size_t>(30 * (i + 1) / n_images), '#').c_str(),
                         static_cast<long long>(i + 1), static_cast<long long>(n_images), samples.back().rss_mib,
                         samples.back().ms_per_image, eta);
        }
    }
    std::fprintf(stderr, "\n");

    // Flatness: the last sample against the first (after warm-up: plans and pools are sized by
    // the largest image seen, so the first window grows legitimately).
    const Sample& first = samples.front();
    const Sample& last = samples.back();
    double rss_max = 0;
    for (const Sample& x : samples) rss_max = std::max(rss_max, x.rss_mib);
    Json j;
    j.begin_object();
    write_header(j, "soak", info);
    j.value("model", a.get("--model")).value("mmproj", a.get("--mmproj"));
    j.value("images", n_images).value("every", every).value("first_seed", first_seed).value("n_predict", n_predict);
    j.value("preset", a.get("--preset"));
    j.value("tokens_generated", tokens);
    j.value("rss_before_load_mib", static_cast<double>(rss_before_load) / (1024.0 * 1024.0));
    j.value("rss_after_load_mib", static_cast<double>(rss_after_load) / (1024.0 * 1024.0));
    j.value("rss_first_sample_mib", first.rss_mib).value("rss_last_sample_mib", last.rss_mib).value("rss_max_mib", rss_max);
    j.value("ms_per_image_first_window", first.ms_per_image).value("ms_per_image_last_window", last.ms_per_image);
    j.value("ms_per_image_mean", total_ms / static_cast<double>(n_images));
    j.value("distinct_scenes", distinct);
    j.value("cpu_ms_per_image_first_window", first.cpu_ms_per_image)
        .value("cpu_ms_per_image_last_window", last.cpu_ms_per_image);
    j.value("encode_ms_per_chunk_first_window", first.encode_ms_per_chunk)
        .value("encode_ms_per_chunk_last_window", last.encode_ms_per_chunk);
    j.value("decode_ms_per_token_first_window", first.decode_ms_per_token)
        .value("decode_ms_per_token_last_window", last.decode_ms_per_token);
    j.begin_array("samples");
    for (const Sample& x : samples) {
        j.begin_object().value("images", x.images).value("rss_mib", x.rss_mib).value("ms_per_image", x.ms_per_image);
        j.value("encode_ms_per_chunk", x.encode_ms_per_chunk).value("decode_ms_per_token", x.decode_ms_per_token);
        j.value("cpu_ms_per_image", x.cpu_ms_per_image).end_object();
    }
    j.end_array();
    j.end_object();
    std::fputs((j.str() + "\n").c_str(), stdout);
    std::fprintf(stderr, "RSS after load %.1f MiB; after %lld images %.1f MiB, after %lld %.1f MiB (max %.1f); "
                         "ms/image first window %.0f, last %.0f; encode ms/chunk %.1f -> %.1f; decode ms/token "
                         "%.2f -> %.2f\n",
                 static_cast<double>(rss_after_load) / (1024.0 * 1024.0), static_cast<long long>(first.images),
                 first.rss_mib, static_cast<long long>(last.images), last.rss_mib, rss_max, first.ms_per_image,
                 last.ms_per_image, first.encode_ms_per_chunk, last.encode_ms_per_chunk, first.decode_ms_per_token,
                 last.decode_ms_per_token);
    if (a.has("--svg")) {
        std::ofstream out(a.get("--svg"));
        out << soak_svg(samples, "glimpse-bench soak: " + std::to_string(n_images) + " images, one process");
        if (!out) {
            std::fprintf(stderr, "glimpse-bench soak: cannot write %s\n", a.get("--svg").c_str());
            return 1;
        }
    }
    return 0;
}

}  // namespace glimpse::bench
