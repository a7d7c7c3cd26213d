"""Shared training code for the bundled tiny VLMs: shard reader, tree-packed batches, the two
training stages (vision-tower pretraining, VLM training), teacher-forced evaluation, checkpoints.

Tree packing: the prompt of a question is prefix + suffix, where the prefix (template start and
the image block) is the same for every question about an image. A scene's caption and questions
are packed as branches of ONE sequence: prefix, branch 1, branch 2, ...; a branch token attends
to the prefix and to earlier tokens of its own branch only, and its positions continue from the
end of the prefix. Each branch therefore computes exactly what glimpse computes for that single
prompt (same tokens, positions and causal context), while the image and prefix are computed once.
"""
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
from models import mm  # noqa: E402

KINDS = ["color", "count", "exist", "position", "text", "caption"]
COLOR_WORDS = ["red", "green", "blue", "yellow", "orange", "purple", "white", "black"]  # tools/scenes order
SHAPE_WORDS = ["circle", "square", "triangle", "star", "cross", "diamond"]
PLURAL_WORDS = ["circles", "squares", "triangles", "stars", "crosses", "diamonds"]
TEXT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # kTextAlphabet of tools/scenes/scene.h
CAPTION = 5
N_PRESENCE, N_SHAPES, N_COLORS, N_CHARS = 48, 6, 8, 34
N_PATCH_BITS = N_PRESENCE + 1  # color×shape + text
GLYPH_SHIFT, CENTER_SHIFT, GLYPH_CENTER_SHIFT = 49, 55, 58  # patch label fields of make_dataset.cpp
MAX_COUNT = 6  # the bundled preset has at most 6 objects


def log(*a):
    print(time.strftime("%H:%M:%S"), f"[cpu {time.process_time():.0f} s]", *a, flush=True)


class Shards:
    """Reader of a glimpse-traindata build directory (numpy memmaps)."""

    def __init__(self, path):
        self.path = path
        self.meta = json.load(open(os.path.join(path, "meta.json")))
        m = self.meta
        S = m["tile"]
        self.S = S
        self.tiles = np.memmap(os.path.join(path, "tiles.u8"), np.uint8, "r").reshape(-1, 3, S, S)
        self.images = np.fromfile(os.path.join(path, "images.i64"), np.int64).reshape(-1, 12)
        self.branches = np.fromfile(os.path.join(path, "branches.i64"), np.int64).reshape(-1, 5)
        self.tokens = np.memmap(os.path.join(path, "tokens.i32"), np.int32, "r")
        self.labels = np.fromfile(os.path.join(path, "labels.i16"), np.int16).reshape(-1, m["n_label_fields"])
        g = S // m["patch"]
        # per chunk and patch: bit color*6+shape for objects covering >= 8 % of the patch, bit 48 text
        self.patch_labels = np.memmap(os.path.join(path, "patch_labels.u64"), np.uint64, "r").reshape(-1, g * g)
        self.mean = np.array(m["mean"], np.float32).reshape(3, 1, 1)
        self.std = np.array(m["std"], np.float32).reshape(3, 1, 1)

    def __len__(self):
        return len(self.images)

    def normalize(self, u8):
        """(…,3,S,S) uint8 -> f32 exactly as glimpse: (u/255 - mean)/std, each op rounded to f32."""
        return (u8.astype(np.float32) / np.float32(255.0) - self.mean) / self.std

    def chunk_slice(self, i):
        """Rows of image i in the per-chunk arrays (tiles, patch labels, cached features)."""
        r = self.images[i]
        return slice(int(r[3]), int(r[3] + r[4]))

    def chunks(self, i):
        return self.tiles[self.chunk_slice(i)]

    def pixels(self, idx):
        return torch.from_numpy(np.concatenate([self.normalize(self.chunks(i)) for i in idx]))

    def n_chunks(self, idx):
        return [int(self.images[i][4]) for i in idx]

    def patch_targets(self, idx):
        """(total chunks, patches, 49) float multi-hot targets of the dense pretraining head."""
        bits = np.concatenate([self.patch_labels[self.chunk_slice(i)] for i in idx])
        t = (bits[..., None] >> np.arange(N_PATCH_BITS, dtype=np.uint64)) & np.uint64(1)
        return torch.from_numpy(t.astype(np.float32))

    def patch_fields(self, idx, glyph_center=False):
        """(glyph, center), each (total chunks, patches) int64: 1 + index in TEXT_ALPHABET of the
        glyph covering most of the patch (glyph_center: of the glyph whose center the patch shows),
        1 + shape of the object whose center the patch shows (0: none). Shards of
        patch_label_version 2 (3 for glyph_center; older ones lack the fields)."""
        need = 3 if glyph_center else 2
        assert self.meta.get("patch_label_version", 1) >= need, \
            f"{self.path}: patch labels without the glyph and center fields; rebuild with glimpse-traindata"
        bits = np.concatenate([self.patch_labels[self.chunk_slice(i)] for i in idx])
        glyph = (bits >> np.uint64(GLYPH_CENTER_SHIFT if glyph_center else GLYPH_SHIFT)) & np.uint64(63)
        center = (bits >> np.uint64(CENTER_SHIFT)) & np.uint64(7)
        return torch.from_numpy(glyph.astype(np.int64)), torch.from_numpy(center.astype(np.int64))

    def word_ids(self, glyphs_centers=False):
        """Token ids of the 8 color words and the 6 shape words (" red", " circle", ...; the scene
        generator's enum orders) in this layout's vocabulary (vocab.json beside the vocab GGUF);
        with glyphs_centers also the 6 plural shape words and the 34 text characters."""
        v = json.load(open(os.path.join(os.path.dirname(self.meta["vocab"]), "vocab.json")))[self.meta["layout"]]
        index = {t: i for i, t in enumerate(v["tokens"])}
        words = ["\u0120" + w for w in COLOR_WORDS + SHAPE_WORDS]
        if glyphs_centers:
            words += ["\u0120" + w for w in PLURAL_WORDS] + list(TEXT_ALPHABET)
        missing = [w for w in words if w not in index]
        assert not missing, f"not single tokens in the vocabulary: {missing}"
        return torch.tensor([index[w] for w in words])

    def example(self, i, kinds=None):
        """-> prefix ids, [(branch ids, n_prompt, n_answer, kind)]."""
        r = self.images[i]
        prefix = np.asarray(self.tokens[r[7]:r[7] + r[8]], np.int64)
        out = []
        for b in self.branches[r[9]:r[9] + r[10]]:
            if kinds is not None and int(b[4]) not in kinds:
                continue
            out.append((np.asarray(self.tokens[b[0]:b[0] + b[1]], np.int64), int(b[2]), int(b[3]), int(b[4])))
        return prefix, out

    def batch(self, idx, caption_weight=1.0, kinds=None):
        """Tree-packed batch: ids/seg/pos (B,T), targets (B,T) (-100 = none), weights, kinds, branch ids."""
        seqs, queries = [], []
        for i in idx:
            prefix, branches = self.example(i, kinds)
            queries.append([])
            offset = 0
            ids, seg, pos, tgt, w, kd, br = [prefix], [np.zeros(len(prefix), np.int64)], [np.arange(len(prefix))], \
                [np.full(len(prefix), -100)], [np.zeros(len(prefix), np.float32)], [np.full(len(prefix), -1)], \
                [np.full(len(prefix), -1)]
            P = len(prefix)
            for j, (b, n_prompt, n_answer, kind) in enumerate(branches):
                L = len(b)
                ids.append(b)
                seg.append(np.full(L, j + 1))
                pos.append(P + np.arange(L))
                t = np.full(L, -100)
                # position n_prompt-1+k predicts answer token k
                t[n_prompt - 1:n_prompt - 1 + n_answer] = b[n_prompt:n_prompt + n_answer]
                tgt.append(t)
                ww = np.zeros(L, np.float32)
                ww[n_prompt - 1:n_prompt - 1 + n_answer] = caption_weight if kind == CAPTION else 1.0
                w.append(ww)
                kd.append(np.full(L, kind))
                br.append(np.full(L, j))
                queries[-1].append((P + offset + n_prompt - 1, set(int(v) for v in b[:n_prompt]), kind))
                offset += L
            seqs.append([np.concatenate(x) for x in (ids, seg, pos, tgt, w, kd, br)])
        T = max(len(s[0]) for s in seqs)
        B = len(seqs)
        out = dict(ids=np.zeros((B, T), np.int64), seg=np.full((B, T), -1), pos=np.zeros((B, T), np.int64),
                   tgt=np.full((B, T), -100), w=np.zeros((B, T), np.float32), kind=np.full((B, T), -1),
                   branch=np.full((B, T), -1))
        for b, s in enumerate(seqs):
            n = len(s[0])
            for k, key in enumerate(("ids", "seg", "pos", "tgt", "w", "kind", "branch")):
                out[key][b, :n] = s[k]
        out = {k: torch.from_numpy(v) for k, v in out.items()}
        out["mask"] = models.tree_mask(out["seg"])
        out["queries"] = queries
        return out


