"""Helpers shared by the Python oracles of datasets/ (gguf, tokenizer, forward, llama.cpp)."""
import argparse
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
