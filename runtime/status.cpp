#include "runtime/status.h"

#include <cstdio>
#include <cstdlib>

namespace glimpse {

const char* status_code_name(StatusCode code) {
    switch (code) {
        case StatusCode::ok: return "ok";
        case StatusCode::invalid_argument: return "invalid_argument";
        case StatusCode::parse_error: return "parse_error";
        case StatusCode::io_error: return "io_error";
        case StatusCode::unsupported: return "unsupported";
        case StatusCode::out_of_range: return "out_of_range";
        case StatusCode::resource_exhausted: return "resource_exhausted";
        case StatusCode::internal: return "internal";
    }
    return "unknown";
}

std::string str_vprintf(const char* fmt, va_list args) {
    va_list copy;
    va_copy(copy, args);
    int n = std::vsnprintf(nullptr, 0, fmt, copy);
    va_end(copy);
    if (n < 0) return std::string(fmt);
    std::string out(static_cast<size_t>(n), '\0');
    std::vsnprintf(out.data(), out.size() + 1, fmt, args);
    return out;
}

std::string str_printf(const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    std::string out = str_vprintf(fmt, args);
    va_end(args);
    return out;
}

Status Status::error(StatusCode code, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    std::string msg = str_vprintf(fmt, args);
    va_end(args);
    return Status(code, std::move(msg));
}

std::string Status::to_string() const {
    if (is_ok()) return "ok";
    return std::string(status_code_name(code_)) + ": " + message_;
}

Status Status::with_context(const std::string& context) const {
    if (is_ok()) return *this;
    return Status(code_, context + ": " + message_);
}

void assert_fail(const char* expr, const char* file, int line) {
    std::fprintf(stderr, "glimpse: internal assertion failed: %s at %s:%d\n", expr, file, line);
    std::abort();
}

}  // namespace glimpse
