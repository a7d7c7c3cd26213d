// The matrix shapes SmolVLM-256M/500M run, per stage (the linear layers of one block;
// every block of a stage has the same shapes).
//   encoder:   SigLIP-B/16 at 512 px: M = 1024 patches, n_embd 768, ffn 3072 (both models)
//   connector: pixel shuffle 4 -> 64 tokens of 768·16 = 12288 -> text n_embd
//   prefill:   the decoder on a 512-token batch (llama.cpp's n_ubatch)
//   decode:    the decoder on one token; the LM head (tied embeddings, 49152 tokens) runs
//              at M = 1 in both (prefill keeps only the last row's logits)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace glimpse::bench {

struct BenchShape {
    std::string name;         // "enc.fc1", "dec256.ffn_up.m1", ...
    std::string model;        // "smolvlm256m", "smolvlm500m" or "both"
    std::string shape_class;  // encoder | connector | prefill | decode
    int64_t M, K, N;
    bool bias;                // SigLIP and the connector have biases, the llama decoder none
};

inline void add_decoder_shapes(std::vector<BenchShape>* out, const std::string& model, const std::string& tag,
                               int64_t C, int64_t kv, int64_t ff) {
    for (int64_t M : {int64_t{1}, int64_t{512}}) {
        const std::string sfx = M == 1 ? ".m1" : ".m512";
        const std::string cls = M == 1 ? "decode" : "prefill";
        out->push_back({tag + ".attn_q" + sfx, model, cls, M, C, C, false});   // q and o
        out->push_back({tag + ".attn_kv" + sfx, model, cls, M, C, kv, false}); // k and v
        out->push_back({tag + ".ffn_up" + sfx, model, cls, M, C, ff, false});  // gate and up
        out->push_back({tag + ".ffn_down" + sfx, model, cls, M, ff, C, false});
    }
    out->push_back({tag + ".lm_head.m1", model, "decode", 1, C, 49152, false});
}

// False for an unknown set name.
inline bool bench_shapes(const std::string& set, std::vector<BenchShape>* out) {
    const bool s256 = set == "smolvlm256m" || set == "all";
    const bool s500 = set == "smolvlm500m" || set == "all";
    if (!s256 && !s500) return false;
    const std::string enc_model = s256 && s500 ? "both" : set;
    out->push_back({"enc.attn_qkvo", enc_model, "encoder", 1024, 768, 768, true});
    out->push_back({"enc.fc1", enc_model, "encoder", 1024, 768, 3072, true});
    out->push_back({"enc.fc2", enc_model, "encoder", 1024, 3072, 768, true});
    if (s256) out->push_back({"conn256", "smolvlm256m", "connector", 64, 12288, 576, false});
    if (s500) out->push_back({"conn500", "smolvlm500m", "connector", 64, 12288, 960, false});
    if (s256) add_decoder_shapes(out, "smolvlm256m", "dec256", 576, 192, 1536);
    if (s500) add_decoder_shapes(out, "smolvlm500m", "dec500", 960, 320, 2560);
    return true;
}

}  // namespace glimpse::bench
