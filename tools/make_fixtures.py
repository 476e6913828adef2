"""Write the numeric test fixtures under `Tests/Fixtures/` (tiny random llama-family models,
PEFT LoRA adapters, router files and expected outputs) that the Swift tests compare against.

Run from anywhere (paths are resolved relative to the repository root):

    python tools/make_fixtures.py

Needs a Python venv with torch, transformers (>= 5), peft, safetensors and numpy; CPU only
(`tools/requirements.txt` pins the versions the committed fixtures were made with).
Every random draw is seeded (see SEEDS below and the generated Tests/Fixtures/README.md), so a
rerun with the same package versions rewrites the same bytes.

What it writes (one folder per case; see the generated README.md for every file):

    Tests/Fixtures/llama_f32/      LlamaForCausalLM, GQA 4/2 heads, explicit head_dim 24, untied,
                                   llama3 RoPE scaling (rope_parameters form)
    Tests/Fixtures/mistral_f32/    MistralForCausalLM, 4/1 heads, tied, sliding_window 6
    Tests/Fixtures/qwen2_f32/      Qwen2ForCausalLM, q/k/v bias, tied, config.json rewritten to the
                                   old top-level `rope_theta` form
    Tests/Fixtures/llama_bf16/     llama_f32's weights rounded to bfloat16
    Tests/Fixtures/llama_sharded/  llama_f32 saved in >= 2 shards with model.safetensors.index.json

Cases 1-4 each hold: config.json, model.safetensors, generation_config.json, adapters/{e0,e1,e2}/
(PEFT save_pretrained), router.safetensors, router_context.safetensors, expected.safetensors.

The expected mixture logits are computed by tools/lmx_reference.py, an independent torch
implementation of docs/ARCHITECTURE.md#method (forward hooks, not PeftModel), which is checked here
against PeftModel (one-hot fixed weights reproduce each single adapter to 1e-5).
`python tools/check_fixtures.py` re-checks all outputs with a separate float64 numpy oracle.
"""

from __future__ import annotations

import copy
import json
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
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lmx_reference import (LoraExpert, Mixture, Router, probability_gaps,  # noqa: E402
                           selection_table, write_router)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = "Tests/Fixtures"  # relative to REPO (we chdir there so no absolute path lands in a file)

T = 12
VOCAB = 128
E_NAMES = ["e0", "e1", "e2"]
CONTEXT_ORDER = ["e2", "e0", "e1"]
FIXED_WEIGHTS = [0.5, -0.25, 1.0]
INIT_RANGE = 0.2
ROUTER_SCALE = 3.0  # router logits ~ N(0, ROUTER_SCALE^2) for unit-RMS h
GAP_MIN = 1e-3
LORA_B_SCALE = 0.5  # lora_B is multiplied by this after PEFT's init_lora_weights=False init
SIZE_LIMIT = 4e6  # all of Tests/Fixtures, Mamba and train_step fixtures included

SEEDS = {
    # case: (base model, tokens, adapters e0/e1/e2 base seed, first router seed)
    "llama_f32": dict(model=1000, tokens=1001, adapters=1010, router=1100),
    "mistral_f32": dict(model=2000, tokens=2001, adapters=2010, router=2100),
    "qwen2_f32": dict(model=3000, tokens=3001, adapters=3010, router=3100),
    "llama_bf16": dict(model=1000, tokens=4001, adapters=4010, router=4100),  # model: llama_f32's weights
}

COMMON = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, intermediate_size=96,
              max_position_embeddings=64, initializer_range=INIT_RANGE)

ADAPTERS = {
    "e0": dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
    "e1": dict(r=8, lora_alpha=16, use_rslora=True,
               target_modules=["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"],
               rank_pattern={"v_proj": 4}, alpha_pattern={"gate_proj": 4}),
    "e2": dict(r=4, lora_alpha=4,
               target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
               layers_to_transform=[1]),
}

LOG: dict = {}  # facts per case for the README


