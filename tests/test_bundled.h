// The bundled tiny VLMs (models/bundled/) and held-out scenes of their preset, for the tests
// that run them end to end. Header-only: only the tests that link the scene generator
// (glimpse_scenes, tools/scenes) include it, so test_util.cpp does not depend on it.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

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

}  // namespace glimpse::test
