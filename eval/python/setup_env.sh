#!/usr/bin/env bash
# Creates (or reuses) the Python environment of the turboattn package and its tests, and installs
# the package from this checkout into it. Idempotent: the venv is keyed by the pinned requirements
# below and kept in the model cache, so a second run (another clone included) installs nothing
# but the package itself. Prints the venv's python on the last line.
#
#   bash eval/python/setup_env.sh              # venv + pinned packages + `pip install .`
#   TURBO_CACHE=/some/dir bash ...             # cache folder (default ~/.cache/turboattn)
#   TURBO_PY_CUDA=ON bash ...                  # also build the cuda backend into the extension
#
# PyPI serves no CPU-only torch for Linux x86-64 (every torch wheel there since 1.13 depends on
# nvidia-* CUDA packages): torch==2.15.0 brings its CUDA 13 libraries, 5.6 GB installed. Measured
# on the shared 2-core dev VM under load ~14: a fresh venv 35 min 42 s wall (3 min 33 s CPU; the
# rest is download and unpacking), a second run 36 s (venv reused, package rebuilt if changed).
# The tests run torch on the CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON="${PYTHON:-python3}"
CACHE="${TURBO_CACHE:-$HOME/.cache/turboattn}"
REQS=("numpy==2.4.6" "h5py==3.16.0" "pytest==9.2.0" "nanobind==3.1.0" "scikit-build-core==1.1.2"
      "gguf==0.19.0" "torch==2.15.0" "transformers==5.24.0" "accelerate==1.15.0")
die() { echo "setup_env.sh: error: $*" >&2; exit 1; }

key="$(printf '%s\n' "$("$PYTHON" -c 'import sys; print(sys.version)')" "${REQS[@]}" | sha256sum | cut -c1-12)"
VENV="$CACHE/pyenv-$key"
mkdir -p "$CACHE" || die "cannot create '$CACHE' (set TURBO_CACHE)"
if [[ ! -f "$VENV/.complete" ]]; then
  rm -rf "$VENV"
  echo "setup_env.sh: creating $VENV (${REQS[*]})"
  "$PYTHON" -m venv "$VENV" || die "'$PYTHON -m venv' failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQS[@]}" ||
    die "pip could not install the pinned packages (PyPI must be reachable once)"
  touch "$VENV/.complete"
else
  echo "setup_env.sh: reusing $VENV"
fi

# The package itself, built by CMake in build/python/ (kept: a rebuild compiles what changed).
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation --no-deps \
  -Cbuild-dir="build/python/env-{wheel_tag}" -Ccmake.define.TURBO_ENABLE_CUDA="${TURBO_PY_CUDA:-OFF}" . ||
  die "pip install . failed"
"$VENV/bin/python" -c "import turboattn; print('setup_env.sh: turboattn', turboattn.__version__, 'backends', turboattn.backends())"
echo "$VENV/bin/python"
