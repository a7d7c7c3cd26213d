#!/usr/bin/python3
"""Can the characters of the scenes be read at the resolution a model sees them? A diagnostic,
not part of training: every character cell is cut out of its scene resized to LONG_SIDE px on
the long side (bicubic, as glimpse's preprocessing), a window centered on the glyph, and a small
CNN learns the 34-way class from one set of scenes and is scored on another. High accuracy here
means the glyphs are legible at that scale, so a model that does not read them lacks the
training, not the pixels.

  glimpse-scenes --preset bundled --seeds 0:6000 --out DIR --format ppm --quiet
  tools/train/glyph_legibility.py DIR --long-side 160 --train 0:5000 --test 5000:6000

Needs python3-torch, python3-numpy and python3-pil (Debian)."""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

TEXT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # kTextAlphabet of tools/scenes/scene.h


def glyph_windows(scene_dir, seeds, long_side, window):
    """(n, 3, window, window) float crops centered on every character, and their classes."""
    crops, classes = [], []
    for seed in seeds:
        truth = json.load(open(os.path.join(scene_dir, f"{seed}.json")))
        text = truth.get("text")
        if not text:
            continue
        image = Image.open(os.path.join(scene_dir, truth["image"])).convert("RGB")
        f = long_side / max(image.size)
        size = (max(1, round(image.size[0] * f)), max(1, round(image.size[1] * f)))
        pixels = np.asarray(image.resize(size, Image.BICUBIC), dtype=np.float32) / 255.0
        pixels = np.pad(pixels, ((window, window), (window, window), (0, 0)), mode="edge")
        x0, y0, scale = text["bbox"][0], text["bbox"][1], text["scale"]
        for i, ch in enumerate(text["string"]):
            # glyph i's 5x7-dot cell starts at bbox.x0 + 6*i*scale (tools/scenes/README.md)
            cx, cy = (x0 + (6 * i + 2.5) * scale) * f, (y0 + 3.5 * scale) * f
            left, top = int(round(cx)) + window // 2, int(round(cy)) + window // 2
            crops.append(pixels[top:top + window, left:left + window].transpose(2, 0, 1))
            classes.append(TEXT_ALPHABET.index(ch))
    return torch.tensor(np.stack(crops)), torch.tensor(classes)


def seed_range(s):
    a, b = s.split(":")
    return range(int(a), int(b))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scene_dir")
    ap.add_argument("--long-side", type=int, default=160, help="model input scale (SmolVLM tiles: 160, overview: 80)")
    ap.add_argument("--window", type=int, default=16, help="crop side in px at that scale")
    ap.add_argument("--train", type=seed_range, default=seed_range("0:5000"))
    ap.add_argument("--test", type=seed_range, default=seed_range("5000:6000"))
    ap.add_argument("--steps", type=int, default=3000)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x_train, y_train = glyph_windows(args.scene_dir, args.train, args.long_side, args.window)
    x_test, y_test = glyph_windows(args.scene_dir, args.test, args.long_side, args.window)
    print(f"{len(y_train)} training characters, {len(y_test)} held-out", flush=True)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                        nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, len(TEXT_ALPHABET)))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for step in range(args.steps + 1):
        pick = torch.randint(0, len(y_train), (64,))
        loss = F.cross_entropy(net(x_train[pick]), y_train[pick])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            with torch.no_grad():
                acc = (net(x_test).argmax(1) == y_test).float().mean().item()
            print(f"long side {args.long_side}: step {step} loss {loss.item():.3f} held-out character accuracy {acc:.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
