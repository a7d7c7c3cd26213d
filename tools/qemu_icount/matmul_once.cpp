// glimpse-matmul-once: runs one registered matmul kernel on one shape — weights made and
// packed, a warm-up call — then exactly one call between the stderr lines "matmul begin"
// and "matmul end". encode_icount.py counts the instructions between them under qemu:
//
//   encode_icount.py --cpu cortex-a72 --start 'matmul begin' --stop 'matmul end' -- \
//       build-rpi4/tools/qemu_icount/glimpse-matmul-once --kernel q8_0_q8_0__neon -M 1024 -K 768 -N 3072
//
// One thread (the plugin's counter is not atomic across guest threads).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "quant/quantize.h"
#include "runtime/aligned_buffer.h"
#include "runtime/dtype.h"
#include "runtime/threadpool.h"
#include "targets/cpu_features.h"
#include "tools/common/args.h"

int main(int argc, char** argv) {
    using namespace glimpse;
    tools::ArgParser a("glimpse-matmul-once", "--kernel NAME -M M -K K -N N [--bias]",
                       "Runs one registered matmul kernel once (after one warm-up call) on random inputs, between\n"
                       "the stderr lines 'matmul begin' and 'matmul end', on one thread: the span\n"
                       "tools/qemu_icount/encode_icount.py counts. Prints the sum of the outputs afterwards.");
    a.option("--kernel", "NAME", "registered matmul kernel, e.g. q8_0_q8_0__neon");
    a.option("-M", "M", "activation rows", "1024");
    a.option("-K", "K", "reduction length", "768");
    a.option("-N", "N", "output columns (weight rows)", "3072");
    a.flag("--bias", "add a bias vector");
    if (auto rc = a.parse_or_exit_code(argc, argv)) return *rc;
    std::string err;
    int64_t M = 0, K = 0, N = 0;
    if (!a.get_int("-M", 1, 1 << 16, &M, &err) || !a.get_int("-K", 1, 1 << 16, &K, &err) ||
        !a.get_int("-N", 1, 1 << 18, &N, &err)) {
        std::fprintf(stderr, "glimpse-matmul-once: %s\n", err.c_str());
        return 2;
    }
    const MatmulKernel* k = find_matmul_kernel(a.get("--kernel").c_str());
    if (!k) {
        std::fprintf(stderr, "glimpse-matmul-once: no matmul kernel named '%s' (glimpse-bench kernels lists them)\n",
                     a.get("--kernel").c_str());
        return 2;
    }
    if (!isa_usable(k->isa)) {
        std::fprintf(stderr, "glimpse-matmul-once: %s needs %s, which this CPU (or GLIMPSE_MAX_ISA) does not allow\n",
                     k->name, isa_name(k->isa));
        return 2;
    }
    if (k->supports && !k->supports(M, K, N)) {
        std::fprintf(stderr, "glimpse-matmul-once: %s does not support M=%lld K=%lld N=%lld\n", k->name,
                     static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N));
        return 2;
    }
    if (K % dtype_info(k->w_type).block_size != 0) {
        std::fprintf(stderr, "glimpse-matmul-once: K=%lld is not a multiple of %s's block size %lld\n",
                     static_cast<long long>(K), dtype_name(k->w_type),
                     static_cast<long long>(dtype_info(k->w_type).block_size));
        return 2;
    }
    if (k->w_type != DType::f32 && !quantize_supported(k->w_type)) {
        std::fprintf(stderr, "glimpse-matmul-once: cannot make %s weights\n", dtype_name(k->w_type));
        return 2;
    }

    // Deterministic inputs: x in [-1, 1), weights in [-0.05, 0.05) like a model's.
    uint64_t s = 12345;
    auto next = [&s] {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<float>((s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
    };
    const int64_t row_bytes = dtype_row_bytes(k->w_type, K);
    std::vector<uint8_t> w(static_cast<size_t>(row_bytes * N));
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = 0; n < N; ++n) {
        for (float& v : row) v = 0.05f * next();
        if (k->w_type == DType::f32) std::memcpy(w.data() + n * row_bytes, row.data(), static_cast<size_t>(K) * 4);
        else quantize_row(k->w_type, row.data(), w.data() + n * row_bytes, K);
    }
    std::vector<float> x(static_cast<size_t>(M * K)), y(static_cast<size_t>(M * N)), bias(static_cast<size_t>(N));
    for (float& v : x) v = next();
    for (float& v : bias) v = 0.01f * next();
    uint8_t* packed = k->pack ? aligned_buffer_alloc(static_cast<size_t>(k->packed_bytes(N, K))) : nullptr;
    if (k->pack) k->pack(w.data(), N, K, packed);
    uint8_t* scratch = aligned_buffer_alloc(static_cast<size_t>(k->scratch_bytes ? k->scratch_bytes(M, K, N, 1) : 0) + 64);

    const MatmulArgs args = dense_matmul_args(*k, x.data(), w.data(), packed, a.has("--bias") ? bias.data() : nullptr,
                                              y.data(), scratch, M, K, N);
    ThreadPool pool(1);
    k->run(args, &pool);  // warm-up: first touch of scratch and output
    std::fprintf(stderr, "matmul begin: %s M=%lld K=%lld N=%lld\n", k->name, static_cast<long long>(M),
                 static_cast<long long>(K), static_cast<long long>(N));
    k->run(args, &pool);
    std::fprintf(stderr, "matmul end\n");
    double sum = 0;
    for (float v : y) sum += v;
    std::printf("%s output sum %.6g\n", k->name, sum);
    aligned_buffer_free(packed);
    aligned_buffer_free(scratch);
    return 0;
}
