// A calibrated plan's memory budget, checked per request (issue 25, docs/calibration.md "Output").
//
// `glimpse calibrate` fits a plan to `budget_bytes` for one image geometry, one prompt length and
// one answer length: planned total (weights + activations + KV cache + image buffers) + a process
// overhead <= budget. A request that plans more (a larger image, more tiles, a longer prompt, a
// larger -n) would run over that budget, so every tool that runs a plan carrying a `calibration`
// block plans the request first and calls check_calibrated_budget. "Geometry" is measured in
// planned bytes, not pixels: a smaller image that plans within the budget runs.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "models/vlm.h"
#include "runtime/status.h"

namespace glimpse {

// What the planner does not see (binary, libraries, thread stacks, allocator slack, file pages
// in flight), measured as peak RSS minus planned total in docs/calibration.md: 14.4-15.1 MiB on
// the bundled models (8 MiB of weights), 41-61 MiB on the SmolVLM-256M layout (316 MiB). 16 MiB
// + 20 % of the planned weights covers every measurement.
inline constexpr int64_t kCalibrationProcessOverhead = int64_t{16} << 20;
inline constexpr double kCalibrationOverheadWeightShare = 0.2;

// The overhead calibrate adds to a planned total: fixed_bytes + weight_share x weight_bytes,
// rounded up to a byte. The one rule calibrate's search and the per-request check both use.
int64_t calibration_process_overhead(int64_t weight_bytes, int64_t fixed_bytes = kCalibrationProcessOverhead,
                                     double weight_share = kCalibrationOverheadWeightShare);

// The planner's bytes for `prompt` after Vlm::prepare(prompt, ...), with the image buffers
// generate() holds for it (the kept image embeddings (n_image_tokens, n_embd) f32 + the
// preprocessed tiles), which Vlm::memory() only knows after an encode. What `glimpse inspect
// --json` reports and what calibrate's budget counts.
VlmMemory planned_request_memory(const Vlm& vlm, const VlmPrompt& prompt);

// One request, as the budget message names it.
struct BudgetRequest {
    std::string label;                              // "scene 1000003 (caption)"; empty: "this request"
    std::vector<std::pair<int, int>> image_sizes;   // width, height of each image of the prompt
    int n_predict = 0;                              // answer tokens planned for
};

// When `vlm` runs a plan with a `calibration` block (budget_bytes > 0): plans the request
// (Vlm::prepare(prompt, n_predict)) and checks planned_request_memory().total() +
// calibration_process_overhead(weights) <= budget_bytes. Over the budget: resource_exhausted
// naming the plan's calibrated geometry, lengths and budget, this request's image size(s), prompt
// and answer tokens and planned total, and what to do; with over_budget, ok instead and *warning
// set to one line with the same numbers (the caller prints it). Without a calibration block:
// ok, nothing planned, *warning left empty. Errors of the planner itself are returned as they are.
Status check_calibrated_budget(Vlm& vlm, const VlmPrompt& prompt, const BudgetRequest& request, bool over_budget,
                               std::string* warning);

}  // namespace glimpse
