// Included last by a translation unit whose float arithmetic must round every operation on
// its own (bit-exactness with llama.cpp's image preprocessing: ops/image_resize.cpp,
// models/image_preprocess.cpp): a fused multiply-add would change results on rounding
// boundaries. The pragma holds for the rest of the including unit. GCC contracts only in
// GNU mode (the project builds ISO C++20, where contraction is already off); clang
// contracts by default. The width-generic SIMD headers use ops/simd/exact_fp.h instead,
// which scopes it to the header.
#pragma once

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__)
#pragma GCC optimize("fp-contract=off")
#endif
