#include "ops/image_resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

// Bit-exactness with llama.cpp depends on every float operation being rounded on its own:
// a fused multiply-add would change results on rounding boundaries. No contraction from here
// on (runtime/fp_contract_off.h, included after every other header).
#include "runtime/fp_contract_off.h"

namespace glimpse {

namespace {

Status check_image(const ImageU8& img, const char* what) {
    GLIMPSE_CHECK_OR_RETURN(img.width > 0 && img.height > 0, invalid_argument, "%s: source image is %dx%d", what,
                            img.width, img.height);
    GLIMPSE_CHECK_OR_RETURN(img.rgb.size() == img.n_bytes(), invalid_argument,
                            "%s: source image is %dx%d but holds %zu bytes (expected %zu)", what, img.width,
                            img.height, img.rgb.size(), img.n_bytes());
    return Status::ok();
}

ImageU8 make_image(int w, int h) {
    ImageU8 img;
    img.width = w;
    img.height = h;
    img.rgb.resize(img.n_bytes());
    return img;
}

inline int clamp_index(int v, int hi) { return std::max(0, std::min(v, hi)); }

// Cubic through the samples at offsets -1, 0, 1, 2 evaluated at t in [0,1), with the exact
// operation order and precisions of llama.cpp: the coefficients are formed in double from float
// differences, stored as float, and the polynomial is evaluated in float.
inline float cubic_lagrange(float pm1, float p0, float p1, float p2, float t) {
    const float d0 = pm1 - p0;
    const float d2 = p1 - p0;
    const float d3 = p2 - p0;
    const float a0 = p0;
    const float a1 = static_cast<float>(-1.0 / 3 * d0 + d2 - 1.0 / 6 * d3);
    const float a2 = static_cast<float>(1.0 / 2 * d0 + 1.0 / 2 * d2);
    const float a3 = static_cast<float>(-1.0 / 6 * d0 - 1.0 / 2 * d2 + 1.0 / 6 * d3);
    return a0 + a1 * t + a2 * t * t + a3 * t * t * t;
}

}  // namespace

Status check_resize_size(int w, int h, const char* who, const char* what) {
    GLIMPSE_CHECK_OR_RETURN(w > 0 && h > 0 && w <= kResizeMaxSide && h <= kResizeMaxSide &&
                                int64_t{w} * h <= kResizeMaxPixels,
                            invalid_argument, "%s: %s size %dx%d outside 1..%d per side, %lld pixels", who, what, w, h,
                            kResizeMaxSide, static_cast<long long>(kResizeMaxPixels));
    return Status::ok();
}

const char* resize_filter_name(ResizeFilter filter) {
    switch (filter) {
        case ResizeFilter::bilinear: return "bilinear";
        case ResizeFilter::bicubic: return "bicubic";
    }
    return "unknown";
}

Result<ImageU8> resize_bilinear_u8(const ImageU8& src, int out_w, int out_h) {
    GLIMPSE_RETURN_IF_ERROR(check_image(src, "resize_bilinear_u8"));
    GLIMPSE_RETURN_IF_ERROR(check_resize_size(out_w, out_h, "resize_bilinear_u8", "output"));
    const int w = src.width, h = src.height;
    ImageU8 dst = make_image(out_w, out_h);

    const float x_ratio = out_w > 1 ? static_cast<float>(w - 1) / (out_w - 1) : 0.0f;
    const float y_ratio = out_h > 1 ? static_cast<float>(h - 1) / (out_h - 1) : 0.0f;

    // Per-column sample positions: x0, x1 and the fraction, shared by all rows.
    std::vector<int> col_x0(out_w), col_x1(out_w);
    std::vector<float> col_frac(out_w);
    for (int x = 0; x < out_w; ++x) {
        const float px = x * x_ratio;
        const int x0 = std::min(static_cast<int>(px), w - 1);
        col_x0[x] = x0;
        col_x1[x] = std::min(x0 + 1, w - 1);
        col_frac[x] = px - x0;
    }
    for (int y = 0; y < out_h; ++y) {
        const float py = y * y_ratio;
        const int y0 = std::min(static_cast<int>(py), h - 1);
        const int y1 = std::min(y0 + 1, h - 1);
        const float fy = py - y0;
        for (int x = 0; x < out_w; ++x) {
            const uint8_t* p00 = src.pixel(col_x0[x], y0);
            const uint8_t* p10 = src.pixel(col_x1[x], y0);
            const uint8_t* p01 = src.pixel(col_x0[x], y1);
            const uint8_t* p11 = src.pixel(col_x1[x], y1);
            const float fx = col_frac[x];
            uint8_t* out = dst.pixel(x, y);
            for (int c = 0; c < 3; ++c) {
                const float top = p00[c] + (static_cast<float>(p10[c]) - p00[c]) * fx;
                const float bottom = p01[c] + (static_cast<float>(p11[c]) - p01[c]) * fx;
                out[c] = static_cast<uint8_t>(top + (bottom - top) * fy);
            }
        }
    }
    return dst;
}

Result<ImageU8> resize_bicubic_u8(const ImageU8& src, int out_w, int out_h) {
    GLIMPSE_RETURN_IF_ERROR(check_image(src, "resize_bicubic_u8"));
    GLIMPSE_RETURN_IF_ERROR(check_resize_size(out_w, out_h, "resize_bicubic_u8", "output"));
    const int w = src.width, h = src.height;
    ImageU8 dst = make_image(out_w, out_h);

    const float tx = static_cast<float>(w) / static_cast<float>(out_w);
    const float ty = static_cast<float>(h) / static_cast<float>(out_h);

    // Per-column: the 4 clamped source columns (offsets -1..2) and the fraction.
    std::vector<std::array<int, 4>> col_idx(out_w);
    std::vector<float> col_frac(out_w);
    for (int j = 0; j < out_w; ++j) {
        const float sx = tx * static_cast<float>(j);
        const int x = static_cast<int>(sx);
        col_frac[j] = sx - static_cast<float>(x);
        for (int t = 0; t < 4; ++t) col_idx[j][t] = clamp_index(x - 1 + t, w - 1);
    }
    for (int i = 0; i < out_h; ++i) {
        const float sy = ty * static_cast<float>(i);
        const int y = static_cast<int>(sy);
        const float fy = sy - static_cast<float>(y);
        const uint8_t* rows[4];
        for (int t = 0; t < 4; ++t) rows[t] = src.pixel(0, clamp_index(y - 1 + t, h - 1));
        for (int j = 0; j < out_w; ++j) {
            const std::array<int, 4>& cx = col_idx[j];
            const float fx = col_frac[j];
            uint8_t* out = dst.pixel(j, i);
            for (int c = 0; c < 3; ++c) {
                float col[4];
                for (int t = 0; t < 4; ++t) {
                    const uint8_t* row = rows[t];
                    col[t] = cubic_lagrange(row[cx[0] * 3 + c], row[cx[1] * 3 + c], row[cx[2] * 3 + c],
                                            row[cx[3] * 3 + c], fx);
                }
                const float v = cubic_lagrange(col[0], col[1], col[2], col[3], fy);
                out[c] = static_cast<uint8_t>(std::min(std::max(std::round(v), 0.0f), 255.0f));
            }
        }
    }
    return dst;
}

Result<ImageU8> resize_u8(const ImageU8& src, int out_w, int out_h, ResizeFilter filter) {
    if (out_w == src.width && out_h == src.height) {
        GLIMPSE_RETURN_IF_ERROR(check_image(src, "resize_u8"));
        return src;
    }
    switch (filter) {
        case ResizeFilter::bilinear: return resize_bilinear_u8(src, out_w, out_h);
        case ResizeFilter::bicubic: return resize_bicubic_u8(src, out_w, out_h);
    }
    return Status::error(StatusCode::invalid_argument, "resize_u8: unknown filter %d", static_cast<int>(filter));
}

PadFit fit_with_padding(int src_w, int src_h, int canvas_w, int canvas_h) {
    PadFit fit;
    if (src_w <= 0 || src_h <= 0 || canvas_w <= 0 || canvas_h <= 0) return fit;
    const float scale_w = static_cast<float>(canvas_w) / src_w;
    const float scale_h = static_cast<float>(canvas_h) / src_h;
    const float scale = std::min(scale_w, scale_h);
    fit.resized_w = std::min(static_cast<int>(std::ceil(src_w * scale)), canvas_w);
    fit.resized_h = std::min(static_cast<int>(std::ceil(src_h * scale)), canvas_h);
    fit.offset_x = (canvas_w - fit.resized_w) / 2;
    fit.offset_y = (canvas_h - fit.resized_h) / 2;
    return fit;
}

Result<ImageU8> resize_with_padding_u8(const ImageU8& src, int canvas_w, int canvas_h, ResizeFilter filter,
                                       std::array<uint8_t, 3> pad_rgb) {
    GLIMPSE_RETURN_IF_ERROR(check_image(src, "resize_with_padding_u8"));
    GLIMPSE_RETURN_IF_ERROR(check_resize_size(canvas_w, canvas_h, "resize_with_padding_u8", "output"));
    if (canvas_w == src.width && canvas_h == src.height) return src;

    const PadFit fit = fit_with_padding(src.width, src.height, canvas_w, canvas_h);
    GLIMPSE_ASSIGN_OR_RETURN(ImageU8 resized, resize_u8(src, fit.resized_w, fit.resized_h, filter));

    ImageU8 canvas = make_image(canvas_w, canvas_h);
    for (size_t i = 0; i < canvas.rgb.size(); i += 3) {
        canvas.rgb[i + 0] = pad_rgb[0];
        canvas.rgb[i + 1] = pad_rgb[1];
        canvas.rgb[i + 2] = pad_rgb[2];
    }
    // fit guarantees offset >= 0 and offset + resized <= canvas on both axes.
    for (int y = 0; y < resized.height; ++y) {
        std::memcpy(canvas.pixel(fit.offset_x, fit.offset_y + y), resized.pixel(0, y),
                    static_cast<size_t>(resized.width) * 3);
    }
    return canvas;
}

Result<ImageU8> crop_u8(const ImageU8& src, int x, int y, int w, int h) {
    GLIMPSE_RETURN_IF_ERROR(check_image(src, "crop_u8"));
    GLIMPSE_CHECK_OR_RETURN(x >= 0 && y >= 0 && w > 0 && h > 0 && x <= src.width - w && y <= src.height - h,
                            invalid_argument, "crop_u8: window %dx%d at (%d,%d) is not inside the %dx%d image", w, h,
                            x, y, src.width, src.height);
    ImageU8 dst = make_image(w, h);
    for (int row = 0; row < h; ++row) {
        std::memcpy(dst.pixel(0, row), src.pixel(x, y + row), static_cast<size_t>(w) * 3);
    }
    return dst;
}

Status normalize_to_planar_f32(const ImageU8& src, const std::array<float, 3>& mean, const std::array<float, 3>& std,
                               float* out) {
    GLIMPSE_RETURN_IF_ERROR(check_image(src, "normalize_to_planar_f32"));
    GLIMPSE_CHECK_OR_RETURN(out != nullptr, invalid_argument, "normalize_to_planar_f32: null output");
    GLIMPSE_CHECK_OR_RETURN(std[0] != 0.0f && std[1] != 0.0f && std[2] != 0.0f, invalid_argument,
                            "normalize_to_planar_f32: std has a zero entry (%g, %g, %g)", std[0], std[1], std[2]);
    const size_t plane = static_cast<size_t>(src.width) * static_cast<size_t>(src.height);
    for (int c = 0; c < 3; ++c) {
        float* dst = out + c * plane;
        const uint8_t* p = src.rgb.data() + c;
        for (size_t i = 0; i < plane; ++i) {
            dst[i] = (static_cast<float>(p[i * 3]) / 255.0f - mean[c]) / std[c];
        }
    }
    return Status::ok();
}

}  // namespace glimpse
