#!/bin/sh
# feather and attention debiasing on a bundled model (issue 24, docs/pruning.md, "feather and
# debias"): feather, fastv and pyramiddrop with debias off and on, and random, at an average of
# 50 % and 25 % of the visual tokens per decoder layer; each `glimpse eval --preset bundled --json`
# on the same scenes, one JSON line per run with its "run" name (and "model_stem") added.
#   [RUNS="..."] tools/prune_eval/run_feather_grid.sh BUILD_DIR STEM SCENES PLAN_DIR > out.jsonl
# Budgets on a 4-layer model (fractions of the image's visual tokens, averaged over layers):
#   feather [L0 a (grid), L1 b]: (1 + a + 2b)/4;  fastv@L0 k: (1 + 3k)/4;
#   pyramiddrop [L0 a, L1 b, L2 c]: (1 + a + b + c)/4;  after_projector d first: d replaces the 1.
set -eu
build=$1; stem=$2; scenes=$3; plans=$4
. "$(dirname "$0")/decoder_plans.sh"
orig='"positions": "original"'
for d in false true; do
  sfx=$([ $d = true ] && echo -debias || true)
  # 50 %
  plan feather-0.5$sfx "$(dec 0 feather 0.5), $(dec 1 feather 0.25 "{\"debias\": $d}")"
  plan fastv-L0-0.3333$sfx "$(dec 0 fastv 0.3333 "{\"debias\": $d}")"
  plan pyramiddrop-original$sfx "$(dec 0 pyramiddrop 0.5 "{$orig, \"debias\": $d}"), $(dec 1 pyramiddrop 0.25 "{$orig, \"debias\": $d}"), $(dec 2 pyramiddrop 0.125 "{$orig, \"debias\": $d}")"
  # 25 %: after a divprune 0.5 stage (the grid then strides over divprune's survivors)
  plan divprune-feather$sfx "$post, $(dec 0 feather 0.25), $(dec 1 feather 0.125 "{\"debias\": $d}")"
  plan divprune-fastv$sfx "$post, $(dec 0 fastv 0.1667 "{\"debias\": $d}")"
  plan divprune-pyramiddrop-original$sfx "$post, $(dec 0 pyramiddrop 0.25 "{$orig, \"debias\": $d}"), $(dec 1 pyramiddrop 0.125 "{$orig, \"debias\": $d}"), $(dec 2 pyramiddrop 0.125 "{$orig, \"debias\": $d}")"
done
runs=${RUNS:-"feather-0.5 random-0.5 divprune-feather-debias random-0.25 fastv-L0-0.3333 fastv-L0-0.3333-debias \
  divprune-fastv divprune-fastv-debias pyramiddrop-original pyramiddrop-original-debias \
  divprune-pyramiddrop-original divprune-pyramiddrop-original-debias none feather-0.5-debias divprune-feather"}
eval_runs "$runs"
