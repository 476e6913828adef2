"""Write the torch oracle for the Swift trainer's optimiser step (Tests/Fixtures/train_step[_mamba]/).

Output: `Tests/Fixtures/train_step/` (llama) or `Tests/Fixtures/train_step_mamba/` (Mamba).

Run from anywhere (paths are resolved relative to the repository root), after
`tools/make_fixtures.py` has written `Tests/Fixtures/llama_f32/` (and `tools/make_mamba_fixtures.py`
`Tests/Fixtures/mamba_f32/`):

    python tools/make_train_fixture.py              # writes Tests/Fixtures/train_step/
    python tools/make_train_fixture.py --family mamba
                                                    # writes Tests/Fixtures/train_step_mamba/
    python tools/make_train_fixture.py --full --out /tmp/ts_full
                                                    # every tensor in full (debugging; not committed)

Needs the venv of `tools/requirements.txt` (torch, transformers >= 5, safetensors, numpy); CPU only.
Every random draw is seeded, so a rerun with the same package versions rewrites the same bytes.

What it computes: the training step of the loramixer trainer exactly as specified (router
z = W h + b (+ W_c c), p = softmax(z / temperature); routing soft / topk / label; routed LoRA
projections y = W u + sum_e g_e s_e B_e (A_e u); loss = CE on the target tokens + the routing
specialisation loss (balance alpha E sum pbar fbar and entropy -lambda mean H(p), averaged over
layers) + the preserve term beta sum ||theta - theta_0||^2 over the sensitive experts; gradients by
autograd; global-norm clipping; warmup + cosine learning rate; AdamW with decoupled weight decay on
matrices only), for TWO consecutive steps of three cases on the fixture model (llama_f32, or
mamba_f32 with `--family mamba`) with its adapters e0, e1, e2 and its router files:

    joint_topk_context  router (context input) + every LoRA A/B trained, top-2 routing, preserve on e1,
                        clipping at 1.0 (triggers)
    router_soft_token   router (token input) only, soft routing at temperature 2, signed lambda < 0,
                        linear warmup, no clipping
    joint_label         router + every LoRA A/B, label (one-hot) routing, top-1 for fbar, clipping at 0.5

The llama forward is written out here (embedding, RMSNorm, llama3 RoPE, GQA eager attention, SiLU
MLP) from the Hugging Face model's weights. The Mamba forward is `tools/mamba_reference.py`'s
`MambaReference.forward` (routed LoRA on in_proj, x_proj, dt_proj and out_proj, each fed its own
input; the router reads the block's RMSNorm output; gates decided once per layer and token). Either
way each example is its own sequence (for Mamba: zero conv and SSM state). The script checks:
- its no-grad logits against the inference oracle of the other fixtures for every case's routing:
  `lmx_reference.Mixture.run` (hooks on the transformers model) for llama,
  `mamba_reference.MambaMixture.run` for Mamba; and its base forward (no experts) against
  transformers: < 1e-5;
- its own AdamW / clipping against `torch.optim.AdamW` + `torch.nn.utils.clip_grad_norm_` on
  the first case (both steps);
- the float32 run (the one written) against the same computation in float64;
- that no router probability is within 1e-4 of a top-K boundary (K-th vs (K+1)-th), at both steps;
  otherwise the batch seed is advanced.

It is the oracle for the Swift trainer test, which compares within 1e-4 relative. What is written
(see the generated `README.md` and `cases.json` in the output folder, whose `protocol` says how
to compare):
- `cases.json`: the batch, every hyperparameter of every case, the lr schedule, per step the scalars
  (loss, ce, balance, entropy_term, preserve, grad_norm before clipping, lr, clip scale, pbar/fbar)
  and, for EVERY trainable tensor, [grad_norm, grad_probe, update_norm, update_probe] of the
  gradient before clipping and of the update (value after the step minus before), with
  probe(x) = sum_j x_j * ((j mod 7) - 3) over the row-major flat index j;
- `{case}.safetensors`: float32 `step{n}.grad.{param}` (before clipping) and `step{n}.param.{param}`
  (after step n), n = 0, 1. Storing every tensor of the joint cases would take ~650 KB for llama
  (~400 KB for Mamba), over the size budget (300 KB; 250 KB for Mamba), so: router_soft_token has
  everything; joint_topk_context every gradient and the router's values; joint_label the router and
  the LoRA slots of the family's `full_slots` (`--full` writes all). Router rows follow the
  canonical expert order e0, e1, e2 (router_context.safetensors stores e2, e0, e1).

joint_topk_context has Adam eps 1e-8: an element whose gradient is ~1e-7 of its tensor's largest
then moves by anything up to lr depending on float32 rounding (against float64: ~2e-2 relative in
the parameters), so the test applies its optimiser to the ORACLE's gradients for that case
(`update_from_oracle_grads`), after checking its own. joint_label uses eps 1e-3 for the same reason
(its eps was not prescribed) and is compared end to end, as is router_soft_token.

It also rewrites its own section (`## train_step` or `## train_step_mamba`, kept in that order at
the end) of Tests/Fixtures/README.md, keeping the other family's section and everything before
them (the `mamba-fixtures` section of tools/make_mamba_fixtures.py included);
`tools/make_fixtures.py` regenerates that README without them: rerun this script (both families)
after that one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import transformers
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lmx_reference import (MODULES, LoraExpert, Mixture, Router,  # noqa: E402
                           sort_safetensors_metadata)
from mamba_reference import MAMBA_MODULES, MambaMixture, MambaReference, load_expert  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
E_NAMES = ["e0", "e1", "e2"]  # canonical expert order
LENGTHS = [7, 11, 5]
N_TARGETS = [3, 4, 2]
LABELS = [0, 2, 1]
TOKEN_LOW, TOKEN_HIGH = 3, 128
GAP_MIN = 1e-4
STEPS = 2


def make_cases(model):
    """The three cases (the same hyperparameters for every family), routers from `model`'s folder."""
    return [
        dict(name="joint_topk_context", regime="joint", routing="topk", router=f"{model}/router_context.safetensors",
             top_k=2, temperature=1.0, alpha=0.1, **{"lambda": 0.05}, beta=0.5, sensitive=["e1"],
             lr=1e-2, min_lr=1e-3, warmup=1, total_steps=4, wd=0.1, b1=0.9, b2=0.999, eps=1e-8, clip=1.0),
        dict(name="router_soft_token", regime="router", routing="soft", router=f"{model}/router.safetensors",
             top_k=2, temperature=2.0, alpha=0.2, **{"lambda": -0.1}, beta=0.0, sensitive=[],
             lr=5e-2, min_lr=0.0, warmup=2, total_steps=10, wd=0.01, b1=0.9, b2=0.999, eps=1e-8, clip=0.0),
        # eps 1e-3 (not torch's 1e-8) keeps this case's trajectory well conditioned in float32 (see
        # ORACLE_GRADS) and makes the place of eps in the update visible.
        dict(name="joint_label", regime="joint", routing="label", router=f"{model}/router.safetensors",
             top_k=1, temperature=1.0, alpha=0.05, **{"lambda": 0.02}, beta=0.0, sensitive=[],
             lr=1e-2, min_lr=0.0, warmup=0, total_steps=2, wd=0.0, b1=0.9, b2=0.999, eps=1e-3, clip=0.5),
    ]

