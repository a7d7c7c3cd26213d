"""PyTorch models in exactly the layouts glimpse (models/vision_encoder.cpp, models/text_decoder.cpp)
and llama.cpp run from GGUF files.

Conventions that matter for parity (each is what the C++ graph does):
  * patch embedding = Conv2d(3, C, P, stride P): its weight (C, 3, P, P) flattened is the im2col row
    layout (channel, ky, kx) of GGUF `v.patch_embd.weight` ne=[P, P, 3, C]; patches row-major.
  * SigLIP (idefics3): no [CLS], learned positions, LayerNorm eps 1e-6, GELU (tanh form), post-LN,
    pixel shuffle as ops/vision.h pixel_shuffle_ref, then `mm.model.fc` without bias.
  * CLIP (mlp / LLaVA): [CLS] appended AFTER the patches with position row N, pre-LN, quick GELU,
    no post-LN; rows 1..N are kept (patch 0 dropped, [CLS] last); `mm.0` -> GELU (tanh) -> `mm.2`.
    llama.cpp runs block_count - 1 blocks: the file stores one extra all-zero block (an identity),
    so running it or not gives the same result.
  * llama decoder: RMSNorm, RoPE in llama "normal" mode (adjacent pairs (2i, 2i+1) rotate, the
    convention of the GGUF weights; no Q/K permutation at export), GQA (query head h reads K/V head
    h // (n_head / n_head_kv)), SwiGLU, tied output embedding.

`ggml=True` in the forward passes reproduces ggml's roundings for the parity reference: patches and
patch kernel rounded to f16, GELU/quick-GELU evaluated on f16-rounded inputs with an f16 result,
and (for f16 weight files) the activation operand of every f16 matmul rounded to f16.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def f16r(x):
    return x.half().float()


# Training speed: on CPUs with AMX/AVX512-BF16 the matmuls run in bfloat16 (f32 accumulate) while
# everything elementwise stays f32 (bf16 elementwise kernels are slow in torch 1.13). Set by the
# training scripts; the parity reference and evaluation run with it off (pure f32).
MATMUL_BF16 = False


def mm(a, b):
    """Batched or plain matmul, in bf16 when MATMUL_BF16 (result f32)."""
    if MATMUL_BF16:
        return torch.matmul(a.bfloat16(), b.bfloat16()).float()
    return torch.matmul(a, b)


def linear(x, w, b=None):
    if MATMUL_BF16:
        y = F.linear(x.bfloat16(), w.bfloat16())
        y = y.float()
        return y if b is None else y + b
    return F.linear(x, w, b)


def gelu_tanh(x, ggml=False):
    if ggml:
        return f16r(F.gelu(f16r(x), approximate='tanh'))
    return F.gelu(x, approximate='tanh')


def gelu_quick(x, ggml=False):
    if ggml:
        x = f16r(x)
        return f16r(x * torch.sigmoid(1.702 * x))
    return x * torch.sigmoid(1.702 * x)


class Lin(nn.Linear):
    """nn.Linear whose input is rounded to f16 when the GGUF stores its weight as f16 (ggml does)."""

    f16_weight = False

    def forward(self, x, ggml=False):
        if ggml and self.f16_weight:
            x = f16r(x)
        return linear(x, self.weight, self.bias)


class VitBlock(nn.Module):
    def __init__(self, C, n_head, n_ff, eps, act):
        super().__init__()
        self.n_head = n_head
        self.ln1 = nn.LayerNorm(C, eps=eps)
        self.q, self.k, self.v, self.o = Lin(C, C), Lin(C, C), Lin(C, C), Lin(C, C)
        self.ln2 = nn.LayerNorm(C, eps=eps)
        self.up, self.down = Lin(C, n_ff), Lin(n_ff, C)
        self.act = act

    def gguf_linears(self):
        """(GGUF tensor stem, module) of the block's weight+bias linears, as mmproj files name them."""
        return (("attn_q", self.q), ("attn_k", self.k), ("attn_v", self.v), ("attn_out", self.o),
                ("ffn_up", self.up), ("ffn_down", self.down))

    def gguf_norms(self):
        return (("ln1", self.ln1), ("ln2", self.ln2))

    def forward(self, x, ggml=False, want_attn=False):
        B, N, C = x.shape
        H, D = self.n_head, C // self.n_head
        h = self.ln1(x)
        q = self.q(h, ggml).view(B, N, H, D).transpose(1, 2).reshape(B * H, N, D)
        k = self.k(h, ggml).view(B, N, H, D).permute(0, 2, 3, 1).reshape(B * H, D, N)
        v = self.v(h, ggml).view(B, N, H, D).transpose(1, 2).reshape(B * H, N, D)
        a = torch.softmax(mm(q, k) * (1.0 / math.sqrt(D)), dim=-1)
        o = mm(a, v).view(B, H, N, D).transpose(1, 2).reshape(B, N, C)
        a = a.view(B, H, N, N)
        x = x + self.o(o, ggml)
        h = self.ln2(x)
        x = x + self.down(self.act(self.up(h, ggml), ggml), ggml)
        return (x, a) if want_attn else x


