// glimpse-bench: matmul kernel and end-to-end benchmarks with JSON output, so runs
// can be compared across commits (tools/bench/README.md, tools/bench/compare.py).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <stb_image_write.h>

#include "tools/common/args.h"

namespace glimpse::bench {
int cmd_kernels(int argc, char** argv);
int cmd_e2e(int argc, char** argv);
int cmd_soak(int argc, char** argv);
}  // namespace glimpse::bench

namespace {

const char* kUsage =
    "usage: glimpse-bench COMMAND [options]   (COMMAND --help for its options)\n"
    "\n"
    "  kernels   every usable matmul kernel on the SmolVLM-256M/500M shapes, plus memory bandwidth\n"
    "  e2e       load, image encode (per chunk), prefill and decode of a model pair on one image\n"
    "  mkimage   write a deterministic test image (JPEG) for e2e\n"
    "  soak      caption many scenes in one process: resident memory and time per image as it goes\n"
    "\n"
    "JSON goes to stdout, a human summary to stderr.\n";

// A deterministic picture with smooth gradients, edges and flat regions, so JPEG
// decoding and resizing do representative work.
int cmd_mkimage(int argc, char** argv) {
    glimpse::tools::ArgParser a("glimpse-bench mkimage", "-o FILE.jpg [--width W] [--height H]",
                                "Writes a deterministic RGB test image as JPEG (quality 90).");
    a.option("-o,--out", "FILE", "output path");
    a.option("--width", "W", "width", "1024");
    a.option("--height", "H", "height", "768");
    std::string err;
    int64_t w = 1024, h = 768;
    if (!a.parse(argc, argv, &err) || !a.get_int("--width", &w, &err) || !a.get_int("--height", &h, &err)) {
        std::fprintf(stderr, "glimpse-bench mkimage: %s\n", err.c_str());
        return 2;
    }
    if (a.has("--help")) {
        std::fputs(a.help().c_str(), stdout);
        return 0;
    }
    if (!a.has("--out") || w < 1 || h < 1 || w > 16384 || h > 16384) {
        std::fprintf(stderr, "glimpse-bench mkimage: -o FILE is required; 1 <= width, height <= 16384\n");
        return 2;
    }
    std::vector<unsigned char> rgb(static_cast<size_t>(w * h * 3));
    for (int64_t y = 0; y < h; ++y) {
        for (int64_t x = 0; x < w; ++x) {
            const double u = static_cast<double>(x) / w, v = static_cast<double>(y) / h;
            double r = 40 + 150 * u, g = 60 + 120 * v, b = 200 - 120 * u * v;
            const double cx = u - 0.35, cy = v - 0.45;
            if (cx * cx + cy * cy < 0.04) r = 230, g = 200 + 30 * std::sin(40 * u), b = 40;  // a sun
            if (u > 0.6 && u < 0.9 && v > 0.55 && v < 0.85) r = 30, g = 90 + 60 * ((x / 16 + y / 16) % 2), b = 50;
            if (std::fabs(v - 0.5 - 0.1 * std::sin(12 * u)) < 0.01) r = g = b = 250;  // a line
            unsigned char* p = rgb.data() + (y * w + x) * 3;
            p[0] = static_cast<unsigned char>(r);
            p[1] = static_cast<unsigned char>(g);
            p[2] = static_cast<unsigned char>(b);
        }
    }
    const std::string out = a.get("--out");
    if (!stbi_write_jpg(out.c_str(), static_cast<int>(w), static_cast<int>(h), 3, rgb.data(), 90)) {
        std::fprintf(stderr, "glimpse-bench mkimage: cannot write %s\n", out.c_str());
        return 1;
    }
    std::fprintf(stderr, "wrote %s (%lldx%lld)\n", out.c_str(), static_cast<long long>(w), static_cast<long long>(h));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
        std::fputs(kUsage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const std::string cmd = argv[1];
    if (cmd == "kernels") return glimpse::bench::cmd_kernels(argc - 2, argv + 2);
    if (cmd == "e2e") return glimpse::bench::cmd_e2e(argc - 2, argv + 2);
    if (cmd == "mkimage") return cmd_mkimage(argc - 2, argv + 2);
    if (cmd == "soak") return glimpse::bench::cmd_soak(argc - 2, argv + 2);
    std::fprintf(stderr, "glimpse-bench: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
    return 2;
}
