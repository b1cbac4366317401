#!/usr/bin/env bash
# The main job (README "Two commands"): set up, build `turboattn`, sweep the default grid
# (grid.txt) over the embedded SmolLM2-135M activations, calibrate the mixed-precision bit map on
# the separate calibration split, and write the Markdown report; then the same for the embedded
# Gemma 3 270M activations (out/gemma3-270m/). Everything lands in experiments/default_sweep/out/
# (git-ignored); the last line printed is the report's path (both models, one section each).
#
# Environment overrides: BUILD_DIR (default build-sweep: a CPU-only build of just `turboattn`,
# apart from the test build), THREADS (default: all cores),
# LAYERS (default 0-29:3, every 3rd layer), POSITIONS (decode positions per layer, default 16),
# DATA / CALIB (activation files, default the embedded ones); GEMMA=0 skips Gemma 3, whose
# layers are GEMMA_LAYERS (default 2-17:3: three sliding-window and the three full-attention
# layers 5, 11, 17) of datasets/data/gemma3_{eval,calib}.h5.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
HERE=experiments/default_sweep
OUT=$HERE/out
BUILD_DIR=${BUILD_DIR:-build-sweep}
THREADS=${THREADS:-0}
LAYERS=${LAYERS:-0-29:3}
POSITIONS=${POSITIONS:-16}
DATA=${DATA:-datasets/data/smollm2_eval.h5}
CALIB=${CALIB:-datasets/data/smollm2_calib.h5}

bash .ci/install-deps.sh
bash notebooks/install.sh  # pinned pandas/matplotlib for the figures (PDF, SVG and PNG)
# (No model download: the sweep reads the embedded activations in datasets/data/.)
# The sweep runs the CPU reference backend; no CUDA, tests or benchmarks are needed for it.
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTURBO_ENABLE_CUDA=OFF -DTURBO_BUILD_TESTS=OFF \
  -DTURBO_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$BUILD_DIR" --target turboattn -j"$(nproc)"
TA="$ROOT/$BUILD_DIR/eval/turboattn"

mkdir -p "$OUT"
for f in "$DATA" "$CALIB"; do
  [ -f "$f" ] || { echo "run.sh: missing activation file $f (see datasets/README.md)" >&2; exit 1; }
done

start=$(date +%s)
# sweep_one <eval file> <calibration file> <layers> <output folder>
sweep_one() {
  mkdir -p "$4"
  "$TA" --threads "$THREADS" calibrate --data "$2" -o "$4/bits_map.json"
  "$TA" --threads "$THREADS" sweep --data "$1" --grid "$HERE/grid.txt" --bits-map "$4/bits_map.json" \
    --layers "$3" --positions "$POSITIONS" --seed 0 --overwrite -o "$4/results.csv"
  "$TA" report "$4/results.csv" -o "$4/report.md"
}
sweep_one "$DATA" "$CALIB" "$LAYERS" "$OUT"
if [[ "${GEMMA:-1}" == 1 ]]; then
  sweep_one datasets/data/gemma3_eval.h5 datasets/data/gemma3_calib.h5 "${GEMMA_LAYERS:-2-17:3}" \
    "$OUT/gemma3-270m"
fi
python3 notebooks/sweep_figures.py "$OUT/results.csv" -o "$OUT/figures"
# One report, grouped by model.
{
  echo "# SmolLM2-135M-Instruct ($DATA)"; echo; cat "$OUT/report.md"
  if [[ "${GEMMA:-1}" == 1 ]]; then
    echo; echo "# Gemma 3 270M (datasets/data/gemma3_eval.h5)"; echo; cat "$OUT/gemma3-270m/report.md"
  fi
} >"$OUT/report_all_models.md"
end=$(date +%s)
echo "run.sh: calibrate + sweep + report took $((end - start)) s"
echo "report: $ROOT/$OUT/report_all_models.md"
