// `glimpse tune`: measure the matmul kernels on a model's own shapes on this machine and write
// the decision file (ops/matmul_decision_file.h) that glimpse then uses (model commands pick
// it up with use_matmul_decisions).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ops/matmul_decision_file.h"
#include "runtime/status.h"

namespace glimpse::tools {

// One matrix product a model runs: `count` weights of this type and shape per forward pass.
struct TuneShape {
    DType w_type = DType::f16;
    int64_t M = 0, K = 0, N = 0;
    int count = 0;
    std::string example;  // one tensor name, for the report
};

// The weight matrices of a GGUF model file and the rows they run with: mmproj ("clip")
// tower weights at M = patches (+1 with a class embedding), the connector at M = patches /
// scale_factor² (idefics3) or patches; text weights at M = 1 (decode) and M = 512 (prefill,
// llama.cpp's n_ubatch), the LM head (output.weight, else tied token_embd.weight) at M = 1.
// Shapes sharing type, M, K, N are merged with a count.
Result<std::vector<TuneShape>> model_tune_shapes(const std::string& gguf_path);

// The command line of `glimpse tune` / glimpse-tune; returns the exit status.
int tune_command(const std::string& program, int argc, char** argv);

}  // namespace glimpse::tools
