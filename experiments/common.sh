# Sourced first by the study scripts (experiments/<study>/run.sh). It sets strict mode, moves to
# the repository root and defines
#   HERE       experiments/<study>;   OUT  $HERE/results (created)
#   TA         the turboattn binary: $TA when set (a binary built elsewhere), else the one
#              experiments/build_turboattn.sh builds in ${BUILD_DIR:-build-sweep}
#   LAYERS     sweep layers (default 0-29:10);  POSITIONS  decode positions per layer (default 24)
#   WINDOW     ppl window in tokens (default 512);  TEXT  the ppl text (default the GPL-3 text)
# (a study sets its own defaults by assigning these before sourcing) and two steps:
#   study_sweep ARGS...           `turboattn sweep` of $HERE/grid.txt over the embedded SmolLM2
#                                 eval activations with LAYERS, POSITIONS and seed 0, writing
#                                 $OUT/results.csv; ARGS add options (--phases, --calib, ...)
#   study_ppl NAME|METHOD|KNOBS   one `turboattn ppl` decode run of the first WINDOW tokens of
#                                 TEXT, to $OUT/ppl/NAME.json (knobs with kv_bits=mixed take
#                                 $OUT/bits_map.json); skipped when SKIP_PPL=1
set -euo pipefail
HERE=experiments/$(basename "$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=$HERE/results
BUILD_DIR=${BUILD_DIR:-build-sweep}
LAYERS=${LAYERS:-0-29:10}
POSITIONS=${POSITIONS:-24}
WINDOW=${WINDOW:-512}
TEXT=${TEXT:-/usr/share/common-licenses/GPL-3}
TA=${TA:-$(BUILD_DIR="$BUILD_DIR" bash experiments/build_turboattn.sh)}
mkdir -p "$OUT"

study_sweep() {
  "$TA" -q sweep --data datasets/data/smollm2_eval.h5 --grid "$HERE/grid.txt" \
    --layers "$LAYERS" --positions "$POSITIONS" --seed 0 --overwrite -o "$OUT/results.csv" "$@"
}

study_ppl() {
  [[ "${SKIP_PPL:-0}" == 1 ]] && return 0
  local name method knobs
  IFS='|' read -r name method knobs <<<"$1"
  if [[ -z "${_study_models:-}" ]]; then
    bash datasets/fetch_models.sh >/dev/null
    _study_models=1
    mkdir -p "$OUT/ppl"
  fi
  local args=(ppl --text "$TEXT" --max-tokens "$WINDOW" --method "$method" --phase decode
              --json "$OUT/ppl/$name.json")
  [ -n "$knobs" ] && args+=(--config "$knobs")
  [[ "$knobs" == *mixed* ]] && args+=(--bits-map "$OUT/bits_map.json")
  echo "[$name] turboattn ${args[*]}"
  "$TA" -q "${args[@]}" >/dev/null
}
