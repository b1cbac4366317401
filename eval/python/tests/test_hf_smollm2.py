"""The HF path on real weights: SmolLM2-135M's GGUF (datasets/fetch_models.sh) loaded by
transformers' GGUF loader, captured through turboattn.hf, against the C++ capture embedded in
datasets/data/smollm2_eval.h5 (same file, same token ids). The two forwards differ in arithmetic
(HF: FP32 RoPE and matmuls in torch; C++: FP64 RoPE, Eigen FP32 blocks), so Q/K/V agree to FP16
rounding plus the drift of 30 layers; the bounds are a few times the worst values measured
(experiments/hf_smollm2/README.md)."""

import os
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
h5py = pytest.importorskip("h5py")
from turboattn import hf  # noqa: E402

from conftest import EMBEDDED_EVAL  # noqa: E402

CACHE = os.environ.get("TURBO_CACHE", os.path.expanduser("~/.cache/turboattn"))
GGUF = pathlib.Path(os.environ.get("TURBO_MODEL",
                                   os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")))
LAYERS = [0, 14, 29]
# Worst per-layer relative L2 over all 30 layers measured on 512 tokens (Q 4.4e-4, K 4.9e-4,
# V 8.6e-4), times about 3.5.
BOUND = {"q": 1.5e-3, "k": 1.5e-3, "v": 3e-3}


@pytest.fixture(scope="module")
def model():
    if not GGUF.is_file():
        pytest.fail(f"{GGUF} is missing: run bash datasets/fetch_models.sh")
    return hf.load_gguf(str(GGUF))


def test_capture_agrees_with_cpp(model, tmp_path):
    with h5py.File(EMBEDDED_EVAL) as f:
        tokens = f["tokens"][:]
        sha = f.attrs["model_sha256"]
    out = tmp_path / "hf.h5"
    hf.capture(model, tokens, str(out), layers=LAYERS, text_source="GPL-3 [0, 512)")
    with h5py.File(EMBEDDED_EVAL) as a, h5py.File(out) as b:
        assert b.attrs["model_sha256"] == sha  # provenance: the same file
        assert b.attrs["model"] == a.attrs["model"]
        for key in ("n_layers", "n_heads", "n_kv_heads", "head_dim", "n_tokens", "rope_theta"):
            assert b.attrs[key] == a.attrs[key], key
        for layer in LAYERS:
            for t in "qkv":
                x = a[f"layers/{layer}/{t}"][:].astype(np.float64)
                y = b[f"layers/{layer}/{t}"][:].astype(np.float64)
                rel = np.linalg.norm(x - y) / np.linalg.norm(x)
                assert rel < BOUND[t], (layer, t, rel)
