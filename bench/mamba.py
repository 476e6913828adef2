#!/usr/bin/env python3
"""Routed multi-LoRA inference on a Mamba model, on the CPU: loramixer against PyTorch+PEFT.

    python bench/mamba.py              # 7 interleaved runs (see bench/README.md for the time)
    python bench/mamba.py --quick      # smoke run: 1 run, 32-token prompt, 8 decode steps
    python bench/mamba.py --runs 9 --only 'torch-f32$|lmx-f32$'
    python bench/mamba.py --make       # only (re)write the model, experts and router

The same protocol as bench/run.py (whose helpers and loramixer worker it imports): every
configuration runs in its own child process (this file with --worker), the list is walked once
per run (A B C ... A B C ...), with a read-bandwidth measurement at the start of every run and
after the last. Each child: load, warm up (prompt + 8 decode steps, then reset), time the prefill
of a 128-token prompt (one call, logits of the last position), read its RSS, time 64 single-token
decode steps that carry the recurrent state (conv + SSM state), exit. Figures are medians over
the runs; ratios are medians of the per-run ratios (both sides ran seconds apart).

The model is mamba-130m-shaped with random weights (MambaForCausalLM: hidden 768, 24 layers,
vocabulary 50280, state 16, expand 2, conv kernel 4, time-step rank 48, tied embeddings, f32), with
8 PEFT LoRA experts (r 16 on in_proj and x_proj) and a learned top-2 router. It is written once,
by a child (``--make``), under bench/work/mamba-130m/ (git-ignored) and rewritten only when its
recipe (the stamp in models.json) changes.

A configuration that fails (e.g. a library without Mamba support: "unsupported architecture
'MambaForCausalLM'") is reported in its row and under "Failures"; the others still run.

Writes bench/results/mamba-latest.md (the table) and mamba-latest.json (every run's raw figures);
--quick writes mamba-quick.md/.json.
"""

import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import run as bench  # noqa: E402 - bench/run.py: the llama benchmark, whose protocol and helpers this reuses

REPO = bench.REPO
MWORK = os.path.join(bench.WORK, "mamba-130m")
MODEL_DIR = os.path.join(MWORK, "model")
EXPERT_DIR = os.path.join(MWORK, "experts")
ROUTER = os.path.join(MWORK, "router.safetensors")
LOGITS = os.path.join(MWORK, "logits")
MODELS_JSON = os.path.join(MWORK, "models.json")
EXPERTS = bench.EXPERTS  # e0..e7: worker_loramixer loads exactly these
THREADS = bench.THREADS

SEED_MODEL = 2350
SEED_EXPERTS = 2400  # e{i}: SEED_EXPERTS + i
SEED_ROUTER = 2500
SEED_CHECK = 2600
TARGET_MODULES = ["in_proj", "x_proj"]
RECIPE_VERSION = 1  # bump when the way the files are drawn changes (the stamp then changes too)

# mamba-130m's shape (state-spaces/mamba-130m-hf). Weights are drawn by transformers' own init
# (MambaPreTrainedModel._init_weights) with initializer_range 0.02: embedding (= tied LM head),
# in_proj and x_proj ~ N(0, 0.02^2); out_proj and conv1d kaiming-uniform (a = sqrt 5), conv bias 0;
# A_log = log(1..16) per channel, D = 1; dt_proj weight ~ U(±rank^-0.5) and its bias = softplus^-1
# of dt ~ log-uniform [1e-3, 0.1] (floored at 1e-4); norms 1. rescale_prenorm_residual stays off.
CONFIG = dict(vocab_size=50280, hidden_size=768, num_hidden_layers=24, state_size=16, expand=2, conv_kernel=4,
              time_step_rank=48, tie_word_embeddings=True, initializer_range=0.02, layer_norm_epsilon=1e-5,
              use_bias=False, use_conv_bias=True, residual_in_fp32=True, hidden_act="silu",
              rescale_prenorm_residual=False, bos_token_id=0, eos_token_id=0, pad_token_id=0)

