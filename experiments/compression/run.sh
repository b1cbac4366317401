#!/usr/bin/env bash
# KV compression vs sequence length: the sweep's byte counts (SPEC 8, read at every decode
# position and at the end) for windows of 64 .. 512 tokens of the embedded activations and, from a
# layer-0 capture of LONG tokens of the GPL-3 text, up to LONG (default 2048). Writes results/.
# Environment (experiments/common.sh): TA, BUILD_DIR; LONG (0 skips the capture).
source "$(dirname "$0")/../common.sh"
LONG=${LONG:-2048}
for n in 64 128 256 512; do
  "$TA" -q sweep --data datasets/data/smollm2_eval.h5 --grid "$HERE/grid.txt" --phases decode \
    --layers 0 --tokens "$n" --positions 1 --seed 0 --overwrite -o "$OUT/n$n.csv"
done
if [ "$LONG" -gt 0 ]; then
  bash datasets/fetch_models.sh >/dev/null
  "$TA" -q capture --text /usr/share/common-licenses/GPL-3 --max-tokens "$LONG" --layers 0 \
    --out "$OUT/long.h5" --force
  for n in 1024 $LONG; do
    "$TA" -q sweep --data "$OUT/long.h5" --grid "$HERE/grid.txt" --phases decode \
      --layers 0 --tokens "$n" --positions 1 --seed 0 --overwrite -o "$OUT/n$n.csv"
  done
  rm -f "$OUT/long.h5"
fi
python3 $HERE/plot.py "$OUT" -o "$OUT"
