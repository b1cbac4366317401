#!/usr/bin/env bash
# The GPU-run scripts' handling of bad arguments, without a GPU (ctest gpu_scripts): pack_cli.sh
# refuses a folder it did not make and bad arguments, and packs without the C library's parts;
# cli_gpu.sh refuses a CLI_BIN that is not an executable or comes without CLI_LIBS; run_gpu.sh
# refuses a PREBUILT folder without the programs. Every refusal must name the problem.
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
[ "$fails" = 0 ] && echo "gpu_scripts: all passed" || { echo "gpu_scripts: $fails failed"; exit 1; }