# Cases whose updates must be applied to the ORACLE's gradients (stored in full) rather than the
# implementation's own. With Adam eps 1e-8 the first update of an element is lr * g / (|g| + 1e-8):
# an element whose gradient is ~1e-7 of its tensor's largest (there are always a few among
# 20k) moves by anything up to lr depending on float32 rounding, and the second step inherits
# that. Two correct float32 implementations (or this one against float64) then differ by 1e-2 to
# 1e-1 relative in the parameters (2e-2 for this batch); fed the same gradients they agree to ~1e-7.
ORACLE_GRADS = {"joint_topk_context"}

# Per model family: the fixture model, the output folder, the routed modules in the order of the
# parameter list, the LoRA slots (expert, layer, module) whose A and B are stored in full where not
# every tensor is (every other tensor is covered by the norms/probes in cases.json), the first batch
# seed, the size budget, and the family's words in the generated READMEs.
#   llama full_slots: layers 0 and 1, every expert, the attention output as input (o), e1's
#   rank_pattern (v_proj, r 4, rslora scale 8) and alpha_pattern (gate_proj, 4/sqrt(8)), the MLP
#   down input.
#   mamba full_slots: each of the four mixer Linears once, both layers, every expert: e0's in_proj
#   (the router input's own Linear, scale 2), e1's x_proj (layer 1 only; rank_pattern r 4, rslora
#   scale 8; input = the conv output), e2's dt_proj (input = the R = 3 dt channels; lora_A [4, 3];
#   a Linear with a bias) and out_proj (input = the gated scan output).
FAMILIES = {
    "llama": dict(
        model="Tests/Fixtures/llama_f32", out="Tests/Fixtures/train_step", modules=MODULES,
        full_slots=[("e0", 0, "o_proj"), ("e1", 0, "v_proj"), ("e1", 0, "gate_proj"), ("e2", 1, "down_proj")],
        first_batch_seed=5000, size_limit=300_000, full_size="~650 kB", drift="~3e-2",
        command="python tools/make_train_fixture.py", generator="tools/make_train_fixture.py",
        heading="## train_step",
        written_by="Written by `python tools/make_train_fixture.py` (not by make_fixtures.py, which rewrites this "
                   "README without this section: rerun it afterwards).",
        forward="The forward is an explicit float32 llama forward written in the script.",
        reference="`tools/lmx_reference.py`'s `Mixture.run`"),
    "mamba": dict(
        model="Tests/Fixtures/mamba_f32", out="Tests/Fixtures/train_step_mamba", modules=MAMBA_MODULES,
        full_slots=[("e0", 0, "in_proj"), ("e1", 1, "x_proj"), ("e2", 0, "dt_proj"), ("e2", 1, "out_proj")],
        first_batch_seed=5000, size_limit=250_000, full_size="~400 kB", drift="~1.5e-4",
        command="python tools/make_train_fixture.py --family mamba",
        generator="tools/make_train_fixture.py --family mamba",
        heading="## train_step_mamba",
        written_by="Written by `python tools/make_train_fixture.py --family mamba` (not by make_fixtures.py, which "
                   "rewrites this README without this section: rerun it afterwards; each family's run keeps the "
                   "other's section).",
        forward="The forward is `tools/mamba_reference.py`'s `MambaReference.forward` in float32 (routed LoRA on "
                "in_proj, x_proj, dt_proj and out_proj, each fed its own input; the router reads the block's "
                "RMSNorm output; gates decided once per layer and token; each example starts from zero conv and "
                "SSM state).",
        reference="`tools/mamba_reference.py`'s `MambaMixture.run` and, without experts, transformers' "
                  "MambaForCausalLM"),
}

# The selected family (main() calls select_family; llama by default).
FAMILY = "llama"
MODEL = OUT = None
FULL_SLOTS = CASES = None


def select_family(name):
    global FAMILY, MODEL, OUT, FULL_SLOTS, CASES
    FAMILY = name
    MODEL, OUT, FULL_SLOTS = FAMILIES[name]["model"], FAMILIES[name]["out"], FAMILIES[name]["full_slots"]
    CASES = make_cases(MODEL)


select_family("llama")


