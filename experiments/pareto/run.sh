#!/usr/bin/env bash
# Pareto front of decode error vs KV bytes per token for every method (this folder's README has
# the conclusions). Operator level: `turboattn sweep` of grid.txt (decode) over the embedded
# SmolLM2-135M activations, bytes averaged over every decode position (SPEC 8); model level:
# `turboattn ppl` of PPL_RUNS on the GPL-3 text. Writes results/ (committed).
#
# Environment (experiments/common.sh): TA (a turboattn binary; default: build it), BUILD_DIR
# (default build-sweep), LAYERS (default 0-29:6), POSITIONS (default 24), WINDOW (ppl tokens,
# default 512), SKIP_PPL=1 to skip the model level.
LAYERS=${LAYERS:-0-29:6}
source "$(dirname "$0")/../common.sh"
"$TA" -q calibrate --data datasets/data/smollm2_calib.h5 -o "$OUT/bits_map.json"
study_sweep --phases decode --bits-map "$OUT/bits_map.json"

# Model level of the configs experiments/error_budget does not run (its ppl files complete this).
KNOBS="v_axis=token,kv_scale=token,s2_step=float,sink=1,block=32"
PPL_RUNS=(
  "int8kv|int8kv|"
  "fp8|fp8|"
  "sage|sage|k_smooth=mean"
  "flashq8|flashq|kv_bits=8"
  "flashq_mixed|flashq|kv_bits=mixed"
  "flashq_knobs_mixed|flashq|kv_bits=mixed,$KNOBS"
  "kivi4_r128|kivi|kv_bits=4,residual=128"
)
for r in "${PPL_RUNS[@]}"; do study_ppl "$r"; done
# Model-level rows: this folder's PPL_RUNS and experiments/error_budget's (same text and window).
python3 experiments/summarize.py "$OUT/results.csv" --ppl "$OUT/ppl" experiments/error_budget/results/ppl -o "$OUT" \
  --title "decode error vs KV bytes, SmolLM2-135M (layers $LAYERS)"