def say(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------- models

def perturb(model, seed: int, qkv_bias: bool = False):
    """Make RMSNorm weights non-trivial (1 + 0.1 N(0,1)) and, for qwen2, q/k/v biases random
    (transformers initialises norms to 1 and biases to 0, which would hide loader bugs)."""
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif qkv_bias and name.endswith("_proj.bias"):
                p.copy_(INIT_RANGE * torch.randn(p.shape, generator=g))


def llama_config(**over):
    cfg = dict(COMMON, num_attention_heads=4, num_key_value_heads=2, head_dim=24, tie_word_embeddings=False,
               rms_norm_eps=1e-5,
               rope_parameters=dict(rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0,
                                    high_freq_factor=4.0, original_max_position_embeddings=16))
    cfg.update(over)
    return LlamaConfig(**cfg)


def build_llama(seed):
    torch.manual_seed(seed)
    m = LlamaForCausalLM(llama_config())
    perturb(m, seed)
    return m


def build_mistral(seed):
    torch.manual_seed(seed)
    cfg = MistralConfig(**COMMON, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                        tie_word_embeddings=True, sliding_window=6, rms_norm_eps=1e-5,
                        rope_parameters=dict(rope_type="default", rope_theta=1e6))
    m = MistralForCausalLM(cfg)
    perturb(m, seed)
    return m


QWEN2_ROPE_THETA = 1e6


def build_qwen2(seed):
    torch.manual_seed(seed)
    cfg = Qwen2Config(**COMMON, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                      rms_norm_eps=1e-6, rope_parameters=dict(rope_type="default", rope_theta=QWEN2_ROPE_THETA))
    m = Qwen2ForCausalLM(cfg)
    perturb(m, seed, qkv_bias=True)
    return m


def load_base(folder, bf16=False):
    """The saved model as a float32 eager model (bf16 checkpoints: loaded as bf16, then .float())."""
    if bf16:
        m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, attn_implementation="eager").float()
    else:
        m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    return m.eval()


@torch.no_grad()
def logits_of(model, tokens):
    return model(input_ids=tokens.view(1, -1).long()).logits[0].float()


def rel(path):
    return os.path.relpath(path, REPO)


def tensor_listing(path):
    out = []
    with safe_open(path, framework="pt") as f:
        for k in sorted(f.keys()):
            sl = f.get_slice(k)
            out.append((k, list(sl.get_shape()), sl.get_dtype()))
    return out


def save_model(model, folder, **kw):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    model.save_pretrained(folder, **kw)


# ----------------------------------------------------------------------------- adapters

def make_adapters(case, folder, bf16, seed):
    info = {}
    for k, (name, spec) in enumerate(ADAPTERS.items()):
        out = os.path.join(folder, "adapters", name)
        save_peft_adapter(load_base(folder, bf16), spec, seed + k, out)
        info[name] = out
    # Check that the saved configs say what we asked for.
    c1 = json.load(open(os.path.join(info["e1"], "adapter_config.json")))
    assert c1["use_rslora"] is True and c1["r"] == 8 and c1["lora_alpha"] == 16, c1
    assert c1["rank_pattern"] == {"v_proj": 4}, c1["rank_pattern"]
    assert c1["alpha_pattern"] == {"gate_proj": 4}, c1["alpha_pattern"]
    with safe_open(os.path.join(info["e1"], "adapter_model.safetensors"), framework="pt") as f:
        a = f.get_slice("base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight").get_shape()
        assert list(a)[0] == 4, a
        b = f.get_slice("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").get_shape()
        assert list(b)[0] == 8, b
    with safe_open(os.path.join(info["e2"], "adapter_model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
        assert keys and not any(".layers.0." in k for k in keys), keys
        assert len(keys) == 14, keys
    c2 = json.load(open(os.path.join(info["e2"], "adapter_config.json")))
    assert c2["layers_to_transform"] == [1], c2
    return info


def save_peft_adapter(base, spec, seed, out):
    """Wrap `base` with a PEFT LoRA of `spec` (LoraConfig keywords) drawn after
    `torch.manual_seed(seed)` with init_lora_weights=False, multiply every lora_B by LORA_B_SCALE,
    and save it to `out` (replaced) with `PeftModel.save_pretrained`, without PEFT's model card and
    with target_modules sorted. Returns the PeftModel."""
    torch.manual_seed(seed)
    pm = get_peft_model(base, LoraConfig(init_lora_weights=False, lora_dropout=0.0, bias="none",
                                         task_type="CAUSAL_LM", **spec))
    with torch.no_grad():  # PEFT's init (nn.Linear's) gives deltas larger than the base; tame them
        for pname, p in pm.named_parameters():
            if ".lora_B." in pname:
                p.mul_(LORA_B_SCALE)
    if os.path.isdir(out):
        shutil.rmtree(out)
    pm.save_pretrained(out)
    card = os.path.join(out, "README.md")  # PEFT's auto-generated model card: not needed
    if os.path.exists(card):
        os.remove(card)
    sort_target_modules(os.path.join(out, "adapter_config.json"))
    return pm


def sort_target_modules(path):
    """PEFT stores target_modules from a Python set, so their order follows the per-process string
    hash seed; sort the list so reruns write identical bytes (same JSON layout as PEFT's)."""
    cfg = json.load(open(path))
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))


