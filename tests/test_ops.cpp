// Reference ops against independent computations: hand-worked cases, math
// identities, and (for pixel shuffle) a simulation of the ggml view/permute
// sequence llama.cpp uses.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <numeric>
#include <vector>

#include "ops/attention.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "ops/unary.h"
#include "ops/vision.h"
#include "quant/formats.h"
#include "quant/type_traits.h"
#include "runtime/fp16.h"

using namespace glimpse;

namespace {

struct Lcg {
    uint64_t s;
    explicit Lcg(uint64_t seed) : s(seed) {}
    float uniform(float lo, float hi) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return lo + (hi - lo) * static_cast<float>((s >> 40) & 0xffffff) / 16777216.0f;
    }
    int integer(int lo, int hi) { return lo + static_cast<int>(uniform(0, 1) * (hi - lo + 1)) % (hi - lo + 1); }
};

}  // namespace

TEST_CASE("matmul_ref: integer-valued matrices give exact products, with bias and strides") {
    ThreadPool pool(3);
    for (auto [M, K, N] : {std::tuple{1, 1, 1}, std::tuple{3, 5, 7}, std::tuple{4, 33, 9}, std::tuple{2, 64, 130}}) {
        Lcg rng(M * 100 + K * 10 + N);
        const int ldx = K + 3, ldy = N + 2;
        std::vector<float> x(M * ldx, 99.0f), w(N * K), b(N), y(M * ldy, -7.0f);
        for (int m = 0; m < M; ++m) for (int k = 0; k < K; ++k) x[m * ldx + k] = static_cast<float>(rng.integer(-4, 4));
        for (auto& v : w) v = static_cast<float>(rng.integer(-3, 3));
        for (auto& v : b) v = static_cast<float>(rng.integer(-10, 10));
        MatmulArgs a;
        a.x = x.data(); a.ldx = ldx; a.M = M; a.K = K; a.N = N;
        a.w = w.data(); a.w_type = DType::f32; a.bias = b.data(); a.y = y.data(); a.ldy = ldy;
        matmul_ref(a, &pool);
        for (int m = 0; m < M; ++m) {
            for (int n = 0; n < N; ++n) {
                long exact = static_cast<long>(b[n]);
                for (int k = 0; k < K; ++k) exact += static_cast<long>(x[m * ldx + k]) * static_cast<long>(w[n * K + k]);
                REQUIRE(y[m * ldy + n] == static_cast<float>(exact));
            }
            for (int n = N; n < ldy; ++n) REQUIRE(y[m * ldy + n] == -7.0f);  // padding untouched
        }
        // The same weights stored as f16 and bf16 (small integers are exact in both).
        std::vector<uint16_t> wh(w.size()), wb(w.size());
        for (size_t i = 0; i < w.size(); ++i) { wh[i] = f32_to_f16(w[i]); wb[i] = f32_to_bf16(w[i]); }
        std::vector<float> y2(M * ldy, -7.0f), y3(M * ldy, -7.0f);
        a.w = wh.data(); a.w_type = DType::f16; a.y = y2.data();
        matmul_ref(a, nullptr);
        a.w = wb.data(); a.w_type = DType::bf16; a.y = y3.data();
        matmul_ref(a, &pool);
        CHECK(y2 == y);
        CHECK(y3 == y);
    }
}

TEST_CASE("layer_norm_ref and rms_norm_ref: hand-worked rows") {
    // x = [1,2,3,4]: mean 2.5, var 1.25
    const float x[4] = {1, 2, 3, 4};
    float y[4];
    layer_norm_ref(x, 1, 4, nullptr, nullptr, 0.0f, y, nullptr);
    const double s = 1.0 / std::sqrt(1.25);
    CHECK(y[0] == doctest::Approx(-1.5 * s).epsilon(1e-6));
    CHECK(y[3] == doctest::Approx(1.5 * s).epsilon(1e-6));
    const float g[4] = {2, 2, 2, 2}, b[4] = {1, 0, 0, 0};
    layer_norm_ref(x, 1, 4, g, b, 0.0f, y, nullptr);
    CHECK(y[0] == doctest::Approx(1 - 3.0 * s).epsilon(1e-6));
    // eps enters under the square root: var 1.25 + eps 0.75 = 2
    layer_norm_ref(x, 1, 4, nullptr, nullptr, 0.75f, y, nullptr);
    CHECK(y[3] == doctest::Approx(1.5 / std::sqrt(2.0)).epsilon(1e-6));

    // rms of [3,4] = sqrt(12.5)
    const float r[2] = {3, 4};
    float ry[2];
    const float rg[2] = {1, 10};
    rms_norm_ref(r, 1, 2, rg, 0.0f, ry, nullptr);
    CHECK(ry[0] == doctest::Approx(3 / std::sqrt(12.5)).epsilon(1e-6));
    CHECK(ry[1] == doctest::Approx(40 / std::sqrt(12.5)).epsilon(1e-6));
}

