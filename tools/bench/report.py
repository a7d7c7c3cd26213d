#!/usr/bin/env python3
"""Markdown tables from `glimpse-bench kernels` reports (python3, stdlib only).

usage: report.py [--metric cpu|best|median] [--top N] RUN.json [RUN2.json]

One table per shape: every kernel, sorted by the chosen rate, with its weight type,
arithmetic (activation class), GFLOP/s (and weight GB/s for M = 1) and the spread
of its timing. With two files (e.g. --threads 1 and --threads 2 runs) both rates are
shown side by side, sorted by the second.
metric: cpu = gflops_cpu (CPU-time based, robust on a shared machine; default),
        best = gflops_best (wall time of the fastest repetition), median = gflops.
"""
import argparse
import json


def rate(r, metric):
    return {"cpu": r.get("gflops_cpu"), "best": r.get("gflops_best"), "median": r.get("gflops")}[metric] or 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+")
    p.add_argument("--metric", default="cpu", choices=["cpu", "best", "median"])
    p.add_argument("--top", type=int, default=0, help="only the N fastest per shape")
    args = p.parse_args()
    runs = [json.load(open(f)) for f in args.files]
    shapes, rows = [], {}
    for i, d in enumerate(runs):
        for r in d["results"]:
            s = r["shape"]["name"]
            if s not in rows:
                shapes.append(s)
                rows[s] = {}
            rows[s].setdefault(r["kernel"], [None] * len(runs))[i] = r
    heads = [f"T={d['threads']} GFLOP/s" for d in runs]
    for s in shapes:
        any_r = next(r for rs in rows[s].values() for r in rs if r)
        sh = any_r["shape"]
        print(f"\n**{s}** ({sh['class']}, M={sh['M']} K={sh['K']} N={sh['N']})\n")
        m1 = sh["M"] == 1
        cols = ["kernel", "weights", "arith"] + heads + (["GB/s (last)"] if m1 else []) + ["spread"]
        print("| " + " | ".join(cols) + " |")
        print("|" + "|".join(["---"] * 3 + ["---:"] * (len(cols) - 3)) + "|")
        items = list(rows[s].items())
        items.sort(key=lambda kv: -(rate(kv[1][-1], args.metric) if kv[1][-1] else 0))
        if args.top:
            items = items[: args.top]
        for name, rs in items:
            last = next(r for r in reversed(rs) if r)
            vals = [f"{rate(r, args.metric):.1f}" if r else "-" for r in rs]
            gbs = []
            if m1:
                r = rs[-1] or last
                cpu_ms = r.get("cpu_median_ms") or r["median_ms"]
                ms = cpu_ms if args.metric == "cpu" else (r["min_ms"] if args.metric == "best" else r["median_ms"])
                gbs = [f"{r['weight_bytes'] / (ms * 1e6):.1f}"]
            spread = (last["max_ms"] - last["min_ms"]) / last["median_ms"] if last["median_ms"] else 0
            print(f"| {name} | {last['w_type']} | {last['activations']} | " + " | ".join(vals + gbs) + f" | {100 * spread:.0f}% |")


if __name__ == "__main__":
    main()
