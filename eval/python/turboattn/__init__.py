"""turboattn: quantized attention (FlashQ + SAS) and its baselines, from Python.

The numbers come from the same C++ backends as the ``turboattn`` CLI (``ref`` always, ``cuda`` when
built), through the same knob table, so a result here is bit-identical to the CLI's for the same
inputs and knobs. Arrays are NumPy arrays or PyTorch tensors (any object with ``__dlpack__`` on the
host); a result has the type of the query.

    import turboattn
    o = turboattn.attention_prefill(q, k, v, method="flashq", causal=True, n_r=6)

Shapes (SPEC "Conventions"): q ``[B, Hq, N, D]`` float16, k and v ``[B, Hkv, N, D]`` float16, Hq a
multiple of Hkv (query head h reads kv head ``h // (Hq // Hkv)``). Knobs are keyword arguments named
as in :func:`knobs` (``turboattn sweep --help`` lists the same); bad names or values raise
:class:`Error` with the CLI's message.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _core
from ._core import Error  # noqa: F401  (turbo::Error, same text as the CLI's)

__all__ = [
    "Error",
    "KVCache",
    "attention_decode",
    "attention_prefill",
    "attention_reference",
    "backends",
    "compress_block",
    "config_key",
    "decompress_block",
    "error_metrics",
    "knobs",
    "quantize_asym",
    "quantize_stage1",
    "sas",
]

__version__ = "0.1.0"

_BACKENDS: Dict[str, Any] = {}


def backends() -> List[str]:
    """Names of the backends this build has (``ref`` always; ``cuda`` when built with CUDA)."""
    return list(_core.backends())


def knobs() -> List[Dict[str, Any]]:
    """The knob table of ``core/config.h``: name, help, valid values (empty: a number), default."""
    return list(_core.knobs())


def _backend(name: str):
    if name not in _BACKENDS:
        _BACKENDS[name] = _core.make_backend(name)
    return _BACKENDS[name]


def _knob_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def config_key(method: Optional[str] = None, config: str = "", **knobs: Any) -> str:
    """Canonical config key (``AttentionConfig::to_string()``, the report key of every CSV row).

    ``config`` is a ``"name=value,..."`` string as the CLI's ``--config``; keyword knobs override it.
    The result is validated; an unknown knob or value raises :class:`Error`.
    """
    items = [config] if config else []
    if method is not None:
        items.append("method=" + str(method))
    for name, value in knobs.items():
        if "," in _knob_value(name, value) or "=" in _knob_value(name, value):
            raise Error(f"knob '{name}' takes one value, got '{value}'")
        items.append(f"{name}={_knob_value(name, value)}")
    return _core.config_key(",".join(items))


# ---- arrays ---------------------------------------------------------------------------------------


class _Io:
    """Moves one framework's tensors to host memory the extension can read, and results back.

    NumPy arrays and CPU torch tensors are used in place (DLPack, no copy). This is the host path:
    a torch tensor on a GPU reaches it only with ``backend="ref"`` (or for the ops that have no
    device path), and is then copied to the host and the result copied back to its device. The
    ``cuda`` backend's attention and KV cache take CUDA tensors in place (:func:`_cuda_call`).
    """

    def __init__(self, like: Any):
        self.torch = None
        self.device = None
        if type(like).__module__.startswith("torch"):
            import torch

            self.torch = torch
            self.device = like.device

    def host(self, x: Any, name: str, dtype: Optional[str] = None) -> Any:
        if self.torch is not None and isinstance(x, self.torch.Tensor):
            x = x.detach()
            if x.device.type != "cpu":
                x = x.cpu()
            if dtype is not None and str(x.dtype) != "torch." + dtype:
                raise Error(f"{name} must be {dtype}, got {str(x.dtype).replace('torch.', '')}")
            if x.ndim and x.stride(-1) != 1:
                x = x.contiguous()
            return x
        a = np.asarray(x)
        if dtype is not None and a.dtype != np.dtype(dtype):
            raise Error(f"{name} must be {dtype}, got {a.dtype}")
        if a.ndim and a.strides[-1] != a.itemsize:
            a = np.ascontiguousarray(a)
        return a

    def empty(self, shape: Sequence[int], dtype: str) -> Any:
        if self.torch is not None:
            return self.torch.empty(tuple(shape), dtype=getattr(self.torch, dtype))
        return np.empty(tuple(shape), dtype=dtype)

    def result(self, x: Any, out: Any = None) -> Any:
        if out is not None:
            if out is not x:
                if self.torch is not None and isinstance(out, self.torch.Tensor):
                    out.copy_(self.torch.as_tensor(x))
                else:
                    np.copyto(out, np.asarray(x))
            return out
        if self.torch is not None and self.device is not None and self.device.type != "cpu":
            return x.to(self.device)
        return x


def _is_cuda(x: Any) -> bool:
    """Whether x is a torch tensor in CUDA device memory."""
    dev = getattr(x, "device", None)
    return getattr(dev, "type", None) == "cuda" and type(x).__module__.startswith("torch")


def _cuda_stream(x: Any) -> int:
    """The cudaStream_t of torch's current stream on x's device: device-path work is enqueued
    there, ordered after what torch enqueued on it (DLPack export syncs no stream)."""
    import torch

    return int(torch.cuda.current_stream(x.device).cuda_stream)


def _cuda_operands(backend: str, named: Sequence[Tuple[str, Any]]) -> Optional[Any]:
    """The device of the operands when the call takes the zero-copy device path, else None.

    The device path is taken when every operand is a CUDA torch tensor and ``backend`` is
    ``cuda``. CUDA tensors with another backend take the host path (copied to the host, result
    copied back: the rule of ``backend="ref"``); CUDA and host operands mixed in one call, or
    CUDA operands on two devices, are refused.
    """
    on = [_is_cuda(x) for _, x in named]
    if not any(on):
        return None
    if not all(on):
        where = ", ".join(f"{n} on {'cuda' if c else 'the host'}" for (n, _), c in zip(named, on))
        raise Error(f"operands must all be on one device: {where}")
    devices = {x.device for _, x in named}
    if len(devices) > 1:
        raise Error("operands are on several CUDA devices: " + ", ".join(
            f"{n} on {x.device}" for n, x in named))
    if backend != "cuda":
        return None
    for n, x in named:
        if x.dtype != _torch_f16():
            raise Error(f"{n} must be float16, got {str(x.dtype).replace('torch.', '')}")
        _check_4d(n, x)
    return next(iter(devices))


def _torch_f16() -> Any:
    import torch

    return torch.float16


def _device_out(out: Any, like: Any) -> Any:
    """The output tensor of a device-path call: ``out`` (checked) or a new one shaped as ``like``."""
    import torch

    if out is None:
        return torch.empty(like.shape, dtype=torch.float16, device=like.device)
    if not _is_cuda(out) or out.device != like.device:
        raise Error(f"out must be a CUDA tensor on {like.device}, got one on "
                    f"{getattr(out, 'device', 'the host')}")
    if out.dtype != torch.float16 or tuple(out.shape) != tuple(like.shape):
        raise Error(f"out must be float16 of shape {list(like.shape)}, got "
                    f"{str(out.dtype).replace('torch.', '')} {list(out.shape)}")
    return out


def _host_out(out: Any, like: Any) -> Any:
    """Checks a caller's ``out`` for a host-path call (None stays None)."""
    if out is None:
        return None
    if tuple(int(d) for d in out.shape) != _shape(like) or "float16" not in str(out.dtype):
        raise Error(f"out must be float16 of shape {list(_shape(like))}, got {out.dtype} "
                    f"{list(out.shape)}")
    return out


