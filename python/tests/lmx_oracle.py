"""An independent numpy implementation of the llama-family forward with routed LoRA experts
(docs/ARCHITECTURE.md#method), plus a tiny safetensors reader. Test helper only: written for these tests,
sharing no code with the library or tools/.

Everything is computed in float64 from the stored weights (bf16/f16 widened exactly).
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")


# --------------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------------

def _decode(dtype: str, raw: bytes, shape: Sequence[int]) -> np.ndarray:
    if dtype == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    kinds = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
             "I8": "i1", "U8": "u1", "BOOL": "?"}
    return np.frombuffer(raw, dtype=kinds[dtype]).reshape(shape).copy()


def read_safetensors(path: "str | Path") -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """(tensors, metadata) of a safetensors file."""
    data = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, spec in header.items():
        start, end = spec["data_offsets"]
        tensors[name] = _decode(spec["dtype"], data[base + start:base + end], spec["shape"])
    return tensors, metadata


def write_safetensors(path: "str | Path", tensors: Dict[str, np.ndarray],
                      metadata: Optional[Dict[str, str]] = None) -> None:
    """Write float32/int32 arrays as a safetensors file (for crafted test inputs)."""
    names = {np.dtype("float32"): "F32", np.dtype("int32"): "I32", np.dtype("float16"): "F16"}
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs, offset = [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": names[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    encoded = json.dumps(header).encode()
    Path(path).write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def read_model_weights(folder: Path) -> Dict[str, np.ndarray]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights: Dict[str, np.ndarray] = {}
    for name in files:
        weights.update(read_safetensors(folder / name)[0])
    return weights


# --------------------------------------------------------------------------------------------
# config and RoPE
# --------------------------------------------------------------------------------------------

@dataclass
class Config:
    vocab: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    eps: float
    theta: float
    rope: Dict[str, object]
    sliding_window: Optional[int]
    tied: bool

    @staticmethod
    def load(folder: Path) -> "Config":
        c = json.loads((folder / "config.json").read_text())
        heads = c["num_attention_heads"]
        rope = dict(c.get("rope_parameters") or {})
        if not rope:  # the older form: top-level rope_theta and rope_scaling
            rope = dict(c.get("rope_scaling") or {})
            rope["rope_theta"] = c.get("rope_theta", 10000.0)
        if "type" in rope and "rope_type" not in rope:
            rope["rope_type"] = rope["type"]
        window = c.get("sliding_window")
        if c.get("use_sliding_window") is False:
            window = None
        return Config(vocab=c["vocab_size"], d_model=c["hidden_size"], n_layers=c["num_hidden_layers"],
                      n_heads=heads, n_kv_heads=c.get("num_key_value_heads") or heads,
                      head_dim=c.get("head_dim") or c["hidden_size"] // heads, d_ff=c["intermediate_size"],
                      eps=c.get("rms_norm_eps", 1e-6), theta=float(rope.get("rope_theta", 10000.0)),
                      rope=rope, sliding_window=window, tied=bool(c.get("tie_word_embeddings", False)))

    def module_shape(self, module: str) -> Tuple[int, int]:
        q, kv = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        return {"q_proj": (self.d_model, q), "k_proj": (self.d_model, kv), "v_proj": (self.d_model, kv),
                "o_proj": (q, self.d_model), "gate_proj": (self.d_model, self.d_ff),
                "up_proj": (self.d_model, self.d_ff), "down_proj": (self.d_ff, self.d_model)}[module]


def inverse_frequencies(cfg: Config) -> np.ndarray:
    dim = cfg.head_dim
    inv = 1.0 / (cfg.theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    kind = cfg.rope.get("rope_type", "default")
    if kind in (None, "default"):
        return inv
    if kind != "llama3":
        raise NotImplementedError(f"rope_type {kind}")
    factor = float(cfg.rope["factor"])
    low = float(cfg.rope["low_freq_factor"])
    high = float(cfg.rope["high_freq_factor"])
    original = float(cfg.rope["original_max_position_embeddings"])
    wavelength = 2 * math.pi / inv
    low_wavelength, high_wavelength = original / low, original / high
    scaled = np.where(wavelength > low_wavelength, inv / factor, inv)       # long waves: divided
    smooth = (original / wavelength - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    middle = (wavelength >= high_wavelength) & (wavelength <= low_wavelength)
    return np.where(middle, blended, scaled)


def apply_rope(x: np.ndarray, positions: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """x [T, heads, head_dim], rotate-half convention (first half paired with second half)."""
    angles = positions[:, None] * inv[None, :]                       # [T, dim/2]
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)[:, None, :]
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


# --------------------------------------------------------------------------------------------
# experts and routers
# --------------------------------------------------------------------------------------------

DeltaFn = Callable[[int, str, np.ndarray], Optional[np.ndarray]]


@dataclass
class Expert:
    """A LoRA ({(layer, module): (A, B, scale)}) or a function delta(layer, module, u) -> [T, out]."""

    name: str
    lora: Dict[Tuple[int, str], Tuple[np.ndarray, np.ndarray, float]] = field(default_factory=dict)
    fn: Optional[DeltaFn] = None

    def delta(self, layer: int, module: str, u: np.ndarray) -> Optional[np.ndarray]:
        if self.fn is not None:
            return self.fn(layer, module, u)
        entry = self.lora.get((layer, module))
        if entry is None:
            return None
        a, b, scale = entry
        return scale * ((u @ a.T) @ b.T)


def _pattern_value(pattern: Dict[str, object], full_name: str, default: object) -> object:
    for key, value in pattern.items():
        if full_name == key or full_name.endswith("." + key) or re.fullmatch(key, full_name):
            return value
    return default


def load_peft(folder: Path, name: Optional[str] = None) -> Expert:
    """A PEFT LoRA folder: per-module rank/alpha from rank_pattern/alpha_pattern, rslora."""
    config = json.loads((folder / "adapter_config.json").read_text())
    tensors, _ = read_safetensors(folder / "adapter_model.safetensors")
    expert = Expert(name or folder.name)
    found = re.compile(r"base_model\.model\.(model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+))\.lora_A\.weight$")
    for key, a in tensors.items():
        match = found.match(key)
        if not match:
            continue
        full, layer, module = match.group(1), int(match.group(2)), match.group(3)
        b = tensors[key.replace("lora_A", "lora_B")]
        r = int(_pattern_value(config.get("rank_pattern") or {}, full, config["r"]))  # type: ignore[arg-type]
        alpha = float(_pattern_value(config.get("alpha_pattern") or {}, full, config["lora_alpha"]))  # type: ignore[arg-type]
        assert a.shape[0] == r, (key, a.shape, r)
        scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        expert.lora[(layer, module)] = (a.astype(np.float64), b.astype(np.float64), scale)
    return expert


@dataclass
class Router:
    weights: List[np.ndarray]                 # per layer [E, d], rows in MIXER order
    biases: List[np.ndarray]
    context: Optional[List[np.ndarray]]
    top_k: int
    temperature: float

    @staticmethod
    def load(path: Path, mixer_order: Sequence[str]) -> "Router":
        tensors, meta = read_safetensors(path)
        assert meta["format"] == "loramixer.router"
        names = json.loads(meta["experts"])
        order = [names.index(n) for n in mixer_order]       # file row of each mixer expert
        layers = sorted({int(k.split(".")[2]) for k in tensors})
        w = [tensors[f"router.layers.{i}.weight"].astype(np.float64)[order] for i in layers]
        b = [tensors.get(f"router.layers.{i}.bias", np.zeros(len(names))).astype(np.float64)[order]
             for i in layers]
        ctx = None
        if meta.get("input", "token") == "context":
            ctx = [tensors[f"router.layers.{i}.context_weight"].astype(np.float64)[order] for i in layers]
        return Router(w, b, ctx, int(meta.get("top_k", 2)), float(meta.get("temperature", 1.0)))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------------
# the forward
# --------------------------------------------------------------------------------------------

class Oracle:
    def __init__(self, folder: "str | Path") -> None:
        self.folder = Path(folder)
        self.cfg = Config.load(self.folder)
        self.w = {k: v.astype(np.float64) for k, v in read_model_weights(self.folder).items()}
        self.inv_freq = inverse_frequencies(self.cfg)

    def _rms(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.cfg.eps) * weight

    def _linear(self, layer: int, module: str, u: np.ndarray, gates: np.ndarray,
                experts: Sequence[Expert]) -> np.ndarray:
        part = "self_attn" if module in _ATTN else "mlp"
        prefix = f"model.layers.{layer}.{part}.{module}"
        y = u @ self.w[prefix + ".weight"].T
        bias = self.w.get(prefix + ".bias")
        if bias is not None:
            y = y + bias
        for e, expert in enumerate(experts):
            g = gates[:, e]
            if not np.any(g):
                continue
            d = expert.delta(layer, module, u)
            if d is not None:
                y = y + g[:, None] * d
        return y

    def forward(self, tokens: Sequence[int], experts: Sequence[Expert] = (), routing: str = "none",
                router: Optional[Router] = None, fixed: Optional[Sequence[float]] = None,
                top_k: Optional[int] = None, temperature: Optional[float] = None
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logits [T, V], trace ids [T, L, E], trace gates [T, L, E]) for the whole sequence."""
        cfg = self.cfg
        tokens = np.asarray(tokens)
        n, n_exp = len(tokens), len(experts)
        x = self.w["model.embed_tokens.weight"][tokens]
        positions = np.arange(n, dtype=np.float64)
        trace_ids = -np.ones((n, cfg.n_layers, n_exp), dtype=np.int32)
        trace_gates = np.zeros((n, cfg.n_layers, n_exp), dtype=np.float64)
        group = cfg.n_heads // cfg.n_kv_heads
        s, t = np.arange(n)[None, :], np.arange(n)[:, None]
        allowed = s <= t
        if cfg.sliding_window:
            allowed &= s > t - cfg.sliding_window
        for layer in range(cfg.n_layers):
            p = f"model.layers.{layer}."
            h = self._rms(x, self.w[p + "input_layernorm.weight"])
            gates = np.zeros((n, n_exp))
            if routing == "learned" or routing == "soft":
                assert router is not None
                z = h @ router.weights[layer].T + router.biases[layer]
                if router.context is not None:
                    running = np.cumsum(h, axis=0) / np.arange(1, n + 1)[:, None]
                    z = z + running @ router.context[layer].T
                probs = _softmax(z / (temperature or router.temperature))
                if routing == "soft":
                    gates = probs
                else:
                    k = top_k or router.top_k
                    top = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
                    chosen = np.take_along_axis(probs, top, axis=-1)
                    np.put_along_axis(gates, top, chosen / chosen.sum(axis=-1, keepdims=True), axis=-1)
            elif routing == "uniform":
                gates[:] = 1.0 / n_exp
            elif routing == "fixed":
                gates[:] = np.asarray(fixed, dtype=np.float64)
            else:
                assert routing == "none", routing
            for i in range(n):
                used = [e for e in np.argsort(-gates[i], kind="stable") if gates[i, e] != 0]
                trace_ids[i, layer, :len(used)] = used
                trace_gates[i, layer, :len(used)] = gates[i, used]
            q = self._linear(layer, "q_proj", h, gates, experts).reshape(n, cfg.n_heads, cfg.head_dim)
            k = self._linear(layer, "k_proj", h, gates, experts).reshape(n, cfg.n_kv_heads, cfg.head_dim)
            v = self._linear(layer, "v_proj", h, gates, experts).reshape(n, cfg.n_kv_heads, cfg.head_dim)
            q, k = apply_rope(q, positions, self.inv_freq), apply_rope(k, positions, self.inv_freq)
            attn = np.zeros((n, cfg.n_heads, cfg.head_dim))
            for head in range(cfg.n_heads):
                kv = head // group
                scores = (q[:, head] @ k[:, kv].T) / math.sqrt(cfg.head_dim)
                scores = np.where(allowed, scores, -np.inf)
                attn[:, head] = _softmax(scores) @ v[:, kv]
            x = x + self._linear(layer, "o_proj", attn.reshape(n, -1), gates, experts)
            m = self._rms(x, self.w[p + "post_attention_layernorm.weight"])
            gate = self._linear(layer, "gate_proj", m, gates, experts)
            up = self._linear(layer, "up_proj", m, gates, experts)
            act = gate / (1.0 + np.exp(-gate)) * up
            x = x + self._linear(layer, "down_proj", act, gates, experts)
        x = self._rms(x, self.w["model.norm.weight"])
        head = self.w.get("lm_head.weight")
        if head is None or cfg.tied:
            head = self.w["model.embed_tokens.weight"]
        return x @ head.T, trace_ids, trace_gates
