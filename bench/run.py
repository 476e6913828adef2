#!/usr/bin/env python3
"""Routed multi-LoRA inference on the CPU: loramixer against llama.cpp and PyTorch+PEFT.

    python bench/run.py              # 7 runs, about 6 minutes on 2 cores (--runs 5: about 4)
    python bench/run.py --quick      # smoke run: 1 run, 32-token prompt, 8 decode steps
    python bench/run.py --runs 9 --only 'lmx-f32|lcpp-f32$'

Every configuration (engine x weights x load mode x adapters) runs in its own child process
(this file with --worker), one after the other, and the list is walked once per run:
A B C ... A B C ... (interleaved), with a read-bandwidth measurement at the start of every run
and after the last. Each child: load, warm up (prompt + 8 decode steps, then reset), time the
prefill of a 128-token prompt (one call, logits of the last position), read its RSS, time 64
single-token decode steps with the KV cache, exit. Figures are medians over the runs; ratios
are medians of the per-run ratios (both sides of a ratio ran seconds apart).

Prints one markdown table (and writes it to bench/results/latest.md, raw figures to
bench/results/latest.json). Needs bench/make_models.py and bench/make_gguf.py to have run,
llama-cpp-python, torch/transformers/peft in this interpreter, libloramixer built.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "work")
RESULTS = os.path.join(HERE, "results")
LOGITS = os.path.join(WORK, "logits")
F32_DIR = os.path.join(WORK, "smollm-f32")
BF16_DIR = os.path.join(WORK, "smollm-bf16")
EXPERTS = [f"e{i}" for i in range(8)]
EXPERT_DIR = os.path.join(WORK, "experts")
ROUTER = os.path.join(WORK, "router.safetensors")
GGUF = {"f32": os.path.join(WORK, "gguf", "smollm-f32.gguf"), "f16": os.path.join(WORK, "gguf", "smollm-f16.gguf")}
GGUF_LORA = os.path.join(WORK, "gguf", "lora-e0-f32.gguf")
THREADS = 2
N_CTX = 512
SEED_TOKENS = 2024
WARM_DECODE = 8

# id, engine, dtype, load mode, adapters ("none" | "e0" one adapter | "top2" learned top-2 of 8),
# peer id (ratios are against it). Peers sit next to each other in the order (they run close in time).
CONFIGS = [
    dict(id="lcpp-f32", engine="llama.cpp", dtype="f32", load="mmap", adapters="none", peer=None),
    dict(id="lmx-f32-mmap", engine="loramixer", dtype="f32", load="mmap", adapters="none", peer="lcpp-f32"),
    dict(id="lcpp-f32-nommap", engine="llama.cpp", dtype="f32", load="copy", adapters="none", peer=None),
    dict(id="lmx-f32-copy", engine="loramixer", dtype="f32", load="copy", adapters="none", peer="lcpp-f32-nommap"),
    dict(id="lmx-f32-mmap-top2", engine="loramixer", dtype="f32", load="mmap", adapters="top2", peer="lmx-f32-mmap"),
    dict(id="lmx-f32-copy-top2", engine="loramixer", dtype="f32", load="copy", adapters="top2", peer="lmx-f32-copy"),
    dict(id="lcpp-f32-lora", engine="llama.cpp", dtype="f32", load="mmap", adapters="e0", peer="lcpp-f32"),
    dict(id="lmx-f32-mmap-e0", engine="loramixer", dtype="f32", load="mmap", adapters="e0", peer="lcpp-f32-lora"),
    dict(id="lcpp-f16", engine="llama.cpp", dtype="f16", load="mmap", adapters="none", peer=None),
    dict(id="lmx-bf16-mmap", engine="loramixer", dtype="bf16", load="mmap", adapters="none", peer="lcpp-f16"),
    dict(id="lcpp-f16-nommap", engine="llama.cpp", dtype="f16", load="copy", adapters="none", peer=None),
    dict(id="lmx-bf16-copy", engine="loramixer", dtype="bf16", load="copy", adapters="none", peer="lcpp-f16-nommap"),
    dict(id="lmx-bf16-mmap-top2", engine="loramixer", dtype="bf16", load="mmap", adapters="top2", peer="lmx-bf16-mmap"),
    dict(id="torch-f32", engine="pytorch", dtype="f32", load="copy", adapters="none", peer=None),
    dict(id="torch-f32-peft", engine="pytorch", dtype="f32", load="copy", adapters="e0", peer="torch-f32"),
]

# The targets of the issue: (row, what, peer, minimum ratio).
TARGETS = [
    ("lmx-f32-mmap", "decode", "lcpp-f32", 1.0, "base f32 decode ≥ 1.0× llama.cpp f32 decode"),
    ("lmx-f32-copy", "decode", "lcpp-f32-nommap", 1.0, "base f32 decode ≥ 1.0× llama.cpp f32 decode (copy / no-mmap)"),
    ("lmx-bf16-mmap", "decode", "lcpp-f16", 1.0, "bf16 decode ≥ 1.0× llama.cpp f16 decode"),
    ("lmx-bf16-copy", "decode", "lcpp-f16-nommap", 1.0, "bf16 decode ≥ 1.0× llama.cpp f16 decode (copy / no-mmap)"),
    ("lmx-f32-mmap-top2", "decode", "lmx-f32-mmap", 0.85, "top-2-of-8 decode ≥ 0.85× our base decode (f32)"),
    ("lmx-bf16-mmap-top2", "decode", "lmx-bf16-mmap", 0.85, "top-2-of-8 decode ≥ 0.85× our base decode (bf16)"),
    ("lmx-f32-mmap", "prefill", "lcpp-f32", 0.7, "f32 prefill ≥ 0.7× llama.cpp f32 prefill"),
    ("lmx-bf16-mmap", "prefill", "lcpp-f16", 0.7, "bf16 prefill ≥ 0.7× llama.cpp f16 prefill"),
    ("lmx-f32-mmap", "roofline", None, 0.8, "f32 decode ≥ 80% of the bandwidth roofline"),
    ("lmx-bf16-mmap", "roofline", None, 0.8, "bf16 decode ≥ 80% of the bandwidth roofline"),
    ("lmx-f32-mmap", "memory", None, 1.1, "RSS after load + prefill ≤ 1.1× weight file + KV cache (f32 mmap)"),
    ("lmx-f32-copy", "memory", None, 1.1, "RSS after load + prefill ≤ 1.1× weight file + KV cache (f32 copy)"),
]


# --------------------------------------------------------------------------------------------
# Shared helpers


def tokens(n_prompt, n_decode):
    """The same prompt and decode tokens for every engine: ids drawn uniformly from 1..49151
    with a fixed seed (a tiny LCG, so that no numpy is needed to agree on them)."""
    x, out = SEED_TOKENS, []
    for _ in range(n_prompt + n_decode):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(1 + (x >> 33) % 49151)
    return out[:n_prompt], out[n_prompt:]


def faults():
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_majflt, r.ru_minflt


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def safetensors_tensors(path):
    """{name: (dtype, shape, nbytes)} from a safetensors header."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], v["data_offsets"][1] - v["data_offsets"][0]) for k, v in header.items()}


