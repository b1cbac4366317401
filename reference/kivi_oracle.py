#!/usr/bin/env python3
"""KIVI as its authors' code runs it, ported to NumPy, against the toolkit's kivi cache.

The port follows jy-yuan/KIVI (models/llama_kivi.py, LlamaFlashAttention_KIVI.forward, and
quant/new_pack.py, triton_quantize_and_pack_along_last_dim) statement by statement, for one kv
head of the real embedded activations (datasets/data/smollm2_eval.h5):

  prefill of N tokens: K keeps the last N % R tokens in FP16 and quantizes the rest per channel in
    groups of G tokens; V keeps the last R tokens (all of them when N <= R) and quantizes the rest
    per token in groups of G channels.
  decode step: K_full = cat(K_full, k); attention; if len(K_full) == R: quantize K_full, clear it.
    V_full = cat(V_full, v); attention; if len(V_full) > R: quantize V_full[:1], drop it.
  quantizer, on float16 arrays: scale = (mx - mn) / (2**b - 1); data = (data - mn) / scale;
    data.clip(0, 2**b - 1).round().  NumPy's float16 arithmetic, like PyTorch's, computes each op
    in float32 and rounds the result to float16; np.round rounds half to even as torch.round does.

Nothing here is shared with the C++ code: the tool (reference/kivi_state_tool.cpp) only appends
rows to a toolkit cache and dumps what it holds. At every compared decode length the attention-time
state must match code for code: which tokens are quantized, every code, scale and zero, and the FP16
rows.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from oracle_report import Dump, verdict  # reference/oracle_report.py, beside this script


def quantize_last_dim(data, group, bits):
    """triton_quantize_and_pack_along_last_dim without the packing: codes, scale, mn."""
    shape = data.shape
    t = shape[-1]
    assert t % group == 0
    x = data.reshape(-1, t // group, group)
    mx = x.max(axis=-1)
    mn = x.min(axis=-1)
    scale = (mx - mn) / (2**bits - 1)
    assert x.dtype == np.float16 and scale.dtype == np.float16
    x = x - mn[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = x / scale[..., None]
    x = np.clip(x, 0, 2**bits - 1)
    x = np.round(x)
    # torch's CUDA float-to-int32 cast turns the NaN of 0 / 0 (a group of equal values) into 0.
    x = np.where(np.isnan(x), 0, x).astype(np.int32)
    return x.reshape(shape), scale.reshape(shape[:-1] + (t // group,)), mn.reshape(
        shape[:-1] + (t // group,))


class AuthorsKivi:
    """One kv head's cache, as the KIVI forward keeps it (K transposed: [D, T])."""

    def __init__(self, group, residual, bits):
        self.g, self.r, self.b = group, residual, bits
        self.kq = None  # (codes [D, T], scale [D, T/G], mn [D, T/G])
        self.kfull = None  # [n, D] float16
        self.vq = None  # (codes [T, D], scale [T, D/G], mn [T, D/G])
        self.vfull = None

    @staticmethod
    def _cat_k(old, new):
        if old is None:
            return new
        return tuple(np.concatenate([a, b], axis=1) for a, b in zip(old, new))

    @staticmethod
    def _cat_v(old, new):
        if old is None:
            return new
        return tuple(np.concatenate([a, b], axis=0) for a, b in zip(old, new))

    def prefill(self, k, v):
        n, r = k.shape[0], self.r
        if n % r != 0:
            if n < r:
                k_quant, self.kfull = None, k
            else:
                k_quant, self.kfull = k[: -(n % r)], k[-(n % r):]
        else:
            k_quant, self.kfull = k, None
        if k_quant is not None:
            self.kq = quantize_last_dim(np.ascontiguousarray(k_quant.T), self.g, self.b)
        if n <= r:
            self.vfull = v
        else:
            self.vq = quantize_last_dim(v[:-r], self.g, self.b)
            self.vfull = v[-r:]

    def decode(self, k, v, on_attention):
        self.kfull = k[None] if self.kfull is None else np.concatenate([self.kfull, k[None]])
        vfull_now = np.concatenate([self.vfull, v[None]])
        on_attention(self.kq, self.kfull, self.vq, vfull_now)
        if self.kfull.shape[0] == self.r:
            assert self.r % self.g == 0
            self.kq = self._cat_k(self.kq, quantize_last_dim(np.ascontiguousarray(self.kfull.T),
                                                             self.g, self.b))
            self.kfull = None
        self.vfull = vfull_now
        if self.vfull.shape[0] > self.r:
            assert self.vfull.shape[0] == self.r + 1
            self.vq = self._cat_v(self.vq, quantize_last_dim(self.vfull[:1], self.g, self.b))
            self.vfull = self.vfull[1:]


