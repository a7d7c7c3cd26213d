// A calibrated plan's memory budget, checked per request (models/calibration_budget.h).
#include "models/calibration_budget.h"

#include <algorithm>
#include <cmath>

#include "runtime/pruning_plan.h"

namespace glimpse {

namespace {

double to_mib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// "a 640x480 image", "2 images (640x480, 480x480)", "no image".
std::string describe_images(const std::vector<std::pair<int, int>>& sizes) {
    if (sizes.empty()) return "no image";
    if (sizes.size() == 1) return str_printf("a %dx%d image", sizes[0].first, sizes[0].second);
    std::string list;
    for (const auto& [w, h] : sizes) list += (list.empty() ? "" : ", ") + str_printf("%dx%d", w, h);
    return str_printf("%zu images (%s)", sizes.size(), list.c_str());
}

}  // namespace

int64_t calibration_process_overhead(int64_t weight_bytes, int64_t fixed_bytes, double weight_share) {
    return fixed_bytes + static_cast<int64_t>(std::ceil(weight_share * static_cast<double>(weight_bytes)));
}

VlmMemory planned_request_memory(const Vlm& vlm, const VlmPrompt& prompt) {
    VlmMemory m = vlm.memory();
    m.image_buffers = prompt.n_image_tokens() * vlm.text().hparams().n_embd * 4;
    for (const PreprocessedImage& p : prompt.images) m.image_buffers += static_cast<int64_t>(p.data.size() * 4);
    return m;
}

Status check_calibrated_budget(Vlm& vlm, const VlmPrompt& prompt, const BudgetRequest& request, bool over_budget,
                               std::string* warning) {
    if (warning) warning->clear();
    const std::optional<PruningPlan>& plan = vlm.pruning_plan();
    if (!plan || !plan->calibration || plan->calibration->budget_bytes <= 0) return Status::ok();
    const PruningCalibration& c = *plan->calibration;
    GLIMPSE_RETURN_IF_ERROR(vlm.prepare(prompt, request.n_predict));
    const VlmMemory m = planned_request_memory(vlm, prompt);
    const int64_t overhead = calibration_process_overhead(m.weights);
    const int64_t total = m.total() + overhead;
    if (total <= c.budget_bytes) return Status::ok();

    const int64_t prompt_tokens = prompt.n_positions() - prompt.n_image_tokens();  // as calibrate counts them
    const std::string what = str_printf(
        "%s (%s, %lld prompt tokens, %d answer tokens) plans %lld bytes (%.2f MiB = %.2f MiB planned + %.2f MiB "
        "process overhead), %.2f MiB over the pruning plan's budget of %lld bytes (%.2f MiB), calibrated for a %dx%d "
        "image, %lld prompt tokens and %lld answer tokens",
        request.label.empty() ? "this request" : request.label.c_str(), describe_images(request.image_sizes).c_str(),
        static_cast<long long>(prompt_tokens), request.n_predict, static_cast<long long>(total), to_mib(total),
        to_mib(m.total()), to_mib(overhead), to_mib(total - c.budget_bytes), static_cast<long long>(c.budget_bytes),
        to_mib(c.budget_bytes), c.image_width, c.image_height, static_cast<long long>(c.prompt_tokens),
        static_cast<long long>(c.answer_tokens));
    if (over_budget) {
        if (warning) *warning = "warning: " + what + "; running anyway (--over-budget)";
        return Status::ok();
    }
    // The geometry to calibrate for, covering the calibrated one and this request: the larger of
    // each side and of the answer lengths.
    int width = c.image_width, height = c.image_height;
    for (const auto& [w, h] : request.image_sizes) {
        width = std::max(width, w);
        height = std::max(height, h);
    }
    const int64_t answer_tokens = std::max<int64_t>(c.answer_tokens, request.n_predict);
    const std::string again = width > 0 ? str_printf("--image-size %dx%d -n %lld", width, height, static_cast<long long>(answer_tokens))
                                        : str_printf("-n %lld", static_cast<long long>(answer_tokens));
    return Status(StatusCode::resource_exhausted,
                  what + ": calibrate again for it (" + again + ", a prompt this long), or pass --over-budget to run anyway");
}

}  // namespace glimpse
