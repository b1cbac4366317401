"""The Python front door against properties and independent references (NumPy FP64)."""

import math

import numpy as np
import pytest

import turboattn
from conftest import half_tensor


def exact_attention_np(q, k, v, causal=True):
    """FP64 softmax attention written here in NumPy (independent of the C++ ground truth)."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    g = q.shape[1] // k.shape[1]
    k = np.repeat(k, g, axis=1)
    v = np.repeat(v, g, axis=1)
    tau = np.float64(np.float32(1.0 / math.sqrt(q.shape[-1])))
    s = np.einsum("bhnd,bhmd->bhnm", q, k) * tau
    if causal:
        n, m = s.shape[-2:]
        s = np.where(np.tril(np.ones((n, m), bool), m - n), s, -np.inf)
    s -= s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return p @ v


def test_backends_and_knobs():
    assert "ref" in turboattn.backends()
    names = [k["name"] for k in turboattn.knobs()]
    for name in ("method", "n_r", "kv_bits", "p_quant", "causal", "tau"):
        assert name in names
    method = next(k for k in turboattn.knobs() if k["name"] == "method")
    assert method["default"] == "flashq"
    assert set(method["values"]) >= {"flashq", "fp16", "kivi", "int8kv", "sage", "fp8"}


def test_config_key_is_canonical():
    key = turboattn.config_key("flashq", n_r=5, kv_bits=2, causal=False)
    assert key.startswith("method=flashq,")
    assert ",n_r=5," in key and ",kv_bits=2," in key and ",causal=0," in key
    assert turboattn.config_key(config=key) == key
    assert turboattn.config_key(config="n_r=5", n_r=7) == turboattn.config_key(n_r=7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"nr": 6}, "unknown knob 'nr'; valid: method, q_gran"),
        ({"n_r": "six"}, "knob 'n_r' needs an integer, got 'six'"),
        ({"poly": "cubic"}, "invalid value 'cubic' for knob 'poly'; valid: ls2, ls3"),
        ({"n_r": 40}, "invalid config: n_r must be in [1, 15], got 40"),
    ],
)
def test_bad_knobs_raise_the_cli_message(kwargs, message):
    with pytest.raises(turboattn.Error) as e:
        turboattn.config_key("flashq", **kwargs)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_bad_arrays_are_named(rng):
    q = half_tensor(rng, 1, 2, 8, 64)
    k = half_tensor(rng, 1, 1, 8, 64)
    with pytest.raises(turboattn.Error, match="q must be float16, got float32"):
        turboattn.attention_prefill(q.astype(np.float32), k, k)
    with pytest.raises(turboattn.Error, match=r"q must have 4 dimensions \[B, H, N, D\]"):
        turboattn.attention_prefill(q[0], k, k)
    with pytest.raises(turboattn.Error, match=r"query heads \(3\) must be a multiple of kv heads \(2\)"):
        turboattn.attention_prefill(half_tensor(rng, 1, 3, 8, 64), half_tensor(rng, 1, 2, 8, 64),
                                    half_tensor(rng, 1, 2, 8, 64))
    bad = k.copy()
    bad[0, 0, 5, 7] = np.inf
    with pytest.raises(turboattn.Error, match="non-finite value in K.*head 0, token 5, channel 7"):
        turboattn.attention_prefill(q, bad, k)
    with pytest.raises(turboattn.Error, match="unknown backend 'tpu'; available: "):
        turboattn.attention_prefill(q, k, k, backend="tpu")


@pytest.mark.parametrize("method", ["flashq", "fp16", "kivi", "int8kv", "sage", "fp8"])
@pytest.mark.parametrize("causal", [True, False])
def test_prefill_close_to_exact(rng, method, causal):
    q = half_tensor(rng, 2, 6, 100, 64)
    k = half_tensor(rng, 2, 2, 100, 64)
    v = half_tensor(rng, 2, 2, 100, 64)
    o = turboattn.attention_prefill(q, k, v, method=method, causal=causal)
    assert o.shape == q.shape and o.dtype == np.float16
    ref = turboattn.attention_reference(q, k, v, causal=causal)
    np.testing.assert_allclose(ref, exact_attention_np(q, k, v, causal), rtol=0, atol=1e-12)
    rel = np.linalg.norm(o.astype(np.float64) - ref) / np.linalg.norm(ref)
    # Loose, per method: the point is that the binding passes the right tensors (a wrong head,
    # stride or scale gives errors of order 1), not the methods' accuracy (eval/ measures that).
    # Bounds a few times each method's error on Gaussian data (4-bit KIVI ~10%, FP8 ~5%); the
    # control below shows a misrouted head lands far outside them.
    bound = {"fp16": 1e-3, "int8kv": 0.03, "sage": 0.03, "flashq": 0.05, "fp8": 0.1, "kivi": 0.2}
    assert rel < bound[method], rel
    swapped = ref[:, ::-1]
    assert np.linalg.norm(o.astype(np.float64) - swapped) / np.linalg.norm(swapped) > 0.5
    m = turboattn.error_metrics(o, ref)
    assert m["rel_l2"] == pytest.approx(rel, rel=1e-9)


def test_prefill_numpy_torch_and_strided_agree(rng):
    torch = pytest.importorskip("torch")
    q = half_tensor(rng, 1, 9, 130, 64)
    k = half_tensor(rng, 1, 3, 130, 64)
    v = half_tensor(rng, 1, 3, 130, 64)
    o_np, stats = turboattn.attention_prefill(q, k, v, n_r=5, return_stats=True)
    # Torch tensors in the [B, N, H, D] layout of HF, transposed: strided views, no copy.
    qt = torch.from_numpy(q.transpose(0, 2, 1, 3).copy()).transpose(1, 2)
    kt = torch.from_numpy(k.transpose(0, 2, 1, 3).copy()).transpose(1, 2)
    vt = torch.from_numpy(v.transpose(0, 2, 1, 3).copy()).transpose(1, 2)
    assert not qt.is_contiguous()
    o_t, stats_t = turboattn.attention_prefill(qt, kt, vt, n_r=5, return_stats=True)
    assert isinstance(o_t, torch.Tensor) and o_t.dtype == torch.float16
    assert o_t.numpy().tobytes() == o_np.tobytes()
    assert stats == stats_t
    assert len(stats) == 9 and all(s["rows"] == 130 for s in stats)
    assert 0 < turboattn.summarize_stats(stats)["sparsity"] < 1


def test_decode_equals_prefill_where_spec_says(rng):
    # SPEC 6: with q_gran=token, 8 bits and t + 1 a multiple of n_b, decode row t equals prefill
    # row t exactly.
    n, block = 128, 64
    q = half_tensor(rng, 1, 4, n, 64)
    k = half_tensor(rng, 1, 2, n, 64)
    v = half_tensor(rng, 1, 2, n, 64)
    knobs = dict(q_gran="token", kv_bits=8, block=block, bc=block)
    pre = turboattn.attention_prefill(q, k, v, **knobs)
    cache = turboattn.KVCache(1, 2, 64, **knobs)
    for t in range(n):
        o = turboattn.attention_decode(q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1],
                                       cache)
        if (t + 1) % block == 0:
            assert o.tobytes() == pre[:, :, t : t + 1].tobytes(), t
    assert len(cache) == n
    b = cache.bytes()
    assert b["tokens"] == n * 2 and b["total"] == b["codes"] + b["metadata"] + b["buffer"]


def test_kv_cache_errors(rng):
    cache = turboattn.KVCache(1, 2, 64, kv_bits=4)
    with pytest.raises(turboattn.Error, match=r"K rows have shape \[1, 3, 4, 64\], the cache expects \[1, 2, t, 64\]"):
        cache.append(half_tensor(rng, 1, 3, 4, 64), half_tensor(rng, 1, 3, 4, 64))
    cache.append(half_tensor(rng, 1, 2, 4, 64), half_tensor(rng, 1, 2, 4, 64))
    with pytest.raises(turboattn.Error, match=r"q_len 5 must be in \[1, cache length 4\]"):
        cache.attention(half_tensor(rng, 1, 2, 5, 64))
    with pytest.raises(turboattn.Error, match="head_bits has 1 entries for 2 kv heads"):
        turboattn.KVCache(1, 2, 64, kv_bits="mixed", head_bits=[2])


def test_decode_compresses_and_stays_close(rng):
    n = 200
    q = half_tensor(rng, 1, 4, n, 64)
    k = half_tensor(rng, 1, 2, n, 64)
    v = half_tensor(rng, 1, 2, n, 64)
    errors = {}
    for bits, ratio in ((8, 1.5), (4, 3.0), (2, 5.0)):
        cache = turboattn.KVCache(1, 2, 64, kv_bits=bits)
        cache.append(k, v)
        o = cache.attention(q[:, :, -8:])
        ref = turboattn.attention_reference(q[:, :, -8:], k, v)
        errors[bits] = np.linalg.norm(o.astype(np.float64) - ref) / np.linalg.norm(ref)
        # 3 full blocks compressed, 8 tokens in the FP16 buffer: well below FP16's 256 B/token.
        assert 256 * n * 2 / cache.bytes()["total"] > ratio
    # Gaussian K has no outlier channels to help: ~15% at 4 bits, ~65% at 2.
    assert errors[8] < 0.03 and errors[4] < 0.25 and errors[8] < errors[4] < errors[2], errors


def test_stage1_matches_spec(rng):
    x = half_tensor(rng, 100, 64, scale=3.0)
    x[64:] = 0  # an all-zero group: scale +0, codes 0
    codes, scales = turboattn.quantize_stage1(x, group_rows=64)
    assert codes.shape == (100, 64) and scales.shape == (2,)
    xf = x.astype(np.float32)
    amax = np.abs(xf[:64]).max()
    assert scales[0] == np.float32(amax / np.float32(127))
    inv = np.float32(1) / scales[0]
    expect = np.clip(np.rint(xf[:64] * inv), -127, 127).astype(np.int8)
    np.testing.assert_array_equal(codes[:64], expect)
    assert scales[1] == 0 and not codes[64:].any()


def test_stage2_roundtrip_bound(rng):
    codes = rng.integers(-127, 128, size=(64, 64), dtype=np.int8)
    for bits in (4, 2):
        for axis in ("channel", "token"):
            block = turboattn.compress_block(codes, bits=bits, axis=axis, group_size=32)
            back = turboattn.decompress_block(block, 64, 64, bits=bits, axis=axis, group_size=32)
            # SPEC 2: s2 = max(1, ceil((hi - lo) / L)); round half up: |q' - q| <= s2 / 2.
            groups = codes.T if axis == "channel" else codes.reshape(64 * 2, 32)
            back_g = back.T if axis == "channel" else back.reshape(64 * 2, 32)
            L = (1 << bits) - 1
            lo = groups.min(1).astype(int)
            hi = groups.max(1).astype(int)
            s2 = np.maximum(1, -(-(hi - lo) // L))
            err = np.abs(back_g.astype(int) - groups.astype(int)).max(1)
            assert (err <= (s2 + 1) // 2).all(), (bits, axis)


def test_asym_and_sas(rng):
    x = half_tensor(rng, 8, 32)
    codes, scales, zeros = turboattn.quantize_asym(x, bits=4, scale_storage="fp32")
    assert codes.max() <= 15
    deq = codes * scales[:, None] + zeros[:, None]
    assert np.abs(deq - x.astype(np.float32)).max() <= scales.max() / 2 * 1.0001
    xs = np.arange(0, 8, 1 / 64, dtype=np.float32).astype(np.float16)
    y = turboattn.sas(xs, n_r=6)
    e = np.exp(-xs.astype(np.float64))
    live = xs < 6
    assert (y[~live] == 0).all()
    assert np.abs(y[live] - e[live]).max() < 2e-3
    exact = turboattn.sas(xs, n_r=6, exp_mode="exact")
    np.testing.assert_allclose(exact[live], e[live], rtol=1e-6)


def test_out_is_written_and_returned(rng):
    q = half_tensor(rng, 1, 4, 40, 64)
    k, v = half_tensor(rng, 1, 2, 40, 64), half_tensor(rng, 1, 2, 40, 64)
    out = np.full(q.shape, np.nan, np.float16)
    o = turboattn.attention_prefill(q, k, v, out=out)
    assert o is out and o.tobytes() == turboattn.attention_prefill(q, k, v).tobytes()
    cache = turboattn.KVCache(1, 2, 64)
    out1 = np.full((1, 4, 1, 64), np.nan, np.float16)
    cache.append(k[:, :, :39], v[:, :, :39])
    o1 = turboattn.attention_decode(q[:, :, 39:], k[:, :, 39:], v[:, :, 39:], cache, out=out1)
    assert o1 is out1 and not np.isnan(out1).any()
    with pytest.raises(turboattn.Error, match="out must be float16 of shape"):
        turboattn.attention_prefill(q, k, v, out=np.empty((1, 4, 39, 64), np.float16))
