#!/usr/bin/env python3
"""Oracle test: the C++ GGUF dequantization equals the PyPI `gguf` package's, bit for bit.

1. Every tensor of the real model (Q4_1, Q8_0, F32 in SmolLM2-135M): the SHA-256 of the FP32
   dequantization from `datasets_oracle_tool tensors` equals that of gguf.quants.dequantize.
2. A synthetic GGUF written with gguf.GGUFWriter holding random raw blocks of every type the C++
   reader supports (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K),
   with finite FP16 scales.
3. Every tensor of Gemma 3 270M (Q4_K_M: F32, Q5_0, Q8_0, Q4_K, Q6_K), when --gemma names it.

usage: gguf_oracle.py --tool <datasets_oracle_tool> [--model <gguf>] --workdir <dir>
"""
import hashlib
import importlib.metadata
import os
import subprocess
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import GGML_QUANT_SIZES, dequantize

from oracle_common import model_args


def tool_hashes(tool, path):
    out = subprocess.run([tool, "tensors", path], check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        name, typ, digest = line.split("\t")
        rows[name] = (typ, digest)
    return rows


def python_hashes(path):
    r = gguf.GGUFReader(path)
    rows = {}
    for t in r.tensors:
        v = np.ascontiguousarray(dequantize(t.data, t.tensor_type).astype(np.float32, copy=False))
        rows[t.name] = (t.tensor_type.name, hashlib.sha256(v.tobytes()).hexdigest(), v.size)
    return rows


def compare(tool, path, label):
    cpp = tool_hashes(tool, path)
    py = python_hashes(path)
    if set(cpp) != set(py):
        print(f"FAIL {label}: tensor sets differ: {sorted(set(cpp) ^ set(py))}")
        return False
    bad = [n for n in py if cpp[n][1] != py[n][1] or cpp[n][0] != py[n][0]]
    types = sorted({py[n][0] for n in py})
    values = sum(py[n][2] for n in py)
    if bad:
        print(f"FAIL {label}: {len(bad)} of {len(py)} tensors differ, e.g. {bad[:5]}")
        return False
    print(f"ok   {label}: {len(py)} tensors ({values} values; types {', '.join(types)}) bit-identical")
    return True


def random_blocks(rng, qtype, n_blocks):
    """Random raw blocks with finite FP16 scale/min fields."""
    block, size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    def f16(col):  # overwrite 2 bytes at `col` with a finite FP16 value
        raw[:, col:col + 2] = rng.normal(0, 0.05, size=n_blocks).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    if qtype in (T.Q4_0, T.Q5_0, T.Q8_0):
        f16(0)
    elif qtype in (T.Q4_1, T.Q5_1):
        f16(0)
        f16(2)
    elif qtype in (T.Q6_K, T.Q3_K):  # d last
        f16(size - 2)
    elif qtype == T.Q2_K:  # d, dmin last
        f16(size - 4)
        f16(size - 2)
    elif qtype in (T.Q4_K, T.Q5_K):  # d, dmin first
        f16(0)
        f16(2)
    return raw


def synthetic(path, rng):
    w = gguf.GGUFWriter(path, "llama")
    n_blocks = 64
    w.add_tensor("f32", rng.normal(size=(8, 64)).astype(np.float32))
    w.add_tensor("f16", rng.normal(size=(8, 64)).astype(np.float16))
    bf = rng.integers(0, 65536, size=(8, 64), dtype=np.uint16)
    bf[(bf & 0x7F80) == 0x7F80] &= 0xBFFF  # keep BF16 finite: NaN payloads are not compared
    w.add_tensor("bf16", bf.view(np.uint8).reshape(8, 128), raw_dtype=T.BF16)
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
        block, size = GGML_QUANT_SIZES[qtype]
        raw = random_blocks(rng, qtype, n_blocks)
        # raw tensors are given in bytes: 4 rows of n_blocks / 4 blocks
        w.add_tensor(qtype.name.lower(), raw.reshape(4, -1), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    a = model_args("also compare every tensor of this GGUF")
    if a is None:
        return 1
    syn = os.path.join(a.workdir, "synthetic_types.gguf")
    synthetic(syn, np.random.default_rng(20241211))
    ok = compare(a.tool, syn, "synthetic, every supported type")
    ok = compare(a.tool, a.model, os.path.basename(a.model)) and ok
    if a.gemma:
        ok = compare(a.tool, a.gemma, os.path.basename(a.gemma)) and ok
    print(f"gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
