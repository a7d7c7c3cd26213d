#!/bin/sh
# The all-methods quality grid of the in-LLM methods (issue 24, docs/pruning.md "The in-LLM grid"):
# fastv, pyramiddrop, sparsevlm and feather, each in the configuration the docs name as its best,
# at an average of about 75, 50, 25 and 12.5 % of the image's visual tokens per decoder layer,
# and random after the projector at 75 % (part 1's grid has random at 50, 25 and 12.5 %). Each run
# one `glimpse eval --preset bundled --json` on the same scenes, one JSON line with "run" and
# "model_stem" added. The points already measured by run_decoder_grid.sh / run_feather_grid.sh
# are not repeated here: inllm_grid.py names which run is each method's point at each budget.
#   [RUNS="..."] tools/prune_eval/run_inllm_grid.sh BUILD_DIR STEM SCENES PLAN_DIR > out.jsonl
# e.g. RUNS="divprune-fastv-L1-b50" run_inllm_grid.sh build scenes-llava-f16 1000000:1000400 /tmp/plans
# Budgets on a 4-layer model, as fractions of the image's visual tokens averaged over the layers
# (layer 0 sees all that enters the language model, so below ~25 % a divprune stage d comes first
# and replaces the 1; decoder keeps are fractions of the image's tokens, not of what is left):
#   fastv after layer 1 keeping k:             (2d + 2k)/4, here k = d/2 -> 3d/4 (d = 1, 2/3, 1/3, 1/6)
#   pyramiddrop after 0/1/2 keeping a, b, c:   (d + a + b + c)/4
#   sparsevlm after 0/1/2 keeping a, b, c:     (d + a + b + c + merged rows)/4 (one merged row per
#                                               stage on these models, two when > 30 rows drop)
#   feather grid after 0 keeping a, attention after 1 keeping b: (d + a + 2b)/4
set -eu
build=$1; stem=$2; scenes=$3; plans=$4
. "$(dirname "$0")/decoder_plans.sh"
orig='{"positions": "original"}'
first() {  # first KEEP: a divprune stage after the projector (original ids, the default)
  printf '{"at": "after_projector", "method": "divprune", "keep": %s}' "$1"
}
# fastv after layer 1 (the docs' best fastv: layer 0's attention loses to random), original ids.
plan fastv-L1-b75 "$(dec 1 fastv 0.5)"
plan divprune-fastv-L1-b50 "$(first 0.6667), $(dec 1 fastv 0.3333)"
plan divprune-fastv-L1-b25 "$(first 0.3333), $(dec 1 fastv 0.1667)"
plan divprune-fastv-L1-b12 "$(first 0.1667), $(dec 1 fastv 0.0833)"
# fastv at the shorthand's layer for 4 layers (after layer 0) for comparison: (d + 3k)/4; 25 %:
# `divprune-fastv` (run_decoder_grid.sh).
plan fastv-L0-b75 "$(dec 0 fastv 0.6667)"
plan fastv-L0-0.3333 "$(dec 0 fastv 0.3333)"
plan divprune-fastv-L0-b12 "$(first 0.25), $(dec 0 fastv 0.0833)"
# pyramiddrop with original ids after layers 0/1/2 (the shorthand's layers and keeps F, F², F³;
# F = 0.81 for 75 %, 0.5437 for 50 %: the paper's 0.5 gives 46.9 %, `pyramiddrop-original`). 25 %:
# `divprune-pyramiddrop-original` (run_decoder_grid.sh); 12.5 % halves the 25 % stack.
plan pyramiddrop-original-b50 "$(dec 0 pyramiddrop 0.5437 "$orig"), $(dec 1 pyramiddrop 0.2956 "$orig"), $(dec 2 pyramiddrop 0.1607 "$orig")"
plan pyramiddrop-original-b75 "$(dec 0 pyramiddrop 0.81 "$orig"), $(dec 1 pyramiddrop 0.6561 "$orig"), $(dec 2 pyramiddrop 0.5314 "$orig")"
plan divprune-pyramiddrop-original-b12 "$(first 0.25), $(dec 0 pyramiddrop 0.125 "$orig"), $(dec 1 pyramiddrop 0.0625 "$orig"), $(dec 2 pyramiddrop 0.0625 "$orig")"
# sparsevlm with original ids, recycling on, after layers 0/1/2 keeping F, F², F³ + merged rows:
# F = 0.8 for 75 %, 0.52 for 50 % (SmolVLM 80+44+23+12, LLaVA 144+78+41+21 rows per layer: 49.7 /
# 49.3 %; the paper's 0.5 less the merged rows, 46.5-46.9 %, is `sparsevlm-original`). 25 %:
# `divprune-sparsevlm-original` (run_decoder_grid.sh). 12.5 %: the 25 % stack halved, its keeps
# lowered for the merged rows as there (SmolVLM 20+10+5+5, LLaVA 36+17+9+8 per image).
plan sparsevlm-original-b50 "$(dec 0 sparsevlm 0.52 "$orig"), $(dec 1 sparsevlm 0.2704 "$orig"), $(dec 2 sparsevlm 0.1406 "$orig")"
plan sparsevlm-original-b75 "$(dec 0 sparsevlm 0.8 "$orig"), $(dec 1 sparsevlm 0.64 "$orig"), $(dec 2 sparsevlm 0.512 "$orig")"
plan divprune-sparsevlm-original-b12 "$(first 0.25), $(dec 0 sparsevlm 0.1125 "$orig"), $(dec 1 sparsevlm 0.0556 "$orig"), $(dec 2 sparsevlm 0.05 "$orig")"
# feather: the shorthand's grid after layer 0 keeping F and attention after layer 1 keeping F²
# (F = 0.78 for 75 %). 50 %: `feather-0.5`; 25 %: `divprune-feather` (run_feather_grid.sh, written
# again here for the model that lacks it on 400 scenes); 12.5 % halves the 25 % stack.
plan feather-b75 "$(dec 0 feather 0.78), $(dec 1 feather 0.6084)"
plan divprune-feather "$(first 0.5), $(dec 0 feather 0.25), $(dec 1 feather 0.125)"
plan divprune-feather-b12 "$(first 0.25), $(dec 0 feather 0.125), $(dec 1 feather 0.0625)"
# Priority order: 50 and 25 % first, then 12.5 %, then 75 % (and random at 75 %).
runs=${RUNS:-"divprune-fastv-L1-b50 divprune-fastv-L1-b25 divprune-feather \
  divprune-fastv-L1-b12 divprune-pyramiddrop-original-b12 divprune-sparsevlm-original-b12 divprune-feather-b12 \
  fastv-L1-b75 pyramiddrop-original-b75 sparsevlm-original-b75 feather-b75 random-0.75 \
  fastv-L0-b75 fastv-L0-0.3333 divprune-fastv-L0-b12 pyramiddrop-original-b50 sparsevlm-original-b50"}
eval_runs "$runs"
