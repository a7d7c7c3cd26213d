#include "ops/vision.h"

#include "runtime/fp16.h"

namespace glimpse {

void im2col_patches_ref(const float* img, int64_t H, int64_t W, int64_t P, float* patches, ThreadPool* pool) {
    const int64_t gw = W / P, gh = H / P, K = 3 * P * P;
    auto body = [&](int64_t n0, int64_t n1, int) {
        for (int64_t n = n0; n < n1; ++n) {
            const int64_t py = n / gw, px = n % gw;
            float* out = patches + n * K;
            for (int64_t ch = 0; ch < 3; ++ch) {
                for (int64_t ky = 0; ky < P; ++ky) {
                    const float* src = img + ch * H * W + (py * P + ky) * W + px * P;
                    for (int64_t kx = 0; kx < P; ++kx) *out++ = src[kx];
                }
            }
        }
    };
    if (pool) pool->parallel_for(gh * gw, body);
    else body(0, gh * gw, 0);
}

void im2col_patches(const float* img, int64_t H, int64_t W, int64_t P, bool round_to_f16, float* patches,
                    ThreadPool* pool) {
    im2col_patches_ref(img, H, W, P, patches, pool);
    if (!round_to_f16) return;
    const int64_t n = (H / P) * (W / P) * 3 * P * P;
    for (int64_t i = 0; i < n; ++i) patches[i] = glimpse::round_to_f16(patches[i]);
}

void pixel_shuffle_ref(const float* x, int64_t h, int64_t w, int64_t C, int64_t s, float* y) {
    const int64_t bw = w / s, bh = h / s;
    for (int64_t by = 0; by < bh; ++by) {
        for (int64_t bx = 0; bx < bw; ++bx) {
            float* out = y + (by * bw + bx) * s * s * C;
            for (int64_t i = 0; i < s; ++i) {
                for (int64_t j = 0; j < s; ++j) {
                    const float* in = x + ((by * s + i) * w + bx * s + j) * C;
                    for (int64_t c = 0; c < C; ++c) out[(i * s + j) * C + c] = in[c];
                }
            }
        }
    }
}

}  // namespace glimpse
