#include "tools/serve/serve_command.h"

#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "targets/cpu_features.h"
#include "tools/serve/server.h"

namespace glimpse::serve {

namespace {

int fail(const std::string& msg, int code) {
    std::fprintf(stderr, "glimpse serve: %s\n", msg.c_str());
    return code;
}

}  // namespace

int serve_command(int argc, char** argv, const ModelOptionHooks& model_options) {
    constexpr int kExitFailure = 1, kExitUsage = 2;
    tools::ArgParser a("glimpse serve", "-m TEXT.gguf --mmproj MMPROJ.gguf [--port N] [options]",
                       "Serves the model over HTTP with OpenAI's chat-completions API (docs/serve.md):\n"
                       "POST /v1/chat/completions (images as data: URIs; \"stream\": true for server-sent events),\n"
                       "GET /health, GET /v1/models. Prints the address it listens on to stdout; stops on SIGINT or\n"
                       "SIGTERM after answering the requests in progress.\n"
                       "\nexit status: 0 stopped by a signal; 1 the models could not be read or loaded, or the\n"
                       "address not served; 2 usage error (unknown or missing option, value out of range).\n");
    model_options.declare(a);
    a.option("--host", "ADDR", "address to listen on (glimpse does no authentication: keep it local)", "127.0.0.1");
    a.option("--port", "N", "TCP port; 0 picks a free one (printed on stdout)", "8080");
    a.option("--slots", "N", "requests answered at once, each on its own loaded copy of the model, 1..64", "1");
    a.option("--queue", "N", "requests that may wait for a slot; one more gets 503, 0..4096", "8");
    a.option("--max-body", "BYTES", "largest request body; a larger one gets 413", "33554432");
    a.option("--alias", "NAME", "model id in /v1/models and the answers (default: the text model's file name)");
    a.flag("--log-requests", "print one line per request on stderr");
    std::string err;
    if (!a.parse(argc, argv, &err)) return fail(err, kExitUsage);
    if (a.has("--help")) {
        std::fputs(a.help().c_str(), stdout);
        return std::fflush(stdout) == 0 ? 0 : kExitFailure;
    }
    if (!a.positional().empty()) return fail("unexpected argument '" + a.positional()[0] + "' (see --help)", kExitUsage);
    int64_t port = 0, slots = 0, queue = 0, max_body = 0;
    if (!a.get_int("--port", 0, 65535, &port, &err) || !a.get_int("--slots", 1, 64, &slots, &err) ||
        !a.get_int("--queue", 0, 4096, &queue, &err) ||
        !a.get_int("--max-body", 1024, int64_t{1} << 32, &max_body, &err)) {
        return fail(err, kExitUsage);
    }
    auto [config, config_exit_code] = model_options.read(a);
    if (!config.is_ok()) return fail(config.status().message(), config_exit_code);
    // Without -t the CPUs are shared out between the slots (each slot's model has its own pool).
    if (!a.has("--threads")) config->n_threads = std::max(1, usable_cpu_count() / static_cast<int>(slots));

    ServeOptions options;
    options.host = a.get("--host");
    options.port = static_cast<int>(port);
    options.queue = static_cast<int>(queue);
    options.max_body_bytes = max_body;
    options.model_name = a.has("--alias") ? a.get("--alias") : std::filesystem::path(a.get("--model")).filename().string();
    options.pruning = config->pruning;
    options.over_budget = a.has("--over-budget");
    options.log_requests = a.has("--log-requests");

    // SIGINT/SIGTERM are taken by one thread with sigwait (a handler may not call stop()); they
    // are blocked before any other thread starts, so every thread inherits the mask.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-answer is an error on that socket only

    std::vector<std::unique_ptr<Vlm>> models;
    for (int64_t i = 0; i < slots; ++i) {
        auto vlm = Vlm::load(a.get("--model"), a.get("--mmproj"), *config);
        if (!vlm.is_ok()) return fail(vlm.status().message(), kExitFailure);
        models.push_back(std::move(*vlm));
    }
    auto server = ChatServer::create(std::move(models), options);
    if (!server.is_ok()) return fail(server.status().message(), kExitFailure);
    auto bound = (*server)->bind();
    if (!bound.is_ok()) return fail(bound.status().message(), kExitFailure);
    std::fprintf(stdout, "glimpse serve: listening on http://%s:%d (model %s, %lld slot(s) of %d thread(s), queue %lld)\n",
                 options.host.c_str(), *bound, options.model_name.c_str(), static_cast<long long>(slots),
                 config->n_threads, static_cast<long long>(queue));
    std::fflush(stdout);

    ChatServer& chat = **server;
    std::thread signal_waiter([&chat, stop_signals] {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        chat.stop();
    });
    const Status served = chat.run();
    // The waiter still waits when run() ended on its own (a socket failure): wake it.
    pthread_kill(signal_waiter.native_handle(), SIGTERM);
    signal_waiter.join();
    if (!served.is_ok()) return fail(served.message(), kExitFailure);
    std::fprintf(stderr, "glimpse serve: stopped\n");
    return 0;
}

}  // namespace glimpse::serve
