#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build of the host code (TURBO_SANITIZE=ON, CPU
# only) in build-asan/, then the tests that exercise bad input and the I/O paths under it:
# host_test, datasets_test, the eval_test bad-input / merge / report / ppl cases and the
# bad-input campaign (eval/tests/bad_inputs.sh). Any sanitizer report fails the run.
#   bash .ci/sanitize.sh            # after .ci/install-deps.sh and datasets/fetch_models.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTURBO_SANITIZE=ON \
  -DTURBO_ENABLE_CUDA=OFF -DTURBO_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build-asan -j"$(nproc)" --target host_test datasets_test eval_test turboattn
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -j"$(nproc)" \
  -R '^(Json|FileIo|Numbers|Gguf\.|Activations|BadInput|Merge|Report|BitsMap)|eval_bad_inputs'