def peft_logits(folder, adapter_dir, bf16, tokens):
    base = load_base(folder, bf16)
    pm = PeftModel.from_pretrained(base, adapter_dir).eval()
    return logits_of(pm, tokens)


# ----------------------------------------------------------------------------- routers

def random_router(seed, d, n_layers, context):
    g = torch.Generator().manual_seed(seed)
    E = len(E_NAMES)
    W = [torch.randn(E, d, generator=g) * ROUTER_SCALE / d ** 0.5 for _ in range(n_layers)]
    b = [torch.randn(E, generator=g) * 0.5 for _ in range(n_layers)]
    Wc = [torch.randn(E, d, generator=g) * ROUTER_SCALE / d ** 0.5 for _ in range(n_layers)] if context else None
    return W, b, Wc


def varied(traces):
    """Routing varies: every layer has >= 2 distinct top-1 experts over the tokens, and every
    expert is selected somewhere."""
    used = set()
    for tr in traces:
        if len(set(int(x) for x in tr.ids[:, 0])) < 2:
            return False
        used |= set(int(x) for x in tr.ids.flatten())
    return used == set(range(len(E_NAMES)))


def choose_router(mix, tokens, seed0, context, n_layers, d, variants):
    """Reseed until every variant (list of (top_k, temperature)) has no near-ties and varies."""
    order = CONTEXT_ORDER if context else E_NAMES
    for seed in range(seed0, seed0 + 2000):
        W, b, Wc = random_router(seed, d, n_layers, context)
        r = Router(experts=list(order), weights=W, biases=b, context_weights=Wc, top_k=2,
                   temperature=0.7 if context else 1.0, input_kind="context" if context else "token")
        ok = True
        for k, temp in variants:
            _, tr = mix.run(tokens, "learned", router=r, top_k=k, temperature=temp)
            if probability_gaps(tr) <= GAP_MIN or not varied(tr):
                ok = False
                break
        if ok:
            return seed, r
    raise RuntimeError("no router seed without near-ties found")


# ----------------------------------------------------------------------------- one case

def ids_gates(traces):
    """(ids I32 [T, L, K], gates [T, L, K]): the selected canonical expert indices per token and
    layer, by gate descending, and their gates."""
    ids = torch.stack([tr.ids for tr in traces], dim=1).to(torch.int32)  # [T, L, K]
    gates = torch.stack([torch.gather(tr.gates, 1, tr.ids) for tr in traces], dim=1).float()
    return ids, gates


def fix_qwen2_config(folder):
    """Rewrite config.json to the pre-transformers-5 form: top-level rope_theta/rope_scaling,
    torch_dtype instead of dtype, no rope_parameters."""
    path = os.path.join(folder, "config.json")
    cfg = json.load(open(path))
    rp = cfg.pop("rope_parameters")
    assert rp.get("rope_type", "default") == "default", rp
    new = {}
    for k, v in cfg.items():
        if k == "dtype":
            new["torch_dtype"] = v
            continue
        new[k] = v
        if k == "rms_norm_eps":
            new["rope_scaling"] = None
            new["rope_theta"] = rp["rope_theta"]
    assert "rope_theta" in new
    with open(path, "w") as f:
        json.dump(new, f, indent=2, sort_keys=True)
        f.write("\n")


