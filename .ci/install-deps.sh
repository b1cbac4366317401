#!/usr/bin/env bash
# Installs turboattn's build and test dependencies from Debian packages. Idempotent: packages
# already present are not fetched again, and `apt-get update` runs only when something is missing.
set -euo pipefail

PKGS=(cmake g++ make libeigen3-dev libomp-dev libcli11-dev libgtest-dev libgmock-dev
      libbenchmark-dev libhdf5-dev nlohmann-json3-dev python3-pip python3-venv python3-dev)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[turboattn] installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[turboattn] Debian packages present"
fi
