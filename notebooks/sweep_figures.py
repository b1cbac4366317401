#!/usr/bin/env python3
"""Figures and tables from `turboattn sweep` results (CSV), the plots a paper would show.

    python3 notebooks/sweep_figures.py experiments/default_sweep/out/results.csv -o figures/

Reads only the result files (their columns are documented in eval/README.md); nothing here
quantizes or attends. Writes every figure as PDF and SVG (vector, for a paper) beside a PNG,
plus `summary.md` (the numbers behind each figure) to -o. Rows of several datasets are refused
(the CSV's `data_sha256`), as `turboattn report` does.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
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
    df = pd.concat(frames, ignore_index=True)
    if "data_sha256" in df and df.data_sha256.nunique() > 1:
        sys.exit("sweep_figures: the results hold " + str(df.data_sha256.nunique()) +
                 " datasets (data_sha256); draw each dataset on its own")
    return df


def save(fig, out_dir, name):
    """One figure as PNG (screens) plus PDF and SVG (vector, for a paper)."""
    for ext in ("png", "pdf", "svg"):
        fig.savefig(os.path.join(out_dir, f"{name}.{ext}"), dpi=150 if ext == "png" else None)
    plt.close(fig)


# The paper's configuration of each method (TurboAttention defaults: the tool's default knobs).
PAPER_KEYS = {"flashq": "kv_bits=4", "kivi": "kv_bits=4"}


def paper_config(t, method):
    """The row of `t` (per_config output) with the method's default knobs, or None."""
    sub = t[t.method == method]
    for cfg in sub.index:
        if short_label(cfg) in (method, method + " " + PAPER_KEYS.get(method, "")):
            return cfg
    return None


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
            "rel_l2_max": g.rel_l2.max(),
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
    # A config whose error exceeds the output's own norm (rel L2 > 1) is broken, not a trade-off:
    # drawn grey, never on the frontier.
    ok = t[t.rel_l2_mean <= 1]
    broken = t[t.rel_l2_mean > 1]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for m, sub in ok.groupby("method"):
        ax.scatter(sub.kv_bytes, sub.rel_l2_mean, s=28, color=METHOD_COLORS.get(m, "k"), label=m, alpha=0.85)
    if not broken.empty:
        ax.scatter(broken.kv_bytes, np.ones(len(broken)), s=28, marker="x", color="0.6",
                   label=f"rel L2 > 1 ({len(broken)}, drawn at 1)")
    front = ok.iloc[pareto(ok[["kv_bytes", "rel_l2_mean"]].to_numpy())]
    ax.plot(front.kv_bytes, front.rel_l2_mean, "k--", lw=1, label="Pareto frontier")
    # Frontier labels alternate above and below the line; a point too close to the last labelled
    # one (in axis fractions: bytes linear, error log) is left unlabelled (summary.md lists all).
    span_x = max(t.kv_bytes.max() - t.kv_bytes.min(), 1e-9)
    span_y = max(np.log10(ok.rel_l2_mean.max() / ok.rel_l2_mean.min()), 1e-9)
    last, side = None, 0
    for _, r in front.iterrows():
        here = (r.kv_bytes / span_x, np.log10(r.rel_l2_mean) / span_y)
        if last is not None and abs(here[0] - last[0]) < 0.08 and abs(here[1] - last[1]) < 0.08:
            continue
        ax.annotate(r.label, (r.kv_bytes, r.rel_l2_mean), fontsize=7,
                    xytext=(5, 6 if side % 2 == 0 else -11), textcoords="offset points")
        last, side = here, side + 1
    for m in ok.method.unique():
        cfg = paper_config(ok, m)
        if cfg is not None:
            ax.scatter([ok.loc[cfg, "kv_bytes"]], [ok.loc[cfg, "rel_l2_mean"]], s=110,
                       facecolors="none", edgecolors=METHOD_COLORS.get(m, "k"), linewidths=1.5)
    ax.scatter([], [], s=110, facecolors="none", edgecolors="k", label="paper configuration")
    ax.set_xlabel("KV bytes per token per kv head (K+V, as stored)")
    ax.set_ylabel("decode rel L2 vs exact FP64 attention (mean over heads)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Error vs KV cache size (decode)")
    fig.tight_layout()
    save(fig, out_dir, "pareto_decode")
    notes.append(("Pareto frontier, decode: error vs KV bytes per token (rel L2 > 1 excluded)",
                  front.set_index("label")[["kv_bytes", "rel_l2_mean"]]))
    fig_equal_bytes(ok, out_dir, notes)


