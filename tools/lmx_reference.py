"""Independent torch reference for the LoRA-Mixer forward pass (docs/ARCHITECTURE.md#method).

This module writes nothing by itself. It is imported by `tools/make_fixtures.py` and
`tools/make_train_fixture.py` (both put `tools/` on `sys.path` because Python runs them as
scripts from there), and gives them:

- `LoraExpert.load(folder)`: read a PEFT LoRA folder (adapter_config.json +
  adapter_model.safetensors) into per-(layer, module) `(A, B, scale)` triples, with the
  per-module rank/alpha from `rank_pattern`/`alpha_pattern` and `use_rslora` (llama tensor
  names by default; `tensor_name` / `module_path` give another family's, as mamba_reference does);
- `write_router` / `Router.load`: the router safetensors format of docs/ARCHITECTURE.md#router-file;
- `Mixture`: forward hooks on a Hugging Face llama-family model (llama, mistral, qwen2) that
  implement the routed projection
      y_t = W_m u_t + sum_{e in S_t} g_{t,e} * s_e * B_e[m] (A_e[m] u_t)
  with the gates of the routing modes `learned` (top-K), `soft`, `uniform` and `fixed`,
  and a router input of `token` or `context` (causal running mean of h).

It deliberately does not use PEFT's LoRA layers: it is the independent oracle that the
fixtures are computed with, and it is checked against `peft.PeftModel` (one-hot fixed weights
must reproduce a single adapter).

Requirements: torch, safetensors (and transformers for the models it hooks).
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass, field

import torch
from safetensors import safe_open
from safetensors.torch import save_file

# The seven llama-family projection names and the sub-module each lives in.
MODULE_PARENT = {
    "q_proj": "self_attn",
    "k_proj": "self_attn",
    "v_proj": "self_attn",
    "o_proj": "self_attn",
    "gate_proj": "mlp",
    "up_proj": "mlp",
    "down_proj": "mlp",
}
MODULES = tuple(MODULE_PARENT)

# A PEFT tensor name: `path` is the module path (checked against `module_path`), `layer`, `module`
# and `which` (A or B) what it is filed under.
_LORA_NAME = re.compile(
    r"^base_model\.model\.(?P<path>model\.layers\.(?P<layer>\d+)\.(self_attn|mlp)\.(?P<module>\w+))"
    r"\.lora_(?P<which>[AB])\.weight$"
)


def _module_path(layer: int, module: str) -> str:
    """The PEFT module path of a llama-family projection (its parent from MODULE_PARENT)."""
    return f"model.layers.{layer}.{MODULE_PARENT.get(module)}.{module}"


def _pattern_value(pattern: dict, module_path: str):
    """Value of the first key of a PEFT rank/alpha pattern whose regex matches the end of
    `module_path` on a dot boundary (PEFT's documented matching rule); None if none does."""
    for key, value in (pattern or {}).items():
        if re.match(rf"(.*\.)?({key})$", module_path):
            return value
    return None


@dataclass
class LoraExpert:
    """One PEFT LoRA adapter, as tensors keyed by (layer, module)."""

    name: str
    folder: str
    config: dict
    # (layer, module) -> (A [r, in], B [out, r], scale)
    tensors: dict = field(default_factory=dict)

    @classmethod
    def load(cls, folder: str, name: str | None = None, *, tensor_name: re.Pattern = _LORA_NAME,
             module_path=_module_path) -> "LoraExpert":
        """Read a PEFT LoRA folder. `tensor_name` matches every tensor name, with the groups `path`
        (the module path), `layer`, `module` and `which` (A or B); `module_path(layer, module)` is the
        path PEFT gives that module, which the name's `path` must be and the rank/alpha patterns
        are matched against. The defaults are the llama family's; mamba_reference passes its own."""
        with open(os.path.join(folder, "adapter_config.json")) as f:
            cfg = json.load(f)
        if cfg.get("fan_in_fan_out", False):
            raise ValueError(f"{folder}: fan_in_fan_out=true is not handled by this reference")
        rslora = bool(cfg.get("use_rslora", False))
        default_r = int(cfg["r"])
        default_alpha = float(cfg["lora_alpha"])
        raw: dict = {}
        with safe_open(os.path.join(folder, "adapter_model.safetensors"), framework="pt") as f:
            for key in f.keys():
                m = tensor_name.match(key)
                if m is None:
                    raise ValueError(f"{folder}: unexpected tensor name {key}")
                layer, module = int(m["layer"]), m["module"]
                if module_path(layer, module) != m["path"]:  # e.g. a llama projection under the wrong parent
                    where = m["path"].split(".", 3)[3]  # what follows the layer number: "mlp.q_proj"
                    raise ValueError(f"{folder}: unexpected module {where}")
                raw.setdefault((layer, module), {})[m["which"]] = f.get_tensor(key).float()
        tensors = {}
        for (layer, module), ab in sorted(raw.items()):
            if set(ab) != {"A", "B"}:
                raise ValueError(f"{folder}: layer {layer} {module} lacks lora_A or lora_B")
            A, B = ab["A"], ab["B"]
            r = A.shape[0]
            if B.shape[1] != r:
                raise ValueError(f"{folder}: rank mismatch at layer {layer} {module}")
            path = module_path(layer, module)
            r_cfg = _pattern_value(cfg.get("rank_pattern"), path)
            r_cfg = default_r if r_cfg is None else int(r_cfg)
            if r_cfg != r:
                raise ValueError(f"{folder}: {path} has rank {r} in the tensors, {r_cfg} in the config")
            alpha = _pattern_value(cfg.get("alpha_pattern"), path)
            alpha = default_alpha if alpha is None else float(alpha)
            scale = alpha / math.sqrt(r) if rslora else alpha / r
            tensors[(layer, module)] = (A, B, scale)
        return cls(name=name or os.path.basename(os.path.normpath(folder)), folder=folder,
                   config=cfg, tensors=tensors)


# ----------------------------------------------------------------------------- router files

def write_router(path: str, experts: list[str], weights: list[torch.Tensor], biases: list[torch.Tensor],
                 *, top_k: int, temperature: str, input_kind: str = "token",
                 context_weights: list[torch.Tensor] | None = None) -> None:
    """Write a router file as docs/ARCHITECTURE.md#router-file (scope "layer"). `temperature` is written
    verbatim (a string such as "1.0"); rows of every matrix follow `experts`."""
    tensors = {}
    for i, (w, b) in enumerate(zip(weights, biases)):
        tensors[f"router.layers.{i}.weight"] = w.detach().float().contiguous()
        tensors[f"router.layers.{i}.bias"] = b.detach().float().contiguous()
        if context_weights is not None:
            tensors[f"router.layers.{i}.context_weight"] = context_weights[i].detach().float().contiguous()
    metadata = {
        "format": "loramixer.router",
        "version": "1",
        "experts": json.dumps(list(experts), separators=(",", ":")),
        "top_k": str(int(top_k)),
        "scope": "layer",
        "temperature": temperature,
        "input": input_kind,
    }
    save_file(tensors, path, metadata=metadata)
    sort_safetensors_metadata(path)


def sort_safetensors_metadata(path: str) -> None:
    """safetensors writes `__metadata__` entries in hash-map order, which changes from run to run;
    rewrite the header in place with the metadata keys sorted (same length, same tensors), so
    reruns produce identical bytes."""
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        raw = f.read(n)
        header = json.loads(raw)
        meta = header.pop("__metadata__", None)
        if meta is None:
            return
        new = {"__metadata__": dict(sorted(meta.items()))}
        new.update(header)
        text = json.dumps(new, separators=(",", ":")).encode()
        if len(text) > n:
            raise RuntimeError(f"{path}: re-serialised header is longer than the original")
        f.seek(8)
        f.write(text + b" " * (n - len(text)))


@dataclass
class Router:
    experts: list
    weights: list
    biases: list
    context_weights: list | None
    top_k: int
    temperature: float
    input_kind: str

    @classmethod
    def load(cls, path: str) -> "Router":
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != "loramixer.router" or meta.get("version") != "1":
                raise ValueError(f"{path}: not a loramixer.router v1 file")
            if meta.get("scope", "layer") != "layer":
                raise ValueError(f"{path}: only scope=layer is handled by this reference")
            input_kind = meta.get("input", "token")
            experts = json.loads(meta["experts"])
            keys = set(f.keys())
            n_layers = 0
            while f"router.layers.{n_layers}.weight" in keys:
                n_layers += 1
            weights = [f.get_tensor(f"router.layers.{i}.weight").float() for i in range(n_layers)]
            biases = []
            for i in range(n_layers):
                k = f"router.layers.{i}.bias"
                biases.append(f.get_tensor(k).float() if k in keys else torch.zeros(len(experts)))
            ctx = None
            if input_kind == "context":
                ctx = [f.get_tensor(f"router.layers.{i}.context_weight").float() for i in range(n_layers)]
        return cls(experts=experts, weights=weights, biases=biases, context_weights=ctx,
                   top_k=int(meta["top_k"]), temperature=float(meta["temperature"]), input_kind=input_kind)


# ----------------------------------------------------------------------------- the mixture

@dataclass
class LayerTrace:
    probs: torch.Tensor | None  # [T, E] router probabilities in canonical expert order (None: no router)
    ids: torch.Tensor | None  # [T, K] selected canonical expert indices, by gate descending
    gates: torch.Tensor  # [T, E] dense gates in canonical order (0 for unselected)


class Mixture:
    """Hooks a llama-family `*ForCausalLM` so its projections add routed LoRA deltas.

    `experts` fixes the canonical expert order (index 0..E-1). Call `run(...)` once per
    routing configuration; hooks are installed for the call and removed afterwards.
    """

    def __init__(self, model, experts: list[LoraExpert]):
        self.model = model
        self.experts = experts
        self.names = [e.name for e in experts]
        self.layers = model.model.layers

    def _router_gates(self, layer: int, h: torch.Tensor, router: Router, top_k: int, temperature: float):
        # Map the router's rows (file order) onto the canonical order by name.
        if sorted(router.experts) != sorted(self.names) or len(set(router.experts)) != len(router.experts):
            raise ValueError(f"router experts {router.experts} do not match {self.names}")
        perm = [router.experts.index(n) for n in self.names]  # canonical index -> file row
        z = h @ router.weights[layer].T + router.biases[layer]
        if router.input_kind == "context":
            count = torch.arange(1, h.shape[0] + 1, dtype=h.dtype).unsqueeze(1)
            c = torch.cumsum(h, dim=0) / count
            z = z + c @ router.context_weights[layer].T
        p = torch.softmax(z / temperature, dim=-1)[:, perm]
        if top_k is None or top_k >= p.shape[1]:
            ids = torch.argsort(p, dim=-1, descending=True)
            return p, ids, p.clone()
        vals, ids = torch.topk(p, top_k, dim=-1)  # sorted descending
        g = vals / vals.sum(dim=-1, keepdim=True)
        dense = torch.zeros_like(p).scatter(1, ids, g)
        return p, ids, dense

    @torch.no_grad()
    def run(self, tokens: torch.Tensor, mode: str, *, router: Router | None = None,
            fixed: list[float] | None = None, top_k: int | None = None, temperature: float | None = None):
        """Return (logits [T, V] float32, [LayerTrace per layer]).

        mode: "learned" (top-K of the router), "soft" (all experts, g = p), "uniform"
        (g = 1/E), "fixed" (g = `fixed` as given), "none" (base model).
        `top_k` / `temperature` override the router file's values.
        """
        E = len(self.experts)
        traces: list[LayerTrace | None] = [None] * len(self.layers)
        handles = []

        def norm_hook(layer):
            def hook(mod, inp, out):
                h = out[0].float()  # [T, d]; batch of one
                if mode in ("learned", "soft"):
                    k = router.top_k if top_k is None else top_k
                    t = router.temperature if temperature is None else temperature
                    p, ids, g = self._router_gates(layer, h, router, None if mode == "soft" else k, t)
                    traces[layer] = LayerTrace(p, ids, g)
                elif mode == "uniform":
                    traces[layer] = LayerTrace(None, None, torch.full((h.shape[0], E), 1.0 / E))
                elif mode == "fixed":
                    w = torch.tensor(fixed, dtype=torch.float32).expand(h.shape[0], E)
                    traces[layer] = LayerTrace(None, None, w.clone())
                elif mode == "none":
                    traces[layer] = LayerTrace(None, None, torch.zeros(h.shape[0], E))
                else:
                    raise ValueError(mode)
            return hook

        def proj_hook(layer, module):
            terms = [(e_idx, ex.tensors[(layer, module)]) for e_idx, ex in enumerate(self.experts)
                     if (layer, module) in ex.tensors]

            def hook(mod, inp, out):
                u = inp[0].float()  # [1, T, in]
                g = traces[layer].gates  # [T, E]
                delta = torch.zeros(out.shape, dtype=torch.float32)
                for e_idx, (A, B, s) in terms:
                    delta = delta + (g[:, e_idx:e_idx + 1] * s) * ((u @ A.T) @ B.T)
                return (out.float() + delta).to(out.dtype)
            return hook

        try:
            for i, layer in enumerate(self.layers):
                handles.append(layer.input_layernorm.register_forward_hook(norm_hook(i)))
                for module, parent in MODULE_PARENT.items():
                    lin = getattr(getattr(layer, parent), module)
                    handles.append(lin.register_forward_hook(proj_hook(i, module)))
            logits = self.model(input_ids=tokens.view(1, -1).long()).logits[0].float()
        finally:
            for h in handles:
                h.remove()
        return logits, traces


def probability_gaps(traces: list[LayerTrace]) -> float:
    """Smallest gap between consecutive sorted router probabilities (1st-2nd and 2nd-3rd)
    over all tokens and layers."""
    worst = float("inf")
    for tr in traces:
        p = torch.sort(tr.probs, dim=-1, descending=True).values
        n = min(3, p.shape[1])
        for j in range(n - 1):
            worst = min(worst, float((p[:, j] - p[:, j + 1]).min()))
    return worst


def selection_table(traces: list[LayerTrace], names: list[str]) -> str:
    """One line per layer: the selected experts per token, best first, e.g. `0>2`."""
    lines = []
    for i, tr in enumerate(traces):
        cells = [">".join(str(int(x)) for x in row) for row in tr.ids]
        lines.append(f"    layer {i}: " + " ".join(cells))
    lines.append("    (expert indices: " + ", ".join(f"{k}={n}" for k, n in enumerate(names)) + ")")
    return "\n".join(lines)