def say(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------- base model

class Base:
    """The frozen llama weights in one dtype, and an explicit forward that calls `proj` for
    every routed projection and `route` once per layer at the input_layernorm output (the
    interface of mamba_reference.MambaReference: `.L`, `.dtype`, `.forward(tokens, route, proj)`)."""

    def __init__(self, model, dtype):
        cfg = model.config
        if cfg.model_type != "llama" or cfg.attention_bias or cfg.mlp_bias or cfg.hidden_act != "silu":
            raise ValueError("this oracle handles bias-free SiLU llama models only")
        self.dtype = dtype
        self.w = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
        self.L = cfg.num_hidden_layers
        self.nh = cfg.num_attention_heads
        self.nkv = cfg.num_key_value_heads
        self.hd = cfg.head_dim
        self.eps = cfg.rms_norm_eps
        self.inv_freq = llama3_inv_freq(cfg)  # float64
        hf = model.model.rotary_emb.inv_freq.double()
        err = float(((self.inv_freq - hf).abs() / hf).max())
        if err > 1e-6:
            raise ValueError(f"llama3 inverse frequencies differ from transformers' by {err:g}")
        if getattr(model.model.rotary_emb, "attention_scaling", 1.0) != 1.0:
            raise ValueError("attention_scaling != 1 is not handled")

    def rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def forward(self, tokens, route, proj):
        """tokens [T] -> logits [T, V]. route(layer, h) -> gates [T, E]; proj(layer, module,
        u, base_out = u W^T, gates) -> y."""
        w = self.w
        T = tokens.shape[0]
        ang = torch.arange(T, dtype=torch.float64)[:, None] * self.inv_freq[None, :]
        ang = torch.cat([ang, ang], dim=-1)
        cos, sin = ang.cos().to(self.dtype), ang.sin().to(self.dtype)

        def rope(x):  # [H, T, hd]
            half = x.shape[-1] // 2
            rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
            return x * cos + rot * sin

        mask = torch.full((T, T), float("-inf"), dtype=self.dtype).triu(1)
        x = w["model.embed_tokens.weight"][tokens]
        for l in range(self.L):
            p = f"model.layers.{l}."
            h = self.rms(x, w[p + "input_layernorm.weight"])
            g = route(l, h)

            def lin(m, u, W, l=l, g=g):
                return proj(l, m, u, u @ W.T, g)

            q = lin("q_proj", h, w[p + "self_attn.q_proj.weight"])
            k = lin("k_proj", h, w[p + "self_attn.k_proj.weight"])
            v = lin("v_proj", h, w[p + "self_attn.v_proj.weight"])
            q = rope(q.view(T, self.nh, self.hd).transpose(0, 1))
            k = rope(k.view(T, self.nkv, self.hd).transpose(0, 1))
            v = v.view(T, self.nkv, self.hd).transpose(0, 1)
            rep = self.nh // self.nkv
            k = k.repeat_interleave(rep, dim=0)
            v = v.repeat_interleave(rep, dim=0)
            att = torch.softmax(q @ k.transpose(1, 2) * self.hd ** -0.5 + mask, dim=-1)
            a = (att @ v).transpose(0, 1).reshape(T, self.nh * self.hd)
            x = x + lin("o_proj", a, w[p + "self_attn.o_proj.weight"])
            h2 = self.rms(x, w[p + "post_attention_layernorm.weight"])
            gate = lin("gate_proj", h2, w[p + "mlp.gate_proj.weight"])
            up = lin("up_proj", h2, w[p + "mlp.up_proj.weight"])
            x = x + lin("down_proj", F.silu(gate) * up, w[p + "mlp.down_proj.weight"])
        x = self.rms(x, w["model.norm.weight"])
        return x @ w["lm_head.weight"].T


def load_family():
    """(transformers model, experts, make_base(dtype), inference oracle with `.run`) of FAMILY."""
    if FAMILY == "llama":
        model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="eager")
        model.eval().requires_grad_(False)
        experts = [LoraExpert.load(f"{MODEL}/adapters/{n}", name=n) for n in E_NAMES]
        return model, experts, lambda dtype: Base(model, dtype), Mixture(model, experts)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    model.eval().requires_grad_(False)
    if model.config.model_type != "mamba":
        raise ValueError(f"{MODEL}: model_type {model.config.model_type}, expected mamba")
    experts = [load_expert(f"{MODEL}/adapters/{n}", name=n) for n in E_NAMES]
    return (model, experts, lambda dtype: MambaReference.from_pretrained(MODEL, dtype),
            MambaMixture(MambaReference.from_pretrained(MODEL, torch.float32), experts))


