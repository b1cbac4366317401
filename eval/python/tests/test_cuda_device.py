"""The zero-copy GPU path: backend="cuda" on CUDA torch tensors (cuda/device_api.h).

Runs where torch sees a CUDA device and the extension has the cuda backend; skips otherwise,
saying which is missing (CI has no GPU: eval/python/gpu_test.sh runs this on a GPU machine).
Checks: the device path gives the bytes of the host path (the Backend interface's staging) and of
the ref backend for the same inputs and knobs; the output is the tensor passed as ``out`` (same
data pointer), written in place; the inputs are never copied to the host (the CUDA profiler sees
no host-to-device copy and no device-to-host copy beyond the 24-byte finiteness flags); strided
views, stats, errors and the KV cache decode path.
"""

import json

import numpy as np
import pytest

import turboattn

torch = pytest.importorskip("torch", reason="torch is not installed")
if not torch.cuda.is_available():
    pytest.skip("torch sees no CUDA device (torch.cuda.is_available() is False)",
                allow_module_level=True)
if "cuda" not in turboattn.backends():
    pytest.skip("the turboattn extension was built without the cuda backend "
                f"(backends: {turboattn.backends()})", allow_module_level=True)

DEV = torch.device("cuda", torch.cuda.current_device())


def qkv(b=2, hq=4, hkv=2, n=200, d=64, seed=0):
    g = np.random.default_rng(seed)
    q = (g.standard_normal((b, hq, n, d)) * 1.5).astype(np.float16)
    k = (g.standard_normal((b, hkv, n, d)) * 1.5 + 0.3).astype(np.float16)
    v = g.standard_normal((b, hkv, n, d)).astype(np.float16)
    return q, k, v


def on_gpu(*xs):
    return [torch.from_numpy(x).to(DEV) for x in xs]


def same_stats(dev, ref):
    """Counters equal; dropped mass (FP64 sums on the device vs the host) to 1e-9 relative, the
    bound of cuda/validate_cases.h."""
    assert len(dev) == len(ref)
    for a, b in zip(dev, ref):
        assert (a["rows"], a["scored"], a["zeroed"]) == (b["rows"], b["scored"], b["zeroed"])
        assert abs(a["dropped_mass"] - b["dropped_mass"]) <= 1e-9 * (abs(b["dropped_mass"]) + 1e-12)


KNOBS = [dict(), dict(n_r=4, q_gran="token"), dict(kv_bits=2, p_quant="s8")]


@pytest.mark.parametrize("knobs", KNOBS)
def test_prefill_device_equals_host_path_and_ref(knobs):
    q, k, v = qkv()
    host_cuda, st_host = turboattn.attention_prefill(q, k, v, backend="cuda", return_stats=True,
                                                      **knobs)
    host_ref, st_ref = turboattn.attention_prefill(q, k, v, backend="ref", return_stats=True,
                                                    **knobs)
    qd, kd, vd = on_gpu(q, k, v)
    out = torch.full(qd.shape, float("nan"), dtype=torch.float16, device=DEV)  # poisoned
    ptr = out.data_ptr()
    o, st_dev = turboattn.attention_prefill(qd, kd, vd, backend="cuda", return_stats=True,
                                            out=out, **knobs)
    assert o is out and o.data_ptr() == ptr and o.device == DEV
    got = o.cpu().numpy()
    assert np.abs(host_ref.astype(np.float32)).sum() > 0
    assert got.view(np.uint16).tobytes() == host_cuda.view(np.uint16).tobytes()
    assert got.view(np.uint16).tobytes() == host_ref.view(np.uint16).tobytes()
    assert st_dev == st_host
    same_stats(st_dev, st_ref)
    # Without out=: a new CUDA tensor on the inputs' device, same bytes.
    o2 = turboattn.attention_prefill(qd, kd, vd, backend="cuda", **knobs)
    assert o2.device == DEV and torch.equal(o2, o)


def test_prefill_strided_views_on_device():
    """HF's [B, N, H, D] -> transpose(1, 2) views are gathered on the device; a strided out is
    written through scratch; same bytes as contiguous inputs."""
    q, k, v = qkv(b=1, hq=4, hkv=1, n=96, d=128, seed=3)
    qd, kd, vd = on_gpu(q, k, v)
    qs, ks, vs = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (qd, kd, vd))
    assert not qs.is_contiguous()
    ref = turboattn.attention_prefill(qd, kd, vd, backend="cuda")
    out = torch.zeros(1, 96, 4, 128, dtype=torch.float16, device=DEV).transpose(1, 2)
    o = turboattn.attention_prefill(qs, ks, vs, backend="cuda", out=out)
    assert o is out and torch.equal(o, ref)
    assert torch.equal(qs, qd) and torch.equal(ks, kd)  # inputs untouched


