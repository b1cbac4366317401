#!/usr/bin/env python3
"""Reads activation files with plain h5py, as a user of datasets/README.md would, and checks the
documented schema: the same rules as turboattn's reader (attributes, /tokens int32 [N], every
layer of the `layers` attribute (non-empty) present as /layers/<L>/{q,k,v} float16
[heads, N, head_dim], finite values). With --strict, also what `turboattn capture` writes for
byte-reproducible, checksummed files: no object timestamps, shuffle + gzip + fletcher32 on
every dataset, a superblock of version 2 or later (checksummed metadata), and no /layers group
that the `layers` attribute does not list.

usage: h5py_schema_check.py [--strict] <file.h5> [...]
"""
import argparse
import sys

import h5py
import numpy as np

STRING_ATTRS = ["model", "model_sha256", "text_source", "turboattn_version", "command"]
INT_ATTRS = ["n_layers", "n_heads", "n_kv_heads", "head_dim", "n_tokens", "schema_version"]


def text(value):
    """A string attribute as str: variable-length ones read as str, fixed-length (what turboattn
    writes) as bytes, UTF-8."""
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else value


def check(path, strict):
    errors = []
    with h5py.File(path, "r") as f:
        a = f.attrs
        for k in STRING_ATTRS:
            if not isinstance(text(a.get(k)), str):
                errors.append(f"attribute {k} is not a string")
            elif strict and h5py.h5a.open(f.id, k.encode()).get_type().is_variable_str():
                errors.append(f"attribute {k} is a variable-length string (global heap, no checksum)")
        for k in INT_ATTRS:
            if not np.issubdtype(np.asarray(a.get(k)).dtype, np.integer):
                errors.append(f"attribute {k} is not an integer")
        if errors:
            return errors
        if strict and f.id.get_create_plist().get_version()[0] < 2:
            errors.append("superblock before version 2: metadata without checksums")
        if strict and not f["tokens"].fletcher32:
            errors.append("/tokens has no fletcher32 checksum")
        if a["schema_version"] != 1:
            errors.append("schema_version != 1")
        n, d = int(a["n_tokens"]), int(a["head_dim"])
        tok = f["tokens"]
        if tok.dtype != np.int32 or tok.shape != (n,):
            errors.append(f"/tokens is {tok.dtype} {tok.shape}")
        layers = [int(x) for x in np.atleast_1d(a["layers"])]
        if not layers:
            errors.append("the 'layers' attribute lists no layer")
        if layers != sorted(set(layers)):
            errors.append("the 'layers' attribute is not ascending without repeats")
        groups = sorted(int(k) for k in f["layers"] if k.isdigit())
        missing = [L for L in layers if L not in groups]
        if missing:
            errors.append(f"layers {missing} are listed but have no group under /layers")
            return errors
        if strict and groups != layers:
            errors.append("/layers holds groups the 'layers' attribute does not list")
        for L in layers:
            for name, heads in (("q", a["n_heads"]), ("k", a["n_kv_heads"]), ("v", a["n_kv_heads"])):
                ds = f[f"layers/{L}/{name}"]
                x = ds[...]
                if ds.dtype != np.float16 or ds.shape != (heads, n, d):
                    errors.append(f"layers/{L}/{name} is {ds.dtype} {ds.shape}")
                if not np.isfinite(x).all():
                    errors.append(f"layers/{L}/{name} has non-finite values")
                if strict and (ds.compression != "gzip" or not ds.shuffle or not ds.fletcher32):
                    errors.append(f"layers/{L}/{name} is not shuffle + gzip + fletcher32")
                if strict and h5py.h5o.get_info(ds.id).ctime != 0:
                    errors.append(f"layers/{L}/{name} carries a timestamp")
        print(f"ok   {path}: {len(layers)} layers x {n} tokens; {text(a['text_source'])[:60]}...")
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", metavar="file.h5", help="activation files to check")
    ap.add_argument("--strict", action="store_true",
                    help="also require what `turboattn capture` writes (gzip, fletcher32, "
                         "checksummed metadata, no timestamps)")
    args = ap.parse_args()
    bad = False
    for p in args.files:
        try:
            errs = check(p, args.strict)
        except (OSError, KeyError) as e:  # not HDF5, or a group/attribute missing
            errs = [str(e)]
        for e in errs:
            print(f"FAIL {p}: {e}")
        bad |= bool(errs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
