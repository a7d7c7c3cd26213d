// `glimpse serve` in a build without cpp-httplib (the aarch64 cross builds: docs/serve.md).
#include <cstdio>

#include "tools/serve/serve_command.h"

namespace glimpse::serve {

int serve_command(int, char**, const ModelOptionHooks&) {
    std::fprintf(stderr, "glimpse serve: this glimpse was built without cpp-httplib (libcpp-httplib-dev), so it has "
                         "no HTTP server; build it where that package is installed (docs/serve.md)\n");
    return 1;
}

}  // namespace glimpse::serve
