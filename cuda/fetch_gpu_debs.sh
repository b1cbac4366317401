#!/usr/bin/env bash
# Run on a Debian 12 (bookworm, amd64) machine with the Debian registry reachable, NOT on the GPU
# machine: downloads the .deb files that the `turboattn` CLI build (datasets/ + eval/) needs and the
# GPU machine lacks (HDF5 headers and libraries, CLI11, nlohmann-json) into a folder that travels
# with the working tree to the GPU machine, where cuda/cli_gpu.sh unpacks them into a private
# prefix (never into /). Nothing is installed here.
#
#   cuda/fetch_gpu_debs.sh [DEST]      # DEST defaults to .gpudebs/ at the repository root
#
# Dependencies are resolved by what the libraries actually link, not by the packages' Depends
# (libhdf5-dev alone would pull in Fortran, libjpeg, libssl-dev, libcurl-dev, ...): the packages
# below are unpacked into a scratch folder, the NEEDED entries of every shared library in it are
# read, and each soname that the scratch folder does not provide and that is not part of the
# compiler runtime or glibc (present on every machine that has a C++ compiler) is mapped to its
# Debian package through this machine's dpkg database (the libraries are installed here by
# .ci/install-deps.sh), until nothing is missing. The folder gets a MANIFEST (package, version,
# SHA-256). Idempotent: the folder is rebuilt from scratch each time.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.gpudebs}
LIMIT_MB=${LIMIT_MB:-15}
# The build needs the headers and link symlinks (-dev) and the runtime libraries they point to.
ROOTS=(libhdf5-dev libhdf5-103-1 libhdf5-cpp-103-1 libcli11-dev nlohmann-json3-dev)
# glibc, the dynamic loader and the GCC runtime: the GPU machine's own (newer) ones are used.
BASE_RE='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|libmvec|ld-linux-x86-64|libstdc\+\+|libgcc_s|libgomp|libatomic)\.so'

[ "$(dpkg --print-architecture)" = amd64 ] || { echo "fetch_gpu_debs: needs an amd64 Debian" >&2; exit 1; }
command -v readelf >/dev/null || { echo "fetch_gpu_debs: readelf (binutils) is missing" >&2; exit 1; }

rm -rf "$DEST"
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

declare -A have=()
todo=("${ROOTS[@]}")
while ((${#todo[@]})); do
  (cd "$DEST" && apt-get download -q "${todo[@]}" 2>&1 | grep -vE "^(Get:|Fetched|W: Download is performed unsandboxed)" || true)
  for p in "${todo[@]}"; do have[$p]=1; done
  for f in "$DEST"/*.deb; do dpkg -x "$f" "$SCRATCH"; done
  # Sonames the unpacked tree provides, and those its shared libraries need.
  provided=$(find "$SCRATCH" \( -type f -o -type l \) -name '*.so*' -printf '%f\n' | sort -u)
  needed=$(find "$SCRATCH" -type f -name '*.so*' -exec readelf -d {} + 2>/dev/null |
           sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u)
  todo=()
  for so in $needed; do
    grep -qxF "$so" <<<"$provided" && continue
    [[ $so =~ $BASE_RE ]] && continue
    pkg=$(dpkg -S "*/$so" 2>/dev/null | head -1 | cut -d: -f1) || true
    [ -n "$pkg" ] || { echo "fetch_gpu_debs: no installed package provides $so" >&2; exit 1; }
    [ -n "${have[$pkg]:-}" ] && continue
    case " ${todo[*]:-} " in *" $pkg "*) ;; *) todo+=("$pkg") ;; esac
  done
  ((${#todo[@]})) && echo "fetch_gpu_debs: libraries need ${todo[*]}"
done

(cd "$DEST" && for f in *.deb; do
   printf '%s %s %s\n' "$(dpkg-deb -f "$f" Package)" "$(dpkg-deb -f "$f" Version)" \
     "$(sha256sum "$f" | cut -d' ' -f1)"
 done) >"$DEST/MANIFEST"
size_kb=$(du -sk "$DEST" | cut -f1)
echo "fetch_gpu_debs: $(ls "$DEST"/*.deb | wc -l) packages, $((size_kb / 1024)) MB in $DEST"
cat "$DEST/MANIFEST"
if ((size_kb > LIMIT_MB * 1024)); then
  echo "fetch_gpu_debs: $DEST is over ${LIMIT_MB} MB" >&2
  exit 1
fi
