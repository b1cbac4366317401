#!/usr/bin/env bash
# Error budget of FlashQ decode against KIVI (README "Results"; this folder's README has the
# conclusions). Operator level: `turboattn sweep` of grid.txt (decode phase) over the embedded
# SmolLM2-135M activations; model level: `turboattn ppl` of the configs in PPL_RUNS below on the
# GPL-3 text (as experiments/model_ppl). Writes results/ (committed) and prints the summary.
#
# Environment (experiments/common.sh): TA (a turboattn binary; default: build it), BUILD_DIR
# (default build-sweep), LAYERS (default 0-29:6), POSITIONS (decode positions sampled per layer,
# default 24), WINDOW (ppl tokens, default 512), SKIP_PPL=1 to skip the model level.
LAYERS=${LAYERS:-0-29:6}
source "$(dirname "$0")/../common.sh"
study_sweep --phases decode

# name | method | knobs
BEST="v_axis=token,kv_scale=token,s2_step=float,sink=1,block=32"
PPL_RUNS=(
  "paper4|flashq|kv_bits=4"
  "best4|flashq|kv_bits=4,$BEST"
  "best4_window|flashq|kv_bits=4,$BEST,window=32"
  "paper2|flashq|kv_bits=2"
  "best2|flashq|kv_bits=2,$BEST"
  "kivi4|kivi|kv_bits=4"
  "kivi2|kivi|kv_bits=2"
)
for r in "${PPL_RUNS[@]}"; do study_ppl "$r"; done
python3 experiments/summarize.py "$OUT/results.csv" --ppl "$OUT/ppl" -o "$OUT"
