#!/usr/bin/env python3
"""Compare two glimpse-bench JSON reports (same command): per kernel/shape for
`kernels`, per stage for `e2e`. Python 3 standard library only.

usage: compare.py BASE.json NEW.json [--threshold PCT] [--filter SUBSTRING]

Ratios are NEW/BASE of throughput (higher is better: >1 means NEW is faster).
Rows whose change exceeds --threshold (default 5%) are marked; the machine,
thread count and commit of both runs are printed first, since results are only
comparable on the same machine and thread count.
"""
import argparse
import json
import sys


def load(path):
    with open(path) as f:
        d = json.load(f)
    if not str(d.get("schema", "")).startswith("glimpse-bench/"):
        sys.exit(f"{path}: not a glimpse-bench report (schema {d.get('schema')!r})")
    return d


def header(tag, d):
    m = d.get("machine", {})
    bw = d.get("memory_bandwidth") or {}
    print(f"{tag}: {d.get('command')} commit {d.get('commit')} label {d.get('label')!r} "
          f"{d.get('timestamp')} threads {d.get('threads')} | {m.get('cpu_model')} "
          f"active isa {m.get('active_isa')} | read bw {bw.get('read_gbs', 0):.1f} GB/s")


def mark(ratio, threshold):
    if ratio is None:
        return ""
    if ratio > 1 + threshold:
        return "  faster"
    if ratio < 1 - threshold:
        return "  SLOWER"
    return ""


def compare_kernels(a, b, threshold, flt):
    def index(d):
        return {(r["kernel"], r["shape"]["name"]): r for r in d.get("results", [])}
    ia, ib = index(a), index(b)
    keys = sorted(set(ia) | set(ib), key=lambda k: (k[1], k[0]))
    print(f"\n{'shape':<24} {'kernel':<30} {'base GF/s':>10} {'new GF/s':>10} {'ratio':>7}")
    for k in keys:
        if flt and flt not in k[0] and flt not in k[1]:
            continue
        ra, rb = ia.get(k), ib.get(k)
        ga = ra["gflops"] if ra else None
        gb = rb["gflops"] if rb else None
        ratio = gb / ga if ga and gb else None
        fa = f"{ga:10.1f}" if ga is not None else f"{'-':>10}"
        fb = f"{gb:10.1f}" if gb is not None else f"{'-':>10}"
        fr = f"{ratio:7.2f}" if ratio is not None else f"{'new' if ga is None else 'gone':>7}"
        print(f"{k[1]:<24} {k[0]:<30} {fa} {fb} {fr}{mark(ratio, threshold)}")
    # The other op families (op_results): throughput is 1 / median time.
    oa = {(r["kernel"], r["case"]): r for r in a.get("op_results", [])}
    ob = {(r["kernel"], r["case"]): r for r in b.get("op_results", [])}
    if oa or ob:
        print(f"\n{'op case':<24} {'kernel':<30} {'base ms':>10} {'new ms':>10} {'ratio':>7}")
        for k in sorted(set(oa) | set(ob), key=lambda k: (k[1], k[0])):
            if flt and flt not in k[0] and flt not in k[1]:
                continue
            ra, rb = oa.get(k), ob.get(k)
            ma = ra["median_ms"] if ra else None
            mb = rb["median_ms"] if rb else None
            ratio = ma / mb if ma and mb else None
            fa = f"{ma:10.4f}" if ma is not None else f"{'-':>10}"
            fb = f"{mb:10.4f}" if mb is not None else f"{'-':>10}"
            fr = f"{ratio:7.2f}" if ratio is not None else f"{'new' if ma is None else 'gone':>7}"
            print(f"{k[1]:<24} {k[0]:<30} {fa} {fb} {fr}{mark(ratio, threshold)}")
    sa = {(s["shape"], s["w_type"]): s["kernel"] for s in a.get("selected", [])}
    sb = {(s["shape"], s["w_type"]): s["kernel"] for s in b.get("selected", [])}
    changed = [(k, sa.get(k), sb.get(k)) for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]
    if changed:
        print("\nselection changes:")
        for (shape, t), ka, kb in changed:
            print(f"  {shape:<24} {t:<5} {ka} -> {kb}")


def compare_e2e(a, b, threshold):
    rows = [
        ("encode median chunk (ms)", lambda d: d["encode"]["median_chunk_ms"], False),
        ("encode total (ms)", lambda d: d["timings_ms"]["encode"], False),
        ("prefill (tok/s)", lambda d: d["prefill"]["tokens_per_s"], True),
        ("decode (tok/s)", lambda d: d["decode"]["tokens_per_s"], True),
        ("load (ms)", lambda d: d["timings_ms"]["load"], False),
        ("planned memory (MiB)", lambda d: d["memory"]["planned"]["total"] / 2**20, False),
        ("peak RSS (MiB)", lambda d: d["memory"]["peak_rss_bytes"] / 2**20, False),
    ]
    print(f"\n{'metric':<28} {'base':>10} {'new':>10} {'speedup':>8}")
    for name, get, higher_better in rows:
        try:
            va, vb = get(a), get(b)
        except (KeyError, TypeError):
            continue
        ratio = None
        if va and vb:
            ratio = vb / va if higher_better else va / vb
        fr = f"{ratio:8.2f}" if ratio is not None else f"{'-':>8}"
        print(f"{name:<28} {va:10.1f} {vb:10.1f} {fr}{mark(ratio, threshold)}")
    ka, kb = a.get("kernels", {}), b.get("kernels", {})
    if ka != kb:
        print("\nkernel choices changed:")
        for part in ("vision", "text"):
            if ka.get(part) != kb.get(part):
                print(f"  {part}: {ka.get(part)} -> {kb.get(part)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base")
    p.add_argument("new")
    p.add_argument("--threshold", type=float, default=5.0, help="percent change to flag (default 5)")
    p.add_argument("--filter", default="", help="only kernel/shape rows containing this substring")
    args = p.parse_args()
    a, b = load(args.base), load(args.new)
    if a.get("command") != b.get("command"):
        sys.exit(f"different commands: {a.get('command')} vs {b.get('command')}")
    header("base", a)
    header("new ", b)
    if a.get("threads") != b.get("threads") or a.get("machine", {}).get("cpu_model") != b.get("machine", {}).get("cpu_model"):
        print("warning: different machine or thread count; ratios are not like for like")
    if a["command"] == "kernels":
        compare_kernels(a, b, args.threshold / 100, args.filter)
    else:
        compare_e2e(a, b, args.threshold / 100)


if __name__ == "__main__":
    main()