# id, engine, load mode, adapters ("none" | "e0" one adapter | "top2" learned top-2 of 8), peer id.
CONFIGS = [
    dict(id="torch-f32", engine="pytorch", dtype="f32", load="copy", adapters="none", peer=None),
    dict(id="lmx-f32", engine="loramixer", dtype="f32", load="mmap", adapters="none", peer="torch-f32"),
    dict(id="torch-f32-peft", engine="pytorch", dtype="f32", load="copy", adapters="e0", peer="torch-f32"),
    dict(id="lmx-f32-e0", engine="loramixer", dtype="f32", load="mmap", adapters="e0", peer="torch-f32-peft"),
    dict(id="lmx-f32-top2", engine="loramixer", dtype="f32", load="mmap", adapters="top2", peer="lmx-f32"),
]
# For worker_loramixer (bench/run.py): this benchmark's files.
LMX_PATHS = dict(model_dir=MODEL_DIR, expert_dir=EXPERT_DIR, router=ROUTER, logits_dir=LOGITS, save_decode=True)
# Logit agreement pairs: (reference, other).
AGREEMENT = [("torch-f32", "lmx-f32"), ("torch-f32-peft", "lmx-f32-e0")]


def stamp():
    """What the files under bench/work/mamba-130m/ are made from; they are rewritten when it changes."""
    import make_models
    recipe = dict(version=RECIPE_VERSION, config=CONFIG, seeds=[SEED_MODEL, SEED_EXPERTS, SEED_ROUTER, SEED_CHECK],
                  targets=TARGET_MODULES, lora=[make_models.LORA_R, make_models.LORA_ALPHA, make_models.LORA_B_SCALE],
                  router_scale=make_models.ROUTER_SCALE, experts=EXPERTS)
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def models_ready():
    try:
        info = json.load(open(MODELS_JSON))
    except (OSError, ValueError):
        return False
    need = [os.path.join(MODEL_DIR, "model.safetensors"), os.path.join(MODEL_DIR, "config.json"), ROUTER]
    need += [os.path.join(EXPERT_DIR, e, "adapter_model.safetensors") for e in EXPERTS]
    return info.get("stamp") == stamp() and all(os.path.exists(p) for p in need)


# --------------------------------------------------------------------------------------------
# The model, experts and router (a child: `mamba.py --make`)