def _shape(x: Any) -> Tuple[int, ...]:
    return tuple(int(s) for s in x.shape)


def _check_4d(name: str, x: Any) -> None:
    if len(_shape(x)) != 4:
        raise Error(f"{name} must have 4 dimensions [B, H, N, D], got shape {list(_shape(x))}")


def _merge_stats(stats: List[Dict[str, Any]]) -> Dict[str, Any]:
    out = {"rows": 0, "scored": 0, "zeroed": 0, "dropped_mass": 0.0}
    for s in stats:
        for key in out:
            out[key] += s[key]
    out["sparsity"] = out["zeroed"] / out["scored"] if out["scored"] else 0.0
    out["mean_dropped_mass"] = out["dropped_mass"] / out["rows"] if out["rows"] else 0.0
    return out


# ---- attention ------------------------------------------------------------------------------------


def attention_prefill(
    q: Any,
    k: Any,
    v: Any,
    method: str = "flashq",
    causal: bool = True,
    backend: str = "ref",
    *,
    config: str = "",
    return_stats: bool = False,
    out: Any = None,
    **knobs: Any,
):
    """Prefill attention over the whole window (SPEC 5 for flashq; the baselines as named).

    q ``[B, Hq, N, D]``, k and v ``[B, Hkv, N, D]``, all float16; returns ``[B, Hq, N, D]`` float16
    of q's type (``out`` itself when given: an array of that shape and dtype, written). With
    ``return_stats=True`` also a list of ``B * Hq`` dicts (index ``b * Hq + h``: rows, scored,
    zeroed, dropped_mass) as the CLI's ``AttentionStats``.

    With ``backend="cuda"`` and CUDA torch tensors, the inputs are read and the output written in
    device memory, no host copy, on torch's current stream (see the package README for the rule).
    """
    key = config_key(method, config, causal=causal, **knobs)
    if _cuda_operands(backend, [("q", q), ("k", k), ("v", v)]) is not None:
        o = _device_out(out, q)
        stats = _core.attention_prefill_cuda(key, q.detach(), k.detach(), v.detach(), o,
                                             _cuda_stream(q), bool(return_stats))
        return (o, stats) if return_stats else o
    io = _Io(q)
    qh, kh, vh = io.host(q, "q", "float16"), io.host(k, "k", "float16"), io.host(v, "v", "float16")
    for name, x in (("q", qh), ("k", kh), ("v", vh)):
        _check_4d(name, x)
    o = io.empty(_shape(qh), "float16")
    stats = _backend(backend).attention_prefill(key, qh, kh, vh, o)
    o = io.result(o, _host_out(out, qh))
    return (o, stats) if return_stats else o


