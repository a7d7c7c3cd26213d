// Image resampling and normalization kernels on 8-bit RGB, reproducing llama.cpp's mtmd image
// helpers bit for bit (same sampling grid, same float/double arithmetic, same rounding), so that
// preprocessing matches llama.cpp's vision-encoder inputs exactly. They know no model: the
// projector-specific rules (which filter, canvas size, padding colour) live in models/.
//
// All images are ImageU8: (H,W,3) row-major RGB. Functions validate their arguments and return
// invalid_argument instead of reading out of bounds.
#pragma once

#include "runtime/image.h"
#include "runtime/status.h"

#include <array>
#include <cstdint>

namespace glimpse {

enum class ResizeFilter {
    bilinear,  // resize_bilinear_u8
    bicubic,   // resize_bicubic_u8
};

const char* resize_filter_name(ResizeFilter filter);

// Largest output side a resampler accepts (a canvas may be larger than any input image).
inline constexpr int kResizeMaxSide = 1 << 16;
inline constexpr int64_t kResizeMaxPixels = int64_t{1} << 30;
// invalid_argument unless 1 <= w, h <= kResizeMaxSide and w·h <= kResizeMaxPixels; the message
// reads "<who>: <what> size WxH outside ..." (what: "output", "image").
Status check_resize_size(int w, int h, const char* who, const char* what);

// src:(H,W,3) -> (out_h,out_w,3). llama.cpp's bilinear stretch: corner-aligned sampling
// (output x maps to x*(W-1)/(out_w-1); a 1-pixel output side samples source index 0),
// interpolation in float, result truncated toward zero (not rounded).
Result<ImageU8> resize_bilinear_u8(const ImageU8& src, int out_w, int out_h);

// src:(H,W,3) -> (out_h,out_w,3). llama.cpp's "bicubic": output (j,i) samples the source at
// (j*W/out_w, i*H/out_h) (top-left aligned, no half-pixel shift); each axis is interpolated with
// the cubic through the 4 neighbouring samples at offsets -1,0,1,2 (Lagrange form, edges clamped),
// horizontally first then vertically, in float with double-precision coefficients; the result
// is rounded to nearest and clamped to [0,255].
Result<ImageU8> resize_bicubic_u8(const ImageU8& src, int out_w, int out_h);

// Dispatches on `filter`. When (out_w,out_h) equals the source size the image is copied
// unchanged, as llama.cpp does before choosing a filter.
Result<ImageU8> resize_u8(const ImageU8& src, int out_w, int out_h, ResizeFilter filter);

// Where an aspect-preserving resize places an src_w x src_h image inside a canvas_w x canvas_h
// canvas (llama.cpp's default "ceil" padding): s = min(canvas_w/src_w, canvas_h/src_h) in float,
// resized = min(ceil(src*s), canvas) per side, offset = floor((canvas - resized)/2).
// Pure geometry; needs no pixels. Preconditions: all four sizes > 0 (else returns zeros).
struct PadFit {
    int resized_w = 0;
    int resized_h = 0;
    int offset_x = 0;
    int offset_y = 0;
};
PadFit fit_with_padding(int src_w, int src_h, int canvas_w, int canvas_h);

// src:(H,W,3) -> (canvas_h,canvas_w,3): resize with `filter` to the fit_with_padding size and
// paste it at the fit offset on a canvas filled with pad_rgb. A source already of canvas size
// is copied unchanged.
Result<ImageU8> resize_with_padding_u8(const ImageU8& src, int canvas_w, int canvas_h, ResizeFilter filter,
                                       std::array<uint8_t, 3> pad_rgb);

// src:(H,W,3) -> (h,w,3): the window at (x,y); it must lie inside src.
Result<ImageU8> crop_u8(const ImageU8& src, int x, int y, int w, int h);

// src:(H,W,3) u8 -> out:(3,H,W) f32 planar: out[c][y][x] = (src[y][x][c]/255 - mean[c]) / std[c],
// evaluated in float in that order (division, not multiplication by a reciprocal).
// `out` must hold 3*H*W floats. std[c] must be non-zero.
Status normalize_to_planar_f32(const ImageU8& src, const std::array<float, 3>& mean, const std::array<float, 3>& std,
                               float* out);

}  // namespace glimpse
