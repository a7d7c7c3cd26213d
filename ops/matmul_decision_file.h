// Matmul kernel decisions measured on the user's own CPU (`glimpse tune`), stored in a
// small JSON file and installed ahead of the built-in table (ops/matmul_decisions.inc).
//
//   {"schema": "glimpse-matmul-decisions/1",
//    "kernel_set": "9f0c2a17d4e8b355",        // matmul_kernel_set_fingerprint() of the writer
//    "cpu_model": "AMD EPYC 7B13",            // matmul_decisions_cpu_model()
//    "cpu_features": "avx2 fma f16c",         // CpuFeatures::describe()
//    "isa": "avx2", "threads": 2, "created": "2026-12-06T15:40:00Z",
//    "decisions": [{"w_type": "f16", "shape": "large", "kernel": "f16_f16_gemm__avx2",
//                   "policy": "exact", "ms": 41.2, "runner_up": "onednn_f32_f16w__avx2",
//                   "runner_up_ms": 47.9}, ...]}
//
// A file is only used on the machine and build it was measured with: another CPU model or
// feature set, or another set of compiled kernels (a different glimpse build: kernels
// added, removed or re-prioritised), makes it foreign, and it is refused as a whole
// (read_matmul_decisions returns the reason; glimpse then logs it and keeps the built-in
// table). The per-user default location is keyed by both, so builds and machines that
// share a home directory do not overwrite each other:
//   $XDG_CACHE_HOME/glimpse/matmul-decisions-<cpu slug>-<kernel set>.json
//   (~/.cache/glimpse/... when XDG_CACHE_HOME is unset or not absolute).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "runtime/status.h"

namespace glimpse {

// The shape classes decisions are made for (ops/matmul_registry.cpp): decode (M_max = 1),
// small (2..127 rows), large (>= 128 rows). Shapes with K·N < 2^16 are never decided.
enum class MatmulShapeClass { tiny, decode, small, large };
MatmulShapeClass matmul_shape_class(int64_t M_max, int64_t K, int64_t N);
const char* matmul_shape_class_name(MatmulShapeClass c);

// exact: the priority choice's numerics class or finer, and run() allocates nothing
// (applied by default); fast: coarser arithmetic or a library that allocates in run()
// (applied only with GLIMPSE_MATMUL_DECISIONS=fast).
enum class MatmulPolicy { exact, fast };
const char* matmul_policy_name(MatmulPolicy p);
// The policy `candidate` needs to replace the priority choice `prioritised` (same weight type).
MatmulPolicy matmul_policy_of(const MatmulKernel& candidate, const MatmulKernel& prioritised);

struct MatmulDecision {
    DType w_type = DType::f32;
    MatmulShapeClass shape = MatmulShapeClass::large;
    std::string kernel;
    MatmulPolicy policy = MatmulPolicy::exact;
    double ms = 0;              // measured time of the model's matrices of this class (informative)
    std::string runner_up;      // the next fastest candidate (informative, may be empty)
    double runner_up_ms = 0;
};

struct MatmulDecisionFile {
    std::string kernel_set;
    std::string cpu_model;
    std::string cpu_features;
    Isa isa = Isa::scalar;  // the active level the decisions were measured at
    int threads = 0;
    std::string created;
    std::vector<MatmulDecision> decisions;
};

// Identity of this build's matmul kernels: FNV-1a over every registered kernel's name,
// ISA, weight type, priority and activations, as 16 hex digits.
std::string matmul_kernel_set_fingerprint();
// The CPU's model name (/proc/cpuinfo "model name", on ARM "CPU implementer/part"), "unknown" if none.
std::string matmul_decisions_cpu_model();
// A MatmulDecisionFile header for this machine and build (no decisions).
MatmulDecisionFile matmul_decisions_for_this_machine(int threads);
// The per-user default path (see above); empty when neither XDG_CACHE_HOME nor HOME is usable.
std::string default_matmul_decisions_path();

std::string matmul_decisions_to_json(const MatmulDecisionFile& file);
// Parses and checks the format: schema, types, known weight types / shape classes / policies /
// ISA names, at most one entry per (weight type, shape class). Does not look at the machine.
Result<MatmulDecisionFile> parse_matmul_decisions(const std::string& text, const std::string& name_for_errors);
// Whether the file was measured on this CPU with this build, and names kernels of this build
// with the weight type it says, usable at the file's level.
Status check_matmul_decisions_apply_here(const MatmulDecisionFile& file);
// Reads, parses and checks a file for this machine (errors name the file and the reason).
Result<MatmulDecisionFile> read_matmul_decisions(const std::string& path);
// Writes via a temporary file renamed over `path` (creating the parent directory).
Status write_matmul_decisions(const std::string& path, const MatmulDecisionFile& file);

// Installs the decisions of a checked file ahead of the built-in table for plans compiled
// from now on (call before loading models); replaces any earlier installed set.
Status install_matmul_decisions(const MatmulDecisionFile& file);
void clear_installed_matmul_decisions();
// The installed decision for (w_type, class) at the active level: false if there is none.
bool installed_matmul_decision(DType w_type, MatmulShapeClass shape, std::string* kernel, MatmulPolicy* policy);

// For a model command (call before loading): `path` if given ("none": the built-in table
// only); else the default per-user file if it exists. An explicit file that is corrupt or
// from another machine or build is an error; a default file like that is ignored, with the
// reason passed to `log`, and the built-in table stays.
Status use_matmul_decisions(const std::string& path, const std::function<void(const std::string&)>& log);

}  // namespace glimpse
