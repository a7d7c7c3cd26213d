// Image-side ops of vision encoders.
#pragma once

#include <cstdint>

#include "runtime/dtype.h"
#include "runtime/threadpool.h"

namespace glimpse {

// Patch extraction for a non-overlapping patch convolution (stride = kernel = P):
//   img:(3,H,W) planar f32 -> patches:(N, 3·P·P), N = (H/P)·(W/P) in row-major
//   order, each row ordered (channel, ky, kx) — the row layout of a GGUF patch
//   kernel with ne = [P,P,3,C] — so the convolution is patches · Wᵀ.
void im2col_patches_ref(const float* img, int64_t H, int64_t W, int64_t P, float* patches, ThreadPool* pool);
// The same, with the patches optionally rounded to f16 as ggml's conv_2d stores them
// (its im2col buffer is f16), so the patch embedding matches llama.cpp's.
void im2col_patches(const float* img, int64_t H, int64_t W, int64_t P, bool round_to_f16, float* patches,
                    ThreadPool* pool);

// Pixel shuffle / patch merge (Idefics3 connector, llama.cpp's build_patch_merge_permute):
//   x:(h·w, C) row-major grid -> y:((h/s)·(w/s), s·s·C)
//   y[(by·(w/s) + bx)][(i·s + j)·C + c] = x[((by·s + i)·w + bx·s + j)][c]
// h and w must be multiples of s.
void pixel_shuffle_ref(const float* x, int64_t h, int64_t w, int64_t C, int64_t s, float* y);

}  // namespace glimpse
