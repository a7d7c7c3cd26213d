#!/usr/bin/env python3
"""Runs the same held-out scene questions through glimpse and through llama.cpp's llama-mtmd-cli.

An independent check of glimpse on the bundled (trained) models: llama.cpp reads the same GGUF pair,
preprocesses the same PNG with its own code and answers each question greedily; this script reports
how often the two runtimes give the same answer, and each one's exact-match accuracy per question
kind, scored the way `glimpse eval` scores (lower case, surrounding spaces, quotes and final '.'/'!'
removed).

llama.cpp is not a dependency of glimpse and is never built by CI: build it yourself, outside this
tree (CPU backend; on Sapphire Rapids add -mno-amx-tile -mno-amx-int8 -mno-amx-bf16), and pass its
llama-mtmd-cli. Standard library only.

  tools/crosscheck/llamacpp_eval.py --llama-mtmd-cli ~/llama.cpp/build/bin/llama-mtmd-cli \\
      --glimpse build/tools/glimpse/glimpse --scenes-tool build/tools/scenes/glimpse-scenes \\
      -m models/bundled/scenes-smolvlm-f16-text.gguf --mmproj models/bundled/scenes-smolvlm-f16-mmproj.gguf \\
      --seeds 1000000:1000050 --preset bundled --work /tmp/xcheck [--json OUT.json]
"""
import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict

CAPTION_TOKENS = 96  # glimpse eval's caption_tokens
ANSWER_TOKENS = 8    # glimpse eval's answer_tokens


def normalize(answer):
    """The scoring rule of glimpse eval (tools/glimpse/eval.cpp normalize_answer)."""
    return answer.lower().strip(' \n\t.!"')


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit("failed (exit %d): %s\n%s" % (p.returncode, " ".join(cmd), p.stderr.decode(errors="replace")[-2000:]))
    return p.stdout


def llama_answer(args, image, prompt, n_tokens):
    """llama-mtmd-cli's generated text. It prints through common_log's asynchronous writer thread,
    which is not flushed when the process exits, so on a busy machine the tail of the text can be
    lost; a complete run ends with the "\n\n" printed last, and an incomplete one is run again."""
    cmd = [args.llama_mtmd_cli, "-m", args.model, "--mmproj", args.mmproj, "--image", image, "-p", prompt,
           "-n", str(n_tokens), "--temp", "0", "-t", str(args.threads)]
    for _ in range(10):
        out = run(cmd).decode("utf-8", errors="replace")
        if out.endswith("\n\n"):
            return out
    sys.exit("llama-mtmd-cli's output stayed incomplete after 10 runs: " + " ".join(cmd))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-mtmd-cli", required=True)
    ap.add_argument("--glimpse", required=True, help="glimpse CLI (build/tools/glimpse/glimpse)")
    ap.add_argument("--scenes-tool", required=True, help="glimpse-scenes (build/tools/scenes/glimpse-scenes)")
    ap.add_argument("-m", "--model", required=True, help="text model GGUF")
    ap.add_argument("--mmproj", required=True)
    ap.add_argument("--seeds", required=True, help="FROM:TO")
    ap.add_argument("--preset", default="bundled")
    ap.add_argument("--work", required=True, help="directory for the scene PNGs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write every sample with both answers here")
    args = ap.parse_args()

    scenes_dir = os.path.join(args.work, "scenes")
    os.makedirs(scenes_dir, exist_ok=True)
    run([args.scenes_tool, "--preset", args.preset, "--seeds", args.seeds, "--out", scenes_dir, "--quiet"])
    report = json.loads(run([args.glimpse, "eval", "-m", args.model, "--mmproj", args.mmproj, "--scenes", scenes_dir,
                             "-t", str(args.threads), "--json", "--samples"]))
    samples = report["samples"]

    same = defaultdict(int)
    total = defaultdict(int)
    glimpse_ok = defaultdict(int)
    llama_ok = defaultdict(int)
    rows = []
    for i, s in enumerate(samples):
        image = os.path.join(scenes_dir, "%d.png" % s["seed"])
        n = CAPTION_TOKENS if s["kind"] == "caption" else ANSWER_TOKENS
        theirs = llama_answer(args, image, s["prompt"], n)
        kind = s["kind"]
        total[kind] += 1
        # Captions are compared as text (96 tokens); answers as glimpse eval scores them.
        if kind == "caption":
            agree = theirs.strip() == s["answer"].strip()
        else:
            agree = normalize(theirs) == normalize(s["answer"])
            glimpse_ok[kind] += normalize(s["answer"]) == normalize(s["expected"])
            llama_ok[kind] += normalize(theirs) == normalize(s["expected"])
        same[kind] += agree
        rows.append(dict(s, llama_cpp=theirs, agree=agree))
        print("\r%d/%d" % (i + 1, len(samples)), end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    kinds = sorted(total)
    qa = [k for k in kinds if k != "caption"]
    n_qa = sum(total[k] for k in qa)
    print("%-9s %6s %10s %10s %10s" % ("kind", "n", "agree", "glimpse", "llama.cpp"))
    for k in kinds:
        acc = lambda d: "%9.1f%%" % (100.0 * d[k] / total[k]) if k != "caption" else "%10s" % "-"
        print("%-9s %6d %9.1f%% %s %s" % (k, total[k], 100.0 * same[k] / total[k], acc(glimpse_ok), acc(llama_ok)))
    print("%-9s %6d %9.1f%% %9.1f%% %9.1f%%" % ("questions", n_qa, 100.0 * sum(same[k] for k in qa) / n_qa,
                                               100.0 * sum(glimpse_ok[k] for k in qa) / n_qa,
                                               100.0 * sum(llama_ok[k] for k in qa) / n_qa))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "mmproj": args.mmproj, "seeds": args.seeds, "samples": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
