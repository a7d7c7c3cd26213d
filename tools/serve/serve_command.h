// `glimpse serve`: the command line of the HTTP server (tools/serve/server.h, docs/serve.md).
#pragma once

#include "models/vlm.h"
#include "runtime/status.h"
#include "tools/common/args.h"

namespace glimpse::serve {

// The model options every glimpse command shares (-m, --mmproj, -t, --kv-type, --prune, ...):
// declared and read by tools/glimpse/main.cpp, so serve takes exactly what caption takes.
struct ModelOptionHooks {
    void (*declare)(tools::ArgParser&);
    Result<VlmConfig> (*read)(const tools::ArgParser&);
};

// Runs the server until SIGINT or SIGTERM; returns the process exit status (0 stopped by a
// signal, 1 the models or the socket failed, 2 usage).
int serve_command(int argc, char** argv, const ModelOptionHooks& model_options);

}  // namespace glimpse::serve
