"""Hugging Face integration: run any transformers decoder with turboattn attention substituted.

Needs ``torch`` and ``transformers`` (``pip install .[hf]``; tested with transformers 5.24.0).

- :func:`substitute` registers the attention function ``"turboattn"`` with transformers'
  ``AttentionInterface`` and switches a model to it for the duration of a ``with`` block. Every
  attention layer then runs a turboattn method (FlashQ + SAS or a baseline) on the layer's post-RoPE
  Q, K, V rounded to FP16, in one of two phases, as ``turboattn ppl``: ``prefill`` (one
  ``attention_prefill`` over the window) or ``decode`` (each layer keeps a compressed
  :class:`turboattn.KVCache`; every forward call appends its new tokens and runs decode attention,
  so ``model.generate`` and chunked teacher forcing work). ``method="reference"`` is the ground
  truth (SPEC 9: exact softmax attention in FP64 of the FP16 inputs).
- :func:`capture` records post-RoPE Q, K, V of every (or selected) layer to the HDF5 schema of
  ``datasets/README.md``, with provenance.
- :func:`perplexity` compares a method with the ground truth on next-token predictions: the
  metrics and JSON keys of ``turboattn ppl``.

Limits (each raises :class:`turboattn.Error` naming it): causal self-attention over unpadded
sequences (no padding masks), no sliding windows shorter than the sequence, no attention dropout.
HF's own cache still stores K/V at the model's precision next to turboattn's compressed cache, so
decode memory is not saved here; the numerics are those of the compressed cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

import turboattn

__all__ = ["ATTENTION_NAME", "Session", "capture", "load_gguf", "perplexity", "substitute"]

ATTENTION_NAME = "turboattn"
_ACTIVE: List["Session"] = []


def _torch():
    import torch

    return torch


def _layer_index(module: Any) -> int:
    idx = getattr(module, "layer_idx", None)
    if idx is None:
        raise turboattn.Error(
            f"turboattn.hf: attention module {type(module).__name__} has no layer_idx"
        )
    return int(idx)


class Session:
    """What :func:`substitute` runs in every attention layer; also records per-layer stats.

    ``method``: a turboattn method (flashq, fp16, kivi, int8kv, sage, fp8) or ``reference``.
    ``phase``: ``prefill`` or ``decode``. ``head_bits``: per layer, per kv head bits for
    ``kv_bits="mixed"`` (the ``head_bits`` rows of a ``turboattn calibrate`` JSON). ``record``:
    a callable ``record(layer, q, k, v)`` given the FP16 NumPy ``[B, H, n, D]`` inputs of each call.
    """

    def __init__(
        self,
        method: str = "flashq",
        phase: str = "prefill",
        backend: str = "ref",
        head_bits: Optional[Sequence[Sequence[int]]] = None,
        record: Any = None,
        config: str = "",
        **knobs: Any,
    ):
        if phase not in ("prefill", "decode"):
            raise turboattn.Error(f"phase must be prefill or decode, got '{phase}'")
        self.method = method
        self.phase = phase
        self.backend = backend
        self.head_bits = head_bits
        self.record = record
        self.reference = method == "reference"
        self.key = "reference" if self.reference else turboattn.config_key(method, config, **knobs)
        self.caches: Dict[int, turboattn.KVCache] = {}
        self.stats: Dict[int, List[Dict[str, Any]]] = {}

    def reset(self) -> None:
        """Forgets the KV caches (a new sequence starts)."""
        self.caches.clear()

    def kv_bytes(self) -> Dict[str, int]:
        """Bytes held by every layer's compressed cache (decode), summed."""
        total = {"codes": 0, "metadata": 0, "buffer": 0, "tokens": 0, "total": 0}
        for c in self.caches.values():
            for key, val in c.bytes().items():
                total[key] += val
        return total

    def summary(self) -> Dict[str, Any]:
        """SAS sparsity and dropped mass over every layer and head so far."""
        return turboattn.summarize_stats([s for st in self.stats.values() for s in st])

    def _tau(self, scaling: Optional[float], head_dim: int) -> Dict[str, Any]:
        if scaling is None:
            return {}
        tau = float(np.float32(scaling))
        default = float(np.float32(1.0 / math.sqrt(head_dim)))
        return {} if tau == default else {"tau": tau}

    def attention(self, module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                  scaling: Optional[float] = None, dropout: float = 0.0, **kwargs: Any):
        torch = _torch()
        layer = _layer_index(module)
        if dropout and module.training:
            raise turboattn.Error("turboattn.hf: attention dropout is not supported")
        b, hq, n, d = (int(s) for s in query.shape)
        kv_len = int(key.shape[2])
        window = kwargs.get("sliding_window", getattr(module, "sliding_window", None))
        if window is not None and kv_len > int(window):
            raise turboattn.Error(
                f"turboattn.hf: layer {layer} uses a sliding window of {window} tokens and the "
                f"sequence has {kv_len}; sliding-window attention is not supported"
            )
        _check_causal_mask(attention_mask, n, kv_len, layer)
        q16 = query.detach().to(torch.float16)
        k16 = key.detach().to(torch.float16)
        v16 = value.detach().to(torch.float16)
        if self.record is not None:
            self.record(layer, q16, k16[:, :, kv_len - n :], v16[:, :, kv_len - n :])
        knobs = self._tau(scaling, d)
        if self.reference:
            out = turboattn.attention_reference(q16, k16, v16, causal=True,
                                                tau=knobs.get("tau", 0.0))
            o = torch.from_numpy(out)
        elif self.phase == "prefill":
            if kv_len != n:
                raise turboattn.Error(
                    f"turboattn.hf: phase=prefill attends one whole window per forward call, but "
                    f"layer {layer} got {n} queries over {kv_len} cached keys; use "
                    f"phase='decode' for cached generation"
                )
            key_ = turboattn.config_key(config=self.key, **knobs) if knobs else self.key
            o, stats = turboattn.attention_prefill(q16, k16, v16, config=key_, method=None,
                                                   causal=True, backend=self.backend,
                                                   return_stats=True)
            self._merge(layer, stats)
        else:
            cache = self.caches.get(layer)
            if cache is None or kv_len == n:
                bits = None
                if self.head_bits is not None:
                    bits = list(self.head_bits[layer])
                key_ = turboattn.config_key(config=self.key, **knobs) if knobs else self.key
                cache = turboattn.KVCache(b, int(key.shape[1]), d, method=None, config=key_,
                                          backend=self.backend, head_bits=bits)
                self.caches[layer] = cache
            if cache.length != kv_len - n:
                raise turboattn.Error(
                    f"turboattn.hf: layer {layer}'s compressed cache holds {cache.length} tokens "
                    f"but the model passed {kv_len - n} cached ones; call session.reset() between "
                    f"sequences"
                )
            cache.append(k16[:, :, kv_len - n :], v16[:, :, kv_len - n :])
            o, stats = cache.attention(q16, return_stats=True)
            self._merge(layer, stats)
        o = o.to(device=query.device, dtype=query.dtype)
        return o.transpose(1, 2).contiguous(), None

    def _merge(self, layer: int, stats: List[Dict[str, Any]]) -> None:
        acc = self.stats.get(layer)
        if acc is None:
            self.stats[layer] = [dict(s) for s in stats]
            return
        for a, s in zip(acc, stats):
            for key in ("rows", "scored", "zeroed", "dropped_mass"):
                a[key] += s[key]


