#!/usr/bin/env bash
# Idle window, ninth session: decode tok/s over 64 tokens, llama.cpp vs glimpse, AVX2 cap and native.
set -u
cd /work/tmp/s9/idle
L=/tmp/llama-avx2/build/bin/llama-mtmd-cli
B=/work/main/build/tools/bench/glimpse-bench
T=/tmp/wt27/s256-text-q8_0.gguf
MM=/tmp/wt27/s256-mmproj.gguf
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in 1 2; do
  $L -m $T --mmproj $MM --image /tmp/wt27/img512.jpg -p "Describe this image in detail." -n 64 -t 2 --temp 0 --ignore-eos > llama-r$r.out 2> llama-r$r.err
  grep -E "eval time|prompt eval" llama-r$r.err | tail -2
  for isa in avx2 avx512; do
    GLIMPSE_MAX_ISA=$isa $B e2e -m $T --mmproj $MM --image /tmp/wt27/img512.jpg -n 64 -t 2 > g-$isa-r$r.json 2> g-$isa-r$r.err
    python3 -c "import json;d=json.load(open('g-$isa-r$r.json'));print('r$r $isa decode', d['decode'])"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
