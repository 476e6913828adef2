"""(d) Custom experts written in Python, and LoRA experts from numpy arrays (f32, f16, bf16)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import loramixer as lmx
from loramixer import _callbacks
from conftest import EXPERTS, fixture_dir, max_diff
from lmx_oracle import Expert

TOL = 1e-4


def random_lora(model: lmx.Model, modules, layers, rank, seed):
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in layers:
        for module in modules:
            fin, fout = model.module_shape(module)
            tensors[(layer, module)] = (rng.normal(0, 0.3, (rank, fin)).astype(np.float32),
                                        rng.normal(0, 0.3, (fout, rank)).astype(np.float32))
    return tensors


class PythonLoRA:
    """A custom expert computing B (A x) * scale by hand; counts its calls."""

    def __init__(self, tensors, scale):
        self.tensors = {(layer, lmx.Module.of(m)): (a.astype(np.float64), b.astype(np.float64))
                        for (layer, m), (a, b) in tensors.items()}
        self.scale = scale
        self.calls = 0
        self.modules_seen = set()

    def __call__(self, layer, module, x, out):
        self.calls += 1
        assert isinstance(module, lmx.Module)
        assert x.dtype == np.float32 and out.dtype == np.float32
        assert not x.flags.writeable and out.flags.writeable
        assert x.shape[0] == out.shape[0]
        assert np.all(out == 0)  # handed over zeroed
        self.modules_seen.add((layer, module))
        a, b = self.tensors[(layer, module)]
        out += (self.scale * ((x @ a.T) @ b.T)).astype(np.float32)


def fixed_logits(mixer, weights, tokens):
    with mixer.session() as s:
        s.fixed_weights = weights
        return s.eval(tokens, "all")


def test_python_lora_equals_add_lora_and_oracle(llama_model, llama_oracle, tokens):
    modules = ["q_proj", "v_proj", "o_proj", "down_proj"]
    tensors = random_lora(llama_model, modules, [0, 1], rank=3, seed=5)
    alpha = 6.0
    fn = PythonLoRA(tensors, alpha / 3)
    with lmx.Mixer(llama_model) as mixer:
        assert mixer.add_lora("mem", tensors, alpha=alpha) == 0
        assert mixer.add_custom("py", fn, modules=modules) == 1
        assert mixer.experts == ["mem", "py"]
        from_memory = fixed_logits(mixer, [1, 0], tokens)
        from_python = fixed_logits(mixer, [0, 1], tokens)
        assert fn.calls == 8 and len(fn.modules_seen) == 8
        half = fixed_logits(mixer, [0.5, 0.5], tokens)
    lora = {(l, m): (a.astype(np.float64), b.astype(np.float64), alpha / 3) for (l, m), (a, b) in tensors.items()}
    ref, _, _ = llama_oracle.forward(tokens, [Expert("mem", lora)], routing="fixed", fixed=[1])
    assert max_diff(from_memory, from_python) < 1e-5
    assert max_diff(from_memory, ref) < TOL
    assert max_diff(half, ref) < TOL  # both halves are the same expert
    base, _, _ = llama_oracle.forward(tokens)
    assert max_diff(from_memory, base) > 0.1  # the expert really changes the logits


def test_custom_layers_subset_and_rslora(llama_model, llama_oracle, tokens):
    tensors = random_lora(llama_model, ["k_proj", "gate_proj"], [1], rank=4, seed=9)
    scale = 8.0 / np.sqrt(4)
    fn = PythonLoRA(tensors, scale)
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_lora("mem", tensors, alpha=8.0, rslora=True)
        mixer.add_custom("py", fn, modules=[lmx.Module.K_PROJ, 4], layers=[1])
        a = fixed_logits(mixer, [1, 0], tokens)
        b = fixed_logits(mixer, [0, 1], tokens)
    assert {layer for layer, _ in fn.modules_seen} == {1}
    lora = {(l, m): (x.astype(np.float64), y.astype(np.float64), scale) for (l, m), (x, y) in tensors.items()}
    ref, _, _ = llama_oracle.forward(tokens, [Expert("m", lora)], routing="fixed", fixed=[1])
    assert max_diff(a, ref) < TOL and max_diff(b, ref) < TOL


def test_python_expert_in_learned_routing_reproduces_fixture(llama_model, llama_experts, tokens, llama_expected):
    """Expert e1 (rank/alpha patterns, rslora) re-implemented in Python and routed by the learned
    router among the PEFT e0 and e2: the library's gather/scatter by gate must give the fixture."""
    e1 = llama_experts[1]

    def forward(layer, module, x, out):
        d = e1.delta(layer, str(module), x.astype(np.float64))
        if d is not None:
            out += d.astype(np.float32)

    modules = sorted({m for (_, m) in e1.lora})
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_peft("e0", fixture_dir("llama_f32") / "adapters" / "e0")
        mixer.add_custom("e1", forward, modules=modules)
        mixer.add_peft("e2", fixture_dir("llama_f32") / "adapters" / "e2")
        mixer.load_router(fixture_dir("llama_f32") / "router.safetensors")
        with mixer.session() as s:
            logits = s.eval(tokens, "all")
            ids, gates, _ = s.trace()
    assert max_diff(logits, llama_expected["learned_logits"]) < TOL
    np.testing.assert_array_equal(ids[:, :, :2], llama_expected["learned_ids"])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "bfloat16-bits"])
