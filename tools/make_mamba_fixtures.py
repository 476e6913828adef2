"""Write the Mamba / FalconMamba numeric test fixtures under `Tests/Fixtures/`:

    Tests/Fixtures/mamba_f32/          MambaForCausalLM, tied embeddings, time_step_rank "auto" (= 3)
    Tests/Fixtures/falcon_mamba_f32/   FalconMambaForCausalLM, untied lm_head, in/out_proj biases,
                                       time_step_rank 5, dt/B/C RMS norms (mixer_rms_eps 1e-6)

Each folder has the same files and tensor names as Tests/Fixtures/llama_f32 (config.json,
model.safetensors, generation_config.json, adapters/{e0,e1,e2}/, router.safetensors,
router_context.safetensors, expected.safetensors). Run from anywhere:

    python tools/make_mamba_fixtures.py

It must be rerun AFTER tools/make_fixtures.py, which regenerates Tests/Fixtures/README.md without
this script's section (delimited by `<!-- mamba-fixtures:begin -->` / `<!-- mamba-fixtures:end -->`,
inserted before `## train_step`, replaced on every run; tools/make_train_fixture.py keeps it).

Needs the venv of tools/requirements.txt (torch, transformers >= 5, peft, safetensors, numpy); CPU
only. Every random draw is seeded (SEEDS below), so a rerun with the same versions rewrites the same
bytes.

Oracles:
- `base_logits`: transformers' pure-torch path (eval, no cache; `causal_conv1d_fn` and the
  sequential loop of `mamba_selective_scan` — no mamba_ssm / causal_conv1d / mambapy installed).
- `peft_e0_logits`, `peft_e1_logits`: `peft.PeftModel.from_pretrained` on the saved folders
  (targets in_proj and x_proj, which PEFT and transformers both handle).
- `peft_e2_logits` and all mixture outputs: tools/mamba_reference.py, an independent torch
  implementation from the weights. e2 targets all four mixer Linears, including `out_proj` (PEFT
  refuses it on Mamba models) and `dt_proj` (transformers uses `dt_proj.weight` directly, so a PEFT
  delta there is ignored), so this script writes e2 itself in PEFT's exact layout; its logits are
  cross-checked against transformers run on a copy of the model with e2's deltas merged into the
  weights (W + s B A).
Checked here: the reference reproduces transformers' logits (no cache, and prefill 5 + one-token
decode with its cache), and with one-hot fixed gates reproduces PeftModel for e0 and e1.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import sys
import warnings

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import peft
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (AutoModelForCausalLM, FalconMambaConfig, FalconMambaForCausalLM, MambaConfig,
                          MambaForCausalLM)
from transformers.models.falcon_mamba import modeling_falcon_mamba
from transformers.models.mamba import modeling_mamba
from transformers.utils.import_utils import is_mambapy_available, is_torchdynamo_compiling

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lmx_reference import probability_gaps, selection_table  # noqa: E402
from make_fixtures import (CONTEXT_ORDER, E_NAMES, FIXED_WEIGHTS, GAP_MIN, LORA_B_SCALE,  # noqa: E402
                           ROUTER_SCALE, T, VOCAB, dir_size, ids_gates, make_routers, save_expected,
                           save_model, save_peft_adapter, say, start_case, tensor_listing)
from mamba_reference import MAMBA_MODULES, MambaMixture, MambaReference, load_expert  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = "Tests/Fixtures"  # relative to REPO (we chdir there so no absolute path lands in a file)
README = os.path.join(OUT, "README.md")
BEGIN, END = "<!-- mamba-fixtures:begin -->", "<!-- mamba-fixtures:end -->"
CASES = ("mamba_f32", "falcon_mamba_f32")
# Both folders together. ~608 kB: the two models (166 + 196 kB) and two expected.safetensors (2 x 70 kB)
# alone are ~500 kB at the sizes asked for (vocab 128, hidden 48, 2 layers, T 12); adapters ~80 kB.
SIZE_BUDGET = 650e3

SEEDS = {
    "mamba_f32": dict(model=11000, tokens=11001, adapters=11010, router=11100),
    "falcon_mamba_f32": dict(model=12000, tokens=12001, adapters=12010, router=12100),
}

HIDDEN, LAYERS, STATE, EXPAND, CONV = 48, 2, 8, 2, 4
INTER = EXPAND * HIDDEN
PREFILL = 5  # transformers' cached path: prefill this many tokens, then decode one at a time

# Weight draws (every parameter is overwritten; see draw_weights).
W = dict(
    norm=0.1,        # RMSNorm weights 1 + 0.1 N(0,1)
    emb=0.25,        # embeddings N(0, 0.25^2) (and the tied lm_head)
    head=0.25,       # untied lm_head N(0, 0.25^2)
    in_proj=1.0,     # in_proj.weight N(0, 1/d)                  -> xs, z of unit RMS
    in_bias=0.2,     # in_proj.bias N(0, 0.2^2) (use_bias)
    conv=0.5,        # conv1d.weight N(0, 0.5^2)
    conv_bias=0.3,   # conv1d.bias N(0, 0.3^2)
    x_proj=1.5,      # x_proj.weight N(0, 1.5^2/I)
    dt_proj=0.6,     # dt_proj.weight N(0, 0.6^2/R)
    dt_min=0.01, dt_max=0.5,  # softplus(dt_proj.bias) log-uniform in [0.01, 0.5]
    a_min=0.5, a_max=4.0,     # A_log = log U(0.5, 4)
    d_mean=1.0, d_std=0.5,    # D ~ N(1, 0.5^2)
    out_proj=1.0,    # out_proj.weight N(0, 1/I)
    out_bias=0.1,    # out_proj.bias N(0, 0.1^2) (use_bias)
)

ADAPTERS = {  # e0 and e1 are written by PEFT; e2 by write_e2 (PEFT cannot make it)
    "e0": dict(r=4, lora_alpha=8, target_modules=["in_proj", "x_proj"]),
    "e1": dict(r=8, lora_alpha=16, use_rslora=True, target_modules=["in_proj", "x_proj"],
               rank_pattern={"x_proj": 4}, layers_to_transform=[1]),
}
E2 = dict(r=4, lora_alpha=4, target_modules=list(MAMBA_MODULES))

LOG: dict = {}


# ----------------------------------------------------------------------------- models

def mamba_config():
    return MambaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, state_size=STATE,
                       expand=EXPAND, conv_kernel=CONV, time_step_rank="auto", use_bias=False,
                       use_conv_bias=True, tie_word_embeddings=True, layer_norm_epsilon=1e-5,
                       use_mambapy=False)


def falcon_config():
    return FalconMambaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, state_size=STATE,
                             expand=EXPAND, conv_kernel=CONV, time_step_rank=5, use_bias=True,
                             use_conv_bias=True, tie_word_embeddings=False, layer_norm_epsilon=1e-5,
                             mixer_rms_eps=1e-6, use_mambapy=False)


def draw_weights(model, seed):
    """Overwrite every parameter with a seeded draw (W above), in named_parameters order."""
    cfg = model.config
    d, I, R = cfg.hidden_size, cfg.intermediate_size, int(cfg.time_step_rank)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            def randn():
                return torch.randn(p.shape, generator=g)

            def rand():
                return torch.rand(p.shape, generator=g)

            if name.endswith("norm.weight") or name.endswith("norm_f.weight"):
                v = 1.0 + W["norm"] * randn()
            elif name == "backbone.embeddings.weight":
                v = W["emb"] * randn()
            elif name == "lm_head.weight":
                v = W["head"] * randn()
            elif name.endswith("mixer.A_log"):
                v = torch.log(W["a_min"] + (W["a_max"] - W["a_min"]) * rand())
            elif name.endswith("mixer.D"):
                v = W["d_mean"] + W["d_std"] * randn()
            elif name.endswith("conv1d.weight"):
                v = W["conv"] * randn()
            elif name.endswith("conv1d.bias"):
                v = W["conv_bias"] * randn()
            elif name.endswith("in_proj.weight"):
                v = W["in_proj"] / math.sqrt(d) * randn()
            elif name.endswith("in_proj.bias"):
                v = W["in_bias"] * randn()
            elif name.endswith("x_proj.weight"):
                v = W["x_proj"] / math.sqrt(I) * randn()
            elif name.endswith("dt_proj.weight"):
                v = W["dt_proj"] / math.sqrt(R) * randn()
            elif name.endswith("dt_proj.bias"):
                lo, hi = math.log(W["dt_min"]), math.log(W["dt_max"])
                dt = torch.exp(lo + (hi - lo) * rand())
                v = dt + torch.log(-torch.expm1(-dt))  # softplus^-1
            elif name.endswith("out_proj.weight"):
                v = W["out_proj"] / math.sqrt(I) * randn()
            elif name.endswith("out_proj.bias"):
                v = W["out_bias"] * randn()
            else:
                raise KeyError(f"no draw for parameter {name}")
            p.copy_(v)


def build(case, seed):
    torch.manual_seed(seed)
    if case == "mamba_f32":
        m = MambaForCausalLM(mamba_config())
        assert m.lm_head.weight is m.backbone.embeddings.weight  # tied
    else:
        m = FalconMambaForCausalLM(falcon_config())
        assert m.lm_head.weight is not m.backbone.embeddings.weight
    draw_weights(m, seed)
    return m.eval()


def load_base(folder):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


@torch.no_grad()
def hf_logits(model, tokens):
    """transformers' logits [T, V] for one sequence, no cache."""
    return model(input_ids=tokens.view(1, -1).long(), use_cache=False).logits[0].float()


