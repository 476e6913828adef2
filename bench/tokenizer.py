#!/usr/bin/env python3
"""Tokenizer speed: loramixer's tokenizer.json reader against Hugging Face `tokenizers`, one thread.

    python bench/tokenizer.py               # 5 interleaved runs (about 2 minutes after the first build)
    python bench/tokenizer.py --runs 3 --no-build

Measures, in the same script run, on the same files:
- load: `Tokenizer.from_file(tokenizer.json)` against `Tokenizer(directory:)` (file read + JSON
  parse + vocabulary/merges tables), each timed --loads times in a fresh process, median;
- encode: `encode(text, add_special_tokens=False)` of a ~1 MiB mixed-language text (one call on the
  whole text, after one warm-up call), --encodes times, median, as MB/s (10^6 bytes of UTF-8 / s).
Each run starts one `tokenizers` child and one loramixer child, one after the other (A B A B ...);
ratios are medians of the per-run ratios. Both children get RAYON_NUM_THREADS=1 and
TOKENIZERS_PARALLELISM=false (`encode` of one text does not use threads anyway).

The tokenizer is a byte-level BPE trained here with `tokenizers` (Llama 3's pre-tokenizer: Split with
its regex, Isolated, then ByteLevel without regex; ByteLevel decoder) to 150,000 entries on 8 MiB of
text from bench/tokenizer_corpus.py; it is cached under bench/work/tokenizer-150k/ (git-ignored)
and retrained when the recipe changes. The 1 MiB text is drawn from the same generator with another
seed and written to a temporary folder. The loramixer side is bench/tokenizer_bench.swift, compiled
here with `swiftc -O` against the release build's LoRAMixer module and the objects `lmx` links; it
checks that its ids equal the ids `tokenizers` gave (the run fails if they do not).

Writes bench/results/tokenizer-latest.md (the table) and tokenizer-latest.json (raw figures).
"""

import argparse
import datetime
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import run as bench  # noqa: E402 - bench/run.py: machine description helpers
import tokenizer_corpus  # noqa: E402

REPO = bench.REPO
WORK = os.path.join(bench.WORK, "tokenizer-150k")
RESULTS = os.path.join(HERE, "results")
HARNESS_SRC = os.path.join(HERE, "tokenizer_bench.swift")
HARNESS = os.path.join(bench.WORK, "tokenizer_bench")
VOCAB = 150_000
TRAIN_MIB = 8
TRAIN_SEED = 7
TEXT_SEED = 1
RECIPE_VERSION = 1  # bump when the training recipe changes
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
          r"\s*[\r\n]+|\s+(?!\S)|\s+")
