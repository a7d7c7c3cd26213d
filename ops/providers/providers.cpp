#include "ops/providers/providers.h"

#include <cstring>

#if defined(GLIMPSE_HAVE_EIGEN)
#include <Eigen/Core>  // version macros only
#endif

namespace glimpse {

#if defined(GLIMPSE_HAVE_ONEDNN)
std::string onednn_describe(const void* packed);
std::string onednn_version();
#endif
#if defined(GLIMPSE_HAVE_XNNPACK)
std::string xnnpack_describe(const void* packed);
#endif

namespace {
bool starts_with(const char* s, const char* prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }
}  // namespace

bool is_matmul_provider(const MatmulKernel& k) {
    return starts_with(k.name, "onednn_") || starts_with(k.name, "xnnpack_") || starts_with(k.name, "eigen_");
}

std::string matmul_provider_impl(const MatmulKernel& k, const void* packed) {
#if defined(GLIMPSE_HAVE_ONEDNN)
    if (starts_with(k.name, "onednn_") && packed) return onednn_describe(packed);
#endif
#if defined(GLIMPSE_HAVE_XNNPACK)
    if (starts_with(k.name, "xnnpack_") && packed) return xnnpack_describe(packed);
#endif
    if (starts_with(k.name, "eigen_")) {
        const char* isa = std::strrchr(k.name, '_');
        return std::string("eigen gebp/gemv (") + (isa ? isa + 1 : "?") + "), column slices per thread";
    }
    return "";
}

std::string matmul_provider_versions() {
    std::string s;
    auto add = [&](const std::string& part) { s += (s.empty() ? "" : "; ") + part; };
#if defined(GLIMPSE_HAVE_ONEDNN)
    add(onednn_version());
#endif
#if defined(GLIMPSE_HAVE_XNNPACK)
    add("xnnpack (Debian 0.0~git20220216 api)");
#endif
#if defined(GLIMPSE_HAVE_EIGEN)
    add("eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
        std::to_string(EIGEN_MINOR_VERSION));
#endif
    return s.empty() ? "none" : s;
}

bool matmul_provider_allocates_in_run(const MatmulKernel& k) { return starts_with(k.name, "onednn_"); }

}  // namespace glimpse
