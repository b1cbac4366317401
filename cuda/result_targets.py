#!/usr/bin/env python3
"""Issue 7's targets judged on one run's result JSON, and the measured reason for each miss.

Used by cuda/bench_sdpa.py when it writes a run's result file (the `targets` and `profiles`
fields and the Markdown section made from them); run alone it reads a result JSON and prints the
section, for results written before these fields existed:

  python3 cuda/result_targets.py cuda/results/<date>_<card>.json [--ncu decode=ncu.txt ...] [--write]

The targets (same card, same run, ratios):
  decode, 4-bit / mixed 2+4-bit / 8-bit caches, B = 1 and 16, L = 32k: at least 3x faster than
    the best SDPA FP16 backend;
  every decode row: at least 60% of the streaming-read bandwidth measured in the run, on the
    bytes the call reads;
  prefill D = 128, N = 16k, causal and not: at least 1.0x SDPA-cuDNN and 2x SDPA-flash, the
    quantization of Q, K and V included in our time;
  quantize / compress / append kernels: at least 70% of the copy bandwidth measured in the run.

The reason for a miss comes from an Nsight Compute profile of the kernel that does the work
(cuda/run_gpu.sh PROFILE=1 runs ncu on one launch of each): its DRAM throughput, issue-slot use,
cycles between a warp's instructions and the largest stall reasons. The classification is a rule
on those numbers, stated with it: DRAM throughput >= 60% of peak: memory-bound; issue slots >= 60%
busy: issue-bound (too many instructions); else latency-bound (neither near its limit: warps wait
on dependencies and barriers, too few to hide it).
"""
import argparse
import json
import re
import sys

# ncu "Section" lines: (metric name as printed, key in the profile)
NCU_METRICS = {
    "Duration": "duration_us",
    "DRAM Throughput": "dram_pct",
    "Memory Throughput": "memory_pct",
    "Compute (SM) Throughput": "sm_pct",
    "Executed Ipc Active": "ipc",
    "Issue Slots Busy": "issue_slots_pct",
    "Warp Cycles Per Issued Instruction": "cycles_per_issue",
    "Registers Per Thread": "registers",
    "Achieved Occupancy": "achieved_occupancy_pct",
    "Theoretical Occupancy": "theoretical_occupancy_pct",
    "Executed Instructions": "instructions",
}
TIME_UNITS_US = {"ns": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "s": 1e6,
                 "second": 1e6}
STALL = re.compile(r"smsp__average_warps_issue_stalled_(\w+?)_per_issue_active\.ratio\s+\S+\s+([\d.]+)")
# stall reasons that are not waiting: an issued warp counts as "selected"
NOT_A_STALL = {"selected"}


def parse_ncu(path):
    """One kernel launch's ncu text output (ncu_detail in cuda/run_gpu.sh) as a dict."""
    prof = {"kernel": None, "stalls": {}}
    for line in open(path, errors="replace"):
        s = line.strip()
        if prof["kernel"] is None and re.search(r"\(\d+, \d+, \d+\)x\(\d+, \d+, \d+\)", s):
            name, _, launch = s.partition(" (")
            for noise in ("void ", "<unnamed>::", "unnamed>::", "(anonymous namespace)::"):
                name = name.replace(noise, "")
            prof["kernel"] = name
            prof["grid_block"] = "(" + launch.split(", Context")[0]
            continue
        m = STALL.search(s)
        if m:
            if m.group(1) not in NOT_A_STALL and float(m.group(2)) > 0:
                prof["stalls"][m.group(1)] = float(m.group(2))
            continue
        for name, key in NCU_METRICS.items():
            m = re.match(re.escape(name) + r"\s+(\S+)\s+([\d,.]+)$", s)
            if m and key not in prof:
                value = float(m.group(2).replace(",", ""))
                if key == "duration_us":  # ncu picks the unit by the magnitude
                    value *= TIME_UNITS_US.get(m.group(1), float("nan"))
                prof[key] = value
    if prof["kernel"] is None:
        return None
    return prof


