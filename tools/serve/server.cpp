#include "tools/serve/server.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include <nlohmann/json.hpp>

#include "models/calibration_budget.h"
#include "runtime/image.h"
#include "tools/serve/chat_request.h"

namespace glimpse::serve {

using nlohmann::json;

namespace {

// Generated text is the model's bytes: a token may be a stray byte that is not UTF-8, which
// nlohmann would throw on; it becomes U+FFFD instead.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

const char* error_type(int status) {
    if (status == 503) return "unavailable_error";
    if (status >= 500) return "server_error";
    if (status == 404) return "not_found_error";
    return "invalid_request_error";
}

void send_error(httplib::Response& res, int status, const std::string& message) {
    res.status = status;
    res.set_content(dump({{"error", {{"message", message}, {"type", error_type(status)}, {"code", status}}}}),
                    "application/json");
}

// Library errors are about the request (its JSON, its images, its prompt) unless they are I/O
// failures (a model file damaged while mapped) or bugs.
int http_status_of(const Status& s) {
    return s.code() == StatusCode::io_error || s.code() == StatusCode::internal ? 500 : 400;
}

std::string plan_text(const std::optional<PruningPlan>& plan) {
    return plan ? pruning_plan_to_json(*plan) : std::string("none");
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// Counts a chat request in flight from admission to the end of its answer (stream included).
class ChatServer::Admission {
public:
    static std::unique_ptr<Admission> try_admit(std::atomic<int>& in_flight, int limit) {
        if (in_flight.fetch_add(1) >= limit) {
            in_flight.fetch_sub(1);
            return nullptr;
        }
        return std::unique_ptr<Admission>(new Admission(in_flight));
    }
    ~Admission() { in_flight_.fetch_sub(1); }

private:
    explicit Admission(std::atomic<int>& in_flight) : in_flight_(in_flight) {}
    std::atomic<int>& in_flight_;
};

// A model slot held by one request; given back (and a waiting request woken) on destruction.
class ChatServer::SlotLease {
public:
    SlotLease(ChatServer& server, Vlm* vlm) : server_(server), vlm_(vlm) {}
    ~SlotLease() { server_.give_back(vlm_); }
    Vlm& vlm() const { return *vlm_; }

private:
    ChatServer& server_;
    Vlm* vlm_;
};

ChatServer::ChatServer(std::vector<std::unique_ptr<Vlm>> slots, ServeOptions options)
    : options_(std::move(options)), all_slots_(std::move(slots)), http_(std::make_unique<httplib::Server>()) {
    for (const auto& s : all_slots_) free_slots_.push_back(s.get());
}

ChatServer::~ChatServer() = default;

Result<std::unique_ptr<ChatServer>> ChatServer::create(std::vector<std::unique_ptr<Vlm>> slots, ServeOptions options) {
    GLIMPSE_CHECK_OR_RETURN(!slots.empty(), invalid_argument, "serve: at least one model slot is needed");
    for (const auto& s : slots) GLIMPSE_CHECK_OR_RETURN(s != nullptr, invalid_argument, "serve: a model slot is empty");
    GLIMPSE_CHECK_OR_RETURN(options.queue >= 0 && options.queue <= 4096, invalid_argument,
                            "serve: queue %d out of range [0, 4096]", options.queue);
    GLIMPSE_CHECK_OR_RETURN(options.max_body_bytes > 0, invalid_argument, "serve: max body must be positive");
    GLIMPSE_CHECK_OR_RETURN(options.port >= 0 && options.port <= 65535, invalid_argument,
                            "serve: port %d out of range [0, 65535]", options.port);
    std::unique_ptr<ChatServer> server(new ChatServer(std::move(slots), std::move(options)));
    server->install_routes();
    return server;
}

std::unique_ptr<ChatServer::SlotLease> ChatServer::take_slot() {
    std::unique_lock<std::mutex> lock(slots_mutex_);
    slot_freed_.wait(lock, [&] { return !free_slots_.empty(); });
    Vlm* vlm = free_slots_.back();
    free_slots_.pop_back();
    return std::make_unique<SlotLease>(*this, vlm);
}

void ChatServer::give_back(Vlm* vlm) {
    {
        std::lock_guard<std::mutex> lock(slots_mutex_);
        free_slots_.push_back(vlm);
    }
    slot_freed_.notify_one();
}

void ChatServer::install_routes() {
    httplib::Server& http = *http_;
    // Threads: every admitted request may hold one (running or waiting for a slot), plus a few
    // for /health, /v1/models and the 503 answers while all of those are busy.
    const size_t n_threads = all_slots_.size() + static_cast<size_t>(options_.queue) + 4;
    http.new_task_queue = [n_threads] { return new httplib::ThreadPool(n_threads); };
    http.set_payload_max_length(static_cast<size_t>(options_.max_body_bytes));

    const int64_t started = static_cast<int64_t>(std::time(nullptr));
    const int64_t context_length = all_slots_[0]->context_length();

    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
        size_t idle = 0;
        {
            std::lock_guard<std::mutex> lock(slots_mutex_);
            idle = free_slots_.size();
        }
        res.set_content(dump({{"status", "ok"},
                              {"slots_total", all_slots_.size()},
                              {"slots_idle", idle},
                              {"requests_in_flight", in_flight_.load()},
                              {"queue_limit", options_.queue}}),
                        "application/json");
    });

