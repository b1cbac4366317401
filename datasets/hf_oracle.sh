#!/usr/bin/env bash
# Opt-in Hugging Face transformers oracle (ctest label "optin"): installs pinned torch and
# transformers (large: torch from PyPI brings its CUDA libraries) into a venv in the cache folder
# once, then runs hf_oracle.py (Gemma 3 270M by default).
#   bash datasets/hf_oracle.sh <datasets_oracle_tool> <workdir> [extra args]
# PYTHON_HF=<python with torch + transformers> skips the venv.
set -euo pipefail
TOOL="$1"; WORK="$2"; shift 2
CACHE="${TURBO_CACHE:-$HOME/.cache/turboattn}"
VENV="$CACHE/hf-venv"
PINS=("torch==2.15.0" "transformers==5.24.0")
PY="${PYTHON_HF:-$VENV/bin/python}"
if [[ -z "${PYTHON_HF:-}" ]] &&
   ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(not (m.version('torch').startswith('2.15.0') and m.version('transformers') == '5.24.0'))" 2>/dev/null; then
  echo "hf_oracle.sh: installing ${PINS[*]} into $VENV (large download)"
  python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}" ||
    { echo "hf_oracle.sh: error: pip could not install ${PINS[*]} (offline?)" >&2; exit 1; }
fi
exec "$PY" "$(dirname "$0")/hf_oracle.py" --tool "$TOOL" --workdir "$WORK" "$@"
