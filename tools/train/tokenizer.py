"""Byte-level BPE vocabulary for the bundled models, learned from the scene text.

The merges are learned here; the token ids used in training come from glimpse's own C++ tokenizer
(glimpse-traindata reads the vocabulary GGUF written below), so whatever glimpse/llama.cpp do with
these merges is by construction what the model was trained on.

Vocabulary layouts (GGUF `gpt2` model, `tokenizer.ggml.pre = smollm`):
  smolvlm: SmolLM2's 17 control tokens (ids 0..16: <|endoftext|>, <|im_start|>, <|im_end|>, ...),
           the 256 byte symbols, the learned merges, then <fake_token_around_image>, <image>,
           <global-img>, <row_R_col_C> (R, C = 1..6) and <end_of_utterance> (EOS) — the layout of
           tools/common/model_writer.cpp; BOS = <|im_start|>, add_bos = false, SmolVLM chat template.
  llava:   <unk>, <s> (BOS), </s> (EOS), the 256 byte symbols and the same merges; add_bos = true,
           a vicuna-style chat template (llama.cpp and glimpse detect it as `vicuna`).

Usage: tokenizer.py --corpus CORPUS.jsonl --out-dir DIR [--max-merges N] [--min-count N]
  writes DIR/vocab-smolvlm.gguf, DIR/vocab-llava.gguf (tokenizer keys only) and DIR/vocab.json.
"""
import argparse
import collections
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf  # noqa: E402

SMOLLM_CONTROL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>", "<filename>",
    "<gh_stars>", "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>", "<jupyter_text>",
    "<jupyter_code>", "<jupyter_output>", "<jupyter_script>", "<empty_output>",
]
# The SmolVLM chat template as published with the HF model (same text as tools/common/model_writer.cpp).
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == "
    "'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' "
    "%}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
# Vicuna v1 style (LLaVA-1.5): llama.cpp's detector picks `vicuna` ("USER: " and "ASSISTANT: ", no "SYSTEM: ").
VICUNA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + '</s>\\n' }}"
    "{% else %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")

TOKEN_NORMAL, TOKEN_CONTROL = 1, 3
GRID_MAX = 6


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_SYMBOL = bytes_to_unicode()
# Byte symbols in code-point order, as glimpse's gpt2_byte_order() and model_writer list them.
BYTE_SYMBOLS_ORDERED = [BYTE_SYMBOL[b] for b in sorted(range(256), key=lambda b: ord(BYTE_SYMBOL[b]))]

# smollm pre-tokenizer on ASCII text: every digit alone, then the GPT-2 regex.
_DIGIT = re.compile(r"[0-9]")
_GPT2 = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def pretokenize(text):
    out = []
    last = 0
    for m in _DIGIT.finditer(text):
        if m.start() > last:
            out += _GPT2.findall(text[last:m.start()])
        out.append(m.group())
        last = m.end()
    if last < len(text):
        out += _GPT2.findall(text[last:])
    return out


def corpus_words(corpus_path):
    """Word frequencies of everything the model reads or writes as text, per branch as trained.
    The random strings drawn in the images (caption `the text "K3"`, answers of `text` questions)
    are left out, so that they stay one token per character: no merges between random letters."""
    words = collections.Counter()
    n_branches = 0
    quoted = re.compile(r'"[^"]*"')
    with open(corpus_path) as f:
        for line in f:
            rec = json.loads(line)
            texts = [" " + quoted.sub('"', rec["caption"]), "Describe this image."]
            for q, a, kind in rec["qa"]:
                texts += [q] + ([] if kind == "text" else [" " + a])
            n_branches += 1 + len(rec["qa"])
            for t in texts:
                words.update(pretokenize(t))
    # Template text around every prompt (SmolVLM and vicuna), once per branch.
    for t in ["User: ", "\nAssistant:", "USER: ", "\nASSISTANT:"]:
        for w in pretokenize(t):
            words[w] += n_branches
    return words


