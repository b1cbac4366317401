#!/usr/bin/env bash
# Error budget of FlashQ decode against KIVI (README "Results"; this folder's README has the
# conclusions). Operator level: `turboattn sweep` of grid.txt (decode phase) over the embedded
# SmolLM2-135M activations; model level: `turboattn ppl` of the configs in PPL_RUNS below on the
# GPL-3 text (as experiments/model_ppl). Writes results/ (committed) and prints the summary.
#
# Environment: TA (a turboattn binary; default: build it), BUILD_DIR (default build-sweep),
# LAYERS (default 0-29:6), POSITIONS (decode positions sampled per layer, default 24), WINDOW (ppl
# tokens, default 512), SKIP_PPL=1 to skip the model level.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=experiments/error_budget
OUT=$HERE/results
BUILD_DIR=${BUILD_DIR:-build-sweep}
LAYERS=${LAYERS:-0-29:6}
POSITIONS=${POSITIONS:-24}
WINDOW=${WINDOW:-512}
TEXT=${TEXT:-/usr/share/common-licenses/GPL-3}

TA=${TA:-$(BUILD_DIR="$BUILD_DIR" bash experiments/build_turboattn.sh)}  # TA=/path/to/turboattn: a binary built elsewhere
mkdir -p "$OUT/ppl"

"$TA" -q sweep --data datasets/data/smollm2_eval.h5 --grid "$HERE/grid.txt" --phases decode \
  --layers "$LAYERS" --positions "$POSITIONS" --seed 0 --overwrite -o "$OUT/results.csv"

# name | knobs (method first)
BEST="v_axis=token,kv_scale=token,s2_step=float,sink=1,block=32"
PPL_RUNS=(
  "paper4|method=flashq,kv_bits=4"
  "best4|method=flashq,kv_bits=4,$BEST"
  "best4_window|method=flashq,kv_bits=4,$BEST,window=32"
  "paper2|method=flashq,kv_bits=2"
  "best2|method=flashq,kv_bits=2,$BEST"
  "kivi4|method=kivi,kv_bits=4"
  "kivi2|method=kivi,kv_bits=2"
)
if [[ "${SKIP_PPL:-0}" != 1 ]]; then
  bash datasets/fetch_models.sh >/dev/null
  for r in "${PPL_RUNS[@]}"; do
    IFS='|' read -r name knobs <<<"$r"
    method=${knobs%%,*}; method=${method#method=}
    rest=${knobs#method=$method}; rest=${rest#,}
    args=(ppl --text "$TEXT" --max-tokens "$WINDOW" --method "$method" --phase decode
          --json "$OUT/ppl/$name.json")
    [ -n "$rest" ] && args+=(--config "$rest")
    echo "[$name] turboattn ${args[*]}"
    "$TA" -q "${args[@]}" >/dev/null
  done
fi
python3 experiments/summarize.py "$OUT/results.csv" --ppl "$OUT/ppl" -o "$OUT"