def llama3_inv_freq(cfg):
    rp = cfg.rope_parameters
    dim = cfg.head_dim
    inv = 1.0 / (rp["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    if rp.get("rope_type", "default") == "default":
        return inv
    if rp["rope_type"] != "llama3":
        raise ValueError(f"rope_type {rp['rope_type']} not handled")
    factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
    old = rp["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    out = torch.where(wavelen > old / lo, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = (wavelen >= old / hi) & (wavelen <= old / lo)
    return torch.where(medium, smoothed, out)


# ----------------------------------------------------------------------------- the trainable state

def initial_params(case, experts, dtype):
    """(name -> initial tensor in `dtype` (router rows in canonical order; a missing bias is zeros),
    trainable names in order, LoRA scale per slot, router input kind, router file expert order)."""
    router = Router.load(case["router"])
    if router.input_kind == "context" and router.context_weights is None:
        raise ValueError("context router without context weights")
    perm = [router.experts.index(n) for n in E_NAMES]  # canonical index -> file row
    params, trainable = {}, []
    for l in range(len(router.weights)):
        items = [("weight", router.weights[l][perm]), ("bias", router.biases[l][perm])]
        if router.input_kind == "context":
            items.append(("context_weight", router.context_weights[l][perm]))
        for kind, t in items:
            name = f"router.layers.{l}.{kind}"
            params[name] = t.to(dtype).clone()
            trainable.append(name)
    scales = {}
    for ex in experts:
        modules = FAMILIES[FAMILY]["modules"]
        for (l, m), (A, B, s) in sorted(ex.tensors.items(), key=lambda kv: (kv[0][0], modules.index(kv[0][1]))):
            stem = f"experts.{ex.name}.layers.{l}.{m}"
            params[stem + ".lora_A"] = A.to(dtype).clone()
            params[stem + ".lora_B"] = B.to(dtype).clone()
            scales[stem] = s
            if case["regime"] == "joint":
                trainable += [stem + ".lora_A", stem + ".lora_B"]
    return params, trainable, scales, router.input_kind, router.experts


def is_matrix(name):
    return not name.endswith(".bias")


def lr_at(case, n):
    lr, mn, W, S = case["lr"], case["min_lr"], case["warmup"], case["total_steps"]
    if n < W:
        return lr * (n + 1) / W
    return mn + 0.5 * (lr - mn) * (1 + math.cos(math.pi * (n - W) / max(1, S - W)))


def compute_loss(base, case, params, theta0, scales, input_kind, examples):
    """Forward every example, return (loss, parts dict of 0-dim tensors, diagnostics)."""
    E, K, temp = len(E_NAMES), case["top_k"], case["temperature"]
    dtype = base.dtype
    probs = [[] for _ in range(base.L)]
    logps = [[] for _ in range(base.L)]
    ce_sum = torch.zeros((), dtype=dtype)
    n_tgt = 0
    logits_all = []
    for ex in examples:
        tok = torch.tensor(ex["tokens"])

        def route(l, h):
            z = h @ params[f"router.layers.{l}.weight"].T + params[f"router.layers.{l}.bias"]
            if input_kind == "context":
                c = torch.cumsum(h, 0) / torch.arange(1, h.shape[0] + 1, dtype=dtype)[:, None]
                z = z + c @ params[f"router.layers.{l}.context_weight"].T
            p = torch.softmax(z / temp, dim=-1)
            probs[l].append(p)
            logps[l].append(torch.log_softmax(z / temp, dim=-1))
            if case["routing"] == "soft":
                return p
            if case["routing"] == "topk":
                vals, ids = torch.topk(p, K, dim=-1)
                return torch.zeros_like(p).scatter(1, ids, vals / vals.sum(-1, keepdim=True))
            if case["routing"] == "label":
                return F.one_hot(torch.tensor(ex["label"]), E).to(dtype).expand(h.shape[0], E)
            raise ValueError(case["routing"])

        def proj(l, m, u, y, g):
            for e, name in enumerate(E_NAMES):
                stem = f"experts.{name}.layers.{l}.{m}"
                if stem in scales:
                    A, B = params[stem + ".lora_A"], params[stem + ".lora_B"]
                    y = y + (g[:, e:e + 1] * scales[stem]) * ((u @ A.T) @ B.T)
            return y

        logits = base.forward(tok, route, proj)
        logits_all.append(logits)
        lsm = torch.log_softmax(logits, dim=-1)
        tg = ex["targets"]
        for t in range(len(tg) - 1):
            if tg[t + 1]:
                ce_sum = ce_sum - lsm[t, tok[t + 1]]
                n_tgt += 1
    ce = ce_sum / n_tgt
    bals, ents, diag = [], [], {"pbar": [], "fbar": [], "mean_entropy": [], "gap": float("inf")}
    for l in range(base.L):
        P = torch.cat(probs[l])  # [N, E]
        LP = torch.cat(logps[l])
        N = P.shape[0]
        pbar = P.mean(0)
        srt = torch.sort(P.detach(), dim=-1, descending=True).values
        if K < E:
            diag["gap"] = min(diag["gap"], float((srt[:, K - 1] - srt[:, K]).min()))
        ids = torch.topk(P.detach(), K, dim=-1).indices
        fbar = torch.bincount(ids.reshape(-1), minlength=E).to(dtype) / (N * K)
        H = -(P * LP).sum(-1)
        bals.append(case["alpha"] * E * (pbar * fbar).sum())
        ents.append(-case["lambda"] * H.mean())
        diag["pbar"].append([float(x) for x in pbar.detach()])
        diag["fbar"].append([float(x) for x in fbar])
        diag["mean_entropy"].append(float(H.detach().mean()))
    balance = torch.stack(bals).mean()
    entropy_term = torch.stack(ents).mean()
    preserve = torch.zeros((), dtype=dtype)
    for name in E_NAMES:
        if name in case["sensitive"] and case["beta"] != 0:
            for pn in params:
                if pn.startswith(f"experts.{name}."):
                    preserve = preserve + case["beta"] * (params[pn] - theta0[pn]).pow(2).sum()
    loss = ce + balance + entropy_term + preserve
    diag["n_tokens"] = sum(len(ex["tokens"]) for ex in examples)
    diag["n_targets"] = n_tgt
    diag["logits"] = logits_all
    return loss, dict(ce=ce, balance=balance, entropy_term=entropy_term, preserve=preserve), diag


def run_case(base, case, experts, examples, *, optimizer="own", grad_source=None):
    """Two steps from the initial state. Each step computes the loss and its gradients by
    autograd; the update uses those gradients, or `grad_source[n]` (another run's gradients,
    cast to this run's dtype) when given. optimizer "own" follows the spec; "torch" uses
    torch.nn.utils.clip_grad_norm_ + torch.optim.AdamW. Returns the per-step records."""
    dtype = base.dtype
    params, trainable, scales, input_kind, file_order = initial_params(case, experts, dtype)
    theta0 = {k: v.clone() for k, v in params.items()}
    if optimizer == "torch":
        leaves = [torch.nn.Parameter(params[nm].clone()) for nm in trainable]
        params.update(zip(trainable, leaves))
        opt = torch.optim.AdamW(
            [dict(params=[q for nm, q in zip(trainable, leaves) if is_matrix(nm)], weight_decay=case["wd"]),
             dict(params=[q for nm, q in zip(trainable, leaves) if not is_matrix(nm)], weight_decay=0.0)],
            lr=case["lr"], betas=(case["b1"], case["b2"]), eps=case["eps"])
    m = {nm: torch.zeros_like(params[nm]) for nm in trainable}
    v = {nm: torch.zeros_like(params[nm]) for nm in trainable}
    records = []
    for n in range(STEPS):
        lr = lr_at(case, n)
        if optimizer == "own":
            for nm in trainable:
                params[nm] = params[nm].detach().requires_grad_(True)
        loss, parts, diag = compute_loss(base, case, params, theta0, scales, input_kind, examples)
        gl = torch.autograd.grad(loss, [params[nm] for nm in trainable])
        grads = {nm: g.detach() for nm, g in zip(trainable, gl)}
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads.values()))
        used = grads if grad_source is None else {nm: grad_source[n][nm].to(dtype) for nm in trainable}
        used_norm = torch.sqrt(sum(g.pow(2).sum() for g in used.values()))
        clipped = case["clip"] > 0 and float(used_norm) > case["clip"]
        scale = case["clip"] / used_norm if clipped else 1.0
        before = {nm: params[nm].detach().clone() for nm in trainable}
        if optimizer == "torch":
            for nm, q in zip(trainable, leaves):
                q.grad = used[nm].clone()
            if case["clip"] > 0:
                torch.nn.utils.clip_grad_norm_(leaves, case["clip"])
            for group in opt.param_groups:
                group["lr"] = lr
            opt.step()
        else:
            k = n + 1
            for nm in trainable:
                p = before[nm].clone()
                g = used[nm] * scale
                if is_matrix(nm):
                    p = p - lr * case["wd"] * p
                m[nm] = case["b1"] * m[nm] + (1 - case["b1"]) * g
                v[nm] = case["b2"] * v[nm] + (1 - case["b2"]) * g * g
                mhat = m[nm] / (1 - case["b1"] ** k)
                vhat = v[nm] / (1 - case["b2"] ** k)
                params[nm] = p - lr * mhat / (torch.sqrt(vhat) + case["eps"])
        after = {nm: params[nm].detach().clone() for nm in trainable}
        records.append(dict(step=n, lr=lr, loss=float(loss.detach()), grad_norm=float(norm), clipped=bool(clipped),
                            clip_scale=float(scale), grads=grads, before=before, after=after,
                            gap=diag["gap"], pbar=diag["pbar"], fbar=diag["fbar"],
                            mean_entropy=diag["mean_entropy"], n_tokens=diag["n_tokens"],
                            n_targets=diag["n_targets"], **{key: float(x.detach()) for key, x in parts.items()}))
    return dict(trainable=trainable, records=records, file_order=file_order, input_kind=input_kind,
                scales=scales)


# ----------------------------------------------------------------------------- batch and checks

def make_batch(seed):
    g = torch.Generator().manual_seed(seed)
    examples = []
    for T, nt, lab in zip(LENGTHS, N_TARGETS, LABELS):
        toks = torch.randint(TOKEN_LOW, TOKEN_HIGH, (T,), generator=g).tolist()
        examples.append(dict(tokens=toks, targets=[0] * (T - nt) + [1] * nt, label=lab))
    return examples


def probe_weights(n, dtype):
    return (torch.arange(n) % 7 - 3).to(dtype)


def summary(x):
    f = x.reshape(-1)
    return float(f.norm()), float((f * probe_weights(f.numel(), f.dtype)).sum())


def rel_tensor(a, b):
    """max |a - b| / max |b| (0 when both vanish)."""
    den = float(b.abs().max())
    num = float((a.double() - b.double()).abs().max())
    return num / den if den > 0 else num


def mixture_check(model, experts, make_base, mix, examples, results):
    """No-grad logits of our forward vs the inference oracle `mix.run` (lmx_reference.Mixture or
    mamba_reference.MambaMixture) at every case's initial state, the step-0 loss terms recomputed
    from its logits and router probabilities (plain loops, not compute_loss) against the recorded
    ones, and the base forward (no experts) against the transformers `model`."""
    base = make_base(torch.float32)
    worst = 0.0
    E = len(E_NAMES)
    for case in CASES:
        params, _, scales, input_kind, _ = initial_params(case, experts, torch.float32)
        router = Router.load(case["router"])
        case_worst = 0.0
        nll, n_tgt, probs = 0.0, 0, {}
        with torch.no_grad():
            _, _, diag = compute_loss(base, case, params, params, scales, input_kind, examples)
            for ex, ours in zip(examples, diag["logits"]):
                tok = torch.tensor(ex["tokens"])
                if case["routing"] == "topk":
                    ref, tr = mix.run(tok, "learned", router=router, top_k=case["top_k"],
                                      temperature=case["temperature"])
                elif case["routing"] == "soft":
                    ref, tr = mix.run(tok, "soft", router=router, temperature=case["temperature"])
                else:
                    w = [1.0 if i == ex["label"] else 0.0 for i in range(E)]
                    ref, _ = mix.run(tok, "fixed", fixed=w)
                    tr = None
                case_worst = max(case_worst, float((ours - ref).abs().max()))
                for t in range(len(tok) - 1):
                    if ex["targets"][t + 1]:
                        nll -= float(torch.log_softmax(ref[t].double(), -1)[tok[t + 1]])
                        n_tgt += 1
                if tr is not None:
                    for l, layer in enumerate(tr):
                        probs.setdefault(l, []).append(layer.probs.double())
        mode = {"topk": "learned", "soft": "soft", "label": "fixed one-hot"}[case["routing"]]
        rec = results[case["name"]]["records"][0]
        terms = f"ce {abs(nll / n_tgt - rec['ce']):.1e}"
        if probs:
            bal = ent = 0.0
            for l in sorted(probs):
                P = torch.cat(probs[l])
                N, K = P.shape[0], case["top_k"]
                counts = [0] * E
                for row in P:
                    for i in torch.topk(row, K).indices.tolist():
                        counts[i] += 1
                bal += case["alpha"] * E * sum(float(P[:, i].mean()) * counts[i] / (N * K) for i in range(E))
                ent += -case["lambda"] * float(-(P * P.log()).sum(-1).mean())
            bal, ent = bal / len(probs), ent / len(probs)
            terms += f", balance {abs(bal - rec['balance']):.1e}, entropy_term {abs(ent - rec['entropy_term']):.1e}"
            case_worst = max(case_worst, abs(bal - rec["balance"]), abs(ent - rec["entropy_term"]))
        case_worst = max(case_worst, abs(nll / n_tgt - rec["ce"]))
        say(f"  {case['name']}: forward vs {type(mix).__name__}.run ({mode}, {os.path.basename(case['router'])}, "
            f"temperature {case['temperature']:g}): max |logits diff| {case_worst:.2e}; step-0 loss terms "
            f"from its outputs, |diff|: {terms}")
        worst = max(worst, case_worst)
    base_worst = 0.0
    with torch.no_grad():
        for ex in examples:
            tok = torch.tensor(ex["tokens"])
            ours = base.forward(tok, lambda l, h: torch.zeros(h.shape[0], len(E_NAMES)),
                                lambda l, m, u, y, g: y)
            kw = {} if FAMILY == "llama" else dict(use_cache=False)
            hf = model(input_ids=tok.view(1, -1), **kw).logits[0]
            base_worst = max(base_worst, float((ours - hf).abs().max()))
    say(f"  base forward (no experts) vs transformers: max |logits diff| {base_worst:.2e}")
    worst = max(worst, base_worst)
    if worst > 1e-5:
        raise SystemExit("forward does not match the inference reference")
    return worst


# ----------------------------------------------------------------------------- output

def fmt_json(obj, indent=0, width=118):
    """JSON with short containers on one line (readable, and not one number per line)."""
    flat = json.dumps(obj, separators=(", ", ": "))
    if len(flat) + indent <= width or not isinstance(obj, (dict, list)):
        return flat
    pad = " " * (indent + 1)
    if isinstance(obj, list):
        if all(not isinstance(x, (dict, list)) for x in obj):
            return flat
        inner = [pad + fmt_json(x, indent + 1, width) for x in obj]
        return "[\n" + ",\n".join(inner) + "\n" + " " * indent + "]"
    inner = [pad + json.dumps(k) + ": " + fmt_json(v, indent + 1, width) for k, v in obj.items()]
    return "{\n" + ",\n".join(inner) + "\n" + " " * indent + "}"


def slot_names(trainable):
    keep = set()
    for e, l, m in FULL_SLOTS:
        keep |= {f"experts.{e}.layers.{l}.{m}.lora_A", f"experts.{e}.layers.{l}.{m}.lora_B"}
    return [n for n in trainable if n.startswith("router.") or n in keep]


def stored_names(case, trainable, full):
    """(names whose gradients are stored, names whose parameter values are stored)."""
    if full or case["regime"] == "router":
        return list(trainable), list(trainable)
    if case["name"] in ORACLE_GRADS:
        return list(trainable), [n for n in trainable if n.startswith("router.")]
    return slot_names(trainable), slot_names(trainable)


def f32(x):
    """A float32 value as the shortest decimal that reads back as the same float32."""
    return float(str(np.float32(x)))


def dir_size(path):
    return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(path) for f in fs)


