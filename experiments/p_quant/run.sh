#!/usr/bin/env bash
# P quantization (u8, s8, u8_row, fp16) in FlashQ decode over the embedded SmolLM2
# activations; writes results/ (committed). Environment (experiments/common.sh): TA, BUILD_DIR,
# LAYERS (default 0-29:10), POSITIONS (default 24).
source "$(dirname "$0")/../common.sh"
study_sweep --phases decode
python3 experiments/summarize.py "$OUT/results.csv" -o "$OUT" --title "p_quant, SmolLM2-135M"