def decoder_hidden(dec, emb, batch):
    """emb: projected image embeddings (chunks, n_tokens, C) -> hidden states (B,T,C) of the
    decoder for a tree-packed batch."""
    x = dec.embed(batch["ids"], emb.reshape(-1, emb.shape[-1]))
    return dec.hidden(x, batch["pos"], batch["mask"])


def vlm_loss(dec, emb, batch, words=None, binding=None):
    """Weighted answer-token cross-entropy given the projected image embeddings (tower(pixels), or
    tower.project(cached features) with the tower frozen).
    words = (word ids (W,), targets (chunks, n_tokens, W), weight): also the image-word loss.
    binding = (layer, weight, plural word ids, heads, kinds): also binding_loss on that layer's
    attention (needs words)."""
    if binding is not None:
        dec.blocks[binding[0]].keep_attention = True
    h = decoder_hidden(dec, emb, batch)
    sel = batch["tgt"] >= 0
    ce = F.cross_entropy(dec.logits(h[sel]), batch["tgt"][sel], reduction="none")
    w = batch["w"][sel]
    loss = (ce * w).sum() / w.sum()
    if words is not None:
        loss = loss + words[2] * image_word_loss(dec, h[batch["ids"] < 0], words[0], words[1])
    if binding is not None:
        blk = dec.blocks[binding[0]]
        loss = loss + binding[1] * binding_loss(blk.attention, batch, words[0], words[1], *binding[2:])
        blk.keep_attention, blk.attention = False, None
    return loss


def binding_loss(attention, batch, word_ids, targets, plural_ids, n_heads, kinds):
    """A question about one shape (and color) is answered by finding that object's image tokens:
    the position that predicts the first answer token should attend to them. Supervises one decoder
    layer's attention there, in its first n_heads heads (the others stay free): -log(attention mass
    on the image tokens that show the asked shape, and color when the question names one).
    kinds: the question kinds supervised (KINDS indices: color, count, exist, position or a subset);
    questions whose object is absent, captions and text questions are left out. Without it the
    LLaVA-layout decoder names the colors and shapes of its image tokens (image-word F1 0.97 and
    0.89) yet answers a color question with the color of another object half of the time.
    attention (B,H,T,T); targets (chunks, n_tokens, >= 14) as token_word_targets, in image order."""
    ids = batch["ids"]
    color_ids, shape_ids = word_ids[:N_COLORS].tolist(), word_ids[N_COLORS:N_COLORS + N_SHAPES].tolist()
    plural_ids = plural_ids.tolist()
    tw = targets.reshape(-1, targets.shape[-1])
    losses = []
    img_off = 0
    for b in range(attention.shape[0]):
        img_pos = torch.nonzero(ids[b] < 0).squeeze(1)
        t_b = tw[img_off:img_off + len(img_pos)]
        img_off += len(img_pos)
        for q, qids, kind in batch["queries"][b]:
            if kind not in kinds:
                continue
            shape = [k for k in range(N_SHAPES) if shape_ids[k] in qids or plural_ids[k] in qids]
            color = [k for k, w in enumerate(color_ids) if w in qids]
            if len(shape) != 1 or len(color) > 1:
                continue
            m = t_b[:, N_COLORS + shape[0]] > 0
            if color:
                m = m & (t_b[:, color[0]] > 0)
            if not m.any():
                continue
            mass = attention[b, :n_heads, q, img_pos[m]].sum(-1)  # (n_heads,)
            losses.append(-torch.log(mass.clamp(min=1e-6)).mean())
    return torch.stack(losses).mean() if losses else attention.new_zeros(())


def image_word_loss(dec, h_img, word_ids, targets):
    """At every image position, the decoder's output logits of the 14 color and shape words must say
    which colors and shapes the token shows (multi-label). A QA answer needs the question to find
    the image tokens of one small object among ~80; with this dense signal the decoder's image
    states carry the same word directions the questions are made of, so the lookup is learned
    from the first steps instead of after a long plateau at the answer prior.
    h_img (n, C) in image-token order; targets (…, W) with -1 = no label (W = len(word ids))."""
    t = targets.reshape(-1, targets.shape[-1])
    logits = mm(h_img, dec.tok.weight[word_ids].t())
    keep = (t[:, 0] >= 0)
    logits, t = logits[keep], t[keep]
    # One mean per word group (colors+shapes, center shapes, characters): a single mean over all
    # 54 words would shrink the color/shape signal to a quarter of its weight without them.
    groups = [N_COLORS + N_SHAPES, N_SHAPES, N_CHARS][:1 if t.shape[1] == N_COLORS + N_SHAPES else 3]
    loss, c0 = 0.0, 0
    for g in groups:
        loss = loss + F.binary_cross_entropy_with_logits(logits[:, c0:c0 + g], t[:, c0:c0 + g])
        c0 += g
    return loss


def token_word_targets(tower, bits, fields=None):
    """Patch label bits (chunks, patches, 49) -> per image token (chunks, n_tokens, 14): colors then
    shapes covering the token's patches; with fields (Shards.patch_fields) also (…, +6 +34): the
    shapes whose center the token shows (the plural words: one token per object, what a count
    adds up) and the characters written on it. SigLIP tokens are s×s patches (pixel-shuffle
    order); CLIP tokens are patches 1..N-1 then [CLS] (no label: -1)."""
    f = factor_patch_targets(bits)[..., :N_COLORS + N_SHAPES]
    if fields is not None:
        glyph, center = fields
        f = torch.cat([f, F.one_hot(center, N_SHAPES + 1)[..., 1:].float(),
                       F.one_hot(glyph, N_CHARS + 1)[..., 1:].float()], -1)
    n, g = f.shape[0], tower.grid
    s = getattr(tower, "scale_factor", 1)
    if s > 1:
        b = g // s
        return f.view(n, b, s, b, s, -1).amax(dim=(2, 4)).reshape(n, b * b, -1)
    cls = torch.full((n, 1, f.shape[-1]), -1.0)
    return torch.cat([f[:, 1:], cls], 1)


