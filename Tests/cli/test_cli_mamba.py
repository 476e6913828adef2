"""End-to-end tests of `lmx` on the Mamba fixtures (Tests/Fixtures/mamba_f32 and falcon_mamba_f32,
see Tests/Fixtures/README.md): inspect, logits in every routing mode, run, and train with new
experts on the Mamba projections (in_proj, x_proj, dt_proj, out_proj).

Uses the binary, fixtures and helpers of test_cli.py and test_train.py ($LMX_BIN, default
.build/debug/lmx). Run from the repository root:

    LMX_BIN=.build/release/lmx python3 -m pytest -q Tests/cli/test_cli_mamba.py
"""

import json
import re

import numpy as np
import pytest

from test_cli import (FIXTURES, ROUTED_LOGITS_CASES, USAGE_ERROR, check_logits, expected, generated,  # noqa: F401
                      lmx, load_npy_checked, model_args, read_safetensors, tokens_arg)  # (lmx: the fixture)
from test_train import assert_one_error_line, progress_steps, report_of, safetensors_checked, token_rows, write_jsonl

MAMBA = ["mamba_f32", "falcon_mamba_f32"]
MODULES = ["in_proj", "x_proj", "dt_proj", "out_proj"]
DT_RANK = {"mamba_f32": 3, "falcon_mamba_f32": 5}
ARCHITECTURE = {"mamba_f32": "MambaForCausalLM", "falcon_mamba_f32": "FalconMambaForCausalLM"}


def field(text, key):
    """The value of the `  key: value` line of an inspect report (exactly one such line)."""
    values = re.findall(rf"^  {re.escape(key)}:\s+(.*)$", text, re.M)
    assert len(values) == 1, f"{key!r}: {values} in\n{text}"
    return values[0]


# --- inspect -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", MAMBA)
def test_inspect_mamba_model(lmx, fixture):
    folder = FIXTURES / fixture
    falcon = fixture == "falcon_mamba_f32"
    text = lmx("inspect", folder).stdout
    assert text.startswith(f"model: {folder}\n")
    want = {"architecture": ARCHITECTURE[fixture], "family": "falcon_mamba" if falcon else "mamba", "layers": "2",
            "d_model": "48", "d_inner": "96", "d_state": "8", "d_conv": "4", "dt_rank": str(DT_RANK[fixture]),
            "vocab": "128", "rms_norm_eps": "1e-05", "tied_embeddings": "no" if falcon else "yes",
            "projections": "in_proj, x_proj, dt_proj, out_proj", "weight_files": "model.safetensors"}
    for key, value in want.items():
        assert field(text, key) == value, key
    if falcon:
        assert field(text, "mixer_rms_eps") == "1e-06"
    else:
        assert "mixer_rms_eps:" not in text
    # The attention model's lines do not apply to a state-space model.
    for key in ("heads", "kv_heads", "head_dim", "d_ff", "rope_theta", "rope_scaling", "sliding_windows"):
        assert not re.search(rf"^  {key}:", text, re.M), key
    r = DT_RANK[fixture]
    for name, shape in [("backbone.layers.0.mixer.A_log", "[96, 8]"), ("backbone.layers.1.mixer.conv1d.weight", "[96, 1, 4]"),
                        ("backbone.layers.0.mixer.x_proj.weight", f"[{r + 16}, 96]"),
                        ("backbone.layers.1.mixer.dt_proj.weight", f"[96, {r}]"), ("backbone.norm_f.weight", "[48]")]:
        assert re.search(rf"^  {re.escape(name)}\s+F32\s+{re.escape(shape)}\s", text, re.M), name
    assert ("lm_head.weight" in text) == falcon and ("mixer.in_proj.bias" in text) == falcon

    report = json.loads(lmx("inspect", "--json", folder).stdout)
    assert report["kind"] == "model" and report["architecture"] == ARCHITECTURE[fixture]
    assert (report["d_model"], report["d_inner"], report["d_state"], report["d_conv"], report["dt_rank"]) == (
        48, 96, 8, 4, DT_RANK[fixture])
    assert report["vocab"] == 128 and report["layers"] == 2 and report["tied_embeddings"] is (not falcon)
    assert ("mixer_rms_eps" in report) == falcon and "heads" not in report and "rope_theta" not in report
    assert report["projections"] == ["in_proj", "x_proj", "dt_proj", "out_proj"]
    assert report["tensor_count"] == len(report["tensors"]) == (27 if falcon else 22)


