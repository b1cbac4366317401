#!/usr/bin/env python3
"""SageAttention as its authors' code computes it, written in NumPy, against the toolkit's sage.

Written from thu-ml/SageAttention's formulas (sageattention/core.py; triton/quant_per_block.py,
quant_per_thread.py, attn_qk_int8_per_block*.py; csrc/qattn/qk_int_sv_f16_cuda_sm80.cu,
attn_utils.cuh; csrc/fused/fused.cu per_channel_fp8), for one query head and its kv head of the
real embedded activations (datasets/data/smollm2_eval.h5):

  km = fp16(mean_t k) (an FP32 sum, FP32 division), k' = fp16(k - km) (k_smooth=mean; else k).
  per block (Triton): x = q * fp32(tau * 1.44269504), groups of 128 rows; k' groups of 64 tokens;
    scale = max|x| / 127, code = trunc(x / scale + 0.5 sign); S2 = acc * (s_q * s_k).
  per thread (sm80): q as it is, groups of rows r = g (mod 8) of each 32-row warp; k' groups of
    the tokens t with t % 8 in {2g, 2g+1} of each 64-token block; scale = max|x| / 127 + 1e-7;
    S2 = acc * ((tau * log2e) * (s_q * s_k)).
  online softmax over 64-token tiles in base 2: m, alpha = 2^(m_old - m), P = 2^(S2 - m),
    l = l * alpha + sum P (FP32, in order).
  P.V: fp32 (sm80): O = O * alpha, O += fp16(P) v in order (FP32);
       fp16 (sm86): a = sum of fp16(P) v in an FP16 accumulator, O = O * alpha + a;
       fp8 (sm90): v per channel: s_c = amax_c / 448, v8 = e4m3(v * (448 / amax_c));
         P = 2^(S2 - (m - 8.807)), P8 = e4m3(P); O = O * alpha, O += P8 v8; out = O s_c / l.
  out = fp16(O / l).

Nothing here is shared with the C++ code, except libm's exp2f (called through ctypes, as the C++
reference calls it): the tool (reference/sage_state_tool.cpp) runs the toolkit's prefill and decode
and dumps the INT8 codes and scales it used and its outputs. Codes, scales, the K mean and every
output element must match bit for bit.
"""
import argparse
import ctypes
import ctypes.util
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from oracle_report import Dump, verdict  # reference/oracle_report.py, beside this script

F32, F16 = np.float32, np.float16
LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
LIBM.exp2f.restype = ctypes.c_float
LIBM.exp2f.argtypes = [ctypes.c_float]
_exp2f = np.frompyfunc(lambda x: LIBM.exp2f(float(x)), 1, 1)
BLOCK_Q, BLOCK_K, WARP_Q = 128, 64, 32


def exp2f(x):
    return _exp2f(x).astype(F32)


def e4m3(x):
    """float32 -> the nearest E4M3 value (ties to even), saturated to +-448."""
    a = np.abs(x).astype(np.float64)
    _, e = np.frexp(a)  # a = m 2^e, m in [0.5, 1): the binade is 2^(e-1)
    step = np.ldexp(1.0, np.maximum(e - 4, -9))  # 3 mantissa bits; subnormal step 2^-9
    r = np.minimum(np.round(a / step) * step, 448.0)
    return (np.sign(x) * r).astype(F32)


def quantize(x, groups, eps):
    """x [n, d] float32; groups: list of row-index arrays. Codes int8 and per-row scales."""
    codes = np.zeros(x.shape, np.int8)
    scales = np.zeros(x.shape[0], F32)
    for rows in groups:
        if len(rows) == 0:
            continue
        s = F32(np.abs(x[rows]).max()) / F32(127) + F32(eps)
        scales[rows] = s
        if s == 0:
            continue
        v = x[rows] / s
        v = v + np.where(v >= 0, F32(0.5), F32(-0.5)).astype(F32)
        codes[rows] = np.trunc(v).astype(np.int8)
    return codes, scales


def block_groups(n, block, per, sel):
    out = []
    for b0 in range(0, n, block):
        idx = np.arange(b0, min(b0 + block, n))
        for g in range(per):
            out.append(idx[sel(idx - b0) == g])
    return out


