#!/usr/bin/env python3
"""Summaries and figures of one experiment's result files (no quantizer logic here).

  summarize.py RESULTS.csv [--ppl DIR [DIR ...]] [--kv-heads-total N] -o OUT_DIR

RESULTS.csv is a `turboattn sweep` file. Per (config, phase): mean and p95 of rel L2 over its
(layer, query head) rows, and the KV bytes per token per kv head (SPEC 8) averaged over every decode
position (`kv_bytes_mean`) and at the end of the window (`kv_bytes_per_token`). Each DIR holds
`turboattn ppl --json` files; their KV bytes (summed over layers and kv heads) are divided by
--kv-heads-total (SmolLM2-135M: 30 layers x 3 kv heads = 90) to give bytes per token per kv head.
Writes OUT_DIR/summary.csv, summary.md and figures/error_vs_bytes.{png,svg}.
"""
import argparse
import glob
import json
import os

import pandas as pd

# core/config.h defaults (AttentionConfig{}.to_string()); knobs missing here count as non-default.
DEFAULT_KEY = ("method=flashq,q_gran=tile,kv_gran=tile,br=64,bc=64,k_smooth=none,block=64,"
               "kv_bits=4,f2=0.5,k_axis=channel,v_axis=channel,group_size=32,buffer=fp16,"
               "s2_step=int,kv_scale=block,sink=0,window=0,scale_storage=fp16,residual=32,"
               "kivi_impl=authors,sage_impl=authors,sage_gran=block,sage_pv=fp32,prio_tensors=k,"
               "prio_metric=gap_std,n_r=6,poly=ls3,sas_precision=fp16,exp_mode=sas,p_quant=u8,"
               "causal=1,splits=1,tau=0")
DEFAULTS = dict(kv.split("=", 1) for kv in DEFAULT_KEY.split(","))
# The best knob set of experiments/error_budget, shown as "+knobs" in figures.
BEST_KNOBS = {"v_axis=token", "kv_scale=token", "s2_step=float", "sink=1", "block=32"}


def short_key(config):
    """The knobs of a config key that differ from the defaults (method first)."""
    items = dict(kv.split("=", 1) for kv in config.split(","))
    out = ["method=" + items["method"]]
    for k, v in items.items():
        if k != "method" and DEFAULTS.get(k) != v:
            out.append(f"{k}={v}")
    return ",".join(out)


def summarize(csv):
    df = pd.read_csv(csv)
    rows = []
    for (config, phase), g in df.groupby(["config", "phase"], sort=False):
        rows.append({
            "config": short_key(config),
            "phase": phase,
            "rel_l2_mean": g.rel_l2.mean(),
            "rel_l2_p95": g.rel_l2.quantile(0.95, interpolation="higher"),
            "cosine_mean": g.cosine.mean(),
            "kv_bytes_mean": g.kv_bytes_mean.mean() if "kv_bytes_mean" in g else float("nan"),
            "kv_bytes_end": g.kv_bytes_per_token.mean(),
            "rows": len(g),
        })
    return pd.DataFrame(rows)


def ppl_table(folders, kv_heads_total):
    rows = []
    paths = [p for f in folders for p in sorted(glob.glob(os.path.join(f, "*.json")))]
    for path in paths:
        top = json.load(open(path))
        # Format turboattn-ppl-2 holds its runs under "runs"; earlier files are one flat run.
        runs = top["runs"] if top.get("format") == "turboattn-ppl-2" else [top]
        for j in runs:
            rows.append({
                "run": os.path.splitext(os.path.basename(path))[0],
                "config": short_key(j["method"]) if "=" in j["method"] else j["method"],
                "ppl": j["ppl_method"],
                "ppl_fp64_attention": j["ppl_reference"],
                "kl_mean": j["kl_mean"],
                "top1": j["top1_agreement"],
                "kv_bytes_end": j["kv_bytes_per_token"] / kv_heads_total,
            })
    return pd.DataFrame(rows)


def figure(s, out_dir, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = s[(s.phase == "decode") & s.kv_bytes_mean.notna()]
    if d.empty:
        return
    fig, ax = plt.subplots(figsize=(9, 6))
    for method, g in d.groupby(d.config.str.split(",").str[0]):
        ax.scatter(g.kv_bytes_mean, g.rel_l2_mean, label=method.split("=")[1], s=30)
        for _, r in g.iterrows():
            label = r.config.split(",", 1)[1] if "," in r.config else "(default)"
            knobs = set(label.split(","))
            if BEST_KNOBS <= knobs:  # the error budget's knob set, abbreviated
                label = ",".join(["+knobs"] + sorted(knobs - BEST_KNOBS))
            ax.annotate(label, (r.kv_bytes_mean, r.rel_l2_mean), fontsize=6,
                        xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel("KV bytes per token per kv head (mean over decode positions)")
    ax.set_ylabel("decode rel L2 vs FP64 attention (mean over layers x heads)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title)
    os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(out_dir, "figures", f"error_vs_bytes.{ext}"), dpi=130,
                    bbox_inches="tight")
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--ppl", nargs="+", default=[])
    ap.add_argument("--kv-heads-total", type=int, default=90)
    ap.add_argument("--title", default="")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    s = summarize(a.csv)
    os.makedirs(a.out, exist_ok=True)
    s.to_csv(os.path.join(a.out, "summary.csv"), index=False)
    fmt = {"rel_l2_mean": "{:.4g}", "rel_l2_p95": "{:.4g}", "cosine_mean": "{:.6f}",
           "kv_bytes_mean": "{:.1f}", "kv_bytes_end": "{:.1f}"}
    t = s.copy()
    for k, f in fmt.items():
        t[k] = t[k].map(lambda v, f=f: f.format(v))
    t["config"] = "`" + t["config"] + "`"
    md = "## Operator level\n\n" + t.to_markdown(index=False) + "\n"
    if any(glob.glob(os.path.join(f, "*.json")) for f in a.ppl if os.path.isdir(f)):
        p = ppl_table(a.ppl, a.kv_heads_total)
        p.to_csv(os.path.join(a.out, "ppl.csv"), index=False)
        p["config"] = "`" + p["config"] + "`"
        md += "\n## Model level (turboattn ppl)\n\n" + p.to_markdown(index=False,
                                                                    floatfmt=".4g") + "\n"
    open(os.path.join(a.out, "summary.md"), "w").write(md)
    figure(s, a.out, a.title)
    print(md)


if __name__ == "__main__":
    main()
