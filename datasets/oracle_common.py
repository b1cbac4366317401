"""Helpers shared by the Python oracles of datasets/ (gguf, tokenizer, forward, llama.cpp)."""
import argparse
import json
import os
import subprocess

import numpy as np


def default_model():
    """The model fetch_models.sh verified: $TURBO_MODEL, else the cache folder's GGUF."""
    if os.environ.get("TURBO_MODEL"):
        return os.environ["TURBO_MODEL"]
    cache = os.environ.get("TURBO_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "turboattn"))
    return os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")


def gemma_model():
    """Gemma 3 270M as fetch_models.sh verified it, in the cache folder."""
    cache = os.environ.get("TURBO_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "turboattn"))
    return os.path.join(cache, "gemma-3-270m-q4_k_m.gguf")


def oracle_args(text=False, tokens=None):
    """The common flags --tool, --model, --workdir (and --text, --tokens N when asked for)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--model", default=default_model())
    if text:
        ap.add_argument("--text", default="/usr/share/common-licenses/GPL-3")
    if tokens is not None:
        ap.add_argument("--tokens", type=int, default=tokens)
    ap.add_argument("--workdir", required=True)
    return ap


def model_missing(model):
    """Prints the FAIL line and returns True when the model file is absent."""
    if os.path.exists(model):
        return False
    print(f"FAIL model '{model}' is missing: run datasets/fetch_models.sh")
    return True


def model_args(gemma_help):
    """The common flags plus --gemma [GGUF] (Gemma 3 270M; without a path, the cache folder's),
    parsed, the work folder created. None (after the FAIL line) when a model file is missing."""
    ap = oracle_args()
    ap.add_argument("--gemma", nargs="?", const=gemma_model(),
                    help=gemma_help + " (Gemma 3 270M) (default: the cache folder's)")
    a = ap.parse_args()
    if model_missing(a.model) or (a.gemma and model_missing(a.gemma)):
        return None
    os.makedirs(a.workdir, exist_ok=True)
    return a


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def our_logits(tool, model, text, tokens, workdir, prefix, for_model=False):
    """Token ids of the first `tokens` tokens of `text` (our tokenizer; with `for_model`, BOS as
    the model's metadata asks) and our forward's logits for them, [n, vocab] FP32, through
    datasets_oracle_tool."""
    os.makedirs(workdir, exist_ok=True)
    cmd = [tool, "tokenize", model, text] + (["--for-model"] if for_model else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    ids = [int(x) for x in out.stdout.split()][:tokens]
    ids_path = os.path.join(workdir, f"{prefix}_ids.txt")
    with open(ids_path, "w") as f:
        f.write("\n".join(map(str, ids)) + "\n")
    ours_path = os.path.join(workdir, f"{prefix}_ours.f32")
    subprocess.run([tool, "logits", model, ids_path, ours_path], check=True)
    return ids, np.fromfile(ours_path, dtype=np.float32).reshape(len(ids), -1)


def compare_logits(ids, theirs, ours, name):
    """Next-token distributions of another implementation `name` (`theirs`) against ours, both
    [n, vocab] logits of the token ids `ids`: per-position KL(p_theirs || p_ours) (`kl`), the
    argmaxes (`top_theirs`, `top_ours`), and `summary`, the figures every oracle reports: tokens,
    top-1 agreement, mean and max KL, their largest logit gap between the two tokens where the
    argmaxes differ (0 when they never do), and the perplexity of each."""
    n = len(ids)
    lp_t, lp_o = log_softmax(theirs), log_softmax(ours)
    kl = (np.exp(lp_t) * (lp_t - lp_o)).sum(axis=1)
    a_t, a_o = theirs.argmax(1), ours.argmax(1)
    dis = np.where(a_t != a_o)[0]
    tgt = np.array(ids[1:])
    summary = {
        "tokens": n,
        "top1_agreement": float((a_t == a_o).mean()),
        "kl_mean": float(kl.mean()),
        "kl_max": float(kl.max()),
        f"max_{name}_gap_at_disagreements":
            float((theirs[dis, a_t[dis]] - theirs[dis, a_o[dis]]).max()) if dis.size else 0.0,
        f"ppl_{name}": float(np.exp(-lp_t[np.arange(n - 1), tgt].mean())),
        "ppl_ours": float(np.exp(-lp_o[np.arange(n - 1), tgt].mean())),
    }
    return {"kl": kl, "top_theirs": a_t, "top_ours": a_o, "summary": summary}


def report(res, json_path):
    """Prints the figures as JSON, and writes them to `json_path` when given."""
    print(json.dumps(res, indent=2))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(res, f, indent=2)
