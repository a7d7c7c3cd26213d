// Which matmul kernels the dispatcher picks on this CPU.
//
// On aarch64 the expected level comes from the environment: targets/test-aarch64.sh
// runs the suite under qemu-aarch64 with -cpu cortex-a72 (Raspberry Pi 4: NEON only),
// cortex-a76 (Pi 5 / Jetson Orin class: dotprod) and max (i8mm), and sets
// GLIMPSE_EXPECT_ISA=neon|dotprod|i8mm to match. Detection must find exactly that level
// and the q8_0/q4_0 layers must run on that level's kernels (f16 weights have NEON
// kernels only). Without the variable the expected level comes from the kernel's own
// report of the CPU (/proc/cpuinfo flags, read independently of glimpse's cpuid code),
// capped by GLIMPSE_MAX_ISA. On x86 (and on ARM without the variable) the test checks the ladder
// for consistency with the kernel list: at every level up to the detected one, the
// choice is an eligible kernel of that level or below, none better is left out, and
// raising the level never picks a worse kernel.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "targets/cpu_features.h"
#include "test_util.h"

using namespace glimpse;

namespace {

// Shapes of a SmolLM2 decoder layer: decode (M = 1) and a prefill chunk (M = 64).
constexpr int64_t kK = 576, kN = 1536;
const DType kTypes[] = {DType::q8_0, DType::q4_0, DType::f16};
const int64_t kMs[] = {1, 64};

bool eligible(const MatmulKernel& k, DType t, int64_t M) {
    return k.w_type == t && isa_usable(k.isa) && (!k.supports || k.supports(M, kK, kN)) && (!k.available || k.available());
}

std::vector<Isa> ladder_up_to(Isa top) {
    const bool arm = top == Isa::neon || top == Isa::dotprod || top == Isa::i8mm;
    std::vector<Isa> v{Isa::scalar};
    for (Isa l : arm ? std::vector<Isa>{Isa::neon, Isa::dotprod, Isa::i8mm} : std::vector<Isa>{Isa::avx2, Isa::avx512, Isa::amx}) {
        if (top != Isa::scalar && l <= top) v.push_back(l);
    }
    return v;
}

// The level the kernel's CPU report supports (Linux /proc/cpuinfo "flags" on x86,
// "Features" on aarch64), with the same requirements as CpuFeatures::best_isa(), then the
// GLIMPSE_MAX_ISA cap. Returns false when /proc/cpuinfo cannot be read.
bool expected_level_from_proc_cpuinfo(Isa* out) {
    std::ifstream in("/proc/cpuinfo");
    if (!in) return false;
    std::set<std::string> flags;
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0) {
            std::istringstream words(line.substr(line.find(':') + 1));
            for (std::string w; words >> w;) flags.insert(w);
            break;
        }
    }
    auto has = [&](std::initializer_list<const char*> names) {
        for (const char* n : names) if (!flags.count(n)) return false;
        return true;
    };
    Isa level = Isa::scalar;
#if defined(__x86_64__)
    if (has({"avx2", "fma", "f16c"})) {
        level = Isa::avx2;
        if (has({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"})) {
            level = has({"amx_tile", "amx_int8"}) ? Isa::amx : Isa::avx512;
        }
    }
#elif defined(__aarch64__)
    if (has({"asimd"})) {
        level = Isa::neon;
        if (has({"asimddp"})) level = has({"i8mm"}) ? Isa::i8mm : Isa::dotprod;
    }
#endif
    if (const char* cap = std::getenv("GLIMPSE_MAX_ISA")) {
        auto c = isa_from_name(cap);
        if (c.is_ok() && *c < level) level = *c;
    }
    *out = level;
    return true;
}

struct SavedIsa {
    Isa saved = active_isa();
    ~SavedIsa() { set_active_isa_for_testing(saved); }
};

}  // namespace