TEST_CASE("activations: values from their closed forms") {
    // GELU tanh form at 1: 0.5·(1 + tanh(√(2/π)·1.044715))
    const double g1 = 0.5 * (1 + std::tanh(std::sqrt(2 / M_PI) * 1.044715));
    CHECK(gelu_tanh_scalar(1.0f) == doctest::Approx(g1).epsilon(1e-6));
    CHECK(gelu_tanh_scalar(-1.0f) == doctest::Approx(g1 - 1.0).epsilon(1e-5));  // gelu(x) - gelu(-x) = x
    CHECK(gelu_tanh_scalar(0.0f) == 0.0f);
    CHECK(gelu_quick_scalar(1.0f) == doctest::Approx(1.0 / (1.0 + std::exp(-1.702))).epsilon(1e-6));
    CHECK(silu_scalar(2.0f) == doctest::Approx(2.0 / (1.0 + std::exp(-2.0))).epsilon(1e-6));
    const float gate[2] = {0.0f, 1.0f}, up[2] = {5.0f, 3.0f};
    float y[2];
    swiglu_ref(gate, up, 2, y, nullptr);
    CHECK(y[0] == 0.0f);
    CHECK(y[1] == doctest::Approx(3.0 / (1.0 + std::exp(-1.0))).epsilon(1e-6));
    const float a[6] = {1, 2, 3, 4, 5, 6}, bias[3] = {10, 20, 30};
    float s[6];
    add_ref(a, bias, 2, 3, 1, s, nullptr);
    CHECK(s[5] == 36.0f);
    mul_ref(a, a, 2, 3, 2, s, nullptr);
    CHECK(s[4] == 25.0f);
}

TEST_CASE("rope_norm_ref: position 0 is identity; pairs rotate by pos·base^(-2i/n_rot); tail dims pass") {
    const int64_t H = 2, D = 6, n_rot = 4;
    std::vector<float> x(3 * H * D);
    Lcg rng(5);
    for (auto& v : x) v = rng.uniform(-1, 1);
    const int32_t pos[3] = {0, 1, 37};
    std::vector<float> y(x.size());
    rope_norm_ref(x.data(), pos, 3, H, D, n_rot, 10000.0f, y.data(), nullptr);
    for (int64_t i = 0; i < H * D; ++i) CHECK(y[i] == x[i]);
    for (int t = 1; t < 3; ++t) {
        for (int h = 0; h < H; ++h) {
            const float* xr = &x[(t * H + h) * D];
            const float* yr = &y[(t * H + h) * D];
            for (int i = 0; i < n_rot / 2; ++i) {
                const double theta = pos[t] * std::pow(10000.0, -2.0 * i / n_rot);
                const double e0 = xr[2 * i] * std::cos(theta) - xr[2 * i + 1] * std::sin(theta);
                const double e1 = xr[2 * i] * std::sin(theta) + xr[2 * i + 1] * std::cos(theta);
                CHECK(yr[2 * i] == doctest::Approx(e0).epsilon(1e-5));
                CHECK(yr[2 * i + 1] == doctest::Approx(e1).epsilon(1e-5));
            }
            CHECK(yr[4] == xr[4]);
            CHECK(yr[5] == xr[5]);
        }
    }
}

TEST_CASE("softmax_row_ref: hand case and invariance to a shift") {
    float x[2] = {0.0f, std::log(2.0f)};
    softmax_row_ref(x, 2);
    CHECK(x[0] == doctest::Approx(1.0 / 3));
    CHECK(x[1] == doctest::Approx(2.0 / 3));
    float big[3] = {1000.0f, 1000.0f, 1000.0f};  // no overflow
    softmax_row_ref(big, 3);
    CHECK(big[2] == doctest::Approx(1.0 / 3));
}