class KVCache:
    """A compressed KV cache of one attention layer (SPEC 6) on one backend.

    ``KVCache(batch, kv_heads, head_dim, method="flashq", backend="ref", head_bits=None, **knobs)``
    holds ``batch x kv_heads`` streams; :meth:`append` adds t tokens (k, v ``[B, Hkv, t, D]``
    float16; blocks of ``block`` tokens compress as the buffer fills) and :meth:`attention` runs
    decode attention for the queries of the last ``q_len`` cached positions. ``head_bits`` gives
    the bits (8, 4 or 2) of each kv head for ``kv_bits="mixed"`` (from ``turboattn calibrate``).

    With ``backend="cuda"`` the cache lives in the memory of CUDA device ``device`` (default: torch's
    current device when torch is imported, else 0); CUDA tensors on that device are appended and
    attended in place (no host copy) on torch's current stream, host arrays through the Backend
    interface's staging.
    """

    def __init__(
        self,
        batch: int,
        kv_heads: int,
        head_dim: int,
        method: str = "flashq",
        backend: str = "ref",
        head_bits: Optional[Sequence[int]] = None,
        *,
        config: str = "",
        device: Optional[int] = None,
        **knobs: Any,
    ):
        self.key = config_key(method, config, **knobs)
        self.backend = backend
        bits = [int(b) for b in head_bits or []]
        if backend == "cuda" and "cuda" in backends():
            self.device = _default_cuda_device() if device is None else int(device)
            self._handle = _core.create_cache_cuda(self.key, int(batch), int(kv_heads),
                                                   int(head_dim), bits, self.device)
        else:
            if device is not None:
                raise Error(f"device applies to backend='cuda', not '{backend}'")
            self.device = None
            self._handle = _backend(backend).create_cache(
                self.key, int(batch), int(kv_heads), int(head_dim), bits)
        self.batch, self.kv_heads, self.head_dim = int(batch), int(kv_heads), int(head_dim)

    def __len__(self) -> int:
        return int(self._handle.length)

    @property
    def length(self) -> int:
        """Tokens per stream."""
        return int(self._handle.length)

    def append(self, k: Any, v: Any) -> None:
        """Appends t tokens: k, v ``[B, Hkv, t, D]`` float16."""
        if _cuda_operands(self.backend, [("k", k), ("v", v)]) is not None:
            self._handle.append_cuda(k.detach(), v.detach(), _cuda_stream(k))
            return
        io = _Io(k)
        kh, vh = io.host(k, "k", "float16"), io.host(v, "v", "float16")
        _check_4d("k", kh)
        _check_4d("v", vh)
        self._handle.append(kh, vh)

    def attention(self, q: Any, *, return_stats: bool = False, out: Any = None):
        """Decode attention: q ``[B, Hq, q_len, D]`` float16 are the queries of the last q_len
        cached positions (causal among themselves); returns q's shape and type (``out`` itself
        when given)."""
        if _cuda_operands(self.backend, [("q", q)]) is not None:
            o = _device_out(out, q)
            stats = self._handle.decode_cuda(q.detach(), o, _cuda_stream(q), bool(return_stats))
            return (o, stats) if return_stats else o
        io = _Io(q)
        qh = io.host(q, "q", "float16")
        _check_4d("q", qh)
        o = io.empty(_shape(qh), "float16")
        stats = self._handle.decode(qh, o)
        o = io.result(o, _host_out(out, qh))
        return (o, stats) if return_stats else o

    def bytes(self) -> Dict[str, int]:
        """Bytes the cache stores (SPEC 8): codes, metadata, buffer, tokens (token-heads), total."""
        return dict(self._handle.bytes())


