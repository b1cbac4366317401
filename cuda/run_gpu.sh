#!/usr/bin/env bash
# One command on the GPU machine: build the cuda backend (sm_90), run the GoogleTest suite and the
# bit-exactness report against the CPU reference, then time prefill/decode against PyTorch SDPA.
#   OUT=/some/dir cuda/run_gpu.sh          (the device tool sets OUT)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/turbo_gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/card.txt"
cmake -S cuda/gpu_build -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  >"$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build-gpu --target cuda_validate cuda_backend_test -j16 >"$OUT/build.log" 2>&1 \
  || { grep -E "error|Error" "$OUT/build.log" | head -30; exit 1; }
echo "== gtest (cuda vs ref, small case list)"
./build-gpu/cuda/cuda_backend_test >"$OUT/gtest.log" 2>&1
gt=$?
grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure|mismatch" "$OUT/gtest.log" | head -20
echo "== cuda_validate (full case list + benchmark shapes checked against ref)"
./build-gpu/cuda/cuda_validate --bench "$OUT/ours.csv" >"$OUT/validate.log" 2>&1
va=$?
grep -E "^FAIL" "$OUT/validate.log" | cut -c1-300 | head -20
grep -E "^\||^validation|^prefill|^decode|^device|cuda_validate" "$OUT/validate.log"
echo "== SDPA on the same card"
python3 cuda/bench_sdpa.py --ours "$OUT/ours.csv" --out "$OUT/bench_table.md"
if [ "${TUNE:-0}" = 1 ]; then
  echo "== tuning: MMA register budget (3 vs 4 CTAs/SM), decode splits"
  for mb in 3 4; do
    TURBO_MMA_BLOCKS=$mb ./build-gpu/cuda/cuda_validate --skip-validate --no-check --bench "$OUT/tune_mb$mb.csv" \
      2>&1 | grep -E "^prefill" | sed "s/^/blocks=$mb /"
  done
  for sp in 16 32 64 128 256; do
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
echo "gtest rc=$gt validate rc=$va"