def _check_causal_mask(mask: Any, n: int, kv_len: int, layer: int) -> None:
    """Accepts no mask or exactly the causal mask of the last n of kv_len positions."""
    if mask is None:
        return
    torch = _torch()
    m = mask
    if m.dtype != torch.bool:
        m = m == 0  # additive float mask: 0 where attended
    q_pos = torch.arange(kv_len - n, kv_len, device=m.device)[:, None]
    k_pos = torch.arange(kv_len, device=m.device)[None, :]
    causal = k_pos <= q_pos
    if m.shape[-2:] != causal.shape or not bool((m == causal).all()):
        raise turboattn.Error(
            f"turboattn.hf: layer {layer} got an attention mask that is not the plain causal mask "
            f"(padding or a custom mask); turboattn attention is causal over unpadded sequences"
        )


def _attention_entry(module, query, key, value, attention_mask, **kwargs):
    if not _ACTIVE:
        raise turboattn.Error(
            "turboattn.hf: the 'turboattn' attention runs inside `with turboattn.hf.substitute(...)`"
        )
    return _ACTIVE[-1].attention(module, query, key, value, attention_mask, **kwargs)


def register() -> str:
    """Registers the attention function (and its mask function) with transformers; idempotent."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _attention_entry)
    try:  # the mask builder transformers uses for this attention: the SDPA (boolean) mask
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

        ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
    except ImportError:
        pass
    return ATTENTION_NAME


@contextlib.contextmanager
def substitute(model: Any, method: str = "flashq", phase: str = "prefill", backend: str = "ref",
               head_bits: Optional[Sequence[Sequence[int]]] = None, record: Any = None,
               config: str = "", **knobs: Any) -> Iterator[Session]:
    """Runs ``model`` with turboattn attention in every layer inside the ``with`` block.

    ``with turboattn.hf.substitute(model, "flashq", n_r=6) as s: model(ids)``; afterwards the
    model's previous attention implementation is restored. Knobs as in :func:`turboattn.config_key`.
    """
    session = Session(method, phase, backend, head_bits, record, config, **knobs)
    register()
    previous = model.config._attn_implementation
    model.set_attn_implementation(ATTENTION_NAME)
    _ACTIVE.append(session)
    try:
        yield session
    finally:
        _ACTIVE.remove(session)
        model.set_attn_implementation(previous)


# ---- models -------------------------------------------------------------------------------------


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_gguf(path: str, dtype: Any = None):
    """A transformers causal LM from a GGUF file (transformers' own GGUF loader, ``gguf``
    package), in FP32 by default, on the CPU, in eval mode."""
    from transformers import AutoModelForCausalLM

    torch = _torch()
    folder, name = os.path.split(os.path.abspath(path))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                 dtype=dtype or torch.float32)
    model.eval()
    model._turboattn_source = {"model": name, "model_sha256": sha256_file(path)}
    return model


def _provenance(model: Any) -> Dict[str, str]:
    src = getattr(model, "_turboattn_source", None)
    if src:
        return dict(src)
    name = getattr(model.config, "_name_or_path", "") or type(model).__name__
    revision = getattr(model.config, "_commit_hash", None)
    if os.path.isdir(name):
        files = sorted(f for f in os.listdir(name) if f.endswith((".safetensors", ".bin")))
        h = hashlib.sha256()
        for f in files:
            h.update(sha256_file(os.path.join(name, f)).encode())
        return {"model": os.path.basename(os.path.normpath(name)),
                "model_sha256": h.hexdigest() if files else ""}
    return {"model": name, "model_sha256": f"revision {revision}" if revision else ""}


def _ids(tokens: Any):
    torch = _torch()
    ids = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
    if ids.ndim != 1:
        raise turboattn.Error(f"tokens must be one sequence (1-D), got shape {list(ids.shape)}")
    return ids[None, :]


# ---- capture ------------------------------------------------------------------------------------


def capture(model: Any, tokens: Sequence[int], out: str, layers: Optional[Sequence[int]] = None,
            text_source: str = "", command: str = "", force: bool = False) -> str:
    """Post-RoPE Q, K, V of one forward pass over ``tokens`` to ``out`` (HDF5, the schema of
    ``datasets/README.md``, ``schema_version`` 1), attention in every layer being the ground truth
    (as ``turboattn capture``). Q/K/V are the model's tensors rounded once to FP16.
    Provenance: ``model`` and ``model_sha256`` (the file hash for :func:`load_gguf` models; else
    the hash of a local folder's weight files, or ``revision <commit>`` of a hub model), the
    ``text_source`` given (say which text and window), ``command``. Written to ``out + '.tmp'`` and
    renamed. Returns ``out``."""
    import h5py

    torch = _torch()
    if os.path.exists(out) and not force:
        raise turboattn.Error(f"'{out}' exists; pass force=True to overwrite")
    cfg = model.config
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    n_layers = int(text_cfg.num_hidden_layers)
    want = sorted(set(range(n_layers) if layers is None else (int(x) for x in layers)))
    for layer in want:
        if not 0 <= layer < n_layers:
            raise turboattn.Error(f"layer {layer} is not in [0, {n_layers})")
    ids = _ids(tokens)
    captured: Dict[int, Dict[str, np.ndarray]] = {}

    def record(layer, q, k, v):
        if layer in want:
            captured[layer] = {"q": q[0].numpy().copy(), "k": k[0].numpy().copy(),
                               "v": v[0].numpy().copy()}

    with torch.no_grad(), substitute(model, "reference", record=record):
        model(input_ids=ids, use_cache=False)
    missing = [x for x in want if x not in captured]
    if missing:
        raise turboattn.Error(f"no attention call was seen for layers {missing}")
    first = captured[want[0]]
    n_heads, n, head_dim = first["q"].shape
    n_kv = first["k"].shape[0]
    for layer in want:
        for name in ("q", "k", "v"):
            if not np.isfinite(captured[layer][name]).all():
                raise turboattn.Error(f"non-finite value in {name.upper()} (layer {layer})")
    prov = _provenance(model)
    rope = getattr(text_cfg, "rope_theta", None)
    if rope is None:
        rope = (getattr(text_cfg, "rope_parameters", None) or {}).get("rope_theta", float("nan"))
    tmp = out + ".tmp"
    # The C++ writer's file format: HDF5 1.10 (checksummed metadata), fletcher32 on every chunk,
    # strings fixed-length and null-padded (in the checksummed object header, not the global heap).
    def string(text):
        b = str(text).encode("utf-8") or b"\0"
        return np.bytes_(b), h5py.string_dtype("utf-8", len(b))

    with h5py.File(tmp, "w", libver=("v110", "v110"), track_order=True) as f:
        attrs = [
            ("model", *string(prov["model"])),
            ("model_sha256", *string(prov["model_sha256"])),
            ("rope_theta", np.float64(rope), None),
            ("n_layers", np.int32(n_layers), None),
            ("n_heads", np.int32(n_heads), None),
            ("n_kv_heads", np.int32(n_kv), None),
            ("head_dim", np.int32(head_dim), None),
            ("n_tokens", np.int64(n), None),
            ("layers", np.asarray(want, dtype=np.int32), None),
            ("text_source", *string(text_source)),
            ("turboattn_version", *string(turboattn.__version__)),
            ("command", *string(command or "turboattn.hf.capture")),
            ("schema_version", np.int32(1), None),
        ]
        for name, val, dt in attrs:
            if dt is not None:
                f.attrs.create(name, val, dtype=dt)
            else:
                f.attrs[name] = val
        # As the C++ writer: chunked + gzip + fletcher32, no object timestamps (same inputs, same
        # bytes).
        f.create_dataset("tokens", data=np.asarray(tokens, dtype=np.int32), chunks=(n,),
                         shuffle=True, compression="gzip", compression_opts=6, fletcher32=True,
                         track_times=False)
        chunk = (1, min(n, 256), head_dim)
        for layer in want:
            g = f.create_group(f"layers/{layer}")
            for name in ("q", "k", "v"):
                g.create_dataset(name, data=captured[layer][name], chunks=chunk, shuffle=True,
                                 compression="gzip", compression_opts=6, fletcher32=True,
                                 track_times=False)
    os.replace(tmp, out)
    return out


# ---- perplexity / KL / top-1 --------------------------------------------------------------------


def _logits(model: Any, ids: Any, session_args: Dict[str, Any], phase: str, chunk: int,
            eval_from: int):
    torch = _torch()
    n = ids.shape[1]
    with torch.no_grad(), substitute(model, phase=phase, **session_args) as session:
        if phase == "prefill":
            logits = model(input_ids=ids, use_cache=False).logits[0]
        else:
            from transformers import DynamicCache

            past = DynamicCache(config=model.config)
            parts = []
            for start in range(0, n, chunk):
                end = min(n, start + chunk)
                pos = torch.arange(start, end)[None, :]
                # The DynamicCache grows in place (transformers 5.x: the `cache` argument).
                r = model(input_ids=ids[:, start:end], cache=past, use_cache=True, position_ids=pos)
                parts.append(r.logits[0])
            logits = torch.cat(parts)
    scored = logits[eval_from : n - 1].to(torch.float32).numpy()
    return scored, session


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))


def perplexity(model: Any, tokens: Sequence[int], method: str = "flashq", phase: str = "prefill",
               backend: str = "ref", head_bits: Optional[Sequence[Sequence[int]]] = None,
               eval_from: Optional[int] = None, chunk: int = 16, config: str = "",
               json_out: Optional[str] = None, **knobs: Any) -> Dict[str, Any]:
    """Perplexity, KL and top-1 agreement of ``method`` against ground-truth attention, as
    ``turboattn ppl``: two runs (reference attention in every layer; the method in every layer)
    in the same phase, scoring the next-token predictions at positions ``[eval_from, N - 1)``
    (default ``N // 2``). Returns (and with ``json_out`` writes) the keys of ``turboattn ppl
    --json``; ``model`` and ``text`` hold the provenance known here."""
    import time

    torch = _torch()
    if phase not in ("prefill", "decode"):
        raise turboattn.Error(f"phase must be prefill or decode, got '{phase}'")
    if chunk < 1:
        raise turboattn.Error("chunk must be >= 1")
    ids = _ids(tokens)
    n = int(ids.shape[1])
    eval_from = n // 2 if eval_from is None else int(eval_from)
    if not (n >= 3 and 1 <= eval_from < n - 1):
        raise turboattn.Error(
            f"the window has {n} tokens; eval_from {eval_from} must be in [1, {n - 1})"
        )
    key = "reference" if method == "reference" else turboattn.config_key(method, config, **knobs)
    t0 = time.perf_counter()
    ref_logits, _ = _logits(model, ids, {"method": "reference"}, phase, chunk, eval_from)
    seconds_reference = time.perf_counter() - t0
    result: Dict[str, Any] = {"sparsity": 0.0, "dropped_mass": 0.0, "kv_bytes_per_token": 0.0,
                              "kv_ratio_vs_fp16": 0.0}
    if method == "reference":
        met_logits, seconds_method = ref_logits, 0.0
    else:
        t0 = time.perf_counter()
        met_logits, session = _logits(
            model, ids, {"method": None, "config": key, "backend": backend,
                         "head_bits": head_bits}, phase, chunk, eval_from)
        seconds_method = time.perf_counter() - t0
        s = session.summary()
        result["sparsity"] = s["sparsity"]
        result["dropped_mass"] = s["mean_dropped_mass"]
        if phase == "decode":
            b = session.kv_bytes()
            layers = len(session.caches)
            c0 = next(iter(session.caches.values()))
            fp16 = 2.0 * 2.0 * layers * c0.kv_heads * c0.head_dim * n
            result["kv_bytes_per_token"] = b["total"] / n
            result["kv_ratio_vs_fp16"] = fp16 / b["total"] if b["total"] else 0.0
    lp_ref = _log_softmax(ref_logits)
    lp_met = _log_softmax(met_logits)
    targets = np.asarray(ids[0, eval_from + 1 : n].numpy())
    rows = np.arange(len(targets))
    nll_ref = -lp_ref[rows, targets]
    nll_met = -lp_met[rows, targets]
    kl = np.maximum((np.exp(lp_ref) * (lp_ref - lp_met)).sum(-1), 0.0)
    prov = _provenance(model)
    out = {
        "method": key,
        "phase": phase,
        "model": prov["model"],
        "text": getattr(tokens, "source", ""),
        "backend": backend,
        "window": n,
        "skip_tokens": 0,
        "scored": int(len(targets)),
        "ppl_reference": float(np.exp(nll_ref.mean())),
        "ppl_method": float(np.exp(nll_met.mean())),
        "kl_mean": float(kl.mean()),
        "kl_max": float(kl.max()),
        "top1_agreement": float((lp_ref.argmax(-1) == lp_met.argmax(-1)).mean()),
        **result,
        "seconds_reference": seconds_reference,
        "seconds_method": seconds_method,
    }
    if json_out:
        tmp = json_out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        os.replace(tmp, json_out)
    return out
