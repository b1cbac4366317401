#!/usr/bin/env bash
# The `turboattn` CLI on a machine that has no HDF5, CLI11 or nlohmann-json and cannot install any
# (the GPU machine): unpacks the Debian packages that cuda/fetch_gpu_debs.sh put in .gpudebs/ into
# a private prefix (dpkg -x, never into /), builds the project with datasets/ + eval/ against that
# prefix alone (HDF5_ROOT, the CLI11 and nlohmann_json package folders; no system copy of either is
# looked at), then runs `turboattn validate --backend cuda` and a short `turboattn bench --backend
# cuda` with the prefix's libraries on LD_LIBRARY_PATH (for those two commands only). Called by
# cuda/run_gpu.sh; runs alone too:
#
#   cuda/cli_gpu.sh                      # logs: $LOG/cli_{cmake,build,validate,bench}.log
#
# A CLI built elsewhere (cuda/pack_cli.sh on a machine that has the packages and nvcc) runs with
# CLI_BIN=<its turboattn> CLI_LIBS=<the folder of libraries packed beside it>: steps 1 and 2 are
# skipped, which saves the device the build.
#
# Knobs (environment): DEBS (.gpudebs), PREFIX (/tmp/turbo_gpudeps), BUILD (build-gpu-cli),
# ARCH (90), CUDA (ON; OFF builds the CLI without the cuda backend), JOBS (nproc), LOG
# (/tmp/turbo_gpu_logs), LAUNCHER (a compiler launcher such as ccache; none by default),
# CLI_VALIDATE_ARGS (default: the reference side on every core, --against-threads $(nproc); the ref
# backend is bit-identical at any thread count), CLI_BENCH_ARGS, CLI_TIMEOUT (seconds per command,
# 240; a device call runs at most 600 s). Exit status: 0 when validate and bench both pass, 2 when
# the build fails, otherwise the first failing command's status (124: timed out).
set -uo pipefail
cd "$(dirname "$0")/.."
DEBS=${DEBS:-.gpudebs}
PREFIX=${PREFIX:-/tmp/turbo_gpudeps}
BUILD=${BUILD:-build-gpu-cli}
ARCH=${ARCH:-90}
CUDA=${CUDA:-ON}
JOBS=${JOBS:-$(nproc)}
LOG=${LOG:-/tmp/turbo_gpu_logs}
CLI_VALIDATE_ARGS=${CLI_VALIDATE_ARGS:---against-threads $(nproc)}
CLI_BENCH_ARGS=${CLI_BENCH_ARGS:---shape 9/3x1024x64 --shape 32/8x4096x128 --repeats 5}
CLI_TIMEOUT=${CLI_TIMEOUT:-240}
mkdir -p "$LOG"
say() { echo "[cli_gpu] $*"; }

if [ -n "${CLI_BIN:-}" ]; then  # a CLI built elsewhere: no prefix, no build
  [ -x "$CLI_BIN" ] || { say "CLI_BIN $CLI_BIN is not an executable"; exit 2; }
  [ -d "${CLI_LIBS:-}" ] || { say "CLI_BIN needs CLI_LIBS, the folder of its libraries"; exit 2; }
  LIBPATH=$(cd "$CLI_LIBS" && pwd)
  T=$CLI_BIN
  say "prebuilt $T, libraries from $LIBPATH"