def test_add_lora_half_precisions(llama_model, llama_oracle, tokens, dtype):
    tensors = random_lora(llama_model, ["q_proj", "up_proj"], [0, 1], rank=2, seed=3)
    if dtype == "float16":
        given = {k: (a.astype(np.float16), b.astype(np.float16)) for k, (a, b) in tensors.items()}
        widened = {k: (a.astype(np.float64), b.astype(np.float64)) for k, (a, b) in given.items()}
        kwargs = {}
    else:
        bits = {k: (lmx.to_bfloat16(a), lmx.to_bfloat16(b)) for k, (a, b) in tensors.items()}
        widened = {k: (lmx.from_bfloat16(a).astype(np.float64), lmx.from_bfloat16(b).astype(np.float64))
                   for k, (a, b) in bits.items()}
        # uint16 bit patterns are taken as bfloat16; float32 arrays are converted with dtype=.
        given, kwargs = (bits, {}) if dtype == "bfloat16-bits" else (tensors, {"dtype": "bfloat16"})
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_lora("x", given, alpha=2.0, **kwargs)
        logits = fixed_logits(mixer, [1], tokens)
    lora = {(l, m): (a, b, 1.0) for (l, m), (a, b) in widened.items()}
    ref, _, _ = llama_oracle.forward(tokens, [Expert("x", lora)], routing="fixed", fixed=[1])
    assert max_diff(logits, ref) < TOL


def test_add_lora_from_peft_tensors_equals_add_peft(llama_model, tokens):
    """e0 (r 4, alpha 8) read from its safetensors and handed over as arrays == add_peft."""
    from lmx_oracle import read_safetensors
    raw, _ = read_safetensors(fixture_dir("llama_f32") / "adapters" / "e0" / "adapter_model.safetensors")
    tensors = {}
    for name, a in raw.items():
        if ".lora_A." in name:
            parts = name.split(".")
            layer, module = int(parts[4]), parts[6]
            tensors[(layer, module)] = (a, raw[name.replace("lora_A", "lora_B")])
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_peft("peft", fixture_dir("llama_f32") / "adapters" / "e0")
        mixer.add_lora("mem", tensors, alpha=8)
        assert max_diff(fixed_logits(mixer, [1, 0], tokens), fixed_logits(mixer, [0, 1], tokens)) < 1e-6


def test_bfloat16_helpers():
    values = np.array([1.0, -2.5, 3.14159, 1e-3, 65504.0, np.inf, -np.inf, np.nan, 1.0 + 2**-8, 1.0 + 3 * 2**-8],
                      dtype=np.float32)
    bits = lmx.to_bfloat16(values)
    assert bits.dtype == np.uint16
    back = lmx.from_bfloat16(bits)
    assert back[0] == 1.0 and back[1] == -2.5 and np.isinf(back[5]) and back[6] == -np.inf and np.isnan(back[7])
    assert back[8] == 1.0  # a tie rounds to even
    assert back[9] == 1.0 + 4 * 2**-8  # the other tie rounds up to even
    assert np.max(np.abs(back[:5] - values[:5]) / np.abs(values[:5])) < 2**-8


def test_add_lora_dtype_errors(llama_model):
    t = random_lora(llama_model, ["q_proj"], [0], rank=2, seed=1)
    (a, b), = t.values()
    with lmx.Mixer(llama_model) as mixer:
        with pytest.raises(TypeError, match="different dtypes"):
            mixer.add_lora("x", {(0, "q_proj"): (a, b.astype(np.float16))})
        with pytest.raises(TypeError):
            mixer.add_lora("x", {(0, "q_proj"): (a.astype(np.int32), b.astype(np.int32))})
        with pytest.raises(TypeError, match="bfloat16"):
            mixer.add_lora("x", {(0, "q_proj"): (lmx.to_bfloat16(a), lmx.to_bfloat16(b))}, dtype="float32")
        assert mixer.add_lora("x", {(0, "q_proj"): (a.astype(np.float64), b)}) == 0  # float64 -> float32
        assert mixer.add_lora("y", {(0, lmx.Module.Q_PROJ): (a, b)}, dtype="float16") == 1


# ------------------------------------------------------------------------------ errors in Python code
class Boom(Exception):
    pass


