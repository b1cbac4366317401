#!/usr/bin/env bash
# Head-wise mixed precision: priority metric x f2, bit maps computed on the calibration split
# (--calib), FlashQ decode over the embedded SmolLM2 activations; writes results/ (committed).
# Environment: TA, BUILD_DIR, LAYERS (default 0-29:10), POSITIONS (default 24).
set -euo pipefail
cd "$(dirname "$0")/../.."
TA=${TA:-$(bash experiments/build_turboattn.sh)}  # TA=/path/to/turboattn: a binary built elsewhere
HERE=experiments/mixed_precision
OUT=$HERE/results
mkdir -p "$OUT"
"$TA" -q sweep --data datasets/data/smollm2_eval.h5 --grid "$HERE/grid.txt" --phases decode \
  --calib datasets/data/smollm2_calib.h5 --layers "${LAYERS:-0-29:10}" \
  --positions "${POSITIONS:-24}" --seed 0 --overwrite -o "$OUT/results.csv"
python3 experiments/summarize.py "$OUT/results.csv" -o "$OUT" --title "mixed precision, SmolLM2-135M"
