#include "ops/matmul_decision_file.h"

#include <sys/stat.h>
#include <cerrno>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>

#include "ops/providers/providers.h"
#include "runtime/json.h"
#include "runtime/mapped_file.h"

namespace glimpse {

MatmulShapeClass matmul_shape_class(int64_t M_max, int64_t K, int64_t N) {
    if (K * N < (int64_t{1} << 16)) return MatmulShapeClass::tiny;
    if (M_max <= 1) return MatmulShapeClass::decode;
    return M_max < 128 ? MatmulShapeClass::small : MatmulShapeClass::large;
}

const char* matmul_shape_class_name(MatmulShapeClass c) {
    switch (c) {
        case MatmulShapeClass::tiny: return "tiny";
        case MatmulShapeClass::decode: return "decode";
        case MatmulShapeClass::small: return "small";
        case MatmulShapeClass::large: return "large";
    }
    return "?";
}

const char* matmul_policy_name(MatmulPolicy p) { return p == MatmulPolicy::exact ? "exact" : "fast"; }

namespace {

// Coarseness of a kernel's arithmetic: the order of its error bound in
// tests/test_matmul_kernels.cpp (f32 < f16 < bf16 < 8-bit activations < int8 weights too).
int coarseness(MatmulActivations a) {
    switch (a) {
        case MatmulActivations::f32: return 0;
        case MatmulActivations::f16: return 1;
        case MatmulActivations::bf16: return 2;
        case MatmulActivations::bf16_bf16w:
        case MatmulActivations::q8_0:
        case MatmulActivations::q8_1:
        case MatmulActivations::q8_k: return 3;
        case MatmulActivations::s8_row_s8w: return 4;
    }
    return 5;
}

}  // namespace

MatmulPolicy matmul_policy_of(const MatmulKernel& candidate, const MatmulKernel& prioritised) {
    const bool coarser = coarseness(candidate.activations) > coarseness(prioritised.activations);
    const bool allocates = is_matmul_provider(candidate) && matmul_provider_allocates_in_run(candidate);
    return coarser || allocates ? MatmulPolicy::fast : MatmulPolicy::exact;
}

std::string matmul_kernel_set_fingerprint() {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
    };
    for (const MatmulKernel* k : matmul_kernels()) {
        mix(k->name, std::strlen(k->name) + 1);
        const int32_t fields[] = {static_cast<int32_t>(k->isa), static_cast<int32_t>(k->w_type), k->priority,
                                  static_cast<int32_t>(k->activations)};
        mix(fields, sizeof fields);
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

std::string matmul_decisions_cpu_model() {
    std::ifstream f("/proc/cpuinfo");
    std::string line, implementer, part;
    auto value = [](const std::string& l) {
        std::string v = l.substr(l.find(':') + 1);
        const size_t b = v.find_first_not_of(" \t"), e = v.find_last_not_of(" \t\r");
        return b == std::string::npos ? std::string() : v.substr(b, e - b + 1);
    };
    while (std::getline(f, line)) {
        if (line.find(':') == std::string::npos) continue;
        if (line.rfind("model name", 0) == 0) return value(line);
        if (line.rfind("CPU implementer", 0) == 0 && implementer.empty()) implementer = value(line);
        if (line.rfind("CPU part", 0) == 0 && part.empty()) part = value(line);
    }
    if (!part.empty()) return "arm implementer " + implementer + " part " + part;
    return "unknown";
}

MatmulDecisionFile matmul_decisions_for_this_machine(int threads) {
    MatmulDecisionFile f;
    f.kernel_set = matmul_kernel_set_fingerprint();
    f.cpu_model = matmul_decisions_cpu_model();
    f.cpu_features = cpu_features().describe();
    f.isa = active_isa();
    f.threads = threads;
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    f.created = buf;
    return f;
}

std::string default_matmul_decisions_path() {
    std::string base;
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    if (xdg && xdg[0] == '/') base = xdg;  // the XDG spec: relative paths are invalid, ignore them
    else if (home && home[0] == '/') base = std::string(home) + "/.cache";
    else return "";
    // CPU model -> [a-z0-9-] (at most 48 characters), so the name is portable and readable.
    std::string slug;
    for (char c : matmul_decisions_cpu_model()) {
        const char l = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9')) slug += l;
        else if (!slug.empty() && slug.back() != '-') slug += '-';
        if (slug.size() >= 48) break;
    }
    while (!slug.empty() && slug.back() == '-') slug.pop_back();
    if (slug.empty()) slug = "unknown-cpu";
    return base + "/glimpse/matmul-decisions-" + slug + "-" + matmul_kernel_set_fingerprint() + ".json";
}

std::string matmul_decisions_to_json(const MatmulDecisionFile& f) {
    std::string s = "{\n";
    s += "  \"schema\": \"glimpse-matmul-decisions/1\",\n";
    s += "  \"kernel_set\": " + json_quote(f.kernel_set) + ",\n";
    s += "  \"cpu_model\": " + json_quote(f.cpu_model) + ",\n";
    s += "  \"cpu_features\": " + json_quote(f.cpu_features) + ",\n";
    s += "  \"isa\": " + json_quote(isa_name(f.isa)) + ",\n";
    s += "  \"threads\": " + std::to_string(f.threads) + ",\n";
    s += "  \"created\": " + json_quote(f.created) + ",\n";
    s += "  \"decisions\": [";
    for (size_t i = 0; i < f.decisions.size(); ++i) {
        const MatmulDecision& d = f.decisions[i];
        char ms[64], rms[64];
        std::snprintf(ms, sizeof ms, "%.4f", d.ms);
        std::snprintf(rms, sizeof rms, "%.4f", d.runner_up_ms);
        s += i ? ",\n    " : "\n    ";
        s += "{\"w_type\": " + json_quote(dtype_name(d.w_type)) + ", \"shape\": " +
             json_quote(matmul_shape_class_name(d.shape)) + ", \"kernel\": " + json_quote(d.kernel) +
             ", \"policy\": " + json_quote(matmul_policy_name(d.policy)) + ", \"ms\": " + ms +
             ", \"runner_up\": " + json_quote(d.runner_up) + ", \"runner_up_ms\": " + rms + "}";
    }
    s += f.decisions.empty() ? "]\n}\n" : "\n  ]\n}\n";
    return s;
}

namespace {

Status format_error(const std::string& name, const std::string& what) {
    return Status::error(StatusCode::parse_error, "%s: not a valid matmul decision file: %s", name.c_str(),
                         what.c_str());
}

Result<std::string> string_member(const JsonValue& obj, const char* key, const std::string& name) {
    const JsonValue* v = obj.find(key);
    if (!v || !v->is_string()) return format_error(name, std::string("\"") + key + "\" must be a string");
    return v->as_string();
}

bool dtype_from_name(const std::string& s, DType* out) {
    for (DType t : {DType::f32, DType::f16, DType::bf16, DType::q8_0, DType::q4_0, DType::q4_1, DType::q5_0,
                    DType::q5_1, DType::q4_k, DType::q5_k, DType::q6_k}) {
        if (s == dtype_name(t)) {
            *out = t;
            return true;
        }
    }
    return false;
}

}  // namespace

Result<MatmulDecisionFile> parse_matmul_decisions(const std::string& text, const std::string& name) {
    Result<JsonValue> parsed = json_parse(text, name);
    if (!parsed.is_ok()) return format_error(name, parsed.status().message());
    const JsonValue& j = *parsed;
    if (!j.is_object()) return format_error(name, "the top level must be an object");
    GLIMPSE_ASSIGN_OR_RETURN(std::string schema, string_member(j, "schema", name));
    if (schema != "glimpse-matmul-decisions/1") {
        return format_error(name, "schema '" + schema + "' (this glimpse reads glimpse-matmul-decisions/1)");
    }
    MatmulDecisionFile f;
    GLIMPSE_ASSIGN_OR_RETURN(f.kernel_set, string_member(j, "kernel_set", name));
    GLIMPSE_ASSIGN_OR_RETURN(f.cpu_model, string_member(j, "cpu_model", name));
    GLIMPSE_ASSIGN_OR_RETURN(f.cpu_features, string_member(j, "cpu_features", name));
    GLIMPSE_ASSIGN_OR_RETURN(std::string isa, string_member(j, "isa", name));
    Result<Isa> level = isa_from_name(isa);
    if (!level.is_ok()) return format_error(name, "unknown isa '" + isa + "'");
    f.isa = *level;
    const JsonValue* threads = j.find("threads");
    if (!threads || !threads->is_number() || threads->as_int() < 1 || threads->as_int() > 1024) {
        return format_error(name, "\"threads\" must be a number in 1..1024");
    }
    f.threads = static_cast<int>(threads->as_int());
    if (const JsonValue* c = j.find("created"); c && c->is_string()) f.created = c->as_string();
    const JsonValue* list = j.find("decisions");
    if (!list || !list->is_array()) return format_error(name, "\"decisions\" must be an array");
    if (list->size() > 64) return format_error(name, "more than 64 decisions");
    for (size_t i = 0; i < list->items().size(); ++i) {
        const JsonValue& e = list->items()[i];
        const std::string where = "decisions[" + std::to_string(i) + "]";
        if (!e.is_object()) return format_error(name, where + " must be an object");
        MatmulDecision d;
        GLIMPSE_ASSIGN_OR_RETURN(std::string w, string_member(e, "w_type", name));
        if (!dtype_from_name(w, &d.w_type)) return format_error(name, where + ": unknown weight type '" + w + "'");
        GLIMPSE_ASSIGN_OR_RETURN(std::string shape, string_member(e, "shape", name));
        if (shape == "decode") d.shape = MatmulShapeClass::decode;
        else if (shape == "small") d.shape = MatmulShapeClass::small;
        else if (shape == "large") d.shape = MatmulShapeClass::large;
        else return format_error(name, where + ": shape must be decode, small or large, not '" + shape + "'");
        GLIMPSE_ASSIGN_OR_RETURN(d.kernel, string_member(e, "kernel", name));
        GLIMPSE_ASSIGN_OR_RETURN(std::string policy, string_member(e, "policy", name));
        if (policy == "exact") d.policy = MatmulPolicy::exact;
        else if (policy == "fast") d.policy = MatmulPolicy::fast;
        else return format_error(name, where + ": policy must be exact or fast, not '" + policy + "'");
        if (const JsonValue* v = e.find("ms"); v && v->is_number()) d.ms = v->as_number();
        if (const JsonValue* v = e.find("runner_up"); v && v->is_string()) d.runner_up = v->as_string();
        if (const JsonValue* v = e.find("runner_up_ms"); v && v->is_number()) d.runner_up_ms = v->as_number();
        for (const MatmulDecision& o : f.decisions) {
            if (o.w_type == d.w_type && o.shape == d.shape) {
                return format_error(name, where + ": a second decision for " + w + " " + shape);
            }
        }
        f.decisions.push_back(std::move(d));
    }
    return f;
}

Status check_matmul_decisions_apply_here(const MatmulDecisionFile& f) {
    const std::string model = matmul_decisions_cpu_model();
    GLIMPSE_CHECK_OR_RETURN(f.cpu_model == model, invalid_argument,
                            "measured on another CPU ('%s'; this one is '%s')", f.cpu_model.c_str(), model.c_str());
    const std::string features = cpu_features().describe();
    GLIMPSE_CHECK_OR_RETURN(f.cpu_features == features, invalid_argument,
                            "measured with other CPU features ('%s'; this CPU has '%s')", f.cpu_features.c_str(),
                            features.c_str());
    const std::string set = matmul_kernel_set_fingerprint();
    GLIMPSE_CHECK_OR_RETURN(f.kernel_set == set, invalid_argument,
                            "written by a glimpse build with other kernels (kernel set %s; this build is %s): run "
                            "`glimpse tune` again",
                            f.kernel_set.c_str(), set.c_str());
    GLIMPSE_CHECK_OR_RETURN(f.isa <= cpu_features().best_isa(), invalid_argument,
                            "measured at level %s, which this CPU does not have", isa_name(f.isa));
    for (const MatmulDecision& d : f.decisions) {
        const MatmulKernel* k = find_matmul_kernel(d.kernel.c_str());
        GLIMPSE_CHECK_OR_RETURN(k != nullptr, invalid_argument, "names kernel '%s', which this build does not have",
                                d.kernel.c_str());
        GLIMPSE_CHECK_OR_RETURN(k->w_type == d.w_type, invalid_argument, "kernel '%s' reads %s weights, not %s",
                                d.kernel.c_str(), dtype_name(k->w_type), dtype_name(d.w_type));
        GLIMPSE_CHECK_OR_RETURN(k->isa <= f.isa, invalid_argument, "kernel '%s' needs %s, above the file's level %s",
                                d.kernel.c_str(), isa_name(k->isa), isa_name(f.isa));
    }
    return Status::ok();
}

Result<MatmulDecisionFile> read_matmul_decisions(const std::string& path) {
    // Decision files are a few KB; 1 MiB is far beyond any real one.
    Result<std::vector<uint8_t>> bytes = read_regular_file(path, "matmul decision file", int64_t{1} << 20);
    if (!bytes.is_ok()) return bytes.status();
    const std::string text(bytes->begin(), bytes->end());
    GLIMPSE_ASSIGN_OR_RETURN(MatmulDecisionFile f, parse_matmul_decisions(text, path));
    if (Status s = check_matmul_decisions_apply_here(f); !s.is_ok()) {
        return Status::error(StatusCode::invalid_argument, "%s: not for this machine: %s", path.c_str(),
                             s.message().c_str());
    }
    return f;
}

Status write_matmul_decisions(const std::string& path, const MatmulDecisionFile& f) {
    const size_t slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
        // mkdir -p of the parent
        const std::string dir = path.substr(0, slash);
        for (size_t p = 1; p <= dir.size(); ++p) {
            if (p == dir.size() || dir[p] == '/') {
                const std::string part = dir.substr(0, p);
                if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
                    return Status::error(StatusCode::io_error, "%s: cannot create directory %s: %s", path.c_str(),
                                         part.c_str(), std::strerror(errno));
                }
            }
        }
    }
    const std::string tmp = path + ".tmp" + std::to_string(getpid());
    const std::string text = matmul_decisions_to_json(f);
    FILE* out = std::fopen(tmp.c_str(), "wb");
    if (!out) return Status::error(StatusCode::io_error, "%s: cannot write: %s", tmp.c_str(), std::strerror(errno));
    const bool ok = std::fwrite(text.data(), 1, text.size(), out) == text.size();
    if (std::fclose(out) != 0 || !ok) {
        std::remove(tmp.c_str());
        return Status::error(StatusCode::io_error, "%s: write failed", tmp.c_str());
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        return Status::error(StatusCode::io_error, "%s: cannot rename %s over it: %s", path.c_str(), tmp.c_str(),
                             std::strerror(errno));
    }
    return Status::ok();
}

