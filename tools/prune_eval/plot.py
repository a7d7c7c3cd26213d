#!/usr/bin/env python3
"""SVG plot of pruning accuracy against the share of visual tokens kept (no dependencies).

  plot.py pruning.json out.svg [DECODER.jsonl ...]
      (pruning.json: table.py's combined JSON; DECODER.jsonl: the in-LLM runs of
       run_decoder_grid.sh / run_feather_grid.sh / run_inllm_grid.sh, their 400-scene runs
       other than none/random)

One panel per model; one colour per method: solid lines original position ids (the default),
dotted lines compact ids; the unpruned accuracy as a dashed black line. In-LLM runs (issue 24)
are markers at their average share of visual tokens per decoder layer: one colour per decoder
method, a circle alone, a square stacked after an after_projector stage; the points of the in-LLM
grid (inllm_grid.py's GRID: each method's best configuration at 75/50/25/12.5 % per layer) are
joined by a dash-dot line of the method's colour, ending at the unpruned run.
"""
import json
import sys

from inllm_grid import grid_points

COLORS = ["#888888", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
          "#bcbd22", "#000080"]
W, H, PAD = 460, 340, 48
DECODER_METHODS = [("pyramiddrop", "#000000"), ("sparsevlm", "#d4a017"), ("feather", "#008080"), ("fastv", "#ff00ff")]


def decoder_points(runs):
    """(share per decoder layer, overall, method colour, stacked) of each in-LLM run."""
    pts = []
    for r in runs:
        name = r.get("run", "")
        method = next((m for m in DECODER_METHODS if m[0] in name), None)
        if method is None or r.get("scenes") != 400:
            continue
        vt = r["visual_tokens"]
        pts.append((vt["per_decoder_layer"] / vt["in"], r["overall"], method[1], name.startswith("divprune")))
    return pts


def grid_lines(decoder_runs, label):
    """(method colour, [(share per decoder layer, overall), ...]) of each in-LLM method's grid."""
    points = grid_points(decoder_runs)
    lines = []
    for method, colour in DECODER_METHODS:
        pts = sorted((r["visual_tokens"]["per_decoder_layer"] / r["visual_tokens"]["in"], r["overall"])
                     for (m, _, model), r in points.items() if m == method and model == label)
        if pts:
            lines.append((colour, pts))
    return lines


def panel(x0, label, runs, methods, decoder=(), lines=()):
    out = []
    px = lambda f: x0 + PAD + f * (W - 2 * PAD)
    py = lambda a: 20 + (H - PAD - 20) * (1 - a)
    out.append('<text x="%d" y="14" font-size="13">%s</text>' % (x0 + PAD, label))
    out.append('<rect x="%d" y="20" width="%d" height="%d" fill="none" stroke="#000"/>' % (px(0), W - 2 * PAD, H - PAD - 20))
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        out.append('<text x="%d" y="%d" font-size="10" text-anchor="end">%d%%</text>' % (px(0) - 4, py(t) + 3, t * 100))
        out.append('<text x="%d" y="%d" font-size="10" text-anchor="middle">%g</text>' % (px(t), H - PAD + 14, t))
    out.append('<text x="%d" y="%d" font-size="11" text-anchor="middle">share of visual tokens kept</text>' % (px(0.5), H - 12))
    base = next(r for r in runs if not r["pruning"])["overall"]
    out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#000" stroke-dasharray="4 3"/>' % (px(0), px(1), py(base), py(base)))
    present = [m for m in methods if any(r["pruning"] and r["pruning"].split(" keep ")[0] == m for r in runs)]
    for i, m in enumerate(methods):
        c = COLORS[i % len(COLORS)]
        for positions, dash in (("original", ""), ("compact", ' stroke-dasharray="1 3"')):
            pts = sorted((r["visual_tokens"]["kept"] / r["visual_tokens"]["in"], r["overall"]) for r in runs
                         if r["pruning"] and r["pruning"].split(" keep ")[0] == m and r.get("positions", "compact") == positions)
            if not pts:
                continue
            pts.append((1.0, base))  # keep 1.0 is the unpruned run, byte for byte
            pts.sort()
            out.append('<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>' % (
                c, dash, " ".join("%.1f,%.1f" % (px(f), py(a)) for f, a in pts)))
        if m in present:
            out.append('<text x="%d" y="%d" font-size="11" fill="%s">%s</text>' % (
                px(0.66), py(0.5) + 13 * present.index(m), c, m))
    out.append('<text x="%d" y="%d" font-size="10">solid: original ids; dotted: compact</text>' % (px(0.3), py(0.5) - 8))
    for c, pts in lines:
        pts = pts + [(1.0, base)]  # every method at keep 1.0 is the unpruned run
        out.append('<polyline fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="6 2 1 2" points="%s"/>' % (
            c, " ".join("%.1f,%.1f" % (px(f), py(a)) for f, a in pts)))
    for f, a, c, stacked in decoder:
        if stacked:
            out.append('<rect x="%.1f" y="%.1f" width="7" height="7" fill="%s"/>' % (px(f) - 3.5, py(a) - 3.5, c))
        else:
            out.append('<circle cx="%.1f" cy="%.1f" r="4" fill="none" stroke="%s" stroke-width="1.5"/>' % (px(f), py(a), c))
    if decoder:  # left of the method list (which starts at x = 0.66), in four short lines
        y0 = py(0.34)
        out.append('<text x="%d" y="%d" font-size="10">in-LLM: x = share per decoder layer</text>' % (px(0.02), y0))
        out.append('<text x="%d" y="%d" font-size="10">o alone, &#9632; stacked, dash-dot: grid</text>' % (
            px(0.02), y0 + 12))
        for i, (m, c) in enumerate(DECODER_METHODS):
            out.append('<text x="%d" y="%d" font-size="10" fill="%s">%s</text>' % (
                px(0.02) + 75 * (i % 2), y0 + 24 + 12 * (i // 2), c, m))
    return out


def main():
    data = json.load(open(sys.argv[1]))
    decoder_runs = [json.loads(line) for path in sys.argv[3:] for line in open(path) if line.strip()]
    methods = []
    for runs in data.values():
        for r in runs:
            m = r["pruning"].split(" keep ")[0]
            if m and m not in methods:
                methods.append(m)
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">' % (W * len(data), H),
             '<rect width="100%" height="100%" fill="#fff"/>']
    for k, (label, runs) in enumerate(data.items()):
        mine = [r for r in decoder_runs if r["model"].split("/")[-1].replace("-text.gguf", "") == label]
        parts += panel(k * W, label + ": overall accuracy (dashed: unpruned)", runs, methods, decoder_points(mine),
                       grid_lines(decoder_runs, label))
    parts.append("</svg>")
    open(sys.argv[2], "w").write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
