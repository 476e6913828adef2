"""End-to-end tests of the `lmx` command line tool against the oracle fixtures.

The binary comes from $LMX_BIN (default .build/debug/lmx, relative to the repository root);
a missing binary fails every test rather than skipping it. Run from the repository root:

    LMX_BIN=.build/debug/lmx python3 -m pytest -q Tests/cli
"""

import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "Fixtures"
EXPERTS = ["e0", "e1", "e2"]
USAGE_ERROR = 64  # argument-parser's exit code for usage errors (EX_USAGE)


def lmx_path():
    path = Path(os.environ.get("LMX_BIN", ".build/debug/lmx"))
    return path if path.is_absolute() else ROOT / path


@pytest.fixture(scope="session")
def lmx():
    path = lmx_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"lmx binary not found at {path}: build it (swift build --product lmx) or set LMX_BIN")

    def run(*args, check=True):
        result = subprocess.run([str(path), *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        if check:
            assert result.returncode == 0, f"lmx {' '.join(map(str, args))} failed ({result.returncode}): {result.stderr}"
        return result

    return run


# --- a minimal safetensors reader (stdlib + numpy) -------------------------------------------

DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U8": "u1", "I8": "i1"}


def read_safetensors(path):
    """Tensors of a .safetensors file: 8-byte LE header length, JSON header, data section whose
    data_offsets are relative to its start."""
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        array = np.frombuffer(data[base + start : base + end], dtype=DTYPES[entry["dtype"]])
        tensors[name] = array.reshape(entry["shape"])
    return tensors


_expected_cache = {}


def expected(fixture):
    if fixture not in _expected_cache:
        _expected_cache[fixture] = read_safetensors(FIXTURES / fixture / "expected.safetensors")
    return _expected_cache[fixture]


def tokens_arg(fixture):
    return ",".join(str(int(t)) for t in expected(fixture)["tokens"])


def expert_args(fixture):
    args = []
    for name in EXPERTS:
        args += ["--expert", f"{name}={FIXTURES / fixture / 'adapters' / name}"]
    return args


def model_args(fixture, experts=True):
    return ["--model", FIXTURES / fixture] + (expert_args(fixture) if experts else [])


def load_npy_checked(path):
    """Loads an .npy file after checking the format 1.0 preamble and header layout."""
    raw = Path(path).read_bytes()
    assert raw[:6] == b"\x93NUMPY" and raw[6:8] == b"\x01\x00"
    (header_length,) = struct.unpack("<H", raw[8:10])
    header = raw[10 : 10 + header_length].decode("latin1")
    assert (10 + header_length) % 64 == 0
    assert header.endswith("\n") and header.startswith("{'descr': '<f4', 'fortran_order': False, 'shape': (")
    array = np.load(path)
    assert array.dtype == np.float32
    return array


# --- logits --------------------------------------------------------------------------------------

# The routed cases every fixture has: name: (expected tensor, extra flags (a function of the fixture
# folder), use the experts). test_cli_mamba.py shares them and check_logits.
ROUTED_LOGITS_CASES = {
    "learned": ("learned_logits", lambda f: ["--router", f / "router.safetensors"], True),
    "soft": ("soft_logits", lambda f: ["--router", f / "router.safetensors", "--soft"], True),
    "uniform": ("uniform_logits", lambda f: ["--uniform"], True),
    "learned_topk1": ("learned_topk1_logits", lambda f: ["--router", f / "router.safetensors", "--top-k", "1"], True),
    "learned_temp2": ("learned_temp2_logits", lambda f: ["--router", f / "router.safetensors", "--temperature", "2"], True),
    "context": ("context_logits", lambda f: ["--router", f / "router_context.safetensors"], True),
}

LOGITS_CASES = {
    # name: (expected tensor, extra flags (a function of the fixture folder), use the experts)
    "base": ("base_logits", lambda f: [], False),
    "peft_e0_single_expert": ("peft_e0_logits", lambda f: ["--expert", f"e0={f / 'adapters' / 'e0'}"], False),
    "peft_e1_one_hot_fixed": ("peft_e1_logits", lambda f: ["--fixed", "e1=1"], True),
    "peft_e2_one_hot_fixed": ("peft_e2_logits", lambda f: ["--fixed", "e2=1"], True),
    **ROUTED_LOGITS_CASES,
}


def check_logits(lmx, tmp_path, fixture, tensor, flags, with_experts):
    """`lmx logits` on the fixture's tokens with a LOGITS_CASES entry's flags matches its expected tensor."""
    out = tmp_path / "logits.npy"
    lmx("logits", *model_args(fixture, with_experts), *flags(FIXTURES / fixture), "--tokens", tokens_arg(fixture),
        "--out", out)
    got = load_npy_checked(out)
    want = expected(fixture)[tensor]
    assert got.shape == want.shape == (12, 128)
    assert np.max(np.abs(got - want)) <= 1e-4


@pytest.mark.parametrize("case", sorted(LOGITS_CASES))
def test_logits_llama_f32(lmx, tmp_path, case):
    check_logits(lmx, tmp_path, "llama_f32", *LOGITS_CASES[case])


def test_logits_fixed_weights(lmx, tmp_path):
    fixture = "llama_f32"
    weights = expected(fixture)["fixed_weights"]
    spec = ",".join(f"{name}={float(w)!r}" for name, w in zip(EXPERTS, weights))
    assert spec == "e0=0.5,e1=-0.25,e2=1.0"
    out = tmp_path / "fixed.npy"
    lmx("logits", *model_args(fixture), "--fixed", spec, "--tokens", tokens_arg(fixture), "--out", out)
    assert np.max(np.abs(load_npy_checked(out) - expected(fixture)["fixed_logits"])) <= 1e-4


def test_logits_fixed_names_in_any_order_and_unnamed_get_zero(lmx, tmp_path):
    fixture = "llama_f32"
    out = tmp_path / "fixed.npy"
    lmx("logits", *model_args(fixture), "--fixed", "e2=1.0,e0=0.5,e1=-0.25", "--tokens", tokens_arg(fixture), "--out", out)
    assert np.max(np.abs(load_npy_checked(out) - expected(fixture)["fixed_logits"])) <= 1e-4
    lmx("logits", *model_args(fixture), "--fixed", "e0=1", "--tokens", tokens_arg(fixture), "--out", out)
    assert np.max(np.abs(load_npy_checked(out) - expected(fixture)["peft_e0_logits"])) <= 1e-4


@pytest.mark.parametrize("fixture,tolerance", [("mistral_f32", 1e-4), ("qwen2_f32", 1e-4), ("llama_bf16", 2e-2)])
def test_logits_other_families_learned(lmx, tmp_path, fixture, tolerance):
    out = tmp_path / "learned.npy"
    lmx("logits", *model_args(fixture), "--router", FIXTURES / fixture / "router.safetensors",
        "--tokens", tokens_arg(fixture), "--out", out)
    assert np.max(np.abs(load_npy_checked(out) - expected(fixture)["learned_logits"])) <= tolerance


def test_logits_sharded_base(lmx, tmp_path):
    out = tmp_path / "base.npy"
    lmx("logits", "--model", FIXTURES / "llama_sharded", "--tokens", tokens_arg("llama_sharded"), "--out", out)
    assert np.max(np.abs(load_npy_checked(out) - expected("llama_sharded")["base_logits"])) <= 1e-4


def test_logits_single_token_shape(lmx, tmp_path):
    out = tmp_path / "one.npy"
    lmx("logits", "--model", FIXTURES / "llama_f32", "--tokens", "109", "--out", out)
    got = load_npy_checked(out)
    assert got.shape == (1, 128)
    assert np.max(np.abs(got[0] - expected("llama_f32")["base_logits"][0])) <= 1e-4


# --- run -----------------------------------------------------------------------------------------

def generated(result):
    line = result.stdout.strip()
    return [int(x) for x in line.split(",")] if line else []


def learned_run_args(fixture="llama_f32", router="router.safetensors"):
    return [*model_args(fixture), "--router", FIXTURES / fixture / router, "--prompt-tokens", tokens_arg(fixture)]


@pytest.mark.parametrize("router,ids,gates", [
    ("router.safetensors", "learned_ids", "learned_gates"),
    ("router_context.safetensors", "context_ids", "context_gates"),
])
def test_run_trace(lmx, tmp_path, router, ids, gates):
    fixture = "llama_f32"
    trace_path = tmp_path / "trace.json"
    result = lmx("run", *learned_run_args(fixture, router), "--max-tokens", 5, "--trace", trace_path)
    out = generated(result)
    assert len(out) == 5 and all(0 <= t < 128 for t in out)
    trace = json.loads(trace_path.read_text())
    assert trace["experts"] == EXPERTS
    assert trace["layers"] == 2
    prompt = [int(t) for t in expected(fixture)["tokens"]]
    assert [entry["token"] for entry in trace["tokens"]] == prompt + out
    assert [entry["position"] for entry in trace["tokens"]] == list(range(len(prompt) + len(out)))
    want_ids, want_gates = expected(fixture)[ids], expected(fixture)[gates]
    for t, entry in enumerate(trace["tokens"]):
        assert len(entry["layers"]) == 2
        for layer, applied in enumerate(entry["layers"]):
            assert len(applied) == 2  # top_k 2
            assert abs(sum(a["gate"] for a in applied) - 1) <= 1e-5
            assert applied[0]["gate"] >= applied[1]["gate"]
            if t < len(prompt):
                assert [a["expert"] for a in applied] == [EXPERTS[i] for i in want_ids[t, layer]]
                assert np.allclose([a["gate"] for a in applied], want_gates[t, layer], atol=1e-4)


def test_run_trace_fixed_routing_lists_every_weighted_expert(lmx, tmp_path):
    trace_path = tmp_path / "trace.json"
    fixture = "llama_f32"
    lmx("run", *model_args(fixture), "--fixed", "e0=0.5,e1=-0.25,e2=1", "--prompt-tokens", "1,2",
        "--max-tokens", 1, "--trace", trace_path)
    trace = json.loads(trace_path.read_text())
    assert len(trace["tokens"]) == 3
    for entry in trace["tokens"]:
        for applied in entry["layers"]:
            assert [(a["expert"], a["gate"]) for a in applied] == [("e2", 1.0), ("e0", 0.5), ("e1", -0.25)]


def test_run_greedy_is_deterministic_and_starts_with_argmax(lmx):
    first = generated(lmx("run", *learned_run_args(), "--max-tokens", 8))
    second = generated(lmx("run", *learned_run_args(), "--max-tokens", 8))
    assert len(first) == 8 and first == second
    assert first[0] == int(np.argmax(expected("llama_f32")["learned_logits"][-1]))


def test_run_seeded_sampling(lmx):
    def sample(seed):
        return generated(lmx("run", *learned_run_args(), "--max-tokens", 10, "--sample-temperature", 1.5,
                             "--sample-top-k", 50, "--sample-top-p", 0.95, "--seed", seed))

    assert sample(7) == sample(7)
    assert len({tuple(sample(seed)) for seed in range(1, 6)}) > 1


def test_run_stop_token_ends_generation(lmx):
    tokens = generated(lmx("run", *learned_run_args(), "--max-tokens", 8))
    stop = tokens[3]
    cut = tokens.index(stop)
    stopped = generated(lmx("run", *learned_run_args(), "--max-tokens", 8, "--stop", f"{stop},127"))
    assert stopped == tokens[:cut]


def test_run_zero_tokens_and_context_limit(lmx, tmp_path):
    assert lmx("run", "--model", FIXTURES / "llama_f32", "--prompt-tokens", "1,2,3", "--max-tokens", 0).stdout == "\n"
    # max_position_embeddings is 64: generation stops when the context is full. The token sampled
    # from position 63's logits is returned but never evaluated, so the trace ends one short.
    out = generated(lmx("run", "--model", FIXTURES / "llama_f32", "--prompt-tokens", "1,2,3", "--max-tokens", 1000,
                        "--trace", tmp_path / "trace.json"))
    assert len(out) == 62
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert [entry["token"] for entry in trace["tokens"]] == [1, 2, 3] + out[:-1]
    assert all(layer == [] for entry in trace["tokens"] for layer in entry["layers"])  # base model: no experts


# --- inspect -------------------------------------------------------------------------------------

def test_inspect_model(lmx):
    out = lmx("inspect", FIXTURES / "llama_f32").stdout
    for fact in ["LlamaForCausalLM", "q_proj", "model.embed_tokens.weight", "[128, 64]", "llama3", "head_dim:",
                 "24", "vocab:", "128", "F32"]:
        assert fact in out, fact
    sharded = lmx("inspect", FIXTURES / "llama_sharded").stdout
    assert "3 shards" in sharded and "model-00002-of-00003.safetensors" in sharded
    mistral = json.loads(lmx("inspect", "--json", FIXTURES / "mistral_f32").stdout)
    assert mistral["architecture"] == "MistralForCausalLM"
    assert mistral["tied_embeddings"] is True and mistral["sliding_windows"] == [6, 6]
    assert mistral["tensor_count"] == len(mistral["tensors"])


def test_inspect_adapter(lmx):
    out = lmx("inspect", FIXTURES / "llama_f32" / "adapters" / "e1").stdout
    for fact in ["PEFT adapter", "v_proj: 4", "gate_proj: 4", "use_rslora:", "lora_A", "down_proj"]:
        assert fact in out, fact
    report = json.loads(lmx("inspect", "--json", FIXTURES / "llama_f32" / "adapters" / "e1").stdout)
    scales = {m["module"]: m["scales"] for m in report["modules"]}
    assert scales["v_proj"] == [8.0] and abs(scales["gate_proj"][0] - 4 / 8 ** 0.5) < 1e-5
    e2 = json.loads(lmx("inspect", "--json", FIXTURES / "llama_f32" / "adapters" / "e2").stdout)
    assert e2["adapted_layers"] == [1] and e2["layers_to_transform"] == [1]
    assert len(e2["adapted_modules"]) == 7


def test_inspect_router(lmx):
    out = lmx("inspect", FIXTURES / "llama_f32" / "router.safetensors").stdout
    for fact in ["router", "e0, e1, e2", "top_k:", "layer", "token", "router.layers.1.weight"]:
        assert fact in out, fact
    report = json.loads(lmx("inspect", "--json", FIXTURES / "llama_f32" / "router_context.safetensors").stdout)
    assert report["kind"] == "router"
    assert report["experts"] == ["e2", "e0", "e1"]
    assert report["top_k"] == 2 and report["temperature"] == 0.7 and report["input"] == "context"
    assert report["layers"] == 2 and report["d_model"] == 64


def test_inspect_plain_safetensors(lmx):
    out = lmx("inspect", FIXTURES / "llama_f32" / "expected.safetensors").stdout
    for fact in ["safetensors", "base_logits", "learned_ids", "I32", "[12, 128]"]:
        assert fact in out, fact
    report = json.loads(lmx("inspect", "--json", FIXTURES / "llama_f32" / "expected.safetensors").stdout)
    names = {t["name"]: t for t in report["tensors"]}
    assert names["tokens"]["dtype"] == "I32" and names["tokens"]["shape"] == [12]


def test_inspect_gguf(lmx, tmp_path):
    gguf = FIXTURES / "gguf"
    out = lmx("inspect", gguf / "vocab_only.gguf").stdout
    for fact in ["GGUF:", "version:      3", "tokenizer.ggml.tokens", "array[string]", "(12 items)", "\u2581the",
                 "array[array[int32]]", "[[1, 2], [3], [4, 5, 6]]", "18446744073709551615", "tensors (0"]:
        assert fact in out, fact
    out = lmx("inspect", gguf / "tensors_align64.gguf").stdout
    for fact in ["alignment:    64", "blk.0.attn_q.weight", "Q8_0", "[64, 2]", "Q4_K", "[256, 1]"]:
        assert fact in out, fact
    # --json agrees with the GGUFReader oracle written beside the fixture.
    for name in ["vocab_only", "tensors", "tensors_align64"]:
        report = json.loads(lmx("inspect", "--json", gguf / f"{name}.gguf").stdout)
        oracle = json.loads((gguf / f"{name}.json").read_text())
        assert report["kind"] == "GGUF" and report["version"] == oracle["version"]
        assert report["data_offset"] == oracle["data_offset"]
        assert [m["key"] for m in report["metadata"]] == [m["key"] for m in oracle["metadata"]]
        assert [(t["name"], t["type"], t["dimensions"], t["offset"], t["bytes"]) for t in report["tensors"]] == \
            [(t["name"], t["type"], t["dimensions"], t["data_offset"], t["n_bytes"]) for t in oracle["tensors"]]
    # A truncated copy is refused with the reader's message, exit 1.
    cut = tmp_path / "cut.gguf"
    cut.write_bytes((gguf / "tensors.gguf").read_bytes()[:1000])
    result = lmx("inspect", cut, check=False)
    assert result.returncode == 1 and "cut.gguf: tensor 'token_embd.weight'" in result.stderr, result.stderr


# --- help ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("command,fact", [
    ([], "SUBCOMMANDS"), (["inspect"], "--json"), (["logits"], "--out"), (["run"], "--sample-temperature"),
    (["run"], "--ignore-eos"), (["tokenize"], "--parse-special"), (["detokenize"], "--show-special"), (["chat"], "/experts"),
])
def test_help(lmx, command, fact):
    result = lmx(*command, "--help")
    assert fact in result.stdout and result.stderr == ""