def pixel_shuffle(x, grid, s):
    """x:(B, grid*grid, C) -> (B, (grid/s)^2, s*s*C), as ops/vision.h pixel_shuffle_ref:
    y[by*bw + bx][(i*s + j)*C + c] = x[(by*s + i)*grid + bx*s + j][c]."""
    B, N, C = x.shape
    b = grid // s
    x = x.view(B, b, s, b, s, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, b * b, s * s * C)


class SiglipTower(nn.Module):
    """idefics3 vision tower + connector: pixels (B,3,S,S) -> (B, n_tokens, n_embd_text)."""

    def __init__(self, image_size, patch, C, n_layer, n_head, n_ff, scale_factor, n_embd_text, eps=1e-6):
        super().__init__()
        self.image_size, self.patch, self.C, self.scale_factor = image_size, patch, C, scale_factor
        self.grid = image_size // patch
        self.n_patches = self.grid * self.grid
        self.eps = eps
        self.patch_embd = nn.Conv2d(3, C, patch, stride=patch, bias=True)
        self.pos = nn.Parameter(torch.randn(self.n_patches, C) * 0.02)
        self.blocks = nn.ModuleList([VitBlock(C, n_head, n_ff, eps, gelu_tanh) for _ in range(n_layer)])
        self.post_ln = nn.LayerNorm(C, eps=eps)
        self.fc = Lin(C * scale_factor * scale_factor, n_embd_text, bias=False)

    def patches(self, pix, ggml=False):
        if ggml:
            return F.conv2d(f16r(pix), f16r(self.patch_embd.weight), self.patch_embd.bias, stride=self.patch)
        return self.patch_embd(pix)

    def features(self, pix, ggml=False):
        """(B,3,S,S) -> post-LN patch features (B, N, C)."""
        x = self.patches(pix, ggml).flatten(2).transpose(1, 2) + self.pos
        for blk in self.blocks:
            x = blk(x, ggml)
        return self.post_ln(x)

    def project(self, feats, ggml=False):
        return self.fc(pixel_shuffle(feats, self.grid, self.scale_factor), ggml)

    @staticmethod
    def is_projector_param(name):
        return name.startswith("fc.")

    def forward(self, pix, ggml=False):
        return self.project(self.features(pix, ggml), ggml)


