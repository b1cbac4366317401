#!/usr/bin/env python3
"""Oracle test: the C++ tokenizer gives the same ids as the PyPI `tokenizers` library built from the
same GGUF vocabulary.

- SmolLM2 (tokenizer.ggml.model "gpt2"): ByteLevel BPE from the GGUF merges; SmolLM2's
  pre-tokenizer: Digits(individual) then ByteLevel(add_prefix_space=False, use_regex=True).
- Gemma 3 (--gemma; model "llama", SentencePiece BPE): a BPE model with byte_fallback whose merges
  are derived from the vocabulary scores the way Hugging Face's SentencePiece converter derives
  them (every split of a token into two tokens, ordered by the merged token's score, highest
  first), normalizer Replace(" ", "▁"), no pre-tokenizer.
Control and user-defined tokens (types 3, 4) are added tokens matched on the raw text.

Texts: every file of /usr/share/common-licenses (the corpus the embedded datasets come from) and a
stress text (digits, contractions, whitespace runs, non-ASCII letters and numbers, special tokens).

usage: tokenizer_oracle.py --tool <datasets_oracle_tool> [--model <gguf>] [--gemma <gguf>] --workdir <dir>
"""
import glob
import os
import subprocess
import sys

import gguf
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers

from oracle_common import model_args

STRESS = (
    "Hello world! It's 2024; we've paid $1,234.56 (they'll say I'm 'right', he'd agree).\n\n"
    "  Indented   spaces\t\ttabs\r\nCRLF line\n\n\n   \n trailing   \n"
    "Ünïcödé façade naïve — “quotes” ½ ⅔ Ⅻ ٣٤٥ 漢字かな カタカナ 한국어 Ελληνικά русский\n"
    "emoji 😀👍🏽 and symbols ©®™ §¶ ∑∫≈≠ 𝔘𝔫𝔦\n"
    "x=3.14e-10, y = -42, IDs: A1B2C3 0x1F  007 '' ''' 's 'S 'LL don't DON'T\n"
    "<|im_start|>user\nHi<|im_end|>\n<|endoftext|><repo_name>a<file_sep>\u00a0nbsp\u2003em\u3000ideo\n"
    "<start_of_turn>user\n\t\t\tdeep tabs<end_of_turn>\n\n\n\n rare 𠀀𪚥 \U0010FFFD byte fallback\n"
    "end with spaces   "
)


def field_strings(r, key):
    f = r.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def build_spm_oracle(r):
    tokens = field_strings(r, "tokenizer.ggml.tokens")
    f = r.fields["tokenizer.ggml.scores"]
    scores = [float(f.parts[i][0]) for i in f.data]
    f = r.fields["tokenizer.ggml.token_type"]
    types = [int(f.parts[i][0]) for i in f.data]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece, score in zip(tokens, scores):
        local = [(piece[:k], piece[k:], score) for k in range(1, len(piece))
                 if piece[:k] in vocab and piece[k:] in vocab]
        merges += sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]]))
    merges.sort(key=lambda m: m[2], reverse=True)  # stable: equal scores keep the order above
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[(a, b) for a, b, _ in merges], byte_fallback=True,
                              unk_token=None))
    tk.normalizer = normalizers.Replace(" ", "\u2581")
    specials = [t for t, ty in zip(tokens, types) if ty in (3, 4)]
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tk, tokens


def build_oracle(model):
    r = gguf.GGUFReader(model)
    kind = bytes(r.fields["tokenizer.ggml.model"].parts[-1]).decode()
    if kind == "llama":
        return build_spm_oracle(r)
    pre = bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode()
    if pre != "smollm":
        raise SystemExit(f"FAIL oracle configured for pre-tokenizer 'smollm', model has '{pre}'")
    tokens = field_strings(r, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in field_strings(r, "tokenizer.ggml.merges")]
    f = r.fields["tokenizer.ggml.token_type"]
    types = [int(f.parts[i][0]) for i in f.data]
    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    specials = [t for t, ty in zip(tokens, types) if ty in (3, 4)]
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tk, tokens


def main():
    a = model_args("also check this GGUF's tokenizer")
    if a is None:
        return 1
    stress = os.path.join(a.workdir, "stress.txt")
    with open(stress, "w", encoding="utf-8", newline="") as f:
        f.write(STRESS)
    texts = sorted(p for p in glob.glob("/usr/share/common-licenses/*") if os.path.isfile(p)) + [stress]
    if len(texts) < 5:
        print("FAIL /usr/share/common-licenses is missing: the corpus is Debian's license texts")
        return 1
    ok = True
    for model in [a.model] + ([a.gemma] if a.gemma else []):
        ok = check_model(a.tool, model, texts) and ok
    return 0 if ok else 1


def check_model(tool, model, texts):
    tk, vocab = build_oracle(model)
    print(f"== {os.path.basename(model)}")
    ok, total = True, 0
    for path in texts:
        with open(path, encoding="utf-8", newline="") as f:  # keep \r\n as in the file
            text = f.read()
        want = tk.encode(text, add_special_tokens=False).ids
        out = subprocess.run([tool, "tokenize", model, path], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"FAIL {path}: tool failed: {out.stderr.strip()}")
            ok = False
            continue
        got = [int(x) for x in out.stdout.split()]
        total += len(want)
        if got != want:
            k = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
            ctx = lambda ids: [vocab[i] for i in ids[max(0, k - 3):k + 3]]
            print(f"FAIL {path}: {len(got)} vs {len(want)} ids, first difference at {k}: "
                  f"C++ {ctx(got)} vs tokenizers {ctx(want)}")
            ok = False
        else:
            print(f"ok   {os.path.basename(path)}: {len(want)} ids identical")
    print(f"{'ok' if ok else 'FAIL'}: {len(texts)} texts, {total} tokens")
    return ok


if __name__ == "__main__":
    sys.exit(main())
