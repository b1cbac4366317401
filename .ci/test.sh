#!/usr/bin/env bash
# The README's test command: set up, build, run every test (ctest). Used verbatim by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
bash datasets/fetch_models.sh
bash notebooks/install.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTURBO_BUILD_TESTS=ON -DTURBO_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" -LE optin
# The Python package (eval/python): a pinned venv kept in the model cache (reused), `pip install .`,
# then its tests; pytest's summary is the last line.
PY="$(bash eval/python/setup_env.sh | tee /dev/stderr | tail -1)"
TURBOATTN_EXE="$PWD/build/eval/turboattn" TURBO_REQUIRE_CLI=1 "$PY" -m pytest eval/python/tests -q
# The C++ tests and tools again under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/,
# CPU only; what is left out and why: .ci/sanitize.sh).
bash .ci/sanitize.sh
