#!/usr/bin/env bash
# Packs a built `turboattn` CLI with the shared libraries it needs beyond the C library into one
# folder, for a GPU machine that has no HDF5 and cannot install it (cuda/cli_gpu.sh runs it there
# with CLI_BIN=<folder>/turboattn CLI_LIBS=<folder>/lib). Both machines must be x86-64 with a
# glibc at least as new as the build machine's.
#
#   cuda/pack_cli.sh build/eval/turboattn .gpucli      # then carry .gpucli
set -euo pipefail
BIN=${1:?usage: pack_cli.sh <turboattn> <folder>}
DEST=${2:?usage: pack_cli.sh <turboattn> <folder>}
[ -x "$BIN" ] || { echo "pack_cli: $BIN is not an executable" >&2; exit 2; }
# Only a folder this script made (it holds the marker) or an empty one is ever cleared.
if [ -e "$DEST" ] && { [ ! -d "$DEST" ] || { [ ! -e "$DEST/.turbo_pack_cli" ] && [ -n "$(ls -A "$DEST")" ]; }; }; then
  echo "pack_cli: $DEST exists and was not made by pack_cli.sh; not touching it" >&2
  exit 2
fi
rm -rf "$DEST"
mkdir -p "$DEST/lib"
touch "$DEST/.turbo_pack_cli"
strip -o "$DEST/turboattn" "$BIN"
# Every resolved library except the C library's own parts (libc, libm, libdl, libpthread, librt,
# libresolv) and the dynamic loader, which must be the machine's.
ldd "$BIN" | awk '/=> \// {print $3}' |
  grep -vE '/(libc|libm|libdl|libpthread|librt|libresolv|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$DEST/lib/"; done
echo "pack_cli: $(ls "$DEST/lib" | wc -l) libraries, $(du -sh "$DEST" | cut -f1) in $DEST"