def learn_merges(words, max_merges, min_count):
    seqs = {w: tuple(BYTE_SYMBOL[b] for b in w.encode("utf-8")) for w in words}
    merges = []
    while len(merges) < max_merges:
        pairs = collections.Counter()
        for w, n in words.items():
            s = seqs[w]
            for i in range(len(s) - 1):
                pairs[(s[i], s[i + 1])] += n
        if not pairs:
            break
        best, count = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if count < min_count:
            break
        merges.append(best)
        a, b = best
        for w in seqs:
            s = seqs[w]
            if len(s) < 2:
                continue
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = tuple(out)
    return merges


def build_vocab(layout, merges):
    """-> dict(tokens, types, merges, bos, eos, unk, pad, add_bos, template)."""
    tokens, types = [], []

    def add(t, ty):
        assert t not in seen, t
        seen.add(t)
        tokens.append(t)
        types.append(ty)

    seen = set()
    if layout == "smolvlm":
        for t in SMOLLM_CONTROL:
            add(t, TOKEN_CONTROL)
    else:
        for t in ["<unk>", "<s>", "</s>"]:
            add(t, TOKEN_CONTROL)
    for s in BYTE_SYMBOLS_ORDERED:
        add(s, TOKEN_NORMAL)
    # "\n\n" must be one token: libmtmd looks it up for the idefics3 overview wrapper.
    all_merges = [("Ċ", "Ċ")] + [m for m in merges if m != ("Ċ", "Ċ")]
    for a, b in all_merges:
        if a + b not in seen:
            add(a + b, TOKEN_NORMAL)
    v = dict(merges=[a + " " + b for a, b in all_merges])
    if layout == "smolvlm":
        for t in ["<fake_token_around_image>", "<image>", "<global-img>"]:
            add(t, TOKEN_CONTROL)
        for r in range(1, GRID_MAX + 1):
            for c in range(1, GRID_MAX + 1):
                add(f"<row_{r}_col_{c}>", TOKEN_CONTROL)
        add("<end_of_utterance>", TOKEN_CONTROL)
        v.update(bos=1, eos=len(tokens) - 1, unk=0, pad=2, add_bos=False, template=SMOLVLM_TEMPLATE)
    else:
        v.update(bos=1, eos=2, unk=0, pad=0, add_bos=True, template=VICUNA_TEMPLATE)
    v.update(tokens=tokens, types=types)
    return v


def write_tokenizer_keys(w, v):
    """The tokenizer.* keys of a text-model GGUF (shared by the vocab files and export_gguf.py)."""
    w.str("tokenizer.ggml.model", "gpt2")
    w.str("tokenizer.ggml.pre", "smollm")
    w.arr_str("tokenizer.ggml.tokens", v["tokens"])
    w.arr_i32("tokenizer.ggml.token_type", v["types"])
    w.arr_str("tokenizer.ggml.merges", v["merges"])
    w.u32("tokenizer.ggml.bos_token_id", v["bos"])
    w.u32("tokenizer.ggml.eos_token_id", v["eos"])
    w.u32("tokenizer.ggml.unknown_token_id", v["unk"])
    w.u32("tokenizer.ggml.padding_token_id", v["pad"])
    w.bool("tokenizer.ggml.add_bos_token", v["add_bos"])
    w.bool("tokenizer.ggml.add_eos_token", False)
    w.str("tokenizer.chat_template", v["template"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--max-merges", type=int, default=640)
    ap.add_argument("--min-count", type=int, default=20)
    args = ap.parse_args()
    words = corpus_words(args.corpus)
    merges = learn_merges(words, args.max_merges, args.min_count)
    os.makedirs(args.out_dir, exist_ok=True)
    out = {}
    for layout in ("smolvlm", "llava"):
        v = build_vocab(layout, merges)
        w = gguf.Writer()
        w.str("general.architecture", "llama")
        w.str("general.type", "vocab")
        w.str("general.name", f"glimpse scenes {layout} vocabulary")
        write_tokenizer_keys(w, v)
        w.write(os.path.join(args.out_dir, f"vocab-{layout}.gguf"))
        out[layout] = v
        print(f"{layout}: {len(v['tokens'])} tokens, {len(v['merges'])} merges", file=sys.stderr)
    with open(os.path.join(args.out_dir, "vocab.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
