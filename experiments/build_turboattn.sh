#!/usr/bin/env bash
# Builds the turboattn CLI for the experiment scripts (CPU only, no tests or benchmarks) in
# ${BUILD_DIR:-build-sweep} and prints its path. Run from the repository root.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build-sweep}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTURBO_ENABLE_CUDA=OFF \
  -DTURBO_BUILD_TESTS=OFF -DTURBO_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$BUILD_DIR" --target turboattn -j"$(nproc)" >/dev/null
echo "$(cd "$BUILD_DIR" && pwd)/eval/turboattn"
