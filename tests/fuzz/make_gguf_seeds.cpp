// Writes the GGUF seed corpus (corpus/gguf/): tiny but complete SmolVLM and LLaVA pairs
// (1 layer, width 8, so every loader check and graph build runs on them), and small files
// exercising every metadata value type, nested arrays, quantized tensor types and a
// non-default alignment. Built with the fuzz targets (GLIMPSE_FUZZ=ON):
//   build-fuzz/tests/fuzz/make_gguf_seeds tests/fuzz/corpus/gguf
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/gguf_writer.h"
#include "tools/common/model_writer.h"

using namespace glimpse;

namespace {

int fail(const Status& s) {
    std::fprintf(stderr, "make_gguf_seeds: %s\n", s.message().c_str());
    return 1;
}

tools::VlmSpec tiny(tools::VlmLayout layout, DType type) {
    tools::VlmSpec spec;
    spec.layout = layout;
    spec.weight_type = type;
    spec.text.n_embd = 8;
    spec.text.n_layer = 1;
    spec.text.n_head = 2;
    spec.text.n_head_kv = 1;
    spec.text.n_ff = 16;
    spec.text.n_vocab = 17 + 256 + 40;  // the smallest vocabulary the writer allows
    spec.text.n_merges = 4;
    spec.vision.image_size = 16;
    spec.vision.patch_size = 8;
    spec.vision.n_embd = 8;
    spec.vision.n_layer = 1;
    spec.vision.n_head = 2;
    spec.vision.n_ff = 16;
    spec.vision.scale_factor = 2;
    spec.vision.preproc_image_size = 32;
    return spec;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_gguf_seeds OUT_DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    if (Status s = tools::write_random_vlm(tiny(tools::VlmLayout::smolvlm, DType::f16), dir + "/smolvlm-text.gguf",
                                           dir + "/smolvlm-mmproj.gguf");
        !s.is_ok()) {
        return fail(s);
    }
    if (Status s = tools::write_random_vlm(tiny(tools::VlmLayout::llava, DType::f32), dir + "/llava-text.gguf",
                                           dir + "/llava-mmproj.gguf");
        !s.is_ok()) {
        return fail(s);
    }

    // Every value type, nested arrays, two tensors of block-quantized types, alignment 64.
    GgufWriter w(64);
    w.set_string("general.architecture", "llama");
    w.set_u32("general.alignment", 64);
    w.set_raw("u8", GgufType::u8, {200});
    w.set_raw("i8", GgufType::i8, {0x80});
    w.set_raw("u16", GgufType::u16, {0xff, 0xff});
    w.set_raw("i16", GgufType::i16, {0x00, 0x80});
    w.set_i32("i32", -7);
    w.set_u64("u64", ~uint64_t{0});
    w.set_raw("i64", GgufType::i64, {0, 0, 0, 0, 0, 0, 0, 0x80});
    w.set_raw("f64", GgufType::f64, {0, 0, 0, 0, 0, 0, 0xf0, 0x7f});  // +inf
    w.set_f32("f32", 0.5f);
    w.set_bool("bool", true);
    w.set_i32_array("ints", {1, -2, 3});
    w.set_f32_array("floats", {0.25f, -1.0f});
    // array of 2 arrays of u8: [[1, 2], [3]]
    w.set_raw("nested", GgufType::array,
              {static_cast<uint8_t>(GgufType::array), 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,  //
               static_cast<uint8_t>(GgufType::u8), 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2,
               static_cast<uint8_t>(GgufType::u8), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3});
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "<s>"});
    if (Status s = w.add_tensor("q8", DType::q8_0, {32, 1}, std::vector<uint8_t>(34, 1)); !s.is_ok()) return fail(s);
    if (Status s = w.add_tensor("q4", DType::q4_0, {32, 2}, std::vector<uint8_t>(36, 2)); !s.is_ok()) return fail(s);
    if (Status s = w.add_tensor("f16", DType::f16, {3, 1, 1, 2}, std::vector<uint8_t>(12, 3)); !s.is_ok()) return fail(s);
    if (Status s = w.write(dir + "/all-types.gguf"); !s.is_ok()) return fail(s);

    GgufWriter empty;
    if (Status s = empty.write(dir + "/empty.gguf"); !s.is_ok()) return fail(s);
    return 0;
}
