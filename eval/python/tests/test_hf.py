"""turboattn.hf on a small randomly initialised Llama (built here from a config; nothing is
downloaded): the substituted attention, cached decode, capture to the HDF5 schema, perplexity."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import turboattn

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
h5py = pytest.importorskip("h5py")
from turboattn import hf  # noqa: E402

from conftest import REPO, turboattn_exe  # noqa: E402

N = 96


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=128, hidden_size=192, intermediate_size=256, num_hidden_layers=3,
        num_attention_heads=6, num_key_value_heads=2, head_dim=64, max_position_embeddings=512,
        rope_theta=10000.0, attn_implementation="eager")
    m = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # larger weights than the init's, so attention is not near-uniform
        for layer in m.model.layers:
            layer.self_attn.q_proj.weight.mul_(8)
            layer.self_attn.k_proj.weight.mul_(8)
    return m


@pytest.fixture(scope="module")
def ids():
    return np.random.default_rng(7).integers(0, 128, size=N)


def logits(model, ids, **kw):
    with torch.no_grad():
        return model(input_ids=torch.as_tensor(ids)[None], use_cache=False, **kw).logits[0]


def test_reference_matches_eager(model, ids):
    eager = logits(model, ids)
    with hf.substitute(model, "reference") as s:
        ref = logits(model, ids)
    assert model.config._attn_implementation == "eager"  # restored
    assert s.method == "reference"
    # Differs from HF's FP32 eager attention only by the FP16 rounding of Q, K, V.
    rel = (ref - eager).norm() / eager.norm()
    assert 0 < rel < 5e-3, rel


def test_prefill_substitution_is_the_op(model, ids):
    seen = {}

    def record(layer, q, k, v):
        seen[layer] = (q.numpy().copy(), k.numpy().copy(), v.numpy().copy())

    outs = {}
    hooks = [
        layer.self_attn.o_proj.register_forward_hook(
            lambda mod, inp, out, i=i: outs.__setitem__(i, inp[0][0].numpy().copy()))
        for i, layer in enumerate(model.model.layers)
    ]
    try:
        with hf.substitute(model, "flashq", n_r=5, record=record) as s:
            logits(model, ids)
    finally:
        for h in hooks:
            h.remove()
    assert sorted(seen) == [0, 1, 2] and sorted(s.stats) == [0, 1, 2]
    for layer, (q, k, v) in seen.items():
        want = turboattn.attention_prefill(q, k, v, "flashq", n_r=5)  # [1, H, N, D]
        got = outs[layer].reshape(N, 6, 64).transpose(1, 0, 2)[None]  # o_proj input, FP32
        assert got.astype(np.float16).tobytes() == want.tobytes(), layer
    summary = s.summary()
    assert summary["rows"] == 3 * 6 * N and 0 < summary["sparsity"] < 1


def test_decode_chunks_and_generate(model, ids):
    sess_logits = []
    for phase in ("prefill", "decode"):
        r = hf.perplexity(model, ids, "flashq", phase=phase, chunk=16, kv_bits=8)
        sess_logits.append(r)
    for r in sess_logits:
        assert r["window"] == N and r["scored"] == N - 1 - N // 2
        assert 0 <= r["kl_mean"] < 0.5 and 0.5 < r["top1_agreement"] <= 1
    # SPEC 8 at 8 bits, per layer and kv head: one 64-token block (K and V codes, 1 byte each, and
    # a 4-byte scale each) plus 32 FP16 buffer rows, against 96 FP16 rows.
    stored = 2 * 64 * 64 + 2 * 4 + 2 * 32 * 64 * 2
    assert sess_logits[1]["kv_ratio_vs_fp16"] == pytest.approx(2 * 2 * 96 * 64 / stored, rel=1e-12)
    assert sess_logits[1]["kv_bytes_per_token"] == pytest.approx(3 * 2 * stored / 96, rel=1e-12)
    with hf.substitute(model, "flashq", phase="decode", kv_bits=4) as s:
        out = model.generate(torch.as_tensor(ids[:40])[None], max_new_tokens=6, do_sample=False)
    assert out.shape[1] == 46
    # Every layer's compressed cache holds the prompt and the generated tokens it attended.
    assert all(len(c) == 45 for c in s.caches.values()) and len(s.caches) == 3


def test_prefill_phase_refuses_cached_decode(model, ids):
    with hf.substitute(model, "flashq"):
        with pytest.raises(turboattn.Error, match="phase=prefill attends one whole window"):
            model.generate(torch.as_tensor(ids[:8])[None], max_new_tokens=2, do_sample=False)


def test_padding_mask_is_refused(model, ids):
    mask = torch.ones(1, N, dtype=torch.long)
    mask[0, :3] = 0
    with hf.substitute(model, "flashq"):
        with pytest.raises(turboattn.Error, match="not the plain causal mask"):
            logits(model, ids, attention_mask=mask)


def test_ppl_json_has_the_cli_keys(model, ids, tmp_path):
    out = tmp_path / "ppl.json"
    r = hf.perplexity(model, ids, "kivi", kv_bits=2, json_out=str(out))
    on_disk = json.loads(out.read_text())
    assert on_disk == r
    cli_keys = ["method", "phase", "model", "text", "backend", "window", "skip_tokens", "scored",
                "ppl_reference", "ppl_method", "kl_mean", "kl_max", "top1_agreement", "sparsity",
                "dropped_mass", "kv_bytes_per_token", "kv_ratio_vs_fp16", "seconds_reference",
                "seconds_method"]
    assert list(r) == cli_keys  # datasets/commands.cpp ppl_json, same order
    assert r["method"] == turboattn.config_key("kivi", kv_bits=2)
    ref = hf.perplexity(model, ids, "reference")
    assert ref["ppl_method"] == ref["ppl_reference"] and ref["kl_mean"] == 0


def test_capture_schema_and_cli_reads_it(model, ids, tmp_path):
    out = tmp_path / "cap.h5"
    hf.capture(model, ids, str(out), layers=[0, 2], text_source="random ids, tokens [0, 96)")
    with pytest.raises(turboattn.Error, match="exists; pass force=True"):
        hf.capture(model, ids, str(out))
    subprocess.run([sys.executable, str(REPO / "datasets" / "h5py_schema_check.py"), str(out)],
                   check=True)
    with h5py.File(out) as f:
        assert list(f.attrs)[:3] == ["model", "model_sha256", "rope_theta"]
        assert f.attrs["n_heads"] == 6 and f.attrs["n_kv_heads"] == 2 and f.attrs["head_dim"] == 64
        assert list(f.attrs["layers"]) == [0, 2] and f.attrs["n_tokens"] == N
        np.testing.assert_array_equal(f["tokens"][:], ids.astype(np.int32))
        q0 = f["layers/0/q"][:]
    # Layer 0's Q is the model's own post-RoPE query (HF channel order), rounded to FP16.
    seen = {}
    with hf.substitute(model, "reference",
                       record=lambda layer, q, k, v: seen.setdefault(layer, q.numpy().copy())):
        logits(model, ids)
    assert q0.tobytes() == seen[0][0].tobytes()
    # The C++ reader takes the file: a sweep over it runs.
    exe = turboattn_exe()
    csv = tmp_path / "r.csv"
    subprocess.run([str(exe), "-q", "sweep", "--data", str(out), "-o", str(csv), "--method",
                    "flashq", "--phases", "prefill"], check=True)
    assert len(csv.read_text().splitlines()) == 1 + 2 * 6