@torch.no_grad()
def evaluate(tower, dec, shards, idx_all, batch_images=8):
    """Teacher-forced exact match: a branch is right iff the argmax at every answer position (incl. the
    end-of-generation token) equals the reference, which is exactly when greedy decoding reproduces
    the reference answer and stops. -> {kind: (correct, total)}."""
    tower.eval()
    dec.eval()
    res = {k: [0, 0] for k in KINDS}
    for s in range(0, len(idx_all), batch_images):
        idx = idx_all[s:s + batch_images]
        batch = shards.batch(idx)
        h = decoder_hidden(dec, tower(shards.pixels(idx)), batch)
        sel = batch["tgt"] >= 0
        pred = dec.logits(h[sel]).argmax(-1)
        ok = (pred == batch["tgt"][sel])
        bidx = torch.arange(len(idx)).unsqueeze(1).expand_as(sel)[sel]
        key = bidx * 1000 + batch["branch"][sel]
        kinds = batch["kind"][sel]
        for k in torch.unique(key):
            m = key == k
            kind = int(kinds[m][0])
            res[KINDS[kind]][0] += int(ok[m].all())
            res[KINDS[kind]][1] += 1
    tower.train()
    dec.train()
    return res


def format_eval(res):
    qa = [k for k in KINDS if k != "caption"]
    c = sum(res[k][0] for k in qa)
    t = sum(res[k][1] for k in qa)
    parts = [f"{k} {res[k][0] / max(1, res[k][1]):.3f} ({res[k][1]})" for k in KINDS]
    return f"overall {c / max(1, t):.4f} | " + " | ".join(parts), c / max(1, t)


class PoolHead(nn.Module):
    """Image-level head for tower pretraining (dropped afterwards): one learned query attends over
    all token features of an image (all of its chunks), then a linear layer gives the targets."""

    def __init__(self, C, n_out, n_head=4):
        super().__init__()
        self.ln = nn.LayerNorm(C)
        self.query = nn.Parameter(torch.randn(C) * 0.02)
        self.attn = nn.MultiheadAttention(C, n_head, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(C, 2 * C), nn.GELU(), nn.Linear(2 * C, n_out))

    def forward(self, feats, key_padding_mask):
        kv = self.ln(feats)
        q = self.query.expand(feats.shape[0], 1, -1)
        o, _ = self.attn(q, kv, kv, key_padding_mask=key_padding_mask, need_weights=False)
        return self.mlp(o[:, 0])


class ClsHead(nn.Module):
    """Image-level head on the [CLS] token (CLIP-style), dropped afterwards."""

    def __init__(self, C, n_out):
        super().__init__()
        self.ln = nn.LayerNorm(C)
        self.mlp = nn.Sequential(nn.Linear(C, 2 * C), nn.GELU(), nn.Linear(2 * C, n_out))

    def forward(self, cls):
        return self.mlp(self.ln(cls))


N_HEAD_OUT = N_PRESENCE + N_SHAPES * (MAX_COUNT + 1) + N_COLORS * (MAX_COUNT + 1) + 1 + N_CHARS
MAX_TEXT_CHARS = 4  # kMaxTextChars of tools/scenes/scene.h
TEXT_SLOTS_FIELD = N_PRESENCE + N_SHAPES + N_COLORS + 3 + N_CHARS  # first text-slot column of labels.i16


class TextReadHead(nn.Module):
    """Reading head for tower pretraining (dropped afterwards): one learned query per character
    slot attends over all token features of an image; slot k classifies the k-th written character
    (34 + none). The bag of characters of pretrain_loss says which glyphs are there; this says which
    one is where, which a text answer needs and per-patch glyph classes (patches cut glyphs apart)
    did not teach."""

    MAX_GRID = 4  # chunk codes: tile (row, col) below 4 x 4, then the overview

    def __init__(self, C, n_slots=MAX_TEXT_CHARS, n_head=4):
        super().__init__()
        self.ln = nn.LayerNorm(C)
        # Which chunk a token comes from: SmolVLM's tiles share the tower's position embeddings, so
        # without it "the leftmost glyph" is not defined across tiles.
        self.chunk = nn.Embedding(self.MAX_GRID * self.MAX_GRID + 1, C)
        nn.init.normal_(self.chunk.weight, std=0.02)
        self.query = nn.Parameter(torch.randn(n_slots, C) * 0.02)
        self.attn = nn.MultiheadAttention(C, n_head, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(C), nn.Linear(C, 2 * C), nn.GELU(), nn.Linear(2 * C, N_CHARS + 1))

    def forward(self, feats, key_padding_mask, chunk_codes):
        # feats (B, T, C), key_padding_mask (B, T), chunk_codes (B, T) -> logits (B, n_slots, N_CHARS + 1)
        kv = self.ln(feats) + self.chunk(chunk_codes)
        q = self.query.expand(feats.shape[0], -1, -1)
        o, _ = self.attn(q, kv, kv, key_padding_mask=key_padding_mask, need_weights=False)
        return self.mlp(o)


def text_slot_labels(shards, idx):
    """(B, MAX_TEXT_CHARS) int64: 1 + character index per slot of the written string, 0 past it."""
    assert shards.labels.shape[1] >= TEXT_SLOTS_FIELD + MAX_TEXT_CHARS, \
        f"{shards.path}: labels without text slots; rebuild with glimpse-traindata"
    return torch.from_numpy(shards.labels[idx, TEXT_SLOTS_FIELD:TEXT_SLOTS_FIELD + MAX_TEXT_CHARS].astype(np.int64))


