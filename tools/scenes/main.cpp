// glimpse-scenes: writes procedurally generated scenes with ground truth to a directory.
#include "tools/scenes/scene.h"

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace glimpse;
using namespace glimpse::scenes;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // generation or I/O failed
constexpr int kExitUsage = 2;    // bad command line

const char* const kUsage = R"(usage: glimpse-scenes --seeds FROM:TO --out DIR [options]

Writes one procedurally generated scene per seed in [FROM, TO) (TO excluded):
  DIR/<seed>.png (or .ppm)  the RGB image
  DIR/<seed>.json           ground truth on one line: caption, objects, text, QA pairs
  DIR/index.jsonl           the same JSON records, one line per scene in seed order
The same seed and options always give the same files, on every platform.

options:
  --seeds FROM:TO         seed range, half-open; required (e.g. 0:50000)
  --out DIR               output directory, created if missing; required
  --preset NAME           start from a named distribution: default, or bundled (the one the
                          bundled tiny VLMs are trained and evaluated on; see README);
                          the options below override it, wherever they appear
  --qa-per-image N        question-answer pairs per scene (default 6, 0..256)
  --min-size A            smallest image side in pixels (default 96, >= 64)
  --max-size B            largest image side in pixels (default 1024, <= 8192)
  --min-objects N         fewest objects per scene (default 1)
  --max-objects N         most objects per scene (default 9, <= 9)
  --text-prob P           probability that a scene has text (default 0.4)
  --many-small-prob P     probability of a "many small objects" scene (default 0.35)
  --max-occlusion F       largest hidden share of an object, 0..0.5 (default 0.25)
  --backgrounds LIST      comma-separated subset of flat,gradient,noise,stripes (default all)
  --format png|ppm        image format (default png)
  --png-level N           zlib effort of the PNG writer, 5..9 (default 5, the fastest);
                          rows are always written unfiltered, which suits flat colors
  --no-index              do not write DIR/index.jsonl
  --threads N             worker threads (default: number of CPUs)
  --quiet                 no progress on stderr
  --help                  this text

exit status: 0 success, 1 generation or I/O failure, 2 bad command line
)";

struct CliOptions {
    uint64_t seed_from = 0, seed_to = 0;
    std::string out_dir;
    SceneOptions scene;
    ImageFormat format = ImageFormat::png;
    int png_level = 5;
    bool write_index = true;
    int threads = 0;
    bool quiet = false;
};

// A usage error: message for stderr, exit code 2.
struct UsageError {
    std::string message;
};

template <class Int>
Int parse_int(std::string_view flag, std::string_view text) {
    Int value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty())
        throw UsageError{str_printf("%.*s: '%.*s' is not an integer in range", static_cast<int>(flag.size()),
                                    flag.data(), static_cast<int>(text.size()), text.data())};
    return value;
}

double parse_double(std::string_view flag, const std::string& text) {
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size())
        throw UsageError{str_printf("%.*s: '%s' is not a number", static_cast<int>(flag.size()), flag.data(),
                                    text.c_str())};
    return value;
}

void parse_seed_range(const std::string& text, CliOptions& cli) {
    const size_t colon = text.find(':');
    if (colon == std::string::npos) throw UsageError{"--seeds: expected FROM:TO, got '" + text + "'"};
    cli.seed_from = parse_int<uint64_t>("--seeds FROM", std::string_view(text).substr(0, colon));
    cli.seed_to = parse_int<uint64_t>("--seeds TO", std::string_view(text).substr(colon + 1));
    if (cli.seed_to <= cli.seed_from)
        throw UsageError{"--seeds: TO must be greater than FROM (the range is half-open), got '" + text + "'"};
}

void parse_backgrounds(const std::string& list, SceneOptions& opts) {
    opts.backgrounds.fill(false);
    size_t start = 0;
    while (start <= list.size()) {
        const size_t comma = std::min(list.find(',', start), list.size());
        const std::string_view name = std::string_view(list).substr(start, comma - start);
        bool known = false;
        for (int k = 0; k < kBackgroundKindCount; ++k)
            if (name == background_name(static_cast<BackgroundKind>(k))) opts.backgrounds[k] = known = true;
        if (!known)
            throw UsageError{"--backgrounds: unknown kind '" + std::string(name) +
                             "' (expected flat, gradient, noise or stripes)"};
        start = comma + 1;
    }
}

