#!/usr/bin/env bash
# Pareto front of decode error vs KV bytes per token for every method (this folder's README has
# the conclusions). Operator level: `turboattn sweep` of grid.txt (decode) over the embedded
# SmolLM2-135M activations, bytes averaged over every decode position (SPEC 8); model level:
# `turboattn ppl` of PPL_RUNS on the GPL-3 text. Writes results/ (committed).
#
# Environment: TA (a turboattn binary; default: build it), BUILD_DIR (default build-sweep), LAYERS (default 0-29:6), POSITIONS (default 24),
# WINDOW (ppl tokens, default 512), SKIP_PPL=1 to skip the model level.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=experiments/pareto
OUT=$HERE/results
BUILD_DIR=${BUILD_DIR:-build-sweep}
LAYERS=${LAYERS:-0-29:6}
POSITIONS=${POSITIONS:-24}
WINDOW=${WINDOW:-512}
TEXT=${TEXT:-/usr/share/common-licenses/GPL-3}

TA=${TA:-$(BUILD_DIR="$BUILD_DIR" bash experiments/build_turboattn.sh)}  # TA=/path/to/turboattn: a binary built elsewhere
mkdir -p "$OUT/ppl"

"$TA" -q calibrate --data datasets/data/smollm2_calib.h5 -o "$OUT/bits_map.json"
"$TA" -q sweep --data datasets/data/smollm2_eval.h5 --grid "$HERE/grid.txt" --phases decode \
  --bits-map "$OUT/bits_map.json" --layers "$LAYERS" --positions "$POSITIONS" --seed 0 \
  --overwrite -o "$OUT/results.csv"

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
if [[ "${SKIP_PPL:-0}" != 1 ]]; then
  bash datasets/fetch_models.sh >/dev/null
  for r in "${PPL_RUNS[@]}"; do
    IFS='|' read -r name method knobs <<<"$r"
    args=(ppl --text "$TEXT" --max-tokens "$WINDOW" --method "$method" --phase decode
          --json "$OUT/ppl/$name.json")
    [ -n "$knobs" ] && args+=(--config "$knobs")
    [[ "$knobs" == *mixed* ]] && args+=(--bits-map "$OUT/bits_map.json")
    echo "[$name] turboattn ${args[*]}"
    "$TA" -q "${args[@]}" >/dev/null
  done
fi
# Model-level rows: this folder's PPL_RUNS and experiments/error_budget's (same text and window).
python3 experiments/summarize.py "$OUT/results.csv" --ppl "$OUT/ppl" experiments/error_budget/results/ppl -o "$OUT" \
  --title "decode error vs KV bytes, SmolLM2-135M (layers $LAYERS)"