# Run in a child process: the profiler (CUPTI) stays loaded in a process after its first use, and
# the other tests should not run under it.
PROFILE_SCRIPT = r"""
import json, os, sys
import numpy as np, torch, turboattn
from torch.profiler import ProfilerActivity, profile

def memcpys(fn):
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    path = sys.argv[1]
    prof.export_chrome_trace(path)
    events = json.load(open(path))["traceEvents"]
    os.remove(path)
    return {"kernels": sum(e.get("cat") == "kernel" for e in events),
            "copies": [(e["name"], int(e.get("args", {}).get("bytes", -1))) for e in events
                       if e.get("cat") == "gpu_memcpy"]}

g = np.random.default_rng(5)
q, k, v = (g.standard_normal(s).astype(np.float16) for s in ((1, 8, 512, 64), (1, 2, 512, 64),
                                                              (1, 2, 512, 64)))
qd, kd, vd = (torch.from_numpy(x).cuda() for x in (q, k, v))
out = torch.empty_like(qd)
turboattn.attention_prefill(qd, kd, vd, backend="cuda", out=out)  # warm: SAS table, scratch
res = {"device": memcpys(lambda: turboattn.attention_prefill(qd, kd, vd, backend="cuda", out=out)),
       "host": memcpys(lambda: turboattn.attention_prefill(q, k, v, backend="cuda")),
       "input_bytes": q.nbytes + k.nbytes + v.nbytes}
print("RESULT " + json.dumps(res))
"""


def test_prefill_device_path_copies_nothing_to_or_from_the_host(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", PROFILE_SCRIPT, str(tmp_path / "trace.json")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    res = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
    dev, host = res["device"], res["host"]
    assert dev["kernels"] > 0, "the profiler saw no kernel: it does not trace this process"
    copies = dev["copies"]
    assert not [c for c in copies if "HtoD" in c[0]], copies
    dtoh = [c for c in copies if "DtoH" in c[0]]
    assert len(dtoh) == 1 and 0 < dtoh[0][1] <= 24, copies  # the finiteness flags only
    assert not [c for c in copies if "DtoD" in c[0]], copies  # contiguous: used in place
    # Control: the host path of the same backend uploads q, k, v (and downloads o).
    assert sum(b for name, b in host["copies"] if "HtoD" in name) >= res["input_bytes"], host


@pytest.mark.parametrize("knobs", [dict(), dict(kv_bits=2, buffer="int8", splits=4)])
def test_decode_over_device_cache_equals_host_and_ref(knobs):
    q, k, v = qkv(b=2, hq=8, hkv=2, n=150, d=64, seed=7)
    steps = [(0, 100), (100, 101), (101, 117), (117, 150)]  # prompt, one token, chunks
    caches = {
        "dev": turboattn.KVCache(2, 2, 64, backend="cuda", **knobs),
        "host": turboattn.KVCache(2, 2, 64, backend="cuda", **knobs),
        "ref": turboattn.KVCache(2, 2, 64, backend="ref", **knobs),
    }
    qd, kd, vd = on_gpu(q, k, v)
    for a, b in steps:
        res = {}
        for name, c in caches.items():
            if name == "dev":
                out = torch.empty(2, 8, b - a, 64, dtype=torch.float16, device=DEV)
                o, st = turboattn.attention_decode(qd[:, :, a:b], kd[:, :, a:b], vd[:, :, a:b], c,
                                                   return_stats=True, out=out)
                assert o is out
                o = o.cpu().numpy()
            else:
                o, st = turboattn.attention_decode(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], c,
                                                   return_stats=True)
            res[name] = (o, st)
        (o_dev, st_dev), (o_host, st_host), (o_ref, st_ref) = (res[n] for n in ("dev", "host", "ref"))
        assert np.abs(o_ref.astype(np.float32)).sum() > 0
        assert o_dev.tobytes() == o_host.tobytes() == o_ref.tobytes(), (a, b)
        assert st_dev == st_host
        same_stats(st_dev, st_ref)
    assert len(caches["dev"]) == 150
    assert caches["dev"].bytes() == caches["host"].bytes() == caches["ref"].bytes()


def test_device_errors_have_the_host_text():
    q, k, v = qkv(b=1, hq=2, hkv=2, n=32, d=64)
    k[0, 1, 5, 7] = np.float16(np.inf)
    with pytest.raises(turboattn.Error) as host:
        turboattn.attention_prefill(q, k, v, backend="cuda")
    qd, kd, vd = on_gpu(q, k, v)
    with pytest.raises(turboattn.Error) as dev:
        turboattn.attention_prefill(qd, kd, vd, backend="cuda")
    assert str(dev.value) == str(host.value) == (
        "non-finite value in K at batch 0, head 1, token 5, channel 7")
    with pytest.raises(turboattn.Error, match="one device"):
        turboattn.attention_prefill(qd, torch.from_numpy(k), vd, backend="cuda")
    with pytest.raises(turboattn.Error, match="not implemented by the cuda backend"):
        turboattn.attention_prefill(qd, qd, qd, method="kivi", backend="cuda")
    with pytest.raises(turboattn.Error, match="out must be"):
        turboattn.attention_prefill(qd, qd, qd, backend="cuda",
                                    out=torch.empty(1, 2, 31, 64, dtype=torch.float16, device=DEV))
    with pytest.raises(turboattn.Error, match="float16"):
        turboattn.attention_prefill(qd.float(), qd, qd, backend="cuda")


def test_cuda_tensors_with_ref_backend_are_copied_by_the_stated_rule():
    """backend="ref" runs on the host: CUDA inputs are copied there and the result comes back to
    their device; the bytes are the cuda device path's."""
    q, k, v = qkv(b=1, hq=4, hkv=2, n=80, d=64, seed=11)
    qd, kd, vd = on_gpu(q, k, v)
    o_ref = turboattn.attention_prefill(qd, kd, vd, backend="ref")
    o_dev = turboattn.attention_prefill(qd, kd, vd, backend="cuda")
    assert o_ref.device == DEV and torch.equal(o_ref, o_dev)
