// The quantize command line, shared by glimpse-quantize and `glimpse quantize`.
#pragma once

#include <string>

namespace glimpse::tools {

// argv holds the arguments after the program (or subcommand) name. Returns the
// process exit code; messages go to stderr, --help to stdout.
int quantize_command(const std::string& program, int argc, char** argv);

}  // namespace glimpse::tools