@pytest.mark.parametrize("fixture", MAMBA)
def test_inspect_mamba_adapters(lmx, fixture):
    adapters = FIXTURES / fixture / "adapters"
    r = DT_RANK[fixture]
    text = lmx("inspect", adapters / "e2").stdout
    assert text.startswith("PEFT adapter: ")
    assert field(text, "adapted_modules") == "in_proj, x_proj, dt_proj, out_proj"
    assert field(text, "adapted_layers") == "0, 1" and field(text, "loramixer_can_load") == "yes"
    assert field(text, "target_modules") == "dt_proj, in_proj, out_proj, x_proj"  # as the config lists them
    for module in MODULES:
        assert re.search(rf"^  {module}\s+0,1\s+4\s+4\s+1$", text, re.M), module  # layers, rank, alpha, scale
    assert re.search(rf"base_model\.model\.backbone\.layers\.0\.mixer\.dt_proj\.lora_A\.weight\s+F32\s+\[4, {r}\]", text)
    assert re.search(rf"base_model\.model\.backbone\.layers\.1\.mixer\.x_proj\.lora_B\.weight\s+F32\s+\[{r + 16}, 4\]", text)

    e1 = json.loads(lmx("inspect", "--json", adapters / "e1").stdout)
    assert e1["kind"] == "PEFT adapter" and e1["loramixer_can_load"] == "yes"
    assert e1["adapted_modules"] == ["in_proj", "x_proj"] and e1["adapted_layers"] == [1]
    modules = {m["module"]: m for m in e1["modules"]}
    assert modules["in_proj"]["ranks"] == [8] and abs(modules["in_proj"]["scales"][0] - 16 / 8 ** 0.5) < 1e-5
    assert modules["x_proj"]["ranks"] == [4] and modules["x_proj"]["scales"] == [8.0]
    e0 = json.loads(lmx("inspect", "--json", adapters / "e0").stdout)
    assert e0["adapted_modules"] == ["in_proj", "x_proj"] and e0["adapted_layers"] == [0, 1]
    assert all(m["scales"] == [2.0] for m in e0["modules"])


# --- logits --------------------------------------------------------------------------------------

LOGITS_CASES = {
    # name: (expected tensor, extra flags (a function of the fixture folder), use the three experts)
    "base": ("base_logits", lambda f: [], False),
    "e2_single_expert": ("peft_e2_logits", lambda f: ["--expert", f"e2={f / 'adapters' / 'e2'}"], False),
    "e0_single_expert": ("peft_e0_logits", lambda f: ["--expert", f"e0={f / 'adapters' / 'e0'}"], False),
    "e1_one_hot_fixed": ("peft_e1_logits", lambda f: ["--fixed", "e1=1"], True),
    "fixed": ("fixed_logits", lambda f: ["--fixed", "e0=0.5,e1=-0.25,e2=1.0"], True),
    **ROUTED_LOGITS_CASES,
}


@pytest.mark.parametrize("case", list(LOGITS_CASES))
@pytest.mark.parametrize("fixture", MAMBA)
def test_logits_mamba(lmx, tmp_path, fixture, case):
    if case == "fixed":
        assert list(expected(fixture)["fixed_weights"]) == [0.5, -0.25, 1.0]
    check_logits(lmx, tmp_path, fixture, *LOGITS_CASES[case])


# --- run -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", MAMBA)
def test_run_greedy_mamba(lmx, tmp_path, fixture):
    learned = [*model_args(fixture), "--router", FIXTURES / fixture / "router.safetensors", "--prompt-tokens",
               tokens_arg(fixture), "--max-tokens", 8]
    first = generated(lmx("run", *learned, "--trace", tmp_path / "trace.json"))
    second = generated(lmx("run", *learned))
    assert len(first) == 8 and first == second and all(0 <= t < 128 for t in first)
    assert first[0] == int(np.argmax(expected(fixture)["learned_logits"][-1]))
    trace = json.loads((tmp_path / "trace.json").read_text())
    prompt = [int(t) for t in expected(fixture)["tokens"]]
    assert trace["experts"] == ["e0", "e1", "e2"] and trace["layers"] == 2
    assert [entry["token"] for entry in trace["tokens"]] == prompt + first
    want_ids = expected(fixture)["learned_ids"]
    for t in range(len(prompt)):
        assert [[["e0", "e1", "e2"].index(a["expert"]) for a in layer] for layer in trace["tokens"][t]["layers"]] == \
            want_ids[t].tolist()

    base = ["--model", FIXTURES / fixture, "--prompt-tokens", tokens_arg(fixture)]
    out = generated(lmx("run", *base, "--max-tokens", 80))  # no position table: past 64 tokens is fine
    assert len(out) == 80 and out[0] == int(np.argmax(expected(fixture)["base_logits"][-1]))
    assert generated(lmx("run", *base, "--max-tokens", 80)) == out


# --- train ---------------------------------------------------------------------------------------

