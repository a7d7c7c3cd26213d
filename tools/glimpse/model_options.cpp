#include "tools/glimpse/model_options.h"

#include <cstdio>

#include "ops/matmul_decision_file.h"

namespace glimpse::tools {

void add_model_options(ArgParser& a) {
    a.option("-m,--model", "FILE", "text model GGUF (llama architecture)");
    a.option("--mmproj", "FILE", "vision projector GGUF (idefics3 or mlp) matching the text model");
    a.option("-t,--threads", "N", "threads, 1..1024; more than the CPUs this process may use are clamped (default: those CPUs)");
    a.option("--chat-template", "NAME", "chat template name or text, overriding the model's (e.g. vicuna for LLaVA)");
    a.option("--decisions", "FILE", "matmul kernel decisions from `glimpse tune` (default: this machine's cached file if any; none: built-in)");
    a.option("--numerics", "MODE",
             "vision encoder numerics: exact (the mmproj's weights as stored, llama.cpp's arithmetic) or fast (its "
             "f16/bf16/f32 matrices quantized to Q8_0 at load, as `glimpse quantize --type q8_0` writes them, so the "
             "int8 kernels run: the same outputs as that Q8_0 mmproj; the text model is used as stored)",
             "exact");
}

Result<Numerics> numerics_option(const ArgParser& a) { return parse_numerics(a.get("--numerics")); }

Status apply_matmul_decisions(const ArgParser& a) {
    return use_matmul_decisions(a.get("--decisions"),
                                [](const std::string& m) { std::fprintf(stderr, "glimpse: %s\n", m.c_str()); });
}

}  // namespace glimpse::tools
