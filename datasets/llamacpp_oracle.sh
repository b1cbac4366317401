#!/usr/bin/env bash
# Opt-in llama.cpp oracle (ctest label "optin"): installs llama-cpp-python (pinned, built from
# source: slow) into a venv in the cache folder once, then runs llamacpp_oracle.py.
#   bash datasets/llamacpp_oracle.sh <datasets_oracle_tool> <workdir> [extra args]
set -euo pipefail
TOOL="$1"; WORK="$2"; shift 2
CACHE="${TURBO_CACHE:-$HOME/.cache/turboattn}"
VENV="$CACHE/llamacpp-venv"
PIN="llama-cpp-python==0.3.36"
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '${PIN##*==}')" 2>/dev/null; then
  echo "llamacpp_oracle.sh: building $PIN into $VENV (several minutes)"
  python3 -m venv --system-site-packages "$VENV"
  CMAKE_ARGS="-DLLAVA_BUILD=OFF" "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PIN" ||
    { echo "llamacpp_oracle.sh: error: pip could not build $PIN (offline?)" >&2; exit 1; }
fi
exec "$VENV/bin/python" "$(dirname "$0")/llamacpp_oracle.py" --tool "$TOOL" --workdir "$WORK" "$@"
