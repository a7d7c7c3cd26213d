// Status and Result<T>: the error channel of every library function.
//
// Library code never throws across its boundary and never exits; it returns a
// Status (or a Result<T> carrying either a value or a Status). Only tools/ turn
// an error into a process exit code.
#pragma once

#include <cstdarg>
#include <string>
#include <utility>
#include <variant>

namespace glimpse {

enum class StatusCode {
    ok = 0,
    invalid_argument,   // the caller passed something that can never work
    parse_error,        // a file's bytes do not follow its format
    io_error,           // open/read/mmap/write failed
    unsupported,        // valid input we do not implement (a tensor type, an architecture)
    out_of_range,       // a count, size or index beyond what the plan or file allows
    resource_exhausted, // a budget (memory, tokens) cannot be met
    internal,           // a broken invariant: a bug in glimpse
};

const char* status_code_name(StatusCode code);

// printf-style formatting into a std::string (GCC 12 has no std::format).
std::string str_printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string str_vprintf(const char* fmt, va_list args);

class [[nodiscard]] Status {
public:
    Status() = default;
    Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

    static Status ok() { return Status(); }
    static Status error(StatusCode code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

    bool is_ok() const { return code_ == StatusCode::ok; }
    explicit operator bool() const { return is_ok(); }
    StatusCode code() const { return code_; }
    const std::string& message() const { return message_; }

    // "parse_error: tokenizer.ggml.tokens: ..." — what tools print.
    std::string to_string() const;

    // Adds context in front of the message: "loading x.gguf: <message>".
    Status with_context(const std::string& context) const;

private:
    StatusCode code_ = StatusCode::ok;
    std::string message_;
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : storage_(std::move(value)) {}  // NOLINT: implicit by design
    Result(Status status) : storage_(std::move(status)) {}  // NOLINT: implicit by design

    bool is_ok() const { return storage_.index() == 0; }
    explicit operator bool() const { return is_ok(); }

    const Status& status() const {
        static const Status ok_status;
        return is_ok() ? ok_status : std::get<1>(storage_);
    }
    T& value() & { return std::get<0>(storage_); }
    const T& value() const& { return std::get<0>(storage_); }
    T&& value() && { return std::get<0>(std::move(storage_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

private:
    std::variant<T, Status> storage_;
};

}  // namespace glimpse

#define GLIMPSE_CONCAT_INNER(a, b) a##b
#define GLIMPSE_CONCAT(a, b) GLIMPSE_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the enclosing function if it is an error.
#define GLIMPSE_RETURN_IF_ERROR(expr)                                    \
    do {                                                                 \
        ::glimpse::Status glimpse_status_tmp_ = (expr);                  \
        if (!glimpse_status_tmp_.is_ok()) return glimpse_status_tmp_;   \
    } while (0)

// `lhs = value of expr`, or returns its Status. lhs may be a declaration.
#define GLIMPSE_ASSIGN_OR_RETURN(lhs, expr) \
    GLIMPSE_ASSIGN_OR_RETURN_IMPL(GLIMPSE_CONCAT(glimpse_result_, __LINE__), lhs, expr)
#define GLIMPSE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
    auto tmp = (expr);                                \
    if (!tmp.is_ok()) return tmp.status();            \
    lhs = std::move(tmp).value()

// Returns an error Status with a printf-formatted message unless `cond` holds.
#define GLIMPSE_CHECK_OR_RETURN(cond, code, ...)                                   \
    do {                                                                           \
        if (!(cond)) return ::glimpse::Status::error(::glimpse::StatusCode::code, __VA_ARGS__); \
    } while (0)

// Internal invariant (a bug if it fails): aborts with file:line in every build.
#define GLIMPSE_ASSERT(cond)                                                        \
    do {                                                                            \
        if (!(cond)) ::glimpse::assert_fail(#cond, __FILE__, __LINE__);             \
    } while (0)

namespace glimpse {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line);
}