PROJ = re.compile(r"\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$")


def weight_bytes_per_token(model_dir):
    """Bytes of weights one decode step must read: every projection matrix of every layer plus
    the LM head (tied: the embedding matrix, read whole to produce all logits), in the stored
    dtype. Norm vectors (~70 KB) and the single embedding row are left out."""
    t = safetensors_tensors(os.path.join(model_dir, "model.safetensors"))
    proj = sum(b for k, (_, _, b) in t.items() if PROJ.search(k))
    head = t["lm_head.weight"][2] if "lm_head.weight" in t else t["model.embed_tokens.weight"][2]
    return proj + head, proj, head


def expert_bytes(name):
    return os.path.getsize(os.path.join(EXPERT_DIR, name, "adapter_model.safetensors"))


def kv_bytes(n_ctx=N_CTX):
    cfg = json.load(open(os.path.join(F32_DIR, "config.json")))
    kv_dim = cfg["num_key_value_heads"] * cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    return 2 * cfg["num_hidden_layers"] * n_ctx * kv_dim * 4


# --------------------------------------------------------------------------------------------
# Workers: one configuration in a fresh process; prints "RESULT {json}" as its last line.


def save_logits(cid, values, logits_dir=None):
    import numpy as np
    logits_dir = logits_dir or LOGITS
    os.makedirs(logits_dir, exist_ok=True)
    np.save(os.path.join(logits_dir, cid + ".npy"), np.asarray(values, dtype=np.float32))