ONE_THREAD = dict(RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


def recipe_stamp():
    h = hashlib.sha256()
    for part in (open(os.path.join(HERE, "tokenizer_corpus.py"), "rb").read(),
                 f"{RECIPE_VERSION} {VOCAB} {TRAIN_MIB} {TRAIN_SEED} {LLAMA3}".encode()):
        h.update(part)
    return h.hexdigest()[:16]


def ensure_tokenizer(retrain=False):
    """bench/work/tokenizer-150k/tokenizer.json, trained once per recipe."""
    path = os.path.join(WORK, "tokenizer.json")
    stamp_path = os.path.join(WORK, "stamp")
    stamp = recipe_stamp()
    if not retrain and os.path.exists(path) and os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        return path
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    os.makedirs(WORK, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t = time.time()
    corpus = tokenizer_corpus.Corpus()
    tok.train_from_iterator(corpus.chunks(TRAIN_MIB << 20, TRAIN_SEED), trainer=trainer)
    print(f"trained a {tok.get_vocab_size()}-entry BPE on {TRAIN_MIB} MiB in {time.time() - t:.0f} s", file=sys.stderr)
    tok.save(path)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return path


def release_dir():
    return subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()


def build_harness(no_build=False):
    """`swift build -c release -Xcc -O3 --product lmx` (which builds the LoRAMixer module and its
    dependencies), then `swiftc -O` of bench/tokenizer_bench.swift against that module, linked with
    the objects lmx links minus lmx's own."""
    if not no_build:
        subprocess.run(["swift", "build", "-c", "release", "-Xcc", "-O3", "--product", "lmx"], cwd=REPO, check=True)
    rel = release_dir()
    with open(os.path.join(rel, "lmx.product", "Objects.LinkFileList")) as f:
        objects = [line.strip().strip("'\"") for line in f if line.strip()]
    objects = [o for o in objects if os.sep + "lmx.build" + os.sep not in o]
    module_maps = []
    for root, _, files in os.walk(rel):
        if root.count(os.sep) - rel.count(os.sep) > 1:
            continue
        module_maps += [os.path.join(root, n) for n in files if n == "module.modulemap"]
    cmd = ["swiftc", "-O", "-wmo", HARNESS_SRC, "-o", HARNESS, "-I", os.path.join(rel, "Modules"),
           "-I", os.path.join(REPO, "Sources", "CLoRAMixer")]
    for m in module_maps:
        cmd += ["-Xcc", "-fmodule-map-file=" + m]
    for inc in ("CKernels/include", ):
        cmd += ["-Xcc", "-I" + os.path.join(REPO, "Sources", inc)]
    cmd += objects + ["-lstdc++"]
    os.makedirs(os.path.dirname(HARNESS), exist_ok=True)
    newest = max(os.path.getmtime(p) for p in objects + [HARNESS_SRC])
    if not os.path.exists(HARNESS) or os.path.getmtime(HARNESS) < newest:
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("compiling the harness failed:\n" + " ".join(shlex.quote(c) for c in cmd) + "\n" + r.stderr)
    return HARNESS


def hf_worker(argv):
    """Child: load `loads` times, warm up, encode `encodes` times; ids to a file; JSON on stdout."""
    model_dir, text_path, ids_path, loads, encodes = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4])
    import tokenizers
    text = open(text_path, encoding="utf-8", newline="").read()
    path = os.path.join(model_dir, "tokenizer.json")
    load_ms = []
    for _ in range(loads):
        t = time.perf_counter()
        tok = tokenizers.Tokenizer.from_file(path)
        load_ms.append((time.perf_counter() - t) * 1000)
    ids = tok.encode(text, add_special_tokens=False).ids
    encode_s = []
    for _ in range(encodes):
        t = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        encode_s.append(time.perf_counter() - t)
    if ids_path != "-":
        import array
        a = array.array("i", ids)
        if sys.byteorder != "little":
            a.byteswap()
        with open(ids_path, "wb") as f:
            a.tofile(f)
    print(json.dumps(dict(load_ms=load_ms, encode_s=encode_s, tokens=len(ids), bytes=len(text.encode()))))