def start_case(case, seeds, log_book):
    """Announce `case` and open its entry in `log_book` (its seeds, then its T random tokens drawn
    from seeds["tokens"]). Returns (folder, log entry, tokens I32 [T]). Shared with
    make_mamba_fixtures.py."""
    folder = os.path.join(OUT, case)
    say(f"\n=== {case} ===")
    log = log_book.setdefault(case, {"seeds": dict(seeds)})
    tokens = torch.randint(0, VOCAB, (T,), generator=torch.Generator().manual_seed(seeds["tokens"])).to(torch.int32)
    log["tokens"] = tokens.tolist()
    return folder, log, tokens


def make_routers(mix, tokens, seed, folder, n_layers, d, log):
    """Choose the routers of a case without near-ties (`choose_router`: the token router from
    `seed`, checked at top-2, top-1 and T=2.0; the context router, rows CONTEXT_ORDER, from
    seed + 5000), write router.safetensors (top-2, T=1.0) and router_context.safetensors (top-2,
    T=0.7) into `folder`, record the seeds in log["router_seeds"] and reload both from the files.
    Returns (seed_tok, seed_ctx, router, context_router). Shared with make_mamba_fixtures.py."""
    seed_tok, r = choose_router(mix, tokens, seed, False, n_layers, d, [(2, None), (1, None), (2, 2.0)])
    write_router(os.path.join(folder, "router.safetensors"), r.experts, r.weights, r.biases,
                 top_k=2, temperature="1.0", input_kind="token")
    seed_ctx, rc = choose_router(mix, tokens, seed + 5000, True, n_layers, d, [(2, None)])
    write_router(os.path.join(folder, "router_context.safetensors"), rc.experts, rc.weights, rc.biases,
                 top_k=2, temperature="0.7", input_kind="context", context_weights=rc.context_weights)
    log["router_seeds"] = (seed_tok, seed_ctx)
    r = Router.load(os.path.join(folder, "router.safetensors"))
    rc = Router.load(os.path.join(folder, "router_context.safetensors"))
    assert r.experts == E_NAMES and rc.experts == CONTEXT_ORDER and rc.input_kind == "context"
    assert r.temperature == 1.0 and abs(rc.temperature - 0.7) < 1e-12 and r.top_k == 2 and rc.top_k == 2
    return seed_tok, seed_ctx, r, rc