else
# 1. The private prefix. The packages are Debian 12 amd64 ones: their libraries sit in
# usr/lib/x86_64-linux-gnu (and lib/x86_64-linux-gnu for a few), HDF5's serial flavour under
# usr/lib/x86_64-linux-gnu/hdf5/serial, whose include/ and lib/ links make it an HDF5 root.
ls "$DEBS"/*.deb >/dev/null 2>&1 || { say "no .deb files in $DEBS (run cuda/fetch_gpu_debs.sh)"; exit 2; }
# Only a folder this script made (it holds the marker) or an empty one is ever cleared.
if [ -d "$PREFIX" ] && [ ! -e "$PREFIX/.turbo_gpudeps" ] && [ -n "$(ls -A "$PREFIX")" ]; then
  say "PREFIX $PREFIX exists, is not empty and was not made by this script; not touching it"
  exit 2
fi
rm -rf "$PREFIX"
mkdir -p "$PREFIX"
touch "$PREFIX/.turbo_gpudeps"
for f in "$DEBS"/*.deb; do
  dpkg -x "$f" "$PREFIX" || { say "dpkg -x $f failed"; exit 2; }
done
PREFIX=$(cd "$PREFIX" && pwd)
U=$PREFIX/usr
HDF5_DIR_ROOT=$U/lib/x86_64-linux-gnu/hdf5/serial
for need in "$HDF5_DIR_ROOT/include/hdf5.h" "$HDF5_DIR_ROOT/lib/libhdf5.so" \
            "$U/share/cmake/CLI11/CLI11Config.cmake" \
            "$U/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake"; do
  [ -e "$need" ] || { say "the unpacked packages lack $need"; exit 2; }
done
LIBPATH=$(find "$PREFIX" -name 'lib*.so*' \( -type f -o -type l \) -printf '%h\n' | sort -u | paste -sd:)
say "prefix $PREFIX: $(ls "$DEBS"/*.deb | wc -l) packages, libraries in ${LIBPATH//:/ }"

# 2. Configure and build the CLI. HDF5_ROOT makes FindHDF5 search that root alone (NO_DEFAULT_PATH:
# no h5cc wrapper, no system HDF5); CLI11_DIR / nlohmann_json_DIR name the package folders
# (CLI11_INCLUDE_DIR serves the project's fallback if CLI11's package file is refused; the policy
# floor lets CMake 4 read those Debian package files, which declare policies from 2.6 on).
# -rpath-link lets the linker follow libhdf5's own dependencies (libcurl, libsz, ...) inside the
# prefix; spelled -Xlinker, which g++ and nvcc both pass on (nvcc rejects -Wl,...), since CMake
# also links its CUDA compiler checks with these flags.
launcher=()
[ -n "${LAUNCHER:-}" ] && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER="$LAUNCHER"
                                    -DCMAKE_CUDA_COMPILER_LAUNCHER="$LAUNCHER")
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DTURBO_ENABLE_CUDA="$CUDA" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
  -DTURBO_BUILD_EVAL=ON -DTURBO_BUILD_TESTS=OFF -DTURBO_BUILD_BENCHMARKS=OFF \
  -DHDF5_ROOT="$HDF5_DIR_ROOT" -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON \
  -DCLI11_DIR="$U/share/cmake/CLI11" -DCLI11_INCLUDE_DIR="$U/include" \
  -Dnlohmann_json_DIR="$U/share/cmake/nlohmann_json" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
  -DCMAKE_EXE_LINKER_FLAGS="-Xlinker -rpath-link=$LIBPATH" "${launcher[@]}" \
  >"$LOG/cli_cmake.log" 2>&1 || { say "configure failed"; tail -30 "$LOG/cli_cmake.log"; exit 2; }
# What CMake picked, for the log: every path must lie inside the prefix.
grep -E "^(HDF5_[A-Za-z0-9_]*(INCLUDE_DIR|LIBRARY[A-Za-z_]*)|CLI11_DIR|CLI11_INCLUDE_DIR|nlohmann_json_DIR):" \
  "$BUILD/CMakeCache.txt" | sed 's/^/[cli_gpu]   /'
outside=$(grep -E "^(HDF5_[A-Za-z0-9_]*(INCLUDE_DIR|LIBRARY[A-Za-z_]*)|CLI11_DIR|CLI11_INCLUDE_DIR|nlohmann_json_DIR):" \
  "$BUILD/CMakeCache.txt" | cut -d= -f2- | tr ';' '\n' | grep '^/' | grep -v "^$PREFIX/" || true)
[ -z "$outside" ] || { say "CMake found dependencies outside the prefix: $outside"; exit 2; }
cmake --build "$BUILD" --target turboattn -j"$JOBS" >"$LOG/cli_build.log" 2>&1 ||
  { say "build failed"; grep -E "error|Error" "$LOG/cli_build.log" | head -30; exit 2; }
T=$BUILD/eval/turboattn
say "built $T"
fi

# 3. Run it. LD_LIBRARY_PATH only for these commands: Python and the CUDA tools in the other stages
# keep the machine's own libraries.
run() {
  env LD_LIBRARY_PATH="$LIBPATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" timeout "$CLI_TIMEOUT" "$@"
}
unresolved=$(run ldd "$T" | grep "not found" || true)
[ -z "$unresolved" ] || { say "unresolved libraries: $unresolved"; exit 2; }
run ldd "$T" | grep -E "hdf5|curl|sz\.|aec" | sed 's/^/[cli_gpu]   /'
start=$(date +%s)
# shellcheck disable=SC2086  # the args are a word list
run "$T" validate --backend cuda $CLI_VALIDATE_ARGS >"$LOG/cli_validate.log" 2>"$LOG/cli_validate.err"
va=$?
echo "exit $va, $(( $(date +%s) - start )) s: $T validate --backend cuda $CLI_VALIDATE_ARGS" \
  >>"$LOG/cli_validate.log"
grep -E "^\||^(PASS|FAIL)" "$LOG/cli_validate.log" | head -40
tail -3 "$LOG/cli_validate.err"
say "validate rc=$va ($(( $(date +%s) - start )) s)"
start=$(date +%s)
# shellcheck disable=SC2086
run "$T" bench --backend cuda $CLI_BENCH_ARGS >"$LOG/cli_bench.log" 2>"$LOG/cli_bench.err"
be=$?
echo "exit $be, $(( $(date +%s) - start )) s: $T bench --backend cuda $CLI_BENCH_ARGS" \
  >>"$LOG/cli_bench.log"
cat "$LOG/cli_bench.log"
tail -3 "$LOG/cli_bench.err"
say "bench rc=$be ($(( $(date +%s) - start )) s)"
((va)) && exit "$va"
exit "$be"
