#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build of every C++ test and tool (TURBO_SANITIZE=ON:
# -fsanitize=address,undefined -fno-sanitize-recover; CPU only, no benchmarks) in build-asan/,
# then ctest under it. Run by .ci/test.sh after the normal build; any sanitizer report fails the
# run. Left out, with the reason:
#   notebooks_execute, datasets_h5py_schema
#       Python only (the notebooks on committed CSVs; plain h5py on the embedded files): no code of
#       ours that a sanitizer could instrument.
#   label optin
#       opt-in everywhere (llama.cpp / transformers venvs; not in CI at all).
#   the whole-model runs: ModelTest.Forward*/ChunkedForward*, EmbeddedData.Reproducible*,
#   Capture.Deterministic*, the Ppl tests that score a window, datasets_forward_oracle
#       each is one or more full forward passes of SmolLM2-135M or Gemma 3 270M (Eigen matmuls,
#       3-10x slower under ASan), which would take CI past its 90 minutes. The same code paths run
#       under ASan on short windows: the model's loading, tokenizer and error paths (GgufModel,
#       Tokenizer, LlamaModelErrors, the capture and ppl cases of the bad-input campaign), the
#       HDF5 writer and reader (Activations, Capture.BadInputs*, Capture.FullDisk*), ppl's
#       argument and I/O paths (Ppl.BadRuns, Ppl.BadOptions, Ppl.FullDisk*).
# Everything else runs: every other unit test, the bad-input campaign (eval_bad_inputs), the GGUF,
# tokenizer and KIVI oracles (Python drives our sanitized tools there).
#   bash .ci/sanitize.sh            # after .ci/install-deps.sh and datasets/fetch_models.sh
# CCACHE=1 uses ccache when installed (developers; CI builds cold).
set -euo pipefail
cd "$(dirname "$0")/.."
launcher=()
if [ "${CCACHE:-0}" = 1 ] && command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTURBO_SANITIZE=ON \
  -DTURBO_ENABLE_CUDA=OFF -DTURBO_BUILD_BENCHMARKS=OFF -DTURBO_BUILD_TESTS=ON \
  "${launcher[@]}" >/dev/null
cmake --build build-asan -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# HDF5's own leaks on corrupt-file and full-disk paths (the reason is in the file)
export LSAN_OPTIONS=suppressions=$PWD/.ci/lsan.supp:print_suppressions=0
python_only='^(notebooks_execute|datasets_h5py_schema)$'
whole_model='^(datasets_forward_oracle|ModelTest\.(Forward.*|ChunkedForward.*)|EmbeddedData\.Reproducible.*'
whole_model+='|Capture\.Deterministic.*|Ppl\.(ReferenceAgainstItself|Fp16Floor|Gemma3ByItsModelName'
whole_model+='|SeveralMethods|RunsWithTheirOwnKnobs|KvBytesMatchTheSweep|BitMapDrivesMixedDecode).*)$'
ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -LE optin \
  -E "$python_only|$whole_model"
