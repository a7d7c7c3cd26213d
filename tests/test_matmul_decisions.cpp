// Decision files of `glimpse tune` (ops/matmul_decision_file.h): written, read back,
// validated against the machine and build, installed ahead of the built-in table, and
// refused (explicit path) or ignored with a message (default path) when corrupt or foreign.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "ops/matmul_decision_file.h"
#include "test_util.h"

using namespace glimpse;

namespace {

void write_text(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
}

// A usable f16 kernel that is not the priority choice for an encoder shape and whose
// numerics are exact relative to it (so the default policy applies it), or nullptr.
const MatmulKernel* alternative_f16_kernel() {
    const MatmulKernel* prio = priority_matmul_kernel(DType::f16, 1024, 768, 768);
    if (!prio) return nullptr;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (k == prio || k->w_type != DType::f16 || !isa_usable(k->isa) || (k->available && !k->available())) continue;
        if (k->priority == KernelPriority::reference) continue;
        if (k->supports && !k->supports(1024, 768, 768)) continue;
        if (matmul_policy_of(*k, *prio) == MatmulPolicy::exact) return k;
    }
    return nullptr;
}

MatmulDecisionFile file_with(const std::string& kernel) {
    MatmulDecisionFile f = matmul_decisions_for_this_machine(2);
    MatmulDecision d;
    d.w_type = DType::f16;
    d.shape = MatmulShapeClass::large;
    d.kernel = kernel;
    d.ms = 12.5;
    d.runner_up = "f16_ref";
    d.runner_up_ms = 99.25;
    f.decisions.push_back(d);
    return f;
}

}  // namespace

TEST_CASE("shape classes: decode is one row, small below 128 rows, tiny matrices never decided") {
    CHECK(matmul_shape_class(1, 768, 768) == MatmulShapeClass::decode);
    CHECK(matmul_shape_class(64, 12288, 576) == MatmulShapeClass::small);
    CHECK(matmul_shape_class(127, 768, 768) == MatmulShapeClass::small);
    CHECK(matmul_shape_class(128, 768, 768) == MatmulShapeClass::large);
    CHECK(matmul_shape_class(1024, 128, 511) == MatmulShapeClass::tiny);  // K·N = 65408 < 2^16
    CHECK(matmul_shape_class(1024, 128, 512) == MatmulShapeClass::large);
}

TEST_CASE("a decision file round-trips through its JSON and applies on the machine that wrote it") {
    const MatmulDecisionFile f = file_with("f16_ref");
    Result<MatmulDecisionFile> back = parse_matmul_decisions(matmul_decisions_to_json(f), "mem");
    REQUIRE(back.is_ok());
    CHECK(back->kernel_set == f.kernel_set);
    CHECK(back->kernel_set.size() == 16);
    CHECK(back->cpu_model == f.cpu_model);
    CHECK(back->cpu_features == f.cpu_features);
    CHECK(back->isa == active_isa());
    CHECK(back->threads == 2);
    REQUIRE(back->decisions.size() == 1);
    CHECK(back->decisions[0].w_type == DType::f16);
    CHECK(back->decisions[0].shape == MatmulShapeClass::large);
    CHECK(back->decisions[0].kernel == "f16_ref");
    CHECK(back->decisions[0].ms == doctest::Approx(12.5));
    CHECK(back->decisions[0].runner_up_ms == doctest::Approx(99.25));
    CHECK(check_matmul_decisions_apply_here(*back).is_ok());

    const test::TempDir scratch("decisions1");
    const std::string dir = scratch.path.string();
    const std::string path = dir + "/sub/dir/d.json";  // parents are created
    REQUIRE(write_matmul_decisions(path, f).is_ok());
    Result<MatmulDecisionFile> read = read_matmul_decisions(path);
    REQUIRE(read.is_ok());
    CHECK(read->decisions.size() == 1);
    std::remove(path.c_str());
}

