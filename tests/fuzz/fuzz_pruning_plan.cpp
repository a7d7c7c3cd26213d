// libFuzzer target: the pruning plan reader (runtime/pruning_plan.h). Input: any bytes as a plan
// document. A parse must either fail with a message that starts with the document's name, or give
// a plan that passes its own checks, fits or is refused by both model layouts without a crash, and
// writes back to a document that reads back to the same text. Seeds: corpus/pruning_plan/ (the
// hostile documents of tests/test_pruning_plan.cpp are its doctest twins).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "runtime/pruning_plan.h"

using namespace glimpse;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto plan = pruning_plan_parse(text, "fuzz.json");
    if (!plan.is_ok()) {
        if (plan.status().message().rfind("fuzz.json", 0) != 0) std::abort();  // every refusal names the file
        return 0;
    }
    if (!pruning_plan_check(*plan, "fuzz.json").is_ok()) std::abort();  // parsed plans pass their checks
    // SmolVLM-256M, 2 x 2 tiles + overview
    const PruningModelShape smol = {.tokens_per_tile = 64, .n_tiles = 4, .has_overview = true, .pixel_shuffle = 4,
                                    .encoder_layers = 12, .decoder_layers = 30};
    // LLaVA-1.5
    const PruningModelShape llava = {.tokens_per_tile = 576, .n_tiles = 1, .encoder_has_cls = true,
                                     .encoder_layers = 24, .encoder_layers_run = 23, .decoder_layers = 32};
    (void)pruning_plan_fit(*plan, smol, "fuzz.json");
    (void)pruning_plan_fit(*plan, llava, "fuzz.json");
    const std::string written = pruning_plan_to_json(*plan);
    auto again = pruning_plan_parse(written, "written");
    if (!again.is_ok() || pruning_plan_to_json(*again) != written) std::abort();
    return 0;
}