TEST_CASE("attention_ref: one key returns v; equal scores average; causal masking; GQA head mapping") {
    // 4 query heads over 2 kv heads, head_dim 2.
    const int64_t Hq = 4, Hkv = 2, D = 2, T = 2;
    std::vector<float> q(T * Hq * D, 0.0f);  // zero queries -> uniform attention
    std::vector<float> k(T * Hkv * D), v(T * Hkv * D);
    for (size_t i = 0; i < v.size(); ++i) { k[i] = 0.1f * i; v[i] = static_cast<float>(i + 1); }
    std::vector<float> out(T * Hq * D), scratch(4 * 2);
    AttentionArgs a;
    a.q = q.data(); a.q_ld = Hq * D; a.k = k.data(); a.v = v.data(); a.kv_ld = Hkv * D;
    a.out = out.data(); a.out_ld = Hq * D; a.T = T; a.S = T;
    a.n_head = Hq; a.n_head_kv = Hkv; a.head_dim = D; a.scale = 1.0f;
    attention_ref(a, scratch.data(), nullptr);
    // kv head of query head h is h / 2; v row s, kv head j, dim d = s*4 + j*2 + d + 1
    for (int t = 0; t < T; ++t) {
        for (int h = 0; h < Hq; ++h) {
            for (int d = 0; d < D; ++d) {
                const int j = h / 2;
                const double mean = ((0 * 4 + j * 2 + d + 1) + (1 * 4 + j * 2 + d + 1)) / 2.0;
                CHECK(out[t * Hq * D + h * D + d] == doctest::Approx(mean));
            }
        }
    }
    // Causal: row 0 sees only key 0, so it gets v row 0 exactly.
    a.causal = true;
    a.causal_offset = 0;
    attention_ref(a, scratch.data(), nullptr);
    for (int h = 0; h < Hq; ++h) CHECK(out[h * D] == static_cast<float>((h / 2) * 2 + 1));
    // f16 K/V storage reads the same values (they are exact in f16).
    std::vector<uint16_t> kh(k.size()), vh(v.size());
    for (size_t i = 0; i < k.size(); ++i) { kh[i] = f32_to_f16(k[i]); vh[i] = f32_to_f16(v[i]); }
    std::vector<float> out16(out.size());
    a.k = kh.data(); a.v = vh.data(); a.kv_type = DType::f16; a.out = out16.data();
    attention_ref(a, scratch.data(), nullptr);
    CHECK(out16 == out);
}

TEST_CASE("attention_ref: scores follow softmax(scale·q·k) on a worked example") {
    // One head, D=1: q = 2, keys 0 and 1, scale 0.5 -> scores 0 and 1.
    const float q[1] = {2.0f}, k[2] = {0.0f, 1.0f}, v[2] = {10.0f, 20.0f};
    float out[1], scratch[2];
    AttentionArgs a;
    a.q = q; a.q_ld = 1; a.k = k; a.v = v; a.kv_ld = 1; a.out = out; a.out_ld = 1;
    a.T = 1; a.S = 2; a.n_head = 1; a.n_head_kv = 1; a.head_dim = 1; a.scale = 0.5f;
    attention_ref(a, scratch, nullptr);
    const double p1 = std::exp(1.0) / (1 + std::exp(1.0));
    CHECK(out[0] == doctest::Approx(10 * (1 - p1) + 20 * p1));
}

namespace {
// A tiny model of ggml tensors (ne/nb, innermost first) to replay llama.cpp's
// build_patch_merge_permute step by step, independently of pixel_shuffle_ref.
struct GView {
    std::vector<float>* data;
    int64_t ne[4];
    int64_t nb[4];  // strides in elements
    float at(int64_t i0, int64_t i1, int64_t i2, int64_t i3) const {
        return (*data)[i0 * nb[0] + i1 * nb[1] + i2 * nb[2] + i3 * nb[3]];
    }
};
GView contiguous(std::vector<float>* d, int64_t n0, int64_t n1, int64_t n2, int64_t n3 = 1) {
    return {d, {n0, n1, n2, n3}, {1, n0, n0 * n1, n0 * n1 * n2}};
}
GView permute_0213(GView v) {  // ggml_permute(ctx, t, 0, 2, 1, 3): swap axes 1 and 2
    std::swap(v.ne[1], v.ne[2]);
    std::swap(v.nb[1], v.nb[2]);
    return v;
}
std::vector<float> cont(const GView& v) {
    std::vector<float> out;
    for (int64_t i3 = 0; i3 < v.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < v.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < v.ne[1]; ++i1)
                for (int64_t i0 = 0; i0 < v.ne[0]; ++i0) out.push_back(v.at(i0, i1, i2, i3));
    return out;
}
}  // namespace

TEST_CASE("pixel_shuffle_ref equals llama.cpp's reshape/permute sequence replayed on ggml views") {
    for (auto [h, w, C, s] : {std::tuple{4, 4, 3, 2}, std::tuple{6, 4, 2, 2}, std::tuple{6, 6, 5, 3}, std::tuple{8, 8, 1, 4}}) {
        std::vector<float> x(h * w * C);
        std::iota(x.begin(), x.end(), 0.0f);
        std::vector<float> got((h / s) * (w / s) * s * s * C);
        pixel_shuffle_ref(x.data(), h, w, C, s, got.data());
        // cur = [C, w, h]; reshape_3d(C*s, w/s, h); permute(0,2,1,3); cont_3d(C*s*s, h/s, w/s);
        // permute(0,2,1,3); cont_2d
        std::vector<float> a = x;
        GView v1 = permute_0213(contiguous(&a, C * s, w / s, h));
        std::vector<float> b = cont(v1);  // ne = [C*s, h, w/s]
        GView v2 = permute_0213(contiguous(&b, C * s * s, h / s, w / s));
        std::vector<float> c = cont(v2);  // ne = [C*s*s, w/s, h/s]
        CHECK(got == c);
    }
}

