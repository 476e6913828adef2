"""Mamba and FalconMamba from Python: the mamba_f32 and falcon_mamba_f32 fixtures
(Tests/Fixtures/README.md, "mamba_f32 and falcon_mamba_f32"): model info and projection shapes,
every routing mode against the fixtures' expected logits, prefill + decode (the recurrent state),
reset, generation, experts from arrays and Python callables on the four Mamba projections,
add_untrained_lora's Mamba default, and training (router and joint regimes) with its PEFT output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

import loramixer as lmx
from conftest import EXPERTS, FixtureCase, build_mixer, case_cache, fixture_dir, max_diff
from lmx_oracle import read_safetensors

TOL = 1e-4
MAMBA_MODELS = ("mamba_f32", "falcon_mamba_f32")
MAMBA_MODULES = ["in_proj", "x_proj", "dt_proj", "out_proj"]
DT_RANK = {"mamba_f32": 3, "falcon_mamba_f32": 5}
ARCHITECTURE = {"mamba_f32": "MambaForCausalLM", "falcon_mamba_f32": "FalconMambaForCausalLM"}


# Per fixture: the model, a mixer with e0..e2 + router.safetensors, one with the context router,
# the expected tensors (conftest.FixtureCase).
case, teardown_module = case_cache(FixtureCase)


def fixed_logits(mixer: lmx.Mixer, weights, tokens) -> np.ndarray:
    with mixer.session() as s:
        s.fixed_weights = weights
        return s.eval(tokens, "all")


def peft_tensors(path: Path) -> Tuple[Dict[Tuple[int, str], Tuple[np.ndarray, np.ndarray]], Dict[str, np.ndarray]]:
    """{(layer, module): (A, B)} of a PEFT adapter_model.safetensors named
    base_model.model.backbone.layers.{i}.mixer.{module}.lora_{A,B}.weight (and the raw tensors)."""
    raw, _ = read_safetensors(path)
    tensors = {}
    for name, a in raw.items():
        parts = name.split(".")
        assert parts[:4] == ["base_model", "model", "backbone", "layers"] and parts[5] == "mixer", name
        assert parts[6] in MAMBA_MODULES and parts[7] in ("lora_A", "lora_B") and parts[8] == "weight", name
        if parts[7] == "lora_A":
            tensors[(int(parts[4]), parts[6])] = (a, raw[name.replace("lora_A", "lora_B")])
    return tensors, raw


# ----------------------------------------------------------------------------------- model info, shapes
@pytest.mark.parametrize("name", MAMBA_MODELS)
def test_model_info(name):
    model = case(name).model
    assert model.info == lmx.ModelInfo(n_vocab=128, n_layers=2, d_model=48, n_heads=0, n_kv_heads=0, head_dim=0,
                                       d_ff=96, max_positions=model.info.max_positions,
                                       architecture=ARCHITECTURE[name], d_state=8, d_conv=4, dt_rank=DT_RANK[name])
    assert model.info.max_positions >= 64  # a recurrent model has no position table; the library sets a cap
    assert ARCHITECTURE[name] in repr(model)
    # Attention models keep 0 in the Mamba fields.
    with lmx.Model(fixture_dir("llama_f32")) as llama:
        assert (llama.info.d_state, llama.info.d_conv, llama.info.dt_rank) == (0, 0, 0)
        assert sorted(llama.module_shapes()) == list(lmx.Module)[:7]


@pytest.mark.parametrize("name", MAMBA_MODELS)
def test_module_shapes(name):
    model = case(name).model
    r = DT_RANK[name]
    want = {lmx.Module.IN_PROJ: (48, 192), lmx.Module.X_PROJ: (96, r + 16), lmx.Module.DT_PROJ: (r, 96),
            lmx.Module.OUT_PROJ: (96, 48)}
    shapes = model.module_shapes()
    assert shapes == want and list(shapes) == list(want)
    assert all(isinstance(s, lmx.ModuleShape) for s in shapes.values())
    assert int(lmx.Module.IN_PROJ) == 7 and int(lmx.Module.X_PROJ) == 8
    assert int(lmx.Module.DT_PROJ) == 9 and int(lmx.Module.OUT_PROJ) == 10
    assert model.module_shape("x_proj") == (96, r + 16)
    assert model.module_shape(lmx.Module.DT_PROJ) == lmx.ModuleShape(r, 96)
    assert model.module_shape(10).in_features == 96
    assert model.module_shape("IN_PROJ").out_features == 192  # 2 x d_inner: x and the gate z


@pytest.mark.parametrize("name", MAMBA_MODELS)
@pytest.mark.parametrize("module", ["q_proj", lmx.Module.DOWN_PROJ, 0])
def test_attention_module_shape_is_refused(name, module):
    model = case(name).model
    with pytest.raises(lmx.InvalidArgumentError) as excinfo:
        model.module_shape(module)
    error = excinfo.value
    assert error.status == lmx.InvalidArgumentError.default_status and error.message == lmx.last_error()
    named = "down_proj" if module is lmx.Module.DOWN_PROJ else "q_proj"
    for fragment in (named, ARCHITECTURE[name], "in_proj, x_proj, dt_proj, out_proj"):
        assert fragment in error.message, error.message


# ----------------------------------------------------------------------------------- logits vs the fixtures
# (label, session settings, mixer: "router" or "context", expected tensor)
LOGITS_CASES = [
    ("base", dict(routing="none"), "router", "base_logits"),
    ("peft_e0", dict(fixed=[1, 0, 0]), "router", "peft_e0_logits"),
    ("peft_e1", dict(fixed=[0, 1, 0]), "router", "peft_e1_logits"),
    ("peft_e2", dict(fixed=[0, 0, 1]), "router", "peft_e2_logits"),
    ("learned", dict(), "router", "learned_logits"),
    ("soft", dict(routing="soft"), "router", "soft_logits"),
    ("uniform", dict(routing=lmx.Routing.UNIFORM), "router", "uniform_logits"),
    ("fixed", dict(fixed="file"), "router", "fixed_logits"),
    ("context", dict(), "context", "context_logits"),
    ("topk1", dict(routing="learned", top_k=1), "router", "learned_topk1_logits"),
    ("temp2", dict(routing="learned", temperature=2.0), "router", "learned_temp2_logits"),
]


def run_case(c: FixtureCase, settings: dict, which: str):
    return c.run(settings, c.context_mixer if which == "context" else c.mixer)


@pytest.mark.parametrize("name", MAMBA_MODELS)
@pytest.mark.parametrize("label,settings,which,key", LOGITS_CASES, ids=[c[0] for c in LOGITS_CASES])
def test_logits_match_fixture(name, label, settings, which, key):
    c = case(name)
    logits, _ = run_case(c, settings, which)
    assert logits.shape == (12, 128) and logits.dtype == np.float32
    assert max_diff(logits, c.expected[key]) < TOL, f"{name} {label}"
    if label != "base":  # every expected mixture really differs from the base model
        assert max_diff(c.expected[key], c.expected["base_logits"]) > 0.5


@pytest.mark.parametrize("name", MAMBA_MODELS)
def test_learned_and_context_traces(name):
    c = case(name)
    for which, prefix in (("router", "learned"), ("context", "context")):
        _, trace = run_case(c, {}, which)
        assert trace.ids.shape == (12, 2, 3)
        np.testing.assert_array_equal(trace.ids[:, :, :2], c.expected[f"{prefix}_ids"])
        np.testing.assert_allclose(trace.gates[:, :, :2], c.expected[f"{prefix}_gates"], atol=1e-5)
        assert np.all(trace.ids[:, :, 2] == -1) and np.all(trace.gates[:, :, 2] == 0)
        np.testing.assert_array_equal(trace.tokens, c.tokens)


# ----------------------------------------------------------------------------------- recurrent state
@pytest.mark.parametrize("name", MAMBA_MODELS)
def test_prefill_then_decode_equals_one_prefill(name):
    """Prefill in chunks, then one token at a time: the conv history and SSM state carry over."""
    c = case(name)
    for mixer, key in ((c.mixer, "learned_logits"), (c.context_mixer, "context_logits")):
        with mixer.session() as s:
            rows = [s.eval(c.tokens[:5], "all"), s.eval(c.tokens[5:6], "all"), s.eval(c.tokens[6:9], "all")]
            rows += [s.eval([t], "all") for t in c.tokens[9:]]
            assert s.n_past == len(c.tokens)
            assert max_diff(np.concatenate(rows), c.expected[key]) < TOL
    with c.mixer.session() as s:
        s.routing = "none"
        rows = [s.eval([t], "all") for t in c.tokens]  # decode only, from an empty state
        assert max_diff(np.concatenate(rows), c.expected["base_logits"]) < TOL
        s.reset()
        s.eval(c.tokens[:3], "none")
        last = s.eval(c.tokens[3:], "last")
        assert last.shape == (128,) and max_diff(last, c.expected["base_logits"][-1]) < TOL


@pytest.mark.parametrize("name", MAMBA_MODELS)
def test_reset_clears_the_state(name):
    c = case(name)
    with c.mixer.session() as s:
        s.eval([1, 2, 3, 4, 5, 6, 7], "none")
        assert s.n_past == 7
        s.reset()
        assert s.n_past == 0
        logits = s.eval(c.tokens, "all")
        assert max_diff(logits, c.expected["learned_logits"]) < TOL
        ids, _, seen = s.trace()
        assert list(seen) == c.tokens and ids.shape[0] == 12  # the trace restarted too
        s.reset()
        assert max_diff(s.eval(c.tokens[:1], "last"), c.expected["learned_logits"][0]) < TOL


@pytest.mark.parametrize("name", MAMBA_MODELS)
def test_generate_greedy_deterministic_and_continue(name):
    c = case(name)
    prompt = c.tokens[:5]
    with c.mixer.session() as s:
        first = s.generate(prompt, max_tokens=10)
        assert len(first) == 10 and all(isinstance(t, int) and 0 <= t < 128 for t in first)
        assert s.n_past == 15
        with c.mixer.session() as other:
            assert other.generate(prompt, max_tokens=10) == first
        s.reset()
        # Each greedy token is the argmax of the logits after the previous one.
        logits = s.eval(prompt)
        stepwise = []
        for _ in range(10):
            stepwise.append(int(np.argmax(logits)))
            logits = s.eval([stepwise[-1]])
        assert stepwise == first
        s.reset()
        head = s.generate(prompt, max_tokens=4)
        tail = s.generate(max_tokens=6)  # empty prompt: continue from the session's state
        assert head + tail == first
        ids, gates, seen = s.trace()
        assert list(seen) == prompt + first and ids.shape == (15, 2, 3)
        np.testing.assert_allclose(gates[:, :, :2].sum(axis=-1), 1.0, atol=1e-5)


# ----------------------------------------------------------------------------------- experts from Python
@pytest.mark.parametrize("name", MAMBA_MODELS)
def test_add_lora_from_arrays_reproduces_peft_e2(name):
    """e2 (r 4, alpha 4: scale 1; all four modules, both layers) read with numpy and handed over."""
    c = case(name)
    tensors, _ = peft_tensors(c.folder / "adapters" / "e2" / "adapter_model.safetensors")
    assert sorted(tensors) == [(layer, m) for layer in (0, 1) for m in sorted(MAMBA_MODULES)]
    r = DT_RANK[name]
    assert tensors[(0, "dt_proj")][0].shape == (4, r) and tensors[(1, "x_proj")][1].shape == (r + 16, 4)
    with lmx.Mixer(c.model) as mixer:
        mixer.add_peft("peft", c.folder / "adapters" / "e2")
        assert mixer.add_lora("mem", tensors) == 1  # alpha None: alpha = rank, scale 1
        assert mixer.add_lora("mem4", {(l, lmx.Module.of(m)): ab for (l, m), ab in tensors.items()}, alpha=4.0) == 2
        from_memory = fixed_logits(mixer, [0, 1, 0], c.tokens)
        assert max_diff(from_memory, c.expected["peft_e2_logits"]) < TOL
        assert max_diff(from_memory, fixed_logits(mixer, [1, 0, 0], c.tokens)) < 1e-6
        assert max_diff(from_memory, fixed_logits(mixer, [0, 0, 1], c.tokens)) < 1e-6
        # An attention module is refused by name.
        a, b = tensors[(0, "in_proj")]
        with pytest.raises(lmx.InvalidArgumentError) as excinfo:
            mixer.add_lora("bad", {(0, "q_proj"): (a, b)})
        assert "q_proj" in excinfo.value.message and "in_proj, x_proj, dt_proj, out_proj" in excinfo.value.message
        # dt_proj with d_model inputs instead of dt_rank: a shape error.
        with pytest.raises(lmx.ShapeError):
            mixer.add_lora("bad", {(0, "dt_proj"): (np.zeros((4, 48), np.float32), np.zeros((96, 4), np.float32))})
        assert mixer.experts == ["peft", "mem", "mem4"]


class E2Python:
    """e2 computed in Python (B (A x), scale 1) on the given modules; records what it is called with."""

    def __init__(self, tensors, modules) -> None:
        self.tensors = {(layer, lmx.Module.of(m)): (a.astype(np.float64), b.astype(np.float64))
                        for (layer, m), (a, b) in tensors.items() if m in modules}
        self.seen = []

    def __call__(self, layer, module, x, out):
        assert isinstance(module, lmx.Module) and not x.flags.writeable and np.all(out == 0)
        self.seen.append((layer, module, x.shape, out.shape))
        a, b = self.tensors[(layer, module)]
        out += ((x.astype(np.float64) @ a.T) @ b.T).astype(np.float32)


@pytest.mark.parametrize("name", MAMBA_MODELS)
def test_add_custom_on_mamba_projections(name):
    c = case(name)
    r = DT_RANK[name]
    tensors, _ = peft_tensors(c.folder / "adapters" / "e2" / "adapter_model.safetensors")
    in_only = {k: v for k, v in tensors.items() if k[1] == "in_proj"}
    fn = E2Python(tensors, ["in_proj"])
    everywhere = E2Python(tensors, MAMBA_MODULES)
    with lmx.Mixer(c.model) as mixer:
        mixer.add_lora("mem_in", in_only)
        assert mixer.add_custom("py_in", fn, modules=["in_proj"]) == 1
        assert mixer.add_custom("py_all", everywhere, modules=[lmx.Module.IN_PROJ, 8, "dt_proj", "out_proj"]) == 2
        from_memory = fixed_logits(mixer, [1, 0, 0], c.tokens)
        from_python = fixed_logits(mixer, [0, 1, 0], c.tokens)
        all_four = fixed_logits(mixer, [0, 0, 1], c.tokens)
        with pytest.raises(lmx.InvalidArgumentError) as excinfo:
            mixer.add_custom("bad", fn, modules=["in_proj", "o_proj"])
        assert "o_proj" in excinfo.value.message
    assert fn.seen == [(0, lmx.Module.IN_PROJ, (12, 48), (12, 192)), (1, lmx.Module.IN_PROJ, (12, 48), (12, 192))]
    shapes = {m: (x, o) for _, m, x, o in everywhere.seen}
    assert shapes == {lmx.Module.IN_PROJ: ((12, 48), (12, 192)), lmx.Module.X_PROJ: ((12, 96), (12, r + 16)),
                      lmx.Module.DT_PROJ: ((12, r), (12, 96)), lmx.Module.OUT_PROJ: ((12, 96), (12, 48))}
    assert len(everywhere.seen) == 8
    assert max_diff(from_python, from_memory) < 1e-5
    assert max_diff(from_memory, c.expected["base_logits"]) > 0.5  # in_proj alone changes the logits
    assert max_diff(all_four, c.expected["peft_e2_logits"]) < TOL


# ----------------------------------------------------------------------------------- untrained LoRA
@pytest.mark.parametrize("name", MAMBA_MODELS)
def test_add_untrained_lora_defaults_to_the_mamba_projections(name):
    c = case(name)
    with lmx.Mixer(c.model) as mixer:
        assert mixer.add_untrained_lora("default") == 0
        assert mixer.add_untrained_lora("some", rank=2, lora_alpha=2, modules=["x_proj", lmx.Module.DT_PROJ]) == 1
        for i in (0, 1):  # B = 0: nothing changes
            assert max_diff(fixed_logits(mixer, np.eye(2)[i], c.tokens), c.expected["base_logits"]) < TOL
        for bad in ("q_proj", ["in_proj", "down_proj"]):
            with pytest.raises(lmx.InvalidArgumentError) as excinfo:
                mixer.add_untrained_lora("attention", modules=bad)
            error = excinfo.value
            assert error.message == lmx.last_error()
            assert ARCHITECTURE[name] in error.message and "in_proj, x_proj, dt_proj, out_proj" in error.message
        assert mixer.experts == ["default", "some"]


def test_add_untrained_lora_names_the_refused_module():
    with lmx.Mixer(case("mamba_f32").model) as mixer:
        with pytest.raises(lmx.InvalidArgumentError) as excinfo:
            mixer.add_untrained_lora("attention", modules=["in_proj", "q_proj"])
        assert "q_proj does not exist in a MambaForCausalLM" in excinfo.value.message, excinfo.value.message


def write_data(path: Path, tasks: List[str], per_task: int) -> Path:
    """Token-id examples (vocab 128), as test_training.py writes them: task t, example i: prompt
    [3+t, 10+i, 20+(7i mod 30)], completion [40+20t+(i mod 10), +1, +2]."""
    lines = []
    for i in range(per_task):
        for t, task in enumerate(tasks):
            c0 = 40 + 20 * t + i % 10
            lines.append({"prompt_tokens": [3 + t, 10 + i, 20 + (7 * i) % 30],
                          "completion_tokens": [c0, c0 + 1, c0 + 2], "task": task})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


EVAL_TOKENS = [3, 10, 20, 40, 41, 42]


def session_logits(mixer: lmx.Mixer, weights=None) -> np.ndarray:
    with mixer.session(trace=False, n_threads=1) as s:
        if weights is not None:
            s.fixed_weights = weights
        return s.eval(EVAL_TOKENS, "all")


def test_train_router_regime_on_mamba(tmp_path):
    c = case("mamba_f32")
    data = write_data(tmp_path / "train.jsonl", list(EXPERTS), 4)
    out = tmp_path / "router_run"
    with build_mixer(c.model, "mamba_f32") as mixer:
        before = session_logits(mixer)
        steps = []
        mixer.train(data, out=out, steps=3, batch_size=4, learning_rate=5e-2, n_threads=2,
                    progress=lambda p: steps.append((p.step, p.expert_load.shape, p.layer_entropy.shape)))
        assert steps == [(s, (3,), (2,)) for s in (1, 2, 3)]
        after = session_logits(mixer)
        assert max_diff(after, before) > 1e-4
    assert (out / "router.safetensors").is_file() and not (out / "experts").exists()
    tensors, metadata = read_safetensors(out / "router.safetensors")
    assert metadata["format"] == "loramixer.router" and json.loads(metadata["experts"]) == list(EXPERTS)
    assert tensors["router.layers.0.weight"].shape == (3, 48) and tensors["router.layers.1.bias"].shape == (3,)
    report = json.loads((out / "report.json").read_text())
    assert report["completed_steps"] == 3
    with build_mixer(c.model, "mamba_f32", router="") as fresh:
        fresh.load_router(out / "router.safetensors")
        assert max_diff(session_logits(fresh), after) <= 1e-6


def test_train_joint_regime_with_a_new_expert_on_mamba(tmp_path):
    c = case("mamba_f32")
    data = write_data(tmp_path / "train.jsonl", list(EXPERTS) + ["x"], 3)
    out = tmp_path / "joint_run"
    with lmx.Mixer(c.model) as mixer:
        for e in EXPERTS:
            mixer.add_peft(e, c.folder / "adapters" / e)
        assert mixer.add_untrained_lora("x", rank=4, lora_alpha=8, seed=3) == 3  # default modules
        base = session_logits(mixer, [0, 0, 0, 1])
        steps = []
        mixer.train(data, out=out, regime="joint", steps=3, batch_size=4, learning_rate=2e-2, n_threads=2,
                    progress=lambda p: steps.append(p.step))
        assert steps == [1, 2, 3]
        trained_x = session_logits(mixer, [0, 0, 0, 1])
        assert max_diff(trained_x, base) > 1e-4
        learned = session_logits(mixer)
        with mixer.session() as s:  # the adopted router: learned top-2 by default
            s.eval(EVAL_TOKENS, "none")
            ids = s.trace().ids
            assert ids.shape == (6, 2, 4) and np.all(ids[:, :, :2] >= 0) and np.all(ids[:, :, 2:] == -1)

    assert (out / "router.safetensors").is_file()
    _, metadata = read_safetensors(out / "router.safetensors")
    assert json.loads(metadata["experts"]) == list(EXPERTS) + ["x"]
    config = json.loads((out / "experts" / "x" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["lora_alpha"] == 8
    assert sorted(config["target_modules"]) == sorted(MAMBA_MODULES)
    tensors, raw = peft_tensors(out / "experts" / "x" / "adapter_model.safetensors")
    assert sorted(raw) == sorted(f"base_model.model.backbone.layers.{i}.mixer.{m}.lora_{ab}.weight"
                                 for i in (0, 1) for m in MAMBA_MODULES for ab in "AB")
    shapes = c.model.module_shapes()
    for (layer, module), (a, b) in tensors.items():
        fin, fout = shapes[lmx.Module.of(module)]
        assert a.shape == (4, fin) and b.shape == (fout, 4), (layer, module)
    assert any(np.any(b != 0) for _, b in tensors.values())  # B left zero: untrained
    # The fixture experts were trained too and keep their own modules.
    e1_names = set(read_safetensors(out / "experts" / "e1" / "adapter_model.safetensors")[0])
    assert e1_names == set(read_safetensors(c.folder / "adapters" / "e1" / "adapter_model.safetensors")[0])

    # What was written loads back and gives the trained mixer's logits.
    with lmx.Mixer(c.model) as fresh:
        for e in list(EXPERTS) + ["x"]:
            fresh.add_peft(e, out / "experts" / e)
        assert max_diff(session_logits(fresh, [0, 0, 0, 1]), trained_x) <= 1e-5
        fresh.load_router(out / "router.safetensors")
        assert max_diff(session_logits(fresh), learned) <= 1e-5
