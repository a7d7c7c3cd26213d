#!/usr/bin/env python3
"""Merge several `glimpse-bench kernels` reports of one build on one machine into one,
keeping per (kernel, shape) the row with the lowest min_ms. Python 3 stdlib only.

usage: best_of.py RUN.json [RUN.json ...] > best.json
"""
import json
import sys


def main():
    paths = sys.argv[1:]
    if not paths:
        sys.exit(__doc__)
    runs = []
    for p in paths:
        with open(p) as f:
            d = json.load(f)
        if d.get("command") != "kernels" or not str(d.get("schema", "")).startswith("glimpse-bench/"):
            sys.exit(f"{p}: not a glimpse-bench kernels report")
        runs.append(d)
    out = dict(runs[0])
    best, medians = {}, {}
    for d in runs:
        for r in d.get("results", []):
            key = (r["kernel"], r["shape"]["name"])
            medians.setdefault(key, []).append(r["median_ms"])
            if key not in best or r["min_ms"] < best[key]["min_ms"]:
                best[key] = r
    results = []
    for key, r in best.items():
        r = dict(r)
        ms = medians[key]
        r["runs"] = len(ms)
        r["median_ms_spread"] = (max(ms) - min(ms)) / min(ms) if min(ms) > 0 else 0
        results.append(r)
    order = {(r["kernel"], r["shape"]["name"]): i for i, r in enumerate(runs[0].get("results", []))}
    results.sort(key=lambda r: order.get((r["kernel"], r["shape"]["name"]), len(order)))
    out["results"] = results
    bws = [d["memory_bandwidth"] for d in runs if d.get("memory_bandwidth")]
    if bws:
        out["memory_bandwidth"] = max(bws, key=lambda b: b["read_gbs"])
    out["merged_from"] = [{"timestamp": d.get("timestamp"), "label": d.get("label"), "commit": d.get("commit")} for d in runs]
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