def run_case(case, model, bf16=False):
    seeds = SEEDS[case]
    folder, log, tokens = start_case(case, seeds, LOG)

    if bf16:
        model = copy.deepcopy(model).to(torch.bfloat16)
        model.config.dtype = torch.bfloat16
    save_model(model, folder)
    if case == "qwen2_f32":
        ref = logits_of(load_base(folder), tokens)  # as transformers 5 wrote it
        fix_qwen2_config(folder)

    base = load_base(folder, bf16)
    base_logits = logits_of(base, tokens)
    if case == "qwen2_f32":
        # The rewritten (old-form) config must reload to the very same model.
        assert "rope_parameters" not in json.load(open(os.path.join(folder, "config.json")))
        assert base.config.rope_parameters["rope_theta"] == QWEN2_ROPE_THETA, base.config.rope_parameters
        d = float((base_logits - ref).abs().max())
        say(f"  old-form config reload: max |logits - in-memory model| = {d:.3g}")
        assert d == 0.0
        # ...and rope_theta must matter (so a loader ignoring it would be caught).
        alt = load_base(folder)
        alt.config.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
        alt2 = Qwen2ForCausalLM._from_config(alt.config, attn_implementation="eager")
        alt2.load_state_dict(alt.state_dict())
        dd = float((logits_of(alt2.eval(), tokens) - base_logits).abs().max())
        say(f"  with rope_theta 1e4 instead of 1e6 logits change by up to {dd:.3g}")
        log["theta_effect"] = dd
        assert dd > 1e-3
    if case == "mistral_f32":
        alt = load_base(folder)
        alt.config.sliding_window = None
        alt2 = MistralForCausalLM._from_config(alt.config, attn_implementation="eager")
        alt2.load_state_dict(alt.state_dict())
        full = logits_of(alt2.eval(), tokens)
        dd = float((full - base_logits).abs().max())
        diff_rows = [t for t in range(T) if float((full[t] - base_logits[t]).abs().max()) > 0]
        say(f"  without the sliding window logits change by up to {dd:.3g}; rows that differ: {diff_rows}")
        log["window_effect"] = (dd, diff_rows)
        assert dd > 1e-3 and diff_rows and min(diff_rows) >= 6
    if case in ("llama_f32", "llama_bf16"):
        cfg_plain = llama_config(rope_parameters=dict(rope_type="default", rope_theta=10000.0))
        alt2 = LlamaForCausalLM._from_config(cfg_plain, attn_implementation="eager")
        alt2.load_state_dict(base.state_dict())
        dd = float((logits_of(alt2.eval(), tokens) - base_logits).abs().max())
        inv_s = base.model.rotary_emb.inv_freq
        inv_p = alt2.model.rotary_emb.inv_freq
        changed = int((inv_s != inv_p).sum())
        say(f"  llama3 scaling changes {changed}/{inv_s.numel()} inverse frequencies; "
            f"logits differ from unscaled RoPE by up to {dd:.3g}")
        log["rope_effect"] = (changed, inv_s.numel(), dd)
        assert changed > 0 and dd > 1e-3
    if bf16:
        b32 = load_base(folder, bf16=False)  # dtype=float32 upcast on load: must be the same numbers
        assert torch.equal(logits_of(b32, tokens), base_logits)

    std = float(base_logits.std())
    say(f"  base logit std = {std:.3f}, max |logit| = {float(base_logits.abs().max()):.3f}")
    log["base_std"] = std

    # Adapters (PEFT writes them) and single-adapter logits (PEFT reads them back).
    dirs = make_adapters(case, folder, bf16, seeds["adapters"])
    expected = {"tokens": tokens, "base_logits": base_logits}
    log["peft"] = {}
    for name in E_NAMES:
        lg = peft_logits(folder, dirs[name], bf16, tokens)
        expected[f"peft_{name}_logits"] = lg
        dmax = float((lg - base_logits).abs().max())
        say(f"  peft {name}: max |peft - base| = {dmax:.3f}, logit std = {float(lg.std()):.3f}")
        log["peft"][name] = (dmax, float(lg.std()))
        assert dmax > 0.05, (name, dmax)
        assert float(lg.abs().max()) < 50

    # Our own mixture implementation over the saved files.
    experts = [LoraExpert.load(dirs[n], n) for n in E_NAMES]
    mix = Mixture(load_base(folder, bf16), experts)
    for k, name in enumerate(E_NAMES):
        onehot = [1.0 if j == k else 0.0 for j in range(len(E_NAMES))]
        lg, _ = mix.run(tokens, "fixed", fixed=onehot)
        d = float((lg - expected[f"peft_{name}_logits"]).abs().max())
        say(f"  check: fixed one-hot {name} vs PeftModel: max diff {d:.2e}")
        assert d < 1e-5, (name, d)
    lg, _ = mix.run(tokens, "none")
    assert float((lg - base_logits).abs().max()) < 1e-6

    n_layers = len(mix.layers)
    dm = base.config.hidden_size

    # Router files: choose seeds without near-ties, write, then reload from the file.
    seed_tok, seed_ctx, r, rc = make_routers(mix, tokens, seeds["router"], folder, n_layers, dm, log)

    lg, tr = mix.run(tokens, "learned", router=r)
    expected["learned_logits"] = lg
    expected["learned_ids"], expected["learned_gates"] = ids_gates(tr)
    log["gap_learned"] = probability_gaps(tr)
    say(f"  learned top-2 (router.safetensors, seed {seed_tok}); min prob gap {log['gap_learned']:.4f}; "
        f"max |learned - base| = {float((lg - base_logits).abs().max()):.3f}")
    say(selection_table(tr, E_NAMES))
    log["table_learned"] = selection_table(tr, E_NAMES)

    lg, tr = mix.run(tokens, "soft", router=r)
    expected["soft_logits"] = lg
    lg, tr = mix.run(tokens, "uniform")
    expected["uniform_logits"] = lg
    expected["fixed_weights"] = torch.tensor(FIXED_WEIGHTS, dtype=torch.float32)
    lg, tr = mix.run(tokens, "fixed", fixed=FIXED_WEIGHTS)
    expected["fixed_logits"] = lg

    lg, tr = mix.run(tokens, "learned", router=rc)
    expected["context_logits"] = lg
    expected["context_ids"], expected["context_gates"] = ids_gates(tr)
    log["gap_context"] = probability_gaps(tr)
    say(f"  context top-2 (router_context.safetensors, seed {seed_ctx}, T=0.7, rows {CONTEXT_ORDER}); "
        f"min prob gap {log['gap_context']:.4f}")
    say(selection_table(tr, E_NAMES))
    log["table_context"] = selection_table(tr, E_NAMES)

    lg, tr = mix.run(tokens, "learned", router=r, top_k=1)
    expected["learned_topk1_logits"] = lg
    log["gap_topk1"] = probability_gaps(tr)
    say("  learned top-1:")
    say(selection_table(tr, E_NAMES))
    log["table_topk1"] = selection_table(tr, E_NAMES)
    lg, tr = mix.run(tokens, "learned", router=r, temperature=2.0)
    expected["learned_temp2_logits"] = lg
    log["gap_temp2"] = probability_gaps(tr)
    say("  learned top-2, temperature 2.0:")
    say(selection_table(tr, E_NAMES))
    log["table_temp2"] = selection_table(tr, E_NAMES)

    for k in ("soft_logits", "uniform_logits", "fixed_logits", "context_logits", "learned_topk1_logits",
              "learned_temp2_logits"):
        say(f"  max |{k} - base| = {float((expected[k] - base_logits).abs().max()):.3f}")
        assert float((expected[k] - base_logits).abs().max()) > 0.05

    save_expected(folder, expected)
    return tokens, base_logits