def test_train_joint_new_expert_default_modules(lmx, tmp_path):
    fixture = "mamba_f32"
    data = write_jsonl(tmp_path / "train.jsonl", token_rows(8, seed=11, tasks=["x"]))
    out = tmp_path / "out"
    result = lmx("train", "--model", FIXTURES / fixture, "--new-expert", "x", "--data", data, "--regime", "joint",
                 "--routing", "label", "--out", out, "--steps", 2, "--batch-size", 4, "--lr", "0.02",
                 "--lora-rank", 4, "--lora-alpha", 8, "--threads", 2)
    assert progress_steps(result.stderr, 2) == [1, 2]
    report = report_of(out)
    assert report["regime"] == "joint" and report["routing"] == "label" and report["experts"] == ["x"]
    assert report["files"] == ["experts/x", "checkpoint/state.safetensors", "report.json"]
    assert not (out / "router.safetensors").exists()

    folder = out / "experts" / "x"
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["lora_alpha"] == 8
    assert config["target_modules"] == MODULES
    header = safetensors_checked(folder / "adapter_model.safetensors")
    names = sorted(k for k in header if k != "__metadata__")
    assert names == sorted(f"base_model.model.backbone.layers.{i}.mixer.{m}.lora_{ab}.weight"
                           for i in (0, 1) for m in MODULES for ab in "AB")
    shapes = {"in_proj": (48, 192), "x_proj": (96, 19), "dt_proj": (3, 96), "out_proj": (96, 48)}
    for m, (fin, fout) in shapes.items():
        assert header[f"base_model.model.backbone.layers.1.mixer.{m}.lora_A.weight"]["shape"] == [4, fin]
        assert header[f"base_model.model.backbone.layers.1.mixer.{m}.lora_B.weight"]["shape"] == [fout, 4]
    tensors = read_safetensors(folder / "adapter_model.safetensors")
    assert any(np.any(v != 0) for k, v in tensors.items() if "lora_B" in k)  # trained away from B = 0
    inspected = json.loads(lmx("inspect", "--json", folder).stdout)
    assert inspected["loramixer_can_load"] == "yes" and inspected["adapted_modules"] == MODULES
    assert all(m["scales"] == [2.0] for m in inspected["modules"])

    # The written expert loads and changes the model's logits.
    with_x = tmp_path / "x.npy"
    lmx("logits", "--model", FIXTURES / fixture, "--expert", f"x={folder}", "--tokens", tokens_arg(fixture), "--out", with_x)
    assert np.max(np.abs(load_npy_checked(with_x) - expected(fixture)["base_logits"])) > 1e-6


def test_train_router_regime_mamba(lmx, tmp_path):
    fixture = "falcon_mamba_f32"
    data = write_jsonl(tmp_path / "train.jsonl", token_rows(8, seed=12))
    out = tmp_path / "out"
    lmx("train", *model_args(fixture), "--router", FIXTURES / fixture / "router.safetensors", "--data", data,
        "--regime", "router", "--out", out, "--steps", 2, "--batch-size", 4, "--threads", 2, "--quiet")
    assert report_of(out)["files"] == ["router.safetensors", "checkpoint/state.safetensors", "report.json"]
    router = json.loads(lmx("inspect", "--json", out / "router.safetensors").stdout)
    assert router["kind"] == "router" and router["d_model"] == 48 and router["layers"] == 2
    assert router["experts"] == ["e0", "e1", "e2"]
    learned = tmp_path / "learned.npy"
    lmx("logits", *model_args(fixture), "--router", out / "router.safetensors", "--tokens", tokens_arg(fixture),
        "--out", learned)
    got = load_npy_checked(learned)
    assert np.all(np.isfinite(got)) and np.max(np.abs(got - expected(fixture)["learned_logits"])) > 1e-6


@pytest.mark.parametrize("fixture", MAMBA)
@pytest.mark.parametrize("modules,named", [("q_proj", "q_proj"), ("in_proj,v_proj", "v_proj")])
def test_train_attention_target_modules_refused(lmx, tmp_path, fixture, modules, named):
    data = write_jsonl(tmp_path / "train.jsonl", token_rows(4, seed=13, tasks=["x"]))
    out = tmp_path / "out"
    result = lmx("train", "--model", FIXTURES / fixture, "--new-expert", "x", "--data", data, "--regime", "joint",
                 "--routing", "label", "--out", out, "--target-modules", modules, check=False)
    assert_one_error_line(result, USAGE_ERROR, "--target-modules")
    for fact in (named, ARCHITECTURE[fixture], "in_proj, x_proj, dt_proj, out_proj"):
        assert fact in result.stderr, result.stderr
    assert not out.exists(), "an invalid run wrote output"
