#!/usr/bin/env bash
# Runs libFuzzer targets for a bounded time each (used by `make fuzz-smoke` and `make fuzz`).
#   tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
#   FUZZ_RUNS=N FUZZ_SEED=S tests/fuzz/run.sh ...   (the smoke: see below)
# TARGET is a name without the fuzz_ prefix (gguf, image, chat_template, json, tokenizer, pruning_plan).
# Each target starts from its seed corpus (tests/fuzz/corpus/<target>) plus the inputs earlier
# runs found (tests/data/regressions/<target>, read only); new
# interesting inputs go to BUILD_DIR/fuzz-corpus/<target>, crashes, leaks, timeouts (10 s) and
# out-of-memory inputs (2 GB) to BUILD_DIR/fuzz-artifacts/<target>/. Exits 1 if any target
# failed, after running all of them.
set -uo pipefail
build=$1; secs=$2; shift 2
src=$(cd "$(dirname "$0")/../.." && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# The smoke runs without address-space layout randomisation where the kernel allows it
# (setarch -R): libFuzzer's comparison tracing sees pointer values, so under ASLR the same seed
# keeps slightly different inputs from run to run. Where it is refused (some container
# seccomp profiles), the smoke still runs, fixed seed and count, only not bit-reproducible.
launcher=()
if [ -n "${FUZZ_RUNS:-}" ]; then
  if setarch "$(uname -m)" -R true 2>/dev/null; then
    launcher=(setarch "$(uname -m)" -R)
  else
    echo "fuzz: setarch -R refused here; the smoke runs with ASLR (not bit-reproducible)"
  fi
fi
failed=()
for t in "$@"; do
  bin="$build/tests/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: $bin is missing (build the glimpse_fuzzers target)"; failed+=("$t"); continue; }
  work="$build/fuzz-corpus/$t"; art="$build/fuzz-artifacts/$t"
  extra_flags=()
  if [ -n "${FUZZ_RUNS:-}" ]; then
    work="$build/fuzz-smoke-corpus/$t"
    rm -rf "$work"
    extra_flags=(-runs="$FUZZ_RUNS" -seed="${FUZZ_SEED:-1}" -reload=0)
  fi
  mkdir -p "$work" "$art"
  dirs=("$work" "$src/tests/fuzz/corpus/$t")
  for extra in "$src/tests/data/regressions/$t"; do
    [ -d "$extra" ] && dirs+=("$extra")
  done
  echo "== fuzz_$t: ${FUZZ_RUNS:+$FUZZ_RUNS runs from seed ${FUZZ_SEED:-1}, at most }${secs} s"
  start=$(date +%s)
  "${launcher[@]}" "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
         "${extra_flags[@]}" -artifact_prefix="$art/" "${dirs[@]}" > "$build/fuzz-$t.log" 2>&1
  rc=$?
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|DONE" "$build/fuzz-$t.log" | tr '\n' ' '
  echo "($(( $(date +%s) - start )) s, exit $rc)"
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    grep -E "ERROR|runtime error|SUMMARY|Test unit written" "$build/fuzz-$t.log" | head -5
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (logs: $build/fuzz-<target>.log, inputs: $build/fuzz-artifacts/)"
  exit 1
fi
echo "fuzz: all targets ran clean"
