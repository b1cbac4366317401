#!/usr/bin/env bash
# Head-wise mixed precision: priority metric x f2, bit maps computed on the calibration split
# (--calib), FlashQ decode over the embedded SmolLM2 activations; writes results/ (committed).
# Environment (experiments/common.sh): TA, BUILD_DIR, LAYERS (default 0-29:10), POSITIONS
# (default 24).
source "$(dirname "$0")/../common.sh"
study_sweep --phases decode --calib datasets/data/smollm2_calib.h5
python3 experiments/summarize.py "$OUT/results.csv" -o "$OUT" --title "mixed precision, SmolLM2-135M"
