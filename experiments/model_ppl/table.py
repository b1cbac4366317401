#!/usr/bin/env python3
"""Markdown table of the `turboattn ppl --json` results in a folder (experiments/model_ppl)."""
import glob
import json
import os
import sys

DEFAULTS = dict(kv.split("=", 1) for kv in (
    "method=flashq,q_gran=tile,kv_gran=tile,br=64,bc=64,k_smooth=none,block=64,kv_bits=4,f2=0.5,"
    "k_axis=channel,v_axis=channel,group_size=32,buffer=fp16,scale_storage=fp16,residual=32,"
    "prio_tensors=k,prio_metric=gap_std,n_r=6,poly=ls3,sas_precision=fp16,exp_mode=sas,p_quant=u8,"
    "causal=1,splits=1,tau=0,s2_step=int,kv_scale=block,sink=0,window=0,kivi_impl=authors,"
    "sage_impl=authors,sage_gran=block,sage_pv=fp32").split(","))


def label(key):
    kv = dict(p.split("=", 1) for p in key.split(","))
    rest = [f"{k}={v}" for k, v in kv.items() if k != "method" and DEFAULTS.get(k) != v]
    return kv["method"] + (" " + ",".join(rest) if rest else "")


def load(path):
    """The runs of one `ppl --json` file: format turboattn-ppl-2 holds them under "runs" (with the
    inputs at top level); earlier files are one flat run."""
    j = json.load(open(path))
    if j.get("format") != "turboattn-ppl-2":
        return [j]
    shared = {k: v for k, v in j.items() if k != "runs"}
    return [dict(shared, **r) for r in j["runs"]]


def ci(r, key, scale=1.0, fmt="{:.3e}"):
    lo_hi = r.get(key)
    if not lo_hi or lo_hi[0] is None:
        return ""
    return " [" + fmt.format(scale * lo_hi[0]) + ", " + fmt.format(scale * lo_hi[1]) + "]"


def main(folder):
    rows = [r for p in sorted(glob.glob(os.path.join(folder, "*.json")))
            if not p.endswith("bits_map.json") for r in load(p)]
    if not rows:
        sys.exit("table.py: no ppl results in " + folder)
    first = rows[0]
    print(f"Model `{os.path.basename(first['model'])}`, text `{first['text']}`, window "
          f"{first['window']} tokens, {first['scored']} next-token predictions scored "
          f"(the second half); backend `{first['backend']}`.\n")
    for phase in ("decode", "prefill"):
        sel = sorted((r for r in rows if r["phase"] == phase), key=lambda r: r["kl_mean"])
        if not sel:
            continue
        print(f"### {phase}\n")
        print("| method | perplexity (ref {:.3f}) [95% CI of the difference] | mean KL (nats) [95% CI] "
              "| top-1 agreement [95% CI] | SAS sparsity | KV B/token/kv head: end (mean) | "
              "KV × FP16: end (mean) |"
              .format(sel[0]["ppl_reference"]))
        print("|---|---|---|---|---|---|---|")
        for r in sel:
            ratio, ratio_mean = r.get("kv_ratio_vs_fp16"), r.get("kv_ratio_mean_vs_fp16")
            head, head_mean = (r.get("kv_bytes_per_token_per_kv_head"),
                               r.get("kv_bytes_mean_per_token_per_kv_head"))
            # bytes at the end of the window, and averaged over the decode positions (SPEC 8);
            # older JSON files have only the end ratio
            kv_bytes = "" if head is None or phase == "prefill" else (
                f"{head:.1f}" + ("" if head_mean is None else f" ({head_mean:.1f})"))
            kv_ratio = "" if ratio is None or phase == "prefill" else (
                f"{ratio:.2f}" + ("" if ratio_mean is None else f" ({ratio_mean:.2f})"))
            print(f"| {label(r['method'])} | {r['ppl_method']:.3f}{ci(r, 'ppl_diff_ci95', 1, '{:+.3f}')} | "
                  f"{r['kl_mean']:.3e}{ci(r, 'kl_mean_ci95')} | "
                  f"{100 * r['top1_agreement']:.1f}%{ci(r, 'top1_agreement_ci95', 100, '{:.1f}')} | "
                  f"{r.get('sparsity', 0):.3f} | "
                  f"{kv_bytes} | {kv_ratio} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "experiments/model_ppl/out")