@torch.no_grad()
def hf_logits_cached(model, tokens, prefill=PREFILL):
    """transformers with its cache: prefill `prefill` tokens, then one token per call."""
    ids = tokens.view(1, -1).long()
    out = model(input_ids=ids[:, :prefill], use_cache=True)
    rows, cache = [out.logits[0]], out.cache
    for t in range(prefill, ids.shape[1]):
        out = model(input_ids=ids[:, t:t + 1], cache=cache, use_cache=True)
        rows.append(out.logits[0])
        cache = out.cache
    return torch.cat(rows, dim=0).float()


@contextlib.contextmanager
def count_kernel_calls():
    """Count calls of the pure-torch kernels in modeling_mamba / modeling_falcon_mamba (their
    forwards look them up as module globals at call time)."""
    counts = {}
    saved = []
    for mod in (modeling_mamba, modeling_falcon_mamba):
        for fname in ("causal_conv1d_fn", "causal_conv1d_update", "mamba_selective_scan",
                      "mamba_selective_state_update", "mamba_inner_fn"):
            fn = getattr(mod, fname)
            assert fn.__module__ == mod.__name__, (fname, fn.__module__)  # the torch fallback itself
            saved.append((mod, fname, fn))

            def wrapped(*a, _fn=fn, _name=fname, **k):
                counts[_name] = counts.get(_name, 0) + 1
                return _fn(*a, **k)
            setattr(mod, fname, wrapped)
    try:
        yield counts
    finally:
        for mod, fname, fn in saved:
            setattr(mod, fname, fn)


