// The bundled tiny VLMs (models/bundled/) and held-out scenes of their preset, for the tests
// that run them end to end. Header-only: only the tests that link the scene generator
// (glimpse_scenes, tools/scenes) include it, so test_util.cpp does not depend on it.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "models/text_decoder.h"
#include "runtime/image.h"
#include "test_util.h"
#include "tools/scenes/scene.h"

namespace glimpse::test {

// Stems of the f16 bundled pairs: <stem>-text.gguf and <stem>-mmproj.gguf.
inline constexpr const char* kBundledSmolVlm = "scenes-smolvlm-f16";
inline constexpr const char* kBundledLlava = "scenes-llava-f16";

inline std::string bundled_dir() { return source_dir() + "/models/bundled"; }

// models/bundled/<stem>-<part>.gguf, part "text" or "mmproj".
inline std::string bundled_model(const std::string& stem, const char* part) {
    return bundled_dir() + "/" + stem + "-" + part + ".gguf";
}

// A generated scene's pixels as the image type the pipeline takes.
inline ImageU8 scene_image(const scenes::SceneImage& pixels) {
    ImageU8 img;
    img.width = pixels.width;
    img.height = pixels.height;
    img.rgb = pixels.rgb;
    return img;
}

// The scene `seed` of the bundled preset (held out from training for seeds >= 1000000; wide
// enough for SmolVLM to tile it). Fails the test if the preset is missing.
inline ImageU8 bundled_scene_image(uint64_t seed) {
    auto preset = scenes::scene_preset("bundled");
    REQUIRE(preset.is_ok());
    return scene_image(scenes::scene_generate(seed, *preset).image);
}

// A decoder prompt of T rows: the token embeddings of T pseudo-random ids (test::Rng{seed}),
// positions 0..T-1; rows [v0, v0 + nv) are marked visual, the text around them.
//   x:(T, n_embd) f32, pos:(T) i32, is_visual:(T) 0/1
struct DecoderPrompt {
    int64_t T = 0, v0 = 0, nv = 0;
    std::vector<float> x;
    std::vector<int32_t> pos;
    std::vector<uint8_t> is_visual;
};

inline DecoderPrompt random_token_prompt(const TextDecoder& dec, int64_t T, int64_t v0, int64_t nv, uint64_t seed) {
    DecoderPrompt p;
    p.T = T, p.v0 = v0, p.nv = nv;
    const int64_t C = dec.hparams().n_embd;
    p.x.resize(static_cast<size_t>(T * C));
    Rng rng{seed};
    for (int64_t i = 0; i < T; ++i) {
        dec.embed_token(rng.integer(0, static_cast<int32_t>(dec.hparams().n_vocab) - 1), p.x.data() + i * C);
    }
    p.pos.resize(static_cast<size_t>(T));
    std::iota(p.pos.begin(), p.pos.end(), 0);
    p.is_visual.assign(static_cast<size_t>(T), 0);
    for (int64_t i = v0; i < v0 + nv; ++i) p.is_visual[static_cast<size_t>(i)] = 1;
    return p;
}

}  // namespace glimpse::test
