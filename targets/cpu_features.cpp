#include "targets/cpu_features.h"

#include <cstdlib>
#include <mutex>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1 << 10)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#endif

#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace glimpse {
namespace {

bool is_x86_level(Isa isa) { return isa == Isa::avx2 || isa == Isa::avx512 || isa == Isa::amx; }
bool is_arm_level(Isa isa) { return isa == Isa::neon || isa == Isa::dotprod || isa == Isa::i8mm; }

#if defined(__x86_64__)
uint64_t xgetbv0() {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}

bool amx_permitted() {
#if defined(__linux__)
    // Linux requires each process to request the AMX tile-data state (arch_prctl
    // ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18) before using it.
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
    return false;
#endif
}
#endif

CpuFeatures detect() {
    CpuFeatures f;
#if defined(__x86_64__)
    uint32_t a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = c & (1u << 27);
    const bool fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
    const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const bool os_ymm = (xcr0 & 0x6) == 0x6;            // SSE + AVX state
    const bool os_zmm = (xcr0 & 0xe6) == 0xe6;          // + opmask, ZMM_Hi256, Hi16_ZMM
    const bool os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG + XTILEDATA
    uint32_t a7 = 0, b7 = 0, c7 = 0, d7 = 0, a71 = 0, b71 = 0, c71 = 0, d71 = 0;
    __cpuid_count(7, 0, a7, b7, c7, d7);
    __cpuid_count(7, 1, a71, b71, c71, d71);
    f.avx2 = avx && os_ymm && (b7 & (1u << 5));
    f.fma = fma && os_ymm;
    f.f16c = f16c && os_ymm;
    f.avx512f = os_zmm && (b7 & (1u << 16));
    f.avx512dq = os_zmm && (b7 & (1u << 17));
    f.avx512bw = os_zmm && (b7 & (1u << 30));
    f.avx512vl = os_zmm && (b7 & (1u << 31));
    f.avx512vnni = os_zmm && (c7 & (1u << 11));
    f.avx512bf16 = os_zmm && (a71 & (1u << 5));
    const bool amx_cpu = (d7 & (1u << 24)) && (d7 & (1u << 25));
    if (amx_cpu && os_amx && amx_permitted()) {
        f.amx_tile = true;
        f.amx_int8 = d7 & (1u << 25);
        f.amx_bf16 = d7 & (1u << 22);
    }
#elif defined(__aarch64__)
    f.neon = true;  // mandatory on aarch64
#if defined(__linux__)
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    f.dotprod = hw & HWCAP_ASIMDDP;
    f.fp16 = hw & HWCAP_ASIMDHP;
    f.i8mm = hw2 & HWCAP2_I8MM;
#endif
#endif
    return f;
}

std::once_flag g_once;
CpuFeatures g_features;
Isa g_active = Isa::scalar;
Status g_cap_status;

void init() {
    g_features = detect();
    g_active = g_features.best_isa();
    if (const char* cap = std::getenv("GLIMPSE_MAX_ISA")) {
        Result<Isa> want = isa_from_name(cap);
        if (!want.is_ok()) {
            g_cap_status = want.status().with_context("GLIMPSE_MAX_ISA");
        } else if (*want == Isa::scalar) {
            g_active = Isa::scalar;
        } else if ((is_x86_level(*want) && is_x86_level(g_active)) || (is_arm_level(*want) && is_arm_level(g_active))) {
            if (*want < g_active) g_active = *want;
        } else if (g_active != Isa::scalar) {
            g_cap_status = Status::error(StatusCode::invalid_argument,
                                         "GLIMPSE_MAX_ISA=%s names another architecture's level; ignored", cap);
        }
    }
}

}  // namespace

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::scalar: return "scalar";
        case Isa::avx2: return "avx2";
        case Isa::avx512: return "avx512";
        case Isa::amx: return "amx";
        case Isa::neon: return "neon";
        case Isa::dotprod: return "dotprod";
        case Isa::i8mm: return "i8mm";
    }
    return "?";
}

Result<Isa> isa_from_name(const std::string& name) {
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::amx, Isa::neon, Isa::dotprod, Isa::i8mm}) {
        if (name == isa_name(isa)) return isa;
    }
    return Status::error(StatusCode::invalid_argument,
                         "unknown ISA level '%s' (scalar, avx2, avx512, amx, neon, dotprod, i8mm)", name.c_str());
}

Isa CpuFeatures::best_isa() const {
    if (avx2 && fma && f16c) {
        if (avx512f && avx512bw && avx512vl && avx512dq && avx512vnni) {
            return (amx_tile && amx_int8) ? Isa::amx : Isa::avx512;
        }
        return Isa::avx2;
    }
    if (neon) {
        if (dotprod) return i8mm ? Isa::i8mm : Isa::dotprod;
        return Isa::neon;
    }
    return Isa::scalar;
}

std::string CpuFeatures::describe() const {
    std::string s;
    auto add = [&](bool on, const char* name) {
        if (on) s += (s.empty() ? "" : " ") + std::string(name);
    };
    add(avx2, "avx2");
    add(fma, "fma");
    add(f16c, "f16c");
    add(avx512f, "avx512f");
    add(avx512bw, "avx512bw");
    add(avx512vl, "avx512vl");
    add(avx512dq, "avx512dq");
    add(avx512vnni, "avx512vnni");
    add(avx512bf16, "avx512bf16");
    add(amx_int8, "amx-int8");
    add(amx_bf16, "amx-bf16");
    add(neon, "neon");
    add(dotprod, "dotprod");
    add(fp16, "fp16");
    add(i8mm, "i8mm");
    return s.empty() ? "none" : s;
}

const CpuFeatures& cpu_features() {
    std::call_once(g_once, init);
    return g_features;
}

Isa active_isa() {
    std::call_once(g_once, init);
    return g_active;
}

Status cpu_isa_cap_status() {
    std::call_once(g_once, init);
    return g_cap_status;
}

bool isa_usable(Isa required) {
    const Isa active = active_isa();
    if (required == Isa::scalar) return true;
    if (is_x86_level(required)) return is_x86_level(active) && required <= active;
    return is_arm_level(active) && required <= active;
}

void set_active_isa_for_testing(Isa isa) {
    std::call_once(g_once, init);
    g_active = isa;
}

}  // namespace glimpse
