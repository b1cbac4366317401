#!/usr/bin/env bash
# Model-level effect of each attention method on SmolLM2-135M-Instruct and Gemma 3 270M:
# perplexity, mean KL(p_ref || p_method) and top-1 agreement of the next-token distributions
# against the same model with exact (FP64) attention, with the method substituted into every
# attention layer.
#
#   bash experiments/model_ppl/run.sh          # writes experiments/model_ppl/out/{*.json,results.md}
#                                              # (SmolLM2) and out/gemma3-270m/ (Gemma 3)
#   MODELS=gemma3-270m bash ...                # one model only
#   TA=/path/to/turboattn bash ...             # a binary built elsewhere (default: build one)
#   ROWS="fp16-decode flashq-prefill" bash ... # only the named rows (default: every row; the
#                                              # table uses every JSON file in the output folder)
#
# Gemma 3's window is GEMMA_WINDOW (default 512) tokens: its sliding-window layers attend over 512
# keys, and a method runs on them only while that window does not bind (datasets/README.md).
#
# Text: the GPL-3 text that ships with Debian, a window of WINDOW tokens (default 1024) whose second
# half is scored. Decode rows build each method's KV cache teacher-forced in chunks of 16 tokens
# (the prompt = the first half), so KV quantization acts; prefill rows run one causal pass.
# The mixed-precision bit map is calibrated on the embedded Apache-2.0 split, never on this text.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
HERE=experiments/model_ppl
OUT=$HERE/out
BUILD_DIR=${BUILD_DIR:-build-sweep}  # CPU-only build of turboattn, shared with default_sweep
WINDOW=${WINDOW:-1024}
TEXT=${TEXT:-/usr/share/common-licenses/GPL-3}

bash .ci/install-deps.sh
bash datasets/fetch_models.sh >/dev/null
TA=${TA:-$(BUILD_DIR="$BUILD_DIR" bash experiments/build_turboattn.sh)}  # TA=/path/to/turboattn: a binary built elsewhere
mkdir -p "$OUT"

# name | method | phase | knobs
RUNS=(
  "fp16-decode|fp16|decode|"
  "int8kv-decode|int8kv|decode|"
  "sage-decode|sage|decode|k_smooth=mean"
  "fp8-decode|fp8|decode|"
  "kivi4-decode|kivi|decode|kv_bits=4"
  "kivi2-decode|kivi|decode|kv_bits=2"
  "flashq8-decode|flashq|decode|kv_bits=8"
  "flashq4-decode|flashq|decode|kv_bits=4"
  "flashq4-vtoken-decode|flashq|decode|kv_bits=4,v_axis=token"
  "flashq4-exact-decode|flashq|decode|kv_bits=4,exp_mode=exact,p_quant=fp16"
  "flashq-mixed-decode|flashq|decode|kv_bits=mixed"
  "flashq2-decode|flashq|decode|kv_bits=2"
  "flashq-prefill|flashq|prefill|"
  "flashq-nr4-prefill|flashq|prefill|n_r=4"
  "flashq-nr8-prefill|flashq|prefill|n_r=8"
  "int8kv-prefill|int8kv|prefill|"
  "sage-prefill|sage|prefill|k_smooth=mean"
  "fp8-prefill|fp8|prefill|"
)
start=$(date +%s)
# model | window | calibration split | output folder
ALL_MODELS=(
  "smollm2-135m|$WINDOW|datasets/data/smollm2_calib.h5|$OUT"
  "gemma3-270m|${GEMMA_WINDOW:-512}|datasets/data/gemma3_calib.h5|$OUT/gemma3-270m"
)
: >"$OUT/results.md.tmp"
for m in "${ALL_MODELS[@]}"; do
  IFS='|' read -r model window calib mout <<<"$m"
  [[ " ${MODELS:-smollm2-135m gemma3-270m} " == *" $model "* ]] || continue
  mkdir -p "$mout"
  "$TA" -q calibrate --data "$calib" -o "$mout/bits_map.json"
  for r in "${RUNS[@]}"; do
    IFS='|' read -r name method phase knobs <<<"$r"
    [[ -z "${ROWS:-}" || " $ROWS " == *" $name "* ]] || continue
    args=(ppl --model "$model" --text "$TEXT" --max-tokens "$window" --method "$method" --phase "$phase"
      --json "$mout/$name.json")
    [ -n "$knobs" ] && args+=(--config "$knobs")
    [[ "$knobs" == *mixed* ]] && args+=(--bits-map "$mout/bits_map.json")
    echo "[$model $name] turboattn ${args[*]}"
    "$TA" -q "${args[@]}" >"$mout/$name.txt"
  done
  { echo "## $model"; echo; python3 "$HERE/table.py" "$mout"; } >>"$OUT/results.md.tmp"
done
mv "$OUT/results.md.tmp" "$OUT/results.md"
echo "model_ppl: $(( $(date +%s) - start )) s; table: $ROOT/$OUT/results.md"
