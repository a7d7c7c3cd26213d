#include "tools/common/args.h"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace glimpse::tools {

namespace {
std::vector<std::string> split_names(const std::string& names) {
    std::vector<std::string> out;
    std::stringstream ss(names);
    std::string item;
    while (std::getline(ss, item, ',')) out.push_back(item);
    return out;
}
}  // namespace

ArgParser::ArgParser(std::string program, std::string usage, std::string description)
    : program_(std::move(program)), usage_(std::move(usage)), description_(std::move(description)) {
    flag("-h,--help", "show this help and exit");
}

void ArgParser::option(const std::string& names, const std::string& value_name, const std::string& help,
                       const std::string& default_value) {
    options_.push_back({split_names(names), value_name, help, default_value, true, false, {}});
}

void ArgParser::flag(const std::string& names, const std::string& help) {
    options_.push_back({split_names(names), "", help, "", false, false, {}});
}

void ArgParser::repeated(const std::string& names, const std::string& value_name, const std::string& help) {
    options_.push_back({split_names(names), value_name, help, "", true, true, {}});
}

const ArgParser::Option* ArgParser::find(const std::string& name) const {
    for (const Option& o : options_) {
        for (const std::string& n : o.names) {
            if (n == name) return &o;
        }
    }
    return nullptr;
}

ArgParser::Option* ArgParser::find(const std::string& name) {
    return const_cast<Option*>(static_cast<const ArgParser*>(this)->find(name));
}

bool ArgParser::parse(int argc, char** argv, std::string* error) {
    for (int i = 0; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg.size() < 2 || arg[0] != '-' || arg == "--") {
            positional_.push_back(arg);
            continue;
        }
        std::string value;
        bool inline_value = false;
        if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
            inline_value = true;
        }
        Option* o = find(arg);
        if (!o) {
            *error = "unknown option '" + arg + "' (see --help)";
            return false;
        }
        if (!o->takes_value) {
            if (inline_value) {
                *error = "option '" + arg + "' takes no value";
                return false;
            }
            o->values.push_back("1");
            continue;
        }
        if (!inline_value) {
            if (i + 1 >= argc) {
                *error = "option '" + arg + "' needs a value (" + o->value_name + ")";
                return false;
            }
            value = argv[++i];
        }
        if (!o->repeatable && !o->values.empty()) {
            *error = "option '" + arg + "' given more than once";
            return false;
        }
        o->values.push_back(value);
    }
    return true;
}

std::optional<int> ArgParser::parse_or_exit_code(int argc, char** argv) {
    std::string error;
    if (!parse(argc, argv, &error)) {
        std::fprintf(stderr, "%s: %s\n", program_.c_str(), error.c_str());
        return 2;
    }
    if (has("--help")) {
        std::fputs(help().c_str(), stdout);
        return 0;
    }
    return std::nullopt;
}

bool ArgParser::has(const std::string& name) const {
    const Option* o = find(name);
    return o && !o->values.empty();
}

std::string ArgParser::get(const std::string& name) const {
    const Option* o = find(name);
    if (!o) return "";
    return o->values.empty() ? o->default_value : o->values.back();
}

std::vector<std::string> ArgParser::get_all(const std::string& name) const {
    const Option* o = find(name);
    return o ? o->values : std::vector<std::string>{};
}

bool ArgParser::get_int(const std::string& name, int64_t* out, std::string* error) const {
    return get_int(name, INT64_MIN, INT64_MAX, out, error);
}

// Decimal only, the whole value, no wrap-around: "4294967297" for a 32-bit field is an error
// the caller's range names, never 1.
bool ArgParser::get_int(const std::string& name, int64_t lo, int64_t hi, int64_t* out, std::string* error) const {
    const std::string v = get(name);
    if (v.empty()) return true;
    const bool digits = v.find_first_not_of("+-0123456789") == std::string::npos &&
                        v.find_first_of("0123456789") != std::string::npos;
    errno = 0;
    char* end = nullptr;
    const long long x = digits ? std::strtoll(v.c_str(), &end, 10) : 0;
    if (!digits || end == v.c_str() || *end != '\0') {
        *error = "option '" + name + "' expects an integer, got '" + v + "'";
        return false;
    }
    if (errno == ERANGE || x < lo || x > hi) {
        *error = "option '" + name + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                 ", got " + v;
        return false;
    }
    *out = x;
    return true;
}

bool ArgParser::get_float(const std::string& name, double* out, std::string* error) const {
    const std::string v = get(name);
    if (v.empty()) return true;
    errno = 0;
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0' || !std::isfinite(x) || errno == ERANGE) {
        *error = "option '" + name + "' expects a finite number, got '" + v + "'";
        return false;
    }
    *out = x;
    return true;
}

std::string ArgParser::help() const {
    std::string out = "usage: " + program_ + " " + usage_ + "\n\n" + description_ + "\n\noptions:\n";
    for (const Option& o : options_) {
        std::string left = "  ";
        for (size_t i = 0; i < o.names.size(); ++i) left += (i ? ", " : "") + o.names[i];
        if (o.takes_value) left += " " + o.value_name;
        if (left.size() < 30) left.resize(30, ' ');
        else left += "\n" + std::string(30, ' ');
        out += left + o.help;
        if (!o.default_value.empty()) out += " (default: " + o.default_value + ")";
        if (o.repeatable) out += " (repeatable)";
        out += "\n";
    }
    return out;
}

}  // namespace glimpse::tools
