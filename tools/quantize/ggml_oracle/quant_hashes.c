/* Oracle for tests/test_quant_formats.cpp ("ggml oracle" cases): runs ggml's own
 * reference quantizers and dequantizers on the test's deterministic inputs and
 * prints FNV-1a 64 hashes of the bytes they produce. Not part of the build.
 *
 * Build against a llama.cpp checkout at the golden commit, the way ggml-base is
 * built on x86-64 (C11 with GNU extensions, no -march flags, so no FMA):
 *
 *   cd llama.cpp/ggml/src
 *   gcc -O3 -std=gnu11 -DNDEBUG -I../include -I. -c ggml-quants.c -o /tmp/ggml-quants.o
 *   gcc -O3 -std=gnu11 -DNDEBUG -I../include -I. \
 *       /path/to/glimpse/tools/quantize/ggml_oracle/quant_hashes.c /tmp/ggml-quants.o -lm -o /tmp/quant_hashes
 *   /tmp/quant_hashes
 *
 * The input generator and the hash below must stay identical to the ones in
 * tests/test_quant_formats.cpp (integer xorshift, float sums in a fixed order,
 * so every platform produces the same inputs).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-common.h"
#include "ggml-impl.h"
#include "ggml-quants.h"

/* ggml-quants.o references these; the reference row functions never call them. */
void ggml_abort(const char* file, int line, const char* fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d\n", file, line);
    abort();
}
size_t ggml_row_size(enum ggml_type type, int64_t ne) { return 0; }
const char* ggml_type_name(enum ggml_type type) { return ""; }
size_t ggml_type_size(enum ggml_type type) { return 0; }

static uint64_t g_state;
static uint32_t next_u32(void) {
    g_state ^= g_state >> 12;
    g_state ^= g_state << 25;
    g_state ^= g_state >> 27;
    return (uint32_t)((g_state * 0x2545F4914F6CDD1DULL) >> 32);
}
static float uniform01(void) { return (float)(next_u32() >> 8) * (1.0f / 16777216.0f); }
/* Sum of four uniforms, centred and scaled to unit variance. */
static float gaussish(void) {
    float s = uniform01();
    s += uniform01();
    s += uniform01();
    s += uniform01();
    return (s - 2.0f) * 1.7320508f;
}

enum { kSuperBlocks = 96, kN = 256 * kSuperBlocks };

/* 96 super-blocks of 256 values cycling through 12 shapes, each at a scale picked
 * from 1e-6 (f16 subnormal block scales) to 30. */
static void make_input(float* x) {
    static const float scales[5] = {1e-6f, 1e-3f, 0.02f, 1.0f, 30.0f};
    g_state = 0x9E3779B97F4A7C15ULL;
    for (int sb = 0; sb < kSuperBlocks; ++sb) {
        float* p = x + 256 * sb;
        const float s = scales[next_u32() % 5];
        for (int i = 0; i < 256; ++i) {
            const float g = gaussish();
            float v;
            switch (sb % 12) {
                case 0: v = 0.0f; break;                                              /* all zero */
                case 1: v = s; break;                                                 /* constant */
                case 2: v = -s; break;
                case 3: v = (g < 0 ? -g : g) * s; break;                              /* one-signed */
                case 4: v = (g < 0 ? g : -g) * s; break;
                case 5: v = (next_u32() % 10 == 0) ? g * s : 0.0f; break;             /* sparse */
                case 6: v = (float)(int)(g * 4.0f) * 0.5f * s; break;                 /* many ties */
                case 7: v = g * s * ((i % 32) == 0 ? 100.0f : 1.0f); break;           /* outliers */
                case 8: v = ((i / 32) % 2) ? g * s : g * s * 1e-3f; break;            /* sub-block ranges */
                case 9: v = g * s + 3.0f * s; break;                                  /* offset */
                case 10: v = (i % 16 == 3) ? 0.0f : g * s; break;
                default: v = g * s; break;
            }
            p[i] = v;
        }
    }
}