def chunk_codes(shards, idx, n_tokens):
    """(B, max chunks * n_tokens) int64 code of the chunk each token of group_chunks comes from:
    row * 4 + col for a tile, 16 for SmolVLM's overview (the last chunk); 0 for a LLaVA image."""
    n = shards.n_chunks(idx)
    out = torch.zeros(len(idx), max(n) * n_tokens, dtype=torch.long)
    G = TextReadHead.MAX_GRID
    for b, i in enumerate(idx):
        cols = max(1, int(shards.images[i][6]))
        for k in range(n[b] - 1 if n[b] > 1 else 0):
            out[b, k * n_tokens:(k + 1) * n_tokens] = min(k // cols, G - 1) * G + min(k % cols, G - 1)
        if n[b] > 1:
            out[b, (n[b] - 1) * n_tokens:n[b] * n_tokens] = G * G
    return out


def text_read_loss(logits, slots):
    """Cross-entropy over the slots of images with text (images without text carry no signal
    beyond "no text", which pretrain_loss has). Returns (loss, dict of counts: strings read
    exactly, characters read right, images with text, characters)."""
    has_text = slots[:, 0] > 0
    counts = dict(exact=0, chars_right=0, images=int(has_text.sum()), chars=int((slots > 0).sum()))
    if not has_text.any():
        return logits.sum() * 0.0, counts
    lg, y = logits[has_text], slots[has_text]
    loss = F.cross_entropy(lg.reshape(-1, N_CHARS + 1), y.reshape(-1))
    hit = lg.argmax(-1) == y
    counts.update(exact=int(hit.all(1).sum()), chars_right=int(hit[y > 0].sum()))
    return loss, counts


def group_chunks(f, n_chunks):
    """Token features per chunk (sum(n_chunks), N, C) -> per image (B, max chunks * N, C) and its
    key padding mask (True where an image has fewer chunks)."""
    B, maxc, N = len(n_chunks), max(n_chunks), f.shape[1]
    x = f.new_zeros(B, maxc * N, f.shape[2])
    pad = torch.ones(B, maxc * N, dtype=torch.bool)
    o = 0
    for b, n in enumerate(n_chunks):
        x[b, :n * N] = f[o:o + n].reshape(n * N, -1)
        pad[b, :n * N] = False
        o += n
    return x, pad


def pretrain_loss(logits, labels):
    """Multi-label presence of color×shape, count of each shape and color (0..6), text presence and
    which characters are written. labels: (B, n_label_fields) int16 rows of labels.i16."""
    labels = labels.long()
    o = 0
    pres = logits[:, o:o + N_PRESENCE]
    o += N_PRESENCE
    loss = F.binary_cross_entropy_with_logits(pres, labels[:, :N_PRESENCE].float())
    acc_pres = ((pres > 0) == (labels[:, :N_PRESENCE] > 0)).all(1).float().mean()
    shape_cnt = logits[:, o:o + N_SHAPES * (MAX_COUNT + 1)].reshape(-1, N_SHAPES, MAX_COUNT + 1)
    o += N_SHAPES * (MAX_COUNT + 1)
    t_shape = labels[:, N_PRESENCE:N_PRESENCE + N_SHAPES].clamp(max=MAX_COUNT)
    loss = loss + F.cross_entropy(shape_cnt.reshape(-1, MAX_COUNT + 1), t_shape.reshape(-1))
    acc_cnt = (shape_cnt.argmax(-1) == t_shape).float().mean()
    color_cnt = logits[:, o:o + N_COLORS * (MAX_COUNT + 1)].reshape(-1, N_COLORS, MAX_COUNT + 1)
    o += N_COLORS * (MAX_COUNT + 1)
    t_color = labels[:, N_PRESENCE + N_SHAPES:N_PRESENCE + N_SHAPES + N_COLORS].clamp(max=MAX_COUNT)
    loss = loss + 0.5 * F.cross_entropy(color_cnt.reshape(-1, MAX_COUNT + 1), t_color.reshape(-1))
    base = N_PRESENCE + N_SHAPES + N_COLORS
    loss = loss + 0.2 * F.binary_cross_entropy_with_logits(logits[:, o], labels[:, base].float())
    o += 1
    chars = logits[:, o:o + N_CHARS]
    t_chars = (labels[:, base + 3:base + 3 + N_CHARS] > 0).float()
    loss = loss + F.binary_cross_entropy_with_logits(chars, t_chars)
    return loss, dict(presence_exact=float(acc_pres), shape_count=float(acc_cnt))


def lr_at(step, total, peak, warmup, floor=0.05):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def param_groups(named, lr, wd):
    decay, no_decay = [], []
    for n, p in named:
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and "pos" not in n and "tok" not in n else no_decay).append(p)
    return [dict(params=decay, lr=lr, weight_decay=wd, base_lr=lr), dict(params=no_decay, lr=lr, weight_decay=0.0,
                                                                         base_lr=lr)]


def factor_patch_targets(t):
    """(…, 49) color×shape+text bits -> (…, 15): which colors (8), which shapes (6), text (1) cover
    the patch. Color is local to a patch; shape mostly is not, but a shape's bit is shared by every
    color, so both factors are learnable from a few hundred steps where the 48-way product is not."""
    cs = t[..., :N_PRESENCE].reshape(*t.shape[:-1], N_COLORS, N_SHAPES)
    return torch.cat([cs.amax(-1), cs.amax(-2), t[..., N_PRESENCE:]], -1)


N_FACTORED_BITS = N_COLORS + N_SHAPES + 1
N_DENSE_OUT = (N_COLORS + 1) + (N_SHAPES + 1) + 1  # color or none, shape or none, text
N_DENSE_EXTRA = (N_CHARS + 1) + (N_SHAPES + 1)  # glyph or none, center of which shape or none
# (name, first logit, classes) of the extra dense classes, in Shards.patch_fields order
DENSE_EXTRA_FIELDS = (("glyph", N_DENSE_OUT, N_CHARS + 1), ("center", N_DENSE_OUT + N_CHARS + 1, N_SHAPES + 1))


def dense_patch_loss(logits, t, shape_weight, fields=None, glyph_weight=None):
    """Per patch: which color (8 or none) and which shape (6 or none) covers it, as classes (patches
    two objects share are left out), and whether text does. logits (…, N_DENSE_OUT), t (…, 49) bits.
    A softmax per factor gives every patch a clear target, unlike independent bits whose positives
    are rare; object patches weigh shape_weight in the shape term, since "none" dominates and shape
    is the factor that takes the tower long to learn (color is read off one patch)."""
    f = factor_patch_targets(t)

    def classes(bits, none):
        n = bits.sum(-1)
        y = bits.argmax(-1)
        y[n == 0] = none
        y[n > 1] = -100
        return y

    y_color, y_shape = classes(f[..., :N_COLORS], N_COLORS), classes(f[..., N_COLORS:N_COLORS + N_SHAPES], N_SHAPES)
    lc = logits[..., :N_COLORS + 1].reshape(-1, N_COLORS + 1)
    ls = logits[..., N_COLORS + 1:N_COLORS + N_SHAPES + 2].reshape(-1, N_SHAPES + 1)
    is_obj = ((y_shape >= 0) & (y_shape < N_SHAPES)).float().reshape(-1)
    loss = F.cross_entropy(lc, y_color.reshape(-1), ignore_index=-100)
    ce_s = F.cross_entropy(ls, y_shape.reshape(-1), ignore_index=-100, reduction="none")
    loss = loss + (ce_s * (1 + (shape_weight - 1) * is_obj)).mean()
    loss = loss + F.binary_cross_entropy_with_logits(logits[..., N_DENSE_OUT - 1], f[..., -1])
    obj = is_obj.bool()
    shape_acc = (ls.argmax(-1)[obj] == y_shape.reshape(-1)[obj]).float().mean() if obj.any() else torch.tensor(0.0)
    m = dict(patch_shape_acc=float(shape_acc))
    if fields is not None:
        # glyph and center classes: rare positives weigh shape_weight, as object patches do above
        # (glyph positives glyph_weight: one patch per character is ~1 % of the patches)
        weights = (glyph_weight or shape_weight, shape_weight)
        for y, (name, lo, n), w in zip(fields, DENSE_EXTRA_FIELDS, weights):
            lg, y = logits[..., lo:lo + n].reshape(-1, n), y.reshape(-1)
            pos = y > 0
            ce = F.cross_entropy(lg, y, reduction="none")
            loss = loss + (ce * (1 + (w - 1) * pos.float())).mean()
            m[f"patch_{name}_acc"] = float((lg.argmax(-1)[pos] == y[pos]).float().mean()) if pos.any() else 0.0
    return loss, m


def init_positions_sincos(pos, grid, scale=0.5):
    """pos (grid*grid [+ extra], C): rows 0..grid²-1 get a 2-D sine-cosine code (x in the first half
    of the channels, y in the second). A ViT trained from scratch on little data learns which
    patches are neighbours slowly from random positions; starting from a smooth code it can attend
    to an object's other patches early, which is what recognising a shape needs."""
    C = pos.shape[1]
    q = C // 4
    yy, xx = torch.meshgrid(torch.arange(grid).float(), torch.arange(grid).float(), indexing="ij")
    om = 1.0 / (100.0 ** (torch.arange(q).float() / q))
    x, y = xx.reshape(-1, 1) * om, yy.reshape(-1, 1) * om
    code = torch.cat([torch.sin(x), torch.cos(x), torch.sin(y), torch.cos(y)], 1)
    with torch.no_grad():
        pos[:grid * grid, :4 * q] = code * scale
        pos[:grid * grid, 4 * q:] = 0


