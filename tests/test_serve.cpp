// glimpse serve over real HTTP on loopback (tools/serve): the answers it gives for a bundled
// sample scene equal what the CLI (the glimpse binary) and a separately loaded Vlm print for
// the same image and settings; streaming chunks add up to the same answer; every bad request
// gets its status and a message; a full queue answers 503 while a slot is held; concurrent
// requests each get their own correct answer. The server runs in-process (ChatServer) on a port
// the OS picks; the client is cpp-httplib's.
#include <doctest/doctest.h>

#include <httplib.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "calibration_test_util.h"
#include "models/calibration_budget.h"
#include "models/vlm.h"
#include "runtime/image.h"
#include "test_util.h"
#include "tools/serve/chat_request.h"
#include "tools/serve/server.h"

using namespace glimpse;
using namespace glimpse::serve;
using nlohmann::json;

extern char** environ;

namespace {

const std::string kBundled = test::source_dir() + "/models/bundled";
const std::string kText = kBundled + "/scenes-smolvlm-q8_0-text.gguf";
const std::string kMmproj = kBundled + "/scenes-smolvlm-f16-mmproj.gguf";
const std::string kImage = kBundled + "/samples/1000000.png";
const std::string kPrompt = "Describe this image.";

VlmConfig one_thread_config(std::optional<PruningPlan> pruning = std::nullopt) {
    VlmConfig cfg;
    cfg.n_threads = 1;  // the CLI oracle runs with -t 1 too
    cfg.pruning = std::move(pruning);
    return cfg;
}

std::unique_ptr<Vlm> load_vlm(std::optional<PruningPlan> pruning = std::nullopt) {
    auto vlm = Vlm::load(kText, kMmproj, one_thread_config(pruning));
    REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().message());
    return std::move(*vlm);
}

// RFC 4648 base64, written here independently of the server's decoder.
std::string base64(const std::vector<uint8_t>& bytes) {
    static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < bytes.size(); i += 3) {
        const uint32_t b0 = bytes[i], b1 = i + 1 < bytes.size() ? bytes[i + 1] : 0, b2 = i + 2 < bytes.size() ? bytes[i + 2] : 0;
        const uint32_t v = (b0 << 16) | (b1 << 8) | b2;
        out += abc[(v >> 18) & 63];
        out += abc[(v >> 12) & 63];
        out += i + 1 < bytes.size() ? abc[(v >> 6) & 63] : '=';
        out += i + 2 < bytes.size() ? abc[v & 63] : '=';
    }
    return out;
}

std::string png_data_uri() { return "data:image/png;base64," + base64(test::read_file_bytes(kImage)); }