PROTOCOL = [
    "Start every case from the files: model, adapters e0, e1, e2, and the case's router file with its rows "
    "reordered to e0, e1, e2 (a missing bias is a zero bias, trainable). Then for step n = 0, 1:",
    "1. forward the batch, compute the loss and the gradients of every tensor in `trainable`; compare loss, ce, "
    "balance, entropy_term, preserve, grad_norm (before clipping), the stored step{n}.grad.{param} and, for "
    "every other tensor, tensors[param][0:2] = [grad_norm, grad_probe];",
    "2. if `update_from_oracle_grads`, replace the gradients by the stored step{n}.grad.{param} (every "
    "tensor is stored then) before clipping; otherwise keep your own;",
    "3. clip and apply AdamW with lr_schedule[n]; compare the stored step{n}.param.{param} and, for every "
    "other tensor, tensors[param][2:4] = [update_norm, update_probe] (update = value after step n - value "
    "before; for the stored tensors the summaries are redundant, and an update much smaller than the value, "
    "like joint_label's router bias, has an update_norm only good to ~ulp(value)/|update| ~ 2e-5).",
    "Tensors compare as max|a - b| <= rtol * max|b| (per tensor); a probe p of x as "
    "|p_a - p_b| <= rtol * ||x||_2 * ||c||_2 with c_j = (j mod 7) - 3 (Cauchy-Schwarz scale).",
]


