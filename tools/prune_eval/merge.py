#!/usr/bin/env python3
"""Adds runs to the combined pruning JSON (table.py's output) without re-running the rest.

  merge.py pruning.json LABEL=runs.jsonl ...

Each run of runs.jsonl (`glimpse eval --json` lines) replaces the run of the same model label,
method, keep and position ids, or is appended; keep-1.0 runs are kept in the JSON (they equal the
unpruned run byte for byte). Prints the whole Markdown table (table.py's) afterwards.
"""
import json
import sys

from table import normalise, print_table


def main():
    path = sys.argv[1]
    combined = json.load(open(path))
    for arg in sys.argv[2:]:
        label, file = arg.split("=", 1)
        runs = combined.setdefault(label, [])
        for line in open(file):
            if not line.strip():
                continue
            r = normalise(json.loads(line), "compact")
            key = (r["pruning"], r["positions"])
            runs[:] = [x for x in runs if not (x["pruning"] and (x["pruning"], x.get("positions", "compact")) == key)]
            runs.append(r)
    with open(path, "w") as f:
        json.dump(combined, f, indent=1)
        f.write("\n")
    print_table(combined)


if __name__ == "__main__":
    main()
