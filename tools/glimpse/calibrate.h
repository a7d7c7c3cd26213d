// glimpse calibrate (issue 25, docs/calibration.md): a pruning plan that fits a memory budget.
#pragma once

#include <string>

namespace glimpse::tools {

int calibrate_command(const std::string& program, int argc, char** argv);

}  // namespace glimpse::tools
