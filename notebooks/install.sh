#!/usr/bin/env bash
# Installs notebooks/requirements.txt (pinned, from PyPI) into the python3 on PATH, once:
# packages already at their pinned version are not fetched again. Used by the main job
# (experiments/default_sweep/run.sh) for the figures and by the tests for the notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
missing=()
while read -r spec; do
  [[ -z "$spec" || "$spec" == \#* ]] && continue
  name="${spec%%==*}"; want="${spec##*==}"
  have="$("$PYTHON" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)"
  [[ "$have" == "$want" ]] || missing+=("$spec")
done < notebooks/requirements.txt
if ((${#missing[@]})); then
  echo "notebooks/install.sh: installing ${missing[*]}"
  # Debian's python3 is "externally managed" (PEP 668): then --break-system-packages, which
  # installs beside (not over) the Debian packages.
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "${missing[@]}" 2>/dev/null ||
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --break-system-packages \
      "${missing[@]}"
fi
