// Per-patch training labels of one scene for the bundled tiny VLMs' stage 1 (tools/train/README.md):
// what each ViT patch of each preprocessed chunk shows, in one 64-bit word per patch.
//
// Word layout (meta.json "patch_label_version" 3):
//   bit color*6+shape   that object covers >= 8 % of the patch's pixels          (bits 0..47)
//   bit 48              text covers >= 8 % of the patch                          (kTextBit)
//   bits 49..54         1 + kTextAlphabet index of the glyph covering most of it (0: none)
//   bits 55..57         1 + shape of the object whose center pixel it shows (the topmost if several)
//   bits 58..63         1 + kTextAlphabet index of the glyph whose cell center it shows: one patch
//                       per character, the whole glyph around it
// Patches follow glimpse's preprocessing geometry exactly (idefics3 tiles + overview, or LLaVA's
// one padded image), so a label sits on the token that shows it at inference.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/status.h"
#include "tools/scenes/scene.h"

namespace glimpse::traindata {

inline constexpr int kTextBit = scenes::kColorCount * scenes::kShapeCount;
inline constexpr int kGlyphShift = kTextBit + 1;            // 6 bits: 1 + character index
inline constexpr int kCenterShift = kGlyphShift + 6;        // 3 bits: 1 + shape
inline constexpr int kGlyphCenterShift = kCenterShift + 3;  // 6 bits: 1 + character index
// 1: bits 0..48 only; 2: no glyph centers; 3: the layout above.
inline constexpr int kPatchLabelVersion = 3;

struct PatchGrid {
    bool idefics3 = true;  // SmolVLM tiles + overview; false: LLaVA's single padded image
    int tile = 80;         // chunk side S in pixels
    int patch = 10;        // ViT patch side P; S % P == 0
    int longest_edge = 160;  // idefics3 only
};

// scene -> n_chunks × (S/P)² words, chunks in preprocessing order, patches row-major.
Result<std::vector<uint64_t>> scene_patch_labels(const scenes::Scene& scene, const PatchGrid& grid);

// Field accessors of one word (0 = none for the class fields).
inline int glyph_center_class(uint64_t word) { return static_cast<int>((word >> kGlyphCenterShift) & 63); }
inline int object_center_class(uint64_t word) { return static_cast<int>((word >> kCenterShift) & 7); }
inline int glyph_cover_class(uint64_t word) { return static_cast<int>((word >> kGlyphShift) & 63); }

}  // namespace glimpse::traindata
