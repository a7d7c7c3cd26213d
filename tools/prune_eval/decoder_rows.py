#!/usr/bin/env python3
"""Markdown rows of the in-LLM runs (decoder-layer stages, alone or stacked) for docs/pruning.md's
all-methods table "Quality on the bundled models", from the JSON lines of run_decoder_grid.sh,
run_feather_grid.sh and run_inllm_grid.sh. Only 400-scene runs (the set of the all-methods
table); `random-*` and `none` runs are left out (the table has part 1's own).

  decoder_rows.py RUNS.jsonl [MORE.jsonl ...]

Columns as the table's: the `keep` column is the average share of the image's visual tokens per
decoder layer (what the in-LLM methods spend), and "tokens" that average per image over the
image's tokens. "of unpruned" is against the `none` run of the same file and model.
"""
import json
import sys

KINDS = ["color", "count", "exist", "position", "text"]


# Plans of run_decoder_grid.sh whose decoder stages set "positions": "original" without saying so
# in their name.
ORIGINAL_IDS = {"divprune-late-pyramiddrop", "divprune-L2-pyramiddrop"}


def ids_of(run):
    if "original" in run["run"] or run["run"] in ORIGINAL_IDS:
        return "original"
    # pyramiddrop/sparsevlm number compactly unless the plan says original; fastv/feather keep ids
    return "original" if any(m in run["run"] for m in ("fastv", "feather")) else "compact"


def main():
    runs = [json.loads(line) for path in sys.argv[1:] for line in open(path) if line.strip()]
    runs = [r for r in runs if r.get("scenes") == 400]
    unpruned = {r["model"]: r["overall"] for r in runs if r.get("run") == "none"}
    for r in runs:
        name = r.get("run", "")
        if not name or name == "none" or name.startswith("random"):
            continue
        model = r["model"].split("/")[-1].replace("-text.gguf", "")
        vt = r["visual_tokens"]
        per_layer = vt["per_decoder_layer"] / r["scenes"]
        share = vt["per_decoder_layer"] / vt["in"]
        base = unpruned.get(r["model"])
        cells = [model, "`%s` (in-LLM)" % name, ids_of(r), "%.3f per layer" % share,
                 "%.1f / %d per layer" % (per_layer, round(vt["in"] / r["scenes"])), "%.2f %%" % (100 * r["overall"]),
                 "%.1f %%" % (100 * r["overall"] / base) if base else "-"]
        for k in KINDS:
            a = r["accuracy"][k]
            cells.append("%.2f" % (100 * a["correct"] / a["total"]))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
