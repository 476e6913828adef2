"""End-to-end tests of `lmx train`: the router and joint regimes, the report, resumable
checkpoints that survive SIGKILL at any moment, Ctrl-C, determinism and usage errors.

Uses the binary, fixtures and helpers of test_cli.py ($LMX_BIN, default .build/debug/lmx).
Run from the repository root:

    LMX_BIN=.build/release/lmx python3 -m pytest -q Tests/cli
"""

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from test_cli import (FIXTURES, ROOT, USAGE_ERROR, expert_args, lmx, lmx_path,  # noqa: F401 (lmx: the fixture)
                      load_npy_checked, read_safetensors)

F = FIXTURES / "llama_f32"
FIXTURE_EXPERTS = ["e0", "e1", "e2"]
TINY = ROOT / "models" / "tiny-llama"
# A temporary file of an atomic write: .NAME.tmp-PID-RANDOM next to NAME.
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<random>\d+)$")
PROGRESS = re.compile(r"step (\d+)/(\d+)\s.*\s(\d+) tok/s\s+ETA (\d+h\d\dm|\d+m\d\ds|\d+s)$")
STEP_KEYS = {"step", "epoch", "routing", "loss", "ce", "balance", "entropy_term", "preserve", "lr", "grad_norm",
             "tokens_per_s", "expert_load", "layer_entropy"}


# --- data and arguments --------------------------------------------------------------------------

def write_jsonl(path, rows):
    Path(path).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def token_rows(count, seed, tasks=FIXTURE_EXPERTS, vocab=128):
    """Examples for the llama_f32 fixture (vocab 128, no tokenizer): token ids, cycling task labels."""
    rng = random.Random(seed)
    return [{"prompt_tokens": [rng.randrange(vocab) for _ in range(rng.randint(2, 6))],
             "completion_tokens": [rng.randrange(vocab) for _ in range(rng.randint(1, 4))],
             "task": tasks[i % len(tasks)]} for i in range(count)]


def text_rows(count):
    """Byte-level text examples for models/tiny-llama, tasks a (sums) and b (reversals)."""
    rows = []
    for i in range(count):
        if i % 2 == 0:
            rows.append({"prompt": f"{i}+{i + 1}=", "completion": str(2 * i + 1), "task": "a"})
        else:
            word = "".join(chr(97 + (i * k) % 26) for k in range(1, 5))
            rows.append({"prompt": f"rev {word}:", "completion": word[::-1], "task": "b"})
    return rows


def fixture_train_args(data, out, *extra, regime="router"):
    return ["train", "--model", F, *expert_args("llama_f32"), "--data", data, "--regime", regime, "--out", out, *extra]


def report_of(out):
    return json.loads((Path(out) / "report.json").read_text())


def safetensors_checked(path):
    """Header and tensors of a safetensors file, checking that it is whole: the data section ends
    exactly where the last tensor does, every tensor is inside it, every float is finite."""
    data = Path(path).read_bytes()
    assert len(data) >= 8, f"{path}: {len(data)} bytes"
    length = int.from_bytes(data[:8], "little")
    assert 8 + length <= len(data), f"{path}: {len(data)} bytes, shorter than its {length}-byte header"
    header = json.loads(data[8:8 + length])
    ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    assert len(data) == 8 + length + max(ends, default=0), f"{path}: {len(data)} bytes, header says {8 + length + max(ends)}"
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        assert entry["dtype"] == "F32" and end - start == 4 * int(np.prod(entry["shape"])), (path, name)
        assert np.all(np.isfinite(np.frombuffer(data[8 + length + start:8 + length + end], dtype="<f4"))), (path, name)
    return header


def checkpoint_step(out):
    """The step of OUT's checkpoint, or None while there is none (reads one whole version)."""
    try:
        header = safetensors_checked(Path(out) / "checkpoint" / "state.safetensors")
    except FileNotFoundError:
        return None
    assert header["__metadata__"]["format"] == "loramixer.checkpoint"
    return int(header["__metadata__"]["step"])


