#!/usr/bin/env python3
"""Opt-in oracle: our Llama forward (ground-truth attention) against llama.cpp (PyPI
llama-cpp-python, built from source) on the same GGUF and the same token ids.

Reports per-position top-1 agreement and mean KL(p_llama.cpp || p_ours) of the next-token
distributions, the perplexity of both, and whether llama.cpp's own tokenizer gives our ids.
llama.cpp quantizes activations to Q8 for its Q4_1 matmuls and keeps its own FP16/FP32 attention,
so the two are not bit-equal. Pass: mean KL <= 0.02 nats, top-1 >= 95%, and every top-1
disagreement a near-tie (llama.cpp's logit gap between the two tokens <= 0.5). The issue expected
about 97% top-1; on the flat next-token distributions of license text we measure 96-97% (see
datasets/README.md), with every disagreement a near-tie, while a real bug (wrong RoPE pairing,
wrong norm, wrong tie) gives KL in whole nats.

With --bos (Gemma 3, whose metadata asks for BOS) both sides get the ids with BOS first. Over
more than 512 tokens, Gemma 3's sliding-window layers are checked too: llama.cpp applies its
512-key window, our ground-truth attention its own.

usage: llamacpp_oracle.py --tool <datasets_oracle_tool> [--model <gguf>] [--text <file>]
                          [--tokens N] [--bos] [--gemma] [--json out.json] --workdir <dir>
"""
import datetime
import importlib.metadata
import os
import sys

import numpy as np

from oracle_common import compare_logits, gemma_model, oracle_args, our_logits, report


def main():
    ap = oracle_args(text=True, tokens=1024)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--bos", action="store_true", help="BOS first, as the model's metadata asks")
    ap.add_argument("--gemma", action="store_true",
                    help="Gemma 3 270M from the cache folder, with --bos")
    a = ap.parse_args()
    if a.gemma:
        a.model, a.bos = gemma_model(), True
    import llama_cpp  # noqa: E402  (installed by llamacpp_oracle.sh)

    prefix = os.path.splitext(os.path.basename(a.model))[0]
    ids, ours = our_logits(a.tool, a.model, a.text, a.tokens, a.workdir, prefix, for_model=a.bos)
    n = len(ids)

    llm = llama_cpp.Llama(model_path=a.model, n_ctx=n, n_batch=n, n_ubatch=n, logits_all=True,
                          n_threads=os.cpu_count(), verbose=False, seed=0)
    with open(a.text, "rb") as f:
        text = f.read()
    their_ids = llm.tokenize(text, add_bos=a.bos, special=False)[:n]
    llm.eval(ids)
    theirs = np.array(llm.scores[:n], dtype=np.float32)
    if ours.shape != theirs.shape:
        print(f"FAIL logits shape: ours {ours.shape}, llama.cpp {theirs.shape}")
        return 1

    c = compare_logits(ids, theirs, ours, "llamacpp")
    kl, top1 = c["kl"], c["summary"]["top1_agreement"]
    gap = c["summary"]["max_llamacpp_gap_at_disagreements"]
    res = {
        "date": datetime.date.today().isoformat(),
        "llama_cpp_python": importlib.metadata.version("llama-cpp-python"),
        "model": os.path.basename(a.model),
        "text": a.text,
        **c["summary"],
        "tokenizer_ids_equal": their_ids == ids,
    }
    report(res, a.json)
    ok = top1 >= 0.95 and kl.mean() <= 0.02 and gap <= 0.5 and their_ids == ids
    print("ok" if ok else "FAIL: outside mean KL <= 0.02 nats, top-1 >= 0.95, near-tie disagreements "
          "(gap <= 0.5), or the tokenizations differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