def worker_loramixer(cfg, prompt, decode, save):
    """Also used by bench/mamba.py, whose configurations name their own files: optional keys
    model_dir, expert_dir, router, logits_dir (defaults: this benchmark's) and save_decode (also
    save the logits of the last decode step, as "<id>-decode")."""
    import loramixer as lmx
    lmx.capi.lib()  # load the library (and the Swift runtime) before the baseline RSS
    res = {"rss_base_kb": status_kb("VmRSS")}
    expert_dir = cfg.get("expert_dir") or EXPERT_DIR
    t = time.perf_counter()
    model = lmx.Model(cfg.get("model_dir") or (F32_DIR if cfg["dtype"] == "f32" else BF16_DIR), load_mode=cfg["load"])
    mixer = lmx.Mixer(model)
    if cfg["adapters"] != "none":
        for name in EXPERTS:
            mixer.add_peft(name, os.path.join(expert_dir, name))
    if cfg["adapters"] == "top2":
        mixer.load_router(cfg.get("router") or ROUTER)
    session = mixer.session(n_ctx=N_CTX, trace=False, n_threads=THREADS)
    if cfg["adapters"] == "none":
        session.set_routing("none")
    elif cfg["adapters"] == "e0":
        session.fixed_weights = [1.0] + [0.0] * (len(EXPERTS) - 1)  # e0 alone, gate 1
        session.set_routing("fixed")
    else:
        session.set_routing("learned")
    res["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    out = None
    session.eval(prompt, logits="last")
    for tok in decode[:WARM_DECODE]:
        out = session.eval([tok], logits="last", out=out)
    session.reset()
    res["warm_s"] = time.perf_counter() - t
    f0 = faults()
    t = time.perf_counter()
    last = session.eval(prompt, logits="last")
    res["prefill_s"] = time.perf_counter() - t
    res["rss_kb"] = status_kb("VmRSS")
    if save:
        save_logits(cfg["id"], last, cfg.get("logits_dir"))
    t = time.perf_counter()
    for tok in decode:
        out = session.eval([tok], logits="last", out=out)
    res["decode_s"] = time.perf_counter() - t
    res["faults_major_minor"] = [b - a for a, b in zip(f0, faults())]
    if save and cfg.get("save_decode"):
        save_logits(cfg["id"] + "-decode", out, cfg.get("logits_dir"))
    if save and cfg["adapters"] == "top2":  # routing really varies: distinct top-2 sets per layer
        with mixer.session(n_ctx=N_CTX, trace=True, n_threads=THREADS) as s2:
            s2.eval(prompt, logits="none")
            ids = s2.trace()[0]  # [tokens, layers, width]
            sets = [len({tuple(sorted(int(e) for e in ids[t_, l, :2])) for t_ in range(ids.shape[0])})
                    for l in range(ids.shape[1])]
            res["distinct_top2_sets_per_layer"] = [min(sets), statistics.median(sets), max(sets)]
    return res


def worker_llama_cpp(cfg, prompt, decode, save):
    import ctypes

    import llama_cpp
    from llama_cpp import Llama
    res = {"rss_base_kb": status_kb("VmRSS"), "version": llama_cpp.__version__}
    t = time.perf_counter()
    llm = Llama(GGUF[cfg["dtype"]], n_threads=THREADS, n_threads_batch=THREADS, n_ctx=N_CTX,
                use_mmap=cfg["load"] == "mmap", logits_all=False, verbose=False)
    if cfg["adapters"] == "e0":
        # The low-level adapter API: Llama(lora_path=...) would silently turn mmap off.
        adapter = llama_cpp.llama_adapter_lora_init(llm._model.model, GGUF_LORA.encode())
        if not adapter:
            raise RuntimeError(f"llama_adapter_lora_init failed for {GGUF_LORA}")
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(1.0)
        if llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, adapters, 1, scales) != 0:
            raise RuntimeError("llama_set_adapters_lora failed")
    res["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    llm.eval(prompt)
    for tok in decode[:WARM_DECODE]:
        llm.eval([tok])
    llm.reset()
    res["warm_s"] = time.perf_counter() - t
    f0 = faults()
    t = time.perf_counter()
    llm.eval(prompt)
    res["prefill_s"] = time.perf_counter() - t
    res["rss_kb"] = status_kb("VmRSS")
    if save:
        import numpy as np
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        save_logits(cfg["id"], np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy())
    t = time.perf_counter()
    for tok in decode:
        llm.eval([tok])
    res["decode_s"] = time.perf_counter() - t
    res["faults_major_minor"] = [b - a for a, b in zip(f0, faults())]
    return res


def load_pytorch(cfg, model_class, model_dir, expert_dir=None):
    """A PyTorch worker's start, shared with bench/mamba.py: transformers' ``model_class`` (a name)
    from ``model_dir`` in f32, torch.set_num_threads(THREADS), eval; with adapters "e0" the PEFT
    expert e0 of ``expert_dir`` (default EXPERT_DIR), unmerged. Returns (torch, model, res)."""
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    import transformers
    model_class = getattr(transformers, model_class)  # imported before the baseline RSS
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(THREADS)
    if cfg["adapters"] != "none":
        from peft import PeftModel
    res = {"rss_base_kb": status_kb("VmRSS"), "torch_threads": torch.get_num_threads(),
           "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other"}
    t = time.perf_counter()
    model = model_class.from_pretrained(model_dir, dtype=torch.float32).eval()
    if cfg["adapters"] == "e0":
        model = PeftModel.from_pretrained(model, os.path.join(expert_dir or EXPERT_DIR, "e0")).eval()  # unmerged
    res["load_s"] = time.perf_counter() - t
    return torch, model, res


def time_pytorch(torch, model, res, cfg, prompt, decode, save, cache, logits_dir=None):
    """A PyTorch worker's timed phases under inference_mode, into ``res``: warm-up (prompt + WARM_DECODE
    steps; the next prefill starts from a fresh cache, the reset), prefill (logits of the last
    position, saved on run 1), RSS, decode steps. The decoding state is the output's attribute
    ``cache``, passed back to each step as the keyword of that name. Returns the last step's output."""
    ids = torch.tensor([prompt], dtype=torch.long)
    steps = [torch.tensor([[tok]], dtype=torch.long) for tok in decode]

    def prefill():
        return model(input_ids=ids, use_cache=True, logits_to_keep=1)

    def step(state, x):
        return model(input_ids=x, use_cache=True, logits_to_keep=1, **{cache: state})

    with torch.inference_mode():
        t = time.perf_counter()
        state = getattr(prefill(), cache)
        for x in steps[:WARM_DECODE]:
            state = getattr(step(state, x), cache)
        res["warm_s"] = time.perf_counter() - t
        f0 = faults()
        t = time.perf_counter()
        out = prefill()
        res["prefill_s"] = time.perf_counter() - t
        res["rss_kb"] = status_kb("VmRSS")
        if save:
            save_logits(cfg["id"], out.logits[0, -1].float().numpy(), logits_dir)
        state = getattr(out, cache)
        t = time.perf_counter()
        for x in steps:
            out = step(state, x)
            state = getattr(out, cache)
        res["decode_s"] = time.perf_counter() - t
    res["faults_major_minor"] = [b - a for a, b in zip(f0, faults())]
    return out


def worker_pytorch(cfg, prompt, decode, save):
    torch, model, res = load_pytorch(cfg, "LlamaForCausalLM", F32_DIR)
    res["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    time_pytorch(torch, model, res, cfg, prompt, decode, save, "past_key_values")
    return res


def worker_main(spec, workers=None):
    """Runs the configuration ``spec`` (JSON) with the worker of its engine (``workers``: engine ->
    function; default this benchmark's) and prints its RESULT line."""
    cfg = json.loads(spec)
    prompt, decode = tokens(cfg["n_prompt"], cfg["n_decode"])
    workers = workers or {"loramixer": worker_loramixer, "llama.cpp": worker_llama_cpp, "pytorch": worker_pytorch}
    fn = workers[cfg["engine"]]
    res = fn(cfg, prompt, decode, cfg.get("save", False))
    res["hwm_kb"] = status_kb("VmHWM")
    res["prefill_tps"] = len(prompt) / res["prefill_s"]
    res["decode_tps"] = len(decode) / res["decode_s"]
    print("RESULT " + json.dumps(res), flush=True)


# --------------------------------------------------------------------------------------------
# Parent


def build_bw():
    exe = os.path.join(WORK, "bw")
    src = os.path.join(HERE, "bw.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            return None
        subprocess.run([cc, "-O3", "-march=native", "-ffast-math", "-pthread", src, "-o", exe], check=True)
    return exe


def measure_bw(exe, mib, reps):
    if exe is not None:
        p = subprocess.run([exe, str(THREADS), str(mib), str(reps)], capture_output=True, text=True, timeout=120)
        return json.loads(p.stdout)["median_gbs"]
    import numpy as np  # fallback: one thread
    a = np.ones(mib * 1024 * 1024 // 4, dtype=np.float32)
    speeds = []
    for _ in range(reps):
        t = time.perf_counter()
        a.sum()
        speeds.append(a.nbytes / (time.perf_counter() - t) / 1e9)
    return statistics.median(speeds)


def cpu_seconds():
    """(busy CPU seconds of the whole machine, CPU seconds of our finished children)."""
    import resource
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    busy = (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy, ch.ru_utime + ch.ru_stime


def run_worker(cfg, n_prompt, n_decode, save, timeout, script=None):
    """Runs one configuration in a child (``script --worker SPEC``, default this file); adds wall_s
    and foreign_cores: the average number of cores that other processes kept busy meanwhile
    (machine busy time minus the child's own)."""
    spec = dict(cfg, n_prompt=n_prompt, n_decode=n_decode, save=save)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(REPO, "python") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t = time.perf_counter()
    busy0, own0 = cpu_seconds()
    try:
        p = subprocess.run([sys.executable, os.path.abspath(script or __file__), "--worker", json.dumps(spec)],
                           capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "wall_s": time.perf_counter() - t}
    lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return {"error": f"exit {p.returncode}: {tail[0][:200]}", "wall_s": time.perf_counter() - t}
    res = json.loads(lines[-1][len("RESULT "):])
    res["wall_s"] = time.perf_counter() - t
    busy1, own1 = cpu_seconds()
    res["foreign_cores"] = max(0.0, (busy1 - busy0) - (own1 - own0)) / res["wall_s"]
    return res


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=1):
    if x is None:
        return "—"
    return f"{x:.{nd}f}" if abs(x) < 1000 else f"{x:.0f}"


def fmt_spread(xs):
    if not xs:
        return "not run"
    xs = [x for x in xs if x is not None]
    if not xs:
        return "fail"
    m = statistics.median(xs)
    if len(xs) < 3:
        return fmt(m)
    return f"{fmt(m)} ({fmt(min(xs), 0)}–{fmt(max(xs), 0)})"


def label(c):
    eng = {"loramixer": "loramixer", "llama.cpp": "llama.cpp", "pytorch": "PyTorch"}[c["engine"]]
    load = {"loramixer": {"mmap": "mmap", "copy": "copy"}, "llama.cpp": {"mmap": "mmap", "copy": "no-mmap"},
            "pytorch": {"copy": "sdpa"}}[c["engine"]][c["load"]]
    ad = {"none": "base", "e0": "1 LoRA" + (" (PEFT, unmerged)" if c["engine"] == "pytorch" else
                                           " (fixed one-hot of 8)" if c["engine"] == "loramixer" else ""),
          "top2": "top-2 of 8, learned"}[c["adapters"]]
    return f"{eng} {c['dtype']} {load}, {ad}"


def library_info():
    lib = os.environ.get("LORAMIXER_LIBRARY") or os.path.join(REPO, ".build", "release", "libloramixer.so")
    if os.path.isdir(lib):
        lib = os.path.join(lib, "libloramixer.so")
    if not os.path.exists(lib):
        return "missing"
    import hashlib
    h = hashlib.sha256(open(lib, "rb").read()).hexdigest()[:12]
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(lib), datetime.timezone.utc)
    return f"{os.path.relpath(lib, REPO)} sha256 {h}, built {mtime:%Y-%m-%d %H:%M} UTC"


CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512vl", "avx512_vbmi",
             "avx512_vnni", "avx512_bf16", "amx_tile", "neon", "asimd", "sve")


def cpu_flags(wanted=CPU_FLAGS):
    """The vector/bit-manipulation flags of /proc/cpuinfo that matter to kernels and text
    scanning (the full list is hundreds of words), space-separated, in `wanted` order."""
    have = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return " ".join(f for f in wanted if f in have) or "?"


def machine_info():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // (1024 * 1024)
    except OSError:
        pass
    env = {k: v for k, v in os.environ.items() if re.match(r"(OPENBLAS|OMP|MKL|GOTO|BLIS|LORAMIXER)", k)}
    libinfo = library_info()
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        head += " (+ uncommitted changes)" if dirty else ""
    except OSError:
        head = "?"
    versions = {}
    for mod in ("llama_cpp", "torch", "transformers", "peft", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing peer is reported, not fatal
            versions[mod] = "missing"
    backends = {}
    try:
        import llama_cpp
        feats = llama_cpp.llama_print_system_info().decode()
        backends["llama.cpp"] = " ".join(re.findall(r"(\w+) = 1", feats)) + ("" if "BLAS = 1" in feats else ", no BLAS")
    except Exception:  # noqa: BLE001
        pass
    try:
        import torch
        backends["PyTorch"] = (("MKL" if torch.backends.mkl.is_available() else "no MKL") + (" + OpenMP" if
                               torch.backends.openmp.is_available() else "") + f", set_num_threads({THREADS}), sdpa attention")
    except Exception:  # noqa: BLE001
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), mem_gib=mem, kernel=platform.release(), python=platform.python_version(),
                env=env, lib=libinfo, git=head, versions=versions, backends=backends)


# --------------------------------------------------------------------------------------------
# The parent's protocol, table and report: shared with bench/mamba.py


def parse_args(description, runs_help, budget, out_prefix="", quick_timeout=None):
    """The command line of a benchmark. Results go to bench/results/<out_prefix>latest.md
    (<out_prefix>quick.md with --quick); ``quick_timeout`` caps --timeout with --quick."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--runs", type=int, default=7, help=runs_help)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 run, 32-token prompt, 8 decode steps")
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens (default 128)")
    ap.add_argument("--decode", type=int, default=64, help="decode steps (default 64)")
    ap.add_argument("--only", help="regular expression over configuration ids (peers are not added)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per child process (default 60)")
    ap.add_argument("--budget", type=float, default=budget,
                    help=f"minutes: start no new run, and no child, past this (default {budget:g})")
    ap.add_argument("--out", help=f"markdown output (default bench/results/{out_prefix}latest.md; "
                                  f"{out_prefix}quick.md with --quick)")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.prompt, a.decode = 1, 32, 8
        if quick_timeout is not None:
            a.timeout = min(a.timeout, quick_timeout)
    if a.out is None:
        a.out = os.path.join(RESULTS, f"{out_prefix}quick.md" if a.quick else f"{out_prefix}latest.md")
    return a


class Runs:
    """What interleave() measured (results: configuration id -> one dict per run; bws: the read
    bandwidth at the start of every run and after the last) and the statistics over it."""

    def __init__(self, results, bws, bw_mib, stopped, lib_at_start, total_s):
        self.results, self.bws, self.bw_mib, self.stopped = results, bws, bw_mib, stopped
        self.lib_at_start, self.total_s = lib_at_start, total_s
        self.bw_run = [(bws[i] + bws[i + 1]) / 2 for i in range(len(bws) - 1)]  # around each run
        self.bw_med = med(bws)

    def per_run(self, cid, key):
        return [r.get(key) for r in self.results.get(cid, [])]

    def paired(self, cid, key, peer):
        """Median of the per-run ratios cid / peer."""
        out = []
        for x, y in zip(self.per_run(cid, key), self.per_run(peer, key)):
            if x is not None and y is not None and y > 0:
                out.append(x / y)
        return med(out)

    def roofline_ratio(self, c, bytes_per_token):
        """Median over the runs of decode tok/s ÷ (bandwidth around that run ÷ bytes_per_token(c))."""
        out = []
        for x, bw in zip(self.per_run(c["id"], "decode_tps"), self.bw_run):
            if x is not None:
                out.append(x / (bw * 1e9 / bytes_per_token(c)))
        return med(out)

    def mem(self, c):
        """Median RSS growth in bytes: after load + warm-up + prefill minus before loading."""
        out = []
        for r in self.results[c["id"]]:
            if "rss_kb" in r:
                out.append((r["rss_kb"] - r["rss_base_kb"]) * 1024)
        return med(out)

    def machine_info(self):
        info = machine_info()
        if info["lib"] != self.lib_at_start:
            info["lib"] = f"CHANGED during the run: {self.lib_at_start} at the start, {info['lib']} at the end"
        return info


def interleave(a, configs, t_start, logits_dir=None, spec=None, script=None, id_width=20, fail_prefix=""):
    """The protocol: a.runs runs, each a read-bandwidth measurement and then every configuration
    in its own child (run_worker; ``spec`` maps a configuration to what the child gets, ``script``
    is the child's file), one more bandwidth measurement after the last run; nothing new starts
    past t_start + a.budget minutes. Clears ``logits_dir`` (default LOGITS) first: run 1 saves its
    logits there. Sets a.runs to the runs done. Returns Runs."""
    bw_exe = build_bw()
    lib_at_start = library_info()
    shutil.rmtree(logits_dir or LOGITS, ignore_errors=True)  # this run's logits only
    bw_mib, bw_reps = (256, 3) if a.quick else (1024, 5)
    results = {c["id"]: [] for c in configs}
    bws = []
    deadline = t_start + a.budget * 60
    stopped = None
    for r in range(a.runs):
        if time.time() > deadline:
            stopped = f"stopped after {r} of {a.runs} runs: the --budget of {a.budget:g} min was spent"
            break
        bws.append(measure_bw(bw_exe, bw_mib, bw_reps))
        print(f"[run {r + 1}/{a.runs}] read bandwidth {bws[-1]:.1f} GB/s", file=sys.stderr, flush=True)
        for c in configs:
            left = deadline - time.time()
            if left < 5:
                stopped = f"run {r + 1} of {a.runs} cut short at {c['id']}: the --budget of {a.budget:g} min was spent"
                break
            res = run_worker(spec(c) if spec else c, a.prompt, a.decode, save=(r == 0), timeout=min(a.timeout, left),
                             script=script)
            results[c["id"]].append(res)
            msg = (fail_prefix + res["error"]) if "error" in res else (
                f"prefill {res['prefill_tps']:.1f} tok/s, decode {res['decode_tps']:.1f} tok/s, "
                f"warm-up {res['warm_s']:.1f} s, faults {res['faults_major_minor']}, "
                f"other processes {res['foreign_cores']:.2f} cores")
            print(f"[run {r + 1}/{a.runs}] {c['id']:<{id_width}} {msg} ({res['wall_s']:.1f} s)", file=sys.stderr,
                  flush=True)
        if stopped:
            break
    if stopped:
        print(f"note: {stopped}", file=sys.stderr)
    a.runs = len(bws)
    bws.append(measure_bw(bw_exe, bw_mib, bw_reps))
    print(f"[end] read bandwidth {bws[-1]:.1f} GB/s", file=sys.stderr, flush=True)
    return Runs(results, bws, bw_mib, stopped, lib_at_start, time.time() - t_start)


def table_rows(runs, configs, label, bytes_per_token, mem_expected, files):
    """The markdown table: a row per configuration; ``files`` names the memory yardstick
    (mem_expected(c), bytes) in the last column's head: "÷ files+<files>"."""
    rows = ["| configuration | prefill tok/s | decode tok/s | decode ÷ roofline | vs | prefill ÷ vs | decode ÷ vs "
            f"| RSS Δ MB | ÷ files+{files} |", "|" + "---|" * 9]
    for c in configs:
        peer = c["peer"] if c["peer"] in runs.results else None
        m = runs.mem(c)
        rr = runs.roofline_ratio(c, bytes_per_token)
        pp = runs.paired(c["id"], "prefill_tps", peer) if peer else None
        pd = runs.paired(c["id"], "decode_tps", peer) if peer else None
        rows.append("| " + " | ".join([
            label(c),
            fmt_spread(runs.per_run(c["id"], "prefill_tps")),
            fmt_spread(runs.per_run(c["id"], "decode_tps")),
            f"{rr * 100:.0f}%" if rr is not None else "—",
            label(next(x for x in configs if x["id"] == peer)) if peer else "",
            fmt(pp, 2) + "×" if pp else "",
            fmt(pd, 2) + "×" if pd else "",
            fmt(m / 1e6, 0) if m is not None else "—",
            f"{m / mem_expected(c):.2f}×" if m is not None else "—",
        ]) + " |")
    return rows


def report_head(title, started, info, a, runs, model_lines=()):
    """The report's title and the machine, libraries and run parameters (``model_lines`` after them)."""
    return [
        f"## {title} {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"{info['cpu']}, {info['cores']} cores, {info['mem_gib']} GiB, Linux {info['kernel']}; {THREADS} threads for "
        f"every engine; {a.runs} interleaved run(s), prompt {a.prompt} tokens, decode {a.decode} steps, n_ctx {N_CTX}; "
        f"total {runs.total_s / 60:.1f} min.",
        *model_lines,
        f"libloramixer: {info['lib']}; repository {info['git']}.",
        "Peers: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + "; environment: "
        + (", ".join(f"{k}={v}" for k, v in sorted(info["env"].items())) or "no OPENBLAS/OMP/MKL variables set") + ".",
        "Backends: " + "; ".join(f"{k}: {v}" for k, v in info["backends"].items()) + ".",
        "",
    ]


def bandwidth_text(runs):
    """The start of the bandwidth paragraph; the weight bytes per decode token follow it."""
    return (f"Read bandwidth ({THREADS} threads, bench/bw.c over {runs.bw_mib} MiB): median {runs.bw_med:.1f} GB/s "
            f"(per measurement: {', '.join(f'{x:.1f}' for x in runs.bws)}). Weight bytes read per decode token: ")


def figures_note(peer_when, files, files_what):
    """How to read the table: ``peer_when`` says when the "vs" row ran, files+``files`` = ``files_what``."""
    return ("Figures: median over the runs (min–max). Ratios (÷): median of the per-run ratios against the row named "
            f"under \"vs\" ({peer_when}); decode ÷ roofline uses the bandwidth measured around that run. "
            "RSS Δ: VmRSS after load + warm-up + the timed prefill minus VmRSS before loading (the library, "
            f"interpreter and imports already loaded); files+{files} = weight file + adapter files loaded + {files_what}. "
            "Differences under ~15% are noise on these machines.")


def top2_line(configs, results):
    """The learned routing's spread over the prompt (run 1 of the first top-2 row), or None."""
    top2 = [r.get("distinct_top2_sets_per_layer") for c in configs if c["adapters"] == "top2"
            for r in results[c["id"]][:1] if r.get("distinct_top2_sets_per_layer")]
    if not top2:
        return None
    return f"Learned top-2 routing over the prompt: distinct top-2 expert sets per layer (min/median/max over layers) {top2[0]}."


def report_tail(runs, failures_heading="Failures:"):
    """Page faults, busy machine, a stop for the budget and the failures."""
    results = runs.results
    majors = {cid: sum(r.get("faults_major_minor", [0, 0])[0] for r in rs) for cid, rs in results.items()}
    majors = {k: v for k, v in majors.items() if v}
    lines = ["Major page faults in the timed phases (disk reads, e.g. mapped weights paged out): "
             + (", ".join(f"{k} {v}" for k, v in majors.items()) if majors else "none") + "."]
    busy = [f"{cid} run {i + 1} ({r['foreign_cores']:.1f})" for cid, rs in results.items() for i, r in enumerate(rs)
            if r.get("foreign_cores", 0) > 0.25]
    lines += ["Runs during which other processes kept more than 0.25 core busy on average (their figures are in "
              "the medians; the min–max shows their effect): " + (", ".join(busy) if busy else "none") + "."]
    if runs.stopped:
        lines += ["", f"Note: {runs.stopped}."]
    errors = sorted({f"{cid}: {r['error']}" for cid, rs in results.items() for r in rs if "error" in r})
    if errors:
        lines += ["", failures_heading, ""] + [f"- {e}" for e in errors]
    return lines


def write_results(out, lines, record):
    """Prints the report ``lines``, writes them to ``out`` (markdown) and ``record`` next to it (.json)."""
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(record, f, indent=1)


def write_report(a, lines, started, runs, info, configs, **figures):
    """Prints the report, writes it to a.out and the raw figures (``figures`` among them) next to it (.json)."""
    args = dict(vars(a), out=os.path.relpath(os.path.abspath(a.out), REPO))  # no machine path in the record
    write_results(a.out, lines, dict(started=started.isoformat(), total_s=runs.total_s, args=args, machine=info,
                                     bandwidth_gbs=runs.bws, **figures, configs=configs, results=runs.results))
    print(f"written {os.path.relpath(a.out, REPO)} ({runs.total_s / 60:.1f} min)", file=sys.stderr)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2])
    a = parse_args("loramixer vs llama.cpp vs PyTorch+PEFT on the CPU (see bench/README.md)",
                   "interleaved runs (default 7, about 6 minutes)", budget=14, quick_timeout=60)
    for need in (os.path.join(F32_DIR, "model.safetensors"), os.path.join(BF16_DIR, "model.safetensors"), ROUTER):
        if not os.path.exists(need):
            raise SystemExit(f"missing {os.path.relpath(need, REPO)}: run bench/make_models.py first")
    configs = [c for c in CONFIGS if not a.only or re.search(a.only, c["id"])]
    missing_gguf = [p for p in list(GGUF.values()) + [GGUF_LORA] if not os.path.exists(p)]
    if missing_gguf and any(c["engine"] == "llama.cpp" for c in configs):
        print(f"note: {os.path.relpath(missing_gguf[0], REPO)} missing (run bench/make_gguf.py); llama.cpp rows will fail",
              file=sys.stderr)
    t_start = time.time()
    started = datetime.datetime.now(datetime.timezone.utc)
    runs = interleave(a, configs, t_start)
    results = runs.results

    wbytes = {"f32": weight_bytes_per_token(F32_DIR), "bf16": weight_bytes_per_token(BF16_DIR)}
    wbytes["f16"] = wbytes["bf16"]  # same tensors, two bytes each
    files = {"f32": os.path.getsize(os.path.join(F32_DIR, "model.safetensors")),
             "bf16": os.path.getsize(os.path.join(BF16_DIR, "model.safetensors"))}
    files["f16"] = os.path.getsize(GGUF["f16"]) if os.path.exists(GGUF["f16"]) else files["bf16"]
    if os.path.exists(GGUF["f32"]):
        files["gguf-f32"] = os.path.getsize(GGUF["f32"])
    e_bytes = expert_bytes("e0")
    kv = kv_bytes()

    def bytes_per_token(c):
        n = {"none": 0, "e0": 1, "top2": 2}[c["adapters"]]
        return wbytes[c["dtype"]][0] + n * e_bytes

    def mem_expected(c):
        wf = files["gguf-f32"] if c["engine"] == "llama.cpp" and c["dtype"] == "f32" and "gguf-f32" in files else files[c["dtype"]]
        ad = {"none": 0, "e0": e_bytes, "top2": 8 * e_bytes}[c["adapters"]]
        if c["engine"] == "loramixer" and c["adapters"] == "e0":
            ad = 8 * e_bytes  # the one-hot row loads all 8 experts
        return wf + kv + ad

    rows = table_rows(runs, configs, label, bytes_per_token, mem_expected, "KV")

    def target_value(cid, what, peer):
        c = next((x for x in configs if x["id"] == cid), None)
        if c is None or (peer and peer not in results):
            return None
        if what in ("decode", "prefill"):
            return runs.paired(cid, what + "_tps", peer)
        if what == "roofline":
            return runs.roofline_ratio(c, bytes_per_token)
        m = runs.mem(c)
        return m / mem_expected(c) if m is not None else None

    info = runs.machine_info()
    targets = []
    for cid, what, peer, bound, text in TARGETS:
        v = target_value(cid, what, peer)
        if v is None:
            continue
        ok = v <= bound if what == "memory" else v >= bound
        near = not ok and what != "memory" and v >= 0.85 * bound
        verdict = "met" if ok else "**not met**" + (" (within the ~15% noise)" if near else "")
        shown = f"{v * 100:.0f}%" if what == "roofline" else f"{v:.2f}×"
        targets.append(f"- {verdict}: {text} — {shown}")

    consistency = []
    if os.path.isdir(LOGITS):
        import numpy as np

        def load_logits(cid):
            p = os.path.join(LOGITS, cid + ".npy")
            return np.load(p) if os.path.exists(p) and cid in results else None

        for ref, others in (("torch-f32", ["lcpp-f32", "lmx-f32-mmap", "lmx-f32-copy"]),
                            ("torch-f32-peft", ["lcpp-f32-lora", "lmx-f32-mmap-e0"]),
                            ("lcpp-f16", ["lmx-bf16-mmap"])):
            rl = load_logits(ref)
            if rl is None:
                continue
            parts = []
            for o in others:
                ol = load_logits(o)
                if ol is not None and ol.shape == rl.shape:
                    parts.append(f"{o} {np.abs(ol - rl).max():.2g}" + ("" if ol.argmax() == rl.argmax() else " (argmax differs)"))
            if parts:
                note = " (bf16 and f16 round the weights differently)" if ref == "lcpp-f16" else ""
                consistency.append(f"vs {ref} (logit std {rl.std():.2f}): " + ", ".join(parts) + note)
    top2 = top2_line(configs, results)

    wb = wbytes["f32"]
    lines = report_head("Results", started, info, a, runs) + [
        bandwidth_text(runs)
        + f"{wb[0] / 1e6:.1f} MB f32 / {wbytes['bf16'][0] / 1e6:.1f} MB bf16-f16 = projections "
        f"(q,k,v,o,gate,up,down × {json.load(open(os.path.join(F32_DIR, 'config.json')))['num_hidden_layers']} layers, "
        f"{wb[1] / 1e6:.1f} MB f32) + tied LM head ({wb[2] / 1e6:.1f} MB f32), in the stored dtype; + {e_bytes / 1e6:.1f} MB "
        f"per applied LoRA expert. Roofline = bandwidth ÷ those bytes: {runs.bw_med * 1e9 / wb[0]:.1f} tok/s f32, "
        f"{runs.bw_med * 1e9 / wbytes['bf16'][0]:.1f} tok/s bf16/f16.",
        "",
    ] + rows + [
        "",
        figures_note("which ran next to it", "KV", f"KV cache for n_ctx {N_CTX} in f32 ({kv / 1e6:.1f} MB)"),
        "",
        "Targets:",
        "",
    ] + targets
    lines += [""]
    if consistency or top2:
        lines += ["Same model everywhere (max |logit difference| at the last prompt position, run 1): "
                  + "; ".join(consistency) + "."]
        if top2:
            lines += [top2]
    lines += report_tail(runs)
    write_report(a, lines, started, runs, info, configs,
                 weight_bytes_per_token={k: v[0] for k, v in wbytes.items()}, expert_bytes=e_bytes, kv_bytes=kv)


if __name__ == "__main__":
    main()