namespace {

struct Installed {
    std::mutex mu;
    Isa isa = Isa::scalar;
    std::vector<MatmulDecision> decisions;
};
Installed& installed() {
    static Installed s;
    return s;
}

}  // namespace

Status install_matmul_decisions(const MatmulDecisionFile& f) {
    GLIMPSE_RETURN_IF_ERROR(check_matmul_decisions_apply_here(f));
    Installed& s = installed();
    std::lock_guard<std::mutex> lock(s.mu);
    s.isa = f.isa;
    s.decisions = f.decisions;
    return Status::ok();
}

void clear_installed_matmul_decisions() {
    Installed& s = installed();
    std::lock_guard<std::mutex> lock(s.mu);
    s.decisions.clear();
}

bool installed_matmul_decision(DType w_type, MatmulShapeClass shape, std::string* kernel, MatmulPolicy* policy) {
    Installed& s = installed();
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.isa != active_isa()) return false;  // measured at another GLIMPSE_MAX_ISA level
    for (const MatmulDecision& d : s.decisions) {
        if (d.w_type == w_type && d.shape == shape) {
            *kernel = d.kernel;
            *policy = d.policy;
            return true;
        }
    }
    return false;
}

Status use_matmul_decisions(const std::string& path, const std::function<void(const std::string&)>& log) {
    clear_installed_matmul_decisions();
    if (path == "none") return Status::ok();
    if (!path.empty()) {
        GLIMPSE_ASSIGN_OR_RETURN(MatmulDecisionFile f, read_matmul_decisions(path));
        return install_matmul_decisions(f);
    }
    const std::string def = default_matmul_decisions_path();
    struct stat st;
    if (def.empty() || stat(def.c_str(), &st) != 0) return Status::ok();  // never tuned: built-in table
    Result<MatmulDecisionFile> f = read_matmul_decisions(def);
    Status s = f.is_ok() ? install_matmul_decisions(*f) : f.status();
    if (!s.is_ok() && log) log("ignoring the kernel decision file: " + s.message() + "; using the built-in choices");
    return Status::ok();
}

}  // namespace glimpse
