// glimpse-tune: the same command as `glimpse tune` (tools/tune/tune.h).
#include "tools/tune/tune.h"

int main(int argc, char** argv) { return glimpse::tools::tune_command("glimpse-tune", argc - 1, argv + 1); }