def table_rows(stdout, header):
    """The rows of the report table whose header line's first cell is HEADER, up to a blank line."""
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.split()[:1] == [header]]
    assert len(starts) == 1, f"no single '{header}' table in:\n{stdout}"
    rows = []
    for line in lines[starts[0] + 1:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def progress_steps(stderr, total):
    steps = []
    for line in stderr.splitlines():
        match = PROGRESS.search(line)
        assert match, f"not a progress line: {line!r}"
        assert int(match.group(2)) == total
        steps.append(int(match.group(1)))
    return steps


# --- router regime -------------------------------------------------------------------------------

def test_train_router_regime(lmx, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", token_rows(24, seed=1))
    eval_rows = token_rows(6, seed=2) + [{"tokens": [5, 6, 7, 8]}]  # e0, e1, e2 twice each, one unlabelled
    evaluation = write_jsonl(tmp_path / "eval.jsonl", eval_rows)
    out = tmp_path / "out"
    result = lmx(*fixture_train_args(data, out, "--eval", evaluation, "--steps", 6, "--batch-size", 4,
                                     "--threads", 1, "--checkpoint-every", 4, "--eval-max-tokens", 3))

    # stderr: one progress line per step (stderr is not a terminal), each with tok/s and ETA.
    assert progress_steps(result.stderr, 6) == [1, 2, 3, 4, 5, 6]

    # stdout: the report tables.
    out_text = result.stdout
    assert re.search(r"^steps 1-6 of 6 in [\d.]+ s, \d+ tokens/s$", out_text, re.M), out_text
    header = [line for line in out_text.splitlines() if line.split()[:2] == ["loss", "ce"]]
    assert len(header) == 1 and header[0].split() == ["loss", "ce", "balance", "entropy", "preserve", "lr", "grad", "norm"]
    first = next(line.split() for line in out_text.splitlines() if line.startswith("first "))
    last = next(line.split() for line in out_text.splitlines() if line.startswith("last "))
    loads = table_rows(out_text, "expert")
    assert [row[0] for row in loads] == FIXTURE_EXPERTS
    assert abs(sum(float(row[1]) for row in loads) - 1) <= 2e-3
    entropies = table_rows(out_text, "layer")
    assert [row[0] for row in entropies] == ["0", "1"]
    assert all(0 <= float(row[1]) <= np.log(3) + 1e-3 for row in entropies)
    tasks = table_rows(out_text, "task")
    assert [(row[0], int(row[1])) for row in tasks] == [("(none)", 1), ("e0", 2), ("e1", 2), ("e2", 2)]
    assert all(float(row[2]) > 0 and 0 <= float(row[3]) <= 1 for row in tasks)
    assert re.search(r"^wrote: router\.safetensors, checkpoint/state\.safetensors, report\.json$", out_text, re.M)

    # report.json: every step's terms, per-task evaluation; the printed table agrees with it.
    report = report_of(out)
    assert report["format"] == "loramixer.training_report" and report["regime"] == "router"
    assert report["experts"] == FIXTURE_EXPERTS and report["layers"] == 2
    assert report["total_steps"] == report["completed_steps"] == 6 and report["resumed_from_step"] is None
    assert [s["step"] for s in report["steps"]] == [1, 2, 3, 4, 5, 6]
    for s in report["steps"]:
        assert STEP_KEYS <= set(s), set(s)
        assert all(np.isfinite(s[key]) for key in ["loss", "ce", "balance", "entropy_term", "preserve"])
        assert abs(s["loss"] - (s["ce"] + s["balance"] + s["entropy_term"] + s["preserve"])) <= 1e-4
        assert s["preserve"] == 0 and s["routing"] == "topk"
        assert len(s["expert_load"]) == 3 and abs(sum(s["expert_load"]) - 1) <= 1e-4
        assert len(s["layer_entropy"]) == 2
    assert first[1:3] == [f"{report['steps'][0]['loss']:.4f}", f"{report['steps'][0]['ce']:.4f}"]
    assert last[1:3] == [f"{report['steps'][-1]['loss']:.4f}", f"{report['steps'][-1]['ce']:.4f}"]
    assert [(t["task"], t["examples"]) for t in report["evaluation"]] == [("(none)", 1), ("e0", 2), ("e1", 2), ("e2", 2)]
    assert all(set(t) == {"task", "examples", "ce", "exact_match"} for t in report["evaluation"])
    assert report["files"] == ["router.safetensors", "checkpoint/state.safetensors", "report.json"]

    # The files: a router lmx reads, a final checkpoint, no expert folders (experts are frozen).
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["checkpoint/state.safetensors", "report.json", "router.safetensors"]
    assert checkpoint_step(out) == 6
    safetensors_checked(out / "router.safetensors")
    inspected = json.loads(lmx("inspect", "--json", out / "router.safetensors").stdout)
    assert inspected["kind"] == "router" and inspected["experts"] == FIXTURE_EXPERTS
    assert inspected["top_k"] == 2 and inspected["temperature"] == 1.0 and inspected["input"] == "token"
    assert inspected["layers"] == 2 and inspected["d_model"] == 64
    logits = tmp_path / "logits.npy"
    lmx("logits", "--model", F, *expert_args("llama_f32"), "--router", out / "router.safetensors",
        "--tokens", "1,2,3,4,5", "--out", logits)
    got = load_npy_checked(logits)
    assert got.shape == (5, 128) and np.all(np.isfinite(got))
    generated = lmx("run", "--model", F, *expert_args("llama_f32"), "--router", out / "router.safetensors",
                    "--prompt-tokens", "1,2,3", "--max-tokens", 3).stdout.strip().split(",")
    assert len(generated) == 3


def test_train_router_from_existing_router_keeps_its_settings(lmx, tmp_path):
    """--router FILE starts from that router (context input, experts e2, e0, e1, temperature 0.7):
    the trained router keeps its input and settings, rows in the mixer's expert order."""
    data = write_jsonl(tmp_path / "train.jsonl", token_rows(8, seed=3))
    out = tmp_path / "out"
    lmx(*fixture_train_args(data, out, "--router", F / "router_context.safetensors", "--steps", 2, "--batch-size", 4,
                            "--threads", 1, "--quiet"))
    inspected = json.loads(lmx("inspect", "--json", out / "router.safetensors").stdout)
    assert inspected["input"] == "context" and inspected["temperature"] == 0.7 and inspected["top_k"] == 2
    assert inspected["experts"] == FIXTURE_EXPERTS
    assert {"bias", "weight", "context_weight"} == set(inspected["layer_tensors"][0]["tensors"])


# --- joint regime, new experts, label routing, bundled model -----------------------------------------

def test_train_joint_new_experts_label_routing_bundled_model(lmx, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", text_rows(12))
    evaluation = write_jsonl(tmp_path / "eval.jsonl", text_rows(4))
    out = tmp_path / "out"
    result = lmx("train", "--model", TINY, "--new-expert", "a", "--new-expert", "b", "--routing", "label",
                 "--regime", "joint", "--data", data, "--eval", evaluation, "--out", out, "--steps", 4,
                 "--batch-size", 4, "--lr", "0.01", "--lora-rank", 4, "--lora-alpha", 8,
                 "--target-modules", "q_proj,v_proj,down_proj", "--threads", 2, "--eval-max-tokens", 4)
    assert progress_steps(result.stderr, 4) == [1, 2, 3, 4]
    assert [(row[0], int(row[1])) for row in table_rows(result.stdout, "task")] == [("a", 2), ("b", 2)]
    report = report_of(out)
    assert report["regime"] == "joint" and report["routing"] == "label" and report["experts"] == ["a", "b"]
    assert all(s["routing"] == "label" for s in report["steps"])
    # Label routing trains the experts only: no router is made or written.
    assert report["files"] == ["experts/a", "experts/b", "checkpoint/state.safetensors", "report.json"]
    assert not (out / "router.safetensors").exists()

    for name in ["a", "b"]:
        folder = out / "experts" / name
        assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA" and config["r"] == 4 and config["lora_alpha"] == 8
        header = safetensors_checked(folder / "adapter_model.safetensors")
        assert len([k for k in header if k != "__metadata__"]) == 4 * 3 * 2  # 4 layers x 3 modules x (A, B)
        inspected = json.loads(lmx("inspect", "--json", folder).stdout)
        assert inspected["kind"] == "PEFT adapter" and inspected["loramixer_can_load"] == "yes"
        assert sorted(inspected["adapted_modules"]) == ["down_proj", "q_proj", "v_proj"]
        assert inspected["adapted_layers"] == [0, 1, 2, 3]
        assert all(m["scales"] == [2.0] for m in inspected["modules"])
    # Trained: B is no longer the zero it started as, so each expert changes the model's logits.
    tensors = read_safetensors(out / "experts" / "a" / "adapter_model.safetensors")
    assert any(np.any(v != 0) for k, v in tensors.items() if "lora_B" in k)
    prompt = ",".join(str(b) for b in b"3+4=")
    base, with_a = tmp_path / "base.npy", tmp_path / "a.npy"
    lmx("logits", "--model", TINY, "--tokens", prompt, "--out", base)
    lmx("logits", "--model", TINY, "--expert", f"a={out / 'experts' / 'a'}", "--tokens", prompt, "--out", with_a)
    assert np.max(np.abs(load_npy_checked(with_a) - load_npy_checked(base))) > 1e-6

    # lmx run loads both written experts.
    generated = lmx("run", "--model", TINY, "--expert", f"a={out / 'experts' / 'a'}", "--expert", f"b={out / 'experts' / 'b'}",
                    "--fixed", "a=1", "--prompt-tokens", prompt, "--max-tokens", 4).stdout.strip().split(",")
    assert len(generated) == 4 and all(0 <= int(t) < 256 for t in generated)


def test_train_joint_bundled_experts_text_data(lmx, tmp_path):
    """The bundled experts and router, joint regime, topk routing, with L_preserve on one expert."""
    rows = [dict(row, task=["math", "strings", "lookup"][i % 3]) for i, row in enumerate(text_rows(9))]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "out"
    experts = [arg for name in ["math", "strings", "lookup"] for arg in ["--expert", f"{name}={ROOT / 'models' / 'experts' / name}"]]
    lmx("train", "--model", TINY, *experts, "--router", ROOT / "models" / "router.safetensors", "--regime", "joint",
        "--data", data, "--out", out, "--steps", 3, "--batch-size", 3, "--beta", "0.5", "--sensitive", "math",
        "--threads", 2, "--quiet")
    report = report_of(out)
    assert report["files"] == ["router.safetensors", "experts/math", "experts/strings", "experts/lookup",
                               "checkpoint/state.safetensors", "report.json"]
    assert report["steps"][0]["preserve"] == 0 and report["steps"][-1]["preserve"] > 0
    args = [arg for name in ["math", "strings", "lookup"] for arg in ["--expert", f"{name}={out / 'experts' / name}"]]
    generated = lmx("run", "--model", TINY, *args, "--router", out / "router.safetensors",
                    "--prompt-tokens", "72,105", "--max-tokens", 3).stdout.strip().split(",")
    assert len(generated) == 3


# --- SIGKILL at random moments, then every file loads and --resume continues ----------------------

def verify_outputs(lmx, out, tmp_path, experts, killed_pids):
    """Every output file is whole and loads; leftovers are only temporary files of killed runs."""
    real = {"router.safetensors", "report.json", "checkpoint/state.safetensors"}
    real |= {f"experts/{name}/{file}" for name in experts for file in ["adapter_config.json", "adapter_model.safetensors"]}
    leftovers = set()
    for path in out.rglob("*"):
        if path.is_dir():
            continue
        relative = path.relative_to(out).as_posix()
        if relative in real:
            continue
        match = TEMPORARY.match(path.name)
        assert match, f"unexpected file {relative}"
        assert (path.parent / match.group("name")).relative_to(out).as_posix() in real, relative
        assert int(match.group("pid")) in killed_pids, relative
        leftovers.add(relative)
    for relative in sorted(real):
        assert (out / relative).is_file(), f"{relative} is missing"

    step = checkpoint_step(out)
    assert step is not None and step > 0
    report = report_of(out)
    # Order of a save: router, experts, report.json, then the checkpoint; a kill in between leaves
    # the report one step ahead of the checkpoint, never behind.
    assert report["completed_steps"] in (step, step + 1), (report["completed_steps"], step)
    if report["steps"]:
        assert report["steps"][-1]["step"] == report["completed_steps"]
    router = json.loads(lmx("inspect", "--json", out / "router.safetensors").stdout)
    assert router["kind"] == "router" and router["experts"] == experts
    safetensors_checked(out / "router.safetensors")
    for name in experts:
        folder = out / "experts" / name
        json.loads((folder / "adapter_config.json").read_text())
        safetensors_checked(folder / "adapter_model.safetensors")
        assert json.loads(lmx("inspect", "--json", folder).stdout)["loramixer_can_load"] == "yes"
    lmx("inspect", out / "checkpoint" / "state.safetensors")
    logits = tmp_path / "kill-logits.npy"
    lmx("logits", "--model", F, *[a for n in experts for a in ["--expert", f"{n}={out / 'experts' / n}"]],
        "--router", out / "router.safetensors", "--tokens", "3,1,4,1,5", "--out", logits)
    assert np.all(np.isfinite(load_npy_checked(logits)))
    return step, leftovers


def test_train_survives_sigkill_mid_save_then_resumes(lmx, tmp_path):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    data = write_jsonl(tmp_path / "train.jsonl", token_rows(24, seed=1))
    out = tmp_path / "out"
    # Joint regime, a checkpoint every step: router, three PEFT folders, report and checkpoint are
    # rewritten every step, so most of the run is spent saving and a kill usually lands mid-save.
    # Many steps, so that even where saving is fast the kills come before the end.
    total = 3000
    args = fixture_train_args(data, out, "--steps", total, "--batch-size", 2, "--threads", 1, "--quiet", regime="joint")
    command = [str(lmx_path()), *map(str, args), "--checkpoint-every", "1"]
    killed, steps, leftovers = [], [], set()
    for round_ in range(8):
        before = checkpoint_step(out)
        process = subprocess.Popen(command + (["--resume"] if round_ else []), cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while process.poll() is None and (checkpoint_step(out) or 0) <= (before or 0):  # this run's first checkpoint
                assert time.monotonic() < deadline, "no checkpoint after 60 s"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.05, 0.6))
            assert process.poll() is None, f"round {round_ + 1}: the run ended before the kill ({process.returncode})"
            process.kill()
        finally:
            if process.poll() is None:
                process.kill()
            stderr = process.communicate()[1].decode()
        assert process.returncode == -signal.SIGKILL, (process.returncode, stderr, f"seed {seed}")
        killed.append(process.pid)
        step, left = verify_outputs(lmx, out, tmp_path, FIXTURE_EXPERTS, killed)
        assert before is None or step >= before, f"the checkpoint went back from {before} to {step} (seed {seed})"
        steps.append(step)
        leftovers |= left
    assert steps[-1] < total

    # --resume runs to the end from the last checkpoint. The checkpoint interval is not part of the
    # run (the fingerprint leaves it out), so the last round saves only at the end, which keeps its
    # time independent of how slow fsync is here.
    result = lmx(*args, "--resume")
    report = report_of(out)
    assert report["completed_steps"] == total and report["resumed_from_step"] == steps[-1]
    # The report keeps the steps of every segment of the run, resumed or not.
    assert [s["step"] for s in report["steps"]] == list(range(1, total + 1))
    assert result.stdout.startswith(f"steps {steps[-1] + 1}-{total} of {total} ")
    verify_outputs(lmx, out, tmp_path, FIXTURE_EXPERTS, killed)
    assert checkpoint_step(out) == total

    # ... and ends exactly where an uninterrupted run does.
    reference = tmp_path / "reference"
    lmx(*fixture_train_args(data, reference, "--steps", total, "--batch-size", 2, "--threads", 1, "--quiet", regime="joint"))
    for relative in ["router.safetensors"] + [f"experts/{n}/{f}" for n in FIXTURE_EXPERTS
                                              for f in ["adapter_model.safetensors", "adapter_config.json"]]:
        assert (out / relative).read_bytes() == (reference / relative).read_bytes(), f"{relative} (seed {seed}, kills at {steps})"
    print(f"seed {seed}: checkpoints at the kills {steps}, {len(leftovers)} temporary files left by kills: {sorted(leftovers)}")


# --- Ctrl-C ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_train_interrupt_checkpoints_then_resume_completes(lmx, tmp_path, signum):
    data = write_jsonl(tmp_path / "train.jsonl", token_rows(24, seed=1))
    out = tmp_path / "out"
    args = fixture_train_args(data, out, "--steps", 300, "--batch-size", 2, "--threads", 1, regime="joint")
    # A checkpoint every step slows the run down enough to interrupt it reliably.
    process = subprocess.Popen([str(lmx_path()), *map(str, args), "--checkpoint-every", "1", "--quiet"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and checkpoint_step(out) is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(0.1)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode > 0, (process.returncode, stderr)
    assert stdout == ""
    match = re.fullmatch(rf"lmx: error: training cancelled after step (\d+) of 300; checkpoint saved in "
                         rf"{re.escape(str(out))} \(resume to continue\)\n", stderr)
    assert match, stderr
    stopped = int(match.group(1))
    assert 0 < stopped < 300 and checkpoint_step(out) == stopped
    assert report_of(out)["completed_steps"] == stopped
    verify_outputs(lmx, out, tmp_path, FIXTURE_EXPERTS, [])

    # Resumed (here without the per-step checkpoints: the interval is not part of the run).
    result = lmx(*args, "--resume")
    lines = result.stderr.splitlines()
    assert lines[0] == f"resuming at step {stopped} of 300", result.stderr
    resumed_steps = progress_steps("\n".join(lines[1:]), 300)
    assert resumed_steps[-1] == 300 and all(stopped < step <= 300 for step in resumed_steps)
    assert result.stdout.startswith(f"steps {stopped + 1}-300 of 300 ")
    report = report_of(out)
    assert report["resumed_from_step"] == stopped > 0 and report["completed_steps"] == 300
    reference = tmp_path / "reference"
    lmx(*fixture_train_args(data, reference, "--steps", 300, "--batch-size", 2, "--threads", 1, "--quiet", regime="joint"))
    for relative in ["router.safetensors", "experts/e0/adapter_model.safetensors", "experts/e1/adapter_model.safetensors",
                     "experts/e2/adapter_model.safetensors"]:
        assert (out / relative).read_bytes() == (reference / relative).read_bytes(), relative


def test_train_resume_without_a_checkpoint_starts_from_the_beginning(lmx, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", token_rows(12, seed=4))
    fresh = tmp_path / "fresh"
    result = lmx(*fixture_train_args(data, fresh, "--steps", 4, "--batch-size", 3, "--threads", 1, "--resume"))
    assert report_of(fresh)["resumed_from_step"] is None
    assert progress_steps(result.stderr, 4) == [1, 2, 3, 4]


# --- determinism ---------------------------------------------------------------------------------

def test_train_is_deterministic(lmx, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", token_rows(20, seed=5))
    outs = [tmp_path / "first", tmp_path / "second"]
    for out in outs:
        lmx(*fixture_train_args(data, out, "--steps", 8, "--batch-size", 4, "--threads", 2, "--routing", "soft",
                                "--lambda", "0.05", "--seed", 3, "--quiet"))
    assert (outs[0] / "router.safetensors").read_bytes() == (outs[1] / "router.safetensors").read_bytes()
    first, second = report_of(outs[0]), report_of(outs[1])
    for a, b in zip(first["steps"], second["steps"]):
        timing = {"tokens_per_s", "elapsed_s"}
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    # A different seed is a different data order: a different router.
    other = tmp_path / "other"
    lmx(*fixture_train_args(data, other, "--steps", 8, "--batch-size", 4, "--threads", 2, "--routing", "soft",
                            "--lambda", "0.05", "--seed", 4, "--quiet"))
    assert (other / "router.safetensors").read_bytes() != (outs[0] / "router.safetensors").read_bytes()


# --- errors --------------------------------------------------------------------------------------

BASE = ["train", "--model", F, *expert_args("llama_f32")]
USAGE_CASES = {
    # name: (exit code, arguments as a function of (data file, output folder, temporary folder), what the message says)
    "missing --data": (USAGE_ERROR, lambda d, o, t: [*BASE, "--regime", "router", "--out", o], "--data"),
    "missing --regime": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--out", o], "--regime"),
    "missing --out": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--regime", "router"], "--out"),
    "--regime bogus": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--regime", "bogus", "--out", o], "'bogus'"),
    "--routing bogus": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--regime", "router", "--routing", "bogus",
                                                      "--out", o], "'bogus'"),
    "--router-input bogus": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--regime", "router", "--router-input", "x",
                                                           "--out", o], "'x'"),
    "--new-expert with --regime router": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--regime", "router",
                                                                        "--new-expert", "z", "--out", o], "--regime joint"),
    "--beta with --regime router": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--regime", "router", "--beta", "0.1",
                                                                  "--out", o], "--beta"),
    "no experts": (USAGE_ERROR, lambda d, o, t: ["train", "--model", F, "--data", d, "--regime", "router", "--out", o],
                   "--expert"),
    "--soft-steps without topk": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--regime", "router", "--routing", "soft",
                                                                "--soft-steps", "2", "--out", o], "--soft-steps needs --routing topk"),
    "--batch-size 0": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--regime", "router", "--batch-size", "0",
                                                     "--out", o], "--batch-size 0 must be in 1...65536"),
    "--lr 0": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--regime", "router", "--lr", "0", "--out", o],
               "--lr 0.0 must be"),
    "--target-modules unknown": (USAGE_ERROR, lambda d, o, t: ["train", "--model", F, "--new-expert", "z", "--data", d,
                                                               "--regime", "joint", "--target-modules", "q_proj,nope",
                                                               "--out", o], "'nope'"),
    "--top-k above the experts": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--regime", "router", "--top-k", "4",
                                                                "--out", o], "--top-k 4 must be in 1...3"),
    "--sensitive unknown": (USAGE_ERROR, lambda d, o, t: [*BASE, "--data", d, "--regime", "joint", "--sensitive", "zz", "--out", o],
                            "'zz'"),
    "missing --data file": (1, lambda d, o, t: [*BASE, "--data", t / "nope.jsonl", "--regime", "router", "--out", o],
                            "nope.jsonl does not exist"),
    "missing --eval file": (1, lambda d, o, t: [*BASE, "--data", d, "--eval", t / "nope.jsonl", "--regime", "router",
                                                "--out", o], "nope.jsonl does not exist"),
    "label routing, task names no expert": (1, lambda d, o, t: [
        *BASE, "--data", write_jsonl(t / "labels.jsonl", token_rows(3, 7, ["e0", "e9"])), "--regime", "joint",
        "--routing", "label", "--out", o], "'e9'"),
}
KNOWN_WRONG = {}