def probe_norm(n):
    return float(probe_weights(n, torch.float64).norm())


def write_outputs(out, results, examples, seed, checks, full):
    os.makedirs(out, exist_ok=True)
    cases_json = []
    for case in CASES:
        res = results[case["name"]]
        grad_names, param_names = stored_names(case, res["trainable"], full)
        tensors = {}
        steps = []
        for rec in res["records"]:
            n = rec["step"]
            for nm in grad_names:
                tensors[f"step{n}.grad.{nm}"] = rec["grads"][nm].float().contiguous()
            for nm in param_names:
                tensors[f"step{n}.param.{nm}"] = rec["after"][nm].float().contiguous()
            per_tensor = {}
            for nm in res["trainable"]:
                per_tensor[nm] = [f32(x) for x in summary(rec["grads"][nm])
                                  + summary(rec["after"][nm] - rec["before"][nm])]
            steps.append(dict(
                step=n, lr=rec["lr"], loss=f32(rec["loss"]), ce=f32(rec["ce"]), balance=f32(rec["balance"]),
                entropy_term=f32(rec["entropy_term"]), preserve=f32(rec["preserve"]),
                grad_norm=f32(rec["grad_norm"]), clipped=rec["clipped"], clip_scale=f32(rec["clip_scale"]),
                n_tokens=rec["n_tokens"], n_targets=rec["n_targets"],
                pbar=[[f32(x) for x in row] for row in rec["pbar"]], fbar=[[f32(x) for x in row] for row in rec["fbar"]],
                mean_entropy=[f32(x) for x in rec["mean_entropy"]],
                min_topk_gap=f32(rec["gap"]), tensors=per_tensor))
        path = os.path.join(out, f"{case['name']}.safetensors")
        save_file(tensors, path, metadata={"format": "loramixer.train_step_fixture", "case": case["name"]})
        sort_safetensors_metadata(path)
        cases_json.append(dict(
            **case, update_from_oracle_grads=case["name"] in ORACLE_GRADS,
            router_file_experts=res["file_order"], router_input=res["input_kind"],
            lr_schedule=[lr_at(case, n) for n in range(case["total_steps"])],
            trainable=res["trainable"],
            stored_grads="all" if grad_names == res["trainable"] else grad_names,
            stored_params="all" if param_names == res["trainable"] else param_names, steps=steps))
    doc = {
        "format": "loramixer.train_step_fixture",
        "version": 1,
        "generator": FAMILIES[FAMILY]["generator"],
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
        "model": MODEL,
        "experts": E_NAMES,
        "adapters": {n: f"{MODEL}/adapters/{n}" for n in E_NAMES},
        "lora_scales": dict(results[CASES[0]["name"]]["scales"]),
        "router_rows": "router tensors' rows follow `experts` (e0, e1, e2), whatever the router file's order",
        "tensor_summary": "steps[n].tensors[param] = [grad_norm, grad_probe, update_norm, update_probe]: L2 norm "
                          "and probe of the gradient (before clipping) and of the update (value after the step "
                          "minus value before); probe(x) = sum_j x_j * ((j mod 7) - 3), j = row-major flat index",
        "protocol": PROTOCOL,
        "batch_seed": seed,
        "examples": examples,
        "checks": checks,
        "cases": cases_json,
    }
    with open(os.path.join(out, "cases.json"), "w") as f:
        f.write(fmt_json(doc) + "\n")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(fixture_readme(results, seed, full))


def fixture_readme(results, seed, full):
    fam = FAMILIES[FAMILY]
    L = [f"# {os.path.basename(OUT)} fixture (generated; do not edit by hand)", "",
         f"Written by `{fam['command']}`: the torch oracle of the Swift trainer test (two optimiser",
         f"steps per case, compared within 1e-4 relative). Model, adapters and router files: `{MODEL}`",
         f"(experts e0, e1, e2). Batch: 3 examples, lengths {', '.join(map(str, LENGTHS))}, the last "
         f"{', '.join(map(str, N_TARGETS))} positions are targets, labels {', '.join(map(str, LABELS))} "
         f"(seed {seed}).", "",
         "- `cases.json` — the batch, every hyperparameter of each case, the lr schedule, and per step loss, ce, "
         "balance, entropy_term, preserve, grad_norm (before clipping), lr, clip scale, pbar/fbar per layer, and "
         "[grad_norm, grad_probe, update_norm, update_probe] for EVERY trainable tensor.",
         "- `{case}.safetensors` — float32 `step{n}.grad.{param}` (before clipping) and `step{n}.param.{param}` "
         "(after step n), n = 0, 1; `{param}` = `router.layers.{l}.weight|bias|context_weight` (rows in e0, e1, e2 "
         "order) or `experts.{e}.layers.{l}.{module}.lora_A|lora_B`. " +
         ("Every trainable tensor." if full else
          "Which ones: `stored_grads` / `stored_params` in cases.json (\"all\" or a list): every tensor of "
          "`router_soft_token`; every gradient and the router's values of `joint_topk_context`; the router and "
          "the LoRA slots " + ", ".join(f"{e}.{l}.{m}" for e, l, m in FULL_SLOTS) + " of `joint_label` (storing "
          f"everything would take {fam['full_size']}; the norms/probes cover the rest)."),
         "", "How to compare (also in cases.json `protocol`):", ""]
    L += [("- " if i == 0 or i == len(PROTOCOL) - 1 else "  ") + line for i, line in enumerate(PROTOCOL)]
    L += ["", "`joint_topk_context` needs step 2: with Adam eps 1e-8 an element whose gradient is ~1e-7 of its "
          "tensor's largest moves by up to lr depending on float32 rounding, so two correct float32 implementations "
          f"drift apart ({fam['drift']} relative in the parameters after two steps, seen against float64); fed the same "
          "gradients they agree to ~1e-7. `joint_label` uses eps 1e-3 and `router_soft_token` has few, large "
          "gradients: both are well conditioned end to end.", ""]
    for case in CASES:
        recs = results[case["name"]]["records"]
        L.append(f"- `{case['name']}`: {case['regime']} regime, {case['routing']} routing, "
                 f"{os.path.basename(case['router'])}; loss {recs[0]['loss']:.4f} -> {recs[1]['loss']:.4f}; "
                 f"grad_norm {recs[0]['grad_norm']:.3f}, {recs[1]['grad_norm']:.3f}"
                 f"{' (clip ' + format(case['clip'], 'g') + ')' if case['clip'] > 0 else ''}.")
    return "\n".join(L) + "\n"


