// glimpse-mkmodel: writes random-weight VLM GGUF pairs with the real SmolVLM or
// LLaVA layout, from tiny test models to the SmolVLM-256M/500M dimensions.
#include <cstdio>
#include <optional>
#include <string>

#include "tools/common/args.h"
#include "tools/common/model_writer.h"

using namespace glimpse;
using namespace glimpse::tools;

int main(int argc, char** argv) {
    ArgParser args("glimpse-mkmodel", "--preset NAME -o PREFIX [options]",
                   "Writes PREFIX-text.gguf and PREFIX-mmproj.gguf: a random-weight vision-language model pair in the\n"
                   "layout llama.cpp and glimpse read (SmolVLM: idefics3 mmproj; LLaVA: CLIP mmproj with an MLP\n"
                   "projector). Weights are random, so the model's output is meaningless; use it for tests and\n"
                   "benchmarks. Presets: tiny, smolvlm-256m, smolvlm-500m, llava-tiny, llava-clip-b16.");
    args.option("--preset", "NAME", "model size and layout", "tiny");
    args.option("-o,--out", "PREFIX", "output path prefix");
    args.option("--type", "TYPE", "type of 2-D weights: f32, f16 or bf16 (default: the preset's)");
    args.option("--seed", "N", "random seed", "1234");
    args.option("--std", "X", "standard deviation of the random weights", "0.02");
    args.option("--text-layers", "N", "override the number of decoder layers");
    args.option("--vision-layers", "N", "override the number of vision encoder layers");
    if (const std::optional<int> exit_code = args.parse_or_exit_code(argc - 1, argv + 1)) return *exit_code;
    std::string error;
    if (!args.has("--out")) {
        std::fprintf(stderr, "glimpse-mkmodel: -o PREFIX is required (see --help)\n");
        return 2;
    }
    Result<VlmSpec> spec = vlm_preset(args.get("--preset"));
    if (!spec.is_ok()) {
        std::fprintf(stderr, "glimpse-mkmodel: %s\n", spec.status().message().c_str());
        return 2;
    }
    int64_t seed = 1234, text_layers = spec->text.n_layer, vision_layers = spec->vision.n_layer;
    double std_dev = 0.02;
    if (!args.get_int("--seed", &seed, &error) || !args.get_float("--std", &std_dev, &error) ||
        !args.get_int("--text-layers", &text_layers, &error) ||
        !args.get_int("--vision-layers", &vision_layers, &error)) {
        std::fprintf(stderr, "glimpse-mkmodel: %s\n", error.c_str());
        return 2;
    }
    if (text_layers < 1 || vision_layers < 1 || !(std_dev > 0)) {
        std::fprintf(stderr, "glimpse-mkmodel: layer counts must be >= 1 and --std positive\n");
        return 2;
    }
    spec->seed = static_cast<uint64_t>(seed);
    spec->weight_std = static_cast<float>(std_dev);
    spec->text.n_layer = text_layers;
    spec->vision.n_layer = vision_layers;
    if (args.has("--type")) {
        const std::string t = args.get("--type");
        if (t == "f32") spec->weight_type = DType::f32;
        else if (t == "f16") spec->weight_type = DType::f16;
        else if (t == "bf16") spec->weight_type = DType::bf16;
        else {
            std::fprintf(stderr, "glimpse-mkmodel: --type must be f32, f16 or bf16, not '%s'\n", t.c_str());
            return 2;
        }
    }
    const std::string prefix = args.get("--out");
    const std::string text_path = prefix + "-text.gguf", mmproj_path = prefix + "-mmproj.gguf";
    Status s = write_random_vlm(*spec, text_path, mmproj_path);
    if (!s.is_ok()) {
        std::fprintf(stderr, "glimpse-mkmodel: %s\n", s.to_string().c_str());
        return 1;
    }
    std::fprintf(stderr, "wrote %s and %s\n", text_path.c_str(), mmproj_path.c_str());
    return 0;
}
