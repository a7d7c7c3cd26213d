#include "ops/unary.h"

#include <cmath>

#include "runtime/fp16.h"

namespace glimpse {

float gelu_tanh_scalar(float x) {
    constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
    constexpr float kCoefA = 0.044715f;
    return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)));
}

float gelu_quick_scalar(float x) { return x * (1.0f / (1.0f + std::exp(-1.702f * x))); }

float silu_scalar(float x) { return x / (1.0f + std::exp(-x)); }

float gelu_tanh_f16_scalar(float x) {
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    return round_to_f16(gelu_tanh_scalar(round_to_f16(x)));
}

float gelu_quick_f16_scalar(float x) { return round_to_f16(gelu_quick_scalar(round_to_f16(x))); }

void unary_ref(UnaryOp op, const float* x, int64_t n, float* y, ThreadPool* pool) {
    auto body = [&](int64_t i0, int64_t i1, int) {
        switch (op) {
            case UnaryOp::gelu_tanh: for (int64_t i = i0; i < i1; ++i) y[i] = gelu_tanh_scalar(x[i]); break;
            case UnaryOp::gelu_quick: for (int64_t i = i0; i < i1; ++i) y[i] = gelu_quick_scalar(x[i]); break;
            case UnaryOp::silu: for (int64_t i = i0; i < i1; ++i) y[i] = silu_scalar(x[i]); break;
            case UnaryOp::gelu_tanh_f16: for (int64_t i = i0; i < i1; ++i) y[i] = gelu_tanh_f16_scalar(x[i]); break;
            case UnaryOp::gelu_quick_f16: for (int64_t i = i0; i < i1; ++i) y[i] = gelu_quick_f16_scalar(x[i]); break;
        }
    };
    if (pool && n >= 4096) pool->parallel_for(n, body);
    else body(0, n, 0);
}

void swiglu_ref(const float* gate, const float* up, int64_t n, float* y, ThreadPool* pool) {
    auto body = [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) y[i] = silu_scalar(gate[i]) * up[i];
    };
    if (pool && n >= 4096) pool->parallel_for(n, body);
    else body(0, n, 0);
}

namespace {
template <class Op>
void binary_rows(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool,
                 Op op) {
    auto body = [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            const float* ar = a + t * C;
            const float* br = b + (b_rows == 1 ? 0 : t * C);
            float* yr = y + t * C;
            for (int64_t c = 0; c < C; ++c) yr[c] = op(ar[c], br[c]);
        }
    };
    if (pool && T * C >= 4096) pool->parallel_for(T, body);
    else body(0, T, 0);
}
}  // namespace

void add_ref(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    binary_rows(a, b, T, C, b_rows, y, pool, [](float p, float q) { return p + q; });
}

void mul_ref(const float* a, const float* b, int64_t T, int64_t C, int64_t b_rows, float* y, ThreadPool* pool) {
    binary_rows(a, b, T, C, b_rows, y, pool, [](float p, float q) { return p * q; });
}

}  // namespace glimpse
