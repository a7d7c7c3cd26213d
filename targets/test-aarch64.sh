#!/usr/bin/env bash
# Cross-builds glimpse for an aarch64 board and runs the whole test suite under
# qemu-aarch64 once per emulated CPU, asserting the kernel level each CPU must get
# (tests/test_kernel_selection.cpp reads GLIMPSE_EXPECT_ISA):
#
#   -cpu cortex-a72   Raspberry Pi 4: NEON only (no dotprod, no LSE)   -> neon
#   -cpu cortex-a76   Raspberry Pi 5 / Jetson Orin class (dotprod)      -> dotprod
#   -cpu max          every feature qemu has (i8mm)                     -> i8mm
#
# The binaries of every preset run on every aarch64 CPU (the baseline is armv8-a; the
# dotprod/i8mm kernels are chosen at run time), so one preset is enough to test all
# three levels; rpi4 is the strictest baseline (no outline atomics).
#
# Usage: targets/test-aarch64.sh [rpi4|rpi5|jetson] [--build-only]
#   --build-only: cross-build the libraries and tools only (no tests, no qemu runs)
#   JOBS=2                         parallel compile and test jobs
#   GLIMPSE_QEMU_CPUS="cortex-a72:neon cortex-a76:dotprod max:i8mm"   CPU:level list
#   GLIMPSE_SKIP_SETUP=1           do not run targets/setup-cross.sh first
set -euo pipefail
cd "$(dirname "$0")/.."

preset=rpi4
build_only=0
for arg in "$@"; do
    case "$arg" in
        rpi4|rpi5|jetson) preset="$arg" ;;
        --build-only) build_only=1 ;;
        *) echo "usage: targets/test-aarch64.sh [rpi4|rpi5|jetson] [--build-only]" >&2; exit 2 ;;
    esac
done
JOBS="${JOBS:-2}"
CPUS="${GLIMPSE_QEMU_CPUS:-cortex-a72:neon cortex-a76:dotprod max:i8mm}"
build="build-$preset"
unset GLIMPSE_MAX_ISA

[ "${GLIMPSE_SKIP_SETUP:-0}" = 1 ] || targets/setup-cross.sh

t0=$(date +%s)
# --build-only: the libraries and tools (what the .deb holds), not the test programs.
tests_flag="-DGLIMPSE_BUILD_TESTS=$([ $build_only = 1 ] && echo OFF || echo ON)"
cmake --preset "$preset" "$tests_flag" > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
grep -E "glimpse:" "$build.configure.log" || true
cmake --build --preset "$preset" -j "$JOBS"
t1=$(date +%s)
echo "== $preset: cross build took $((t1 - t0)) s"

lse_flag=""
[ "$preset" = rpi4 ] && lse_flag="--no-lse"
targets/check-isa-leaks.sh "$build" $lse_flag

cli="$build/tools/glimpse/glimpse"
file "$cli"
if [ $build_only = 1 ]; then
    echo "== $preset: build only, no qemu runs"
    exit 0
fi

# The CLI starts on the oldest board.
QEMU_CPU=cortex-a72 qemu-aarch64 "$cli" --help > /dev/null
echo "== glimpse --help runs under qemu-aarch64 -cpu cortex-a72"
# The instruction-count proxy for ARM speed (docs/benchmarks.md) counts a loop of known length.
python3 tools/qemu_icount/encode_icount.py --self-test

# The first CPU runs the whole suite; the others skip the tests whose code has no ISA-specific
# path (scene generator, image decode/resize, tokenizer, JSON, Status, pruning-plan parsing):
# their results cannot depend on the CPU, and under qemu they cost about a minute of CPU per run.
# test_mmproj_quantize also runs once: it is an accuracy check of a quantized file (4 minutes
# under qemu), and the Q8_0 kernels it goes through are held to their reference on every CPU
# by test_matmul_kernels.
ISA_FREE_TESTS='^(test_scenes|test_image|test_tokenizer|test_json|test_status|test_pruning_plan|test_mmproj_quantize|test_rope_bias)$'
# The whole-model pruning, C API and trained-model tests also run on the first CPU only: they
# go through the same kernels as the golden end-to-end tests (which do run on every CPU, so each
# CPU's kernel level is still checked on a real model), and those kernels are held to their
# references per CPU by the kernel tests. On the later CPUs they were 60 % of the qemu time
# (about 170 s of wall time per CPU on 2 cores).
# test_numerics_fast (--numerics fast against glimpse quantize's Q8_0 mmproj) likewise: both sides
# run the same Q8_0 kernels, held to their reference per CPU by test_matmul_kernels.
MODEL_LEVEL_TESTS='^(test_vlm_pruning|test_decoder_pruning|test_capi|trained_models_check|test_sparsevlm_decoder|test_numerics_fast)$'
status=0
summary=""
first=1
for spec in $CPUS; do
    cpu="${spec%%:*}"
    isa="${spec##*:}"
    exclude=()
    [ $first = 1 ] || exclude=(-E "${ISA_FREE_TESTS%)\$}|${MODEL_LEVEL_TESTS#^(}")
    first=0
    echo "== $preset under qemu-aarch64 -cpu $cpu (expect $isa kernels)${exclude:+; ISA-free and model-level tests skipped}"
    s=$(date +%s)
    rc=0
    QEMU_CPU="$cpu" GLIMPSE_EXPECT_ISA="$isa" GLIMPSE_TEST_SCALE=emulated \
        ctest --test-dir "$build" -j "$JOBS" --output-on-failure --timeout "${GLIMPSE_QEMU_TEST_TIMEOUT:-1500}" \
        "${exclude[@]}" || rc=$?
    # The selection each CPU got, as the test printed it.
    QEMU_CPU="$cpu" GLIMPSE_EXPECT_ISA="$isa" qemu-aarch64 "$build/tests/test_kernel_selection" 2>/dev/null |
        grep -E "MESSAGE: (cpu:|.* -> )" | sed "s/.*MESSAGE: /    [$cpu] /" || true
    e=$(date +%s)
    if [ $rc = 0 ]; then result=passed; else result=FAILED; status=1; fi
    summary+="    -cpu $cpu ($isa): $result in $((e - s)) s"$'\n'
done
echo "== $preset qemu runs:"
printf "%s" "$summary"
exit $status