def child(cmd, timeout):
    env = dict(os.environ, **ONE_THREAD)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--hf-worker":
        return hf_worker(sys.argv[2:])
    p = argparse.ArgumentParser(description="loramixer's tokenizer against HF tokenizers (see bench/README.md)")
    p.add_argument("--runs", type=int, default=5, help="interleaved runs (default 5)")
    p.add_argument("--loads", type=int, default=5, help="loads timed per child (default 5)")
    p.add_argument("--encodes", type=int, default=5, help="encodes of the text timed per child (default 5)")
    p.add_argument("--mib", type=float, default=1.0, help="size of the text in MiB (default 1)")
    p.add_argument("--no-build", action="store_true", help="do not run swift build (use the release build as it is)")
    p.add_argument("--retrain", action="store_true", help="train the tokenizer again even if cached")
    p.add_argument("--timeout", type=float, default=300, help="seconds per child")
    p.add_argument("--out", default=os.path.join(RESULTS, "tokenizer-latest.md"))
    a = p.parse_args()

    import tokenizers
    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.time()
    tok_path = ensure_tokenizer(a.retrain)
    model_dir = os.path.dirname(tok_path)
    harness = build_harness(a.no_build)
    tj = json.load(open(tok_path, encoding="utf-8"))
    n_vocab, n_merges = len(tj["model"]["vocab"]), len(tj["model"]["merges"])
    file_mb = os.path.getsize(tok_path) / 1e6

    with tempfile.TemporaryDirectory(prefix="lmx-tokbench-") as tmp:
        text = tokenizer_corpus.Corpus().text(int(a.mib * (1 << 20)), TEXT_SEED)
        text_path = os.path.join(tmp, "text.txt")
        with open(text_path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        n_bytes = len(text.encode())
        ids_path = os.path.join(tmp, "hf-ids.bin")
        runs = []
        for run in range(a.runs):
            hf = child([sys.executable, os.path.abspath(__file__), "--hf-worker", model_dir, text_path,
                        ids_path if run == 0 else "-", str(a.loads), str(a.encodes)], a.timeout)
            lmx = child([harness, model_dir, text_path, ids_path, str(a.loads), str(a.encodes)], a.timeout)
            if not lmx["ids_equal"]:
                raise SystemExit(f"loramixer's ids differ from tokenizers' at index {lmx['first_mismatch']} "
                                 f"({lmx['tokens']} against {lmx['expected_tokens']} tokens): the benchmark is void")
            runs.append(dict(hf=hf, lmx=lmx))
            print(f"run {run + 1}/{a.runs}: load {statistics.median(hf['load_ms']):.1f} / "
                  f"{statistics.median(lmx['load_ms']):.1f} ms, encode {statistics.median(hf['encode_s']) * 1e3:.1f} / "
                  f"{statistics.median(lmx['encode_s']) * 1e3:.1f} ms (tokenizers / loramixer)", file=sys.stderr)

    med = statistics.median

    def per_run(side, key):
        return [med(r[side][key]) for r in runs]

    def spread(xs, nd=1):
        return f"{med(xs):.{nd}f} ({min(xs):.{nd}f}–{max(xs):.{nd}f})"

    hf_load, lmx_load = per_run("hf", "load_ms"), per_run("lmx", "load_ms")
    hf_mbs = [n_bytes / 1e6 / s for s in per_run("hf", "encode_s")]
    lmx_mbs = [n_bytes / 1e6 / s for s in per_run("lmx", "encode_s")]
    load_ratio = med([h / l for h, l in zip(hf_load, lmx_load)])  # > 1: loramixer loads faster
    enc_ratio = med([l / h for h, l in zip(hf_mbs, lmx_mbs)])     # > 1: loramixer encodes faster
    tokens = runs[0]["lmx"]["tokens"]
    info = bench.machine_info()
    flags = bench.cpu_flags()
    total = time.time() - t_start
    cmd = "python bench/tokenizer.py" + "".join(
        f" --{k} {v}" for k, v in (("runs", a.runs), ("loads", a.loads), ("encodes", a.encodes), ("mib", a.mib))
        if v != p.get_default(k))
    lines = [
        f"### Tokenizer {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"{info['cpu']}, {info['cores']} cores, {info['mem_gib']} GiB, Linux {info['kernel']}; CPU flags: {flags}; "
        f"one thread each; {a.runs} interleaved run(s), {a.loads} loads and {a.encodes} encodes (after one warm-up) "
        f"per child; total {total / 60:.1f} min. Command: `{cmd}`.",
        f"tokenizers {tokenizers.__version__} (Python {info['python']}); loramixer: bench/tokenizer_bench.swift, "
        f"`swiftc -O` against `swift build -c release -Xcc -O3`; repository {info['git']}.",
        f"Tokenizer: byte-level BPE, Llama 3 pre-tokenizer, {n_vocab:,} vocabulary entries, {n_merges:,} merges, "
        f"tokenizer.json {file_mb:.1f} MB. Text: {n_bytes / 1e6:.2f} MB of mixed-language UTF-8 "
        f"({len(text):,} characters) → {tokens:,} tokens, the same ids from both.",
        "",
        "| | tokenizers | loramixer | ratio |",
        "|---|---|---|---|",
        f"| load tokenizer.json, ms | {spread(hf_load)} | {spread(lmx_load)} | {load_ratio:.2f}× faster |",
        f"| encode 1 MiB, MB/s | {spread(hf_mbs, 2)} | {spread(lmx_mbs, 2)} | {enc_ratio:.2f}× |",
        "",
        "Figures: median over the runs of each child's median (min–max over the runs). Ratios: median of the "
        "per-run ratios (tokenizers load time ÷ loramixer load time; loramixer MB/s ÷ tokenizers MB/s).",
        "",
        "Targets:",
        "",
        f"- {'met' if enc_ratio >= 1.0 else 'NOT met'}: encode throughput ≥ 1.0× tokenizers (one thread) — {enc_ratio:.2f}×",
        f"- {'met' if med(lmx_load) <= 100 else 'NOT met'}: load of the {n_vocab // 1000}k-entry vocabulary ≤ 100 ms — "
        f"{med(lmx_load):.1f} ms",
    ]
    bench.write_results(a.out, lines, dict(
        started=started.isoformat(), total_s=total, command=cmd, cpu=info["cpu"], cores=info["cores"], cpu_flags=flags,
        tokenizers=tokenizers.__version__, git=info["git"], vocab=n_vocab, merges=n_merges, text_bytes=n_bytes,
        tokens=tokens, runs=runs))
    print(f"written {os.path.relpath(os.path.abspath(a.out), REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
