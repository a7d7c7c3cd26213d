#!/bin/sh
# Regenerates docs/bench/pruning-bundled.json, docs/bench/pruning-bundled.svg and prints the
# docs/pruning.md table from the grids' JSON lines (see run_grid.sh; original-id runs add
# --prune-positions original to each eval). The in-LLM runs (issue 24: run_decoder_grid.sh,
# run_feather_grid.sh) are drawn as markers from their JSON lines in docs/bench/, and their
# table rows printed by decoder_rows.py.
#   make_docs.sh SMOL_COMPACT.jsonl SMOL_ORIGINAL.jsonl LLAVA_COMPACT.jsonl LLAVA_ORIGINAL.jsonl
set -eu
d=$(dirname "$0")
python3 "$d/table.py" docs/bench/pruning-bundled.json \
  "scenes-smolvlm-f16=$1,original:$2" "scenes-llava-f16=$3,original:$4"
python3 "$d/plot.py" docs/bench/pruning-bundled.json docs/bench/pruning-bundled.svg \
  docs/bench/pruning-decoder-bundled.jsonl docs/bench/pruning-feather-bundled.jsonl
python3 "$d/decoder_rows.py" docs/bench/pruning-decoder-bundled.jsonl docs/bench/pruning-feather-bundled.jsonl
