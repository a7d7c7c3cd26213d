#!/usr/bin/env python3
"""Per (shape, kernel): the lowest min_ms over several `glimpse-bench kernels` runs of A and
of B, and A/B (> 1: B is faster). On a shared machine the minimum over interleaved runs is
the estimate least inflated by other processes. Python 3 stdlib only.

usage: min_of_runs.py A1.json [A2.json ...] -- B1.json [B2.json ...]
"""
import json
import statistics
import sys


def lowest(paths):
    best = {}
    for p in paths:
        with open(p) as f:
            for r in json.load(f)["results"]:
                key = (r["shape"]["name"], r["kernel"])
                best[key] = min(best.get(key, float("inf")), r["min_ms"])
    return best


def main():
    args = sys.argv[1:]
    if "--" not in args:
        sys.exit(__doc__)
    cut = args.index("--")
    a, b = lowest(args[:cut]), lowest(args[cut + 1:])
    ratios = []
    print(f"{'shape':20s} {'kernel':26s} {'A ms':>9s} {'B ms':>9s} {'A/B':>6s}")
    for key in sorted(a):
        if key in b and b[key] > 0:
            r = a[key] / b[key]
            ratios.append(r)
            print(f"{key[0]:20s} {key[1]:26s} {a[key]:9.3f} {b[key]:9.3f} {r:6.2f}")
    if ratios:
        print(f"geomean {statistics.geometric_mean(ratios):.3f}  min {min(ratios):.2f}  max {max(ratios):.2f}")


if __name__ == "__main__":
    main()