def glyph_centered(cfg):
    """glyph_target=center: the glyph class sits on the patch that shows the glyph's center (one
    token per character, the whole glyph around it) instead of on every patch a glyph covers most of."""
    return cfg.get("glyph_target", "cover") == "center"


def stage1_glyphs_centers(cfg):
    """Glyph and object-center classes per patch in stage 1: with glyphs_centers (also image words
    in stage 2) or pretrain_glyphs_centers (stage 1 only)."""
    return bool(cfg.get("glyphs_centers", 0) or cfg.get("pretrain_glyphs_centers", 0))


def make_patch_head(cfg, tower):
    """The dense pretraining head the config asks for (and the sin-cos start of the tower's
    position embeddings with pos_sincos)."""
    if cfg.get("pos_sincos", 0):
        init_positions_sincos(tower.pos, tower.grid)
    n_out = N_DENSE_OUT if cfg.get("patch_dense", 0) else N_FACTORED_BITS if cfg.get("patch_factored", 0) else N_PATCH_BITS
    if stage1_glyphs_centers(cfg):
        assert cfg.get("patch_dense", 0), "glyphs_centers needs patch_dense"
        n_out += N_DENSE_EXTRA
    return PatchHead(cfg["v_embd"], n_out)


class PatchHead(nn.Module):
    """Dense auxiliary head for tower pretraining (dropped afterwards): from every patch token, which
    color×shape objects (and whether text) cover that patch. Gives the tower a local signal per
    patch, which a few minutes of image-level training alone do not."""

    def __init__(self, C, n_out=N_PATCH_BITS):
        super().__init__()
        self.ln = nn.LayerNorm(C)
        self.lin = nn.Linear(C, n_out)

    def forward(self, tokens):
        return self.lin(self.ln(tokens))


def pretrain_or_load(args, tower, shards, cfg, head, features_fn, patch_head=None):
    """Stage 1, or its result from --pretrained / --resume; the tower after stage 1 is saved to
    OUT.tower.pt. Returns (wall seconds, CPU seconds, whether to go on with stage 2)."""
    assert not (args.pretrain_from and (args.pretrained or args.resume)), \
        "--pretrain-from runs stage 1; --pretrained and --resume skip it"
    if args.resume:
        return 0.0, 0.0, True  # the caller loads the whole model (load_resume) once the decoder exists
    if args.pretrained:
        load_tower_only(tower, args.pretrained)
        log("tower loaded from", args.pretrained)
        return 0.0, 0.0, True
    if args.pretrain_from:
        # after make_patch_head: the loaded position embeddings replace its sine-cosine start
        load_tower_only(tower, args.pretrain_from)
        log("stage 1 continues from the tower of", args.pretrain_from, "(heads start afresh)")
    val = Shards(args.val) if args.val and (cfg.get("text_read_weight", 0) or stage1_glyphs_centers(cfg)) else None
    t = pretrain_tower(tower, shards, cfg, head, features_fn, patch_head, val)
    torch.save(dict(tower=tower.state_dict(), cfg=cfg), args.out + ".tower.pt")
    if args.pretrain_only:
        log("stage 1 done (--pretrain-only):", args.out + ".tower.pt")
    return t[0], t[1], not args.pretrain_only


def load_tower_only(tower, path):
    """The vision tower without its connector / projector, from OUT.tower.pt of a stage 1 (or any
    checkpoint with a "tower") or from an exported mmproj .gguf."""
    if path.endswith(".gguf"):
        load_tower_from_mmproj(tower, path)
        return
    state = {k: v for k, v in torch.load(path)["tower"].items() if not tower.is_projector_param(k)}
    missing, unexpected = tower.load_state_dict(state, strict=False)
    assert not unexpected and all(tower.is_projector_param(k) or k in ("feat_mean", "feat_std") for k in missing), \
        (missing, unexpected)


def load_tower_state(tower, state):
    """load_state_dict that also takes towers saved before the feat_mean/feat_std buffers existed,
    or without the post_ln of a stage 2 that adds one (they then keep their identity values)."""
    missing, unexpected = tower.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"feat_mean", "feat_std", "post_ln.weight", "post_ln.bias"}, \
        (missing, unexpected)


def _gguf_copier(path, t):
    """put(param, name): copies tensor `name` of the GGUF file at path into param (shapes must agree)."""
    def put(param, name):
        assert name in t, f"{path}: no tensor {name}"
        a = t[name]
        assert not isinstance(a, tuple) and tuple(a.shape) == tuple(param.shape), \
            f"{path}: {name} has shape {getattr(a, 'shape', a)}, the model {tuple(param.shape)}"
        param.copy_(torch.from_numpy(np.array(a, np.float32)))
    return put


def load_tower_from_mmproj(tower, path, with_projector=False):
    """The vision tower (stage 1's result) of an exported mmproj, e.g. a bundled one: patch and
    position embeddings ([CLS] and pre-LN for the LLaVA layout) and the blocks (the names
    write_mmproj gives them). Without with_projector the connector / projector and the LLaVA
    post_ln keep their initialization (--pretrained, --pretrain-from: a stage restarts from that
    tower); with it they are loaded too (--resume from an exported pair)."""
    import gguf
    kv, t = gguf.read(path)
    llava = isinstance(tower, models.ClipTower)
    expected = "mlp" if llava else "idefics3"
    assert kv.get("clip.projector_type") == expected, \
        f"{path}: projector {kv.get('clip.projector_type')}, this layout needs {expected}"
    put = _gguf_copier(path, t)
    with torch.no_grad():
        put(tower.patch_embd.weight, "v.patch_embd.weight")
        put(tower.pos, "v.position_embd.weight")
        if llava:
            put(tower.cls, "v.class_embd")
            put(tower.pre_ln.weight, "v.pre_ln.weight")
            put(tower.pre_ln.bias, "v.pre_ln.bias")
        else:
            put(tower.patch_embd.bias, "v.patch_embd.bias")
        for i, blk in enumerate(tower.blocks):  # a LLaVA file's extra all-zero block is not read
            for name, mod in blk.gguf_linears() + blk.gguf_norms():
                put(mod.weight, f"v.blk.{i}.{name}.weight")
                put(mod.bias, f"v.blk.{i}.{name}.bias")
        # SigLIP's post-LN belongs to the tower (stage 1 trains it); LLaVA's to the projector
        if tower.post_ln is not None and (with_projector or not llava):
            put(tower.post_ln.weight, "v.post_ln.weight")
            put(tower.post_ln.bias, "v.post_ln.bias")
        if not with_projector:
            return
        if llava:
            for name, lin in (("mm.0", tower.mm0), ("mm.2", tower.mm2)):
                put(lin.weight, name + ".weight")
                put(lin.bias, name + ".bias")
        else:
            put(tower.fc.weight, "mm.model.fc.weight")


def load_decoder_from_text_gguf(dec, path):
    """The llama decoder of an exported text model (the names export_gguf.write_text gives them)."""
    import gguf
    _, t = gguf.read(path)
    put = _gguf_copier(path, t)
    with torch.no_grad():
        put(dec.tok.weight, "token_embd.weight")
        for i, blk in enumerate(dec.blocks):
            for name, mod, _ in blk.gguf_weights():
                put(mod.weight, f"blk.{i}.{name}.weight")
        put(dec.norm.weight, "output_norm.weight")


