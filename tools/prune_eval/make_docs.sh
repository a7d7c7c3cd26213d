#!/bin/sh
# Regenerates docs/bench/pruning-bundled.json, docs/bench/pruning-bundled.svg and prints the
# docs/pruning.md table from the grids' JSON lines (see run_grid.sh; original-id runs add
# --prune-positions original to each eval). The in-LLM runs (issue 24: run_decoder_grid.sh,
# run_feather_grid.sh, run_inllm_grid.sh) are drawn as markers from their JSON lines in
# docs/bench/, their table rows printed by decoder_rows.py, and the in-LLM grid (each method at
# four budgets against random) by inllm_grid.py. After merge.py has added runs to the combined
# JSON, rerun only the last three commands: table.py would rebuild it from these four files alone.
#   make_docs.sh SMOL_COMPACT.jsonl SMOL_ORIGINAL.jsonl LLAVA_COMPACT.jsonl LLAVA_ORIGINAL.jsonl
set -eu
d=$(dirname "$0")
python3 "$d/table.py" docs/bench/pruning-bundled.json \
  "scenes-smolvlm-f16=$1,original:$2" "scenes-llava-f16=$3,original:$4"
python3 "$d/plot.py" docs/bench/pruning-bundled.json docs/bench/pruning-bundled.svg \
  docs/bench/pruning-decoder-bundled.jsonl docs/bench/pruning-feather-bundled.jsonl
python3 "$d/decoder_rows.py" docs/bench/pruning-decoder-bundled.jsonl docs/bench/pruning-feather-bundled.jsonl
python3 "$d/inllm_grid.py" docs/bench/pruning-decoder-bundled.jsonl docs/bench/pruning-feather-bundled.jsonl \
  --random "$2" "$4"
