#!/usr/bin/env python3
"""KV compression vs sequence length from the n<N>.csv sweep files of compression/run.sh."""
import argparse
import glob
import os
import re
import sys

import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from summarize import short_key  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folder")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    rows = []
    for path in glob.glob(os.path.join(a.folder, "n*.csv")):
        n = int(re.search(r"n(\d+)\.csv$", path).group(1))
        d = pd.read_csv(path)
        for config, g in d.groupby("config", sort=False):
            rows.append({"config": short_key(config), "tokens": n,
                         "bytes_mean": g.kv_bytes_mean.mean(), "bytes_end": g.kv_bytes_per_token.mean(),
                         "x_fp16_mean": g.compression_mean.mean(), "x_fp16_end": g.compression.mean()})
    t = pd.DataFrame(rows).sort_values(["config", "tokens"])
    t.to_csv(os.path.join(a.out, "summary.csv"), index=False)
    piv = t.pivot(index="config", columns="tokens", values="x_fp16_mean")
    piv_end = t.pivot(index="config", columns="tokens", values="x_fp16_end")
    md = ("## Compression vs FP16, mean over decode positions\n\n" +
          piv.to_markdown(floatfmt=".2f") +
          "\n\n## Compression vs FP16 at the end of the window\n\n" +
          piv_end.to_markdown(floatfmt=".2f") + "\n")
    open(os.path.join(a.out, "summary.md"), "w").write(md)
    print(md)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 6))
    for config, g in t.groupby("config"):
        ax.plot(g.tokens, g.x_fp16_mean, marker="o", label=config, lw=1)
    ax.axhline(4.4, color="k", ls="--", lw=0.8, label="paper: > 4.4x")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("KV compression vs FP16 (mean over decode positions)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6)
    os.makedirs(os.path.join(a.out, "figures"), exist_ok=True)
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(a.out, "figures", f"compression_vs_length.{ext}"), dpi=130,
                    bbox_inches="tight")


if __name__ == "__main__":
    main()
