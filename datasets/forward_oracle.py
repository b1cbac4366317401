#!/usr/bin/env python3
"""Oracle test: the C++ Llama forward against an independent NumPy FP64 forward of the same GGUF.

The NumPy side is written from the llama.cpp graph, not from our C++: weights from gguf's own
dequantization, RoPE on adjacent pairs (2j, 2j + 1) of the GGUF-ordered Q/K rows (llama.cpp's
"norm" mode, no un-permutation), RMSNorm, SwiGLU, tied output, everything in FP64 except that Q,
K (post-RoPE) and V are rounded to FP16 as our numerics contract says. Agreement must be near
exact: top-1 >= 99% and mean KL <= 1e-4 nats over the window (FP32 vs FP64 arithmetic only).

usage: forward_oracle.py --tool <datasets_oracle_tool> [--model <gguf>] [--tokens N] --workdir <dir>
"""
import sys

import numpy as np
import gguf
from gguf.quants import dequantize

from oracle_common import log_softmax, model_missing, oracle_args, our_logits


def forward(path, ids):
    r = gguf.GGUFReader(path)
    f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("tokenizer.")}
    W = {t.name: t for t in r.tensors}
    w = lambda name: dequantize(W[name].data, W[name].tensor_type).astype(np.float64).reshape(
        [int(d) for d in reversed(W[name].shape)])
    n_layer, n_head, n_kv = f["llama.block_count"], f["llama.attention.head_count"], f["llama.attention.head_count_kv"]
    d_model, eps, theta = f["llama.embedding_length"], f["llama.attention.layer_norm_rms_epsilon"], f["llama.rope.freq_base"]
    D = d_model // n_head
    n = len(ids)
    emb = w("token_embd.weight")
    x = emb[ids]
    rms = lambda x, g: x / np.sqrt((x * x).mean(-1, keepdims=True) + np.float64(np.float32(eps))) * g
    pos = np.arange(n, dtype=np.float64)[:, None]
    ang = pos * theta ** (-2.0 * np.arange(D // 2) / D)  # [n, D/2]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope_norm(t, heads):  # t [n, heads*D], GGUF order: pairs (2j, 2j+1)
        t = t.reshape(n, heads, D // 2, 2)
        a, b = t[..., 0], t[..., 1]
        c, s = cos[:, None, :], sin[:, None, :]
        return np.stack([a * c - b * s, a * s + b * c], axis=-1).reshape(n, heads, D)

    f16 = lambda t: t.astype(np.float16).astype(np.float64)
    mask = np.triu(np.full((n, n), -np.inf), 1)
    tau = np.float64(np.float32(1.0) / np.sqrt(np.float32(D)))
    for l in range(n_layer):
        p = f"blk.{l}."
        h = rms(x, w(p + "attn_norm.weight"))
        q = f16(rope_norm(h @ w(p + "attn_q.weight").T, n_head))
        k = f16(rope_norm(h @ w(p + "attn_k.weight").T, n_kv))
        v = f16((h @ w(p + "attn_v.weight").T).reshape(n, n_kv, D))
        o = np.empty((n, n_head, D))
        for hh in range(n_head):
            kv = hh // (n_head // n_kv)
            s = (q[:, hh] @ k[:, kv].T) * tau + mask
            pr = np.exp(s - s.max(-1, keepdims=True))
            o[:, hh] = (pr / pr.sum(-1, keepdims=True)) @ v[:, kv]
        x = x + o.reshape(n, -1) @ w(p + "attn_output.weight").T
        h = rms(x, w(p + "ffn_norm.weight"))
        g = h @ w(p + "ffn_gate.weight").T
        x = x + ((g / (1 + np.exp(-g))) * (h @ w(p + "ffn_up.weight").T)) @ w(p + "ffn_down.weight").T
    out = w("output.weight") if "output.weight" in W else emb
    return rms(x, w("output_norm.weight")) @ out.T


def main():
    a = oracle_args(text=True, tokens=192).parse_args()
    if model_missing(a.model):
        return 1
    ids, ours = our_logits(a.tool, a.model, a.text, a.tokens, a.workdir, "forward")
    ours = ours.astype(np.float64)
    n = len(ids)
    ref = forward(a.model, ids)
    lr, lo = log_softmax(ref), log_softmax(ours)
    kl = (np.exp(lr) * (lr - lo)).sum(1)
    top1 = (ref.argmax(1) == ours.argmax(1)).mean()
    rel = np.linalg.norm(ref - ours) / np.linalg.norm(ref)
    print(f"{n} tokens: top-1 agreement {top1:.4f}, mean KL {kl.mean():.3e} nats (max {kl.max():.3e}), "
          f"relative L2 of logits {rel:.3e}")
    ok = top1 >= 0.99 and kl.mean() <= 1e-4
    print("ok" if ok else "FAIL: outside top-1 >= 0.99, mean KL <= 1e-4")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
