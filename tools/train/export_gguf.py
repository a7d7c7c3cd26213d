"""Exports a trained checkpoint as a llama.cpp-compatible GGUF pair (text model + mmproj) and writes
the parity reference that tests/test_trained_models.cpp checks glimpse against.

  export_gguf.py --checkpoint CKPT.pt --vocab VOCAB.json --out-text TEXT.gguf --out-mmproj MMPROJ.gguf
                 [--type f16|f32] [--reference REF.json --val VAL_DIR --reference-scenes N]

Keys and tensor names follow tools/common/model_writer.cpp (what glimpse reads) and llama.cpp's
converters: `llama` text model with a `gpt2`/`smollm` tokenizer; `clip` mmproj with projector
`idefics3` (SmolVLM layout) or `mlp` (LLaVA layout). 2-D weights are stored in the chosen type;
norms, biases, position and class embeddings stay f32 (as llama.cpp's converters keep them); the
patch embedding is f16 in f16 files.

The reference holds, for a few held-out scenes and questions: the prompt ids the model was
trained with (from the shards), an FNV-1a hash of the normalized pixel tiles, the answer ids, and
the logits PyTorch computes at the last prompt position with the exported (rounded) weights and
ggml's roundings emulated (models.py, ggml=True), with an f32 KV cache.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf  # noqa: E402
import models  # noqa: E402
import tokenizer as tokmod  # noqa: E402
import train_common as tc  # noqa: E402


def np32(t):
    return t.detach().float().cpu().numpy()


def write_text(path, dec, cfg, vocab, wtype, name):
    w = gguf.Writer()
    C, H = cfg["t_embd"], cfg["t_head"]
    w.str("general.architecture", "llama")
    w.str("general.type", "model")
    w.str("general.name", name + " text")
    w.u32("general.file_type", 1 if wtype == "f16" else 0)
    w.u32("llama.context_length", 2048)
    w.u32("llama.embedding_length", C)
    w.u32("llama.block_count", cfg["t_layer"])
    w.u32("llama.feed_forward_length", cfg["t_ff"])
    w.u32("llama.attention.head_count", H)
    w.u32("llama.attention.head_count_kv", cfg["t_head_kv"])
    w.f32("llama.rope.freq_base", cfg["rope_base"])
    w.f32("llama.attention.layer_norm_rms_epsilon", cfg["rms_eps"])
    w.u32("llama.vocab_size", len(vocab["tokens"]))
    w.u32("llama.rope.dimension_count", C // H)
    tokmod.write_tokenizer_keys(w, vocab)
    assert dec.tok.weight.shape[0] == len(vocab["tokens"])
    w.tensor("token_embd.weight", np32(dec.tok.weight), wtype)
    for i, b in enumerate(dec.blocks):
        for name, mod, is_norm in b.gguf_weights():
            w.tensor(f"blk.{i}.{name}.weight", np32(mod.weight), "f32" if is_norm else wtype)
    w.tensor("output_norm.weight", np32(dec.norm.weight), "f32")
    w.write(path)


def vit_block_tensors(w, p, blk, wtype, zero=False):
    def z(a):
        return np.zeros_like(a) if zero else a
    for name, lin in blk.gguf_linears():
        w.tensor(p + name + ".weight", z(np32(lin.weight)), wtype)
        w.tensor(p + name + ".bias", z(np32(lin.bias)), "f32")
    for name, ln in blk.gguf_norms():
        w.tensor(p + name + ".weight", np32(ln.weight) if not zero else np.ones_like(np32(ln.weight)), "f32")
        w.tensor(p + name + ".bias", z(np32(ln.bias)), "f32")


def write_mmproj(path, tower, cfg, meta, wtype, name, layout):
    w = gguf.Writer()
    llava = layout == "llava"
    C = cfg["v_embd"]
    w.str("general.architecture", "clip")
    w.str("general.type", "mmproj")
    w.str("general.name", name + " mmproj")
    w.u32("general.file_type", 1 if wtype == "f16" else 0)
    w.bool("clip.has_vision_encoder", True)
    w.bool("clip.has_text_encoder", False)
    w.str("clip.projector_type", "mlp" if llava else "idefics3")
    w.u32("clip.vision.image_size", cfg["tile"])
    w.u32("clip.vision.patch_size", cfg["patch"])
    w.u32("clip.vision.embedding_length", C)
    w.u32("clip.vision.feed_forward_length", cfg["v_ff"])
    # LLaVA: llama.cpp runs block_count - 1 blocks; the extra stored block is all zeros (an identity).
    w.u32("clip.vision.block_count", cfg["v_layer"] + (1 if llava else 0))
    w.u32("clip.vision.attention.head_count", cfg["v_head"])
    w.u32("clip.vision.projection_dim", cfg["t_embd"])
    w.f32("clip.vision.attention.layer_norm_epsilon", cfg["v_eps"])
    w.arr_f32("clip.vision.image_mean", meta["mean"])
    w.arr_f32("clip.vision.image_std", meta["std"])
    if llava:
        w.bool("clip.use_gelu", False)  # quick GELU, as CLIP
        w.bool("clip.has_llava_projector", True)
    else:
        w.bool("clip.use_gelu", True)
        w.u32("clip.vision.projector.scale_factor", cfg["scale_factor"])
        w.u32("clip.vision.preproc_image_size", cfg["longest_edge"])
    pe_type = "f32" if wtype == "f32" else "f16"
    if llava:
        w.tensor("v.class_embd", np32(tower.cls), "f32")
    w.tensor("v.patch_embd.weight", np32(tower.patch_embd.weight), pe_type)
    if not llava:
        w.tensor("v.patch_embd.bias", np32(tower.patch_embd.bias), "f32")
    w.tensor("v.position_embd.weight", np32(tower.pos), "f32")
    if llava:
        w.tensor("v.pre_ln.weight", np32(tower.pre_ln.weight), "f32")
        w.tensor("v.pre_ln.bias", np32(tower.pre_ln.bias), "f32")
    for i, blk in enumerate(tower.blocks):
        vit_block_tensors(w, f"v.blk.{i}.", blk, wtype)
    if llava:
        vit_block_tensors(w, f"v.blk.{len(tower.blocks)}.", tower.blocks[-1], wtype, zero=True)
        if tower.post_ln is not None:
            w.tensor("v.post_ln.weight", np32(tower.post_ln.weight), "f32")
            w.tensor("v.post_ln.bias", np32(tower.post_ln.bias), "f32")
        w.tensor("mm.0.weight", np32(tower.mm0.weight), wtype)
        w.tensor("mm.0.bias", np32(tower.mm0.bias), "f32")
        w.tensor("mm.2.weight", np32(tower.mm2.weight), wtype)
        w.tensor("mm.2.bias", np32(tower.mm2.bias), "f32")
    else:
        w.tensor("v.post_ln.weight", np32(tower.post_ln.weight), "f32")
        w.tensor("v.post_ln.bias", np32(tower.post_ln.bias), "f32")
        w.tensor("mm.model.fc.weight", np32(tower.fc.weight), wtype)
    w.write(path)


def round_like_export(tower, dec, wtype):
    """Rounds the in-memory weights exactly as the export stores them, and marks which matmuls
    ggml runs with f16 weights (their activations get rounded to f16, models.Lin)."""
    if wtype != "f16":
        return
    with torch.no_grad():
        for m in list(tower.modules()) + list(dec.modules()):
            if isinstance(m, models.Lin):
                m.weight.copy_(m.weight.half().float())
                m.f16_weight = True
        tower.patch_embd.weight.copy_(tower.patch_embd.weight.half().float())
        dec.tok.weight.copy_(dec.tok.weight.half().float())
        dec.tok_f16 = True


def fnv1a64_np(buf):
    """64-bit FNV-1a of an array's bytes."""
    h = 0xcbf29ce484222325
    mask = 0xFFFFFFFFFFFFFFFF
    for b in buf.tobytes():
        h = ((h ^ b) * 0x100000001b3) & mask
    return h


