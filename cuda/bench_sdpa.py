#!/usr/bin/env python3
"""Times PyTorch SDPA (FP16, default dispatch) on the shapes of cuda_validate's CSV, on the same
card, and prints the comparison table (markdown).

  python3 cuda/bench_sdpa.py --ours ours.csv --out table.md
"""
import argparse
import csv

import torch
import torch.nn.functional as F


def median_ms(fn, warmup=5, iters=50):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device("cuda")
    rows = list(csv.DictReader(open(args.ours)))
    lines = [
        f"card: {torch.cuda.get_device_name()}, torch {torch.__version__}",
        "",
        "| op | shape | ours ms | SDPA ms | ours/SDPA | ours TFLOP/s-eq | SDPA TFLOP/s | ours vs CPU ref |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        B, Hq, Hkv, N, D, L = (int(r[k]) for k in ("B", "Hq", "Hkv", "N", "D", "L"))
        causal = r["causal"] == "1"
        q = torch.randn(B, Hq, N, D, device=dev, dtype=torch.float16) * 1.5
        k = torch.randn(B, Hkv, L, D, device=dev, dtype=torch.float16) * 1.5
        v = torch.randn(B, Hkv, L, D, device=dev, dtype=torch.float16) * 1.5
        gqa = Hq != Hkv
        fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
        ms = median_ms(fn, iters=20 if r["op"] == "prefill" else 100)
        flops = 4.0 * B * Hq * N * L * D / (2.0 if causal else 1.0)
        ours = float(r["ms"])
        if r["op"] == "prefill":
            shape = f"B={B} H={Hq} N={N} D={D} causal"
        else:
            shape = f"B={B} Hq={Hq} Hkv={Hkv} L={L} D={D} q_len=1 (ours: 4-bit KV, splits={r['splits']})"
        lines.append(
            f"| {r['op']} ({r['kernel']}) | {shape} | {ours:.3f} | {ms:.3f} | {ours / ms:.2f} | "
            f"{flops / ours / 1e9:.1f} | {flops / ms / 1e9:.1f} | {r['bitexact']} |"
        )
    text = "\n".join(lines) + "\n"
    open(args.out, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