def test_exception_in_expert_surfaces_as_original(llama_model, tokens):
    state = {"fail": False, "calls": 0}

    def flaky(layer, module, x, out):
        state["calls"] += 1
        if state["fail"] and layer == 1:
            raise Boom(f"failed at layer {layer} {module}")
        out += 0.01

    with lmx.Mixer(llama_model) as mixer:
        mixer.add_custom("flaky", flaky, ["q_proj", "o_proj"])
        with mixer.session() as s:
            s.set_fixed_weights([1.0])
            s.eval(tokens[:2], logits="none")
            state["fail"] = True
            with pytest.raises(Boom, match="layer 1 q_proj") as excinfo:
                s.eval(tokens[2:6], logits="all")
            cause = excinfo.value.__cause__
            assert isinstance(cause, lmx.PluginError) and cause.status == -5
            assert "flaky" in cause.message
            assert s.n_past == 2  # the failed evaluation left the session unchanged
            with pytest.raises(Boom):
                s.generate(tokens[2:4], max_tokens=3)
            assert s.n_past == 2
            state["fail"] = False
            s.eval(tokens[2:6], logits="none")
            assert s.n_past == 6
            assert _callbacks.take_pending() is None  # nothing left over for a later call


def test_writing_into_x_is_refused(llama_model, tokens):
    def bad(layer, module, x, out):
        x[0, 0] = 1.0

    with lmx.Mixer(llama_model) as mixer:
        mixer.add_custom("bad", bad, ["v_proj"])
        with mixer.session() as s:
            s.set_fixed_weights([1.0])
            with pytest.raises(ValueError, match="read-only") as excinfo:
                s.eval(tokens[:3])
            assert isinstance(excinfo.value.__cause__, lmx.PluginError)


def test_exception_in_on_token_is_reraised(llama_mixer, tokens):
    seen = []

    def on_token(token):
        seen.append(token)
        if len(seen) == 2:
            raise Boom("stop here")

    with llama_mixer.session() as s:
        with pytest.raises(Boom, match="stop here"):
            s.generate(tokens[:3], max_tokens=10, on_token=on_token)
    assert len(seen) == 2


# ------------------------------------------------------------------------------ lifetime of the callable
class Tracked:
    def __init__(self):
        self.calls = 0

    def __call__(self, layer, module, x, out):
        self.calls += 1
        out += x[:, : out.shape[1]] * 0.0 + 0.001


def _add_tracked(mixer):
    fn = Tracked()
    ref = weakref.ref(fn)
    mixer.add_custom("tracked", fn, ["o_proj"])
    return ref  # the only strong reference now lives in the package's registry


def test_callable_kept_alive_then_released(llama_model, tokens):
    before = _callbacks.registered_count()
    mixer = lmx.Mixer(llama_model)
    ref = _add_tracked(mixer)
    gc.collect()
    assert ref() is not None
    session = mixer.session()
    session.fixed_weights = [1.0]
    session.eval(tokens[:3])
    assert ref().calls == 2  # o_proj in two layers
    # The mixer goes first: the session still uses the expert, so the callable stays.
    del mixer
    gc.collect()
    assert ref() is not None
    session.eval(tokens[3:5])
    assert ref().calls == 4
    assert _callbacks.registered_count() == before + 1
    del session
    gc.collect()
    assert ref() is None, "the library called destroy: the callable must be released"
    assert _callbacks.registered_count() == before


def test_callable_released_by_close_in_any_order(llama_model, tokens):
    before = _callbacks.registered_count()
    for order in ("mixer-first", "session-first"):
        mixer = lmx.Mixer(llama_model)
        ref = _add_tracked(mixer)
        session = mixer.session()
        session.set_fixed_weights([0.5])
        session.eval(tokens[:2], logits="none")
        first, second = (mixer, session) if order == "mixer-first" else (session, mixer)
        first.close()
        gc.collect()
        assert ref() is not None
        second.close()
        gc.collect()
        assert ref() is None, order
    assert _callbacks.registered_count() == before


def test_failed_add_custom_does_not_keep_the_callable(llama_model):
    before = _callbacks.registered_count()
    fn = Tracked()
    ref = weakref.ref(fn)
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_peft("e0", fixture_dir("llama_f32") / "adapters" / "e0")
        with pytest.raises(lmx.InvalidArgumentError):
            mixer.add_custom("e0", fn, ["q_proj"])  # duplicate name
        with pytest.raises(lmx.ShapeError):
            mixer.add_custom("c", fn, ["q_proj"], features={"q_proj": (1, 2)})
    del fn
    gc.collect()
    assert ref() is None
    assert _callbacks.registered_count() == before


def test_custom_expert_with_every_routing_mode(llama_model, tokens):
    """A custom expert among PEFT experts: uniform and soft routing call it with the right rows."""
    rows_seen = []

    def zero(layer, module, x, out):
        rows_seen.append(x.shape[0])

    with lmx.Mixer(llama_model) as mixer:
        for e in EXPERTS[:2]:
            mixer.add_peft(e, fixture_dir("llama_f32") / "adapters" / e)
        mixer.add_custom("zero", zero, ["q_proj"])
        with mixer.session() as s:
            s.routing = "uniform"
            uniform = s.eval(tokens, "all")
        with mixer.session() as s:
            s.fixed_weights = [0.5, 0.5, 0.0]
            s.routing = "fixed"
            merged = s.eval(tokens, "all")
    assert rows_seen == [len(tokens)] * 2  # uniform: every row, both layers; fixed weight 0: never called
    assert uniform.shape == merged.shape
