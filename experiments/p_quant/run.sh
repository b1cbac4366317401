#!/usr/bin/env bash
# P quantization (u8, s8, u8_row, fp16) in FlashQ decode over the embedded SmolLM2
# activations; writes results/ (committed). Environment: TA, BUILD_DIR, LAYERS (default 0-29:10),
# POSITIONS (default 24).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build-sweep}
if [ -z "${TA:-}" ]; then  # TA=/path/to/turboattn uses a binary built elsewhere
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTURBO_ENABLE_CUDA=OFF \
    -DTURBO_BUILD_TESTS=OFF -DTURBO_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "$BUILD_DIR" --target turboattn -j"$(nproc)" >/dev/null
  TA="$ROOT/$BUILD_DIR/eval/turboattn"
fi
HERE=experiments/p_quant
OUT=$HERE/results
mkdir -p "$OUT"
"$TA" -q sweep --data datasets/data/smollm2_eval.h5 --grid "$HERE/grid.txt" --phases decode \
  --layers "${LAYERS:-0-29:10}" --positions "${POSITIONS:-24}" --seed 0 --overwrite -o "$OUT/results.csv"
python3 experiments/summarize.py "$OUT/results.csv" -o "$OUT" --title "p_quant, SmolLM2-135M"
