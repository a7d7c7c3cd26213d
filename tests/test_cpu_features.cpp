// CPU feature detection: consistency with the compiler's own detection (GCC's
// __builtin_cpu_supports, which reads cpuid independently) and the
// GLIMPSE_MAX_ISA cap.
#include <doctest/doctest.h>

#include <cstdlib>

#include "targets/cpu_features.h"

using namespace glimpse;

TEST_CASE("detected features agree with the compiler's cpuid reading") {
    const CpuFeatures& f = cpu_features();
    MESSAGE("cpu: " << f.describe() << "; best " << std::string(isa_name(f.best_isa())) << ", active " << std::string(isa_name(active_isa())));
#if defined(__x86_64__)
    __builtin_cpu_init();
    CHECK(f.avx2 == static_cast<bool>(__builtin_cpu_supports("avx2")));
    CHECK(f.fma == static_cast<bool>(__builtin_cpu_supports("fma")));
    CHECK(f.avx512f == static_cast<bool>(__builtin_cpu_supports("avx512f")));
    CHECK(f.avx512bw == static_cast<bool>(__builtin_cpu_supports("avx512bw")));
    CHECK(f.avx512vnni == static_cast<bool>(__builtin_cpu_supports("avx512vnni")));
    CHECK_FALSE(f.neon);
#elif defined(__aarch64__)
    CHECK(f.neon);
    CHECK_FALSE(f.avx2);
#endif
}

TEST_CASE("GLIMPSE_MAX_ISA caps the active level; names round-trip") {
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::amx, Isa::neon, Isa::dotprod, Isa::i8mm}) {
        auto back = isa_from_name(isa_name(isa));
        REQUIRE(back.is_ok());
        CHECK(*back == isa);
    }
    CHECK_FALSE(isa_from_name("sse9").is_ok());
    CHECK(cpu_isa_cap_status().is_ok());
    const Isa best = cpu_features().best_isa();
    if (const char* cap = std::getenv("GLIMPSE_MAX_ISA")) {
        auto want = isa_from_name(cap);
        REQUIRE(want.is_ok());
        CHECK(active_isa() <= best);
        if (*want <= best) CHECK(active_isa() == *want);
    } else {
        CHECK(active_isa() == best);
    }
    CHECK(isa_usable(Isa::scalar));
}