def classify(prof):
    """The rule stated in the module doc, on one profile."""
    if prof.get("dram_pct", 0) >= 60:
        return "memory-bound"
    if prof.get("issue_slots_pct", 0) >= 60:
        return "issue-bound"
    return "latency-bound"


def describe(prof):
    top = sorted(prof["stalls"].items(), key=lambda kv: -kv[1])[:4]
    stalls = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in top)
    parts = [f"{classify(prof)}: one launch of {prof['kernel']} {prof.get('grid_block', '')}"]
    if "duration_us" in prof:
        us = prof["duration_us"]
        parts.append(f"{us / 1e3:.2f} ms" if us >= 1e3 else f"{us:.1f} us")
    if "dram_pct" in prof:
        parts.append(f"DRAM {prof['dram_pct']:.1f}% of peak")
    if "issue_slots_pct" in prof:
        parts.append(f"issue slots {prof['issue_slots_pct']:.0f}% busy (IPC {prof.get('ipc', 0):.2f} of 4)")
    if "cycles_per_issue" in prof:
        occ = prof.get("achieved_occupancy_pct")
        parts.append(f"{prof['cycles_per_issue']:.2f} cycles between a warp's instructions"
                     + (f" at {occ:.0f}% occupancy" if occ is not None else ""))
    if stalls:
        parts.append(f"largest stalls per issued instruction: {stalls}")
    if "instructions" in prof:
        parts.append(f"{prof['instructions']:.3g} warp instructions")
    return "; ".join(parts)


def _target(name, measured, required, ratio, profile_key, profiles):
    """ratio: measured / required in the sense 'higher is better' (met when >= 1)."""
    t = {"target": name, "measured": measured, "required": required, "met": ratio >= 1,
         "short_by": None if ratio >= 1 else round(1 / ratio, 2), "profile": profile_key}
    if not t["met"] and profile_key in profiles:
        t["reason"] = f"{classify(profiles[profile_key])} (profile `{profile_key}`)"
    return t


def targets(res, profiles):
    out = []
    rows = res.get("rows", [])
    dec = [r for r in rows if r["op"] == "decode"]
    for bits, label in (("4", "4-bit"), ("mixed", "mixed-bit"), ("8", "8-bit")):
        for B in (1, 16):
            for r in dec:
                if r["kv_bits"] != bits or r["B"] != B or r["L"] != 32768:
                    continue
                best = min((v for v in r["sdpa_ms"].values() if v is not None), default=None)
                if best is None:
                    continue
                ratio = best / r["ours_ms"]
                out.append(_target(
                    f"decode {label} B={B} L=32k: >= 3x faster than the best SDPA backend",
                    f"ours {r['ours_ms']:.4f} ms, best SDPA {best:.4f} ms: {ratio:.2f}x",
                    "3x", ratio / 3, "decode", profiles))
    read = res.get("read_gbps")
    if read:
        for r in dec:
            gbps = r["bytes_read"] / r["ours_ms"] / 1e6
            label = {"4": "4-bit", "8": "8-bit"}.get(r["kv_bits"], f"{r['kv_bits']}-bit")
            out.append(_target(
                f"decode {label} B={r['B']} L={r['L'] // 1024}k: >= 60% of the read bandwidth",
                f"{gbps:.0f} GB/s = {gbps / read:.0%} of {read:.0f}", "60%",
                gbps / read / 0.6, "decode", profiles))
    for r in rows:
        if r["op"] != "prefill" or r["D"] != 128 or r["N"] != 16384:
            continue
        cudnn, flash = r["sdpa_ms"].get("cudnn"), r["sdpa_ms"].get("flash")
        if cudnn is None or flash is None:
            continue
        ours = r["ours_ms"]
        ratio = min(cudnn / ours, flash / ours / 2)
        kind = "causal" if r["causal"] else "non-causal"
        out.append(_target(
            f"prefill D=128 N=16k {kind}: >= 1.0x cuDNN and 2x flash, quantization included",
            f"ours {ours:.2f} ms, cuDNN {cudnn:.2f}, flash {flash:.2f}: "
            f"{cudnn / ours:.2f}x / {flash / ours:.2f}x", "1.0x / 2x", ratio, "prefill", profiles))
    # The defaults' rows (cuda_flashq_bench times each default once per round; the stage-2
    # variants of its A/B carry other kernel names and are not targets), judged on their mean.
    groups = {}
    for k in res.get("kernels", []):
        if k["op"] in ("quantize_stage1", "compress_stage2", "append_cache") and \
                k.get("copy_fraction") is not None:
            groups.setdefault((k["op"], k.get("kv_bits")), []).append(k)
    for (op, bits), ks in groups.items():
        frac = sum(k["copy_fraction"] for k in ks) / len(ks)
        gbps = sum(k["gbps"] for k in ks) / len(ks)
        times = " / ".join(f"{k['ms']:.4f}" for k in ks)
        label = f" {bits}-bit" if bits else ""
        out.append(_target(f"{op}{label} {ks[0]['shape']}: >= 70% of copy",
                           f"{times} ms, {gbps:.0f} GB/s = {frac:.0%}", "70%", frac / 0.7,
                           op.split("_")[0], profiles))
    return out