json chat_body(const std::string& url, const std::string& text, json extra = json::object()) {
    json body = {{"messages", json::array({{{"role", "user"},
                                            {"content", json::array({{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                                                                     {{"type", "text"}, {"text", text}}})}}})},
                 {"temperature", 0}};
    for (auto& [k, v] : extra.items()) body[k] = v;
    return body;
}

// The answer of `glimpse caption` (the CLI binary built beside the tests) for kImage.
std::string cli_caption(const std::string& prompt, const std::string& extra_flags = "") {
    const std::string cmd = std::string(GLIMPSE_CLI_BINARY) + " caption -t 1 --temp 0 -m '" + kText + "' --mmproj '" +
                            kMmproj + "' --image '" + kImage + "' -p '" + prompt + "' " + extra_flags + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    size_t n = 0;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    REQUIRE(pclose(p) == 0);
    REQUIRE(!out.empty());
    REQUIRE(out.back() == '\n');  // the CLI ends the answer with a newline
    out.pop_back();
    return out;
}

// The answer of a separately loaded Vlm for kImage decoded from its file.
std::string vlm_answer(Vlm& vlm, const std::string& prompt, float temperature, uint64_t seed, int max_tokens,
                       const std::string& image_path = kImage) {
    auto image = image_decode_file(image_path);
    REQUIRE(image.is_ok());
    auto p = vlm.build_prompt(prompt, {*image});
    REQUIRE(p.is_ok());
    SamplingParams sp;
    sp.temperature = temperature;
    sp.seed = seed;
    std::string out;
    GenerationStats st;
    REQUIRE(vlm.generate(*p, max_tokens, sp, [&](std::string_view b) { out.append(b); return true; }, &st).is_ok());
    return out;
}

struct TestServer {
    std::unique_ptr<ChatServer> server;
    std::thread thread;
    int port = 0;

    TestServer(int slots, int queue, int64_t max_body = int64_t{32} << 20, std::function<void()> on_slot_taken = {},
               std::optional<PruningPlan> pruning = std::nullopt, bool over_budget = false) {
        std::vector<std::unique_ptr<Vlm>> models;
        for (int i = 0; i < slots; ++i) models.push_back(load_vlm(pruning));
        ServeOptions o;
        o.pruning = pruning;
        o.over_budget = over_budget;
        o.port = 0;
        o.queue = queue;
        o.max_body_bytes = max_body;
        o.model_name = "bundled-smolvlm";
        o.on_slot_taken = std::move(on_slot_taken);
        auto s = ChatServer::create(std::move(models), o);
        REQUIRE_MESSAGE(s.is_ok(), s.status().message());
        server = std::move(*s);
        auto bound = server->bind();
        REQUIRE_MESSAGE(bound.is_ok(), bound.status().message());
        port = *bound;
        thread = std::thread([this] { CHECK(server->run().is_ok()); });
        // Ready once /health answers (bind already listens; this waits for the accept loop).
        httplib::Client c("127.0.0.1", port);
        bool up = false;
        for (int i = 0; i < 500 && !up; ++i) {
            auto r = c.Get("/health");
            up = r && r->status == 200;
            if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        REQUIRE(up);
    }
    ~TestServer() {
        server->stop();
        thread.join();
    }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(std::chrono::seconds(120));
        return c;
    }
    httplib::Result post(const std::string& body) const { return client().Post("/v1/chat/completions", body, "application/json"); }
};

// Status and error message of a refused request.
std::pair<int, std::string> refusal(const httplib::Result& r) {
    REQUIRE(r);
    const json body = json::parse(r->body);
    REQUIRE(body.contains("error"));
    CHECK(body["error"]["code"] == r->status);
    return {r->status, body["error"]["message"].get<std::string>()};
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

std::string answer_of(const httplib::Result& r) {
    REQUIRE(r);
    REQUIRE_MESSAGE(r->status == 200, r->body);
    return json::parse(r->body)["choices"][0]["message"]["content"].get<std::string>();
}

// A gate the test opens: the first request to take a slot waits at it.
struct SlotGate {
    std::mutex m;
    std::condition_variable cv;
    bool open = false;
    std::atomic<int> taken{0};
    void wait_if_first() {
        if (taken.fetch_add(1) != 0) return;
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return open; });
    }
    void release() {
        {
            std::lock_guard<std::mutex> lock(m);
            open = true;
        }
        cv.notify_all();
    }
    void wait_until_taken(int n) {
        for (int i = 0; i < 30000 && taken.load() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        REQUIRE(taken.load() >= n);
    }
};

}  // namespace

TEST_CASE("serve: health and models") {
    TestServer s(2, 3);
    auto c = s.client();
    auto health = c.Get("/health");
    REQUIRE(health);
    CHECK(health->status == 200);
    const json h = json::parse(health->body);
    CHECK(h["status"] == "ok");
    CHECK(h["slots_total"] == 2);
    CHECK(h["slots_idle"] == 2);
    CHECK(h["queue_limit"] == 3);
    auto models = c.Get("/v1/models");
    REQUIRE(models);
    CHECK(models->status == 200);
    const json m = json::parse(models->body);
    CHECK(m["object"] == "list");
    REQUIRE(m["data"].size() == 1);
    CHECK(m["data"][0]["id"] == "bundled-smolvlm");
    CHECK(m["data"][0]["meta"]["context_length"] == load_vlm()->context_length());
    auto missing = c.Get("/v1/nothing");
    REQUIRE(missing);
    CHECK(refusal(missing).first == 404);
}