def check_config(folder, case):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    need = dict(model_type="mamba" if case == "mamba_f32" else "falcon_mamba", vocab_size=VOCAB,
                hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS, state_size=STATE,
                conv_kernel=CONV, time_step_rank=3 if case == "mamba_f32" else 5, expand=EXPAND,
                use_bias=case != "mamba_f32", use_conv_bias=True, tie_word_embeddings=case == "mamba_f32",
                layer_norm_epsilon=1e-5, hidden_act="silu", dtype="float32", use_mambapy=False)
    if case != "mamba_f32":
        need["mixer_rms_eps"] = 1e-6
    for k, v in need.items():
        assert cfg.get(k) == v and type(cfg.get(k)) is type(v), (case, k, cfg.get(k), v)
    return cfg


# ----------------------------------------------------------------------------- adapters

def write_e2(folder, template_dir, seed):
    """Write adapters/e2 in PEFT's exact layout (adapter_config.json from e0's as PEFT wrote it, with
    r / lora_alpha / target_modules / patterns changed; tensors named
    base_model.model.backbone.layers.{i}.mixer.{module}.lora_{A,B}.weight, float32). Draws as PEFT's
    init_lora_weights=False does (nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for A [r, in]
    and B [out, r]), then B *= LORA_B_SCALE."""
    out = os.path.join(folder, "adapters", "e2")
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    cfg = json.load(open(os.path.join(template_dir, "adapter_config.json")))
    cfg.update(r=E2["r"], lora_alpha=E2["lora_alpha"], target_modules=sorted(E2["target_modules"]),
               rank_pattern={}, alpha_pattern={}, layers_to_transform=None, layers_pattern=None,
               use_rslora=False)
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))  # PEFT's layout (as sort_target_modules writes)
    base = json.load(open(os.path.join(folder, "config.json")))
    shapes = {m: tuple(s) for m, s in module_shapes(base).items()}
    g = torch.Generator().manual_seed(seed)
    r = E2["r"]
    tensors = {}
    for layer in range(base["num_hidden_layers"]):
        for module in MAMBA_MODULES:
            n_out, n_in = shapes[module]
            a = (torch.rand(r, n_in, generator=g) * 2 - 1) / math.sqrt(n_in)
            b = (torch.rand(n_out, r, generator=g) * 2 - 1) / math.sqrt(r) * LORA_B_SCALE
            pre = f"base_model.model.backbone.layers.{layer}.mixer.{module}"
            tensors[f"{pre}.lora_A.weight"] = a.contiguous()
            tensors[f"{pre}.lora_B.weight"] = b.contiguous()
    save_file(tensors, os.path.join(out, "adapter_model.safetensors"), metadata={"format": "pt"})
    return out


def module_shapes(cfg):
    d, I, N = cfg["hidden_size"], cfg["intermediate_size"], cfg["state_size"]
    R = int(cfg["time_step_rank"])
    return {"in_proj": (2 * I, d), "x_proj": (R + 2 * N, I), "dt_proj": (I, R), "out_proj": (d, I)}


