// glimpse-quantize: quantizes a GGUF model the way llama-quantize does (same
// tensor types, same bytes for the same input), for glimpse and llama.cpp.
#include "tools/quantize/quantize_command.h"

int main(int argc, char** argv) { return glimpse::tools::quantize_command("glimpse-quantize", argc - 1, argv + 1); }
