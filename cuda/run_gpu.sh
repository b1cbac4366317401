#!/usr/bin/env bash
# One command on the GPU machine: build the cuda backend (sm_90), run the GoogleTest suite and the
# bit-exactness report against the CPU reference, then time prefill/decode against PyTorch SDPA.
#   OUT=/some/dir cuda/run_gpu.sh          (the device tool sets OUT)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/turbo_gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/card.txt"
# The project's own CMake, without datasets/ + eval/ (HDF5, CLI11) and the Google Benchmark
# programs, which the GPU machine need not have: core + reference + cuda and their tests.
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DTURBO_ENABLE_CUDA=ON -DTURBO_BUILD_EVAL=OFF -DTURBO_BUILD_BENCHMARKS=OFF -DTURBO_BUILD_TESTS=ON \
  >"$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build-gpu --target cuda_validate cuda_backend_test cuda_oracle_test -j16 >"$OUT/build.log" 2>&1 \
  || { grep -E "error|Error" "$OUT/build.log" | head -30; exit 1; }
gt=skipped
va=skipped
orc=skipped
if [ "${SKIP_MAIN:-0}" != 1 ]; then
echo "== gtest (cuda vs ref, small case list)"
./build-gpu/cuda/cuda_backend_test >"$OUT/gtest.log" 2>&1
gt=$?
grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure|mismatch" "$OUT/gtest.log" | head -20
echo "== cuda_validate (full case list + benchmark shapes checked against ref)"
./build-gpu/cuda/cuda_validate --bench "$OUT/ours.csv" >"$OUT/validate.log" 2>&1
va=$?
grep -E "^FAIL" "$OUT/validate.log" | cut -c1-300 | head -20
grep -E "^\||^validation|^prefill|^decode|^device|cuda_validate" "$OUT/validate.log"
echo "== independent SPEC oracle (reference/oracle_test.cpp) against the cuda backend"
TURBO_ORACLE_BACKEND=cuda ./build-gpu/cuda/cuda_oracle_test >"$OUT/oracle_cuda.log" 2>&1
orc=$?
grep -E "^\[  (PASSED|FAILED) |Failure" "$OUT/oracle_cuda.log" | head -20
echo "== SDPA on the same card"
python3 cuda/bench_sdpa.py --ours "$OUT/ours.csv" --out "$OUT/bench_table.md"
fi
if [ "${TUNE:-0}" = 1 ]; then
  echo "== tuning: MMA rows loop rolled (0) or unrolled (1), decode splits"
  TURBO_MMA_UNROLL_ROWS=1 ./build-gpu/cuda/cuda_validate >"$OUT/validate_unroll1.log" 2>&1
  echo "unroll_rows=1 $(grep -E '^validation' "$OUT/validate_unroll1.log") $(grep -c '^FAIL' "$OUT/validate_unroll1.log") FAIL lines"
  for u in 0 1; do
    TURBO_MMA_UNROLL_ROWS=$u ./build-gpu/cuda/cuda_validate --skip-validate --no-check --bench "$OUT/tune_mma.csv" \
      2>&1 | grep -E "^prefill" | sed "s/^/unroll_rows=$u /"
  done
  for sp in ${TUNE_SPLITS:-32 64}; do
    TURBO_BENCH_SPLITS=$sp ./build-gpu/cuda/cuda_validate --skip-validate --no-check --bench "$OUT/tune_sp.csv" \
      2>&1 | grep -E "^decode" | cut -c1-110
  done
fi
if [ "${PROFILE:-0}" = 1 ]; then
  echo "== ncu (one prefill D=128 H=16, one decode L=32k)"
  ncu --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    -k regex:"MmaPrefill|RowsKernel|MergeKernel|Stage1Kernel|TransposeV" --launch-skip 0 --launch-count 12 \
    ./build-gpu/cuda/cuda_validate --profile >"$OUT/ncu.txt" 2>&1
  grep -E "MmaPrefill|RowsKernel|MergeKernel|Stage1Kernel|TransposeV|Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Stall|Warp Cycles Per Issued" "$OUT/ncu.txt" | head -120
fi
if [ "${STALLS:-0}" = 1 ]; then
  echo "== ncu stall reasons and pipe use of one MMA prefill launch (D=128 H=16)"
  ncu -k regex:MmaPrefill --launch-count 1 \
    --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio,regex:sm__inst_executed_pipe_.*.sum,smsp__inst_executed.sum,sm__cycles_elapsed.max \
    ./build-gpu/cuda/cuda_validate --profile >"$OUT/stalls.txt" 2>&1
  grep -E "ratio|sum|max" "$OUT/stalls.txt" | awk '$NF != "0" && $NF != "0.00"' | sort -k3 -g -r | head -40
  cuobjdump -sass build-gpu/cuda/CMakeFiles/turbo_cuda.dir/flashq_mma.cu.o >"$OUT/mma.sass" 2>&1
  echo "-- SASS opcode histogram of MmaPrefillKernel<128, 3> (static)"
  awk '/Function : .*MmaPrefillKernelILi128ELi3E/{f=1;next} /Function :/{f=0} f' "$OUT/mma.sass" \
    | grep -oE "^ +/\*[0-9a-f]{4}\*/ +(@!?U?P[0-9T] +)?[A-Z0-9_]+" | awk '{print $NF}' | sort | uniq -c | sort -rn | head -30
fi
echo "gtest rc=$gt validate rc=$va oracle rc=$orc"