TEST_CASE("im2col_patches_ref: row n holds patch n in (channel, ky, kx) order") {
    const int64_t H = 4, W = 6, P = 2;
    std::vector<float> img(3 * H * W);
    std::iota(img.begin(), img.end(), 0.0f);
    std::vector<float> patches((H / P) * (W / P) * 3 * P * P);
    im2col_patches_ref(img.data(), H, W, P, patches.data(), nullptr);
    // patch 4 = (py 1, px 1); element (ch 2, ky 1, kx 0) = img[2][3][2]
    const int64_t n = 4, idx = (2 * P + 1) * P + 0;
    CHECK(patches[n * 12 + idx] == img[2 * H * W + 3 * W + 2]);
    CHECK(patches[0] == 0.0f);
    CHECK(patches[1] == 1.0f);
    CHECK(patches[2] == static_cast<float>(W));
}

// The type-trait table (quant/type_traits.h) against the block structs of
// quant/formats.h (ggml-common.h's layouts, size-asserted there) and the GGML type
// ids; and each row's reader inverts its writer on values the type holds exactly.
TEST_CASE("type-trait table: sizes match the block layouts; readers invert writers on exact values") {
    struct Expect {
        DType type;
        const char* name;
        int64_t block_size;
        size_t block_bytes;
    };
    const Expect expect[] = {
        {DType::f32, "f32", 1, 4},
        {DType::f16, "f16", 1, 2},
        {DType::bf16, "bf16", 1, 2},
        {DType::q4_0, "q4_0", 32, sizeof(BlockQ4_0)},
        {DType::q4_1, "q4_1", 32, sizeof(BlockQ4_1)},
        {DType::q5_0, "q5_0", 32, sizeof(BlockQ5_0)},
        {DType::q5_1, "q5_1", 32, sizeof(BlockQ5_1)},
        {DType::q8_0, "q8_0", 32, sizeof(BlockQ8_0)},
        {DType::q8_1, "q8_1", 32, sizeof(BlockQ8_1)},
        {DType::q2_k, "q2_k", 256, sizeof(BlockQ2K)},
        {DType::q3_k, "q3_k", 256, sizeof(BlockQ3K)},
        {DType::q4_k, "q4_k", 256, sizeof(BlockQ4K)},
        {DType::q5_k, "q5_k", 256, sizeof(BlockQ5K)},
        {DType::q6_k, "q6_k", 256, sizeof(BlockQ6K)},
        {DType::q8_k, "q8_k", 256, sizeof(BlockQ8K)},
        {DType::i32, "i32", 1, 4},
    };
    for (const Expect& e : expect) {
        const TypeTraits* t = type_traits(e.type);
        REQUIRE_MESSAGE(t != nullptr, e.name);
        CHECK(t->type == e.type);
        CHECK(std::string(t->info.name) == e.name);
        CHECK(t->info.block_size == e.block_size);
        CHECK(t->info.block_bytes == static_cast<int64_t>(e.block_bytes));
        CHECK(&dtype_info(e.type) == &t->info);
    }
    CHECK(type_traits_of_id(4) == nullptr);  // ggml's removed q4_2
    CHECK(type_traits_of_id(31) == nullptr);
    // Values each writable type stores exactly, so writer -> reader gives them back bit
    // for bit: integers in [-8, 7] with -8 in every block (q4_0: d = -(-8)/8 = 1; q5_0:
    // d = 1/2, codes 2x + 16), and for q8_0 integers in [-127, 127] with 127 in every
    // block (d = 127/127 = 1).
    for (DType type : {DType::f32, DType::f16, DType::bf16, DType::q8_0, DType::q4_0, DType::q5_0}) {
        const TypeTraits* t = type_traits(type);
        REQUIRE(bool(t->to_f32));
        REQUIRE(bool(t->from_f32));
        std::vector<float> x(256), back(256);
        for (int i = 0; i < 256; ++i) {
            x[i] = type == DType::q8_0 ? static_cast<float>(i % 32 == 0 ? 127 : (i * 7) % 255 - 127)
                                       : static_cast<float>((i % 16) - 8);
        }
        std::vector<uint8_t> blocks(static_cast<size_t>(dtype_row_bytes(type, 256)));
        t->from_f32(x.data(), blocks.data(), 256);
        t->to_f32(blocks.data(), back.data(), 256);
        CHECK_MESSAGE(std::memcmp(x.data(), back.data(), 256 * 4) == 0, t->info.name);
    }
}
