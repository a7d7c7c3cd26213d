#!/usr/bin/env python3
"""The in-LLM grid of docs/pruning.md ("The in-LLM grid"): each decoder method in its best
configuration at about 75 / 50 / 25 / 12.5 % of the image's visual tokens per decoder layer, on
both bundled models, against random after the projector at the same budget.

  inllm_grid.py DECODER.jsonl [MORE.jsonl ...] --random PART1_ORIGINAL.jsonl [...]

DECODER.jsonl: runs with "run" names (run_decoder_grid.sh, run_feather_grid.sh,
run_inllm_grid.sh); PART1_ORIGINAL.jsonl: part 1's original-id grids (run_grid.sh), whose
`random keep F` and `divprune keep F` runs spend F of the tokens in every layer. Only 400-scene
runs count. Prints the Markdown table: per model the point's share per layer, its accuracy (and
share of unpruned), then random and divprune after the projector at the nearest share within 5
points (with the difference to the point). GRID below says which run is each method's point at
each budget.
"""
import json
import sys

# method -> (configuration in words, [run name per target budget, largest first]). A budget the
# method cannot reach alone on 4 layers is a stack behind a divprune stage (the name says so).
GRID = {
    "fastv": ("after layer 1, original ids; divprune first below 75 %",
              ["fastv-L1-b75", "divprune-fastv-L1-b50", "divprune-fastv-L1-b25", "divprune-fastv-L1-b12"]),
    # fastv at the layer its shorthand picks on 4 layers (after layer 0), for comparison
    "fastv (after layer 0)": ("after layer 0, original ids; divprune first below 50 %",
                              ["fastv-L0-b75", "fastv-L0-0.3333", "divprune-fastv", "divprune-fastv-L0-b12"]),
    "pyramiddrop": ("after layers 0/1/2, original ids; divprune first below 50 %",
                    ["pyramiddrop-original-b75", "pyramiddrop-original-b50", "divprune-pyramiddrop-original",
                     "divprune-pyramiddrop-original-b12"]),
    "sparsevlm": ("after layers 0/1/2, original ids, recycling; divprune first below 50 %",
                  ["sparsevlm-original-b75", "sparsevlm-original-b50", "divprune-sparsevlm-original",
                   "divprune-sparsevlm-original-b12"]),
    "feather": ("grid after layer 0, attention after layer 1; divprune first below 50 %",
                ["feather-b75", "feather-0.5", "divprune-feather", "divprune-feather-b12"]),
}
BUDGETS = [0.75, 0.5, 0.25, 0.125]
MODELS = ["scenes-smolvlm-f16", "scenes-llava-f16"]


def stem(run):
    return run["model"].split("/")[-1].replace("-text.gguf", "")


def per_layer_share(run):
    """Average share of the image's visual tokens per decoder layer (part 1's runs: kept / in)."""
    vt = run["visual_tokens"]
    return vt.get("per_decoder_layer", vt["kept"]) / vt["in"]


def load(paths):
    return [json.loads(line) for path in paths for line in open(path) if line.strip()]


def grid_points(decoder_runs):
    """{(method, budget index, model stem): run} of the GRID runs present (400 scenes)."""
    by_name = {(r.get("run"), stem(r)): r for r in decoder_runs if r.get("scenes") == 400}
    return {(method, i, model): by_name[(name, model)]
            for method, (_, names) in GRID.items() for i, name in enumerate(names)
            for model in MODELS if (name, model) in by_name}


def nearest(runs, model, share):
    """The run of `model` whose per-layer share is nearest `share`; None beyond 5 points."""
    mine = [r for r in runs if stem(r) == model]
    best = min(mine, key=lambda r: abs(per_layer_share(r) - share), default=None)
    if best is None or abs(per_layer_share(best) - share) > 0.05:
        return None
    return best


def main():
    args = sys.argv[1:]
    split = args.index("--random")
    decoder_runs, part1 = load(args[:split]), load(args[split + 1:])
    decoder_runs = [r for r in decoder_runs if r.get("scenes") == 400]
    unpruned = {stem(r): r["overall"] for r in decoder_runs if r.get("run") == "none"}
    randoms = [r for r in part1 if r.get("scenes") == 400 and r["pruning"].startswith("random keep")]
    randoms += [r for r in decoder_runs if r.get("run", "").startswith("random-")]
    divprunes = [r for r in part1 if r.get("scenes") == 400 and r["pruning"].startswith("divprune keep")]
    points = grid_points(decoder_runs)
    head = "| method | budget | plan |"
    for model in MODELS:
        short = model.split("-")[1]
        head += " %s per layer | overall (of unpruned) | random there (point − it) | divprune there |" % short
    print(head)
    print("|---|---:|---|" + "---:|---:|---:|---:|" * len(MODELS))
    for method, (_, names) in GRID.items():
        for i, budget in enumerate(BUDGETS):
            cells = [method, "%g %%" % (100 * budget), "`%s`" % names[i]]
            for model in MODELS:
                run = points.get((method, i, model))
                if run is None:
                    cells += ["not run", "-", "-", "-"]
                    continue
                share = per_layer_share(run)
                cells += ["%.1f %%" % (100 * share),
                          "%.2f %% (%.1f %%)" % (100 * run["overall"], 100 * run["overall"] / unpruned[model])]
                for ref in (nearest(randoms, model, share), nearest(divprunes, model, share)):
                    cells.append("-" if ref is None else "%.2f %% at %.1f %% (%+.2f)" % (
                        100 * ref["overall"], 100 * per_layer_share(ref), 100 * (run["overall"] - ref["overall"])))
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