def fig_equal_bytes(t, out_dir, notes):
    """Methods compared at equal bytes: for each KV budget (bytes per token per kv head) that
    more than one method reaches, each method's best config within 5% of it."""
    budgets = sorted(set(np.round(t.kv_bytes.to_numpy(), 1)))
    rows = []
    for b in budgets:
        near = t[(t.kv_bytes - b).abs() <= 0.05 * b]
        if near.method.nunique() < 2:
            continue
        for m, sub in near.groupby("method"):
            best = sub.sort_values("rel_l2_mean").iloc[0]
            rows.append({"budget": b, "method": m, "config": best.label,
                         "kv_bytes": best.kv_bytes, "rel_l2_mean": best.rel_l2_mean})
    if not rows:
        return
    r = pd.DataFrame(rows).drop_duplicates(subset=["method", "config"])
    budgets = sorted(r.budget.unique())
    methods = sorted(r.method.unique())
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, m in enumerate(methods):
        sub = r[r.method == m].set_index("budget")
        xs = [j + i * width for j, b in enumerate(budgets) if b in sub.index]
        ys = [sub.loc[b, "rel_l2_mean"] for b in budgets if b in sub.index]
        ax.bar(xs, ys, width, color=METHOD_COLORS.get(m, "k"), label=m)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(budgets))])
    ax.set_xticklabels([f"{b:g} B" for b in budgets])
    ax.set_xlabel("KV bytes per token per kv head (each method's best config within 5%)")
    ax.set_ylabel("decode rel L2 (mean over heads)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title("Methods at equal KV bytes (decode)")
    fig.tight_layout()
    save(fig, out_dir, "equal_bytes_decode")
    notes.append(("Methods at equal KV bytes (decode)", r.set_index(["budget", "method"])))


def fig_layers(df, out_dir, notes):
    for phase in ("prefill", "decode"):
        d = df[df.phase == phase]
        if d.empty:
            continue
        best = per_config(df, phase)
        # Per method: its best config (solid) and, when it differs, the paper's (dashed).
        lines = []
        for m, sub in best.groupby("method"):
            lines.append((sub.index[0], "-", "best"))
            paper = paper_config(best, m)
            if paper is not None and paper != sub.index[0]:
                lines.append((paper, "--", "paper"))
        fig, ax = plt.subplots(figsize=(8, 4.8))
        rows = []
        for cfg, style, kind in lines:
            s = d[d.config == cfg].groupby("layer").rel_l2.mean()
            lab = f"{short_label(cfg)} ({kind})"
            ax.plot(s.index, s.values, style, marker="o", ms=3, label=lab,
                    color=METHOD_COLORS.get(best.loc[cfg, "method"], "k"))
            rows.append(s.rename(lab))
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("rel L2 (mean over heads)")
        ax.set_title(f"Per-layer error: best and paper config of each method ({phase})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        save(fig, out_dir, f"layers_{phase}")
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
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_ylabel("rel L2 (mean)", color="#1f77b4")
    ax2.set_ylabel("fraction of scores zeroed", color="#d62728")
    ax1.set_yscale("log")
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper center")
    ax1.set_title("SAS: accuracy vs sparsity (flashq, INT8 K/V)")
    fig.tight_layout()
    save(fig, out_dir, "sas_nr")
    if table:
        notes.append(("SAS threshold: error, sparsity and dropped mass", pd.concat(table)))


def fig_heads(df, out_dir, notes):
    d = df[df.phase == "decode"]
    if d.empty:
        return
    t = per_config(df, "decode")
    cfgs = [t[t.method == m].index[0] for m in t.method.unique()]
    data = [d[d.config == c].rel_l2.to_numpy() for c in cfgs]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.boxplot(data, tick_labels=[short_label(c) for c in cfgs], vert=True, showfliers=True)
    ax.set_yscale("log")
    ax.set_ylabel("decode rel L2 per (layer, head)")
    ax.set_title("Spread over heads, best config of each method (decode)")
    plt.setp(ax.get_xticklabels(), rotation=25, ha="right", fontsize=7)
    fig.tight_layout()
    save(fig, out_dir, "heads_decode")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="results CSV files of turboattn sweep")
    ap.add_argument("-o", "--out", required=True, help="output folder for the figures and summary.md")
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