def decode(ids, vocab):
    """Token ids -> text (byte-level symbols back to bytes; control tokens as written)."""
    inv = {c: b for b, c in tokmod.BYTE_SYMBOL.items()}
    out = b""
    for t in ids:
        s = vocab["tokens"][t]
        out += s.encode() if vocab["types"][t] == tokmod.TOKEN_CONTROL else bytes(inv[c] for c in s)
    return out.decode("utf-8")


@torch.no_grad()
def reference(tower, dec, val, n_scenes, layout, vocab):
    """Per scene: its caption branch and first questions as single prompts, with PyTorch logits."""
    out = []
    for i in range(n_scenes):
        r = val.images[i]
        prefix, branches = val.example(i)
        pix = val.pixels([i])
        tiles_hash = fnv1a64_np(np.ascontiguousarray(pix.numpy()))
        emb = tower(pix, ggml=True).reshape(-1, dec.C)
        for b, n_prompt, n_answer, kind in branches[:3]:
            seq = np.concatenate([prefix, b])
            n_in = len(prefix) + n_prompt
            ids = torch.from_numpy(seq).unsqueeze(0)
            T = ids.shape[1]
            x = dec.embed(ids, emb)
            pos = torch.arange(T).unsqueeze(0)
            mask = torch.tril(torch.ones(T, T, dtype=torch.bool)).unsqueeze(0)
            h = dec.hidden(x, pos, mask, ggml=True)
            lg = dec.logits(h[0, n_in - 1:T - 1], ggml=True)  # predicts each answer token
            suffix = decode(b[:n_prompt], vocab)
            tail = "<end_of_utterance>\nAssistant:" if layout == "smolvlm" else "\nASSISTANT:"
            assert suffix.endswith(tail), suffix
            answer = decode(b[n_prompt:n_prompt + n_answer - 1], vocab)
            assert answer.startswith(" ")
            out.append(dict(seed=int(r[0]), kind=tc.KINDS[kind], prompt=suffix[:-len(tail)], answer=answer[1:],
                            n_chunks=int(r[4]),
                            tiles_fnv1a=f"{tiles_hash:016x}", prompt_ids=[int(t) for t in seq[:n_in]],
                            answer_ids=[int(t) for t in seq[n_in:]],
                            prefill_logits=[float(v) for v in lg[0]],
                            greedy_ids=[int(v) for v in lg.argmax(-1)]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--vocab", required=True, help="vocab.json from tokenizer.py")
    ap.add_argument("--out-text", required=True)
    ap.add_argument("--out-mmproj", required=True)
    ap.add_argument("--type", default="f16", choices=["f16", "f32"])
    ap.add_argument("--name", default="glimpse scenes")
    ap.add_argument("--reference", help="write the parity reference JSON here")
    ap.add_argument("--val", help="held-out build directory for the reference")
    ap.add_argument("--reference-scenes", type=int, default=4)
    args = ap.parse_args()

    ck = torch.load(args.checkpoint)
    cfg, extra = ck["cfg"], ck["extra"]
    layout = extra["layout"]
    meta = extra["data_meta"]
    vocab = json.load(open(args.vocab))[layout]
    if layout == "smolvlm":
        import train_smolvlm as ts
    else:
        import train_llava as ts
    tower, dec = tc.build_model(cfg, len(vocab["tokens"]), ts.build_tower)
    tc.load_tower_state(tower, ck["tower"])
    dec.load_state_dict(ck["dec"])
    if hasattr(tower, "fold_feature_standardization"):
        tower.fold_feature_standardization()
    tower.eval()
    dec.eval()
    name = f"{args.name} {layout}"
    write_text(args.out_text, dec, cfg, vocab, args.type, name)
    write_mmproj(args.out_mmproj, tower, cfg, meta, args.type, name, layout)
    print(f"wrote {args.out_text} ({os.path.getsize(args.out_text)} bytes), {args.out_mmproj} "
          f"({os.path.getsize(args.out_mmproj)} bytes)", file=sys.stderr)
    if args.reference:
        models.MATMUL_BF16 = False
        torch.set_num_threads(2)
        round_like_export(tower, dec, args.type)
        val = tc.Shards(args.val)
        ref = dict(layout=layout, preset=meta["preset"], weight_type=args.type,
                   text=os.path.basename(args.out_text), mmproj=os.path.basename(args.out_mmproj),
                   note="PyTorch (tools/train/models.py, ggml=True, f32 KV) logits at the last prompt position",
                   cases=reference(tower, dec, val, args.reference_scenes, layout, vocab))
        with open(args.reference, "w") as f:
            json.dump(ref, f)
        print(f"wrote {args.reference} ({len(ref['cases'])} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
