#!/bin/sh
# HiRED's tile split against the equal split (docs/pruning.md, "The tile split"): each method x
# keep {0.5, 0.25, 0.125} with `tiles: {"split": "overview_scores", "overview_share": A}`, through
# a one-stage plan file per run; one `glimpse eval --json` line per run (original ids, the
# default). The equal-split runs are run_grid.sh's.
#   tools/prune_eval/run_hired_grid.sh BUILD_DIR STEM SCENES METHODS [A] > out.jsonl
# e.g. run_hired_grid.sh build scenes-smolvlm-f16 1000000:1000400 "divprune attn-received" 0.5
set -eu
build=$1; stem=$2; scenes=$3; methods=$4; share=${5:-0.5}
bin="$build/tools/glimpse/glimpse"
m="-m models/bundled/$stem-text.gguf --mmproj models/bundled/$stem-mmproj.gguf -t 1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for method in $methods; do
  for keep in 0.5 0.25 0.125; do
    plan="$dir/$method-$keep.json"
    printf '{"format": "glimpse.pruning-plan", "version": 1, "stages": [{"at": "after_projector", "method": "%s", "keep": %s, "tiles": {"split": "overview_scores", "overview_share": %s}}]}\n' \
      "$method" "$keep" "$share" > "$plan"
    "$bin" eval $m --preset bundled --scenes "$scenes" --json --plan "$plan"
  done
done