class ClipTower(nn.Module):
    """LLaVA (mlp) vision tower + projector: pixels (B,3,S,S) -> (B, N, n_embd_text)."""

    def __init__(self, image_size, patch, C, n_layer, n_head, n_ff, n_embd_text, eps=1e-5, post_ln=False):
        super().__init__()
        self.image_size, self.patch, self.C = image_size, patch, C
        self.grid = image_size // patch
        self.n_patches = self.grid * self.grid
        self.eps = eps
        self.patch_embd = nn.Conv2d(3, C, patch, stride=patch, bias=False)
        self.cls = nn.Parameter(torch.randn(C) * 0.02)
        self.pos = nn.Parameter(torch.randn(self.n_patches + 1, C) * 0.02)
        self.pre_ln = nn.LayerNorm(C, eps=eps)
        self.blocks = nn.ModuleList([VitBlock(C, n_head, n_ff, eps, gelu_quick) for _ in range(n_layer)])
        # Optional v.post_ln in front of the projector (llama.cpp and glimpse apply it when the file
        # has it). It trains with the projector in stage 2: without it the block output reaches
        # mm.0 unnormalized (rms ~11, mostly a shared offset) and the decoder's attention at a
        # question never concentrates on the asked object (tools/train/README.md, run P).
        self.post_ln = nn.LayerNorm(C, eps=eps) if post_ln else None
        self.mm0 = Lin(C, n_embd_text)
        self.mm2 = Lin(n_embd_text, n_embd_text)
        # Per-channel standardization of the features in front of mm.0 (training only; the export
        # folds it into mm.0, fold_feature_standardization). The block output has no LayerNorm
        # after it in this layout, and its channels carry large constant offsets (rms ~10, mostly
        # the channel means): mm.0's Adam steps then move the image embeddings ~10x further than
        # they would on normalized inputs.
        self.register_buffer("feat_mean", torch.zeros(C))
        self.register_buffer("feat_std", torch.ones(C))

    def features(self, pix, ggml=False):
        """(B,3,S,S) -> (B, N+1, C): patches 0..N-1 then [CLS], after the run blocks."""
        if ggml:
            p = F.conv2d(f16r(pix), f16r(self.patch_embd.weight), None, stride=self.patch)
        else:
            p = self.patch_embd(pix)
        p = p.flatten(2).transpose(1, 2)
        x = torch.cat([p, self.cls.expand(p.shape[0], 1, -1)], dim=1) + self.pos
        x = self.pre_ln(x)
        for blk in self.blocks:
            x = blk(x, ggml)
        return x

    def project(self, feats, ggml=False):
        x = feats[:, 1:]  # rows 1..N: patch 0 dropped, [CLS] last
        if self.post_ln is not None:
            x = self.post_ln(x)
        x = (x - self.feat_mean) / self.feat_std
        return self.mm2(gelu_tanh(self.mm0(x, ggml), ggml), ggml)

    @torch.no_grad()
    def fold_feature_standardization(self):
        """mm.0((x - m) / s) = (W / s) x + (b - (W / s) m): the exported mm.0 takes raw features."""
        w = self.mm0.weight / self.feat_std
        self.mm0.bias.sub_(w @ self.feat_mean)
        self.mm0.weight.copy_(w)
        self.feat_mean.zero_()
        self.feat_std.fill_(1.0)

    @staticmethod
    def is_projector_param(name):
        return name.startswith(("mm0.", "mm2.", "post_ln."))

    def forward(self, pix, ggml=False):
        return self.project(self.features(pix, ggml), ggml)