def sage_codes(q, k, gran, smooth, tau):
    n_q, d = q.shape
    km = np.zeros(d, F16)
    if smooth:
        km = (np.cumsum(k.astype(F32), axis=0)[-1] / F32(k.shape[0])).astype(F16)
    kp = (k.astype(np.float64) - km.astype(np.float64)).astype(F16)
    if gran == "block":
        x = q.astype(F32) * F32(float(tau) * 1.44269504)
        q8, qs = quantize(x, block_groups(n_q, BLOCK_Q, 1, lambda i: 0 * i), 0.0)
        k8, ks = quantize(kp.astype(F32), block_groups(k.shape[0], BLOCK_K, 1, lambda i: 0 * i), 0.0)
    else:
        q8, qs = quantize(q.astype(F32), block_groups(n_q, WARP_Q, 8, lambda i: i % 8), 1e-7)
        k8, ks = quantize(kp.astype(F32), block_groups(k.shape[0], BLOCK_K, 4, lambda i: (i % 8) // 2),
                          1e-7)
    return q8, qs, k8, ks, km


def sage_attention(q, k, v, pos0, causal, gran, pv, smooth, tau):
    """Rows of q sit at positions pos0.. of the keys; returns (codes..., out fp16 [n, d])."""
    q8, qs, k8, ks, km = sage_codes(q, k, gran, smooth, tau)
    n, d = q.shape
    L = k.shape[0]
    acc = q8.astype(np.int64) @ k8.astype(np.int64).T  # exact integer dot products
    dq = qs[:, None] * ks[None, :]
    if gran == "thread":
        dq = (F32(tau) * F32(1.44269504088896340736)) * dq
    s2 = acc.astype(F32) * dq
    vis = np.arange(L)[None, :] <= (pos0 + np.arange(n))[:, None] if causal else np.ones((n, L), bool)
    vv = v.astype(F32)
    if pv == "fp8":
        amax = np.abs(vv).max(axis=0)
        with np.errstate(divide="ignore"):
            recp = np.where(amax > 0, F32(448) / amax, F32(0)).astype(F32)
        vscale = (amax / F32(448)).astype(F32)
        vv = e4m3(vv * recp[None, :])
    m = np.full(n, -np.inf, F32)
    l = np.zeros(n, F32)
    o = np.zeros((n, d), F32)
    for t0 in range(0, L, BLOCK_K):
        t1 = min(t0 + BLOCK_K, L)
        live = vis[:, t0:t1].any(axis=1)
        st = np.where(vis[:, t0:t1], s2[:, t0:t1], -np.inf).astype(F32)
        m_new = np.maximum(m, st.max(axis=1))
        m_new = np.where(live, m_new, m)
        alpha = np.where(np.isneginf(m), F32(0), exp2f(np.where(live, m - m_new, F32(0))))
        alpha = np.where(live, alpha, F32(1)).astype(F32)
        m_p = m_new - F32(8.807) if pv == "fp8" else m_new
        p = np.where(vis[:, t0:t1], exp2f(np.where(vis[:, t0:t1], st - m_p[:, None], F32(0))), F32(0))
        p = p.astype(F32)
        rowsum = np.cumsum(p, axis=1, dtype=F32)[:, -1]
        l = np.where(live, l * alpha + rowsum, l).astype(F32)
        vt = vv[t0:t1]
        if pv == "fp16":
            p16 = p.astype(F16).astype(np.float64)
            a = np.zeros((n, d), F16)
            for t in range(t1 - t0):
                a = (a.astype(np.float64) + p16[:, t, None] * vt[t][None, :]).astype(F16)
            o = np.where(live[:, None], o * alpha[:, None] + a.astype(F32), o).astype(F32)
        else:
            pq = e4m3(p) if pv == "fp8" else p.astype(F16).astype(F32)
            o2 = (o * alpha[:, None]).astype(F32)
            for t in range(t1 - t0):
                o2 = (o2 + pq[:, t, None] * vt[t][None, :]).astype(F32)
            o = np.where(live[:, None], o2, o)
        m = m_new
    if pv == "fp8":
        o = (o * vscale[None, :]).astype(F32)
    out = (o / l[:, None]).astype(F16)
    return (q8, qs, k8, ks, km), out


def read_dump(path, nq, nk, d):
    dump = Dump(path)
    take = dump.take
    q8 = take(np.int8, nq * d).reshape(nq, d)
    qs = take("<f4", nq)
    k8 = take(np.int8, nk * d).reshape(nk, d)
    ks = take("<f4", nk)
    km = take("<f4", d)
    o = take("<u2", nq * d).reshape(nq, d)
    dump.done()
    return (q8, qs, k8, ks, km), o


def compare(ours, theirs, where):
    names = ["q codes", "q scales", "k codes", "k scales", "k mean", "output"]
    problems = []
    for name, a, b in zip(names, ours, theirs):
        if name == "output":
            b = b.view(np.uint16)
        elif name == "k mean":
            b = b.astype(F32)
        if a.shape != b.shape:
            problems.append(f"{where}: {name} shape {a.shape} vs {b.shape}")
            continue
        if a.dtype.kind == "f":
            same = (a.view(np.uint32) == b.astype(a.dtype).view(np.uint32))
        else:
            same = a == b
        if not same.all():
            i = np.argwhere(~same)[0]
            problems.append(f"{where}: {name}: {int((~same).sum())} of {a.size} differ, first at "
                            f"{tuple(int(x) for x in i)}: ours {a[tuple(i)]} vs oracle {b[tuple(i)]}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--tokens", type=int, default=300)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)

    # (layer, query head, config): both groupings, the three P.V precisions, with and without the
    # mean; query heads of different kv heads (GQA 3:1).
    cases = [(0, 0, "block", "fp32", True), (0, 4, "thread", "fp32", True),
             (10, 8, "block", "fp16", True), (10, 1, "thread", "fp16", False),
             (20, 5, "block", "fp8", True), (29, 2, "thread", "fp8", True)]
    failures, compared, elements = [], 0, 0
    with h5py.File(args.data, "r") as f:
        for layer, head, gran, pv, smooth in cases:
            q_all = np.asarray(f[f"layers/{layer}/q"][head], dtype=F16)[: args.tokens]
            n_kv = f[f"layers/{layer}/k"].shape[0]
            kv_head = head // (f[f"layers/{layer}/q"].shape[0] // n_kv)
            k = np.asarray(f[f"layers/{layer}/k"][kv_head], dtype=F16)[: args.tokens]
            v = np.asarray(f[f"layers/{layer}/v"][kv_head], dtype=F16)[: args.tokens]
            n, d = q_all.shape
            tau = F32(1.0 / np.sqrt(d))
            config = (f"method=sage,sage_impl=authors,sage_gran={gran},sage_pv={pv},"
                      f"k_smooth={'mean' if smooth else 'none'}")
            lengths = [1, 63, 64, 65, 129, n]
            with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
                for name, x in (("q", q_all), ("k", k), ("v", v)):
                    x.astype("<f2").tofile(os.path.join(tmp, f"{name}.f16"))
                subprocess.run([args.tool] + [os.path.join(tmp, f"{x}.f16") for x in "qkv"] +
                               [str(d), config, tmp, ",".join(map(str, lengths))], check=True)
                where = f"layer {layer} head {head} {config}"
                ours = read_dump(os.path.join(tmp, "prefill.bin"), n, n, d)
                theirs = sage_attention(q_all, k, v, 0, True, gran, pv, smooth, tau)
                failures += compare(ours[0] + (ours[1],), theirs[0] + (theirs[1],),
                                    where + " prefill")
                compared += 1
                elements += ours[1].size
                for length in lengths:
                    ours = read_dump(os.path.join(tmp, f"decode_{length}.bin"), 1, length, d)
                    theirs = sage_attention(q_all[length - 1:length], k[:length], v[:length],
                                            length - 1, False, gran, pv, smooth, tau)
                    failures += compare(ours[0] + (ours[1],), theirs[0] + (theirs[1],),
                                        f"{where} decode L={length}")
                    compared += 1
                    elements += ours[1].size
    return verdict("sage", failures, f"{compared} prefill/decode runs, {elements} output elements "
                   "compared (and their codes, scales, K means)", min(compared, elements))


if __name__ == "__main__":
    sys.exit(main())
