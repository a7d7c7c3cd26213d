// Upper bounds on the work a model file or a request may ask for. They are far above every
// published model glimpse runs (SmolVLM: 512 px tiles, longest edge 2048 = 4x4 tiles + overview,
// context 8192; LLaVA-1.5: 336 px, 576 patches) and low enough that a hostile or corrupt file
// is refused with a message before it can plan gigabytes or hours of work.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/status.h"

namespace glimpse::limits {

// clip.vision.image_size: the side of one encoder pass (tile), in pixels.
inline constexpr int64_t kMaxEncoderImageSize = 2048;
// Patches per encoder pass; attention is quadratic in it (SigLIP 512/16: 1024).
inline constexpr int64_t kMaxPatchesPerPass = 4096;
// clip.vision.preproc_image_size: the longest edge an image is scaled to before tiling.
inline constexpr int64_t kMaxPreprocImageSize = 4096;
// Tiles along one side of an idefics3 image grid (SmolVLM uses up to 4), so at most 8x8 tiles
// + the overview = 65 encoder passes per image.
inline constexpr int64_t kMaxTilesPerSide = 8;
// llama.context_length: positions a prompt plus its answer may use.
inline constexpr int64_t kMaxContextLength = int64_t{1} << 20;
// Images in one prompt (each is up to 65 encoder passes).
inline constexpr int64_t kMaxImagesPerPrompt = 16;

// The model metadata value `key` = v of the file at `path` within [lo, hi]: ok, else an
// out_of_range error naming the file, the key, the value and the range.
inline Status check_metadata_range(const std::string& path, const char* key, int64_t v, int64_t lo, int64_t hi) {
    GLIMPSE_CHECK_OR_RETURN(v >= lo && v <= hi, out_of_range, "%s: %s = %lld is outside [%lld, %lld]", path.c_str(),
                            key, static_cast<long long>(v), static_cast<long long>(lo), static_cast<long long>(hi));
    return Status::ok();
}

}  // namespace glimpse::limits