def merged_copy(model, expert):
    """A deep copy of `model` with the expert's deltas s B A added to the Linear weights."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for (layer, module), (A, B, s) in expert.tensors.items():
            lin = getattr(m.backbone.layers[layer].mixer, module)
            lin.weight.add_(s * (B @ A))
    return m


def peft_probe(folder, tokens, base_logits):
    """What PEFT/transformers do with dt_proj and out_proj targets on this model."""
    out = {}
    base = load_base(folder)
    torch.manual_seed(0)
    pm = get_peft_model(base, LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["dt_proj"],
                                         task_type="CAUSAL_LM")).eval()
    lg = hf_logits(pm, tokens)
    out["dt_proj_peft_effect"] = float((lg - base_logits).abs().max())
    merged = pm.merge_and_unload()
    out["dt_proj_merged_effect"] = float((hf_logits(merged, tokens) - base_logits).abs().max())
    try:
        get_peft_model(load_base(folder), LoraConfig(r=4, target_modules=["out_proj"], task_type="CAUSAL_LM"))
        out["out_proj_error"] = None
    except Exception as e:  # noqa: BLE001 - we report what PEFT says
        # First sentence only: the rest prints a Python set, whose order follows the hash seed.
        out["out_proj_error"] = f"{type(e).__name__}: {str(e).split('. Incompatible modules')[0]}."
    return out


# ----------------------------------------------------------------------------- one case

def run_case(case):
    seeds = SEEDS[case]
    folder, log, tokens = start_case(case, seeds, LOG)

    save_model(build(case, seeds["model"]), folder)
    cfg = check_config(folder, case)
    log["config"] = open(os.path.join(folder, "config.json")).read()
    log["model_tensors"] = tensor_listing(os.path.join(folder, "model.safetensors"))
    has_head = any(k == "lm_head.weight" for k, _, _ in log["model_tensors"])
    assert has_head == (case != "mamba_f32"), has_head

    # transformers' pure-torch path: which kernels ran.
    assert not is_mambapy_available() and not is_torchdynamo_compiling()
    base = load_base(folder)
    assert base.config.use_mambapy is False and not base.training
    with count_kernel_calls() as calls:
        base_logits = hf_logits(base, tokens)
    assert calls == {"causal_conv1d_fn": LAYERS, "mamba_selective_scan": LAYERS}, calls
    with count_kernel_calls() as calls_dec:
        cached = hf_logits_cached(base, tokens)
    assert calls_dec == {"causal_conv1d_fn": LAYERS, "mamba_selective_scan": LAYERS,
                         "causal_conv1d_update": LAYERS * (T - PREFILL),
                         "mamba_selective_state_update": LAYERS * (T - PREFILL)}, calls_dec
    log["kernel_calls"] = (dict(calls), dict(calls_dec))
    std = float(base_logits.std())
    say(f"  base logit std = {std:.3f}, max |logit| = {float(base_logits.abs().max()):.3f}; kernels {dict(calls)}")
    log["base_std"], log["base_max"] = std, float(base_logits.abs().max())
    assert 1.0 <= std <= 2.0, std

    # The reference against transformers.
    ref = MambaReference.from_pretrained(folder)
    with torch.no_grad():
        ref_logits = ref.forward(tokens)
    d_ref = float((ref_logits - base_logits).abs().max())
    d_dec = float((ref_logits - cached).abs().max())
    d_hf = float((cached - base_logits).abs().max())
    ref64 = MambaReference.from_pretrained(folder, dtype=torch.float64)
    with torch.no_grad():
        d64 = float((ref64.forward(tokens) - base_logits.double()).abs().max())
    say(f"  check: reference vs transformers (no cache) {d_ref:.2e}; vs transformers prefill {PREFILL} + "
        f"{T - PREFILL} single-token decode steps {d_dec:.2e}; transformers cached vs uncached {d_hf:.2e}; "
        f"float64 reference vs transformers {d64:.2e}")
    assert d_ref < 1e-5 and d_dec < 1e-5, (d_ref, d_dec)
    log["checks"] = dict(ref_vs_hf=d_ref, ref_vs_hf_cached=d_dec, hf_cached_vs_uncached=d_hf, ref64_vs_hf=d64)

    # Every part of the block matters: neutralise one at a time (in the reference).
    log["ablations"] = ablations(ref, tokens, ref_logits)
    say("  ablations, max |logits - base|: " + "; ".join(f"{k} {v:.3f}" for k, v in log["ablations"].items()))
    for k, v in log["ablations"].items():
        assert v > 0.05, (k, v)

    # Adapters e0, e1 (PEFT) and e2 (written here).
    expected = {"tokens": tokens, "base_logits": base_logits}
    dirs = {}
    for k, (name, spec) in enumerate(ADAPTERS.items()):
        dirs[name] = os.path.join(folder, "adapters", name)
        save_peft_adapter(load_base(folder), spec, seeds["adapters"] + k, dirs[name])
    dirs["e2"] = write_e2(folder, dirs["e0"], seeds["adapters"] + 2)
    check_adapters(dirs, cfg)
    log["adapter_tensors"] = {n: tensor_listing(os.path.join(dirs[n], "adapter_model.safetensors")) for n in E_NAMES}
    log["adapter_configs"] = {n: json.load(open(os.path.join(dirs[n], "adapter_config.json"))) for n in E_NAMES}

    experts = [load_expert(dirs[n], n) for n in E_NAMES]
    mix = MambaMixture(ref, experts)
    log["peft"] = {}
    for name in ("e0", "e1"):
        pm = PeftModel.from_pretrained(load_base(folder), dirs[name]).eval()
        expected[f"peft_{name}_logits"] = hf_logits(pm, tokens)
    expected["peft_e2_logits"], _ = mix.run(tokens, "fixed", fixed=[0.0, 0.0, 1.0])
    for k, name in enumerate(E_NAMES):
        lg = expected[f"peft_{name}_logits"]
        dmax = float((lg - base_logits).abs().max())
        say(f"  {name}: max |single-adapter - base| = {dmax:.3f}, logit std = {float(lg.std()):.3f}")
        log["peft"][name] = (dmax, float(lg.std()))
        assert dmax > 0.05 and float(lg.abs().max()) < 50, (name, dmax)
    log["one_hot"] = {}
    for k, name in enumerate(("e0", "e1")):
        onehot = [1.0 if j == k else 0.0 for j in range(len(E_NAMES))]
        lg, _ = mix.run(tokens, "fixed", fixed=onehot)
        d = float((lg - expected[f"peft_{name}_logits"]).abs().max())
        say(f"  check: reference fixed one-hot {name} vs PeftModel: max diff {d:.2e}")
        assert d < 1e-5, (name, d)
        log["one_hot"][name] = d
    d_merge = float((hf_logits(merged_copy(base, experts[2]), tokens) - expected["peft_e2_logits"]).abs().max())
    say(f"  check: reference e2 (gate 1) vs transformers with e2 merged into the weights: max diff {d_merge:.2e}")
    assert d_merge < 1e-5, d_merge
    log["e2_merge"] = d_merge
    log["e2_modules"] = {}
    for module in MAMBA_MODULES:  # each of e2's modules matters
        part = copy.copy(experts[2])
        part.tensors = {k: v for k, v in experts[2].tensors.items() if k[1] == module}
        lg, _ = MambaMixture(ref, [part]).run(tokens, "fixed", fixed=[1.0])
        log["e2_modules"][module] = float((lg - base_logits).abs().max())
        assert log["e2_modules"][module] > 0.01, (module, log["e2_modules"][module])
    say("  e2 one module at a time, max |logits - base|: " +
        ", ".join(f"{m} {v:.3f}" for m, v in log["e2_modules"].items()))
    log["probe"] = peft_probe(folder, tokens, base_logits)
    say(f"  PEFT on this model: {log['probe']}")
    assert log["probe"]["dt_proj_peft_effect"] == 0.0 and log["probe"]["dt_proj_merged_effect"] > 1e-3
    lg, _ = mix.run(tokens, "none")
    assert float((lg - base_logits).abs().max()) < 1e-5

    # Routers (same rules as the llama fixtures), written then reloaded from the files.
    dm = cfg["hidden_size"]
    seed_tok, seed_ctx, r, rc = make_routers(mix, tokens, seeds["router"], folder, LAYERS, dm, log)
    assert r.weights[0].shape == (3, dm) and rc.context_weights[0].shape == (3, dm)

    def record_top2(name, router, description):
        """Logits, selections, gaps and the selection table of learned top-2 routing with `router`."""
        lg, tr = mix.run(tokens, "learned", router=router)
        expected[f"{name}_logits"] = lg
        expected[f"{name}_ids"], expected[f"{name}_gates"] = ids_gates(tr)
        log[f"gap_{name}"] = probability_gaps(tr)
        log[f"table_{name}"] = selection_table(tr, E_NAMES)
        say(f"  {name} top-2 ({description}); min prob gap {log[f'gap_{name}']:.4f}")
        say(log[f"table_{name}"])

    record_top2("learned", r, f"router seed {seed_tok}")
    expected["soft_logits"], _ = mix.run(tokens, "soft", router=r)
    expected["uniform_logits"], _ = mix.run(tokens, "uniform")
    expected["fixed_weights"] = torch.tensor(FIXED_WEIGHTS, dtype=torch.float32)
    expected["fixed_logits"], _ = mix.run(tokens, "fixed", fixed=FIXED_WEIGHTS)
    record_top2("context", rc, f"router seed {seed_ctx}, T=0.7, rows {CONTEXT_ORDER}")
    lg, tr = mix.run(tokens, "learned", router=r, top_k=1)
    expected["learned_topk1_logits"] = lg
    log["gap_topk1"] = probability_gaps(tr)
    lg, tr = mix.run(tokens, "learned", router=r, temperature=2.0)
    expected["learned_temp2_logits"] = lg
    log["gap_temp2"] = probability_gaps(tr)
    log["mix_effect"] = {}
    for k in ("learned_logits", "soft_logits", "uniform_logits", "fixed_logits", "context_logits",
              "learned_topk1_logits", "learned_temp2_logits"):
        v = float((expected[k] - base_logits).abs().max())
        log["mix_effect"][k] = v
        assert v > 0.05 and float(expected[k].abs().max()) < 50, (k, v)
    say("  max |x - base|: " + ", ".join(f"{k} {v:.3f}" for k, v in log["mix_effect"].items()))

    want = {"tokens", "base_logits", "peft_e0_logits", "peft_e1_logits", "peft_e2_logits", "learned_logits",
            "learned_ids", "learned_gates", "soft_logits", "uniform_logits", "fixed_weights", "fixed_logits",
            "context_logits", "context_ids", "context_gates", "learned_topk1_logits", "learned_temp2_logits"}
    with safe_open(os.path.join(OUT, "llama_f32", "expected.safetensors"), framework="pt") as f:
        assert set(f.keys()) == want, set(f.keys()) ^ want  # the same names as the llama fixture
    assert set(expected) == want, set(expected) ^ want
    save_expected(folder, expected)
    log["size"] = dir_size(folder)


def ablations(ref, tokens, ref_logits):
    """max |logits - reference logits| when one part of every block is neutralised."""
    out = {}

    def run(label, edit=None, **attrs):
        r = copy.copy(ref)
        r.layers = [dict(lw) for lw in ref.layers]
        for k, v in attrs.items():
            setattr(r, k, v)
        if edit is not None:
            for lw in r.layers:
                edit(lw)
        with torch.no_grad():
            out[label] = float((r.forward(tokens) - ref_logits).abs().max())

    run("block RMSNorm weights = 1", lambda lw: lw.update(norm=torch.ones_like(lw["norm"])))
    run("conv1d.bias = 0", lambda lw: lw.update(conv_b=torch.zeros_like(lw["conv_b"])))
    run("conv1d taps k < K-1 = 0", lambda lw: lw.update(conv_w=torch.cat(
        [torch.zeros_like(lw["conv_w"][:, :-1]), lw["conv_w"][:, -1:]], 1)))
    run("dt_proj.weight = 0", lambda lw: lw.update(dt_proj=(torch.zeros_like(lw["dt_proj"][0]), lw["dt_proj"][1])))
    run("dt_proj.bias = 0", lambda lw: lw.update(dt_proj=(lw["dt_proj"][0], torch.zeros_like(lw["dt_proj"][1]))))
    run("A_log = 0 (A = -1)", lambda lw: lw.update(A_log=torch.zeros_like(lw["A_log"])))
    run("D = 0", lambda lw: lw.update(D=torch.zeros_like(lw["D"])))
    run("C rows of x_proj = 0 (no scan output)", lambda lw: lw.update(x_proj=(torch.cat(
        [lw["x_proj"][0][:-ref.N], torch.zeros_like(lw["x_proj"][0][-ref.N:])]), lw["x_proj"][1])))
    if ref.layers[0]["in_proj"][1] is not None:
        run("in_proj.bias, out_proj.bias = 0", lambda lw: lw.update(
            in_proj=(lw["in_proj"][0], torch.zeros_like(lw["in_proj"][1])),
            out_proj=(lw["out_proj"][0], torch.zeros_like(lw["out_proj"][1]))))
    if ref.falcon:
        run("no dt/B/C RMS norms (plain Mamba)", falcon=False)
    run("final norm weight = 1", norm_f=torch.ones_like(ref.norm_f))
    return out


def check_adapters(dirs, cfg):
    for name in E_NAMES:
        c = json.load(open(os.path.join(dirs[name], "adapter_config.json")))
        assert c["peft_type"] == "LORA" and c["task_type"] == "CAUSAL_LM", c
        assert c["base_model_name_or_path"] == os.path.dirname(os.path.dirname(dirs[name])), c
    c0 = json.load(open(os.path.join(dirs["e0"], "adapter_config.json")))
    assert c0["r"] == 4 and c0["lora_alpha"] == 8 and c0["target_modules"] == ["in_proj", "x_proj"], c0
    c1 = json.load(open(os.path.join(dirs["e1"], "adapter_config.json")))
    assert c1["use_rslora"] is True and c1["r"] == 8 and c1["lora_alpha"] == 16, c1
    assert c1["rank_pattern"] == {"x_proj": 4} and c1["layers_to_transform"] == [1], c1
    c2 = json.load(open(os.path.join(dirs["e2"], "adapter_config.json")))
    assert set(c0) == set(c2), set(c0) ^ set(c2)
    assert c2["target_modules"] == ["dt_proj", "in_proj", "out_proj", "x_proj"] and c2["r"] == 4, c2
    shapes = module_shapes(cfg)
    for name, per_layer in (("e0", {0: {"in_proj": 4, "x_proj": 4}, 1: {"in_proj": 4, "x_proj": 4}}),
                            ("e1", {1: {"in_proj": 8, "x_proj": 4}}),
                            ("e2", {i: {m: 4 for m in MAMBA_MODULES} for i in range(LAYERS)})):
        want = {}
        for layer, mods in per_layer.items():
            for m, r in mods.items():
                pre = f"base_model.model.backbone.layers.{layer}.mixer.{m}"
                want[f"{pre}.lora_A.weight"] = [r, shapes[m][1]]
                want[f"{pre}.lora_B.weight"] = [shapes[m][0], r]
        got = {k: s for k, s, dt in tensor_listing(os.path.join(dirs[name], "adapter_model.safetensors"))
               if dt == "F32"}
        assert got == want, (name, got, want)
        with safe_open(os.path.join(dirs[name], "adapter_model.safetensors"), framework="pt") as f:
            assert f.metadata() == {"format": "pt"}, f.metadata()


# ----------------------------------------------------------------------------- README

def section():
    L = []
    w = L.append
    w(BEGIN)
    w("## mamba_f32 and falcon_mamba_f32")
    w("")
    w("Written by `python tools/make_mamba_fixtures.py`. tools/make_fixtures.py rewrites this README without this "
      "section, so rerun make_mamba_fixtures.py after it (it replaces the text between the `mamba-fixtures` markers, "
      "placed before `## train_step`, which tools/make_train_fixture.py keeps). Made with torch "
      f"{torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, numpy "
      f"{np.__version__} (CPU, float32, 2 threads, deterministic algorithms); every draw is seeded, and a rerun "
      "rewrites the same bytes.")
    w("")
    w("| folder | class | d / I / N / R / K | embeddings | notable |")
    w("|---|---|---|---|---|")
    w(f"| `mamba_f32` | MambaForCausalLM | {HIDDEN} / {INTER} / {STATE} / 3 / {CONV} | tied (no `lm_head.weight` in "
      "the file) | `time_step_rank: \"auto\"` resolved to ceil(48/16) = 3 in config.json; use_bias false (no in_proj/"
      "out_proj bias); use_conv_bias true; layer_norm_epsilon 1e-5 |")
    w(f"| `falcon_mamba_f32` | FalconMambaForCausalLM | {HIDDEN} / {INTER} / {STATE} / 5 / {CONV} | untied "
      "`lm_head.weight` | time_step_rank 5 (explicit); use_bias true (random non-zero in_proj.bias [192] and "
      "out_proj.bias [48]); dt, B, C each RMS-normalised without weight (`mixer_rms_eps` 1e-6) before dt_proj / "
      "the scan; layer_norm_epsilon 1e-5 |")
    w("")
    w(f"Both: vocab {VOCAB}, {LAYERS} layers, expand {EXPAND} (I = intermediate_size = {INTER}), state_size N = "
      f"{STATE}, conv_kernel K = {CONV}, hidden_act silu, float32. The forward (see `tools/mamba_reference.py`): "
      "x = embeddings[tokens]; per layer h = RMSNorm(x) * norm.weight; xz = in_proj(h), xs = xz[:, :I], z = xz[:, I:]; "
      "u = silu(causal depthwise conv1d(xs) + conv1d.bias) (K-1 zeros on the left); (dt, B, C) = split(x_proj(u), "
      "[R, N, N]) (FalconMamba: each / sqrt(mean(.^2) + 1e-6)); delta = softplus(dt_proj(dt)) (with its bias); "
      "A = -exp(A_log); s_t = exp(delta_t A) * s_{t-1} + delta_t B_t u_t; y_t = s_t C_t + D u_t; "
      "x += out_proj(y * silu(z)); logits = lm_head(RMSNorm(x) * norm_f.weight).")
    w("")
    w("config.json keys a loader needs (as transformers wrote them): `model_type` (`mamba` | `falcon_mamba`), "
      "`architectures`, `vocab_size`, `hidden_size`, `intermediate_size` (= expand * hidden_size, written out), "
      "`num_hidden_layers`, `state_size`, `conv_kernel`, `time_step_rank` (an integer, never \"auto\", in the file), "
      "`expand`, `use_bias`, `use_conv_bias`, `layer_norm_epsilon`, `mixer_rms_eps` (falcon_mamba only), "
      "`tie_word_embeddings`, `hidden_act`, `dtype`. Also present, not needed for inference: `residual_in_fp32`, "
      "`time_step_{min,max,floor,scale,init_scheme}`, `rescale_prenorm_residual`, `initializer_range`, "
      "`use_mambapy`, `use_associative_scan`, `use_cache`, token ids. Model tensors: "
      "`backbone.embeddings.weight` [128, 48], `backbone.norm_f.weight` [48], per layer i "
      "`backbone.layers.{i}.norm.weight` [48] and `backbone.layers.{i}.mixer.` + `A_log` [96, 8], `D` [96], "
      "`conv1d.weight` [96, 1, 4], `conv1d.bias` [96], `in_proj.weight` [192, 48] (+ `in_proj.bias` [192], falcon), "
      "`x_proj.weight` [R+16, 96], `dt_proj.weight` [96, R], `dt_proj.bias` [96], `out_proj.weight` [48, 96] "
      "(+ `out_proj.bias` [48], falcon); `lm_head.weight` [128, 48] (falcon only).")
    w("")
    w("Weights: every parameter is drawn (seeded), none is left at transformers' init: RMSNorm weights "
      f"1 + {W['norm']:g} N(0,1); embeddings N(0, {W['emb']:g}^2); untied lm_head N(0, {W['head']:g}^2); "
      f"in_proj N(0, {W['in_proj']:g}^2/d), its bias N(0, {W['in_bias']:g}^2); conv1d weight N(0, {W['conv']:g}^2), "
      f"bias N(0, {W['conv_bias']:g}^2); x_proj N(0, {W['x_proj']:g}^2/I); dt_proj weight N(0, {W['dt_proj']:g}^2/R), "
      f"bias = softplus^-1 of a log-uniform draw in [{W['dt_min']:g}, {W['dt_max']:g}]; A_log = log U({W['a_min']:g}, "
      f"{W['a_max']:g}); D ~ N({W['d_mean']:g}, {W['d_std']:g}^2); out_proj N(0, {W['out_proj']:g}^2/I), its bias "
      f"N(0, {W['out_bias']:g}^2). This keeps base logits at std ~1.7 (below) with every part of the block "
      "visible in the output (ablations below).")
    w("")
    w("Files: the same names as in llama_f32 (see \"Files in each of ...\" above), with these differences:")
    w("")
    w("- `adapters/e0/` (PEFT `save_pretrained`, init_lora_weights=False, lora_B x "
      f"{LORA_B_SCALE:g}): r 4, lora_alpha 8, in_proj + x_proj, both layers — scale 2.")
    w("- `adapters/e1/` (PEFT): r 8, lora_alpha 16, use_rslora, in_proj + x_proj, rank_pattern {\"x_proj\": 4}, "
      "layers_to_transform [1] — no layer-0 tensors; scales in_proj 16/sqrt(8), x_proj 16/sqrt(4) = 8 (its lora_A "
      "has 4 rows).")
    w("- `adapters/e2/` (written by the script in PEFT's layout: adapter_config.json is e0's as PEFT wrote it with r, "
      "lora_alpha, target_modules and the patterns changed; safetensors metadata {\"format\": \"pt\"}): r 4, "
      "lora_alpha 4, in_proj, x_proj, dt_proj AND out_proj, both layers — scale 1. dt_proj has R = 3 (mamba) / 5 "
      "(falcon) inputs, so its lora_A is [4, R]. PEFT refuses `out_proj` as a target on Mamba models, and "
      "transformers computes `dt_proj.weight @ dt` without calling the module, so PEFT cannot produce or evaluate "
      "this adapter: `peft_e2_logits` come from the reference (e2 alone with gate 1), cross-checked against "
      "transformers run with s B A merged into the four weights.")
    w("- Adapter tensor names: `base_model.model.backbone.layers.{i}.mixer.{in_proj,x_proj,dt_proj,out_proj}."
      "lora_A.weight` [r, in] and `.lora_B.weight` [out, r], F32.")
    w(f"- Routers: `router.layers.{{0,1}}.weight` F32 [3, {HIDDEN}] (+ bias [3]; + `context_weight` [3, {HIDDEN}] in "
      "router_context.safetensors); the router input h is the block's RMSNorm output (the mixer input), and the gates "
      "are decided once per layer and token and used by all four projections. Weights N(0, "
      f"({ROUTER_SCALE:g}/sqrt({HIDDEN}))^2), biases N(0, 0.5^2); seeds advanced by the llama rules (gaps > "
      f"{GAP_MIN:g} between the 1st/2nd and 2nd/3rd probabilities for learned, top-1, temperature 2 and context; "
      "every layer >= 2 distinct top-1 experts; every expert selected).")
    w("- `expected.safetensors`: the same 17 tensors as llama_f32 (T = 12, V = 128, L = 2). `base_logits` from "
      "transformers' pure-torch path (eval, `use_cache=False`: `causal_conv1d_fn` once per layer and the sequential "
      "loop of `mamba_selective_scan` — no mamba_ssm, causal_conv1d or mambapy installed, not compiling); "
      "`peft_e0_logits`, `peft_e1_logits` from `PeftModel.from_pretrained`; `peft_e2_logits` and every mixture "
      "output from `tools/mamba_reference.py` (routed LoRA on all four Linears, u = each Linear's own input).")
    w("")
    for case in CASES:
        g = LOG[case]
        s = g["seeds"]
        c = g["checks"]
        w(f"### {case}")
        w("")
        w(f"- seeds: model {s['model']}, tokens {s['tokens']}, adapters e0/e1/e2 {s['adapters']}/{s['adapters'] + 1}/"
          f"{s['adapters'] + 2}, router {g['router_seeds'][0]}, context router {g['router_seeds'][1]}")
        w(f"- tokens: {g['tokens']}")
        w(f"- base logit std {g['base_std']:.3f} (max |logit| {g['base_max']:.2f}); max |single adapter - base|: " +
          ", ".join(f"{n} {v[0]:.3f}" for n, v in g["peft"].items()))
        w("- max |mixture - base|: " + ", ".join(f"{k.replace('_logits', '')} {v:.3f}" for k, v in g["mix_effect"].items()))
        w(f"- smallest router probability gap: learned {g['gap_learned']:.4f}, context {g['gap_context']:.4f}, "
          f"top-1 {g['gap_topk1']:.4f}, temperature 2 {g['gap_temp2']:.4f}")
        w(f"- checks: reference vs transformers, no cache {c['ref_vs_hf']:.1e}; vs transformers prefill {PREFILL} + "
          f"{T - PREFILL} one-token decode steps with its cache {c['ref_vs_hf_cached']:.1e} (transformers cached vs "
          f"uncached {c['hf_cached_vs_uncached']:.1e}); float64 reference vs transformers {c['ref64_vs_hf']:.1e}; "
          f"reference one-hot vs PeftModel: e0 {g['one_hot']['e0']:.1e}, e1 {g['one_hot']['e1']:.1e}; reference e2 "
          f"vs transformers with e2 merged {g['e2_merge']:.1e}.")
        w("- e2 one module at a time, max |logits - base|: " +
          ", ".join(f"{m} {v:.3f}" for m, v in g["e2_modules"].items()))
        p = g["probe"]
        w(f"- PEFT on this model: a PeftModel with a dt_proj LoRA (B != 0) changes transformers' logits by "
          f"{p['dt_proj_peft_effect']:.3g} (ignored), the same adapter merged by `merge_and_unload` by "
          f"{p['dt_proj_merged_effect']:.3f}; `get_peft_model` with target out_proj raises `{p['out_proj_error']}` (conv1d likewise).")
        w("- ablations (one part neutralised in every block, max |logits - base|): " +
          "; ".join(f"{k} {v:.3f}" for k, v in g["ablations"].items()))
        w("- selections (per layer, per token, `best>second`), learned top-2 and context top-2:")
        w("")
        w("  ```")
        w(g["table_learned"])
        w("  ```")
        w("")
        w("  ```")
        w(g["table_context"])
        w("  ```")
        w("")
    w("Sizes: " + ", ".join(f"`{case}` {LOG[case]['size'] / 1e3:.0f} kB" for case in CASES) + ".")
    w(END)
    return "\n".join(L) + "\n"


def update_readme(text_section):
    with open(README) as f:
        text = f.read()
    if BEGIN in text:
        i, j = text.index(BEGIN), text.index(END) + len(END)
        text = text[:i].rstrip("\n") + "\n\n" + text[j:].lstrip("\n")
    marker = "\n## train_step\n"
    if marker in text:
        i = text.index(marker)
        text = text[:i].rstrip("\n") + "\n\n" + text_section + text[i:]
    else:
        text = text.rstrip("\n") + "\n\n" + text_section
    with open(README, "w") as f:
        f.write(text)


# ----------------------------------------------------------------------------- main

def main():
    os.chdir(REPO)
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    for case in CASES:
        run_case(case)
    update_readme(section())
    total = sum(LOG[c]["size"] for c in CASES)
    say(f"\nmamba fixtures total: {total / 1e3:.0f} kB")
    assert total < SIZE_BUDGET, total


if __name__ == "__main__":
    main()
