"""Trains the bundled LLaVA-layout model (mlp projector): CLIP-style ViT with [CLS], MLP projector,
llama decoder. See tools/train/README.md for the exact commands.

The tower runs as llama.cpp runs it (models.py): [CLS] appended after the patches, pre-LN, the
kept rows 1..N (patch 0 dropped, [CLS] last) go through v.post_ln (post_ln=1) -> mm.0 -> GELU ->
mm.2. Stage 1 pretrains the tower with a CLIP-style head on the [CLS] output (presence of every
color×shape, count of each shape and color, text presence and written characters), so that [CLS]
attention means something; the head is then dropped. Stage 2 trains the projector (with v.post_ln)
and the decoder on captions and questions, the tower frozen."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import train_common as tc  # noqa: E402

ARCH = dict(tile=192, patch=16, v_embd=192, v_layer=4, v_head=6, v_ff=768, v_eps=1e-5,
            t_embd=256, t_layer=4, t_head=4, t_head_kv=2, t_ff=768, rope_base=10000.0, rms_eps=1e-5)
# train_common.RECIPES plus post_ln where stage 2 freezes the tower: a LayerNorm on the tower output
# in front of the projector, trained in stage 2 (run P); full-e3 stops stage 2 at 1150 steps.
CONFIGS = tc.layout_configs(ARCH, seed=4321,
                            changes={"full": dict(post_ln=1), "full-e3": dict(steps=1150), "small": dict(post_ln=1)})


def build_tower(cfg):
    tower = models.ClipTower(cfg["tile"], cfg["patch"], cfg["v_embd"], cfg["v_layer"], cfg["v_head"], cfg["v_ff"],
                             cfg["t_embd"], cfg["v_eps"], post_ln=bool(cfg.get("post_ln", 0)))
    return tower


def main():
    args, cfg, train, val, tower, dec = tc.start_run(__doc__, CONFIGS, "llava", build_tower)
    head = tc.ClsHead(cfg["v_embd"], tc.N_HEAD_OUT)

    def features(pix, n_chunks):
        f = tower.features(pix)
        return head(f[:, -1]), f[:, :-1]  # [CLS] (the last row) -> image targets; patches -> dense targets

    tc.train_and_save(args, cfg, "llava", tower, dec, train, val, head, features)


if __name__ == "__main__":
    main()
