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
CONFIGS = {
    # The recipe of train_smolvlm.py's "full" (see the comment there and tools/train/README.md), plus
    # post_ln: a LayerNorm on the tower output in front of the projector, trained in stage 2 (run P).
    "full": dict(ARCH, seed=4321, pretrain_steps=6000, pretrain_batch=8, pretrain_lr=1e-3, pretrain_warmup=30,
                 patch_loss_weight=1.0, patch_dense=1, patch_shape_weight=3.0, pos_sincos=1, image_loss_weight=0.3,
                 steps=4000, batch=8, lr=1.5e-3, tower_lr_scale=0.5, wd=0.05, warmup=100, caption_weight=0.5,
                 freeze_tower=1, image_word_weight=1.0, post_ln=1, log_every=100, eval_every=1000, val_images=200),
    "full-e3": dict(ARCH, seed=4321, pretrain_steps=600, pretrain_batch=24, pretrain_lr=1e-3, pretrain_warmup=30, patch_loss_weight=1.0, patch_factored=1, patch_pos_weight=5.0,
                 steps=1150, batch=8, lr=1.5e-3, tower_lr_scale=0.5, wd=0.05, warmup=100, caption_weight=0.5,
                 log_every=50, eval_every=400, val_images=200),
    "small": dict(ARCH, seed=4321, pretrain_steps=60, pretrain_batch=8, pretrain_lr=1e-3, pretrain_warmup=10,
                  patch_loss_weight=1.0, patch_dense=1, patch_shape_weight=3.0, pos_sincos=1, image_loss_weight=0.3,
                  steps=200, batch=8, lr=1e-3, tower_lr_scale=0.5, wd=0.05, warmup=20, caption_weight=0.5,
                  freeze_tower=1, image_word_weight=1.0, post_ln=1, log_every=20, eval_every=100, val_images=64),
}


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