def save_expected(folder, expected):
    out = {}
    for k, v in expected.items():
        v = v.detach().contiguous()
        out[k] = v.to(torch.int32) if k == "tokens" or k.endswith("_ids") else v.float()
    save_file(out, os.path.join(folder, "expected.safetensors"), metadata={"format": "loramixer.fixture"})


def run_sharded(tokens, base_logits):
    say("\n=== llama_sharded ===")
    src = os.path.join(OUT, "llama_f32")
    folder = os.path.join(OUT, "llama_sharded")
    m = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    save_model(m, folder, max_shard_size="150KB")
    shards = sorted(f for f in os.listdir(folder) if f.startswith("model-") and f.endswith(".safetensors"))
    assert len(shards) >= 2 and os.path.exists(os.path.join(folder, "model.safetensors.index.json")), shards
    assert not os.path.exists(os.path.join(folder, "model.safetensors"))
    lg = logits_of(load_base(folder), tokens)
    assert torch.equal(lg, base_logits)
    say(f"  {len(shards)} shards; reloaded logits equal llama_f32's base logits exactly")
    save_expected(folder, {"tokens": tokens, "base_logits": base_logits})
    LOG["llama_sharded"] = {"shards": shards}


# ----------------------------------------------------------------------------- README

def dir_size(path):
    return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(path) for f in fs)


