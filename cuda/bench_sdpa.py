#!/usr/bin/env python3
"""Times PyTorch SDPA (FP16) with each backend (flash, cuDNN, efficient) on the shapes of
cuda_flashq_bench's CSV, on the same card in the same run, and writes the result file of the run:
cuda/results/<date>_<card>.json plus the Markdown table generated from it.

  python3 cuda/bench_sdpa.py --ours ours.csv --validate validate.log --json out.json --md out.md \
      --commit SHA --command "..." [--sanitizer memcheck=... --sanitizer racecheck=...] \
      [--cli-validate cli_validate.log --cli-bench cli_bench.log] [--ncu decode=ncu.txt ...]

Timing as ours: CUDA events after warm-up, the median of many calls, inputs rotated among copies
that together exceed three times the L2; at B = 1 decode also a CUDA graph replay. A backend with
no kernel for a shape (it raises) is recorded as null.
"""
import argparse
import csv
import datetime
import json
import re
import subprocess

import torch
import torch.nn.functional as F

import result_targets
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}


def median_ms(fn, warmup=5, iters=50):
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    times = []
    for i in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn(warmup + i)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def copies_for(nbytes):
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    return int(min(16, max(1, 3 * l2 / nbytes + 1)))


def time_sdpa(backend, B, Hq, Hkv, N, L, D, causal, graph):
    dev = torch.device("cuda")
    per = (B * Hq * N * D + 2 * B * Hkv * L * D) * 2
    n = copies_for(per)
    qs = [torch.randn(B, Hq, N, D, device=dev, dtype=torch.float16) * 1.5 for _ in range(n)]
    ks = [torch.randn(B, Hkv, L, D, device=dev, dtype=torch.float16) * 1.5 for _ in range(n)]
    vs = [torch.randn(B, Hkv, L, D, device=dev, dtype=torch.float16) * 1.5 for _ in range(n)]
    gqa = Hq != Hkv
    # Decode (N = 1 query row at the end of L keys): no mask; prefill causal: the causal mask.
    is_causal = bool(causal) and N > 1

    def call(i):
        c = i % n
        return F.scaled_dot_product_attention(qs[c], ks[c], vs[c], is_causal=is_causal,
                                              enable_gqa=gqa)

    try:
        with sdpa_kernel([BACKENDS[backend]]):
            call(0)
            torch.cuda.synchronize()
            ms = median_ms(call, iters=20 if N > 1 else 100)
            gms = None
            if graph:
                g = torch.cuda.CUDAGraph()
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    for i in range(2):
                        call(i)
                torch.cuda.current_stream().wait_stream(s)
                with torch.cuda.graph(g):
                    for i in range(n):
                        call(i)
                gms = median_ms(lambda i: g.replay(), iters=50) / n
            return ms, gms
    except Exception as e:  # no kernel for this shape / dtype / GQA
        print(f"  sdpa {backend}: none for B={B} Hq={Hq} Hkv={Hkv} N={N} L={L} D={D}: "
              f"{str(e).splitlines()[0][:120]}")
        return None, None


def parse_validate(path):
    """cuda_validate's log: the same summary as `turboattn validate` (reference/backend_check.h)."""
    if not path:
        return None
    res = parse_cli_validate(path)
    return {"cases": res["cases"], "failed": res["failed"], "declined": res["declined"],
            "mismatches": res["mismatches"]}


def parse_cli_validate(path):
    """`turboattn validate` output (cuda/cli_gpu.sh appends "exit RC, S s: COMMAND")."""
    if not path:
        return None
    text = open(path).read()
    res = {"command": None, "exit": None, "seconds": None, "cases": None, "failed": None,
           "declined": None, "mismatches": None}
    m = re.search(r"^exit (\d+), (\d+) s: (.*)$", text, re.M)
    if m:
        res["exit"], res["seconds"] = int(m.group(1)), int(m.group(2))
        res["command"] = m.group(3).strip()
    m = re.search(r"^(PASS|FAIL): (\d+) cases run, (\d+) failed, (\d+) declined", text, re.M)
    if m:
        res["cases"], res["failed"], res["declined"] = (int(m.group(i)) for i in (2, 3, 4))
        # | op | cases | failed | unsupported | elements | mismatches | worst error / bound |
        res["mismatches"] = 0
        for line in text.splitlines():
            cols = [c.strip() for c in line.strip().strip("|").split("|")]
            # bounded ops may differ in bits within their bound: count the exact ops only
            if line.startswith("| ") and len(cols) == 7 and cols[5].isdigit() \
                    and cols[0].endswith("(exact)"):
                res["mismatches"] += int(cols[5])
    return res


