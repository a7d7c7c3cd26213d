// CPU feature detection and the instruction-set ladder kernels are chosen from.
//
// Detection runs once: cpuid + xgetbv on x86 (a feature counts only if the OS
// saves its register state), getauxval(AT_HWCAP/AT_HWCAP2) on Linux/aarch64.
// GLIMPSE_MAX_ISA=scalar|avx2|avx512|amx|neon|dotprod|i8mm caps the level so one
// machine can exercise every kernel path.
#pragma once

#include <string>

#include "runtime/status.h"

namespace glimpse {

// Ordered within each architecture: a level implies every lower one.
enum class Isa : int {
    scalar = 0,
    // x86-64
    avx2 = 10,    // AVX2 + FMA + F16C
    avx512 = 11,  // AVX-512 F/BW/VL/DQ + VNNI (the Ice Lake / Zen 4 / Sapphire Rapids set)
    amx = 12,     // AMX-INT8/BF16 tiles (with OS permission)
    // aarch64
    neon = 20,     // Advanced SIMD (every aarch64 core; Raspberry Pi 4)
    dotprod = 21,  // SDOT/UDOT (Pi 5, Jetson Orin)
    i8mm = 22,     // SMMLA (Armv8.6+)
};

const char* isa_name(Isa isa);
Result<Isa> isa_from_name(const std::string& name);

struct CpuFeatures {
    // x86
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false, avx512bf16 = false;
    bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
    // aarch64
    bool neon = false, dotprod = false, i8mm = false, fp16 = false;

    Isa best_isa() const;  // highest level fully supported
    std::string describe() const;
};

// What this CPU supports (detected once).
const CpuFeatures& cpu_features();

// The level kernels are chosen for: the detected best, lowered to GLIMPSE_MAX_ISA
// when that is set. An unknown GLIMPSE_MAX_ISA value is reported by
// cpu_isa_cap_status() and ignored.
Isa active_isa();
Status cpu_isa_cap_status();

// Whether a kernel needing `required` may run at the active level: same
// architecture and required <= active.
bool isa_usable(Isa required);

// For tests: override the active level (must be supported by the CPU).
void set_active_isa_for_testing(Isa isa);

}  // namespace glimpse
