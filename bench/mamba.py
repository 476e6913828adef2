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

import argparse
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
RESULTS = bench.RESULTS
MWORK = os.path.join(bench.WORK, "mamba-130m")
MODEL_DIR = os.path.join(MWORK, "model")
EXPERT_DIR = os.path.join(MWORK, "experts")
ROUTER = os.path.join(MWORK, "router.safetensors")
LOGITS = os.path.join(MWORK, "logits")
MODELS_JSON = os.path.join(MWORK, "models.json")
EXPERTS = bench.EXPERTS  # e0..e7: worker_loramixer loads exactly these
THREADS = bench.THREADS
N_CTX = bench.N_CTX
WARM_DECODE = bench.WARM_DECODE

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
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    import transformers
    from transformers import MambaForCausalLM
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(THREADS)
    if cfg["adapters"] != "none":
        from peft import PeftModel
    res = {"rss_base_kb": bench.status_kb("VmRSS"), "torch_threads": torch.get_num_threads(),
           "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other"}
    t = time.perf_counter()
    model = MambaForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()
    if cfg["adapters"] == "e0":
        model = PeftModel.from_pretrained(model, os.path.join(EXPERT_DIR, "e0")).eval()  # unmerged
    res["load_s"] = time.perf_counter() - t
    ids = torch.tensor([prompt], dtype=torch.long)
    steps = [torch.tensor([[tok]], dtype=torch.long) for tok in decode]

    def prefill():
        return model(input_ids=ids, use_cache=True, logits_to_keep=1)

    def step(cache, x):
        return model(input_ids=x, cache=cache, use_cache=True, logits_to_keep=1)

    with torch.inference_mode():
        t = time.perf_counter()
        cache = prefill().cache
        for x in steps[:WARM_DECODE]:
            cache = step(cache, x).cache
        res["warm_s"] = time.perf_counter() - t  # the next prefill starts from a fresh cache (the reset)
        f0 = bench.faults()
        t = time.perf_counter()
        out = prefill()
        res["prefill_s"] = time.perf_counter() - t
        res["rss_kb"] = bench.status_kb("VmRSS")
        if save:
            bench.save_logits(cfg["id"], out.logits[0, -1].float().numpy(), LOGITS)
        cache = out.cache
        t = time.perf_counter()
        for x in steps:
            out = step(cache, x)
            cache = out.cache
        res["decode_s"] = time.perf_counter() - t
        res["faults_major_minor"] = [b - a for a, b in zip(f0, bench.faults())]
        if save:
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