# --- errors --------------------------------------------------------------------------------------

F = FIXTURES / "llama_f32"
TOKENS = ["--tokens", "1,2,3", "--out", "/tmp/lmx-test-unused.npy"]
ERROR_CASES = {
    "missing model dir": (1, ["logits", "--model", "/nonexistent/model", *TOKENS]),
    "model without config": (1, ["logits", "--model", F / "adapters", *TOKENS]),
    "missing adapter dir": (1, ["logits", "--model", F, "--expert", "e0=/nonexistent/adapter", *TOKENS]),
    "unknown expert in --fixed": (USAGE_ERROR, ["logits", *model_args("llama_f32"), "--fixed", "e0=1,e9=0.5", *TOKENS]),
    "bad --fixed weight": (USAGE_ERROR, ["logits", *model_args("llama_f32"), "--fixed", "e0=abc", *TOKENS]),
    "token id >= vocab": (USAGE_ERROR, ["logits", "--model", F, "--tokens", "1,128", "--out", "/tmp/lmx-test-unused.npy"]),
    "malformed tokens 1,,x": (USAGE_ERROR, ["logits", "--model", F, "--tokens", "1,,x", "--out", "/tmp/x.npy"]),
    "malformed tokens x": (USAGE_ERROR, ["logits", "--model", F, "--tokens", "x", "--out", "/tmp/x.npy"]),
    "empty tokens": (USAGE_ERROR, ["logits", "--model", F, "--tokens", "", "--out", "/tmp/x.npy"]),
    "negative token": (USAGE_ERROR, ["logits", "--model", F, "--tokens", "-1,2", "--out", "/tmp/x.npy"]),
    "fractional token": (USAGE_ERROR, ["logits", "--model", F, "--tokens", "1.5", "--out", "/tmp/x.npy"]),
    "huge token": (USAGE_ERROR, ["logits", "--model", F, "--tokens", "99999999999999999999", "--out", "/tmp/x.npy"]),
    "too many tokens for the context": (USAGE_ERROR, ["logits", "--model", F, "--tokens", ",".join(["1"] * 65), "--out", "/tmp/x.npy"]),
    "missing --tokens": (USAGE_ERROR, ["logits", "--model", F, "--out", "/tmp/x.npy"]),
    "unwritable --out": (1, ["logits", "--model", F, "--tokens", "1", "--out", "/nonexistent/dir/x.npy"]),
    "--soft without router": (USAGE_ERROR, ["logits", *model_args("llama_f32"), "--soft", *TOKENS]),
    "two routing modes": (USAGE_ERROR, ["logits", *model_args("llama_f32"), "--uniform", "--fixed", "e0=1", *TOKENS]),
    "several experts, no routing": (USAGE_ERROR, ["logits", *model_args("llama_f32"), *TOKENS]),
    "router without experts": (USAGE_ERROR, ["logits", "--model", F, "--router", F / "router.safetensors", *TOKENS]),
    "router missing an expert": (1, ["logits", "--model", F, "--expert", f"e0={F / 'adapters' / 'e0'}",
                                      "--router", F / "router.safetensors", *TOKENS]),
    "router file is not a router": (1, ["logits", *model_args("llama_f32"), "--router", F / "expected.safetensors", *TOKENS]),
    "duplicate expert name": (USAGE_ERROR, ["logits", "--model", F, "--expert", f"e0={F / 'adapters' / 'e0'}",
                                            "--expert", f"e0={F / 'adapters' / 'e1'}", "--fixed", "e0=1", *TOKENS]),
    "expert without =": (USAGE_ERROR, ["logits", "--model", F, "--expert", "e0", *TOKENS]),
    "router top-k 0": (USAGE_ERROR, ["logits", *model_args("llama_f32"), "--router", F / "router.safetensors", "--top-k", "0", *TOKENS]),
    "router top-k without router": (USAGE_ERROR, ["logits", *model_args("llama_f32"), "--uniform", "--top-k", "1", *TOKENS]),
    "router temperature 0": (USAGE_ERROR, ["logits", *model_args("llama_f32"), "--router", F / "router.safetensors",
                                 "--temperature", "0", *TOKENS]),
    "run negative max tokens": (USAGE_ERROR, ["run", "--model", F, "--prompt-tokens", "1", "--max-tokens=-1"]),
    "run bad top-p": (USAGE_ERROR, ["run", "--model", F, "--prompt-tokens", "1", "--sample-top-p", "0"]),
    "run negative seed": (USAGE_ERROR, ["run", "--model", F, "--prompt-tokens", "1", "--seed=-3"]),
    "run stop token >= vocab": (USAGE_ERROR, ["run", "--model", F, "--prompt-tokens", "1", "--stop", "500"]),
    "run prompt token >= vocab": (USAGE_ERROR, ["run", "--model", F, "--prompt-tokens", "1,4000"]),
    "run malformed prompt": (USAGE_ERROR, ["run", "--model", F, "--prompt-tokens", "1;2"]),
    "run unwritable trace": (1, ["run", "--model", F, "--prompt-tokens", "1", "--max-tokens", "1",
                                 "--trace", "/nonexistent/dir/t.json"]),
    "inspect missing path": (1, ["inspect", "/nonexistent/thing"]),
    "inspect non-safetensors file": (1, ["inspect", F / "config.json"]),
    "inspect folder of nothing": (1, ["inspect", FIXTURES]),
    "unknown subcommand": (USAGE_ERROR, ["frobnicate"]),
    "unknown option": (USAGE_ERROR, ["logits", "--model", F, "--tokenz", "1", "--out", "/tmp/x.npy"]),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors(lmx, case):
    code, args = ERROR_CASES[case]
    result = lmx(*args, check=False)
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("lmx: error: "), result.stderr
    assert len(result.stderr.strip()) > len("lmx: error: ")
