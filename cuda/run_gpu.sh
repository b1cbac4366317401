#!/usr/bin/env bash
# One command on a GPU machine: build the cuda backend, check it bit for bit against the CPU
# reference (GoogleTest, cuda_validate's full case list, the independent SPEC oracle), run
# compute-sanitizer memcheck and racecheck, then time ours and PyTorch SDPA (flash, cuDNN,
# efficient) on issue 7's shapes and write the run's result file:
#   $OUT/<date>_<card>.json and .md   (copy them to cuda/results/ to keep them)
#
#   OUT=/some/dir cuda/run_gpu.sh
# Knobs (environment): ARCH (default 90), QUICK=1 (one decode / one prefill shape), SKIP_CHECKS=1
# (no tests / validation / sanitizers), SKIP_SANITIZER=1, PROFILE=1 (ncu of the decode, prefill, compress
# and append kernels: the measured reasons in the result file), TUNE=1 (leave-one-stage-out prefill variants, decode variants),
# PREBUILT=<folder> (cuda_validate, cuda_backend_test, cuda_packed_steps_test, cuda_oracle_test,
# cuda_flashq_bench built elsewhere for this card, libraries in <folder>/lib; TUNE=1 needs the build),
# CLI=0|1 (the turboattn CLI stage; default on when .gpudebs/ exists or CLI_BIN names a prebuilt
# CLI: see cli_gpu.sh),
# BENCH_ONLY=decode|prefill|rates (one part of the benchmark), PROFILE=decode (ncu of the decode kernel only).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/turbo_gpu_out}
LOG=${LOG:-/tmp/turbo_gpu_logs}  # every log; the result files and a few logs are copied to OUT
ARCH=${ARCH:-90}
mkdir -p "$OUT" "$LOG"
START=$(date +%s)
stamp() { echo "[$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$LOG/card.txt"
# The device copy of the checkout may carry a stale .git: write the commit to .commit before a run
# (echo $(git rev-parse --short HEAD) > .commit); else git is asked.
# (COMMIT=<sha> names it outright, e.g. from a file inside a carried folder: a git-ignored .commit
# does not travel.)
COMMIT=${COMMIT:-$(cat .commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)}
SYS_LD=${LD_LIBRARY_PATH-}  # the machine's own, for Python (torch) below
if [ -n "${PREBUILT:-}" ]; then
  # Programs built elsewhere for this card (cuda/pack_cli.sh's note: same architecture, a glibc as
  # new), their libraries (libcudart, libgomp) in $PREBUILT/lib: no build on the device.
  B=$PREBUILT
  [ -x "$B/cuda_validate" ] || { echo "PREBUILT=$B has no cuda_validate"; exit 1; }
  [ -d "$B/lib" ] && export LD_LIBRARY_PATH=$(cd "$B/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  stamp "prebuilt programs in $B"
else
  # The project's own CMake without datasets/ + eval/ (HDF5, CLI11 are not on the GPU machine) and
  # without the Google Benchmark programs: core + reference + cuda and their tests.
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
    -DTURBO_ENABLE_CUDA=ON -DTURBO_BUILD_EVAL=OFF -DTURBO_BUILD_BENCHMARKS=OFF -DTURBO_BUILD_TESTS=ON \
    >"$LOG/cmake.log" 2>&1 || { tail -30 "$LOG/cmake.log"; exit 1; }
  cmake --build build-gpu --target cuda_validate cuda_backend_test cuda_packed_steps_test \
    cuda_oracle_test cuda_flashq_bench \
    -j"$(nproc)" >"$LOG/build.log" 2>&1 || { grep -E "error|Error" "$LOG/build.log" | head -30; exit 1; }
  stamp built
  B=./build-gpu/cuda
fi
gt=skipped va=skipped orc=skipped mc=skipped rc=skipped
if [ "${SKIP_CHECKS:-0}" != 1 ]; then
  $B/cuda_backend_test >"$LOG/gtest.log" 2>&1; gt=$?
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure" "$LOG/gtest.log" | head -10
  $B/cuda_packed_steps_test >"$LOG/packed_test.log" 2>&1; pk=$?
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure|^\[       OK" "$LOG/packed_test.log" | head -10
  [ $gt = 0 ] && gt=$pk
  stamp "gtest rc=$gt (cuda_backend_test, cuda_packed_steps_test)"
  $B/cuda_validate >"$LOG/validate.log" 2>&1; va=$?
  grep -E "^FAIL" "$LOG/validate.log" | cut -c1-300 | head -20
  grep -E "^\||^(PASS|FAIL):" "$LOG/validate.log"
  stamp "validate rc=$va"
  TURBO_ORACLE_BACKEND=cuda $B/cuda_oracle_test >"$LOG/oracle_cuda.log" 2>&1; orc=$?
  grep -E "^\[  (PASSED|FAILED) |Failure" "$LOG/oracle_cuda.log" | head -10
  stamp "oracle rc=$orc"
  if [ "${SKIP_SANITIZER:-0}" != 1 ]; then
    # The small case list covers every kernel (decode kernel, rows, mma, merge, cache, stage 1/2).
    for tool in memcheck racecheck; do
      compute-sanitizer --tool $tool --error-exitcode 9 $B/cuda_validate --small \
        >"$LOG/sanitizer_$tool.log" 2>&1
      code=$?
      summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$LOG/sanitizer_$tool.log" | tail -1)
      eval "${tool:0:1}c=\"rc=$code, ${summary:-no summary}\""
      stamp "$tool: rc=$code $summary"
    done
  fi
fi
$B/cuda_flashq_bench --csv "$LOG/ours.csv" --check ${QUICK:+--quick} \
  ${BENCH_ONLY:+--only $BENCH_ONLY} 2>&1 | tee "$LOG/bench.log" \
  | grep -vE "^  decode"
stamp bench
# The turboattn CLI, built with datasets/ + eval/ against the Debian packages carried in .gpudebs/
# (cuda/fetch_gpu_debs.sh, run where the Debian registry is reachable): `turboattn validate
# --backend cuda` and a short `turboattn bench --backend cuda` (cuda/cli_gpu.sh). On when .gpudebs/
# exists; CLI=0 skips it, CLI=1 insists on it. Its counts go into the result file as cli_validate.
cli=skipped
rm -f "$LOG"/cli_*.log
if [ "${CLI:-$([ -d .gpudebs ] || [ -n "${CLI_BIN:-}" ] && echo 1 || echo 0)}" = 1 ]; then
  LOG="$LOG" ARCH="$ARCH" bash cuda/cli_gpu.sh 2>&1 | tee "$LOG/cli_gpu.log"
  cli=${PIPESTATUS[0]}
  stamp "cli rc=$cli"
fi
cli_args=()
[ -f "$LOG/cli_validate.log" ] && cli_args+=(--cli-validate "$LOG/cli_validate.log")
[ -f "$LOG/cli_bench.log" ] && cli_args+=(--cli-bench "$LOG/cli_bench.log")
# ncu's instruction-level sections (issue stalls, pipe use) on one launch of one kernel, the
# measured reason of the targets it serves (cuda/result_targets.py reads the log):
# ncu_detail <key> <kernel name regex> <launches to skip> <bench part>
ncu_args=()
ncu_detail() {
  local log="$LOG/ncu_$1.txt"
  ncu --clock-control none --section SpeedOfLight --section ComputeWorkloadAnalysis \
    --section InstructionStats --section Occupancy --section WarpStateStats \
    --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio|sm__inst_executed_pipe_.*\.avg\.pct_of_peak_sustained_active" \
    -k "regex:$2" --launch-skip "$3" --launch-count 1 \
    $B/cuda_flashq_bench --csv /tmp/prof.csv --quick --only "$4" >"$log" 2>&1
  grep -E "$2|Duration|Throughput|Registers|Occupancy|Executed Ipc|Issue Slots|issue_stalled|pipe_|Cycles Per Issued|Executed Instructions|ERR" \
    "$log" | grep -vE " 0(\.0+)?$" | head -80
  ncu_args+=(--ncu "$1=$log")
  stamp "ncu $1"
}
# PROFILE=1: the decode kernel (4-bit, B = 1, L = 32k), the prefill kernel (D = 128, N = 16k,
# causal), the stage-1 quantize kernel, the compress kernel and the append's compression kernel (4-bit); PROFILE=decode: the
# first only. Kernel names can be overridden (NCU_DECODE=regex ...).
case "${PROFILE:-0}" in
  1|decode)
    ncu_detail decode "${NCU_DECODE:-DecodeKernel}" 40 decode
    if [ "$PROFILE" = 1 ]; then
      ncu_detail prefill "${NCU_PREFILL:-MmaPrefillKernel}" 3 prefill
      ncu_detail quantize "${NCU_QUANTIZE:-Stage1Vec8Kernel}" 3 rates
      ncu_detail compress "${NCU_COMPRESS:-CompressChannelKernel}" 3 rates
      ncu_detail append "${NCU_APPEND:-CompressChunkRegisterKernel}" 3 rates
    fi ;;
esac
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '_' | tr -cd 'A-Za-z0-9_-')
NAME="$(date -u +%Y-%m-%d)_${CARD}"
ORACLE=$(grep -E "^\[  (PASSED|FAILED) " "$LOG/oracle_cuda.log" 2>/dev/null | tr '\n' ' ')
LD_LIBRARY_PATH="$SYS_LD" PYTHONUNBUFFERED=1 python3 cuda/bench_sdpa.py --ours "$LOG/ours.csv" --validate "$LOG/validate.log" \
  --json "$OUT/$NAME.json" --md "$OUT/$NAME.md" --commit "$COMMIT" --command "cuda/run_gpu.sh" \
  --oracle "rc=$orc ${ORACLE}" --sanitizer "memcheck=$mc" --sanitizer "racecheck=$rc" \
  "${cli_args[@]}" "${ncu_args[@]}" >"$LOG/sdpa.log" 2>&1 || tail -20 "$LOG/sdpa.log"
stamp sdpa
if [ "${TUNE:-0}" = 1 ]; then  # prefill and decode variants on the quick shapes (cuda/TUNING.md)
  for v in full cast_convert two_ctas no_qk no_softmax no_pv quant_only; do  # no_*: one stage left out
    TURBO_MMA_VARIANT=$v $B/cuda_flashq_bench --csv /tmp/tune.csv --quick --only prefill 2>&1 \
      | grep -E "^prefill" | sed "s/^/TURBO_MMA_VARIANT=$v: /"
  done
  for v in "TURBO_DECODE_KERNEL=rows" "TURBO_DECODE_CTAS=3" "TURBO_DECODE_CTAS=2"; do
    env $v $B/cuda_flashq_bench --csv /tmp/tune.csv --quick 2>&1 | grep -E "^ *decode" | sed "s/^/$v: /"
  done
  cuobjdump -sass build-gpu/cuda/CMakeFiles/turbo_cuda.dir/flashq_mma.cu.o >"$LOG/mma.sass" 2>&1
  for op in I2F I2FP F2FP HMNMX2 HADD2 LDS.U8 LDSM IMMA FMUL FFMA FADD IADD3 LOP3 PRMT SHF; do
    printf "%s " "$op=$(grep -cE "[[:space:]]$op[[:space:].]" "$LOG/mma.sass")"
  done; echo " (mma SASS, all instances)"
  cuobjdump -sass build-gpu/cuda/CMakeFiles/turbo_cuda.dir/flashq_decode.cu.o >"$LOG/decode.sass" 2>&1
  echo "decode SASS: $(grep -c STL "$LOG/decode.sass") STL, $(grep -c LDL "$LOG/decode.sass") LDL, $(grep -c HMMA "$LOG/decode.sass") HMMA, $(grep -c IMMA "$LOG/decode.sass") IMMA"
fi
cat "$OUT/$NAME.md" 2>/dev/null | cut -c1-400
for f in validate.log bench.log cli_gpu.log; do [ -f "$LOG/$f" ] && cp "$LOG/$f" "$OUT/"; done
[ -f "$LOG/sanitizer_racecheck.log" ] && head -300 "$LOG/sanitizer_racecheck.log" >"$OUT/racecheck_head.log"
ls "$LOG"/ncu_*.txt >/dev/null 2>&1 && tar czf "$OUT/ncu.tgz" -C "$LOG" $(cd "$LOG" && ls ncu_*.txt)
[ -f "$LOG/mma.sass" ] && gzip -c "$LOG/mma.sass" >"$OUT/mma.sass.gz"
echo "gtest rc=$gt validate rc=$va oracle rc=$orc memcheck $mc racecheck $rc cli rc=$cli"
