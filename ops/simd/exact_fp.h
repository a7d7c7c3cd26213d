// GLIMPSE_SIMD_EXACT_BEGIN / _END bracket the width-generic algorithm headers
// (ops/simd/*.h): inside, arithmetic is exactly as written — explicit FMAs only, no
// contraction of a·b + c into a fused multiply-add — so a kernel rounds the same way
// whatever the compiler's -ffp-contract default for the unit that includes it.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#define GLIMPSE_SIMD_EXACT_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"fp-contract=off\")")
#define GLIMPSE_SIMD_EXACT_END _Pragma("GCC pop_options")
#elif defined(__clang__)
#define GLIMPSE_SIMD_EXACT_BEGIN _Pragma("clang fp contract(off)")
#define GLIMPSE_SIMD_EXACT_END
#else
#define GLIMPSE_SIMD_EXACT_BEGIN
#define GLIMPSE_SIMD_EXACT_END
#endif
