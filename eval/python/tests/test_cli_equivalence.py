"""The Python path gives the CLI's numbers: `turboattn sweep` on the embedded activations (read
here with h5py) against the same attention run through turboattn's Python API.

Every per-head metric of the sweep CSV (rel_l2, nmse, max_abs, cosine over the head's outputs,
sparsity, dropped mass, KV bytes) is recomputed from the Python outputs with the CLI's own metric
code (eval/metrics.h, bound as turboattn.error_metrics) and must print to the same 10 significant
digits. The CLI writes metrics, not outputs, so this compares what the outputs give rather than
their bytes (bytes are compared across NumPy, torch and strided inputs in test_core.py)."""

import csv
import json
import subprocess

import numpy as np
import pytest

import turboattn
from conftest import EMBEDDED_EVAL, turboattn_exe

h5py = pytest.importorskip("h5py")

LAYERS = (0, 17)
TOKENS = 160
POSITIONS = 3


def fmt(x: float) -> str:
    return "nan" if x != x else "%.10g" % x


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    exe = turboattn_exe()
    out = tmp_path_factory.mktemp("sweep") / "r.csv"
    cmd = [str(exe), "-q", "sweep", "--data", str(EMBEDDED_EVAL), "-o", str(out),
           "--layers", ",".join(map(str, LAYERS)), "--tokens", str(TOKENS),
           "--positions", str(POSITIONS),
           "--method", "flashq,kivi,int8kv,sage,fp8,fp16", "--kv_bits", "4,2", "--n_r", "4,6"]
    subprocess.run(cmd, check=True)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    side = json.loads(open(str(out) + ".json").read())
    return rows, side


def load_layer(layer):
    with h5py.File(EMBEDDED_EVAL, "r") as f:
        return tuple(f[f"layers/{layer}/{t}"][:, :TOKENS][None] for t in ("q", "k", "v"))


def test_python_reproduces_cli_sweep(sweep):
    rows, side = sweep
    positions = [int(p) for p in side["decode_positions"]]
    units = {}
    for r in rows:
        units.setdefault((r["config"], r["phase"]), []).append(r)
    assert len(units) >= 10  # flashq x kv_bits x n_r, kivi x kv_bits, four more, two phases
    checked = 0
    for layer in LAYERS:
        q, k, v = load_layer(layer)
        hq, hkv, d = q.shape[1], k.shape[1], q.shape[3]
        gt_prefill = turboattn.attention_reference(q, k, v, causal=True)
        gt_decode = [turboattn.attention_reference(q[:, :, p : p + 1], k[:, :, : p + 1],
                                                   v[:, :, : p + 1]) for p in positions]
        for (key, phase), unit_rows in units.items():
            if phase == "prefill":
                o, stats = turboattn.attention_prefill(q, k, v, method=None, config=key,
                                                       return_stats=True)
                outs = [o[0, h] for h in range(hq)]
                refs = [gt_prefill[0, h] for h in range(hq)]
                kv_bytes = ""
            else:
                cache = turboattn.KVCache(1, hkv, d, method=None, config=key)
                filled, per_pos, stats = 0, [], None
                for p in positions:
                    cache.append(k[:, :, filled : p + 1], v[:, :, filled : p + 1])
                    filled = p + 1
                    o, st = cache.attention(q[:, :, p : p + 1], return_stats=True)
                    per_pos.append(o)
                    stats = st if stats is None else [
                        {kk: a[kk] + b[kk] for kk in a} for a, b in zip(stats, st)]
                cache.append(k[:, :, filled:], v[:, :, filled:])
                b = cache.bytes()
                kv_bytes = fmt(b["total"] / b["tokens"])
                outs = [np.concatenate([o[0, h, 0] for o in per_pos]) for h in range(hq)]
                refs = [np.concatenate([g[0, h, 0] for g in gt_decode]) for h in range(hq)]
            for h in range(hq):
                row = next(r for r in unit_rows if int(r["layer"]) == layer and int(r["head"]) == h)
                m = turboattn.error_metrics(np.ascontiguousarray(outs[h]),
                                            np.ascontiguousarray(refs[h]))
                s = stats[h]
                got = {
                    "rel_l2": fmt(m["rel_l2"]), "nmse": fmt(m["nmse"]),
                    "max_abs": fmt(m["max_abs"]), "cosine": fmt(m["cosine"]),
                    "sparsity": fmt(s["zeroed"] / s["scored"] if s["scored"] else 0.0),
                    "dropped_mass": fmt(s["dropped_mass"] / s["rows"] if s["rows"] else 0.0),
                    "kv_bytes_per_token": kv_bytes,
                }
                want = {c: row[c] for c in got}
                assert got == want, (key, phase, layer, h)
                checked += 1
    assert checked == len(rows) and checked > 0