TEST_CASE("the detected level is the one the test run expects") {
    const CpuFeatures& f = cpu_features();
    const char* expect = std::getenv("GLIMPSE_EXPECT_ISA");
    MESSAGE("cpu: " << f.describe() << "; active " << std::string(isa_name(active_isa()))
                    << "; expected " << std::string(expect ? expect : "(not set)"));
    if (!expect || !*expect) {
        // qemu-user shows the host's /proc/cpuinfo, so emulated runs must set the variable.
        REQUIRE_FALSE_MESSAGE(test::emulated(), "emulated runs must set GLIMPSE_EXPECT_ISA");
        Isa from_proc = Isa::scalar;
        if (!expected_level_from_proc_cpuinfo(&from_proc)) {
            MESSAGE("no /proc/cpuinfo: detected level not checked");
            return;
        }
        MESSAGE("/proc/cpuinfo says " << std::string(isa_name(from_proc)));
        CHECK(active_isa() == from_proc);
        return;
    }
    auto want = isa_from_name(expect);
    REQUIRE_MESSAGE(want.is_ok(), "GLIMPSE_EXPECT_ISA=" << std::string(expect));
    CHECK(active_isa() == *want);
#if defined(__aarch64__)
    CHECK(f.neon);
    CHECK(f.dotprod == (*want >= Isa::dotprod));
    CHECK(f.i8mm == (*want >= Isa::i8mm));
#endif
}

TEST_CASE("every selection is the best eligible kernel, and the ladder never goes down") {
    SavedIsa restore;
    for (DType t : kTypes) {
        for (int64_t M : kMs) {
            int last_priority = -1000000;
            for (Isa level : ladder_up_to(restore.saved)) {
                set_active_isa_for_testing(level);
                const MatmulKernel* k = select_matmul_kernel(t, M, kK, kN);
                REQUIRE_MESSAGE(k != nullptr, std::string(dtype_name(t)) << " M=" << M << " at " << std::string(isa_name(level)));
                INFO(std::string(dtype_name(t)) << " M=" << M << " at " << std::string(isa_name(level)) << ": " << std::string(k->name));
                CHECK(eligible(*k, t, M));
                CHECK(k->isa <= level);
                for (const MatmulKernel* other : matmul_kernels()) {
                    if (other != k && eligible(*other, t, M)) CHECK_MESSAGE(other->priority <= k->priority, std::string(other->name));
                }
                CHECK(k->priority >= last_priority);
                last_priority = k->priority;
            }
        }
    }
}

TEST_CASE("quantized layers run on the kernels of the CPU's level") {
    const Isa active = active_isa();
    for (DType t : kTypes) {
        for (int64_t M : kMs) {
            const MatmulKernel* k = select_matmul_kernel(t, M, kK, kN);
            REQUIRE(k != nullptr);
            MESSAGE(std::string(dtype_name(t)) << " M=" << M << " -> " << std::string(k->name) << " (" << std::string(isa_name(k->isa)) << ")");
            // The choice is the eligible kernel of highest priority (from the list, not from
            // names): priorities encode measured speed, so a kernel of a lower level may win
            // (on AMX CPUs the AVX-512 VNNI quantized kernels outrun the AMX-INT8 ones).
            int best = -1;
            for (const MatmulKernel* other : matmul_kernels()) {
                if (eligible(*other, t, M) && other->priority > best) best = other->priority;
            }
            CHECK_MESSAGE(k->priority == best, std::string(k->name) << " has priority " << k->priority
                                                                    << ", an eligible kernel has " << best);
            CHECK(isa_usable(k->isa));
        }
    }
#if defined(__aarch64__)
    // glimpse's own ARM kernels (ops/matmul_*_{neon,dotprod,i8mm}.cpp): every level has
    // q8_0 and q4_0 kernels, f16 runs on NEON everywhere.
    for (DType t : {DType::q8_0, DType::q4_0}) {
        for (int64_t M : kMs) {
            const MatmulKernel* k = select_matmul_kernel(t, M, kK, kN);
            CHECK_MESSAGE(k->isa == active, std::string(dtype_name(t)) << " M=" << M << ": " << std::string(k->name));
        }
    }
    for (int64_t M : kMs) CHECK(select_matmul_kernel(DType::f16, M, kK, kN)->isa == Isa::neon);
    if (active == Isa::neon) {
        // A Pi 4 must never be handed a dotprod or i8mm kernel, for any type or shape.
        for (DType t : {DType::f32, DType::f16, DType::bf16, DType::q8_0, DType::q4_0}) {
            for (int64_t M : {1, 2, 7, 64, 512}) {
                const MatmulKernel* k = select_matmul_kernel(t, M, kK, kN);
                if (k) CHECK_MESSAGE(k->isa <= Isa::neon, std::string(k->name));
            }
        }
    }
#endif
}
