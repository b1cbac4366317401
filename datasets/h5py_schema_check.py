#!/usr/bin/env python3
"""Reads the embedded activation files with plain h5py, as a user of datasets/README.md would,
and checks the documented schema: attributes, /tokens int32 [N], /layers/<L>/{q,k,v} float16
[heads, N, head_dim], finite values, no object timestamps, shuffle + gzip.

usage: h5py_schema_check.py <file.h5> [...]
"""
import sys

import h5py
import numpy as np

STRING_ATTRS = ["model", "model_sha256", "text_source", "turboattn_version", "command"]
INT_ATTRS = ["n_layers", "n_heads", "n_kv_heads", "head_dim", "n_tokens", "schema_version"]


def check(path):
    errors = []
    with h5py.File(path, "r") as f:
        a = f.attrs
        for k in STRING_ATTRS:
            if not isinstance(a.get(k), str):
                errors.append(f"attribute {k} is not a string")
        for k in INT_ATTRS:
            if not np.issubdtype(np.asarray(a.get(k)).dtype, np.integer):
                errors.append(f"attribute {k} is not an integer")
        if errors:
            return errors
        if a["schema_version"] != 1:
            errors.append("schema_version != 1")
        n, d = int(a["n_tokens"]), int(a["head_dim"])
        tok = f["tokens"]
        if tok.dtype != np.int32 or tok.shape != (n,):
            errors.append(f"/tokens is {tok.dtype} {tok.shape}")
        layers = sorted(int(k) for k in f["layers"])
        if layers != list(a["layers"]):
            errors.append("the 'layers' attribute does not list /layers")
        for L in layers:
            for name, heads in (("q", a["n_heads"]), ("k", a["n_kv_heads"]), ("v", a["n_kv_heads"])):
                ds = f[f"layers/{L}/{name}"]
                x = ds[...]
                if ds.dtype != np.float16 or ds.shape != (heads, n, d):
                    errors.append(f"layers/{L}/{name} is {ds.dtype} {ds.shape}")
                if not np.isfinite(x).all():
                    errors.append(f"layers/{L}/{name} has non-finite values")
                if ds.compression != "gzip" or not ds.shuffle:
                    errors.append(f"layers/{L}/{name} is not shuffle + gzip")
                if h5py.h5o.get_info(ds.id).ctime != 0:
                    errors.append(f"layers/{L}/{name} carries a timestamp")
        print(f"ok   {path}: {len(layers)} layers x {n} tokens; {a['text_source'][:60]}...")
    return errors


def main():
    bad = False
    for p in sys.argv[1:]:
        errs = check(p)
        for e in errs:
            print(f"FAIL {p}: {e}")
        bad |= bool(errs)
    return 1 if bad or len(sys.argv) < 2 else 0


if __name__ == "__main__":
    sys.exit(main())