def readme_sections(text):
    """Split Tests/Fixtures/README.md into (what precedes the train_step sections, {heading: section
    text}); the sections are the families' headings to the end of the file, in any order."""
    heads = [f["heading"] for f in FAMILIES.values()]
    starts = sorted((text.index("\n" + h + "\n"), h) for h in heads if "\n" + h + "\n" in text)
    if not starts:
        return text, {}
    # tools/make_mamba_fixtures.py puts its section before `## train_step`, or at the end when that
    # heading is missing (e.g. only train_step_mamba was written): move it back before the sections.
    begin, end = "<!-- mamba-fixtures:begin -->", "<!-- mamba-fixtures:end -->"
    if begin in text and text.index(begin) > starts[0][0] and end in text:
        i, j = text.index(begin), text.index(end) + len(end)
        block = text[i:j]
        text = text[:i].rstrip("\n") + "\n" + text[j:]
        head = text[:starts[0][0]].rstrip("\n") + "\n\n" + block + "\n"
        return readme_sections(head + text[starts[0][0]:])
    sections = {}
    for (i, h), nxt in zip(starts, starts[1:] + [(len(text), None)]):
        sections[h] = text[i + 1:nxt[0]].rstrip("\n") + "\n"
    return text[:starts[0][0]], sections


def update_fixtures_readme(results, seed, out, checks):
    """Rewrite this family's section of Tests/Fixtures/README.md, keeping everything before the
    train_step sections and the other family's section (the sections end the file, in FAMILIES order)."""
    fam = FAMILIES[FAMILY]
    path = "Tests/Fixtures/README.md"
    with open(path) as f:
        text = f.read()
    text, sections = readme_sections(text)
    text = text.rstrip("\n") + "\n"
    L = [fam["heading"], "",
         f"{fam['written_by']} The torch oracle for the Swift trainer: two optimiser steps (forward, "
         f"loss, autograd gradients, clipping, warmup/cosine lr, AdamW) per case on `{os.path.basename(MODEL)}` with "
         "its adapters e0, "
         f"e1, e2, on a batch of 3 examples (lengths {', '.join(map(str, LENGTHS))}; the last "
         f"{', '.join(map(str, N_TARGETS))} positions are targets; labels {', '.join(map(str, LABELS))}; batch seed "
         f"{seed}). {fam['forward']} See "
         f"`{os.path.basename(OUT)}/README.md` for the files and how to compare.",
         "",
         "| case | regime | routing | router file | top_k / temperature | alpha / lambda / beta | lr (warmup, total, min), wd, eps | clip (grad norms) |",
         "|---|---|---|---|---|---|---|---|"]
    for c in CASES:
        recs = results[c["name"]]["records"]
        clip = "none" if c["clip"] <= 0 else f"{c['clip']:g} ({recs[0]['grad_norm']:.3f}, {recs[1]['grad_norm']:.3f})"
        L.append(f"| `{c['name']}` | {c['regime']} | {c['routing']} | {os.path.basename(c['router'])} | "
                 f"{c['top_k']} / {c['temperature']:g} | {c['alpha']:g} / {c['lambda']:g} / {c['beta']:g}"
                 f"{' (' + ', '.join(c['sensitive']) + ' sensitive)' if c['sensitive'] else ''} | "
                 f"{c['lr']:g} ({c['warmup']}, {c['total_steps']}, {c['min_lr']:g}), {c['wd']:g}, {c['eps']:g} | {clip} |")
    L += ["",
          f"Checked in the script: the forward's logits against {fam['reference']} "
          f"(max |diff| {checks['forward_vs_mixture']:.1e}); its AdamW + clipping against `torch.optim.AdamW` + "
          f"`clip_grad_norm_` (max |param diff| {checks['adamw_vs_torch']:.1e}); float32 against float64 "
          f"(gradients {checks['f32_vs_f64_grad']:.1e}, parameters {checks['f32_vs_f64_param']:.1e}, max over "
          f"tensors of max|diff| / max|f64|, following the comparison protocol); smallest gap between the K-th and "
          f"(K+1)-th router probability {checks['min_topk_gap']:.4f} (the batch seed is advanced below 1e-4).",
          "",
          f"Size: `{os.path.basename(OUT)}` {dir_size(out) / 1e3:.0f} kB.", ""]
    sections[fam["heading"]] = "\n".join(L)
    parts = [sections[f["heading"]] for f in FAMILIES.values() if f["heading"] in sections]
    with open(path, "w") as f:
        f.write(text + "\n" + "\n".join(parts))


# ----------------------------------------------------------------------------- main

