#!/usr/bin/env bash
# The GPU-run scripts' handling of bad arguments, without a GPU (ctest gpu_scripts): pack_cli.sh
# refuses a folder it did not make and bad arguments, and packs without the C library's parts;
# cli_gpu.sh refuses a CLI_BIN that is not an executable or comes without CLI_LIBS; run_gpu.sh
# refuses a PREBUILT folder without the programs. Every refusal must name the problem. And
# result_targets.py, which judges a result file against issue 7's targets.
set -uo pipefail
cd "$(dirname "$0")/.."
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
expect() {  # expect <want rc> <message part> <command...>
  local want=$1 msg=$2
  shift 2
  "$@" >"$T/out" 2>&1
  local rc=$?
  if [ "$rc" != "$want" ] || ! grep -qF -- "$msg" "$T/out"; then
    echo "FAIL: $* -> rc $rc (want $want), output:"; cat "$T/out"; echo "(wanted: $msg)"
    fails=$((fails + 1))
  else
    echo "ok: $*"
  fi
}
BIN=$(command -v ls)
mkdir -p "$T/foreign"; echo keep >"$T/foreign/data"; echo keep >"$T/plain"
expect 2 "not made by pack_cli.sh" bash cuda/pack_cli.sh "$BIN" "$T/foreign"
expect 2 "not made by pack_cli.sh" bash cuda/pack_cli.sh "$BIN" "$T/plain"
[ "$(cat "$T/foreign/data")" = keep ] && [ "$(cat "$T/plain")" = keep ] ||
  { echo "FAIL: pack_cli.sh changed a folder or file it refused"; fails=$((fails + 1)); }
expect 2 "is not an executable" bash cuda/pack_cli.sh "$T/none" "$T/p1"
expect 1 "usage" bash cuda/pack_cli.sh
expect 0 "libraries" bash cuda/pack_cli.sh "$BIN" "$T/pack"
expect 0 "libraries" bash cuda/pack_cli.sh "$BIN" "$T/pack"  # its own folder: repacked
[ -x "$T/pack/turboattn" ] || { echo "FAIL: no packed binary"; fails=$((fails + 1)); }
if ls "$T/pack/lib" | grep -qE '^(libc|libm|ld-linux)[.-]'; then
  echo "FAIL: the C library was packed: $(ls "$T/pack/lib")"; fails=$((fails + 1))
fi
expect 2 "is not an executable" env CLI_BIN="$T/none" CLI_LIBS="$T/pack/lib" LOG="$T/log" \
  bash cuda/cli_gpu.sh
expect 2 "needs CLI_LIBS" env CLI_BIN="$T/pack/turboattn" CLI_LIBS="$T/none" LOG="$T/log" \
  bash cuda/cli_gpu.sh
expect 1 "has no cuda_validate" env PREBUILT="$T/pack" OUT="$T/out_dir" LOG="$T/log" \
  bash cuda/run_gpu.sh
# result_targets.py: issue 7's targets judged on a committed result file, the reason taken from a
# real ncu log of the decode kernel (cuda/testdata, an H200 run); 3x / (0.0648 / 0.0834) = 3.86.
R=cuda/results/2026-12-02_NVIDIA_H200.json
NCU=decode=cuda/testdata/ncu_decode_h200.txt
expect 0 "| decode 4-bit B=1 L=32k: >= 3x faster than the best SDPA backend | ours 0.0834 ms, best SDPA 0.0648 ms: 0.78x | no | 3.86x | latency-bound (profile \`decode\`) |" \
  python3 cuda/result_targets.py "$R" --ncu "$NCU"
expect 0 "| quantize_stage1 [32, 16384, 128]: >= 70% of copy | 0.0686 ms, 2965 GB/s = 70% | yes | - | - |" \
  python3 cuda/result_targets.py "$R" --ncu "$NCU"
expect 0 "DRAM 8.7% of peak; issue slots 38% busy (IPC 1.74 of 4); 8.97 cycles between a warp's instructions" \
  python3 cuda/result_targets.py "$R" --ncu "$NCU"
expect 0 "largest stalls per issued instruction: wait 2.25, barrier 1.73, no instruction 1.07, short scoreboard 0.83" \
  python3 cuda/result_targets.py "$R" --ncu "$NCU"
expect 0 "| ours 9.15 ms, cuDNN 3.59, flash 6.65: 0.39x / 0.73x | no | 2.75x | not profiled in this run |" \
  python3 cuda/result_targets.py "$R" --ncu "$NCU"
# ncu prints a duration in the unit its size calls for: the prefill kernel's in ms (8.91 ms).
expect 0 "one launch of MmaPrefillKernel<128, 1, 0>(MmaParams, const signed char *, int, const unsigned char *) (256, 32, 1)x(128, 1, 1); 8.91 ms; DRAM 0.8% of peak" \
  python3 cuda/result_targets.py "$R" --ncu prefill=cuda/testdata/ncu_prefill_h200.txt
cp "$R" "$T/r.json"; printf '# head\n\ntable\n' >"$T/r.md"
expect 0 "latency-bound (profile" python3 cuda/result_targets.py "$T/r.json" --ncu "$NCU" --write
grep -q '"targets"' "$T/r.json" && head -3 "$T/r.md" | grep -q table && grep -q "^- \`decode\`: latency-bound" "$T/r.md" ||
  { echo "FAIL: --write did not update the JSON and the Markdown"; fails=$((fails + 1)); }
: >"$T/empty.txt"; echo '{"rows": [' >"$T/broken.json"
expect 0 "no kernel launch in it" python3 cuda/result_targets.py "$R" --ncu "decode=$T/empty.txt"
expect 1 "broken.json" python3 cuda/result_targets.py "$T/broken.json"
expect 1 "none.json" python3 cuda/result_targets.py "$T/none.json"
expect 1 "Is a directory" python3 cuda/result_targets.py "$T"
expect 0 "Is a directory" python3 cuda/result_targets.py "$R" --ncu "decode=$T"
cp "$R" "$T/lone.json"; cp "$T/lone.json" "$T/lone.before"
expect 1 "lone.md" python3 cuda/result_targets.py "$T/lone.json" --ncu "$NCU" --write
cmp -s "$T/lone.json" "$T/lone.before" ||
  { echo "FAIL: --write changed the JSON although its .md was missing"; fails=$((fails + 1)); }
expect 1 "needs a result file named *.json" python3 cuda/result_targets.py "$T/lone.before" --write
[ "$fails" = 0 ] && echo "gpu_scripts: all passed" || { echo "gpu_scripts: $fails failed"; exit 1; }