TEST_CASE("serve: a chat completion equals the CLI's caption; streamed chunks add up to it") {
    const std::string expected = cli_caption(kPrompt);
    REQUIRE(expected.size() > 10);
    TestServer s(1, 2);
    auto r = s.post(chat_body(png_data_uri(), kPrompt).dump());
    CHECK(answer_of(r) == expected);
    const json body = json::parse(r->body);
    CHECK(body["object"] == "chat.completion");
    CHECK(body["model"] == "bundled-smolvlm");
    CHECK(body["choices"][0]["finish_reason"] == "stop");
    const int64_t completion_tokens = body["usage"]["completion_tokens"].get<int64_t>();
    CHECK(completion_tokens > 0);
    CHECK(body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"].get<int64_t>() + completion_tokens);

    // The same with "stream": true: server-sent events, one JSON chunk per data line, then [DONE].
    auto sr = s.post(chat_body(png_data_uri(), kPrompt, {{"stream", true}, {"stream_options", {{"include_usage", true}}}}).dump());
    REQUIRE(sr);
    REQUIRE(sr->status == 200);
    CHECK(contains(sr->get_header_value("Content-Type"), "text/event-stream"));
    std::string streamed, finish;
    int64_t streamed_tokens = -1;
    std::vector<std::string> events;
    size_t at = 0;
    while (at < sr->body.size()) {
        const size_t end = sr->body.find("\n\n", at);
        REQUIRE(end != std::string::npos);  // every event ends with a blank line
        const std::string event = sr->body.substr(at, end - at);
        REQUIRE(event.rfind("data: ", 0) == 0);
        events.push_back(event.substr(6));
        at = end + 2;
    }
    REQUIRE(events.size() >= 3);
    CHECK(events.back() == "[DONE]");
    for (size_t i = 0; i + 1 < events.size(); ++i) {
        const json chunk = json::parse(events[i]);
        CHECK(chunk["object"] == "chat.completion.chunk");
        if (chunk.contains("usage")) {
            streamed_tokens = chunk["usage"]["completion_tokens"].get<int64_t>();
            continue;
        }
        const json& choice = chunk["choices"][0];
        if (choice["delta"].contains("content")) streamed += choice["delta"]["content"].get<std::string>();
        if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"].get<std::string>();
    }
    CHECK(streamed == expected);
    CHECK(finish == "stop");
    CHECK(streamed_tokens == completion_tokens);
}

TEST_CASE("serve: clients that hang up mid-request give their slot back") {
    const std::string expected = vlm_answer(*load_vlm(), kPrompt, 0, 0, 256);
    // Queue 1: the next request may arrive before the server has even read the abandoned one.
    TestServer s(1, 1);
    for (const bool stream : {true, false}) {
        for (const bool send_whole_body : {true, false}) {
            CAPTURE(stream);
            CAPTURE(send_whole_body);
            const std::string body = chat_body(png_data_uri(), kPrompt, {{"stream", stream}}).dump();
            const std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                     "application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
            const std::string sent = head + (send_whole_body ? body : body.substr(0, body.size() / 2));
            const int fd = socket(AF_INET, SOCK_STREAM, 0);
            REQUIRE(fd >= 0);
            sockaddr_in addr{};
            addr.sin_family = AF_INET;
            addr.sin_port = htons(static_cast<uint16_t>(s.port));
            addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
            REQUIRE(send(fd, sent.data(), sent.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(sent.size()));
            close(fd);  // gone before the answer (or before the end of the body)
            // The abandoned request ends and frees the slot and its admission (a leak would keep
            // requests_in_flight above 0, and the next request would wait for the slot forever).
            auto c = s.client();
            bool idle = false;
            for (int i = 0; i < 30000 && !idle; ++i) {
                auto h = c.Get("/health");
                REQUIRE(h);
                const json hj = json::parse(h->body);
                idle = hj["requests_in_flight"] == 0 && hj["slots_idle"] == 1;
                if (!idle) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            REQUIRE(idle);
            CHECK(answer_of(s.post(chat_body(png_data_uri(), kPrompt).dump())) == expected);
        }
    }
}

TEST_CASE("serve: a server started with a pruning plan answers as the CLI with that plan; other plans are refused") {
    const std::string expected = cli_caption(kPrompt, "--prune divprune --keep 0.5");
    REQUIRE(expected != cli_caption(kPrompt));  // the plan changes this answer, so the check below sees it
    auto plan = pruning_plan_from_shorthand("divprune", 0.5);
    REQUIRE(plan.is_ok());
    TestServer s(1, 1, int64_t{32} << 20, {}, *plan);
    const std::string png = png_data_uri();
    CHECK(answer_of(s.post(chat_body(png, kPrompt).dump())) == expected);
    // Naming the server's own plan is accepted; another keep, or none, is refused.
    CHECK(answer_of(s.post(chat_body(png, kPrompt, {{"glimpse", {{"prune", "divprune"}, {"keep", 0.5}}}}).dump())) == expected);
    for (const json& other : {json{{"prune", "divprune"}, {"keep", 0.25}}, json{{"prune", "none"}}}) {
        CAPTURE(other.dump());
        auto [status, message] = refusal(s.post(chat_body(png, kPrompt, {{"glimpse", other}}).dump()));
        CHECK(status == 400);
        CHECK(contains(message, "cannot change it"));
    }
    auto models = s.client().Get("/v1/models");
    REQUIRE(models);
    CHECK(json::parse(models->body)["data"][0]["meta"]["pruning"].is_object());
}

TEST_CASE("serve: a calibrated plan's budget refuses a request that plans more with 400; --over-budget answers it") {
    // The budget: the planner's own total for kImage, kPrompt and 8 answer tokens (the oracle,
    // computed apart from the server) + the process overhead of its weights.
    auto image = image_decode_file(kImage);
    REQUIRE(image.is_ok());
    auto plain = pruning_plan_from_shorthand("divprune", 0.5);
    REQUIRE(plain.is_ok());
    CalibrationSettings ref;
    ref.text_path = kText;
    ref.mmproj_path = kMmproj;
    ref.base = one_thread_config();
    ref.image_width = image->width;
    ref.image_height = image->height;
    ref.plan_prompt = kPrompt;
    ref.answer_tokens = 8;
    int64_t weights = 0;
    const int64_t planned = test::planned_bytes(*plain, ref, nullptr, nullptr, &weights);
    PruningPlan plan = *plain;
    PruningCalibration c;
    c.budget_bytes = planned + calibration_process_overhead(weights);
    c.image_width = image->width;
    c.image_height = image->height;
    c.answer_tokens = 8;
    plan.calibration = c;
    const std::string png = png_data_uri();
    {
        TestServer s(1, 1, int64_t{32} << 20, {}, plan);
        CHECK_FALSE(answer_of(s.post(chat_body(png, kPrompt, {{"max_tokens", 8}}).dump())).empty());
        auto [status, message] = refusal(s.post(chat_body(png, kPrompt, {{"max_tokens", 16}}).dump()));
        CHECK(status == 400);
        CHECK(contains(message, ", 16 answer tokens) plans "));
        CHECK(contains(message, str_printf("calibrated for a %dx%d image", image->width, image->height)));
        CHECK(contains(message, "--over-budget"));
    }
    TestServer anyway(1, 1, int64_t{32} << 20, {}, plan, true);
    CHECK_FALSE(answer_of(anyway.post(chat_body(png, kPrompt, {{"max_tokens", 16}}).dump())).empty());
}

TEST_CASE("serve: a JPEG data URI is answered as the decoded file is") {
    const std::string jpeg = test::golden_dir() + "/smolvlm-tiny-f32/chelsea_300x200.jpg";
    const std::string expected = vlm_answer(*load_vlm(), kPrompt, 0, 0, 32, jpeg);
    TestServer s(1, 1);
    CHECK(answer_of(s.post(chat_body("data:image/jpeg;base64," + base64(test::read_file_bytes(jpeg)), kPrompt,
                                     {{"max_tokens", 32}})
                               .dump())) == expected);
}

TEST_CASE("serve: bad requests get 400 with a message naming the problem") {
    TestServer s(1, 2);
    const std::string png = png_data_uri();
    struct Case {
        const char* what;
        std::string body;
        const char* message_part;
    } cases[] = {
        {"not JSON", "{\"messages\": [", "not valid JSON"},
        {"a depth bomb", std::string(100000, '['), "nested deeper"},
        {"not an object", "[1, 2]", "must be a JSON object"},
        {"no messages", "{}", "messages: is missing"},
        {"an http URL", chat_body("http://127.0.0.1/a.png", kPrompt).dump(), "never fetches"},
        {"a file URL", chat_body("file:///etc/passwd", kPrompt).dump(), "never fetches"},
        {"bad base64", chat_body("data:image/png;base64,iVBOR*w0KGgo=", kPrompt).dump(), "bad base64"},
        {"base64 cut inside a byte", chat_body("data:image/png;base64,iVBORw0KG", kPrompt).dump(), "middle of a byte"},
        {"neither PNG nor JPEG", chat_body("data:image/png;base64," + base64({'G', 'I', 'F', '8', '9', 'a', 0, 0}), kPrompt).dump(),
         "neither a PNG nor a JPEG"},
        {"a PNG that does not decode",
         chat_body("data:image/png;base64," + base64({0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H'}), kPrompt)
             .dump(),
         "image 1"},
        {"a text data URI", chat_body("data:text/plain;base64,aGVsbG8=", kPrompt).dump(), "not an image"},
        {"max_tokens 0", chat_body(png, kPrompt, {{"max_tokens", 0}}).dump(), "max_tokens"},
        {"a string temperature", chat_body(png, kPrompt, {{"temperature", "hot"}}).dump(), "temperature"},
        {"a system message",
         json{{"messages", json::array({{{"role", "system"}, {"content", "be brief"}}, {{"role", "user"}, {"content", "hi"}}})}}.dump(),
         "single user message"},
        {"a per-request plan unlike the server's", chat_body(png, kPrompt, {{"glimpse", {{"prune", "divprune"}, {"keep", 0.5}}}}).dump(),
         "cannot change it"},
        {"an unknown pruning method", chat_body(png, kPrompt, {{"glimpse", {{"prune", "nonsense"}, {"keep", 0.5}}}}).dump(), "nonsense"},
        {"a prompt over the context", chat_body(png, [] {
                                            std::string t;
                                            for (int i = 0; i < 3000; ++i) t += "red blue ";
                                            return t;
                                        }()).dump(),
         "context"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        auto [status, message] = refusal(s.post(c.body));
        CHECK(status == 400);
        CHECK_MESSAGE(contains(message, c.message_part), message);
    }
    // The server still answers, and "prune": "none" matches this unpruned server.
    CHECK(answer_of(s.post(chat_body(png, kPrompt, {{"glimpse", {{"prune", "none"}}}}).dump())) == answer_of(s.post(chat_body(png, kPrompt).dump())));
}

TEST_CASE("serve: a body over --max-body gets 413") {
    TestServer s(1, 1, 4096);
    auto [status, message] = refusal(s.post(chat_body("data:image/png;base64," + std::string(8000, 'A'), kPrompt).dump()));
    CHECK(status == 413);
    CHECK(contains(message, "4096"));
    // The same body sent chunked (no Content-Length, so httplib does not cap it): also 413.
    const std::string big = chat_body("data:image/png;base64," + std::string(8000, 'A'), kPrompt).dump();
    auto chunked = s.client().Post(
        "/v1/chat/completions",
        [&big](size_t, httplib::DataSink& sink) {
            for (size_t at = 0; at < big.size(); at += 1000) sink.write(big.data() + at, std::min<size_t>(1000, big.size() - at));
            sink.done();
            return true;
        },
        "application/json");
    CHECK(refusal(chunked).first == 413);
    // A request within the limit is still served.
    auto small = s.post(json{{"messages", json::array({{{"role", "user"}, {"content", "Hello"}}})}, {"max_tokens", 4}}.dump());
    REQUIRE(small);
    CHECK(small->status == 200);
    CHECK(json::parse(small->body)["object"] == "chat.completion");
}

TEST_CASE("serve: a full queue answers 503 while the slot is held; the held request still gets its answer") {
    const std::string expected = vlm_answer(*load_vlm(), kPrompt, 0, 0, 256);
    SlotGate gate;
    TestServer s(1, 0, int64_t{32} << 20, [&] { gate.wait_if_first(); });
    const std::string body = chat_body(png_data_uri(), kPrompt).dump();
    auto held = std::async(std::launch::async, [&] { return answer_of(s.post(body)); });
    gate.wait_until_taken(1);
    auto [status, message] = refusal(s.post(body));
    CHECK(status == 503);
    CHECK(contains(message, "busy"));
    gate.release();
    CHECK(held.get() == expected);
}

TEST_CASE("serve: with --queue 1 one request waits for the slot, the next gets 503, both admitted are answered") {
    const std::string expected = vlm_answer(*load_vlm(), kPrompt, 0, 0, 256);
    SlotGate gate;
    TestServer s(1, 1, int64_t{32} << 20, [&] { gate.wait_if_first(); });
    const std::string body = chat_body(png_data_uri(), kPrompt).dump();
    auto first = std::async(std::launch::async, [&] { return answer_of(s.post(body)); });
    gate.wait_until_taken(1);
    auto second = std::async(std::launch::async, [&] { return answer_of(s.post(body)); });
    // The second is admitted (in flight: 2) before the third is sent.
    auto c = s.client();
    for (int i = 0; i < 30000; ++i) {
        auto h = c.Get("/health");
        REQUIRE(h);
        if (json::parse(h->body)["requests_in_flight"] == 2) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(refusal(s.post(body)).first == 503);
    gate.release();
    CHECK(first.get() == expected);
    CHECK(second.get() == expected);
}

TEST_CASE("serve: concurrent requests on two slots each get their own answer") {
    struct Ask {
        std::string prompt;
        float temperature;
        uint64_t seed;
    };
    const std::vector<Ask> asks = {{"Describe this image.", 0, 1},     {"How many objects are there?", 0, 2},
                                   {"What color is the background?", 0, 3}, {"Describe this image.", 0.8f, 42},
                                   {"Is there a red triangle?", 0, 5},    {"Describe this image.", 0.8f, 7}};
    std::vector<std::string> expected;
    {
        auto oracle = load_vlm();
        for (const Ask& a : asks) expected.push_back(vlm_answer(*oracle, a.prompt, a.temperature, a.seed, 64));
    }
    CHECK(expected[0] != expected[1]);
    TestServer s(2, 8);
    const std::string png = png_data_uri();
    std::vector<std::future<std::string>> answers;
    for (const Ask& a : asks) {
        const std::string body = chat_body(png, a.prompt, {{"temperature", a.temperature}, {"seed", a.seed}, {"max_tokens", 64}}).dump();
        answers.push_back(std::async(std::launch::async, [&s, body] { return answer_of(s.post(body)); }));
    }
    for (size_t i = 0; i < asks.size(); ++i) {
        CAPTURE(asks[i].prompt);
        CHECK(answers[i].get() == expected[i]);
    }
}

TEST_CASE("serve: request parsing helpers") {
    // base64 against hand-worked RFC 4648 vectors.
    auto text = [](const Result<std::vector<uint8_t>>& r) {
        REQUIRE(r.is_ok());
        return std::string(r->begin(), r->end());
    };
    CHECK(text(base64_decode("")) == "");
    CHECK(text(base64_decode("Zg==")) == "f");
    CHECK(text(base64_decode("Zm8=")) == "fo");
    CHECK(text(base64_decode("Zm9v")) == "foo");
    CHECK(text(base64_decode("Zm9vYg")) == "foob");  // padding is optional
    CHECK(text(base64_decode("Zm9v\r\nYmFy")) == "foobar");
    CHECK(!base64_decode("Zm9v YmFy").is_ok());
    CHECK(!base64_decode("Zg==Zg==").is_ok());
    CHECK(!base64_decode("Z").is_ok());
    // UTF-8: "é" is C3 A9, "€" E2 82 AC, "😀" F0 9F 98 80.
    CHECK(complete_utf8_prefix("abc") == 3);
    CHECK(complete_utf8_prefix("a\xC3") == 1);
    CHECK(complete_utf8_prefix("a\xC3\xA9") == 3);
    CHECK(complete_utf8_prefix("\xE2\x82") == 0);
    CHECK(complete_utf8_prefix("x\xF0\x9F\x98") == 1);
    CHECK(complete_utf8_prefix("x\xF0\x9F\x98\x80") == 5);
    // Image parts place media markers where they stood; text parts join with newlines.
    auto r = parse_chat_request(json{{"messages", json::array({{{"role", "user"},
                                                               {"content", json::array({{{"type", "text"}, {"text", "A"}},
                                                                                        {{"type", "text"}, {"text", "B"}},
                                                                                        {{"type", "image_url"}, {"image_url", png_data_uri()}},
                                                                                        {{"type", "text"}, {"text", "C"}}})}}})},
                                         {"max_tokens", 7},
                                         {"seed", 9}}
                                        .dump());
    REQUIRE_MESSAGE(r.is_ok(), r.status().message());
    CHECK(r->user_text == "A\nB<__media__>C");
    CHECK(r->image_files.size() == 1);
    CHECK(r->image_files[0] == test::read_file_bytes(kImage));
    CHECK(r->max_tokens == 7);
    CHECK(r->sampling.seed == 9);
}

TEST_CASE("serve: the glimpse serve command prints its port, answers, and stops cleanly on SIGTERM") {
    int out[2];
    REQUIRE(pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    std::vector<std::string> args = {GLIMPSE_CLI_BINARY, "serve", "-m", kText, "--mmproj", kMmproj, "--port", "0",
                                     "-t", "1", "--alias", "cli-test"};
    std::vector<char*> argv = test::c_string_array(args);
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    // First stdout line: "glimpse serve: listening on http://127.0.0.1:PORT (...)".
    std::string line;
    char ch = 0;
    while (read(out[0], &ch, 1) == 1 && ch != '\n') line += ch;
    close(out[0]);
    const std::string marker = "http://127.0.0.1:";
    const size_t at = line.find(marker);
    REQUIRE_MESSAGE(at != std::string::npos, line);
    const int port = std::atoi(line.c_str() + at + marker.size());
    REQUIRE(port > 0);
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(120));
    auto models = c.Get("/v1/models");
    REQUIRE(models);
    CHECK(json::parse(models->body)["data"][0]["id"] == "cli-test");
    CHECK(answer_of(c.Post("/v1/chat/completions", chat_body(png_data_uri(), kPrompt).dump(), "application/json")) ==
          cli_caption(kPrompt));
    REQUIRE(kill(pid, SIGTERM) == 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("serve: exits as caption does: a bad option value 2, a model file that cannot be read 1, naming it") {
    // Every case stops before the server listens (stdout stays empty); --port 0 so that a case
    // that wrongly started it could not take a fixed port.
    const test::TempDir dir("serve_exit_status");
    const std::string not_gguf = dir.file("not-a-model.gguf");
    test::write_bytes(not_gguf, {'n', 'o', 't', ' ', 'g', 'g', 'u', 'f'});
    struct Case {
        std::vector<std::string> args;
        int exit_code;
        std::string says;
    };
    const std::vector<Case> cases = {
        // Usage errors: a value out of range or not one of the choices, flags that go together.
        {{"-m", kText, "--mmproj", kMmproj, "--kv-type", "q7"}, 2, "--kv-type"},
        {{"-m", kText, "--mmproj", kMmproj, "--slots", "65"}, 2, "--slots"},
        {{"-m", kText, "--mmproj", kMmproj, "--prune", "uniform"}, 2, "--keep"},
        {{"-m", kText, "--mmproj", kMmproj, "--plan", dir.file("no-plan.json")}, 2, "no-plan.json"},
        // Failed runs: the text model the decoder-layer shorthand reads its depth from, before the
        // load (this exited 2 before serve shared caption's rule), and the load itself.
        {{"-m", dir.file("missing-text.gguf"), "--mmproj", kMmproj, "--prune", "fastv", "--keep", "0.5"}, 1,
         "missing-text.gguf"},
        {{"-m", not_gguf, "--mmproj", kMmproj, "--prune", "fastv", "--keep", "0.5"}, 1, "not-a-model.gguf"},
        {{"-m", dir.file("missing-text.gguf"), "--mmproj", kMmproj}, 1, "missing-text.gguf"},
        {{"-m", kText, "--mmproj", not_gguf}, 1, "not-a-model.gguf"},
        // A kernel decision file that cannot be read: caption fails its load with it (exit 1).
        {{"-m", kText, "--mmproj", kMmproj, "--decisions", dir.file("no-decisions.txt")}, 1, "no-decisions.txt"},
    };
    for (const Case& c : cases) {
        std::vector<std::string> argv = {GLIMPSE_CLI_BINARY, "serve", "--port", "0", "-t", "1"};
        argv.insert(argv.end(), c.args.begin(), c.args.end());
        std::string line;
        for (const std::string& s : argv) line += s + " ";
        const test::ProcessRun r = test::run_process(argv, dir);
        INFO(line << "-> exit " << r.exit_code << ", stderr: " << r.err);
        CHECK(r.exit_code == c.exit_code);
        CHECK(r.err.find(c.says) != std::string::npos);
        CHECK(r.out.empty());
    }
}
