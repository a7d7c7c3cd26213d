#!/bin/sh
# Pruning quality grid on a bundled model (docs/pruning.md): no plan, then every method x keep,
# each `glimpse eval --preset bundled --json` on the same held-out scenes; one JSON line per run.
#   tools/prune_eval/run_grid.sh BUILD_DIR STEM SCENES METHODS [EXTRA EVAL ARGS] > out.jsonl
# e.g. run_grid.sh build scenes-smolvlm-f16 1000000:1000400 "random uniform divprune attn-received"
set -eu
build=$1; stem=$2; scenes=$3; methods=$4; shift 4  # the rest: e.g. --prune-positions original
bin="$build/tools/glimpse/glimpse"
m="-m models/bundled/$stem-text.gguf --mmproj models/bundled/$stem-mmproj.gguf -t 1"
"$bin" eval $m --preset bundled --scenes "$scenes" --json
for method in $methods; do
  for keep in 1.0 0.5 0.25 0.125; do
    "$bin" eval $m --preset bundled --scenes "$scenes" --json --prune "$method" --keep "$keep" "$@"
  done
done