def compare(r32, r64, stored=(None, None)):
    """Per step: (grads, params, summaries, scalars) max relative differences of r32 vs r64; the
    summaries only of tensors whose gradients / values are not in `stored` (as the test does)."""
    rows = []
    sg, sp = (set(x) if x is not None else set() for x in stored)
    for a, b in zip(r32["records"], r64["records"]):
        g = max(rel_tensor(a["grads"][n], b["grads"][n]) for n in a["grads"])
        p = max(rel_tensor(a["after"][n], b["after"][n]) for n in a["grads"])
        sm = 0.0
        for n in a["grads"]:
            pairs = []
            if n not in sg:
                pairs.append((a["grads"][n], b["grads"][n]))
            if n not in sp:
                pairs.append((a["after"][n] - a["before"][n], b["after"][n] - b["before"][n]))
            for x, y in pairs:
                (na, pa), (nb, pb) = summary(x), summary(y)
                scale = max(nb, 1e-30)
                sm = max(sm, abs(na - nb) / scale, abs(pa - pb) / (scale * probe_norm(y.numel())))
        sc = max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-30)
                 for k in ("loss", "ce", "balance", "entropy_term", "preserve", "grad_norm"))
        rows.append((g, p, sm, sc))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", choices=sorted(FAMILIES), default="llama",
                    help="model family: llama (llama_f32 -> train_step, the default) or mamba "
                         "(mamba_f32 -> train_step_mamba)")
    ap.add_argument("--out", help="output folder (default: the family's, " +
                    ", ".join(f["out"] for f in FAMILIES.values()) + ")")
    ap.add_argument("--full", action="store_true", help="store every trainable tensor in full (debugging)")
    args = ap.parse_args()
    select_family(args.family)
    if args.out is None:
        args.out = OUT
    os.chdir(REPO)
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)

    model, experts, make_base, mix = load_family()
    b32 = make_base(torch.float32)
    b64 = make_base(torch.float64)

    seed = FAMILIES[FAMILY]["first_batch_seed"]
    while True:
        examples = make_batch(seed)
        results = {c["name"]: run_case(b32, c, experts, examples) for c in CASES}
        gaps = {n: min(r["gap"] for r in res["records"]) for n, res in results.items()}
        clipped = any(r["clipped"] for r in results[CASES[0]["name"]]["records"])
        say(f"batch seed {seed}: smallest K-th vs (K+1)-th probability gap (both steps) "
            + ", ".join(f"{n} {g:.2e}" for n, g in gaps.items()) + f"; {CASES[0]['name']} clipped: {clipped}")
        if min(gaps.values()) >= GAP_MIN and clipped:
            break
        seed += 1

    say("checks:")
    fwd = mixture_check(model, experts, make_base, mix, examples, results)

    # own AdamW + clipping vs torch.optim.AdamW + clip_grad_norm_, both fed the same gradients
    c0 = CASES[0]
    own = results[c0["name"]]
    ref = run_case(b32, c0, experts, examples, optimizer="torch", grad_source=[r["grads"] for r in own["records"]])
    adam = 0.0
    for r_own, r_t in zip(own["records"], ref["records"]):
        d = max(float((r_own["after"][n] - r_t["after"][n]).abs().max()) for n in r_own["after"])
        dg = max(rel_tensor(r_t["grads"][n], r_own["grads"][n]) for n in r_own["grads"])
        say(f"  {c0['name']} step {r_own['step']}: own AdamW + clipping vs torch.optim.AdamW + clip_grad_norm_ "
            f"(same gradients): max |param diff| {d:.2e}; its own gradients differ by {dg:.1e} (rel); lr "
            f"{r_own['lr']:g}, grad_norm {r_own['grad_norm']:.4f}, clip scale {r_own['clip_scale']:.4f}")
        adam = max(adam, d)

    # float32 vs float64, following the comparison protocol (oracle gradients where ORACLE_GRADS)
    worst = dict(g=0.0, p=0.0, s=0.0, sc=0.0)
    for c in CASES:
        r32 = results[c["name"]]
        forced = c["name"] in ORACLE_GRADS
        r64 = run_case(b64, c, experts, examples, grad_source=[r["grads"] for r in r32["records"]] if forced else None)
        for n, (g, p, sm, sc) in enumerate(compare(r32, r64, stored_names(c, r32["trainable"], args.full))):
            say(f"  {c['name']} step {n}: f32 vs f64{' (updates from the f32 gradients)' if forced else ''}: "
                f"max rel diff grads {g:.1e}, params {p:.1e}, norms/probes of the tensors not stored {sm:.1e}, "
                f"scalars {sc:.1e}")
            worst = dict(g=max(worst["g"], g), p=max(worst["p"], p), s=max(worst["s"], sm), sc=max(worst["sc"], sc))
        if forced:
            free = run_case(b64, c, experts, examples)
            for n, (g, p, _, _) in enumerate(compare(r32, free)):
                say(f"    (for comparison, f64 updating from its own gradients: step {n} grads {g:.1e}, params {p:.1e})")
    checks = dict(forward_vs_mixture=fwd, adamw_vs_torch=adam, f32_vs_f64_grad=worst["g"],
                  f32_vs_f64_param=worst["p"], f32_vs_f64_summary=worst["s"], f32_vs_f64_scalar=worst["sc"],
                  min_topk_gap=min(min(r["gap"] for r in res["records"]) for res in results.values()))
    checks = {k: float(f"{v:.3g}") for k, v in checks.items()}
    say("  " + ", ".join(f"{k} {v:g}" for k, v in checks.items()))
    if not (fwd < 1e-5 and adam < 1e-6 and worst["g"] < 5e-5 and worst["p"] < 1e-5 and worst["s"] < 1e-5
            and worst["sc"] < 1e-5):
        raise SystemExit("a check failed; nothing written")

    for c in CASES:
        for r in results[c["name"]]["records"]:
            say(f"  {c['name']} step {r['step']}: lr {r['lr']:g} loss {r['loss']:.6f} ce {r['ce']:.6f} "
                f"balance {r['balance']:.6f} entropy_term {r['entropy_term']:.6f} preserve {r['preserve']:.3e} "
                f"grad_norm {r['grad_norm']:.4f}{' (clipped)' if r['clipped'] else ''}")

    write_outputs(args.out, results, examples, seed, checks, args.full)
    size = dir_size(args.out)
    say(f"wrote {args.out}: " + ", ".join(f"{f} {os.path.getsize(os.path.join(args.out, f)) / 1e3:.1f} kB"
                                          for f in sorted(os.listdir(args.out))) + f"; total {size / 1e3:.1f} kB")
    if os.path.abspath(args.out) == os.path.abspath(OUT):
        limit = FAMILIES[FAMILY]["size_limit"]
        if size > limit and not args.full:
            raise SystemExit(f"{OUT} is {size} bytes, over {limit}")
        update_fixtures_readme(results, seed, args.out, checks)
        say(f"updated Tests/Fixtures/README.md (section {FAMILIES[FAMILY]['heading']})")


if __name__ == "__main__":
    main()
