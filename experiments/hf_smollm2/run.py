#!/usr/bin/env python3
"""The Hugging Face path against the C++ path on SmolLM2-135M (issue 11's proof on real weights).

The same GGUF file (datasets/fetch_models.sh) is loaded by transformers' GGUF loader and by our C++
reader; both get the same token ids (our tokenizer's, from the C++ tools). Three comparisons:

1. Capture: turboattn.hf.capture (HF forward, reference attention) against the embedded C++
   capture datasets/data/smollm2_eval.h5 (512 tokens of GPL-3, 30 layers): Q, K, V per layer.
2. Logits of the whole model with ground-truth attention: HF vs datasets_oracle_tool logits.
3. Perplexity / KL / top-1 per method: turboattn.hf.perplexity vs `turboattn ppl` (same window).

usage: run.py --build build [--tokens 1024] [--methods ...] [--out experiments/hf_smollm2/out]
Writes out/summary.json and prints a Markdown summary (the tables of README.md).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import h5py
import numpy as np
import torch

import turboattn
from turboattn import hf

REPO = pathlib.Path(__file__).resolve().parents[2]
TEXT = "/usr/share/common-licenses/GPL-3"
# (label, method, knobs, phase)
RUNS = [
    ("fp16", "fp16", {}, "prefill"),
    ("flashq", "flashq", {}, "prefill"),
    ("flashq n_r=4", "flashq", {"n_r": 4}, "prefill"),
    ("kivi 4-bit", "kivi", {"kv_bits": 4}, "prefill"),
    ("sage", "sage", {}, "prefill"),
    ("fp8", "fp8", {}, "prefill"),
    ("flashq decode 4-bit", "flashq", {"kv_bits": 4}, "decode"),
]


def model_path():
    cache = os.environ.get("TURBO_CACHE", os.path.expanduser("~/.cache/turboattn"))
    return os.environ.get("TURBO_MODEL", os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf"))


def our_ids(build, n):
    out = subprocess.run([str(build / "datasets" / "datasets_oracle_tool"), "tokenize", model_path(),
                          TEXT], check=True, capture_output=True, text=True).stdout
    return np.array([int(x) for x in out.split()][:n], dtype=np.int64)


def compare_capture(model, workdir):
    emb = REPO / "datasets" / "data" / "smollm2_eval.h5"
    with h5py.File(emb) as f:
        tokens = f["tokens"][:]
    path = workdir / "hf_capture.h5"
    t0 = time.perf_counter()
    hf.capture(model, tokens, str(path), text_source="GPL-3: tokens [0, 512) (C++ token ids)",
               force=True)
    secs = time.perf_counter() - t0
    rows = []
    with h5py.File(emb) as a, h5py.File(path) as b:
        for layer in range(int(a.attrs["n_layers"])):
            row = {"layer": layer}
            for t in ("q", "k", "v"):
                x = a[f"layers/{layer}/{t}"][:].astype(np.float64)
                y = b[f"layers/{layer}/{t}"][:].astype(np.float64)
                row[t + "_rel_l2"] = float(np.linalg.norm(x - y) / np.linalg.norm(x))
                row[t + "_max_abs"] = float(np.abs(x - y).max())
                row[t + "_equal"] = float((x == y).mean())
            rows.append(row)
    return {"seconds": secs, "layers": rows}


def compare_logits(model, build, ids, workdir):
    ids_path = workdir / "ids.txt"
    ids_path.write_text("\n".join(map(str, ids)) + "\n")
    out = workdir / "cpp_logits.f32"
    subprocess.run([str(build / "datasets" / "datasets_oracle_tool"), "logits", model_path(),
                    str(ids_path), str(out)], check=True)
    cpp = np.fromfile(out, dtype=np.float32).reshape(len(ids), -1).astype(np.float64)
    with torch.no_grad(), hf.substitute(model, "reference"):
        ours = model(input_ids=torch.as_tensor(ids)[None], use_cache=False).logits[0]
    ours = ours.to(torch.float64).numpy()
    lp_c = cpp - np.log(np.exp(cpp - cpp.max(-1, keepdims=True)).sum(-1, keepdims=True)) - cpp.max(-1, keepdims=True)
    lp_h = ours - np.log(np.exp(ours - ours.max(-1, keepdims=True)).sum(-1, keepdims=True)) - ours.max(-1, keepdims=True)
    kl = (np.exp(lp_c) * (lp_c - lp_h)).sum(-1)
    return {
        "tokens": len(ids),
        "rel_l2": float(np.linalg.norm(cpp - ours) / np.linalg.norm(cpp)),
        "max_abs": float(np.abs(cpp - ours).max()),
        "top1_agreement": float((cpp.argmax(-1) == ours.argmax(-1)).mean()),
        "kl_mean": float(kl.mean()),
        "kl_max": float(kl.max()),
    }


def compare_ppl(model, build, ids, workdir, runs):
    out = []
    for label, method, knobs, phase in runs:
        key = turboattn.config_key(method, **knobs)
        cfg = ",".join(f"{k}={v}" for k, v in knobs.items())
        js = workdir / f"cpp_{len(out)}.json"
        cmd = [str(build / "eval" / "turboattn"), "-q", "ppl", "--model", model_path(), "--text", TEXT,
               "--method", method, "--phase", phase, "--max-tokens", str(len(ids)), "--json", str(js)]
        if cfg:
            cmd += ["--config", cfg]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        cpp = json.loads(js.read_text())
        py = hf.perplexity(model, ids, method, phase=phase, **knobs)
        assert cpp["method"] == py["method"] == key, (cpp["method"], py["method"])
        out.append({"label": label, "phase": phase, "cpp": cpp, "hf": py})
        print(f"  {label:22s} {phase:7s} ppl {cpp['ppl_method']:.4f} (C++) {py['ppl_method']:.4f} (HF)",
              flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--out", default=str(REPO / "experiments" / "hf_smollm2" / "out"))
    ap.add_argument("--skip", default="", help="comma list of: capture, logits, ppl")
    ap.add_argument("--runs", default="", help="comma list of run labels (default: all of RUNS)")
    args = ap.parse_args()
    build, workdir = pathlib.Path(args.build), pathlib.Path(args.out)
    workdir.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    t0 = time.perf_counter()
    model = hf.load_gguf(model_path())
    summary = {"model": model_path(), "model_load_seconds": time.perf_counter() - t0,
               "transformers": __import__("transformers").__version__, "torch": torch.__version__}
    ids = our_ids(build, args.tokens)
    if "capture" not in skip:
        summary["capture"] = compare_capture(model, workdir)
        worst = {t: max(r[t + "_rel_l2"] for r in summary["capture"]["layers"]) for t in "qkv"}
        print("capture: worst per-layer rel L2", worst, flush=True)
    if "logits" not in skip:
        summary["logits"] = compare_logits(model, build, ids, workdir)
        print("logits:", summary["logits"], flush=True)
    if "ppl" not in skip:
        wanted = set(filter(None, args.runs.split(",")))
        runs = [r for r in RUNS if not wanted or r[0] in wanted]
        summary["ppl"] = compare_ppl(model, build, ids, workdir, runs)
    name = "summary.json" if not skip else "summary_" + "_".join(
        x for x in ("capture", "logits", "ppl") if x not in skip) + ".json"
    (workdir / name).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {workdir / name}")


if __name__ == "__main__":
    sys.exit(main())
