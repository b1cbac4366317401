#!/usr/bin/env bash
# SAS: polynomial x precision, and n_r 3..10 (sparsity, dropped mass) in FlashQ prefill and decode
# over the embedded SmolLM2 activations (kv_bits = 8); writes results/ (committed). Environment
# (experiments/common.sh): TA, BUILD_DIR, LAYERS (default 0-29:10), POSITIONS (default 24).
source "$(dirname "$0")/../common.sh"
study_sweep --phases both
python3 experiments/summarize.py "$OUT/results.csv" -o "$OUT" --title "SAS, SmolLM2-135M"
python3 $HERE/plot_nr.py "$OUT/results.csv" -o "$OUT/figures"
