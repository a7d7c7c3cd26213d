// The options of every glimpse command that loads a model (caption, inspect, eval, serve,
// calibrate): the model files, threads, chat template, matmul kernel decisions and the
// encoder's numerics. The pruning
// options (--kv-type, --prune, --plan, ...) are main.cpp's; calibrate chooses those itself.
#pragma once

#include "models/numerics.h"
#include "runtime/status.h"
#include "tools/common/args.h"

namespace glimpse::tools {

// Declares -m/--model, --mmproj, -t/--threads, --chat-template, --decisions and --numerics.
void add_model_options(ArgParser& a);

// --numerics exact|fast as models/numerics.h's Numerics (exact when absent); an
// invalid_argument error naming the value otherwise.
Result<Numerics> numerics_option(const ArgParser& a);

// Installs the matmul kernel decisions --decisions names (or this machine's cached file) before
// any model is loaded; every command that loads a model goes through here.
Status apply_matmul_decisions(const ArgParser& a);

}  // namespace glimpse::tools