class RMSNorm(nn.Module):
    def __init__(self, C, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_angles(pos, n_rot, base, ggml=False):
    """pos:(...) int -> theta:(..., n_rot/2). ggml advances theta by repeated f32 multiplication."""
    half = n_rot // 2
    if ggml:
        scale = torch.tensor(base, dtype=torch.float32) ** torch.tensor(-2.0 / n_rot, dtype=torch.float32)
        th = [pos.float()]
        for _ in range(half - 1):
            th.append(th[-1] * scale)
        return torch.stack(th, dim=-1)
    inv = base ** (-torch.arange(0, half, dtype=torch.float32) * 2.0 / n_rot)
    return pos.float().unsqueeze(-1) * inv


def apply_rope(x, cos, sin):
    """x:(B,H,T,D) adjacent pairs (2i, 2i+1) rotate by theta_i; cos/sin:(B,1,T,D/2)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    y0 = x0 * cos - x1 * sin
    y1 = x0 * sin + x1 * cos
    return torch.stack([y0, y1], dim=-1).flatten(-2)


class DecoderBlock(nn.Module):
    def __init__(self, C, n_head, n_head_kv, n_ff, eps):
        super().__init__()
        D = C // n_head
        self.n_head, self.n_head_kv, self.D = n_head, n_head_kv, D
        self.attn_norm = RMSNorm(C, eps)
        self.q = Lin(C, n_head * D, bias=False)
        self.k = Lin(C, n_head_kv * D, bias=False)
        self.v = Lin(C, n_head_kv * D, bias=False)
        self.o = Lin(n_head * D, C, bias=False)
        self.ffn_norm = RMSNorm(C, eps)
        self.gate = Lin(C, n_ff, bias=False)
        self.up = Lin(C, n_ff, bias=False)
        self.down = Lin(n_ff, C, bias=False)
        self.keep_attention = False
        self.attention = None

    def gguf_weights(self):
        """(GGUF tensor stem under blk.N., module, whether it is a norm stored f32) in file order,
        as llama text models name them; used by the writer and by the loader of exported files."""
        return (("attn_norm", self.attn_norm, True), ("attn_q", self.q, False), ("attn_k", self.k, False),
                ("attn_v", self.v, False), ("attn_output", self.o, False), ("ffn_norm", self.ffn_norm, True),
                ("ffn_gate", self.gate, False), ("ffn_up", self.up, False), ("ffn_down", self.down, False))

    def forward(self, x, cos, sin, mask, ggml=False, kv_f16=False):
        B, T, C = x.shape
        H, Hkv, D = self.n_head, self.n_head_kv, self.D
        h = self.attn_norm(x)
        q = self.q(h, ggml).view(B, T, H, D).transpose(1, 2)
        k = self.k(h, ggml).view(B, T, Hkv, D).transpose(1, 2)
        v = self.v(h, ggml).view(B, T, Hkv, D).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if kv_f16:
            k, v = f16r(k), f16r(v)
        rep = H // Hkv
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        q = q.reshape(B * H, T, D)
        kt = k.transpose(-1, -2).reshape(B * H, D, T)
        v = v.reshape(B * H, T, D)
        s = (mm(q, kt) * (1.0 / math.sqrt(D))).view(B, H, T, T)
        s = s.masked_fill(~mask.unsqueeze(1), float('-inf'))
        a = torch.softmax(s, dim=-1).view(B * H, T, T)
        if self.keep_attention:  # for train_common.binding_loss
            self.attention = a.view(B, H, T, T)
        o = mm(a, v).view(B, H, T, D).transpose(1, 2).reshape(B, T, H * D)
        x = x + self.o(o, ggml)
        h = self.ffn_norm(x)
        x = x + self.down(F.silu(self.gate(h, ggml)) * self.up(h, ggml), ggml)
        return x


class LlamaDecoder(nn.Module):
    def __init__(self, n_vocab, C, n_layer, n_head, n_head_kv, n_ff, rope_base=10000.0, eps=1e-5):
        super().__init__()
        self.C, self.n_head, self.rope_base = C, n_head, rope_base
        self.n_rot = C // n_head
        self.tok = nn.Embedding(n_vocab, C)
        nn.init.normal_(self.tok.weight, std=0.02)
        self.blocks = nn.ModuleList([DecoderBlock(C, n_head, n_head_kv, n_ff, eps) for _ in range(n_layer)])
        self.norm = RMSNorm(C, eps)
        self.tok_f16 = False

    def embed(self, ids, image_embd):
        """ids:(B,T) with -1 at image positions, filled in order from image_embd:(n_img, C)."""
        is_img = ids < 0
        x = self.tok(ids.clamp(min=0))
        if image_embd is not None and image_embd.numel():
            x = x.masked_scatter(is_img.unsqueeze(-1), image_embd.to(x.dtype))
        return x

    def hidden(self, x, pos, mask, ggml=False, kv_f16=False):
        th = rope_angles(pos, self.n_rot, self.rope_base, ggml).unsqueeze(1)
        cos, sin = torch.cos(th), torch.sin(th)
        for blk in self.blocks:
            x = blk(x, cos, sin, mask, ggml, kv_f16)
        return self.norm(x)

    def logits(self, h, ggml=False):
        if ggml and self.tok_f16:
            h = f16r(h)
        return mm(h, self.tok.weight.t())


def tree_mask(seg):
    """seg:(B,T) segment ids: 0 = shared prefix, k>0 = branch k, -1 = padding -> (B,T,T) bool.
    Query t sees key u <= t when u is in the prefix or in t's own branch (padding sees itself)."""
    B, T = seg.shape
    idx = torch.arange(T)
    causal = idx.view(1, T, 1) >= idx.view(1, 1, T)
    sq, sk = seg.unsqueeze(2), seg.unsqueeze(1)
    allowed = causal & ((sk == 0) | (sk == sq)) & (sk >= 0) & (sq >= 0)
    allowed |= torch.eye(T, dtype=torch.bool).unsqueeze(0)
    return allowed