def make():
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    import transformers
    from transformers import MambaConfig, MambaForCausalLM

    import make_models as mm
    t0 = time.time()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.set_num_threads(THREADS)
    for d in (MODEL_DIR, EXPERT_DIR, LOGITS):
        shutil.rmtree(d, ignore_errors=True)
    for f in (ROUTER, MODELS_JSON):
        if os.path.exists(f):
            os.remove(f)
    os.makedirs(MWORK, exist_ok=True)

    torch.manual_seed(SEED_MODEL)
    MambaForCausalLM(MambaConfig(**CONFIG)).eval().save_pretrained(MODEL_DIR)
    size = os.path.getsize(os.path.join(MODEL_DIR, "model.safetensors"))
    mm.say(f"base model: {size / 1e6:.1f} MB f32 ({os.path.relpath(MODEL_DIR, REPO)})")

    def load_base():
        return MambaForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()

    g = torch.Generator().manual_seed(SEED_CHECK)
    tokens = torch.randint(1, CONFIG["vocab_size"], (32,), generator=g)
    base = load_base()
    base_logits = mm.last_logits(base, tokens)
    report = {"stamp": stamp(), "base_logit_std": float(base_logits.std())}
    with torch.inference_mode():
        hs = base(input_ids=tokens.view(1, -1), output_hidden_states=True).hidden_states  # after each layer, then norm_f
    report["residual_rms_by_layer"] = [round(float(h.pow(2).mean().sqrt()), 4) for h in hs]
    report["cache_check"] = cache_check(base, tokens)
    mm.say(f"base logits: std {report['base_logit_std']:.3f}; residual stream rms from "
           f"{report['residual_rms_by_layer'][0]:.3f} (after layer 1) to {report['residual_rms_by_layer'][-2]:.3f} (after layer 24)")
    mm.say("decode with the cache vs full forward: " + json.dumps(report["cache_check"]))
    del base

    report["experts"] = {}
    for i, name in enumerate(EXPERTS):
        out = os.path.join(EXPERT_DIR, name)
        mm.write_expert(load_base, out, seed=SEED_EXPERTS + i, target_modules=TARGET_MODULES,
                        base_name="bench/work/mamba-130m/model")
        report["experts"][name] = mm.check_expert(load_base, out, tokens, base_logits, name)
    mm.write_router(ROUTER, CONFIG["hidden_size"], CONFIG["num_hidden_layers"], seed=SEED_ROUTER, experts=EXPERTS)
    mm.say(f"router: {os.path.relpath(ROUTER, REPO)} ({len(EXPERTS)} experts, {CONFIG['num_hidden_layers']} layers, top_k 2)")

    report.update(seeds=dict(model=SEED_MODEL, experts=SEED_EXPERTS, router=SEED_ROUTER, check=SEED_CHECK),
                  lora=dict(r=mm.LORA_R, alpha=mm.LORA_ALPHA, b_scale=mm.LORA_B_SCALE, targets=TARGET_MODULES),
                  router_scale=mm.ROUTER_SCALE, config=CONFIG,
                  versions=dict(torch=torch.__version__, transformers=transformers.__version__,
                                peft=__import__("peft").__version__))
    with open(MODELS_JSON, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    mm.say(f"done in {time.time() - t0:.0f} s")


def cache_check(model, tokens, n_prompt=24):
    """transformers 5.24's Mamba decode API, checked: prefill with use_cache=True returns the state
    in ``out.cache`` (a DynamicCache of conv + SSM states); a step passes it back as ``cache=``
    (``cache_params=`` is the deprecated alias, until 5.40). Mamba's forward has no cache_position,
    and it swallows unknown keywords: ``past_key_values=`` is silently ignored (each step then sees
    its token alone). Max |logit difference| of each decode step against a full forward."""
    import torch
    ids = tokens.view(1, -1)
    with torch.inference_mode():
        full = model(input_ids=ids).logits[0, n_prompt - 1:]

        def steps(kw):
            out = model(input_ids=ids[:, :n_prompt], use_cache=True, logits_to_keep=1)
            got = [out.logits[0, -1]]
            cache = out.cache
            for i in range(n_prompt, ids.shape[1]):
                out = model(input_ids=ids[:, i:i + 1], use_cache=True, logits_to_keep=1, **{kw: cache})
                got.append(out.logits[0, -1])
                cache = out.cache if out.cache is not None else cache
            return float((torch.stack(got) - full).abs().max())

        return {"cache": steps("cache"), "cache_params (deprecated alias)": steps("cache_params"),
                "past_key_values (ignored by Mamba)": steps("past_key_values")}


# --------------------------------------------------------------------------------------------
# Workers: one configuration in a fresh process (bench.worker_main prints its RESULT line)


def worker_pytorch(cfg, prompt, decode, save):
    """transformers MambaForCausalLM, f32, torch.set_num_threads(2), eval + inference_mode (as in
    bench/run.py); prefill returns the recurrent state in ``out.cache``, each decode step passes it
    back with ``cache=`` (see cache_check). On run 1 the last decode step's logits are compared with
    a full forward over prompt + decode tokens (decode_vs_full_max_abs)."""
    torch, model, res = bench.load_pytorch(cfg, "MambaForCausalLM", MODEL_DIR, EXPERT_DIR)
    out = bench.time_pytorch(torch, model, res, cfg, prompt, decode, save, "cache", LOGITS)
    if save:
        with torch.inference_mode():
            last = out.logits[0, -1].float()
            bench.save_logits(cfg["id"] + "-decode", last.numpy(), LOGITS)
            full = model(input_ids=torch.tensor([prompt + decode], dtype=torch.long), use_cache=False,
                         logits_to_keep=1).logits[0, -1].float()
            res["decode_vs_full_max_abs"] = float((full - last).abs().max())
    return res


# --------------------------------------------------------------------------------------------
# Parent


def label(c):
    ad = {"none": "base", "top2": "top-2 of 8, learned",
          "e0": "1 LoRA (PEFT, unmerged)" if c["engine"] == "pytorch" else "1 LoRA (fixed one-hot of 8)"}[c["adapters"]]
    if c["engine"] == "pytorch":
        return f"PyTorch {c['dtype']}, {ad}"
    return f"loramixer {c['dtype']} {c['load']}, {ad}"


def weight_bytes_per_token(model_dir=MODEL_DIR):
    """Bytes one decode step reads: every tensor of the file once (per layer in_proj, x_proj,
    dt_proj, out_proj, conv1d, A_log, D, norm; the final norm; and the embedding matrix, which is
    the tied LM head, read whole for the logits). Returns (total, projections, small per-channel
    tensors, head)."""
    t = bench.safetensors_tensors(os.path.join(model_dir, "model.safetensors"))
    total = sum(b for _, _, b in t.values())
    proj = sum(b for k, (_, _, b) in t.items() if re.search(r"\.(in_proj|x_proj|dt_proj|out_proj)\.weight$", k))
    head = t["lm_head.weight"][2] if "lm_head.weight" in t else t["backbone.embeddings.weight"][2]
    return total, proj, total - proj - head, head


def state_bytes():
    """The recurrent state of one sequence in f32: per layer an SSM state [inner, state_size] and
    the conv window [inner, conv_kernel] (what transformers keeps; it does not grow with n_ctx)."""
    inner = CONFIG["expand"] * CONFIG["hidden_size"]
    return CONFIG["num_hidden_layers"] * inner * (CONFIG["state_size"] + CONFIG["conv_kernel"]) * 4


def ensure_models():
    if models_ready():
        return
    print(f"writing the model, experts and router under {os.path.relpath(MWORK, REPO)}/ (about 1 min)",
          file=sys.stderr, flush=True)
    subprocess.run([sys.executable, os.path.abspath(__file__), "--make"], check=True, cwd=REPO)
    if not models_ready():
        raise SystemExit("the model files were not written (see the messages above)")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        return bench.worker_main(sys.argv[2], {"loramixer": bench.worker_loramixer, "pytorch": worker_pytorch})
    if len(sys.argv) == 2 and sys.argv[1] == "--make":
        return make()
    a = bench.parse_args("loramixer vs PyTorch+PEFT on a mamba-130m-shaped model (see bench/README.md)",
                         "interleaved runs (default 7)", budget=9, out_prefix="mamba-")
    t_start = time.time()
    started = datetime.datetime.now(datetime.timezone.utc)
    ensure_models()
    checks = json.load(open(MODELS_JSON))
    configs = [c for c in CONFIGS if not a.only or re.search(a.only, c["id"])]
    runs = bench.interleave(a, configs, t_start, logits_dir=LOGITS, script=os.path.abspath(__file__), id_width=15,
                            spec=lambda c: dict(c, **LMX_PATHS) if c["engine"] == "loramixer" else c,
                            fail_prefix="FAILED: ")
    results = runs.results

    wb = weight_bytes_per_token()
    file_bytes = os.path.getsize(os.path.join(MODEL_DIR, "model.safetensors"))
    e_bytes = os.path.getsize(os.path.join(EXPERT_DIR, "e0", "adapter_model.safetensors"))
    st_bytes = state_bytes()

    def bytes_per_token(c):
        return wb[0] + {"none": 0, "e0": 1, "top2": 2}[c["adapters"]] * e_bytes

    def mem_expected(c):
        n = {"none": 0, "e0": 1, "top2": 8}[c["adapters"]]
        if c["engine"] == "loramixer" and c["adapters"] == "e0":
            n = 8  # the one-hot row loads all 8 experts
        return file_bytes + n * e_bytes + st_bytes

    rows = bench.table_rows(runs, configs, label, bytes_per_token, mem_expected, "state")

    import numpy as np

    def load_logits(name):
        p = os.path.join(LOGITS, name + ".npy")
        return np.load(p) if os.path.exists(p) else None

    agreement = []
    for ref, other in AGREEMENT:
        if ref not in results or other not in results:
            continue
        parts = []
        for phase, suffix in (("at the last prompt position", ""), (f"after the {a.decode} decode steps", "-decode")):
            rl, ol = load_logits(ref + suffix), load_logits(other + suffix)
            if rl is not None and ol is not None and rl.shape == ol.shape:
                parts.append(f"{np.abs(ol - rl).max():.2g} {phase}" + ("" if ol.argmax() == rl.argmax()
                                                                       else " (argmax differs)"))
        rl = load_logits(ref)
        agreement.append(f"{other} vs {ref}" + (f" (logit std {rl.std():.2f})" if rl is not None else "") + ": "
                         + (", ".join(parts) if parts else "no logits (a side failed)"))
    cache_runs = [(c["id"], x["decode_vs_full_max_abs"]) for c in configs for x in results[c["id"]][:1]
                  if "decode_vs_full_max_abs" in x]
    top2 = bench.top2_line(configs, results)

    info = runs.machine_info()
    info["versions"].pop("llama_cpp", None)
    info["backends"].pop("llama.cpp", None)
    if "PyTorch" in info["backends"]:
        info["backends"]["PyTorch"] = info["backends"]["PyTorch"].replace(
            "sdpa attention", "transformers' torch-only Mamba path (sequential selective scan, no mamba-ssm kernels)")
    cc = checks.get("cache_check", {})
    model_line = (
        f"Model: mamba-130m shape, random weights (hidden {CONFIG['hidden_size']}, {CONFIG['num_hidden_layers']} layers, "
        f"vocabulary {CONFIG['vocab_size']}, state {CONFIG['state_size']}, expand {CONFIG['expand']}, conv kernel "
        f"{CONFIG['conv_kernel']}, time-step rank {CONFIG['time_step_rank']}, tied embeddings), f32, "
        f"{file_bytes / 1e6:.1f} MB; 8 PEFT LoRA experts r 16 on in_proj and x_proj ({e_bytes / 1e6:.1f} MB each); "
        f"router top-2 of 8.")
    lines = bench.report_head("Mamba results", started, info, a, runs, [model_line]) + [
        bench.bandwidth_text(runs)
        + f"{wb[0] / 1e6:.1f} MB = projections (in, x, dt, out × {CONFIG['num_hidden_layers']} layers, {wb[1] / 1e6:.1f} MB) "
        f"+ conv, A_log, D, norms ({wb[2] / 1e6:.1f} MB) + tied LM head ({wb[3] / 1e6:.1f} MB); + {e_bytes / 1e6:.1f} MB "
        f"per applied LoRA expert. Roofline = bandwidth ÷ those bytes: {runs.bw_med * 1e9 / wb[0]:.1f} tok/s.",
        "",
    ] + rows + [
        "",
        bench.figures_note("which ran seconds apart", "state",
                           f"the recurrent state in f32 ({st_bytes / 1e6:.1f} MB; it does not grow with the context)"),
        "",
        "Same model everywhere (max |logit difference|, run 1): " + ("; ".join(agreement) if agreement else "—") + ".",
        "PyTorch decode state (transformers' `cache=`): max |last decode logits − full forward over prompt + decode "
        "tokens|, run 1: " + (", ".join(f"{cid} {v:.2g}" for cid, v in cache_runs) if cache_runs else "—")
        + (f"; at model creation, every step of 8 against a full forward: `cache=` {cc.get('cache', float('nan')):.2g}, "
           f"`past_key_values=` (ignored by Mamba) {cc.get('past_key_values (ignored by Mamba)', float('nan')):.2g}"
           if cc else "") + ".",
    ]
    if top2:
        lines += [top2]
    lines += bench.report_tail(runs, "Failures (the row reads \"fail\"):")
    bench.write_report(a, lines, started, runs, info, configs, weight_bytes_per_token=wb[0], file_bytes=file_bytes,
                       expert_bytes=e_bytes, state_bytes=st_bytes, model_checks=checks)


if __name__ == "__main__":
    main()
