"""Re-check every committed fixture under `Tests/Fixtures/` with a second, from-scratch oracle:
a float64 numpy forward pass that reads the files the way the Swift loader must (config.json in
both RoPE forms, single or sharded safetensors, tied or untied embeddings, PEFT adapters with
rank/alpha patterns, router files with any row order) and implements docs/ARCHITECTURE.md#method directly.

It writes nothing. Run from anywhere, after `python tools/make_fixtures.py`:

    python tools/check_fixtures.py

Needs numpy and safetensors only (no torch, transformers or peft). Exits non-zero if any expected
tensor differs by more than 1e-4 (logits) or any routing decision differs.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys

import numpy as np
from safetensors.numpy import load_file
from safetensors import safe_open

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(REPO, "Tests", "Fixtures")
TOL = 1e-4
MODULES = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
           "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def load_tensors(path):
    """All tensors of a safetensors file as float64 (bf16 widened by bit shifting)."""
    out = {}
    with safe_open(path, framework="numpy") as f:
        names = list(f.keys())
    try:
        raw = load_file(path)
        return {k: v.astype(np.float64) for k, v in raw.items()}
    except (TypeError, ValueError):
        pass
    # numpy has no bfloat16: decode the file by hand.
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
        data = fh.read()
    for k in names:
        info = header[k]
        a, b = info["data_offsets"]
        buf = data[a:b]
        if info["dtype"] == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(buf, dtype={"F32": "<f4", "F16": "<f2", "I32": "<i4"}[info["dtype"]])
        out[k] = arr.reshape(info["shape"]).astype(np.float64)
    return out


def load_model(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        w = {}
        for shard in sorted(set(json.load(open(index))["weight_map"].values())):
            w.update(load_tensors(os.path.join(folder, shard)))
    else:
        w = load_tensors(os.path.join(folder, "model.safetensors"))
    if "lm_head.weight" not in w:
        assert cfg.get("tie_word_embeddings", True), folder
        w["lm_head.weight"] = w["model.embed_tokens.weight"]
    return cfg, w


def inv_freqs(cfg, head_dim):
    if "rope_parameters" in cfg and cfg["rope_parameters"] is not None:
        rp = dict(cfg["rope_parameters"])
    else:
        rp = dict(cfg.get("rope_scaling") or {})
        rp["rope_theta"] = cfg.get("rope_theta", 10000.0)
    kind = rp.get("rope_type", rp.get("type", "default"))
    inv = 1.0 / rp["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    if kind == "default":
        return inv
    assert kind == "llama3", kind
    factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
    old = rp["original_max_position_embeddings"]
    out = []
    for f in inv:
        wavelen = 2 * math.pi / f
        if wavelen < old / hi:
            out.append(f)
        elif wavelen > old / lo:
            out.append(f / factor)
        else:
            s = (old / wavelen - lo) / (hi - lo)
            out.append((1 - s) * f / factor + s * f)
    return np.array(out)


def load_expert(folder):
    cfg = json.load(open(os.path.join(folder, "adapter_config.json")))
    t = load_tensors(os.path.join(folder, "adapter_model.safetensors"))
    out = {}
    for key, A in t.items():
        m = re.match(r"base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_A\.weight$", key)
        if not m:
            continue
        layer, module = int(m.group(1)), m.group(3)
        B = t[key.replace("lora_A", "lora_B")]
        r = A.shape[0]
        alpha = cfg["lora_alpha"]
        for pat, v in (cfg.get("alpha_pattern") or {}).items():
            if module == pat or module.endswith("." + pat):
                alpha = v
        scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        out[(layer, module)] = (A, B, scale)
    return out


def rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rotate(x, cos, sin):  # x [H, T, D]; HF "rotate_half" pairing (i, i + D/2)
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rot * sin


def forward(cfg, w, tokens, experts, gate_fn):
    """gate_fn(layer, h [T, d]) -> dense gates [T, E] (canonical expert order)."""
    T = len(tokens)
    d = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    hd = cfg.get("head_dim") or d // H
    eps = cfg["rms_norm_eps"]
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
    inv = inv_freqs(cfg, hd)
    ang = np.arange(T)[:, None] * inv[None, :]
    cos = np.cos(np.concatenate([ang, ang], -1))
    sin = np.sin(np.concatenate([ang, ang], -1))
    mask = np.tril(np.ones((T, T), dtype=bool))
    if window is not None:
        mask &= (np.arange(T)[None, :] > np.arange(T)[:, None] - window)
    x = w["model.embed_tokens.weight"][tokens]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"], eps)
        g = gate_fn(i, h)

        def proj(module, u):
            y = u @ w[p + f"{MODULES[module]}.{module}.weight"].T
            bias = w.get(p + f"{MODULES[module]}.{module}.bias")
            if bias is not None:
                y = y + bias
            for e, ex in enumerate(experts):
                if (i, module) in ex:
                    A, B, s = ex[(i, module)]
                    y = y + g[:, e:e + 1] * s * ((u @ A.T) @ B.T)
            return y

        q = proj("q_proj", h).reshape(T, H, hd).transpose(1, 0, 2)
        k = proj("k_proj", h).reshape(T, KV, hd).transpose(1, 0, 2)
        v = proj("v_proj", h).reshape(T, KV, hd).transpose(1, 0, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k = np.repeat(k, H // KV, axis=0)
        v = np.repeat(v, H // KV, axis=0)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.where(mask, s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v
        x = x + proj("o_proj", a.transpose(1, 0, 2).reshape(T, H * hd))
        h2 = rms(x, w[p + "post_attention_layernorm.weight"], eps)
        gt = proj("gate_proj", h2)
        x = x + proj("down_proj", gt / (1 + np.exp(-gt)) * proj("up_proj", h2))
    return rms(x, w["model.norm.weight"], eps) @ w["lm_head.weight"].T


def router_gates(path, names, mode, top_k=None, temperature=None, record=None):
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    t = load_tensors(path)
    order = json.loads(meta["experts"])
    perm = [order.index(n) for n in names]
    k = int(meta["top_k"]) if top_k is None else top_k
    temp = float(meta["temperature"]) if temperature is None else temperature

    def fn(layer, h):
        z = h @ t[f"router.layers.{layer}.weight"].T + t[f"router.layers.{layer}.bias"]
        if meta.get("input", "token") == "context":
            c = np.cumsum(h, 0) / np.arange(1, h.shape[0] + 1)[:, None]
            z = z + c @ t[f"router.layers.{layer}.context_weight"].T
        z = z / temp
        pz = np.exp(z - z.max(-1, keepdims=True))
        pz = (pz / pz.sum(-1, keepdims=True))[:, perm]
        if mode == "soft":
            return pz
        ids = np.argsort(-pz, axis=-1, kind="stable")[:, :k]
        sel = np.take_along_axis(pz, ids, -1)
        gates = sel / sel.sum(-1, keepdims=True)
        if record is not None:
            record[layer] = (ids, gates)
        dense = np.zeros_like(pz)
        np.put_along_axis(dense, ids, gates, -1)
        return dense
    return fn


def main():
    names = ["e0", "e1", "e2"]
    bad = 0

    def cmp(case, key, got, want, tol=TOL):
        nonlocal bad
        d = float(np.abs(got - want).max())
        ok = d <= tol
        bad += not ok
        print(f"  {'ok ' if ok else 'BAD'} {key:22s} max diff {d:.2e}")

    for case in ("llama_f32", "mistral_f32", "qwen2_f32", "llama_bf16", "llama_sharded"):
        folder = os.path.join(FIX, case)
        print(case)
        cfg, w = load_model(folder)
        exp = load_tensors(os.path.join(folder, "expected.safetensors"))
        tokens = exp["tokens"].astype(np.int64)
        cmp(case, "base_logits", forward(cfg, w, tokens, [], lambda i, h: np.zeros((len(tokens), 0))),
            exp["base_logits"])
        if case == "llama_sharded":
            continue
        ex = [load_expert(os.path.join(folder, "adapters", n)) for n in names]
        for j, n in enumerate(names):
            onehot = np.eye(3)[j]
            cmp(case, f"peft_{n}_logits", forward(cfg, w, tokens, ex, lambda i, h: np.tile(onehot, (len(h), 1))),
                exp[f"peft_{n}_logits"])
        router = os.path.join(folder, "router.safetensors")
        ctx = os.path.join(folder, "router_context.safetensors")
        for key, path, kw in (("learned", router, {}), ("context", ctx, {}),
                              ("learned_topk1", router, {"top_k": 1}), ("learned_temp2", router, {"temperature": 2.0})):
            rec = {}
            cmp(case, f"{key}_logits", forward(cfg, w, tokens, ex, router_gates(path, names, "learned", record=rec, **kw)),
                exp[f"{key}_logits"])
            if key in ("learned", "context"):
                ids = np.stack([rec[i][0] for i in sorted(rec)], 1)
                gates = np.stack([rec[i][1] for i in sorted(rec)], 1)
                same = np.array_equal(ids, exp[f"{key}_ids"])
                bad += not same
                print(f"  {'ok ' if same else 'BAD'} {key + '_ids':22s} {'identical' if same else 'DIFFER'}")
                cmp(case, f"{key}_gates", gates, exp[f"{key}_gates"], 1e-5)
        cmp(case, "soft_logits", forward(cfg, w, tokens, ex, router_gates(router, names, "soft")), exp["soft_logits"])
        cmp(case, "uniform_logits", forward(cfg, w, tokens, ex, lambda i, h: np.full((len(h), 3), 1 / 3)),
            exp["uniform_logits"])
        fw = exp["fixed_weights"]
        cmp(case, "fixed_logits", forward(cfg, w, tokens, ex, lambda i, h: np.tile(fw, (len(h), 1))),
            exp["fixed_logits"])
    print("all fixtures agree" if bad == 0 else f"{bad} mismatches")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