def attention_decode(q: Any, k: Any, v: Any, cache: KVCache, *, return_stats: bool = False,
                     out: Any = None):
    """Appends the new k, v ``[B, Hkv, t, D]`` to ``cache``, then attends the queries q
    ``[B, Hq, q_len, D]`` (the last q_len positions) over it; the decode step of a generation loop.
    """
    cache.append(k, v)
    return cache.attention(q, return_stats=return_stats, out=out)


def _default_cuda_device() -> int:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return int(torch.cuda.current_device())
    return 0


def attention_reference(q: Any, k: Any, v: Any, causal: bool = True, tau: float = 0.0) -> np.ndarray:
    """Ground truth (SPEC 9): exact softmax attention in FP64 from the FP16 inputs, float64
    ``[B, Hq, Nq, D]`` NumPy. With fewer query rows than keys, the queries are the last positions
    (decode, causal). ``tau <= 0`` means ``1 / sqrt(D)``."""
    io = _Io(q)
    qh, kh, vh = io.host(q, "q", "float16"), io.host(k, "k", "float16"), io.host(v, "v", "float16")
    for name, x in (("q", qh), ("k", kh), ("v", vh)):
        _check_4d(name, x)
    out = np.empty(_shape(qh), dtype=np.float64)
    _core.attention_reference(qh, kh, vh, bool(causal), float(tau), out)
    return out


def error_metrics(o: Any, ref: Any) -> Dict[str, float]:
    """SPEC 9 errors of an FP16 output against the FP64 ground truth over all elements (the CLI's
    ``eval/metrics.h``, FP64 sums in element order): rel_l2, nmse, max_abs, cosine."""
    io = _Io(o)
    oh = io.host(o, "o", "float16")
    r = np.ascontiguousarray(np.asarray(ref, dtype=np.float64))
    if _shape(oh) != r.shape:
        raise Error(f"o has shape {list(_shape(oh))}, ref {list(r.shape)}")
    if io.torch is not None:
        oh = oh.contiguous()
    else:
        oh = np.ascontiguousarray(oh)
    return dict(_core.error_metrics(oh, r))