def load_resume(args, tower, dec):
    """--resume: the tower (with its connector) and the decoder of an earlier full checkpoint, or
    of an exported GGUF pair (--resume TEXT.gguf --resume-mmproj MMPROJ.gguf: f16 files give the
    weights rounded to f16; training goes on from them as from the checkpoint). With --pretrained
    too, the tower (not its connector) is then replaced by that one."""
    if not args.resume:
        return
    if args.resume.endswith(".gguf"):
        assert args.resume_mmproj, "--resume TEXT.gguf needs --resume-mmproj MMPROJ.gguf"
        load_decoder_from_text_gguf(dec, args.resume)
        load_tower_from_mmproj(tower, args.resume_mmproj, with_projector=True)
        log("tower, connector and decoder loaded from", args.resume, "and", args.resume_mmproj)
    else:
        ck = torch.load(args.resume)
        load_tower_state(tower, ck["tower"])
        dec.load_state_dict(ck["dec"])
        log("tower, connector and decoder loaded from", args.resume)
    if args.pretrained:
        # a retrained tower under the connector and decoder being resumed (which adapt to it)
        load_tower_only(tower, args.pretrained)
        log("tower (without the connector) replaced by", args.pretrained)


@torch.no_grad()
def patch_glyph_eval(features_fn, patch_head, shards, glyph_center, n_images=400, batch=16):
    """Held-out accuracy of the dense head's glyph and object-center classes on the patches that
    have one (how well the tower tells characters and object centers apart where they are)."""
    r = dict(glyph=0, glyph_right=0, center=0, center_right=0)
    for b in range(0, min(n_images, len(shards)), batch):
        idx = np.arange(b, min(b + batch, n_images, len(shards)))
        _, tokens = features_fn(shards.pixels(idx), shards.n_chunks(idx))
        logits = patch_head(tokens)
        for y, (name, lo, n) in zip(shards.patch_fields(idx, glyph_center), DENSE_EXTRA_FIELDS):
            pred = logits[..., lo:lo + n].argmax(-1)
            pos = y > 0
            r[name] += int(pos.sum())
            r[name + "_right"] += int((pred[pos] == y[pos]).sum())
    return r


@torch.no_grad()
def text_read_eval(features_fn, text_head, shards, n_images=400, batch=16):
    """Strings the reading head reads exactly on the first n_images scenes with text of shards."""
    idx_all = [i for i in range(len(shards)) if shards.labels[i, TEXT_SLOTS_FIELD] > 0][:n_images]
    total = dict(exact=0, chars_right=0, images=0, chars=0)
    text_head.eval()
    for s in range(0, len(idx_all), batch):
        idx = np.array(idx_all[s:s + batch])
        n_chunks = shards.n_chunks(idx)
        _, tokens = features_fn(shards.pixels(idx), n_chunks)
        logits = text_head(*group_chunks(tokens, n_chunks), chunk_codes(shards, idx, tokens.shape[1]))
        for k, v in text_read_loss(logits, text_slot_labels(shards, idx))[1].items():
            total[k] += v
    text_head.train()
    return total


def text_oversampler(shards, cfg, rng):
    """idx -> idx with text_batch_share of the batch replaced by scenes that have text (whose one
    text question is otherwise 6 % of the answers, and whose glyphs are rare patch labels)."""
    share = cfg.get("text_batch_share", 0.0)
    if not share:
        return lambda idx: idx
    with_text = np.array([i for i in range(len(shards)) if shards.labels[i, TEXT_SLOTS_FIELD] > 0])

    def mix(idx):
        n_text = int(round(len(idx) * share))
        return np.concatenate([idx[:len(idx) - n_text], rng.choice(with_text, n_text, replace=False)])
    return mix


def shuffled_batches(rng, n_items, batch_size):
    """Batches of item indices, batch_size each, from a permutation of range(n_items) that is drawn
    again (a new epoch) when too few items remain for a whole batch. The first permutation is drawn
    now, not at the first next(), so rng is consumed in the same order as the loops that used to
    draw it inline (training runs stay reproducible with their seeds)."""
    order = rng.permutation(n_items)

    def batches(order):
        pos = 0
        while True:
            if pos + batch_size > len(order):
                order = rng.permutation(n_items)
                pos = 0
            yield order[pos:pos + batch_size]
            pos += batch_size

    return batches(order)


