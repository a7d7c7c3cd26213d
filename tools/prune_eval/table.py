#!/usr/bin/env python3
"""Pruning quality table from `glimpse eval --json` runs (tools/prune_eval/run_grid.sh output).

  table.py OUT.json LABEL=runs.jsonl[,original:runs2.jsonl] ...

Writes the combined JSON (one entry per model: its runs) to OUT.json and prints the Markdown
table of docs/pruning.md: accuracy per question kind and overall, visual tokens kept, and the
overall as a share of the unpruned run's.
"""
import json
import sys

KINDS = ["color", "count", "exist", "position", "text"]


def main():
    out_path = sys.argv[1]
    combined = {}
    for arg in sys.argv[2:]:
        label, path = arg.split("=", 1)
        # LABEL=compact.jsonl,original:other.jsonl -- runs of the second file made with
        # --prune-positions original (eval's JSON does not say so itself).
        runs = []
        for part in path.split(","):
            positions, _, file = part.rpartition(":")
            for line in open(file):
                if line.strip():
                    runs.append(normalise(json.loads(line), positions or "compact"))
        combined[label] = runs
    with open(out_path, "w") as f:
        json.dump(combined, f, indent=1)
        f.write("\n")
    print_table(combined)


def normalise(r, positions):
    """Newer evals say their ids in the label ("divprune keep 0.5 original ids"): move that to
    r["positions"], so every run's label is "METHOD keep F"."""
    r["positions"] = positions
    for ids in ("original", "compact"):
        suffix = " %s ids" % ids
        if r.get("pruning", "").endswith(suffix):
            r["pruning"] = r["pruning"][: -len(suffix)]
            r["positions"] = ids
    return r


def print_table(combined):
    print("| model | method | ids | keep | tokens kept / in | overall | of unpruned | " + " | ".join(KINDS) + " |")
    print("|---|---|---|---:|---:|---:|---:|" + "---:|" * len(KINDS))
    for label, runs in combined.items():
        base = next(r for r in runs if not r["pruning"])
        for r in runs:
            method, keep = (r["pruning"].split(" keep ") if r["pruning"] else ("none", "1"))
            acc = r["accuracy"]
            kinds = " | ".join(
                "%.2f" % (100.0 * acc[k]["correct"] / acc[k]["total"]) if k in acc and acc[k]["total"] else "-"
                for k in KINDS)
            print("| %s | %s | %s | %s | %d / %d | %.2f %% | %.1f %% | %s |" % (
                label, method, r["positions"] if r["pruning"] else "-", keep, r["visual_tokens"]["kept"], r["visual_tokens"]["in"], 100.0 * r["overall"],
                100.0 * r["overall"] / base["overall"], kinds))


if __name__ == "__main__":
    main()