def assert_one_error_line(result, code, fact=None):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("lmx: error: ") and result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    if fact is not None:
        assert fact in result.stderr, result.stderr


@pytest.mark.parametrize("case", [
    pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[name])] if name in KNOWN_WRONG else [])
    for name in USAGE_CASES
])
def test_train_errors(lmx, tmp_path, case):
    code, args, fact = USAGE_CASES[case]
    data = write_jsonl(tmp_path / "good.jsonl", token_rows(6, seed=6))
    assert_one_error_line(lmx(*args(data, tmp_path / "out", tmp_path), check=False), code, fact)
    assert not (tmp_path / "out").exists(), "an invalid run wrote output"


BAD_LINES = {
    # name: (bad line, what the message says)
    "invalid JSON": ('{"prompt_tokens": [1, 2], "completion_tokens": [3]', "invalid JSON"),
    "not an object": ("[1, 2, 3]", "JSON object"),
    "token id >= vocab": ('{"prompt_tokens": [1, 2], "completion_tokens": [128]}', "128"),
    "negative token id": ('{"tokens": [1, -2, 3]}', "-2"),
    "text on a vocab-128 model": ('{"prompt": "ab", "completion": "c"}', "token ids"),
    "no known fields": ('{"input": [1, 2]}', "expected"),
    "one token": ('{"tokens": [7]}', "2 tokens"),
    "empty completion": ('{"prompt_tokens": [1], "completion_tokens": []}', "non-empty"),
    "both forms": ('{"tokens": [1, 2], "prompt_tokens": [1], "completion_tokens": [2]}', "not both"),
    "task not a string": ('{"tokens": [1, 2], "task": 3}', "task"),
    "longer than the context": (json.dumps({"tokens": [1] * 65}), "65 tokens"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
@pytest.mark.parametrize("which", ["--data", "--eval"])
def test_train_bad_data_line_names_file_and_line(lmx, tmp_path, case, which):
    line, fact = BAD_LINES[case]
    good = [json.dumps(row) for row in token_rows(3, seed=8)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([good[0], "", good[1], line, good[2]]) + "\n")  # line 4 (blank lines count)
    data = bad if which == "--data" else write_jsonl(tmp_path / "good.jsonl", token_rows(3, seed=9))
    extra = ["--eval", bad] if which == "--eval" else []
    result = lmx(*fixture_train_args(data, tmp_path / "out", *extra), check=False)
    assert_one_error_line(result, 1, fact)
    assert result.stderr.startswith(f"lmx: error: {bad}:4: "), result.stderr
    assert not (tmp_path / "out").exists()


def test_train_resume_of_a_different_run_is_refused(lmx, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", token_rows(12, seed=10))
    out = tmp_path / "out"
    lmx(*fixture_train_args(data, out, "--steps", 3, "--batch-size", 4, "--threads", 1, "--quiet"))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    other_data = write_jsonl(tmp_path / "other.jsonl", token_rows(12, seed=11))
    for args in [fixture_train_args(data, out, "--steps", 3, "--batch-size", 4, "--lr", "0.01"),  # other options
                 fixture_train_args(other_data, out, "--steps", 3, "--batch-size", 4),  # other data
                 fixture_train_args(data, out, "--steps", 3, "--batch-size", 4, regime="joint"),  # other regime
                 ["train", "--model", F, "--expert", f"e0={F / 'adapters' / 'e0'}", "--expert", f"e1={F / 'adapters' / 'e1'}",
                  "--data", data, "--regime", "router", "--out", out, "--steps", 3, "--batch-size", 4]]:  # other experts
        assert_one_error_line(lmx(*args, "--threads", 1, "--resume", check=False), 1, "different run")
    # Nothing was touched.
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # The same run with other threads / checkpoint interval / quietness is the same run.
    lmx(*fixture_train_args(data, out, "--steps", 3, "--batch-size", 4, "--threads", 2, "--checkpoint-every", 1,
                            "--resume"))


def test_train_unwritable_out_fails_before_training(lmx, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", token_rows(12, seed=12))
    (tmp_path / "file").write_text("")
    result = lmx(*fixture_train_args(data, tmp_path / "file" / "out", "--steps", 3, "--batch-size", 4, "--threads", 1),
                 check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("lmx: error: ")
    assert "step 1/3" not in result.stderr, "the output folder must be checked before training"
    assert_one_error_line(result, 1, str(tmp_path / "file" / "out"))
