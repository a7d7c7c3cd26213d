"""Trains the bundled SmolVLM-layout model (idefics3 projector): SigLIP-style ViT without [CLS],
pixel shuffle, fc connector, llama decoder. See tools/train/README.md for the exact commands.

Stage 1 pretrains the vision tower with an attention-pooling head over all token features of an
image (tiles and overview): presence of every color×shape, count of each shape and color, text
presence and written characters. The head is then dropped. Stage 2 trains tower + connector +
decoder on the caption and the questions of each scene (tree-packed, see train_common.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import train_common as tc  # noqa: E402

ARCH = dict(tile=80, patch=10, longest_edge=160, scale_factor=2,
            v_embd=128, v_layer=4, v_head=4, v_ff=512, v_eps=1e-6,
            t_embd=256, t_layer=4, t_head=4, t_head_kv=2, t_ff=768, rope_base=10000.0, rms_eps=1e-5)
CONFIGS = tc.layout_configs(ARCH, seed=1234)  # train_common.RECIPES as they are


def build_tower(cfg):
    tower = models.SiglipTower(cfg["tile"], cfg["patch"], cfg["v_embd"], cfg["v_layer"], cfg["v_head"], cfg["v_ff"],
                               cfg["scale_factor"], cfg["t_embd"], cfg["v_eps"])
    return tower


def main():
    args, cfg, train, val, tower, dec = tc.start_run(__doc__, CONFIGS, "smolvlm", build_tower)
    head = tc.PoolHead(cfg["v_embd"], tc.N_HEAD_OUT)

    def features(pix, n_chunks):
        f = tower.features(pix)  # (chunks, N, C)
        return head(*tc.group_chunks(f, n_chunks)), f

    tc.train_and_save(args, cfg, "smolvlm", tower, dec, train, val, head, features)


if __name__ == "__main__":
    main()
