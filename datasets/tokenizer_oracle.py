#!/usr/bin/env python3
"""Oracle test: the C++ tokenizer gives the same ids as the PyPI `tokenizers` library built from the
same GGUF vocabulary and merges (ByteLevel BPE; SmolLM2's pre-tokenizer: Digits(individual) then
ByteLevel(add_prefix_space=False, use_regex=True); control tokens as special added tokens).

Texts: every file of /usr/share/common-licenses (the corpus the embedded datasets come from) and a
stress text (digits, contractions, whitespace runs, non-ASCII letters and numbers, special tokens).

usage: tokenizer_oracle.py --tool <datasets_oracle_tool> [--model <gguf>] --workdir <dir>
"""
import glob
import os
import subprocess
import sys

import gguf
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

from oracle_common import model_missing, oracle_args

STRESS = (
    "Hello world! It's 2024; we've paid $1,234.56 (they'll say I'm 'right', he'd agree).\n\n"
    "  Indented   spaces\t\ttabs\r\nCRLF line\n\n\n   \n trailing   \n"
    "Ünïcödé façade naïve — “quotes” ½ ⅔ Ⅻ ٣٤٥ 漢字かな カタカナ 한국어 Ελληνικά русский\n"
    "emoji 😀👍🏽 and symbols ©®™ §¶ ∑∫≈≠ 𝔘𝔫𝔦\n"
    "x=3.14e-10, y = -42, IDs: A1B2C3 0x1F  007 '' ''' 's 'S 'LL don't DON'T\n"
    "<|im_start|>user\nHi<|im_end|>\n<|endoftext|><repo_name>a<file_sep>\u00a0nbsp\u2003em\u3000ideo\n"
    "end with spaces   "
)


def field_strings(r, key):
    f = r.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def build_oracle(model):
    r = gguf.GGUFReader(model)
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
    a = oracle_args().parse_args()
    if model_missing(a.model):
        return 1
    os.makedirs(a.workdir, exist_ok=True)
    tk, vocab = build_oracle(a.model)
    stress = os.path.join(a.workdir, "stress.txt")
    with open(stress, "w", encoding="utf-8", newline="") as f:
        f.write(STRESS)
    texts = sorted(p for p in glob.glob("/usr/share/common-licenses/*") if os.path.isfile(p)) + [stress]
    if len(texts) < 5:
        print("FAIL /usr/share/common-licenses is missing: the corpus is Debian's license texts")
        return 1
    ok, total = True, 0
    for path in texts:
        with open(path, encoding="utf-8", newline="") as f:  # keep \r\n as in the file
            text = f.read()
        want = tk.encode(text, add_special_tokens=False).ids
        out = subprocess.run([a.tool, "tokenize", a.model, path], capture_output=True, text=True)
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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