ImageFormat parse_format(const std::string& text) {
    if (text == "png") return ImageFormat::png;
    if (text == "ppm") return ImageFormat::ppm;
    throw UsageError{"--format: expected png or ppm, got '" + text + "'"};
}

CliOptions parse_args(int argc, char** argv) {
    CliOptions cli;
    bool have_seeds = false;
    // The preset is the base every other option modifies, wherever it appears.
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::string_view(argv[i]) != "--preset") continue;
        Result<SceneOptions> preset = scene_preset(argv[i + 1]);
        if (!preset.is_ok()) throw UsageError{"--preset: " + preset.status().message()};
        cli.scene = *preset;
    }
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw UsageError{flag + ": missing value"};
            return argv[++i];
        };
        if (flag == "--help" || flag == "-h") {
            std::fputs(kUsage, stdout);
            std::exit(kExitOk);
        } else if (flag == "--seeds") {
            parse_seed_range(next(), cli);
            have_seeds = true;
        } else if (flag == "--out") {
            cli.out_dir = next();
        } else if (flag == "--preset") {
            next();  // applied above
        } else if (flag == "--qa-per-image") {
            cli.scene.qa_per_scene = parse_int<int>(flag, next());
        } else if (flag == "--min-size") {
            cli.scene.min_side = parse_int<int>(flag, next());
        } else if (flag == "--max-size") {
            cli.scene.max_side = parse_int<int>(flag, next());
        } else if (flag == "--min-objects") {
            cli.scene.min_objects = parse_int<int>(flag, next());
        } else if (flag == "--max-objects") {
            cli.scene.max_objects = parse_int<int>(flag, next());
        } else if (flag == "--text-prob") {
            cli.scene.text_probability = parse_double(flag, next());
        } else if (flag == "--many-small-prob") {
            cli.scene.many_small_probability = parse_double(flag, next());
        } else if (flag == "--max-occlusion") {
            cli.scene.max_occluded_fraction = parse_double(flag, next());
        } else if (flag == "--backgrounds") {
            parse_backgrounds(next(), cli.scene);
        } else if (flag == "--format") {
            cli.format = parse_format(next());
        } else if (flag == "--png-level") {
            cli.png_level = parse_int<int>(flag, next());
            if (cli.png_level < 5 || cli.png_level > 9) throw UsageError{"--png-level: must be within 5..9"};
        } else if (flag == "--no-index") {
            cli.write_index = false;
        } else if (flag == "--threads") {
            cli.threads = parse_int<int>(flag, next());
            if (cli.threads < 1 || cli.threads > 256) throw UsageError{"--threads: must be within 1..256"};
        } else if (flag == "--quiet") {
            cli.quiet = true;
        } else {
            throw UsageError{"unknown argument '" + flag + "'"};
        }
    }
    if (!have_seeds) throw UsageError{"--seeds FROM:TO is required"};
    if (cli.out_dir.empty()) throw UsageError{"--out DIR is required"};
    const Status valid = scene_options_validate(cli.scene);
    if (!valid.is_ok()) throw UsageError{valid.message()};
    if (cli.threads == 0) cli.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return cli;
}

// Writes index lines in seed order although workers finish out of order.
class OrderedIndexWriter {
public:
    OrderedIndexWriter(std::FILE* file, uint64_t first_seed) : file_(file), next_seed_(first_seed) {}

    Status submit(uint64_t seed, std::string line) {
        std::lock_guard<std::mutex> lock(mutex_);
        pending_.emplace(seed, std::move(line));
        for (auto it = pending_.begin(); it != pending_.end() && it->first == next_seed_; it = pending_.erase(it)) {
            if (std::fwrite(it->second.data(), 1, it->second.size(), file_) != it->second.size())
                return Status::error(StatusCode::io_error, "index.jsonl: write failed at seed %llu",
                                     static_cast<unsigned long long>(next_seed_));
            ++next_seed_;
        }
        return Status::ok();
    }

private:
    std::FILE* file_;
    uint64_t next_seed_;
    std::map<uint64_t, std::string> pending_;
    std::mutex mutex_;
};