    http.Get("/v1/models", [this, started, context_length](const httplib::Request&, httplib::Response& res) {
        json meta = {{"context_length", context_length}, {"slots", all_slots_.size()}};
        meta["pruning"] = options_.pruning ? json::parse(pruning_plan_to_json(*options_.pruning)) : json(nullptr);
        res.set_content(dump({{"object", "list"},
                              {"data", json::array({{{"id", options_.model_name},
                                                     {"object", "model"},
                                                     {"created", started},
                                                     {"owned_by", "glimpse"},
                                                     {"meta", meta}}})}}),
                        "application/json");
    });

    http.Post("/v1/chat/completions", [this](const httplib::Request&, httplib::Response& res,
                                             const httplib::ContentReader& read_content) {
        const auto t0 = std::chrono::steady_clock::now();
        // The body is read here, not by httplib: httplib 0.11 caps a body with a Content-Length
        // (set_payload_max_length, 413 before this handler runs) but reads a chunked one whole.
        // Past the limit the rest is read and dropped (up to kMaxDrainBytes), so a client that
        // writes its whole body before reading gets the 413 instead of a reset connection.
        constexpr size_t kMaxDrainBytes = size_t{64} << 20;
        std::string request_body;
        bool over_limit = false;
        size_t dropped = 0;
        const bool read = read_content([&](const char* data, size_t n) {
            if (!over_limit && request_body.size() + n > static_cast<size_t>(options_.max_body_bytes)) {
                over_limit = true;
                request_body = std::string();
            }
            if (!over_limit) {
                request_body.append(data, n);
                return true;
            }
            dropped += n;
            return dropped <= kMaxDrainBytes;
        });
        if (over_limit || res.status == 413) {
            res.set_header("Connection", "close");
            return send_error(res, 413, str_printf("request body over this server's limit of %lld bytes (--max-body)",
                                                   static_cast<long long>(options_.max_body_bytes)));
        }
        if (!read) return send_error(res, 400, "the request body could not be read (cut short?)");
        const int limit = static_cast<int>(all_slots_.size()) + options_.queue;
        std::shared_ptr<Admission> admission = Admission::try_admit(in_flight_, limit);
        if (!admission) {
            res.set_header("Retry-After", "1");
            send_error(res, 503,
                       str_printf("busy: %zu slot(s) running and %d request(s) queued; retry later",
                                  all_slots_.size(), options_.queue));
            return;
        }
        auto parsed = parse_chat_request(request_body);
        request_body = std::string();  // the images are in the request now
        if (!parsed.is_ok()) return send_error(res, 400, parsed.status().message());
        ChatRequest request = std::move(*parsed);
        if (request.pruning && plan_text(*request.pruning) != plan_text(options_.pruning)) {
            return send_error(res, 400,
                              "glimpse: this server runs the pruning plan " + plan_text(options_.pruning) +
                                  "; a request cannot change it (a model's plan is fixed when it is loaded: start a "
                                  "server with --prune/--keep or --plan for another)");
        }

        std::shared_ptr<SlotLease> lease = take_slot();
        if (options_.on_slot_taken) options_.on_slot_taken();
        Vlm& vlm = lease->vlm();
        // Pixels are decoded only under a slot, so at most one decoded image set per slot is alive.
        std::vector<ImageU8> images;
        for (size_t i = 0; i < request.image_files.size(); ++i) {
            const std::vector<uint8_t>& file = request.image_files[i];
            auto image = image_decode_memory(file.data(), file.size(), "image " + std::to_string(i + 1));
            if (!image.is_ok()) return send_error(res, 400, image.status().message());
            images.push_back(std::move(*image));
        }
        request.image_files.clear();
        auto built = vlm.build_prompt(request.user_text, images);
        if (!built.is_ok()) return send_error(res, http_status_of(built.status()), built.status().message());
        std::vector<std::pair<int, int>> image_sizes;  // for a calibrated plan's budget message
        for (const ImageU8& image : images) image_sizes.emplace_back(image.width, image.height);
        images.clear();
        auto prompt = std::make_shared<VlmPrompt>(std::move(*built));
        // The prompt must leave room for at least one answer token; max_tokens is cut to the rest.
        const Status fits = vlm.check_context(prompt->n_positions(), 1);
        if (!fits.is_ok()) return send_error(res, 400, fits.message());
        const int n_predict =
            static_cast<int>(std::min<int64_t>(request.max_tokens, vlm.context_length() - prompt->n_positions()));
        {
            BudgetRequest budget_request;
            budget_request.image_sizes = image_sizes;
            budget_request.n_predict = n_predict;
            std::string warning;
            const Status budget = check_calibrated_budget(vlm, *prompt, budget_request, options_.over_budget, &warning);
            if (!budget.is_ok()) return send_error(res, http_status_of(budget), budget.message());
            if (!warning.empty()) std::fprintf(stderr, "glimpse serve: %s\n", warning.c_str());
        }

        const std::string id = "chatcmpl-glimpse-" + std::to_string(next_id_.fetch_add(1));
        const int64_t created = static_cast<int64_t>(std::time(nullptr));
        const json head = {{"id", id}, {"created", created}, {"model", options_.model_name}};
        auto usage_of = [](const GenerationStats& st) {
            return json{{"prompt_tokens", st.n_prompt},
                        {"completion_tokens", st.n_generated},
                        {"total_tokens", st.n_prompt + st.n_generated}};
        };
        auto finish_reason = [](const GenerationStats& st) { return st.stopped_at_eog ? "stop" : "length"; };

        if (!request.stream) {
            std::string answer;
            GenerationStats st;
            const Status s = vlm.generate(*prompt, n_predict, request.sampling,
                                          [&](std::string_view bytes) {
                                              answer.append(bytes);
                                              return true;
                                          },
                                          &st);
            if (!s.is_ok()) return send_error(res, http_status_of(s), s.message());
            json body = head;
            body["object"] = "chat.completion";
            body["choices"] = json::array({{{"index", 0},
                                            {"message", {{"role", "assistant"}, {"content", answer}}},
                                            {"finish_reason", finish_reason(st)}}});
            body["usage"] = usage_of(st);
            body["timings"] = {{"encode_ms", st.encode_ms},
                               {"prefill_ms", st.prefill_ms},
                               {"decode_ms", st.decode_ms},
                               {"total_ms", ms_since(t0)}};
            res.set_content(dump(body), "application/json");
            return;
        }

        // Streaming: the generation runs inside the content provider, after this handler
        // returns; the provider owns the slot and the admission until the response is written
        // (or the client went away), then httplib destroys it and both are given back.
        const bool include_usage = request.include_usage;
        const SamplingParams sampling = request.sampling;
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            [admission, lease, prompt, n_predict, sampling, include_usage, head, usage_of, finish_reason](
                size_t, httplib::DataSink& sink) {
                auto send = [&sink](const json& event) {
                    const std::string text = "data: " + dump(event) + "\n\n";
                    return sink.write(text.data(), text.size());
                };
                auto chunk = [&head](json delta, const json& reason) {
                    json c = head;
                    c["object"] = "chat.completion.chunk";
                    c["choices"] = json::array({{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", reason}}});
                    return c;
                };
                if (!send(chunk({{"role", "assistant"}, {"content", ""}}, nullptr))) return false;
                std::string pending;  // bytes of a UTF-8 character not complete yet
                GenerationStats st;
                const Status s = lease->vlm().generate(*prompt, n_predict, sampling,
                                                       [&](std::string_view bytes) {
                                                           pending.append(bytes);
                                                           const size_t n = complete_utf8_prefix(pending);
                                                           if (n == 0) return true;
                                                           const bool ok = send(chunk({{"content", pending.substr(0, n)}}, nullptr));
                                                           pending.erase(0, n);
                                                           return ok;
                                                       },
                                                       &st);
                if (st.stopped_by_caller) return false;  // the client went away
                if (!s.is_ok()) {
                    send({{"error", {{"message", s.message()}, {"type", "server_error"}, {"code", 500}}}});
                    return false;
                }
                if (!pending.empty() && !send(chunk({{"content", pending}}, nullptr))) return false;
                if (!send(chunk(json::object(), finish_reason(st)))) return false;
                if (include_usage) {
                    json u = head;
                    u["object"] = "chat.completion.chunk";
                    u["choices"] = json::array();
                    u["usage"] = usage_of(st);
                    if (!send(u)) return false;
                }
                static constexpr std::string_view kDone = "data: [DONE]\n\n";
                if (!sink.write(kDone.data(), kDone.size())) return false;
                sink.done();
                return true;
            });
    });

    // Errors httplib answers itself (413 over --max-body, 404, malformed HTTP) get the same JSON.
    const int64_t max_body = options_.max_body_bytes;
    http.set_error_handler(httplib::Server::HandlerWithResponse([max_body](const httplib::Request& req,
                                                                          httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message;
        if (res.status == 413) {
            message = str_printf("request body over this server's limit of %lld bytes (--max-body)",
                                 static_cast<long long>(max_body));
        } else if (res.status == 404) {
            message = "no endpoint " + req.method + " " + req.path +
                      " (POST /v1/chat/completions, GET /health, GET /v1/models)";
        } else {
            message = str_printf("HTTP %d", res.status);
        }
        send_error(res, res.status, message);
        return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        send_error(res, 500, "internal error: " + what);
    });
    if (options_.log_requests) {
        http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
            std::fprintf(stderr, "glimpse serve: %s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
        });
    }
}

Result<int> ChatServer::bind() {
    if (options_.port == 0) {
        const int port = http_->bind_to_any_port(options_.host);
        GLIMPSE_CHECK_OR_RETURN(port > 0, io_error, "serve: cannot listen on %s (not an address of this machine?)",
                                options_.host.c_str());
        return port;
    }
    GLIMPSE_CHECK_OR_RETURN(http_->bind_to_port(options_.host, options_.port), io_error,
                            "serve: cannot listen on %s:%d (port in use, or not an address of this machine)",
                            options_.host.c_str(), options_.port);
    return options_.port;
}

Status ChatServer::run() {
    run_called_ = true;
    if (stop_requested_) {
        run_finished_ = true;
        return Status::ok();
    }
    const bool served = http_->listen_after_bind();
    run_finished_ = true;
    GLIMPSE_CHECK_OR_RETURN(served || stop_requested_, io_error, "serve: the listening socket failed");
    return Status::ok();
}

void ChatServer::stop() {
    stop_requested_ = true;
    // httplib's stop() acts only once listening began: wait for that if run() is on its way.
    for (int i = 0; i < 5000 && run_called_ && !run_finished_ && !http_->is_running(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    http_->stop();
}

}  // namespace glimpse::serve
