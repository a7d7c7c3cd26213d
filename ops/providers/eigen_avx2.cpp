// Eigen matmul provider for x86-64 (compiled with AVX2 + FMA): see eigen_impl.h.
#if defined(GLIMPSE_HAVE_EIGEN)
#define GLIMPSE_EIGEN_ISA Isa::avx2
#define GLIMPSE_EIGEN_SUFFIX avx2
#include "ops/providers/eigen_impl.h"
#endif