Status write_one_scene(const CliOptions& cli, uint64_t seed, OrderedIndexWriter* index) {
    const Scene scene = scene_generate(seed, cli.scene);
    const std::string stem = std::to_string(seed);
    const std::string image_name = stem + (cli.format == ImageFormat::png ? ".png" : ".ppm");
    const std::filesystem::path dir(cli.out_dir);
    GLIMPSE_RETURN_IF_ERROR(write_scene_image(scene.image, (dir / image_name).string(), cli.format));
    std::string json = scene_to_json(scene, image_name);
    json += '\n';
    GLIMPSE_RETURN_IF_ERROR(write_text_file((dir / (stem + ".json")).string(), json));
    if (index != nullptr) GLIMPSE_RETURN_IF_ERROR(index->submit(seed, std::move(json)));
    return Status::ok();
}

struct RunState {
    std::atomic<uint64_t> next_seed;
    std::atomic<uint64_t> done{0};
    std::atomic<bool> failed{false};
    std::mutex error_mutex;
    Status first_error;
};

void worker(const CliOptions& cli, OrderedIndexWriter* index, RunState& state) {
    while (!state.failed.load()) {
        const uint64_t seed = state.next_seed.fetch_add(1);
        if (seed >= cli.seed_to || seed < cli.seed_from) return;  // second test: wrapped past 2^64 − 1
        Status status = write_one_scene(cli, seed, index);
        if (!status.is_ok()) {
            std::lock_guard<std::mutex> lock(state.error_mutex);
            if (!state.failed.exchange(true)) state.first_error = status.with_context(str_printf("seed %llu", static_cast<unsigned long long>(seed)));
            return;
        }
        state.done.fetch_add(1);
    }
}

void report_progress(const CliOptions& cli, RunState& state, const std::atomic<bool>& finished) {
    const uint64_t total = cli.seed_to - cli.seed_from;
    while (!finished.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        std::fprintf(stderr, "\r%llu/%llu scenes", static_cast<unsigned long long>(state.done.load()),
                     static_cast<unsigned long long>(total));
    }
    std::fputc('\n', stderr);
}

int run(const CliOptions& cli) {
    std::error_code ec;
    std::filesystem::create_directories(cli.out_dir, ec);
    if (ec) {
        std::fprintf(stderr, "glimpse-scenes: %s: cannot create directory: %s\n", cli.out_dir.c_str(),
                     ec.message().c_str());
        return kExitFailure;
    }
    configure_png_writer(cli.png_level);
    std::FILE* index_file = nullptr;
    std::unique_ptr<OrderedIndexWriter> index;
    const std::string index_path = (std::filesystem::path(cli.out_dir) / "index.jsonl").string();
    if (cli.write_index) {
        index_file = std::fopen(index_path.c_str(), "wb");
        if (index_file == nullptr) {
            std::fprintf(stderr, "glimpse-scenes: %s: cannot open for writing\n", index_path.c_str());
            return kExitFailure;
        }
        index = std::make_unique<OrderedIndexWriter>(index_file, cli.seed_from);
    }

    RunState state;
    state.next_seed = cli.seed_from;
    const auto start = std::chrono::steady_clock::now();
    std::atomic<bool> finished{false};
    std::thread progress;
    if (!cli.quiet) progress = std::thread(report_progress, std::cref(cli), std::ref(state), std::cref(finished));
    std::vector<std::thread> workers;
    for (int t = 0; t < cli.threads; ++t) workers.emplace_back(worker, std::cref(cli), index.get(), std::ref(state));
    for (std::thread& t : workers) t.join();
    finished = true;
    if (progress.joinable()) progress.join();

    if (index_file != nullptr && std::fclose(index_file) != 0 && !state.failed) {
        state.failed = true;
        state.first_error = Status::error(StatusCode::io_error, "%s: close failed", index_path.c_str());
    }
    if (state.failed) {
        std::fprintf(stderr, "glimpse-scenes: %s\n", state.first_error.to_string().c_str());
        return kExitFailure;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const uint64_t count = state.done.load();
    std::printf("wrote %llu scenes to %s in %.1f s (%.1f scenes/s, %d threads)\n",
                static_cast<unsigned long long>(count), cli.out_dir.c_str(), seconds,
                seconds > 0 ? static_cast<double>(count) / seconds : 0.0, cli.threads);
    return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    CliOptions cli;
    try {
        cli = parse_args(argc, argv);
    } catch (const UsageError& e) {
        std::fprintf(stderr, "glimpse-scenes: %s\n(see glimpse-scenes --help)\n", e.message.c_str());
        return kExitUsage;
    }
    return run(cli);
}