def summarize_stats(stats: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Sums per-head stats into rows, scored, zeroed, dropped_mass, sparsity, mean_dropped_mass."""
    return _merge_stats(stats)


# ---- ops ------------------------------------------------------------------------------------------


def quantize_stage1(x: Any, group_rows: int = 64, backend: str = "ref") -> Tuple[np.ndarray, np.ndarray]:
    """SPEC 1: x ``[n, d]`` float16, groups of ``group_rows`` rows from row 0 -> (codes int8
    ``[n, d]``, scales float32 ``[ceil(n / group_rows)]``)."""
    x = np.ascontiguousarray(_Io(x).host(x, "x", "float16"))
    if x.ndim != 2:
        raise Error(f"x must be [n, d], got shape {list(x.shape)}")
    codes = np.empty(x.shape, dtype=np.int8)
    scales = np.empty(((x.shape[0] + group_rows - 1) // max(group_rows, 1),), dtype=np.float32)
    _backend(backend).quantize_stage1(x, int(group_rows), codes, scales)
    return codes, scales


def compress_block(
    codes: Any, bits: int = 4, axis: str = "channel", group_size: int = 32, backend: str = "ref"
) -> np.ndarray:
    """SPEC 2 on one block: INT8 codes ``[n_b, d]`` -> the block's bytes (packed codes, s2, z, and
    a stage-1 scale slot left zero), layout of ``core/kv_layout.h``."""
    q = np.ascontiguousarray(np.asarray(codes))
    if q.ndim != 2:
        raise Error(f"codes must be [n_b, d], got shape {list(q.shape)}")
    block = np.zeros((_core.block_bytes(q.shape[0], q.shape[1], int(bits), axis, int(group_size)),),
                     dtype=np.uint8)
    _backend(backend).compress_block(q, int(bits), axis, int(group_size), block)
    return block


def decompress_block(
    block: Any, n_b: int, d: int, bits: int = 4, axis: str = "channel", group_size: int = 32,
    backend: str = "ref",
) -> np.ndarray:
    """Inverse of :func:`compress_block`: the dequantized INT8 codes ``[n_b, d]``."""
    b = np.ascontiguousarray(np.asarray(block))
    q = np.empty((int(n_b), int(d)), dtype=np.int8)
    _backend(backend).decompress_block(b, int(n_b), int(d), int(bits), axis, int(group_size), q)
    return q


def quantize_asym(
    x: Any, bits: int = 4, scale_storage: str = "fp16", backend: str = "ref"
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPEC 3 (KIVI-style): x ``[n_groups, group_len]`` float16 -> (codes uint8, scales float32,
    zeros float32), scales and zeros as stored (``scale_storage`` fp16 or fp32)."""
    x = np.ascontiguousarray(_Io(x).host(x, "x", "float16"))
    if x.ndim != 2:
        raise Error(f"x must be [n_groups, group_len], got shape {list(x.shape)}")
    codes = np.empty(x.shape, dtype=np.uint8)
    scales = np.empty((x.shape[0],), dtype=np.float32)
    zeros = np.empty((x.shape[0],), dtype=np.float32)
    _backend(backend).quantize_asym(x, int(bits), scale_storage, codes, scales, zeros)
    return codes, scales, zeros


def sas(x: Any, backend: str = "ref", *, config: str = "", **knobs: Any) -> np.ndarray:
    """SPEC 4: SAS(x) for FP16 x >= 0 (any shape) as float32, with the SAS knobs (n_r, poly,
    sas_precision, exp_mode)."""
    x = np.ascontiguousarray(_Io(x).host(x, "x", "float16"))
    out = np.empty(x.shape, dtype=np.float32)
    _backend(backend).sas(x, config_key(None, config, **knobs), out)
    return out
