// Shared by the calibration tests (test_calibrate.cpp, test_calibration_levers.cpp): the planned
// bytes of a plan through the Vlm API, as `glimpse inspect --json` counts them, an oracle for the
// calibrator's own accounting (models/calibration.h).
#pragma once

#include <doctest/doctest.h>

#include "models/calibration.h"
#include "models/vlm.h"

namespace glimpse::test {

// VlmMemory::total() of `plan` for one image of the settings' geometry, their planned prompt and
// answer tokens, with the image buffers generate() holds (tiles + embeddings); no process overhead.
// Optionally the prompt's positions, the values of one KV row (n_head_kv · head_dim) and the planned weights.
inline int64_t planned_bytes(const PruningPlan& plan, const CalibrationSettings& s, int64_t* prompt_positions = nullptr,
                             int64_t* kv_row_values = nullptr, int64_t* weights = nullptr) {
    VlmConfig cfg = s.base;
    cfg.pruning = plan;
    auto vlm = Vlm::load(s.text_path, s.mmproj_path, cfg);
    REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().message());
    ImageU8 img;
    img.width = s.image_width;
    img.height = s.image_height;
    img.rgb.assign(static_cast<size_t>(img.width) * img.height * 3, 7);
    auto prompt = (*vlm)->build_prompt(s.plan_prompt, {img});
    REQUIRE(prompt.is_ok());
    REQUIRE((*vlm)->prepare(*prompt, s.answer_tokens).is_ok());
    VlmMemory m = (*vlm)->memory();
    m.image_buffers = prompt->n_image_tokens() * (*vlm)->text().hparams().n_embd * 4;
    for (const PreprocessedImage& p : prompt->images) m.image_buffers += static_cast<int64_t>(p.data.size() * 4);
    if (prompt_positions) *prompt_positions = prompt->n_positions();
    if (weights) *weights = m.weights;
    if (kv_row_values) *kv_row_values = (*vlm)->text().hparams().n_head_kv * (*vlm)->text().hparams().head_dim;
    return m.total();
}

}  // namespace glimpse::test
