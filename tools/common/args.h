// A small command-line parser for glimpse's tools: options are declared with
// their help text, so --help always lists exactly what the program accepts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace glimpse::tools {

class ArgParser {
public:
    ArgParser(std::string program, std::string usage, std::string description);

    // Declares an option taking a value; `names` like "-m,--model". `value_name` is
    // shown in help ("FILE"). The default (if any) is shown too.
    void option(const std::string& names, const std::string& value_name, const std::string& help,
                const std::string& default_value = "");
    // Declares a flag without a value.
    void flag(const std::string& names, const std::string& help);
    // Declares an option that may be given several times (e.g. --image).
    void repeated(const std::string& names, const std::string& value_name, const std::string& help);

    // Parses argv (after the program/subcommand name). On error fills `error`.
    bool parse(int argc, char** argv, std::string* error);
    // A tool's usual start: parse(); on an error prints "<program>: <error>" to stderr and
    // returns 2 (usage error); with --help prints help() to stdout and returns 0; otherwise
    // returns nullopt and the tool goes on. Tools only: it prints.
    std::optional<int> parse_or_exit_code(int argc, char** argv);

    bool has(const std::string& name) const;      // given on the command line
    std::string get(const std::string& name) const;  // value or default ("" if none)
    std::vector<std::string> get_all(const std::string& name) const;
    // Integer options: decimal, whole value; out of int64 range is an error, never a wrap.
    bool get_int(const std::string& name, int64_t* out, std::string* error) const;
    // The same within [lo, hi]; the error names the range.
    bool get_int(const std::string& name, int64_t lo, int64_t hi, int64_t* out, std::string* error) const;
    // Finite numbers only (no nan, inf or overflow).
    bool get_float(const std::string& name, double* out, std::string* error) const;
    const std::vector<std::string>& positional() const { return positional_; }

    std::string help() const;

private:
    struct Option {
        std::vector<std::string> names;
        std::string value_name, help, default_value;
        bool takes_value = true, repeatable = false;
        std::vector<std::string> values;
    };
    const Option* find(const std::string& name) const;
    Option* find(const std::string& name);

    std::string program_, usage_, description_;
    std::vector<Option> options_;
    std::vector<std::string> positional_;
};

}  // namespace glimpse::tools
