#!/bin/sh
# Decoder-layer pruning grid on a bundled model (issue 24, docs/pruning.md): no plan, fastv,
# pyramiddrop, random at the same average visual tokens per decoder layer, and stacks with a
# post-projector divprune stage; each `glimpse eval --preset bundled --json` on the same scenes,
# one JSON line per run with its "run" name and "model_stem" (visual_tokens.per_decoder_layer is
# the budget).
#   [RUNS="..."] tools/prune_eval/run_decoder_grid.sh BUILD_DIR STEM SCENES PLAN_DIR > out.jsonl
# e.g. run_decoder_grid.sh build scenes-smolvlm-f16 1000000:1000400 /tmp/plans
# Budgets on a 4-layer model, as fractions of the image's visual tokens per layer:
#   fastv@L0 keep k: (1 + 3k)/4;  pyramiddrop [L0 a, L1 b, L2 c]: (1 + a + b + c)/4;
#   divprune d + decoder stages: (d + ...)/4.
set -eu
build=$1; stem=$2; scenes=$3; plans=$4
. "$(dirname "$0")/decoder_plans.sh"
plan fastv-L0-0.5 "$(dec 0 fastv 0.5)"
plan fastv-L0-0.25 "$(dec 0 fastv 0.25)"
plan fastv-L1-0.25 "$(dec 1 fastv 0.25)"
plan pyramiddrop "$(dec 0 pyramiddrop 0.5), $(dec 1 pyramiddrop 0.25), $(dec 2 pyramiddrop 0.125)"
plan pyramiddrop-original "$(dec 0 pyramiddrop 0.5 '{"positions": "original"}'), $(dec 1 pyramiddrop 0.25 '{"positions": "original"}'), $(dec 2 pyramiddrop 0.125 '{"positions": "original"}')"
plan divprune-fastv "$post, $(dec 0 fastv 0.1667)"
plan divprune-pyramiddrop "$post, $(dec 0 pyramiddrop 0.25), $(dec 1 pyramiddrop 0.125), $(dec 2 pyramiddrop 0.125)"
plan divprune-pyramiddrop-original "$post, $(dec 0 pyramiddrop 0.25 '{"positions": "original"}'), $(dec 1 pyramiddrop 0.125 '{"positions": "original"}'), $(dec 2 pyramiddrop 0.125 '{"positions": "original"}')"
# Later decoder stages after a smaller post-projector stage (the SmolVLM layout needs them):
plan divprune-late-pyramiddrop '{"at": "after_projector", "method": "divprune", "keep": 0.34}, '"$(dec 1 pyramiddrop 0.16 '{"positions": "original"}')"
plan divprune-L2-pyramiddrop '{"at": "after_projector", "method": "divprune", "keep": 0.28}, '"$(dec 2 pyramiddrop 0.16 '{"positions": "original"}')"
# SparseVLM (sparsevlm: text raters, recycling on by default, compact ids), stages after layers
# 0/1/2 (its pruning_loc 2, 6, 15 scaled). With recycling, each stage adds int(r/10)+1 merged
# rows (r = int(0.3·dropped)+1), so its keeps are lowered to spend the same visual rows per layer
# as the pyramiddrop plans (SmolVLM 80 per image: 80+40+20+10; LLaVA 144: 144+71+36+17 vs 270).
plan sparsevlm "$(dec 0 sparsevlm 0.475), $(dec 1 sparsevlm 0.2375), $(dec 2 sparsevlm 0.1125)"
plan sparsevlm-norecycle "$(dec 0 sparsevlm 0.5 '{"recycle": false}'), $(dec 1 sparsevlm 0.25 '{"recycle": false}'), $(dec 2 sparsevlm 0.125 '{"recycle": false}')"
plan sparsevlm-original "$(dec 0 sparsevlm 0.475 '{"positions": "original"}'), $(dec 1 sparsevlm 0.2375 '{"positions": "original"}'), $(dec 2 sparsevlm 0.1125 '{"positions": "original"}')"
plan divprune-sparsevlm-original "$post, $(dec 0 sparsevlm 0.2375 '{"positions": "original"}'), $(dec 1 sparsevlm 0.1125 '{"positions": "original"}'), $(dec 2 sparsevlm 0.1125 '{"positions": "original"}')"
plan divprune-sparsevlm-original-norecycle "$post, $(dec 0 sparsevlm 0.25 '{"positions": "original", "recycle": false}'), $(dec 1 sparsevlm 0.125 '{"positions": "original", "recycle": false}'), $(dec 2 sparsevlm 0.125 '{"positions": "original", "recycle": false}')"
# One sparsevlm stage after layer 1 behind a smaller divprune (cf. divprune-late-pyramiddrop): 25 %.
plan divprune-late-sparsevlm-original '{"at": "after_projector", "method": "divprune", "keep": 0.34}, '"$(dec 1 sparsevlm 0.15 '{"positions": "original"}')"
plan divprune-late-sparsevlm-original-norecycle '{"at": "after_projector", "method": "divprune", "keep": 0.34}, '"$(dec 1 sparsevlm 0.16 '{"positions": "original", "recycle": false}')"
# Runs in priority order (the stacks at an average of 25 % first); RUNS="..." picks some.
runs=${RUNS:-"divprune-pyramiddrop-original divprune-pyramiddrop divprune-fastv fastv-L0-0.25 pyramiddrop \
  divprune-late-pyramiddrop divprune-L2-pyramiddrop fastv-L1-0.25 \
  random-0.4375 random-0.46875 pyramiddrop-original fastv-L0-0.5 random-0.625 none"}
eval_runs "$runs"