def parse_cli_bench(path):
    """`turboattn bench` output: | op | shape | elements | median time | elements/s |."""
    if not path:
        return None
    text = open(path).read()
    res = {"command": None, "exit": None, "rows": []}
    m = re.search(r"^exit (\d+), \d+ s: (.*)$", text, re.M)
    if m:
        res["exit"], res["command"] = int(m.group(1)), m.group(2).strip()
    for line in text.splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cols) == 5 and cols[3].endswith(" ms"):
            res["rows"].append({"op": cols[0], "shape": cols[1], "elements": float(cols[2]),
                                "ms": float(cols[3][:-3]), "elements_per_s": float(cols[4])})
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--validate")
    ap.add_argument("--json", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--command", default="")
    ap.add_argument("--sanitizer", action="append", default=[])
    ap.add_argument("--oracle", default=None)
    ap.add_argument("--cli-validate", help="log of `turboattn validate --backend cuda`")
    ap.add_argument("--cli-bench", help="log of `turboattn bench --backend cuda`")
    ap.add_argument("--ncu", action="append", default=[],
                    help="KEY=PATH: one kernel launch's ncu log (cuda/run_gpu.sh PROFILE=1), the "
                         "measured reason of the targets of KEY (decode, prefill, quantize, compress, append)")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = list(csv.DictReader(open(args.ours)))
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip().split(", ")
    out = {
        "card": torch.cuda.get_device_name(),
        "driver": smi[1] if len(smi) > 1 else None,
        "torch": torch.__version__,
        "commit": args.commit,
        "command": args.command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "copy_gbps": None,
        "read_gbps": None,
        "validate": parse_validate(args.validate),
        "cli_validate": parse_cli_validate(args.cli_validate),
        "cli_bench": parse_cli_bench(args.cli_bench),
        "oracle": args.oracle,
        "sanitizer": dict(s.split("=", 1) for s in args.sanitizer),
        "kernels": [],
        "rows": [],
    }
    for r in rows:
        ms, nbytes = float(r["ms"]), float(r["bytes"])
        if r["op"] == "copy":
            out["copy_gbps"] = round(nbytes / ms / 1e6, 1)
        elif r["op"] == "read":
            out["read_gbps"] = round(nbytes / ms / 1e6, 1)
        elif r["op"] in ("quantize", "compress", "append"):
            # quantize_stage1 [heads, N, D]; compress_stage2 [heads, N, D] of INT8 codes;
            # append_cache [B, Hkv, tokens per call, D] with kv_bits
            shape = ([int(r["Hq"]), int(r["N"]), int(r["D"])] if r["op"] != "append" else
                     [int(r["B"]), int(r["Hkv"]), int(r["N"]), int(r["D"])])
            out["kernels"].append({"op": f"{r['op']}_{r['kernel']}", "shape": shape,
                                   "kv_bits": r["kv_bits"] if r["kv_bits"] != "-" else None,
                                   "ms": ms, "bytes": nbytes, "gbps": round(nbytes / ms / 1e6, 1)})
    for k in out["kernels"]:
        k["copy_fraction"] = round(k["gbps"] / out["copy_gbps"], 3) if out["copy_gbps"] else None
    for r in rows:
        if r["op"] not in ("prefill", "decode"):
            continue
        B, Hq, Hkv, N, L, D = (int(r[k]) for k in ("B", "Hq", "Hkv", "N", "L", "D"))
        causal = int(r["causal"])
        graph = r["op"] == "decode" and B == 1
        sdpa, sdpa_graph = {}, {}
        for name in BACKENDS:
            ms, gms = time_sdpa(name, B, Hq, Hkv, N, L, D, causal, graph)
            sdpa[name] = None if ms is None else round(ms, 5)
            if graph:
                sdpa_graph[name] = None if gms is None else round(gms, 5)
        row = {
            "op": r["op"], "B": B, "Hq": Hq, "Hkv": Hkv, "N": N, "L": L, "D": D,
            "causal": bool(causal), "kv_bits": None if r["kv_bits"] == "-" else r["kv_bits"],
            "splits": int(r["splits"]), "kernel": r["kernel"],
            "ours_ms": round(float(r["ms"]), 5), "sdpa_ms": sdpa,
            "bytes_read": int(float(r["bytes"])), "check": r["check"] or None,
        }
        if graph:
            row["ours_graph_ms"] = round(float(r["graph_ms"]), 5)
            row["sdpa_graph_ms"] = sdpa_graph
        best = min((v for v in sdpa.values() if v is not None), default=None)
        row["speedup_vs_best_sdpa"] = None if best is None else round(best / row["ours_ms"], 3)
        if r["op"] == "decode" and out["read_gbps"]:
            row["read_fraction"] = round(row["bytes_read"] / row["ours_ms"] / 1e6 / out["read_gbps"], 3)
        out["rows"].append(row)
        print(f"{r['op']} B={B} N={N} L={L} D={D} causal={causal} bits={r['kv_bits']}: ours "
              f"{row['ours_ms']:.4f} ms, sdpa {sdpa}, x{row['speedup_vs_best_sdpa']}")
    out["profiles"] = result_targets.parse_ncu_args(args.ncu)
    out["targets"] = result_targets.targets(out, out["profiles"])
    json.dump(out, open(args.json, "w"), indent=1)
    open(args.md, "w").write(markdown(out))
    print(markdown(out))


def fmt(v, p=3):
    return "-" if v is None else f"{v:.{p}f}"


def markdown(res):
    v = res["validate"] or {}
    lines = [
        f"# {res['card']}, driver {res['driver']}, torch {res['torch']}, commit {res['commit']}, "
        f"{res['date']}",
        "",
        f"Generated from the result JSON by cuda/bench_sdpa.py. Command: `{res['command']}`.",
        f"Ceilings measured in the run: copy {res['copy_gbps']} GB/s (read + written), streaming "
        f"read {res['read_gbps']} GB/s. Validation: {v.get('cases')} cases, {v.get('failed')} "
        f"failed, {v.get('declined')} declined, {v.get('mismatches')} mismatching elements of "
        f"exact ops; oracle vs cuda: {res['oracle']}; sanitizers: {res['sanitizer']}.",
        "",
        "| op | B | Hq/Hkv | N | L | D | causal | kv bits | splits | ours ms | flash | cuDNN | "
        "efficient | best SDPA / ours | ours graph ms | SDPA best graph ms | read GB/s (fraction) "
        "| check |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
        "| --- | --- | --- |",
    ]
    for r in res["rows"]:
        s = r["sdpa_ms"]
        g = r.get("sdpa_graph_ms") or {}
        gbest = min((x for x in g.values() if x is not None), default=None)
        bw = "-"
        if r["op"] == "decode":
            bw = f"{r['bytes_read'] / r['ours_ms'] / 1e6:.0f} ({fmt(r.get('read_fraction'), 2)})"
        lines.append(
            f"| {r['op']} | {r['B']} | {r['Hq']}/{r['Hkv']} | {r['N']} | {r['L']} | {r['D']} | "
            f"{int(r['causal'])} | {r['kv_bits'] or '-'} | {r['splits']} | {r['ours_ms']:.4f} | "
            f"{fmt(s['flash'], 4)} | {fmt(s['cudnn'], 4)} | {fmt(s['efficient'], 4)} | "
            f"{fmt(r['speedup_vs_best_sdpa'], 2)} | {fmt(r.get('ours_graph_ms'), 4)} | "
            f"{fmt(gbest, 4)} | {bw} | {r['check'] or '-'} |")
    for k in res["kernels"]:
        lines.append("")
        bits = f" {k['kv_bits']}-bit" if k.get("kv_bits") else ""
        lines.append(f"{k['op']}{bits} {k['shape']}: {k['ms']:.4f} ms, {k['gbps']} GB/s "
                     f"({k['gbps'] / res['copy_gbps'] * 100:.0f}% of copy)")
    cv, cb = res.get("cli_validate"), res.get("cli_bench")
    if cv:
        lines.append("")
        lines.append(f"CLI `{cv['command']}` (exit {cv['exit']}, {cv['seconds']} s): "
                     f"{cv['cases']} cases run, {cv['failed']} failed, {cv['declined']} declined "
                     f"by the backend, {cv['mismatches']} mismatching elements of exact ops.")
    if cb:
        lines.append("")
        lines.append(f"CLI `{cb['command']}` (exit {cb['exit']}; host-to-host calls, transfers "
                     f"included):")
        lines.append("")
        lines.append("| op | shape | median ms | elements/s |")
        lines.append("| --- | --- | --- | --- |")
        for r in cb["rows"]:
            lines.append(f"| {r['op']} | {r['shape']} | {r['ms']:.3f} | {r['elements_per_s']:.3g} |")
    return "\n".join(lines) + "\n\n" + result_targets.markdown(res)


if __name__ == "__main__":
    main()
