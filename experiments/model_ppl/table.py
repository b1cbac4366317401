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
    "causal=1,splits=1,tau=0").split(","))


def label(key):
    kv = dict(p.split("=", 1) for p in key.split(","))
    rest = [f"{k}={v}" for k, v in kv.items() if k != "method" and DEFAULTS.get(k) != v]
    return kv["method"] + (" " + ",".join(rest) if rest else "")


def main(folder):
    rows = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(folder, "*.json")))
            if not p.endswith("bits_map.json")]
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
        print("| method | perplexity (ref {:.3f}) | mean KL (nats) | top-1 agreement | SAS sparsity | KV × FP16 |"
              .format(sel[0]["ppl_reference"]))
        print("|---|---|---|---|---|---|")
        for r in sel:
            ratio = r.get("kv_ratio_vs_fp16")
            print(f"| {label(r['method'])} | {r['ppl_method']:.3f} | {r['kl_mean']:.3e} | "
                  f"{100 * r['top1_agreement']:.1f}% | {r.get('sparsity', 0):.3f} | "
                  f"{'' if ratio is None or phase == 'prefill' else f'{ratio:.2f}'} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "experiments/model_ppl/out")
