"""Independent, differentiable torch reference for Mamba / FalconMamba with routed LoRA experts.

This module writes nothing by itself. It is imported by `tools/make_mamba_fixtures.py` (and meant to
be imported by a training-fixture script; both put `tools/` on `sys.path`). It computes the forward
pass of transformers' `MambaForCausalLM` / `FalconMambaForCausalLM` directly from the weights, WITHOUT
calling any transformers module, and lets a caller change each of the four mixer Linears
(`in_proj`, `x_proj`, `dt_proj`, `out_proj`) through a hook, which is how the LoRA-Mixer routed
projection of docs/ARCHITECTURE.md#method is added:

    y_t = W_m u_t (+ b_m) + sum_e g_{t,e} * s_e * B_e[m] (A_e[m] u_t)

with u_t that Linear's own input and the gates g decided once per layer and token from
h_t = the block's RMSNorm output (the mixer input).

The forward (one sequence of T tokens, zero initial conv and SSM state), as transformers 5.24 computes
it in its pure-torch path (`causal_conv1d_fn` + the sequential loop of `mamba_selective_scan`):

    x = embeddings[tokens]                                     [T, d]
    per layer l:
      h = RMSNorm(x) * norm.weight                            (eps layer_norm_epsilon)
      xz = in_proj(h)                                          [T, 2I]; xs = xz[:, :I], z = xz[:, I:]
      u = silu(causal depthwise conv1d(xs) + conv1d.bias)      (kernel K, K-1 zeros on the left)
      dt, B, C = split(x_proj(u), [R, N, N])
      FalconMamba only: dt, B, C = each / sqrt(mean(.^2) + mixer_rms_eps)  (no weight)
      delta = softplus(dt_proj(dt))                            [T, I] (dt_proj has a bias)
      A = -exp(A_log)                                          [I, N]
      s_t = exp(delta_t * A) * s_{t-1} + delta_t * B_t * u_t   [I, N]  (per channel c, state j)
      y_t = s_t C_t + D * u_t;  out = y * silu(z)
      x = x + out_proj(out)
    logits = lm_head(RMSNorm(x) * norm_f.weight)               (lm_head = embeddings when tied)

NOTE: transformers computes `dt_proj.weight @ dt` directly (not the module), so a PEFT LoRA on
`dt_proj` is silently ignored there; PEFT also refuses `out_proj`/`conv1d` as targets on Mamba
models. This reference applies experts on all four Linears through `proj`.

API
---
- `MambaReference(state_dict, config, dtype=torch.float32)`; `MambaReference.from_pretrained(folder)`.
  `.forward(tokens, route=None, proj=None) -> logits [T, V]` (differentiable; no torch.no_grad inside):
    `route(l, h) -> gates [T, E] or None` is called once per layer with h [T, d] (the mixer input);
    `proj(l, module, u, base_out, gates) -> out` is called for each of "in_proj", "x_proj",
    "dt_proj", "out_proj" with u [T, in] that Linear's input, base_out = u W^T (+ bias) [T, out],
    and gates = what `route` returned for layer l (None without `route`); it returns the output to use.
- `load_expert(folder, name=None) -> lmx_reference.LoraExpert`: a PEFT-layout Mamba LoRA folder
  (`base_model.model.backbone.layers.{i}.mixer.{module}.lora_{A,B}.weight`) as
  `tensors[(layer, module)] = (A [r, in], B [out, r], scale)`, scale from r / lora_alpha /
  rank_pattern / alpha_pattern / use_rslora exactly as lmx_reference does for llama.
- `lora_proj(experts) -> proj`: the routed-LoRA `proj` hook for a list of experts (anything with a
  `.tensors` dict as above, or such dicts themselves; tensors may require grad).
- `make_route(mode, names, *, router=None, fixed=None, top_k=None, temperature=None) -> (route, traces)`:
  the gates of docs/ARCHITECTURE.md#method (`learned` top-K renormalised, `soft`, `uniform`, `fixed`, `none`),
  computed with lmx_reference's own router code (`Mixture._router_gates`); `traces[l]` receives an
  `lmx_reference.LayerTrace` (probs, ids, dense gates) for each layer when `route` runs.
- `MambaMixture(ref, experts).run(tokens, mode, *, router=None, fixed=None, top_k=None,
  temperature=None) -> (logits, traces)`: the same interface as `lmx_reference.Mixture.run`
  (no_grad), so make_fixtures.py's router-seed search can drive it unchanged.

Requirements: torch, safetensors.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import types

import torch
import torch.nn.functional as F
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lmx_reference import LayerTrace, LoraExpert, Mixture, Router  # noqa: E402

MAMBA_MODULES = ("in_proj", "x_proj", "dt_proj", "out_proj")
FAMILIES = ("mamba", "falcon_mamba")

_LORA_NAME = re.compile(  # groups as lmx_reference.LoraExpert.load wants them
    r"^base_model\.model\.(?P<path>backbone\.layers\.(?P<layer>\d+)\.mixer\."
    r"(?P<module>in_proj|x_proj|dt_proj|out_proj))\.lora_(?P<which>[AB])\.weight$"
)


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class MambaReference:
    """Mamba / FalconMamba causal LM computed from its weights (see the module docstring).

    state_dict: the `*ForCausalLM` state dict (names `backbone.…`, `lm_head.weight`; the latter may
    be absent when tied). config: the config.json dict (or `model.config.to_dict()`).
    All weights are converted to `dtype` (float32 or float64) once.
    """

    def __init__(self, state_dict: dict, config: dict, dtype: torch.dtype = torch.float32):
        cfg = dict(config)
        self.family = cfg.get("model_type")
        if self.family not in FAMILIES:
            raise ValueError(f"model_type {self.family!r} is not one of {FAMILIES}")
        self.dtype = dtype
        self.d = int(cfg["hidden_size"])
        self.I = int(cfg.get("intermediate_size") or int(cfg.get("expand", 2)) * self.d)
        self.N = int(cfg["state_size"])
        r = cfg.get("time_step_rank", "auto")
        self.R = math.ceil(self.d / 16) if r == "auto" else int(r)
        self.K = int(cfg["conv_kernel"])
        self.L = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_epsilon", 1e-5))
        self.mixer_eps = float(cfg.get("mixer_rms_eps", 1e-6))
        self.falcon = self.family == "falcon_mamba"
        self.tied = bool(cfg.get("tie_word_embeddings", True))
        self.act = cfg.get("hidden_act", "silu")
        if self.act != "silu":
            raise ValueError(f"hidden_act {self.act!r} is not handled")
        sd = {k: v.detach().to(dtype) for k, v in state_dict.items()}
        self.w = sd
        self.embeddings = sd["backbone.embeddings.weight"]
        self.norm_f = sd["backbone.norm_f.weight"]
        self.lm_head = self.embeddings if self.tied else sd["lm_head.weight"]
        self.layers = []
        for i in range(self.L):
            p = f"backbone.layers.{i}."
            m = p + "mixer."
            lw = {
                "norm": sd[p + "norm.weight"],
                "A_log": sd[m + "A_log"],
                "D": sd[m + "D"],
                "conv_w": sd[m + "conv1d.weight"].reshape(self.I, self.K),
                "conv_b": sd.get(m + "conv1d.bias"),
            }
            for mod in MAMBA_MODULES:
                lw[mod] = (sd[m + mod + ".weight"], sd.get(m + mod + ".bias"))
            assert lw["in_proj"][0].shape == (2 * self.I, self.d), lw["in_proj"][0].shape
            assert lw["x_proj"][0].shape == (self.R + 2 * self.N, self.I), lw["x_proj"][0].shape
            assert lw["dt_proj"][0].shape == (self.I, self.R) and lw["dt_proj"][1] is not None
            assert lw["out_proj"][0].shape == (self.d, self.I), lw["out_proj"][0].shape
            assert lw["A_log"].shape == (self.I, self.N)
            self.layers.append(lw)

    @classmethod
    def from_pretrained(cls, folder: str, dtype: torch.dtype = torch.float32) -> "MambaReference":
        """Read config.json and model.safetensors (or the shards of model.safetensors.index.json)."""
        with open(os.path.join(folder, "config.json")) as f:
            cfg = json.load(f)
        files = ["model.safetensors"]
        index = os.path.join(folder, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        sd = {}
        for name in files:
            with safe_open(os.path.join(folder, name), framework="pt") as f:
                for k in f.keys():
                    sd[k] = f.get_tensor(k)
        return cls(sd, cfg, dtype)

    # ------------------------------------------------------------------ pieces

    def _conv(self, xs: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        """Causal depthwise conv over time: out[t, c] = b[c] + sum_k w[c, k] xs[t-(K-1)+k, c]."""
        T = xs.shape[0]
        pad = torch.cat([xs.new_zeros(self.K - 1, xs.shape[1]), xs], dim=0)
        out = sum(w[:, k] * pad[k:k + T] for k in range(self.K))
        return out if b is None else out + b

    @staticmethod
    def _scan(u, delta, A, B, C, D):
        """Selective scan with zero initial state. u, delta [T, I]; A [I, N]; B, C [T, N]."""
        dA = torch.exp(delta[:, :, None] * A[None])  # [T, I, N]
        dBu = delta[:, :, None] * B[:, None, :] * u[:, :, None]  # [T, I, N]
        s = u.new_zeros(A.shape)
        ys = []
        for t in range(u.shape[0]):
            s = dA[t] * s + dBu[t]
            ys.append(s @ C[t])
        return torch.stack(ys) + u * D

    # ------------------------------------------------------------------ forward

    def forward(self, tokens: torch.Tensor, route=None, proj=None) -> torch.Tensor:
        """Logits [T, V] for one sequence `tokens` (int tensor [T]); see the module docstring
        for `route` and `proj`."""
        tokens = torch.as_tensor(tokens).long().reshape(-1)
        x = self.embeddings[tokens]
        for l, lw in enumerate(self.layers):
            h = _rms(x, self.eps) * lw["norm"]
            gates = route(l, h) if route is not None else None

            def linear(name, u):
                W, b = lw[name]
                out = u @ W.T
                if b is not None:
                    out = out + b
                return proj(l, name, u, out, gates) if proj is not None else out

            xz = linear("in_proj", h)
            xs, z = xz[:, :self.I], xz[:, self.I:]
            u = F.silu(self._conv(xs, lw["conv_w"], lw["conv_b"]))
            dt, B, C = torch.split(linear("x_proj", u), [self.R, self.N, self.N], dim=-1)
            if self.falcon:
                dt, B, C = (_rms(v, self.mixer_eps) for v in (dt, B, C))
            delta = F.softplus(linear("dt_proj", dt))
            A = -torch.exp(lw["A_log"])
            y = self._scan(u, delta, A, B, C, lw["D"]) * F.silu(z)
            x = x + linear("out_proj", y)
        return (_rms(x, self.eps) * self.norm_f) @ self.lm_head.T

    __call__ = forward


# ----------------------------------------------------------------------------- experts

def load_expert(folder: str, name: str | None = None) -> LoraExpert:
    """A PEFT-layout LoRA folder for a Mamba/FalconMamba model, as an lmx_reference.LoraExpert
    whose `tensors[(layer, module)] = (A [r, in], B [out, r], scale)` (float32)."""
    return LoraExpert.load(folder, name, tensor_name=_LORA_NAME,
                           module_path=lambda layer, module: f"backbone.layers.{layer}.mixer.{module}")


def lora_proj(experts):
    """The routed-LoRA `proj` hook: base_out + sum_e g[:, e] * s_e * (u A_e^T) B_e^T over the experts
    that have tensors for (layer, module). `experts`: list of LoraExpert (or of their `.tensors`
    dicts); expert index e is the gate column. Returns base_out unchanged when gates is None."""
    tables = [e.tensors if hasattr(e, "tensors") else e for e in experts]

    def proj(l, module, u, base_out, gates):
        if gates is None:
            return base_out
        delta = None
        for e, tab in enumerate(tables):
            t = tab.get((l, module))
            if t is None:
                continue
            A, B, s = t
            term = (gates[:, e:e + 1] * s) * ((u @ A.to(u.dtype).T) @ B.to(u.dtype).T)
            delta = term if delta is None else delta + term
        return base_out if delta is None else base_out + delta

    return proj


def make_route(mode: str, names: list[str], *, router: Router | None = None, fixed=None,
               top_k: int | None = None, temperature: float | None = None):
    """(route, traces): a `route(l, h)` giving dense gates [T, E] in the canonical order `names`,
    and the list that collects one lmx_reference.LayerTrace per layer as route runs.

    mode: "learned" (top-K of the router, renormalised), "soft" (g = p), "uniform" (1/E),
    "fixed" (the vector `fixed` [E] as given, or a [T, E] tensor), "none" (zero gates).
    `top_k` / `temperature` override the router's values. The router arithmetic is
    lmx_reference.Mixture._router_gates itself (softmax(z / T), context = causal running mean); the
    router's tensors must have h's dtype (convert a loaded Router for a float64 reference). Gates stay
    differentiable w.r.t. the router's tensors and h (top-K: through the selected probabilities)."""
    E = len(names)
    traces: list = []
    holder = types.SimpleNamespace(names=list(names))

    def route(l, h):
        while len(traces) <= l:
            traces.append(None)
        if mode in ("learned", "soft"):
            k = router.top_k if top_k is None else top_k
            t = router.temperature if temperature is None else temperature
            p, ids, g = Mixture._router_gates(holder, l, h, router, None if mode == "soft" else k, t)
            traces[l] = LayerTrace(p, ids, g)
        elif mode == "uniform":
            g = torch.full((h.shape[0], E), 1.0 / E, dtype=h.dtype)
            traces[l] = LayerTrace(None, None, g)
        elif mode == "fixed":
            w = torch.as_tensor(fixed, dtype=h.dtype)
            g = (w.expand(h.shape[0], E) if w.dim() == 1 else w).clone()
            traces[l] = LayerTrace(None, None, g)
        elif mode == "none":
            g = torch.zeros(h.shape[0], E, dtype=h.dtype)
            traces[l] = LayerTrace(None, None, g)
        else:
            raise ValueError(mode)
        return g

    return route, traces


class MambaMixture:
    """`lmx_reference.Mixture`'s interface over a MambaReference: `run(tokens, mode, ...)`."""

    def __init__(self, ref: MambaReference, experts: list[LoraExpert]):
        self.ref = ref
        self.experts = experts
        self.names = [e.name for e in experts]
        self.layers = list(range(ref.L))
        self._proj = lora_proj(experts)

    @torch.no_grad()
    def run(self, tokens: torch.Tensor, mode: str, *, router: Router | None = None,
            fixed: list[float] | None = None, top_k: int | None = None, temperature: float | None = None):
        """Return (logits [T, V], [LayerTrace per layer]); modes as lmx_reference.Mixture.run."""
        route, traces = make_route(mode, self.names, router=router, fixed=fixed, top_k=top_k,
                                   temperature=temperature)
        logits = self.ref.forward(tokens, route=route, proj=self._proj)
        return logits.float(), traces