def pretrain_tower(tower, shards, cfg, head, features_fn, patch_head=None, val=None):
    """Stage 1: image-level targets from the tower's token features (+ the dense patch targets, +
    the ordered characters with text_read_weight; val: held-out scenes its reading is measured on)."""
    rng = np.random.default_rng(cfg["seed"])
    steps, B = cfg["pretrain_steps"], cfg["pretrain_batch"]
    params = list(tower.named_parameters()) + [("head." + n, p) for n, p in head.named_parameters()]
    if patch_head is not None:
        params += [("patch_head." + n, p) for n, p in patch_head.named_parameters()]
    read_weight = cfg.get("text_read_weight", 0)
    text_head = TextReadHead(cfg["v_embd"]) if read_weight else None
    if text_head is not None:
        params += [("text_head." + n, p) for n, p in text_head.named_parameters()]
    read = dict(exact=0, chars_right=0, images=0, chars=0)
    mix_text = text_oversampler(shards, cfg, rng)
    opt = torch.optim.AdamW(param_groups(params, cfg["pretrain_lr"], 0.05), betas=(0.9, 0.98))
    batches = shuffled_batches(rng, len(shards), B)
    t0, c0 = time.time(), time.process_time()
    for step in range(steps):
        idx = mix_text(next(batches))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, g["base_lr"], cfg["pretrain_warmup"])
        n_chunks = shards.n_chunks(idx)
        logits, tokens = features_fn(shards.pixels(idx), n_chunks)
        loss, m = pretrain_loss(logits, torch.from_numpy(shards.labels[idx].astype(np.int64)))
        loss = loss * cfg.get("image_loss_weight", 1.0)
        if text_head is not None:
            rl, rc = text_read_loss(text_head(*group_chunks(tokens, n_chunks), chunk_codes(shards, idx, tokens.shape[1])),
                                    text_slot_labels(shards, idx))
            loss = loss + read_weight * rl
            for k, v in rc.items():
                read[k] += v
        if patch_head is not None and cfg.get("patch_dense", 0):
            fields = shards.patch_fields(idx, glyph_centered(cfg)) if stage1_glyphs_centers(cfg) else None
            dense, dm = dense_patch_loss(patch_head(tokens), shards.patch_targets(idx),
                                         cfg.get("patch_shape_weight", 1.0), fields, cfg.get("glyph_pos_weight"))
            m.update(dm)
            loss = loss + dense * cfg["patch_loss_weight"]
        elif patch_head is not None:
            pt = shards.patch_targets(idx)
            if cfg.get("patch_factored", 0):
                pt = factor_patch_targets(pt)
            pl = patch_head(tokens)
            # Positives are rare (most patches are background): weight them up so the head does
            # not settle on "nothing anywhere".
            pw = torch.full((pt.shape[-1],), float(cfg.get("patch_pos_weight", 1.0)))
            dense = F.binary_cross_entropy_with_logits(pl, pt, pos_weight=pw) * cfg["patch_loss_weight"]
            loss = loss + dense
            m["patch_f1"] = float(2 * ((pl > 0) & (pt > 0)).sum() / ((pl > 0).sum() + (pt > 0).sum()).clamp(min=1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        opt.step()
        if step % cfg["log_every"] == 0 or step == steps - 1:
            log(f"pretrain {step}/{steps} loss {loss.item():.4f} presence-exact {m['presence_exact']:.3f} "
                f"shape-count {m['shape_count']:.3f} patch-f1 {m.get('patch_f1', 0):.3f} "
                f"patch-shape-acc {m.get('patch_shape_acc', 0):.3f}" +
                (f" patch-glyph-acc {m['patch_glyph_acc']:.3f} patch-center-acc {m['patch_center_acc']:.3f}"
                 if "patch_glyph_acc" in m else "") +
                (f" text-read strings {read['exact']}/{read['images']} chars {read['chars_right']}/{read['chars']}"
                 if text_head is not None else "") + f" ({time.time() - t0:.0f} s)")
            read = dict(exact=0, chars_right=0, images=0, chars=0)
        at_eval = val is not None and ((step + 1) % cfg["eval_every"] == 0 or step == steps - 1)
        if at_eval and patch_head is not None and stage1_glyphs_centers(cfg):
            r = patch_glyph_eval(features_fn, patch_head, val, glyph_centered(cfg))
            log(f"pretrain {step + 1}/{steps} held-out per-patch classes: glyph {r['glyph_right']}/{r['glyph']} = "
                f"{r['glyph_right'] / max(1, r['glyph']):.3f}, object center {r['center_right']}/{r['center']} = "
                f"{r['center_right'] / max(1, r['center']):.3f}")
        if at_eval and text_head is not None:
            r = text_read_eval(features_fn, text_head, val)
            log(f"pretrain {step + 1}/{steps} held-out text read: strings {r['exact']}/{r['images']} = "
                f"{r['exact'] / max(1, r['images']):.3f}, characters {r['chars_right']}/{r['chars']} = "
                f"{r['chars_right'] / max(1, r['chars']):.3f}")
    return time.time() - t0, time.process_time() - c0


@torch.no_grad()
def cache_tower_features(tower, shards, chunk_batch=256):
    """Token features of every chunk (tower.features, before the projector), f16 in memory:
    (n_chunks, n_tokens, C). With the tower frozen, stage 2 runs only projector + decoder."""
    tower.eval()
    n = len(shards.tiles)
    out = None
    for s in range(0, n, chunk_batch):
        u8 = shards.tiles[s:s + chunk_batch]
        f = tower.features(torch.from_numpy(shards.normalize(u8)))
        if out is None:
            out = torch.empty((n,) + tuple(f.shape[1:]), dtype=torch.float16)
        out[s:s + len(u8)] = f.half()
    tower.train()
    return out


def train_vlm(tower, dec, shards, val, cfg, checkpoint=None):
    """Stage 2: the VLM on captions and questions (answer tokens only). With cfg["freeze_tower"] the
    tower's features are computed once (cache_tower_features) and only the projector and the
    decoder train: several times more steps in the same time, and the pretrained features stay."""
    rng = np.random.default_rng(cfg["seed"] + 1)
    steps, B = cfg["steps"], cfg["batch"]
    glyphs_centers = bool(cfg.get("glyphs_centers", 0))
    word_ids = shards.word_ids(glyphs_centers) if cfg.get("image_word_weight", 0) else None
    assert word_ids is None or cfg.get("freeze_tower", 0), "image_word_weight needs freeze_tower"
    binding = None  # vlm_loss's binding argument, the same every step
    if cfg.get("binding_weight", 0):
        assert word_ids is not None, "binding_weight needs image_word_weight (its per-token targets)"
        kinds = [KINDS.index(k) for k in ("color", "count", "exist", "position")]
        if cfg.get("binding_skip_color", 0):
            kinds.remove(KINDS.index("color"))
        binding = (int(cfg.get("binding_layer", 2)), cfg["binding_weight"],
                   shards.word_ids(True)[N_COLORS + N_SHAPES:N_COLORS + 2 * N_SHAPES],  # plural shape words
                   int(cfg.get("binding_heads", 2)), tuple(kinds))
    assert not cfg.get("feature_standardize", 0) or (hasattr(tower, "feat_mean") and cfg.get("freeze_tower", 0)), \
        "feature_standardize needs the LLaVA-layout tower and freeze_tower"
    frozen = None
    if cfg.get("freeze_tower", 0):
        t = time.time()
        frozen = cache_tower_features(tower, shards)
        log(f"cached tower features {tuple(frozen.shape)} in {time.time() - t:.0f} s")
        if cfg.get("feature_standardize", 0):
            # over the rows the projector reads (CLIP: rows 1..N), every cached chunk
            rows = frozen[:, 1:].float().reshape(-1, frozen.shape[-1])
            tower.feat_mean.copy_(rows.mean(0))
            tower.feat_std.copy_(rows.std(0).clamp(min=1e-3))
            log(f"feature standardization: |mean| {tower.feat_mean.abs().mean():.3f}, std {tower.feat_std.mean():.3f} (channel averages)")
        proj = {n for n, _ in tower.named_parameters() if tower.is_projector_param(n)}
        for n, p in tower.named_parameters():
            p.requires_grad_(n in proj)
    groups = param_groups(tower.named_parameters(), cfg["lr"] * cfg["tower_lr_scale"], cfg["wd"]) + \
        param_groups(dec.named_parameters(), cfg["lr"], cfg["wd"])
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.98))
    params = [p for g in groups for p in g["params"]]
    batches = shuffled_batches(rng, len(shards), B)
    t0, c0 = time.time(), time.process_time()
    eval_cpu = 0.0
    val_idx = np.arange(min(len(val), cfg["val_images"])) if val is not None else None
    ema = None
    mix_text = text_oversampler(shards, cfg, rng)
    for step in range(steps):
        idx = mix_text(next(batches))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, g["base_lr"], cfg["warmup"])
        batch = shards.batch(idx, caption_weight=cfg["caption_weight"])
        if frozen is not None:
            feats = torch.cat([frozen[shards.chunk_slice(i)] for i in idx])
            words = None
            if cfg.get("image_word_weight", 0):
                fields = shards.patch_fields(idx, glyph_centered(cfg)) if glyphs_centers else None
                words = (word_ids, token_word_targets(tower, shards.patch_targets(idx), fields), cfg["image_word_weight"])
            loss = vlm_loss(dec, tower.project(feats.float()), batch, words, binding)
        else:
            loss = vlm_loss(dec, tower(shards.pixels(idx)), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % cfg["log_every"] == 0 or step == steps - 1:
            log(f"vlm {step}/{steps} loss {loss.item():.4f} (ema {ema:.4f}) lr {opt.param_groups[-1]['lr']:.2e} "
                f"({time.time() - t0:.0f} s)")
        if val is not None and cfg["eval_every"] and step > 0 and (step % cfg["eval_every"] == 0 or step == steps - 1):
            e0 = time.process_time()
            text, _ = format_eval(evaluate(tower, dec, val, val_idx))
            eval_cpu += time.process_time() - e0
            log(f"val@{step}: {text}")
            if checkpoint:
                checkpoint(step)
    # CPU seconds of training proper (validation excluded): the wall time on an idle core.
    return time.time() - t0, time.process_time() - c0 - eval_cpu


def save_checkpoint(path, tower, dec, cfg, extra=None):
    torch.save(dict(tower=tower.state_dict(), dec=dec.state_dict(), cfg=cfg, extra=extra or {}), path)


def build_model(cfg, n_vocab, build_tower):
    """(tower, decoder): build_tower(cfg), then the llama decoder both layouts share, in this order
    (the seeded initialization depends on it)."""
    tower = build_tower(cfg)
    dec = models.LlamaDecoder(n_vocab, cfg["t_embd"], cfg["t_layer"], cfg["t_head"], cfg["t_head_kv"], cfg["t_ff"],
                              cfg["rope_base"], cfg["rms_eps"])
    return tower, dec


# The training recipes of both layouts (tools/train/README.md); train_smolvlm.py and train_llava.py
# add their ARCH, their seed and what they change. "full": stage 1 at batch 8 for many steps: the
# ViT's per-patch shape accuracy stays near chance for ~2000 steps and then climbs (0.33 at 1500,
# 0.57 at 3000 in a probe), so steps matter more than batch size. Stage 2 with the tower frozen
# (features cached once) and the image-word loss (image_word_loss): color answers 0.13 -> 0.42
# after 500 steps on the same tower.
RECIPES = {
    "full": dict(pretrain_steps=6000, pretrain_batch=8, pretrain_lr=1e-3, pretrain_warmup=30,
                 patch_loss_weight=1.0, patch_dense=1, patch_shape_weight=3.0, pos_sincos=1, image_loss_weight=0.3,
                 steps=4000, batch=8, lr=1.5e-3, tower_lr_scale=0.5, wd=0.05, warmup=100, caption_weight=0.5,
                 freeze_tower=1, image_word_weight=1.0, log_every=100, eval_every=1000, val_images=200),
    "full-e3": dict(pretrain_steps=600, pretrain_batch=24, pretrain_lr=1e-3, pretrain_warmup=30,
                    patch_loss_weight=1.0, patch_factored=1, patch_pos_weight=5.0,
                    steps=2000, batch=8, lr=1.5e-3, tower_lr_scale=0.5, wd=0.05, warmup=100, caption_weight=0.5,
                    log_every=50, eval_every=400, val_images=200),
    "small": dict(pretrain_steps=60, pretrain_batch=8, pretrain_lr=1e-3, pretrain_warmup=10,
                  patch_loss_weight=1.0, patch_dense=1, patch_shape_weight=3.0, pos_sincos=1, image_loss_weight=0.3,
                  steps=200, batch=8, lr=1e-3, tower_lr_scale=0.5, wd=0.05, warmup=20, caption_weight=0.5,
                  freeze_tower=1, image_word_weight=1.0, log_every=20, eval_every=100, val_images=64),
}


def layout_configs(arch, seed, changes=None):
    """Every recipe of RECIPES for one layout: its architecture, its seed, then its own changes
    ({recipe name: {key: value}}) over the shared recipe."""
    changes = changes or {}
    return {name: {**arch, "seed": seed, **recipe, **changes.get(name, {})} for name, recipe in RECIPES.items()}


def start_run(description, configs, layout, build_tower):
    """Command line, config, training and held-out shards (checked to be of this layout and tile
    size), and the model (build_model), its size logged."""
    args = base_args(description).parse_args()
    cfg = setup(args, configs)
    train = Shards(args.data)
    val = Shards(args.val) if args.val else None
    assert train.meta["layout"] == layout and train.meta["tile"] == cfg["tile"]
    tower, dec = build_model(cfg, train.meta["n_vocab"], build_tower)
    n_params = sum(p.numel() for p in tower.parameters()), sum(p.numel() for p in dec.parameters())
    log(f"tower {n_params[0] / 1e6:.2f} M params, decoder {n_params[1] / 1e6:.2f} M params")
    return args, cfg, train, val, tower, dec


def train_and_save(args, cfg, layout, tower, dec, train, val, head, features_fn):
    """Both stages and the final checkpoint, for train_llava.py and train_smolvlm.py, which differ
    only in the tower, its stage-1 head and how features_fn pools it (layout: "llava" or "smolvlm",
    recorded in the checkpoint)."""
    patch_head = make_patch_head(cfg, tower)
    (t_pre, c_pre, go_on) = pretrain_or_load(args, tower, train, cfg, head, features_fn, patch_head)
    if not go_on:
        return
    load_resume(args, tower, dec)

    def checkpoint(step):  # partial checkpoints while training (overwritten; the final one follows)
        save_checkpoint(args.out + ".partial", tower, dec, cfg, dict(layout=layout, data_meta=train.meta, step=step))

    (t_vlm, c_vlm) = train_vlm(tower, dec, train, val, cfg, checkpoint)
    log(f"training wall time: pretrain {t_pre:.0f} s, vlm {t_vlm:.0f} s, total {t_pre + t_vlm:.0f} s; "
        f"CPU time (= wall time on an idle core): pretrain {c_pre:.0f} s, vlm {c_vlm:.0f} s, "
        f"total {c_pre + c_vlm:.0f} s, {args.threads} thread(s)")
    extra = dict(pretrain_seconds=t_pre, vlm_seconds=t_vlm, pretrain_cpu_seconds=c_pre,
                 vlm_cpu_seconds=c_vlm, threads=args.threads, layout=layout, data_meta=train.meta)
    if val is not None:
        res = evaluate(tower, dec, val, list(range(len(val))))
        text, _ = format_eval(res)
        log(f"final held-out ({len(val)} scenes, PyTorch teacher-forced exact match): {text}")
        extra["val"] = res
    save_checkpoint(args.out, tower, dec, cfg, extra)
    log("saved", args.out)


def base_args(description):
    import argparse
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", required=True, help="glimpse-traindata build directory (training scenes)")
    ap.add_argument("--val", help="build directory of held-out scenes for evaluation")
    ap.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    ap.add_argument("--config", default="full", help="full or small (quick iteration)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-bf16", action="store_true", help="f32 matmuls (slower; bf16 needs AVX512-BF16/AMX to be fast)")
    ap.add_argument("--set", action="append", default=[], help="override a config value: key=value")
    ap.add_argument("--pretrained", help="skip stage 1: load the tower from this OUT.tower.pt of an earlier run, or from "
                    "an exported mmproj .gguf (its connector / projector is not loaded); with --resume: replaces the "
                    "resumed tower")
    ap.add_argument("--pretrain-only", action="store_true", help="stop after stage 1 (writes OUT.tower.pt)")
    ap.add_argument("--pretrain-from", help="run stage 1 starting from this tower (OUT.tower.pt, a checkpoint or an "
                    "mmproj .gguf) instead of from scratch; its heads start afresh")
    ap.add_argument("--resume", help="skip stage 1 and continue stage 2 from this full checkpoint (tower, "
                    "connector and decoder) for the config's steps, with a fresh warmup and decay; or from an "
                    "exported text model TEXT.gguf with --resume-mmproj")
    ap.add_argument("--resume-mmproj", help="the mmproj of the pair --resume TEXT.gguf continues from")
    return ap


def number_or_word(v):
    """A --set value the config does not have: a number, or a word (glyph_target=center)."""
    try:
        return float(v)
    except ValueError:
        return v


def setup(args, configs):
    cfg = dict(configs[args.config])
    for kv in args.set:
        k, v = kv.split("=", 1)
        cfg[k] = type(cfg[k])(v) if k in cfg else number_or_word(v)
    torch.set_num_threads(args.threads)
    torch.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    models.MATMUL_BF16 = not args.no_bf16
    log("config", json.dumps(cfg))
    return cfg