TEST_CASE("an installed decision is what select_matmul_kernel returns, at its level and shape class only") {
    const MatmulKernel* alt = alternative_f16_kernel();
    if (!alt) {
        MESSAGE("no second exact f16 kernel at level " << isa_name(active_isa()) << "; skipped");
        return;
    }
    const MatmulKernel* before = select_matmul_kernel(DType::f16, 1024, 768, 768);
    REQUIRE(before != alt);
    REQUIRE(install_matmul_decisions(file_with(alt->name)).is_ok());
    CHECK(select_matmul_kernel(DType::f16, 1024, 768, 768) == alt);
    CHECK(select_matmul_kernel(DType::f16, 1, 768, 768) == select_matmul_kernel(DType::f16, 1, 768, 768));
    std::string kernel;
    MatmulPolicy policy;
    CHECK_FALSE(installed_matmul_decision(DType::f16, MatmulShapeClass::decode, &kernel, &policy));
    CHECK_FALSE(installed_matmul_decision(DType::q8_0, MatmulShapeClass::large, &kernel, &policy));
    // tiny shapes are never decided
    CHECK(select_matmul_kernel(DType::f16, 1024, 64, 64) == priority_matmul_kernel(DType::f16, 1024, 64, 64));
    clear_installed_matmul_decisions();
    CHECK(select_matmul_kernel(DType::f16, 1024, 768, 768) == before);
}

TEST_CASE("an installed decision for a coarser kernel is not applied by the exact policy") {
    // The file says "exact", but the policy is derived from the kernels: a bf16-activation
    // kernel replacing an f32/f16-activation choice is `fast` and needs GLIMPSE_MATMUL_DECISIONS=fast.
    const MatmulKernel* prio = priority_matmul_kernel(DType::f16, 1024, 768, 768);
    const MatmulKernel* coarse = nullptr;
    for (const MatmulKernel* k : matmul_kernels()) {
        if (prio && k->w_type == DType::f16 && isa_usable(k->isa) && (!k->available || k->available()) &&
            (!k->supports || k->supports(1024, 768, 768)) && matmul_policy_of(*k, *prio) == MatmulPolicy::fast) {
            coarse = k;
        }
    }
    const char* mode = std::getenv("GLIMPSE_MATMUL_DECISIONS");
    if (!coarse || (mode && std::string(mode) == "fast")) {
        MESSAGE("no coarser f16 kernel here (or the fast policy is on); skipped");
        return;
    }
    MatmulDecisionFile f = file_with(coarse->name);
    f.decisions[0].policy = MatmulPolicy::exact;  // a hand-edited lie
    REQUIRE(install_matmul_decisions(f).is_ok());
    CHECK(select_matmul_kernel(DType::f16, 1024, 768, 768) != coarse);
    clear_installed_matmul_decisions();
}

TEST_CASE("corrupt decision files are refused with the reason") {
    const std::string good = matmul_decisions_to_json(file_with("f16_ref"));
    auto refused = [](const std::string& text, const char* reason) {
        Result<MatmulDecisionFile> r = parse_matmul_decisions(text, "x.json");
        REQUIRE_FALSE(r.is_ok());
        CHECK_MESSAGE(r.status().message().find(reason) != std::string::npos, r.status().message());
        CHECK(r.status().message().find("x.json") != std::string::npos);
    };
    auto replaced = [&](const std::string& from, const std::string& to) {
        std::string s = good;
        const size_t at = s.find(from);
        REQUIRE(at != std::string::npos);
        return s.replace(at, from.size(), to);
    };
    refused("", "not a valid matmul decision file");
    refused(good.substr(0, good.size() / 2), "not a valid matmul decision file");  // truncated
    refused("[1, 2]", "top level must be an object");
    refused(replaced("glimpse-matmul-decisions/1", "glimpse-matmul-decisions/9"), "schema");
    refused(replaced("\"kernel_set\"", "\"kernel_sex\""), "kernel_set");
    refused(replaced("\"threads\": 2", "\"threads\": 0"), "threads");
    refused(replaced("\"threads\": 2", "\"threads\": \"2\""), "threads");
    refused(replaced("\"w_type\": \"f16\"", "\"w_type\": \"f17\""), "unknown weight type 'f17'");
    refused(replaced("\"shape\": \"large\"", "\"shape\": \"huge\""), "shape must be decode, small or large");
    refused(replaced("\"policy\": \"exact\"", "\"policy\": \"maybe\""), "policy must be exact or fast");
    refused(replaced("\"isa\": \"", "\"isa\": \"z80"), "unknown isa");
    // two entries for one (type, class)
    const size_t open = good.find("{\"w_type\"");
    const size_t close = good.find('}', open);
    const std::string entry = good.substr(open, close - open + 1);
    refused(replaced(entry, entry + ", " + entry), "a second decision for f16 large");
}

