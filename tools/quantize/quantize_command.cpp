// The command line of glimpse-quantize and `glimpse quantize` (one parser for both).
#include <cstdio>
#include <optional>
#include <string>

#include "tools/common/args.h"
#include "tools/quantize/quantize_command.h"
#include "tools/quantize/quantize_gguf.h"

namespace glimpse::tools {

int quantize_command(const std::string& program, int argc, char** argv) {
    ArgParser args(program, "IN.gguf OUT.gguf --type TYPE [options]   (or: IN.gguf OUT.gguf TYPE)",
                   "Writes OUT.gguf with the weights of IN.gguf quantized to TYPE, choosing per-tensor types as\n"
                   "llama-quantize does (norms, biases and embeddings that must stay precise are copied; the k-quant\n"
                   "mixes give attn_v/ffn_down/output more bits). Types: " +
                       file_type_names() + ".");
    args.option("-t,--type", "TYPE", "file type to quantize to");
    args.repeated("--tensor-type", "REGEX=TYPE",
                  "tensors whose name matches REGEX get TYPE (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, "
                  "q5_k, q6_k); first match wins; may be repeated");
    args.option("--token-embedding-type", "TYPE", "type of token_embd.weight");
    args.option("--output-tensor-type", "TYPE", "type of output.weight");
    args.flag("--leave-output-tensor", "copy output.weight unchanged");
    args.flag("--pure", "no k-quant mixes: every quantized tensor gets the type's base type");
    args.flag("--allow-requantize", "allow converting tensors that are already quantized (loses precision twice)");
    args.option("--threads", "N", "worker threads (0: all)", "0");
    if (const std::optional<int> exit_code = args.parse_or_exit_code(argc, argv)) return *exit_code;
    std::string error;
    const std::vector<std::string>& pos = args.positional();
    if (pos.size() < 2 || pos.size() > 3 || (pos.size() == 3 && args.has("--type")) ||
        (pos.size() == 2 && !args.has("--type"))) {
        std::fprintf(stderr, "%s: usage: %s IN.gguf OUT.gguf --type TYPE (see --help)\n", program.c_str(), program.c_str());
        return 2;
    }
    QuantizeOptions opt;
    opt.input_path = pos[0];
    opt.output_path = pos[1];
    opt.type = pos.size() == 3 ? pos[2] : args.get("--type");
    auto fail = [&](const Status& s) {
        std::fprintf(stderr, "%s: %s\n", program.c_str(), s.message().c_str());
        return 2;
    };
    if (Result<FileType> ft = parse_file_type(opt.type); !ft.is_ok()) return fail(ft.status());
    for (const std::string& arg : args.get_all("--tensor-type")) {
        Result<TensorTypeOverride> o = parse_tensor_type_override(arg);
        if (!o.is_ok()) return fail(o.status());
        opt.tensor_types.push_back(*o);
    }
    for (const char* name : {"--token-embedding-type", "--output-tensor-type"}) {
        if (!args.has(name)) continue;
        Result<DType> t = parse_tensor_type(args.get(name));
        if (!t.is_ok()) return fail(t.status().with_context(name));
        (std::string(name) == "--token-embedding-type" ? opt.token_embedding_type : opt.output_tensor_type) = *t;
    }
    int64_t threads = 0;
    if (!args.get_int("--threads", &threads, &error) || threads < 0 || threads > 1024) {
        std::fprintf(stderr, "%s: --threads: %s\n", program.c_str(), error.empty() ? "must be 0..1024" : error.c_str());
        return 2;
    }
    opt.threads = static_cast<int>(threads);
    opt.leave_output_tensor = args.has("--leave-output-tensor");
    opt.pure = args.has("--pure");
    opt.allow_requantize = args.has("--allow-requantize");
    opt.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };

    const Status s = quantize_gguf(opt);
    if (!s.is_ok()) {
        std::fprintf(stderr, "%s: %s\n", program.c_str(), s.to_string().c_str());
        return 1;
    }
    return 0;
}

}  // namespace glimpse::tools