static uint64_t fnv1a(const void* data, size_t n) {
    const uint8_t* p = (const uint8_t*)data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* 64 blocks of random bytes whose f16 fields (at the given offsets) have bit 14
 * cleared, so every scale is finite (|d| < 2). */
static void random_blocks(uint8_t* b, size_t block_bytes, const size_t* f16_offsets, int n_f16, uint64_t seed) {
    g_state = seed;
    for (size_t i = 0; i < 64 * block_bytes; ++i) b[i] = (uint8_t)(next_u32() & 0xff);
    for (int k = 0; k < 64; ++k) {
        for (int f = 0; f < n_f16; ++f) b[k * block_bytes + f16_offsets[f] + 1] &= 0xBF;
    }
}

#define QUANT(name, fn, block, qk)                                                       \
    {                                                                                    \
        block* y = calloc(kN / (qk), sizeof(block));                                     \
        fn(x, y, kN);                                                                    \
        printf("    {DType::%s, 0x%016llxull},\n", name,                                 \
               (unsigned long long)fnv1a(y, kN / (qk) * sizeof(block)));                 \
        free(y);                                                                         \
    }

#define DEQUANT(name, fn, block, qk, seed, ...)                                          \
    {                                                                                    \
        static const size_t offs[] = {__VA_ARGS__};                                      \
        uint8_t* b = malloc(64 * sizeof(block));                                         \
        float* z = malloc(64 * (qk) * sizeof(float));                                    \
        random_blocks(b, sizeof(block), offs, (int)(sizeof(offs) / sizeof(offs[0])), seed); \
        fn((const block*)b, z, 64 * (qk));                                               \
        printf("    {DType::%s, 0x%016llxull},\n", name,                                 \
               (unsigned long long)fnv1a(z, 64 * (qk) * sizeof(float)));                 \
        free(b);                                                                         \
        free(z);                                                                         \
    }

int main(void) {
    float* x = malloc(kN * sizeof(float));
    make_input(x);
    printf("input 0x%016llxull\n", (unsigned long long)fnv1a(x, kN * sizeof(float)));

    printf("quantize:\n");
    {
        uint16_t* h = malloc(kN * 2);
        uint16_t* b = malloc(kN * 2);
        for (int i = 0; i < kN; ++i) {
            h[i] = ggml_compute_fp32_to_fp16(x[i]);
            b[i] = ggml_compute_fp32_to_bf16(x[i]).bits;
        }
        printf("    {DType::f16, 0x%016llxull},\n", (unsigned long long)fnv1a(h, kN * 2));
        printf("    {DType::bf16, 0x%016llxull},\n", (unsigned long long)fnv1a(b, kN * 2));
        free(h);
        free(b);
    }
    QUANT("q8_0", quantize_row_q8_0_ref, block_q8_0, 32)
    QUANT("q4_0", quantize_row_q4_0_ref, block_q4_0, 32)
    QUANT("q4_1", quantize_row_q4_1_ref, block_q4_1, 32)
    QUANT("q5_0", quantize_row_q5_0_ref, block_q5_0, 32)
    QUANT("q5_1", quantize_row_q5_1_ref, block_q5_1, 32)
    QUANT("q4_k", quantize_row_q4_K_ref, block_q4_K, 256)
    QUANT("q5_k", quantize_row_q5_K_ref, block_q5_K, 256)
    QUANT("q6_k", quantize_row_q6_K_ref, block_q6_K, 256)

    printf("dequantize random blocks:\n");
    DEQUANT("q8_0", dequantize_row_q8_0, block_q8_0, 32, 101, 0)
    DEQUANT("q4_0", dequantize_row_q4_0, block_q4_0, 32, 102, 0)
    DEQUANT("q4_1", dequantize_row_q4_1, block_q4_1, 32, 103, 0, 2)
    DEQUANT("q5_0", dequantize_row_q5_0, block_q5_0, 32, 104, 0)
    DEQUANT("q5_1", dequantize_row_q5_1, block_q5_1, 32, 105, 0, 2)
    DEQUANT("q2_k", dequantize_row_q2_K, block_q2_K, 256, 106, 80, 82)
    DEQUANT("q3_k", dequantize_row_q3_K, block_q3_K, 256, 107, 108)
    DEQUANT("q4_k", dequantize_row_q4_K, block_q4_K, 256, 108, 0, 2)
    DEQUANT("q5_k", dequantize_row_q5_K, block_q5_K, 256, 109, 0, 2)
    DEQUANT("q6_k", dequantize_row_q6_K, block_q6_K, 256, 110, 208)
    free(x);
    return 0;
}
