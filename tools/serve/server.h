// glimpse serve: an OpenAI-compatible HTTP server over loaded Vlm instances (docs/serve.md).
//
//   POST /v1/chat/completions   one user message with text and data: URI images; "stream": true
//                               answers with server-sent events (OpenAI chunk format, data: [DONE])
//   GET  /health                {"status": "ok", slots and queue}
//   GET  /v1/models             the one model served
//
// Requests run on a fixed set of slots, each a Vlm loaded on its own (Vlm keeps its plans, KV
// cache and repacked weights per instance; the GGUF files are mapped once by the OS page cache
// but the repacked copies are per slot). A request is admitted when fewer than slots + queue
// requests are in flight, otherwise it gets 503 at once; admitted requests wait for a free slot
// in arrival order of the condition variable. Bodies over max_body_bytes get 413, bad JSON,
// bad images and prompts over the context 400, each with a JSON error message.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "models/vlm.h"
#include "runtime/status.h"

namespace httplib {
class Server;
}

namespace glimpse::serve {

struct ServeOptions {
    std::string host = "127.0.0.1";
    int port = 8080;                          // 0: any free port (ChatServer::bind returns it)
    int queue = 8;                            // admitted requests beyond the slots that wait for one
    int64_t max_body_bytes = int64_t{32} << 20;  // 32 MiB: an 8 MiB photo is ~11 MiB of base64
    std::string model_name = "glimpse";       // the id /v1/models and every answer report
    // The pruning plan the slots were loaded with (nullopt: none). A request asking for another
    // is refused with 400: Vlm fixes its plan at load (buffers sized for it), so switching would
    // mean reloading the model per request.
    std::optional<PruningPlan> pruning;
    // A plan with a calibration block: a request that plans more than its budget is refused with 400
    // (models/calibration_budget.h), or with over_budget answered anyway and logged on stderr.
    bool over_budget = false;
    bool log_requests = false;                // one line per request on stderr
    // Test seam: runs on the request's thread right after it took a slot, before generating
    // (tests hold a slot deterministically with it). Empty in the CLI.
    std::function<void()> on_slot_taken;
};

class ChatServer {
public:
    // `slots`: one or more models loaded with the same files and config.
    static Result<std::unique_ptr<ChatServer>> create(std::vector<std::unique_ptr<Vlm>> slots, ServeOptions options);
    ~ChatServer();
    ChatServer(const ChatServer&) = delete;
    ChatServer& operator=(const ChatServer&) = delete;

    // Binds the listening socket; returns the port (the chosen one for port 0).
    Result<int> bind();
    // Serves until stop(); returns an error when the socket could not be served.
    Status run();
    // Thread-safe; run() returns after the requests in progress have been answered.
    void stop();

    int n_slots() const { return static_cast<int>(all_slots_.size()); }

private:
    class SlotLease;
    class Admission;
    explicit ChatServer(std::vector<std::unique_ptr<Vlm>> slots, ServeOptions options);
    void install_routes();
    std::unique_ptr<SlotLease> take_slot();
    void give_back(Vlm* vlm);

    ServeOptions options_;
    std::vector<std::unique_ptr<Vlm>> all_slots_;
    std::unique_ptr<httplib::Server> http_;

    std::mutex slots_mutex_;
    std::condition_variable slot_freed_;
    std::vector<Vlm*> free_slots_;
    std::atomic<int> in_flight_{0};  // admitted chat requests: running + waiting for a slot
    std::atomic<uint64_t> next_id_{1};
    std::atomic<bool> run_called_{false}, run_finished_{false}, stop_requested_{false};
};

}  // namespace glimpse::serve