def read_state(path, d, g, length):
    dump = Dump(path)
    kq, vq = dump.take("<i8", 2)
    take = dump.take
    s = {"k_quant": int(kq), "v_quant": int(vq)}
    s["k_codes"] = take(np.uint8, kq * d).reshape(kq, d)
    s["v_codes"] = take(np.uint8, vq * d).reshape(vq, d)
    s["k_scale"] = take("<f4", kq // g * d).reshape(kq // g, d)
    s["k_zero"] = take("<f4", kq // g * d).reshape(kq // g, d)
    s["v_scale"] = take("<f4", vq * (d // g)).reshape(vq, d // g)
    s["v_zero"] = take("<f4", vq * (d // g)).reshape(vq, d // g)
    s["k_fp16"] = take("<u2", (length - kq) * d).reshape(length - kq, d)
    s["v_fp16"] = take("<u2", (length - vq) * d).reshape(length - vq, d)
    dump.done()
    return s


def compare(ours, kq, kfull, vq, vfull, where):
    problems = []

    def check(name, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            problems.append(f"{where}: {name} shape {a.shape} (toolkit) vs {b.shape} (authors)")
        elif not np.array_equal(a, b):
            i = np.argwhere(a != b)[0]
            problems.append(f"{where}: {name} differs at {tuple(i)}: {a[tuple(i)]} vs "
                            f"{b[tuple(i)]} ({int((a != b).sum())} of {a.size})")

    n_kq = 0 if kq is None else kq[0].shape[1]
    n_vq = 0 if vq is None else vq[0].shape[0]
    check("K quantized tokens", ours["k_quant"], n_kq)
    check("V quantized tokens", ours["v_quant"], n_vq)
    if problems:
        return problems, 0
    if kq is not None:
        check("K codes", ours["k_codes"], kq[0].T)
        check("K scale", ours["k_scale"], kq[1].T.astype(np.float32))
        check("K zero", ours["k_zero"], kq[2].T.astype(np.float32))
    if vq is not None:
        check("V codes", ours["v_codes"], vq[0])
        check("V scale", ours["v_scale"], vq[1].astype(np.float32))
        check("V zero", ours["v_zero"], vq[2].astype(np.float32))
    check("K FP16 rows", ours["k_fp16"], kfull.view(np.uint16))
    check("V FP16 rows", ours["v_fp16"], vfull.view(np.uint16))
    return problems, ours["k_codes"].size + ours["v_codes"].size


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)

    # (layer, kv head, bits, G, R, prefill length): prefill lengths below R, equal to a multiple
    # of R, and in between; R = 32 (this toolkit's default) and 128 (the KIVI paper's).
    cases = [(0, 0, 4, 32, 32, 100), (0, 2, 2, 32, 32, 128), (7, 1, 2, 32, 128, 17),
             (15, 0, 4, 32, 64, 256), (29, 2, 4, 32, 128, 200), (22, 1, 2, 16, 32, 1)]
    failures, codes, states, zero_scales = [], 0, 0, 0
    with h5py.File(args.data, "r") as f:
        for layer, head, bits, g, r, n0 in cases:
            k = np.asarray(f[f"layers/{layer}/k"][head], dtype=np.float16)
            v = np.asarray(f[f"layers/{layer}/v"][head], dtype=np.float16)
            t, d = k.shape
            lengths = sorted(set(list(range(n0 + 1, t + 1, 5)) + [t]))
            with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
                k.astype("<f2").tofile(os.path.join(tmp, "k.f16"))
                v.astype("<f2").tofile(os.path.join(tmp, "v.f16"))
                subprocess.run([args.tool, os.path.join(tmp, "k.f16"), os.path.join(tmp, "v.f16"),
                                str(d), str(bits), str(g), str(r), "authors", str(n0), tmp,
                                ",".join(map(str, lengths))], check=True)
                model = AuthorsKivi(g, r, bits)
                model.prefill(k[:n0], v[:n0])
                for pos in range(n0, t):
                    def at_attention(kq, kfull, vq, vfull, length=pos + 1):
                        nonlocal codes, states, zero_scales
                        if length not in lengths:
                            return
                        ours = read_state(os.path.join(tmp, f"state_{length}.bin"), d, g, length)
                        where = f"layer {layer} head {head} b={bits} G={g} R={r} N0={n0} L={length}"
                        p, n = compare(ours, kq, kfull, vq, vfull, where)
                        failures.extend(p)
                        codes += n
                        states += 1
                        zero_scales += int((ours["k_scale"] == 0).sum() + (ours["v_scale"] == 0).sum())
                    model.decode(k[pos], v[pos], at_attention)
    return verdict("kivi", failures, f"{states} attention-time states, {codes} codes compared, "
                   f"{zero_scales} zero scales", min(states, codes))


if __name__ == "__main__":
    sys.exit(main())
