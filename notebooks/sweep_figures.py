#!/usr/bin/env python3
"""Figures and tables from `turboattn sweep` results (CSV), the plots a paper would show.

    python3 notebooks/sweep_figures.py experiments/default_sweep/out/results.csv -o figures/

Reads only the result files (their columns are documented in eval/README.md); nothing here
quantizes or attends. Writes PNGs plus `summary.md` (the numbers behind each figure) to -o.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

METHOD_COLORS = {
    "flashq": "#1f77b4",
    "kivi": "#ff7f0e",
    "int8kv": "#2ca02c",
    "sage": "#9467bd",
    "fp8": "#8c564b",
    "fp16": "#7f7f7f",
}
# Knob columns that never differ within a method's unit and only clutter a label.
KNOB_DEFAULTS = None


def load(paths):
    frames = []
    for p in paths:
        df = pd.read_csv(p, dtype={"config": str})
        side = p + ".json"
        df["source"] = p
        if os.path.exists(side):
            with open(side) as f:
                meta = json.load(f)
            df["command"] = meta.get("command", "")
        frames.append(df)
    if not frames:
        sys.exit("sweep_figures: no result files")
    return pd.concat(frames, ignore_index=True)


def short_label(config):
    """The config key minus knobs at their defaults, as the report prints it."""
    defaults = dict(kv.split("=", 1) for kv in DEFAULT_KEY.split(","))
    parts = [kv for kv in config.split(",") if defaults.get(kv.split("=", 1)[0]) != kv.split("=", 1)[1]]
    method = dict(kv.split("=", 1) for kv in config.split(","))["method"]
    rest = [p for p in parts if not p.startswith("method=")]
    return method + (" " + ",".join(rest) if rest else "")


# The default AttentionConfig key (core/config.h); only used to shorten labels.
DEFAULT_KEY = (
    "method=flashq,q_gran=tile,kv_gran=tile,br=64,bc=64,k_smooth=none,block=64,kv_bits=4,f2=0.5,"
    "k_axis=channel,v_axis=channel,group_size=32,buffer=fp16,scale_storage=fp16,residual=32,"
    "prio_tensors=k,prio_metric=gap_std,n_r=6,poly=ls3,sas_precision=fp16,exp_mode=sas,p_quant=u8,"
    "causal=1,splits=1,tau=0"
)


def knob_is(d, knob, value):
    """Rows whose knob equals value, or whose method does not read it in the row's phase (an empty
    cell in the CSV, NaN here)."""
    col = d[knob]
    text = col.astype(str).str.replace(r"\.0$", "", regex=True)
    return col.isna() | (text == value)


def per_config(df, phase):
    d = df[df.phase == phase]
    g = d.groupby("config")
    out = pd.DataFrame(
        {
            "method": g.method.first(),
            "rel_l2_mean": g.rel_l2.mean(),
            "rel_l2_p95": g.rel_l2.quantile(0.95),
            "sparsity": g.sparsity.mean(),
            "kv_bytes": g.kv_bytes_per_token.mean(),
        }
    )
    out["label"] = [short_label(c) for c in out.index]
    return out.sort_values("rel_l2_mean")


def pareto(points):
    """Indices of the points not dominated in (bytes, error), both minimised."""
    order = np.argsort(points[:, 0], kind="stable")
    best, keep = np.inf, []
    for i in order:
        if points[i, 1] < best:
            keep.append(i)
            best = points[i, 1]
    return keep


def fig_pareto(df, out_dir, notes):
    t = per_config(df, "decode").dropna(subset=["kv_bytes"])
    if t.empty:
        return
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for m, sub in t.groupby("method"):
        ax.scatter(sub.kv_bytes, sub.rel_l2_mean, s=28, color=METHOD_COLORS.get(m, "k"), label=m, alpha=0.85)
    pts = t[["kv_bytes", "rel_l2_mean"]].to_numpy()
    front = t.iloc[pareto(pts)]
    ax.plot(front.kv_bytes, front.rel_l2_mean, "k--", lw=1, label="Pareto frontier")
    for _, r in front.iterrows():
        ax.annotate(r.label, (r.kv_bytes, r.rel_l2_mean), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("KV bytes per token per kv head (K+V, as stored)")
    ax.set_ylabel("decode rel L2 vs FP64 attention (mean over heads)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Error vs KV cache size (decode)")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "pareto_decode.png"), dpi=130)
    plt.close(fig)
    notes.append(("Pareto frontier, decode: error vs KV bytes per token", front.set_index("label")[["kv_bytes", "rel_l2_mean"]]))


def fig_layers(df, out_dir, notes):
    for phase in ("prefill", "decode"):
        d = df[df.phase == phase]
        if d.empty:
            continue
        best = per_config(df, phase)
        # one line per method: its best and its default config, to keep the plot readable
        keep = []
        for m, sub in best.groupby("method"):
            keep.append(sub.index[0])
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        rows = []
        for cfg in keep:
            s = d[d.config == cfg].groupby("layer").rel_l2.mean()
            lab = short_label(cfg)
            ax.plot(s.index, s.values, marker="o", ms=3, label=lab, color=METHOD_COLORS.get(best.loc[cfg, "method"], "k"))
            rows.append(s.rename(lab))
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_ylabel("rel L2 (mean over heads)")
        ax.set_title(f"Per-layer error, best config of each method ({phase})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"layers_{phase}.png"), dpi=130)
        plt.close(fig)
        notes.append((f"Per-layer mean rel L2 ({phase})", pd.concat(rows, axis=1)))


def fig_nr(df, out_dir, notes):
    d = df[(df.method == "flashq") & (df.exp_mode == "sas")]
    if d.empty or d.n_r.nunique() < 2:
        return
    fig, ax1 = plt.subplots(figsize=(6.5, 4))
    ax2 = ax1.twinx()
    table = []
    for phase, style in (("prefill", "-"), ("decode", "--")):
        p = d[(d.phase == phase)]
        if phase == "decode":
            p = p[knob_is(p, "kv_bits", "8")]
        for knob, value in (("p_quant", "u8"), ("splits", "1"), ("k_axis", "channel"), ("v_axis", "channel"), ("k_smooth", "none")):
            p = p[knob_is(p, knob, value)]
        g = p.groupby("n_r").agg(rel_l2=("rel_l2", "mean"), sparsity=("sparsity", "mean"), dropped=("dropped_mass", "mean"))
        if g.empty:
            continue
        ax1.plot(g.index, g.rel_l2, "o" + style, color="#1f77b4", label=f"rel L2 ({phase})")
        ax2.plot(g.index, g.sparsity, "s" + style, color="#d62728", label=f"sparsity ({phase})")
        g.insert(0, "phase", phase)
        table.append(g)
    ax1.set_xlabel("SAS threshold n_r")
    ax1.set_ylabel("rel L2 (mean)", color="#1f77b4")
    ax2.set_ylabel("fraction of scores zeroed", color="#d62728")
    ax1.set_yscale("log")
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper center")
    ax1.set_title("SAS: accuracy vs sparsity (flashq, INT8 K/V)")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "sas_nr.png"), dpi=130)
    plt.close(fig)
    if table:
        notes.append(("SAS threshold: error, sparsity and dropped mass", pd.concat(table)))


def fig_heads(df, out_dir, notes):
    d = df[df.phase == "decode"]
    if d.empty:
        return
    t = per_config(df, "decode")
    cfgs = [t[t.method == m].index[0] for m in t.method.unique()]
    data = [d[d.config == c].rel_l2.to_numpy() for c in cfgs]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ax.boxplot(data, tick_labels=[short_label(c) for c in cfgs], vert=True, showfliers=True)
    ax.set_yscale("log")
    ax.set_ylabel("decode rel L2 per (layer, head)")
    ax.set_title("Spread over heads, best config of each method (decode)")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "heads_decode.png"), dpi=130)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="results CSV files of turboattn sweep")
    ap.add_argument("-o", "--out", required=True, help="output folder for PNGs and summary.md")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    df = load(args.results)
    notes = []
    fig_pareto(df, args.out, notes)
    fig_layers(df, args.out, notes)
    fig_nr(df, args.out, notes)
    fig_heads(df, args.out, notes)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write("# Figures: the numbers behind them\n\n")
        f.write("Made by `python3 notebooks/sweep_figures.py " + " ".join(args.results) + f" -o {args.out}`")
        cmds = sorted(set(df.get("command", pd.Series(dtype=str)).dropna()))
        if cmds:
            f.write(" from results of:\n\n" + "\n".join(f"    {c}" for c in cmds) + "\n")
        f.write("\n")
        for title, table in notes:
            f.write(f"## {title}\n\n{table.to_markdown(floatfmt='.4g') if hasattr(table, 'to_markdown') else table}\n\n")
    print(f"sweep_figures: wrote {len(os.listdir(args.out))} files to {args.out}")


if __name__ == "__main__":
    main()
