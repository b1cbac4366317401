#!/usr/bin/env python3
"""Sparsity, dropped mass and error vs n_r (SAS) from sas/run.sh's sweep file."""
import argparse
import os

import pandas as pd


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("csv")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    d = pd.read_csv(a.csv)
    d = d[(d.poly == "ls3") & (d.sas_precision == "fp16") & (d.exp_mode == "sas")]
    g = d.groupby(["phase", "n_r"]).agg(rel_l2=("rel_l2", "mean"), sparsity=("sparsity", "mean"),
                                        dropped_mass=("dropped_mass", "mean")).reset_index()
    g.to_csv(os.path.join(os.path.dirname(a.out.rstrip("/")), "nr.csv"), index=False)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for phase, p in g.groupby("phase"):
        for ax, col in zip(axes, ["rel_l2", "sparsity", "dropped_mass"]):
            ax.plot(p.n_r, p[col], marker="o", label=phase)
            ax.set_xlabel("n_r")
            ax.set_title(col)
            ax.grid(True, alpha=0.3)
    axes[0].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].legend()
    os.makedirs(a.out, exist_ok=True)
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(a.out, f"sas_nr.{ext}"), dpi=130, bbox_inches="tight")
    print(g.to_markdown(index=False, floatfmt=".4g"))


if __name__ == "__main__":
    main()