TEST_CASE("decision files of another CPU, feature set, build or level do not apply here") {
    auto foreign = [](MatmulDecisionFile f, const char* reason) {
        const Status s = check_matmul_decisions_apply_here(f);
        REQUIRE_FALSE(s.is_ok());
        CHECK_MESSAGE(s.message().find(reason) != std::string::npos, s.message());
        CHECK_FALSE(install_matmul_decisions(f).is_ok());
    };
    MatmulDecisionFile f = file_with("f16_ref");
    f.cpu_model = "AMD EPYC 7B13 64-Core Processor (not this one)";
    foreign(f, "another CPU");
    f = file_with("f16_ref");
    f.cpu_features += " imaginary";
    foreign(f, "other CPU features");
    f = file_with("f16_ref");
    f.kernel_set = "0000000000000000";
    foreign(f, "other kernels");
    f = file_with("no_such_kernel__avx2");
    foreign(f, "does not have");
    f = file_with("q8_0_ref");  // a kernel for another weight type than the entry's
    foreign(f, "reads q8_0 weights, not f16");
#if defined(__x86_64__)
    if (cpu_features().best_isa() < Isa::amx) {
        f = file_with("f16_ref");
        f.isa = Isa::amx;
        foreign(f, "does not have");
    }
#endif
    // the file on disk: read_matmul_decisions says which file and why
    const test::TempDir scratch("decisions2");
    const std::string dir = scratch.path.string();
    const std::string path = dir + "/foreign.json";
    f = file_with("f16_ref");
    f.cpu_model = "Some Other CPU";
    REQUIRE(write_matmul_decisions(path, f).is_ok());
    Result<MatmulDecisionFile> r = read_matmul_decisions(path);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message().find(path) != std::string::npos);
    CHECK(r.status().message().find("not for this machine") != std::string::npos);
    std::remove(path.c_str());
}

TEST_CASE("use_matmul_decisions: explicit files must be valid, the default file falls back with a message") {
    const test::TempDir scratch("decisions3");
    const std::string dir = scratch.path.string();
    const char* old_xdg = std::getenv("XDG_CACHE_HOME");
    const std::string saved = old_xdg ? old_xdg : "";
    setenv("XDG_CACHE_HOME", dir.c_str(), 1);
    const std::string def = default_matmul_decisions_path();
    CHECK(def.rfind(dir + "/glimpse/matmul-decisions-", 0) == 0);
    CHECK(def.find(matmul_kernel_set_fingerprint()) != std::string::npos);
    std::vector<std::string> logged;
    auto log = [&](const std::string& m) { logged.push_back(m); };

    // no file at the default location: nothing installed, nothing said
    CHECK(use_matmul_decisions("", log).is_ok());
    CHECK(logged.empty());

    // a corrupt default file: ignored with the reason, built-in choices stay
    const MatmulKernel* builtin = select_matmul_kernel(DType::f16, 1024, 768, 768);
    REQUIRE(write_matmul_decisions(def, file_with("f16_ref")).is_ok());
    write_text(def, "{\"schema\": \"glimpse-matmul-decisions/1\", \"kernel_set\": ");
    CHECK(use_matmul_decisions("", log).is_ok());
    REQUIRE(logged.size() == 1);
    CHECK(logged[0].find("ignoring the kernel decision file") != std::string::npos);
    CHECK(logged[0].find(def) != std::string::npos);
    CHECK(select_matmul_kernel(DType::f16, 1024, 768, 768) == builtin);

    // the same file given explicitly: an error
    CHECK_FALSE(use_matmul_decisions(def, log).is_ok());
    // a missing explicit file: an error; "none": built-in only, even with a valid default file
    CHECK_FALSE(use_matmul_decisions(dir + "/missing.json", log).is_ok());

    if (const MatmulKernel* alt = alternative_f16_kernel()) {
        REQUIRE(write_matmul_decisions(def, file_with(alt->name)).is_ok());
        CHECK(use_matmul_decisions("", log).is_ok());
        CHECK(select_matmul_kernel(DType::f16, 1024, 768, 768) == alt);
        CHECK(use_matmul_decisions("none", log).is_ok());
        CHECK(select_matmul_kernel(DType::f16, 1024, 768, 768) == builtin);
    }
    clear_installed_matmul_decisions();
    std::remove(def.c_str());
    if (old_xdg) setenv("XDG_CACHE_HOME", saved.c_str(), 1);
    else unsetenv("XDG_CACHE_HOME");
    // a relative XDG_CACHE_HOME is invalid per the XDG spec: HOME's .cache is used instead
    setenv("XDG_CACHE_HOME", "relative/cache", 1);
    const char* home = std::getenv("HOME");
    if (home && home[0] == '/') CHECK(default_matmul_decisions_path().rfind(std::string(home) + "/.cache/glimpse/", 0) == 0);
    if (old_xdg) setenv("XDG_CACHE_HOME", saved.c_str(), 1);
    else unsetenv("XDG_CACHE_HOME");
}