def markdown(res):
    lines = ["## Issue 7's targets", "",
             "Judged by cuda/result_targets.py on this file; the reason for a miss is the ncu profile "
             "of the kernel that does the work, in this run (PROFILE=1), classified by the rule in "
             "that script.", "",
             "| target | measured | met | short by | measured reason |",
             "| --- | --- | --- | --- | --- |"]
    for t in res.get("targets", []):
        short = "-" if t["short_by"] is None else f"{t['short_by']}x"
        reason = t.get("reason") or ("-" if t["met"] else "not profiled in this run")
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} | "
                     f"{short} | {reason} |")
    profiles = res.get("profiles") or {}
    if profiles:
        lines += ["", "Profiles (ncu, one launch each, in this run):", ""]
        for key, prof in sorted(profiles.items()):
            lines.append(f"- `{key}`: {describe(prof)}")
    return "\n".join(lines) + "\n"


def parse_ncu_args(items):
    profiles = {}
    for item in items or []:
        key, _, path = item.partition("=")
        try:
            prof = parse_ncu(path)
        except OSError as e:
            print(f"ncu log {path}: {e}", file=sys.stderr)
            continue
        if prof is None:
            print(f"ncu log {path}: no kernel launch in it (ncu failed?)", file=sys.stderr)
            continue
        profiles[key] = prof
    return profiles


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", help="a run's result JSON (cuda/results/)")
    ap.add_argument("--ncu", action="append", default=[],
                    help="KEY=PATH: a kernel's ncu log (KEY: decode, prefill, quantize, compress, append)")
    ap.add_argument("--write", action="store_true",
                    help="write the profiles and targets into the JSON and its .md beside it")
    args = ap.parse_args()
    try:
        res = json.load(open(args.json))
    except (OSError, ValueError) as e:
        sys.exit(f"{args.json}: {e}")
    profiles = dict(res.get("profiles") or {})
    profiles.update(parse_ncu_args(args.ncu))
    res["profiles"] = profiles
    res["targets"] = targets(res, profiles)
    section = markdown(res)
    if args.write:
        # The result file and its Markdown (same name, .md) re-judged in place: the JSON's
        # profiles and targets fields, the Markdown's section from its heading to the end.
        # The Markdown is read before either file is written: a missing one changes nothing.
        if not args.json.endswith(".json"):
            sys.exit(f"{args.json}: --write needs a result file named *.json (its .md beside it)")
        md = args.json[:-len(".json")] + ".md"
        try:
            text = open(md).read()
        except OSError as e:
            sys.exit(f"{md}: {e} (nothing written)")
        head = text.split("## Issue 7's targets")[0].rstrip("\n")
        json.dump(res, open(args.json, "w"), indent=1)
        open(md, "w").write(head + "\n\n" + section)
    print(section, end="")


if __name__ == "__main__":
    main()
