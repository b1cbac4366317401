#!/usr/bin/env bash
# A bad-input campaign over every turboattn subcommand (issue 10): each case must end with a clear
# error (exit 1, or 100+ for a command-line error), never a signal, a hang (60 s) or exit 0, and
# must leave every input file byte-identical. Usage:
#   bash eval/tests/bad_inputs.sh <turboattn binary> <work dir> [<model.gguf>]
# Prints one line per case and a summary; exits 1 if any case misbehaved.
set -uo pipefail
T=$(realpath "$1")
W=$2
MODEL=${3:-${TURBO_MODEL:-${TURBO_CACHE:-$HOME/.cache/turboattn}/SmolLM2-135M-Instruct.Q4_1.gguf}}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=$ROOT/datasets/data/smollm2_calib.h5
TEXT=/usr/share/common-licenses/GPL-3
mkdir -p "$W"
cd "$W"
rm -rf ./*

# Inputs the cases may try to destroy.
cp "$DATA" v.h5
printf 'method = fp16\n' > g.txt
mkdir -p adir
mkfifo fifo
printf '%*s' 30000 '' | tr ' ' '[' > deep.json
printf 'not hdf5\n' > text.h5
head -c 100000 /dev/urandom > random.bin
printf '{"head_bits": [[4, 4, 4]]}\n' > short_map.json
"$T" -q sweep --data v.h5 --set method=fp16 --phases prefill --layers 0 -o r.csv >/dev/null 2>&1 ||
  { echo "setup sweep failed"; exit 1; }
cp r.csv r_keep.csv
cp r.csv.json r_keep.csv.json
sed '2s/^"[^"]*"/"method=fp16"/; 2s/,prefill,/,train,/' r.csv > badphase.csv
cp r.csv.json badphase.csv.json
python3 - <<'PY'
import json
j = json.load(open("r.csv.json"))
for name, idx, cnt in [("s7of3", 7, 3), ("sbig", 100000000, 1), ("s0", 0, 0), ("sneg", 0, -3)]:
    j2 = dict(j, shard_index=idx, shard_count=cnt)
    open(name + ".csv", "w").write(open("r.csv").read())
    json.dump(j2, open(name + ".csv.json", "w"))
PY
# One flipped bit each (checksums, issue 10 defect 3): in the stored data of a chunk of
# /layers/0/k, in the object header of /layers/0/k, in the superblock. (/tokens is read by no
# subcommand; datasets/activations_test.cpp flips its data.)
python3 - <<'PY'
import h5py
with h5py.File("v.h5", "r") as f:
    k0 = f["layers/0/k"].id.get_chunk_info(0)
    hdr = h5py.h5o.get_info(f["layers/0/k"].id).addr
good = open("v.h5", "rb").read()
for name, at in [("flip_k_data", k0.byte_offset + k0.size // 2),
                 ("flip_k_header", hdr + 24), ("flip_superblock", 20)]:
    b = bytearray(good)
    b[at] ^= 0x08
    open(name + ".h5", "wb").write(bytes(b))
PY
sums() { sha256sum v.h5 g.txt deep.json text.h5 r_keep.csv r_keep.csv.json short_map.json "$MODEL" 2>/dev/null; }
before=$(sums)

fail=0
n=0
run() {  # run <description> <args...>
  local desc=$1
  shift
  n=$((n + 1))
  timeout 60 "$T" "$@" >out.txt 2>err.txt
  local rc=$?
  local verdict=ok
  if ((rc == 124)); then
    verdict="HANG"
  elif ((rc == 0)); then
    verdict="EXIT 0"
  elif ((rc > 128)); then
    verdict="SIGNAL $((rc - 128))"
  elif [ ! -s err.txt ]; then
    verdict="NO MESSAGE"
  fi
  [ "$verdict" = ok ] || fail=$((fail + 1))
  printf '%-10s %-46s %s\n' "$verdict" "$desc" "$(head -c 110 err.txt | tr '\n' ' ')"
}

# sweep
run "sweep -o = --data" sweep --data v.h5 --set method=fp16 -o v.h5 --overwrite
run "sweep -o = --grid" sweep --data v.h5 --grid g.txt -o g.txt --overwrite
run "sweep --grid directory" sweep --data v.h5 --grid adir -o x.csv
run "sweep --grid FIFO" sweep --data v.h5 --grid fifo -o x.csv
run "sweep --data FIFO" sweep --data fifo --set method=fp16 -o x.csv
run "sweep --data directory" sweep --data adir --set method=fp16 -o x.csv
run "sweep --data text" sweep --data text.h5 --set method=fp16 -o x.csv
run "sweep --data random bytes" sweep --data random.bin --set method=fp16 -o x.csv
run "sweep --bits-map deep JSON" sweep --data v.h5 --set kv_bits=mixed --bits-map deep.json -o x.csv
run "sweep --bits-map directory" sweep --data v.h5 --set kv_bits=mixed --bits-map adir -o x.csv
run "sweep --bc 2147483647 (sage)" sweep --data v.h5 --set method=sage --bc 2147483647 -o x.csv
run "sweep --threads 100000" --threads 100000 sweep --data v.h5 --set method=fp16 -o x.csv
run "sweep --shard 0/4294967297" sweep --data v.h5 --set method=fp16 --shard 0/4294967297 -o x.csv
run "sweep --seed -1" --seed -1 sweep --data v.h5 --set method=fp16 -o x.csv
run "sweep --seed 2^64" --seed 18446744073709551616 sweep --data v.h5 --set method=fp16 -o x.csv
run "sweep --tokens -1" sweep --data v.h5 --set method=fp16 --tokens -1 -o x.csv
run "sweep --positions 0" sweep --data v.h5 --set method=fp16 --positions 0 -o x.csv
run "sweep --layers 0-99999999999" sweep --data v.h5 --set method=fp16 --layers 0-99999999999 -o x.csv
run "sweep -o a directory" sweep --data v.h5 --set method=fp16 -o adir
run "sweep -o a FIFO" sweep --data v.h5 --set method=fp16 -o fifo
run "report -o a FIFO" report r_keep.csv -o fifo
run "calibrate -o a directory" calibrate --data v.h5 -o adir
cp deep.json r2.csv.json
cp r.csv r2.csv
run "sweep resume with a deep sidecar" sweep --data v.h5 --set method=fp16 --phases prefill --layers 0 -o r2.csv
run "sweep --data flipped bit in K chunk data" sweep --data flip_k_data.h5 --set method=fp16 --layers 0 -o x.csv
run "sweep --data flipped bit in a K header" sweep --data flip_k_header.h5 --set method=fp16 --layers 0 -o x.csv
run "sweep --data flipped bit in the superblock" sweep --data flip_superblock.h5 --set method=fp16 --layers 0 -o x.csv
run "calibrate --data flipped bit in K chunk data" calibrate --data flip_k_data.h5 -o b.json
# merge
run "merge shard 7 of 3" merge s7of3.csv -o m.csv
run "merge shard 100000000" merge sbig.csv -o m.csv
run "merge shard count 0" merge s0.csv -o m.csv
run "merge shard count -3" merge sneg.csv -o m.csv
run "merge -o = input" merge r_keep.csv -o r_keep.csv
# report
run "report -o = input" report r_keep.csv -o r_keep.csv
run "report unknown phase" report badphase.csv
run "report deep sidecar" report r2.csv
run "report directory" report adir
# calibrate
run "calibrate --tokens -1" calibrate --data v.h5 -o b.json --tokens -1
run "calibrate --tokens 99999" calibrate --data v.h5 -o b.json --tokens 99999
run "calibrate -o = --data" calibrate --data v.h5 -o v.h5
run "calibrate --f2 2" calibrate --data v.h5 -o b.json --f2 2
# bench
run "bench huge shape" bench --shape 4096/1x16777216x4096
run "bench overflowing shape" bench --shape 9/3x99999999999999999999x64
# validate
run "validate --data FIFO" validate --quick --data fifo
run "validate --data directory" validate --quick --data adir
# capture / ppl (these read the model)
if [ -f "$MODEL" ]; then
  run "capture --model directory" capture --model adir --text "$TEXT" --out c.h5
  run "capture --text FIFO" capture --text fifo --out c.h5
  run "capture --out = --text" capture --text g.txt --out g.txt --force
  run "ppl --model directory" ppl --model adir --text "$TEXT"
  run "ppl --text FIFO" ppl --text fifo --max-tokens 8
  run "ppl --json = --text" ppl --text g.txt --json g.txt
  run "ppl --bits-map deep JSON" ppl --text "$TEXT" --max-tokens 16 --config kv_bits=mixed --phase decode --bits-map deep.json
  run "ppl --bits-map wrong shape" ppl --text "$TEXT" --max-tokens 16 --config kv_bits=mixed --phase decode --bits-map short_map.json
  run "ppl --chunk 0" ppl --text "$TEXT" --max-tokens 16 --chunk 0
  # per-run knobs (--run method[:name=value,...])
  run "ppl --run bad kv_bits" ppl --text "$TEXT" --max-tokens 16 --run flashq:kv_bits=3
  run "ppl --run unknown knob" ppl --text "$TEXT" --max-tokens 16 --run flashq:nonsense=1
  run "ppl --run knob without value" ppl --text "$TEXT" --max-tokens 16 --run flashq:kv_bits
  run "ppl --run empty value" ppl --text "$TEXT" --max-tokens 16 --run 'flashq:kv_bits='
  run "ppl --run no method" ppl --text "$TEXT" --max-tokens 16 --run :kv_bits=4
  run "ppl --run empty" ppl --text "$TEXT" --max-tokens 16 --run ''
  run "ppl --run unknown method" ppl --text "$TEXT" --max-tokens 16 --run nonsense
  run "ppl --run reference with knobs" ppl --text "$TEXT" --max-tokens 16 --run reference:kv_bits=2
  run "ppl --run method= contradicts" ppl --text "$TEXT" --max-tokens 16 --run flashq:method=kivi
  run "ppl --run vs --config method" ppl --text "$TEXT" --max-tokens 16 --config method=kivi --run flashq
  run "ppl --run repeated run" ppl --text "$TEXT" --max-tokens 16 --run flashq --run flashq:kv_bits=4
  run "ppl --run with --method" ppl --text "$TEXT" --max-tokens 16 --method fp16 --run flashq
  run "ppl --method with knobs" ppl --text "$TEXT" --max-tokens 16 --method flashq:kv_bits=2
  run "ppl --run bc 2147483647 (sage)" ppl --text "$TEXT" --max-tokens 16 --run sage:bc=2147483647
  run "ppl --run mixed without map" ppl --text "$TEXT" --max-tokens 16 --phase decode --run flashq:kv_bits=mixed
  run "ppl --run huge n_r" ppl --text "$TEXT" --max-tokens 16 --run flashq:n_r=99999999999999999999
fi

after=$(sums)
if [ "$before" != "$after" ]; then
  echo "DESTROYED: an input changed:"
  diff <(echo "$before") <(echo "$after")
  fail=$((fail + 1))
fi
echo "bad_inputs: $n cases, $fail misbehaved"
((fail == 0))