def write_readme():
    L = []
    w = L.append
    w("# Test fixtures (generated; do not edit by hand)")
    w("")
    w("Written by `tools/make_fixtures.py`. Regenerate from the repository root with")
    w("")
    w("    python tools/make_fixtures.py")
    w("")
    w("and check them against a second, numpy-only oracle with `python tools/check_fixtures.py`.")
    w("")
    w(f"Made in a venv with torch {torch.__version__}, transformers {transformers.__version__}, "
      f"peft {peft.__version__}, numpy {np.__version__} (CPU). Every random draw is seeded (below), so a rerun")
    w("with the same versions rewrites the same files. All models are tiny random llama-family models")
    w(f"(vocab {VOCAB}, hidden 64, 2 layers, intermediate 96, max_position_embeddings 64, "
      f"initializer_range {INIT_RANGE}); RMSNorm weights are drawn as 1 + 0.1 N(0,1) instead of all-ones so a")
    w("loader that ignores them fails. Everything is computed in float32 with eager attention.")
    w("")
    w("## Cases")
    w("")
    w("| folder | class | heads / KV heads / head_dim | embeddings | notable |")
    w("|---|---|---|---|---|")
    w("| `llama_f32` | LlamaForCausalLM | 4 / 2 / 24 (explicit, != 64/4) | untied | RoPE theta 1e4 with `llama3` scaling "
      "(factor 8, low 1, high 4, original_max_position_embeddings 16: every inverse frequency changes); rms_norm_eps 1e-5; "
      "RoPE in the transformers-5 `rope_parameters` form |")
    w("| `mistral_f32` | MistralForCausalLM | 4 / 1 / 16 | tied (no `lm_head.weight` in the file) | sliding_window 6: "
      "query t attends keys s with t-6 < s <= t (6 keys including itself); rows t >= 6 differ from full causal "
      "attention; rope_theta 1e6 (`rope_parameters` form) |")
    w("| `qwen2_f32` | Qwen2ForCausalLM | 4 / 2 / 16 | tied | random non-zero q/k/v biases (o_proj has none); "
      "rms_norm_eps 1e-6; config.json rewritten to the OLD form: top-level `rope_theta` 1e6, `rope_scaling: null`, "
      "`torch_dtype` instead of `dtype`, no `rope_parameters` (reloading it with transformers gives bit-identical "
      "logits; rope_theta 1e4 instead would change them) |")
    w("| `llama_bf16` | LlamaForCausalLM | as llama_f32 | untied | llama_f32's weights rounded to bfloat16, stored as "
      "BF16 (`dtype: bfloat16` in config.json). Its expected outputs are computed in float32 from the bf16-rounded "
      "weights (loaded as bf16, then `.float()`); adapters and routers are float32 and differ from llama_f32's |")
    w("| `llama_sharded` | LlamaForCausalLM | as llama_f32 | untied | llama_f32 saved with max_shard_size=150KB: "
      f"{', '.join(LOG['llama_sharded']['shards'])} + `model.safetensors.index.json`; `expected.safetensors` holds only "
      "`tokens` and `base_logits`, bit-identical to llama_f32's |")
    w("")
    w("Each model folder has `config.json`, `generation_config.json` and the weights as transformers "
      f"{transformers.__version__} `save_pretrained` wrote them.")
    w("")
    w("## Files in each of llama_f32, mistral_f32, qwen2_f32, llama_bf16")
    w("")
    w("- `adapters/{e0,e1,e2}/` — PEFT LoRA adapters (`adapter_config.json`, `adapter_model.safetensors`, float32) "
      "written by `PeftModel.save_pretrained` with `init_lora_weights=False` (B is not zero; "
      f"every lora_B was then multiplied by {LORA_B_SCALE:g} before saving); PEFT's generated "
      "model-card README.md is deleted.")
    w("  - `e0`: r 4, lora_alpha 8, q/k/v/o — scale 2.")
    w("  - `e1`: r 8, lora_alpha 16, use_rslora, q/v/gate/up/down, rank_pattern {\"v_proj\": 4}, alpha_pattern "
      "{\"gate_proj\": 4} — scales: q/up/down 16/sqrt(8), v 16/sqrt(4) = 8 (v lora_A has 4 rows), gate 4/sqrt(8).")
    w("  - `e2`: r 4, lora_alpha 4, all seven projections, layers_to_transform [1] — no tensors in layer 0; scale 1.")
    w("- `router.safetensors` — a router file (docs/ARCHITECTURE.md#router-file): `router.layers.{0,1}.weight` F32 [3, 64], "
      "`router.layers.{0,1}.bias` F32 [3]; metadata format=loramixer.router, version=1, experts=[\"e0\",\"e1\",\"e2\"], "
      "top_k=2, scope=layer, temperature=1.0, input=token.")
    w("- `router_context.safetensors` — the same plus `router.layers.{i}.context_weight` F32 [3, 64]; "
      "experts=[\"e2\",\"e0\",\"e1\"] (rows in that order), temperature=0.7, top_k=2, input=context.")
    w("- `expected.safetensors` (float32 unless noted; T = 12, V = 128, L = 2):")
    w("  - `tokens` I32 [T]; `base_logits` [T, V] — the base model through transformers.")
    w("  - `peft_e0_logits`, `peft_e1_logits`, `peft_e2_logits` [T, V] — one adapter through "
      "`peft.PeftModel.from_pretrained` on the saved folder.")
    w("  - the rest come from `tools/lmx_reference.py`, an independent torch implementation of docs/ARCHITECTURE.md#method "
      "(hooks on `input_layernorm` take h_t and compute the gates once per layer; hooks on each q/k/v/o/gate/up/down "
      "Linear add sum_e g_{t,e} s_e B_e (A_e u_t) with u_t that Linear's own input). Checked in the script: with a "
      "one-hot fixed weight it reproduces each `peft_e*_logits` to < 1e-5.")
    w("  - `learned_logits` [T, V], `learned_ids` I32 [T, L, 2], `learned_gates` [T, L, 2] — top-2 of "
      "p = softmax((W h + b)/1.0) with router.safetensors; gates renormalised over the two; ids index e0,e1,e2 = 0,1,2, "
      "sorted by gate descending.")
    w("  - `soft_logits` — all experts with g = p. `uniform_logits` — g = 1/3 everywhere.")
    w("  - `fixed_weights` [3] = [0.5, -0.25, 1.0] and `fixed_logits` — g = those weights at every token (used as "
      "given, not renormalised).")
    w("  - `context_logits`, `context_ids` I32 [T, L, 2], `context_gates` [T, L, 2] — top-2 with "
      "router_context.safetensors: z_t = W h_t + W_c c_t + b, c_t = mean_{s<=t} h_s (h = that layer's router input), "
      "p = softmax(z/0.7); ids in e0,e1,e2 order, NOT the file's row order.")
    w("  - `learned_topk1_logits` — router.safetensors with top_k overridden to 1 (gate 1.0 on the best expert).")
    w("  - `learned_temp2_logits` — router.safetensors, top-2, temperature overridden to 2.0.")
    w("")
    w(f"Router seeds were advanced until, for every token and layer of every learned variant above, the gaps "
      f"between the 1st/2nd and 2nd/3rd router probabilities exceed {GAP_MIN:g} (no near-ties), every layer has at "
      f"least two different top-1 experts over the tokens, and every expert is selected somewhere. Router weights are "
      f"N(0, ({ROUTER_SCALE:g}/sqrt(64))^2), biases N(0, 0.5^2).")
    w("")
    w("## Seeds and per-case facts")
    w("")
    for case in ("llama_f32", "mistral_f32", "qwen2_f32", "llama_bf16"):
        g = LOG[case]
        s = g["seeds"]
        w(f"### {case}")
        w("")
        note = " (llama_f32's model, rounded)" if case == "llama_bf16" else ""
        w(f"- seeds: model {s['model']}{note}, tokens {s['tokens']}, adapters e0/e1/e2 "
          f"{s['adapters']}/{s['adapters'] + 1}/{s['adapters'] + 2}, router {g['router_seeds'][0]}, "
          f"context router {g['router_seeds'][1]}")
        w(f"- tokens: {g['tokens']}")
        w(f"- base logit std {g['base_std']:.3f}; max |peft - base|: " +
          ", ".join(f"{n} {v[0]:.3f}" for n, v in g["peft"].items()))
        w(f"- smallest router probability gap: learned {g['gap_learned']:.4f}, context {g['gap_context']:.4f}, "
          f"top-1 {g['gap_topk1']:.4f}, temperature 2 {g['gap_temp2']:.4f}")
        w("- selections (per layer, per token, `best>second`):")
        w("")
        w("  learned top-2:")
        w("")
        w("  ```")
        w(g["table_learned"])
        w("  ```")
        w("")
        w("  context top-2:")
        w("")
        w("  ```")
        w(g["table_context"])
        w("  ```")
        w("")
    w("## Sizes")
    w("")
    for case in ("llama_f32", "mistral_f32", "qwen2_f32", "llama_bf16", "llama_sharded"):
        w(f"- `{case}`: {dir_size(os.path.join(OUT, case)) / 1e3:.0f} kB")
    w("")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("\n".join(L))


# ----------------------------------------------------------------------------- main

def main():
    os.chdir(REPO)
    warnings.filterwarnings("ignore", category=FutureWarning)  # peft/transformers deprecation chatter
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    os.makedirs(OUT, exist_ok=True)

    llama = build_llama(SEEDS["llama_f32"]["model"])
    tok, base = run_case("llama_f32", llama)
    run_case("mistral_f32", build_mistral(SEEDS["mistral_f32"]["model"]))
    run_case("qwen2_f32", build_qwen2(SEEDS["qwen2_f32"]["model"]))
    run_case("llama_bf16", llama, bf16=True)
    run_sharded(tok, base)
    write_readme()

    total = dir_size(OUT)
    say(f"\nTests/Fixtures total: {total / 1e6:.2f} MB")
    assert total < SIZE_LIMIT, total


if __name__ == "__main__":
    main()