def paired(results, cid, key, peer):
    out = []
    for x, y in zip([r.get(key) for r in results.get(cid, [])], [r.get(key) for r in results.get(peer, [])]):
        if x is not None and y is not None and y > 0:
            out.append(x / y)
    return bench.med(out)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        return bench.worker_main(sys.argv[2], {"loramixer": bench.worker_loramixer, "pytorch": worker_pytorch})
    if len(sys.argv) == 2 and sys.argv[1] == "--make":
        return make()
    ap = argparse.ArgumentParser(description="loramixer vs PyTorch+PEFT on a mamba-130m-shaped model (see bench/README.md)")
    ap.add_argument("--runs", type=int, default=7, help="interleaved runs (default 7)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 run, 32-token prompt, 8 decode steps")
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens (default 128)")
    ap.add_argument("--decode", type=int, default=64, help="decode steps (default 64)")
    ap.add_argument("--only", help="regular expression over configuration ids (peers are not added)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per child process (default 60)")
    ap.add_argument("--budget", type=float, default=9, help="minutes: start no new run, and no child, past this (default 9)")
    ap.add_argument("--out", help="markdown output (default bench/results/mamba-latest.md; mamba-quick.md with --quick)")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.prompt, a.decode = 1, 32, 8
    if a.out is None:
        a.out = os.path.join(RESULTS, "mamba-quick.md" if a.quick else "mamba-latest.md")
    t_start = time.time()
    started = datetime.datetime.now(datetime.timezone.utc)
    ensure_models()
    checks = json.load(open(MODELS_JSON))
    configs = [c for c in CONFIGS if not a.only or re.search(a.only, c["id"])]
    bw_exe = bench.build_bw()
    lib_at_start = bench.library_info()
    shutil.rmtree(LOGITS, ignore_errors=True)  # this run's logits only
    bw_mib, bw_reps = (256, 3) if a.quick else (1024, 5)
    results = {c["id"]: [] for c in configs}
    bws = []
    deadline = t_start + a.budget * 60
    stopped = None
    for r in range(a.runs):
        if time.time() > deadline:
            stopped = f"stopped after {r} of {a.runs} runs: the --budget of {a.budget:g} min was spent"
            break
        bws.append(bench.measure_bw(bw_exe, bw_mib, bw_reps))
        print(f"[run {r + 1}/{a.runs}] read bandwidth {bws[-1]:.1f} GB/s", file=sys.stderr, flush=True)
        for c in configs:
            left = deadline - time.time()
            if left < 5:
                stopped = f"run {r + 1} of {a.runs} cut short at {c['id']}: the --budget of {a.budget:g} min was spent"
                break
            spec = dict(c, **LMX_PATHS) if c["engine"] == "loramixer" else c
            res = bench.run_worker(spec, a.prompt, a.decode, save=(r == 0), timeout=min(a.timeout, left),
                                   script=os.path.abspath(__file__))
            results[c["id"]].append(res)
            msg = ("FAILED: " + res["error"]) if "error" in res else (
                f"prefill {res['prefill_tps']:.1f} tok/s, decode {res['decode_tps']:.1f} tok/s, "
                f"warm-up {res['warm_s']:.1f} s, faults {res['faults_major_minor']}, "
                f"other processes {res['foreign_cores']:.2f} cores")
            print(f"[run {r + 1}/{a.runs}] {c['id']:<15} {msg} ({res['wall_s']:.1f} s)", file=sys.stderr, flush=True)
        if stopped:
            break
    if stopped:
        print(f"note: {stopped}", file=sys.stderr)
    a.runs = len(bws)
    bws.append(bench.measure_bw(bw_exe, bw_mib, bw_reps))
    print(f"[end] read bandwidth {bws[-1]:.1f} GB/s", file=sys.stderr, flush=True)
    total_s = time.time() - t_start
    bw_run = [(bws[i] + bws[i + 1]) / 2 for i in range(a.runs)]
    bw_med = bench.med(bws)

    wb = weight_bytes_per_token()
    file_bytes = os.path.getsize(os.path.join(MODEL_DIR, "model.safetensors"))
    e_bytes = os.path.getsize(os.path.join(EXPERT_DIR, "e0", "adapter_model.safetensors"))
    st_bytes = state_bytes()

    def per_run(cid, key):
        return [x.get(key) for x in results.get(cid, [])]

    def bytes_per_token(c):
        return wb[0] + {"none": 0, "e0": 1, "top2": 2}[c["adapters"]] * e_bytes

    def roofline_ratio(c):
        out = [x / (bw * 1e9 / bytes_per_token(c)) for x, bw in zip(per_run(c["id"], "decode_tps"), bw_run)
               if x is not None]
        return bench.med(out)

    def mem(c):
        return bench.med([(x["rss_kb"] - x["rss_base_kb"]) * 1024 for x in results[c["id"]] if "rss_kb" in x])

    def mem_expected(c):
        n = {"none": 0, "e0": 1, "top2": 8}[c["adapters"]]
        if c["engine"] == "loramixer" and c["adapters"] == "e0":
            n = 8  # the one-hot row loads all 8 experts
        return file_bytes + n * e_bytes + st_bytes

    rows = ["| configuration | prefill tok/s | decode tok/s | decode ÷ roofline | vs | prefill ÷ vs | decode ÷ vs "
            "| RSS Δ MB | ÷ files+state |", "|" + "---|" * 9]
    for c in configs:
        peer = c["peer"] if c["peer"] in results else None
        m = mem(c)
        rr = roofline_ratio(c)
        pp = paired(results, c["id"], "prefill_tps", peer) if peer else None
        pd = paired(results, c["id"], "decode_tps", peer) if peer else None
        rows.append("| " + " | ".join([
            label(c),
            bench.fmt_spread(per_run(c["id"], "prefill_tps")),
            bench.fmt_spread(per_run(c["id"], "decode_tps")),
            f"{rr * 100:.0f}%" if rr is not None else "—",
            label(next(x for x in configs if x["id"] == peer)) if peer else "",
            bench.fmt(pp, 2) + "×" if pp else "",
            bench.fmt(pd, 2) + "×" if pd else "",
            bench.fmt(m / 1e6, 0) if m is not None else "—",
            f"{m / mem_expected(c):.2f}×" if m is not None else "—",
        ]) + " |")

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
    top2 = [x.get("distinct_top2_sets_per_layer") for c in configs if c["adapters"] == "top2"
            for x in results[c["id"]][:1] if x.get("distinct_top2_sets_per_layer")]

    info = bench.machine_info()
    if info["lib"] != lib_at_start:
        info["lib"] = f"CHANGED during the run: {lib_at_start} at the start, {info['lib']} at the end"
    info["versions"].pop("llama_cpp", None)
    info["backends"].pop("llama.cpp", None)
    if "PyTorch" in info["backends"]:
        info["backends"]["PyTorch"] = info["backends"]["PyTorch"].replace(
            "sdpa attention", "transformers' torch-only Mamba path (sequential selective scan, no mamba-ssm kernels)")
    cc = checks.get("cache_check", {})
    lines = [
        f"## Mamba results {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"{info['cpu']}, {info['cores']} cores, {info['mem_gib']} GiB, Linux {info['kernel']}; {THREADS} threads for "
        f"every engine; {a.runs} interleaved run(s), prompt {a.prompt} tokens, decode {a.decode} steps, n_ctx {N_CTX}; "
        f"total {total_s / 60:.1f} min.",
        f"Model: mamba-130m shape, random weights (hidden {CONFIG['hidden_size']}, {CONFIG['num_hidden_layers']} layers, "
        f"vocabulary {CONFIG['vocab_size']}, state {CONFIG['state_size']}, expand {CONFIG['expand']}, conv kernel "
        f"{CONFIG['conv_kernel']}, time-step rank {CONFIG['time_step_rank']}, tied embeddings), f32, "
        f"{file_bytes / 1e6:.1f} MB; 8 PEFT LoRA experts r 16 on in_proj and x_proj ({e_bytes / 1e6:.1f} MB each); "
        f"router top-2 of 8.",
        f"libloramixer: {info['lib']}; repository {info['git']}.",
        "Peers: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + "; environment: "
        + (", ".join(f"{k}={v}" for k, v in sorted(info["env"].items())) or "no OPENBLAS/OMP/MKL variables set") + ".",
        "Backends: " + "; ".join(f"{k}: {v}" for k, v in info["backends"].items()) + ".",
        "",
        f"Read bandwidth ({THREADS} threads, bench/bw.c over {bw_mib} MiB): median {bw_med:.1f} GB/s "
        f"(per measurement: {', '.join(f'{x:.1f}' for x in bws)}). Weight bytes read per decode token: "
        f"{wb[0] / 1e6:.1f} MB = projections (in, x, dt, out × {CONFIG['num_hidden_layers']} layers, {wb[1] / 1e6:.1f} MB) "
        f"+ conv, A_log, D, norms ({wb[2] / 1e6:.1f} MB) + tied LM head ({wb[3] / 1e6:.1f} MB); + {e_bytes / 1e6:.1f} MB "
        f"per applied LoRA expert. Roofline = bandwidth ÷ those bytes: {bw_med * 1e9 / wb[0]:.1f} tok/s.",
        "",
    ] + rows + [
        "",
        "Figures: median over the runs (min–max). Ratios (÷): median of the per-run ratios against the row named "
        "under \"vs\" (which ran seconds apart); decode ÷ roofline uses the bandwidth measured around that run. "
        "RSS Δ: VmRSS after load + warm-up + the timed prefill minus VmRSS before loading (the library, "
        "interpreter and imports already loaded); files+state = weight file + adapter files loaded + the recurrent "
        f"state in f32 ({st_bytes / 1e6:.1f} MB; it does not grow with the context). Differences under ~15% are noise "
        "on these machines.",
        "",
        "Same model everywhere (max |logit difference|, run 1): " + ("; ".join(agreement) if agreement else "—") + ".",
        "PyTorch decode state (transformers' `cache=`): max |last decode logits − full forward over prompt + decode "
        "tokens|, run 1: " + (", ".join(f"{cid} {v:.2g}" for cid, v in cache_runs) if cache_runs else "—")
        + (f"; at model creation, every step of 8 against a full forward: `cache=` {cc.get('cache', float('nan')):.2g}, "
           f"`past_key_values=` (ignored by Mamba) {cc.get('past_key_values (ignored by Mamba)', float('nan')):.2g}"
           if cc else "") + ".",
    ]
    if top2:
        lines += [f"Learned top-2 routing over the prompt: distinct top-2 expert sets per layer "
                  f"(min/median/max over layers) {top2[0]}."]
    majors = {cid: sum(x.get("faults_major_minor", [0, 0])[0] for x in rs) for cid, rs in results.items()}
    majors = {k: v for k, v in majors.items() if v}
    lines += ["Major page faults in the timed phases (disk reads, e.g. mapped weights paged out): "
              + (", ".join(f"{k} {v}" for k, v in majors.items()) if majors else "none") + "."]
    busy = [f"{cid} run {i + 1} ({x['foreign_cores']:.1f})" for cid, rs in results.items() for i, x in enumerate(rs)
            if x.get("foreign_cores", 0) > 0.25]
    lines += ["Runs during which other processes kept more than 0.25 core busy on average (their figures are in "
              "the medians; the min–max shows their effect): " + (", ".join(busy) if busy else "none") + "."]
    if stopped:
        lines += ["", f"Note: {stopped}."]
    errors = sorted({f"{cid}: {x['error']}" for cid, rs in results.items() for x in rs if "error" in x})
    if errors:
        lines += ["", "Failures (the row reads \"fail\"):", ""] + [f"- {e}" for e in errors]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(dict(started=started.isoformat(), total_s=total_s, args=vars(a), machine=info, bandwidth_gbs=bws,
                       weight_bytes_per_token=wb[0], file_bytes=file_bytes, expert_bytes=e_bytes, state_bytes=st_bytes,
                       model_checks=checks, configs=configs, results=results), f, indent=1)
    print(f"written {os.path.relpath(a.out, REPO)} ({total_s / 60:.1f} min)", file=sys.stderr)


if __name__ == "__main__":
    main()
