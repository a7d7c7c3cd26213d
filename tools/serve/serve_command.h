// `glimpse serve`: the command line of the HTTP server (tools/serve/server.h, docs/serve.md).
#pragma once

#include "models/vlm.h"
#include "runtime/status.h"
#include "tools/common/args.h"

namespace glimpse::serve {

// The model options read from a command line: the config, or why not and the exit status that
// calls for (2 a usage error: a bad flag or value; 1 a failed run: a file an option makes glimpse
// read before the load, such as the text model the decoder-layer shorthand takes its depth from).
struct ModelConfigRead {
    Result<VlmConfig> config;
    int exit_code = 0;  // when !config.is_ok()
};

// The model options every glimpse command shares (-m, --mmproj, -t, --kv-type, --prune, ...):
// declared and read by tools/glimpse/main.cpp, so serve takes exactly what caption takes and
// exits with the same status for the same error.
struct ModelOptionHooks {
    void (*declare)(tools::ArgParser&);
    ModelConfigRead (*read)(const tools::ArgParser&);
};

// Runs the server until SIGINT or SIGTERM; returns the process exit status (0 stopped by a
// signal, 1 the models or the socket failed, 2 usage).
int serve_command(int argc, char** argv, const ModelOptionHooks& model_options);

}  // namespace glimpse::serve
