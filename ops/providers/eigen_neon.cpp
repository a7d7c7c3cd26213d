// Eigen matmul provider for aarch64 (NEON is the armv8-a baseline): see eigen_impl.h.
#if defined(GLIMPSE_HAVE_EIGEN)
#define GLIMPSE_EIGEN_ISA Isa::neon
#define GLIMPSE_EIGEN_SUFFIX neon
#include "ops/providers/eigen_impl.h"
#endif
