#!/usr/bin/env bash
# The Python package's GPU tests on a machine with a CUDA device, torch, nanobind and pytest but no
# network (the lent GPU machine): builds the extension with the cuda backend by CMake directly (no
# pip, nothing downloaded), then runs the zero-copy device-path tests
# (tests/test_cuda_device.py) and the CPU tests of the package (tests/test_core.py) against that
# build. Exit status: pytest's (2 when the build fails).
#
#   bash eval/python/gpu_test.sh              # logs in $LOG (default /tmp/turbo_gpu_logs)
#
# Knobs (environment): ARCH (CUDA architectures, default 90), BUILD (build-gpu-py), JOBS (nproc),
# PYTHON (python3: the interpreter that has torch), TESTS (the pytest files, default both above).
set -uo pipefail
cd "$(dirname "$0")/../.."
ARCH=${ARCH:-90}
BUILD=${BUILD:-build-gpu-py}
JOBS=${JOBS:-$(nproc)}
PYTHON=${PYTHON:-python3}
LOG=${LOG:-/tmp/turbo_gpu_logs}
TESTS=${TESTS:-eval/python/tests/test_cuda_device.py eval/python/tests/test_core.py}
mkdir -p "$LOG"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda devices", torch.cuda.device_count())'
cmake -S . -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
  -DTURBO_ENABLE_CUDA=ON -DTURBO_BUILD_PYTHON=ON -DPython_EXECUTABLE="$(command -v "$PYTHON")" \
  -DTURBO_BUILD_EVAL=OFF -DTURBO_BUILD_TESTS=OFF -DTURBO_BUILD_BENCHMARKS=OFF \
  >"$LOG/py_cmake.log" 2>&1 || { tail -30 "$LOG/py_cmake.log"; exit 2; }
cmake --build "$BUILD" --target _core -j"$JOBS" >"$LOG/py_build.log" 2>&1 ||
  { grep -E "error|Error" "$LOG/py_build.log" | head -30; exit 2; }
# A plain CMake build puts the package (sources + extension) in $BUILD/eval/python. With
# pytest-xdist, one worker process: a test that crashes the interpreter is reported as failed
# (with the worker's crash) and the others still run.
xdist=()
"$PYTHON" -c 'import xdist' 2>/dev/null && xdist=(-n 1)
# shellcheck disable=SC2086
PYTHONPATH="$PWD/$BUILD/eval/python" "$PYTHON" -X faulthandler -m pytest -q -rsf \
  -p no:cacheprovider "${xdist[@]}" $TESTS 2>&1 | tee "$LOG/py_pytest.log"
exit "${PIPESTATUS[0]}"
