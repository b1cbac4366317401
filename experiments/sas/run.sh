#!/usr/bin/env bash
# SAS: polynomial x precision, and n_r 3..10 (sparsity, dropped mass) in FlashQ prefill and decode
# over the embedded SmolLM2 activations (kv_bits = 8); writes results/ (committed). Environment
# (experiments/common.sh): TA, BUILD_DIR, LAYERS (default 0-29:10), POSITIONS (default 24);
# CORE_TEST=/path/to/core_test (a test build's core/core_test) also writes results/exp_table.txt,
# its exhaustive table of every polynomial x precision against e^-x over every FP16 input.
source "$(dirname "$0")/../common.sh"
study_sweep --phases prefill,decode
python3 experiments/summarize.py "$OUT/results.csv" -o "$OUT" --title "SAS, SmolLM2-135M"
python3 $HERE/plot_nr.py "$OUT/results.csv" -o "$OUT/figures"
if [[ -n "${CORE_TEST:-}" ]]; then
  "$CORE_TEST" --gtest_filter='SasExhaustive*' | sed -n '/^SAS vs e/,/^truncation/p' >"$OUT/exp_table.txt"
fi
gzip -kfn "$OUT/results.csv"  # results.csv.gz is committed (results.csv is git-ignored)
rm -f "$OUT/results.csv.lock"
