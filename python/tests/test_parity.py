"""(a) library == the independent numpy oracle (lmx_oracle.py); (b) library == the committed
fixtures' expected logits (transformers / PEFT / tools/lmx_reference.py), for every routing mode."""

from __future__ import annotations

import numpy as np
import pytest

import loramixer as lmx
from conftest import EXPERTS, F32_MODELS, FixtureCase, build_mixer, case_cache, expected, fixture_dir, max_diff
from lmx_oracle import Oracle, Router, load_peft

TOL = 1e-4

# (case name, session settings, oracle settings, expected tensor in expected.safetensors)
CASES = [
    ("base", dict(routing="none"), dict(routing="none"), "base_logits"),
    ("peft_e0", dict(fixed=[1, 0, 0]), dict(routing="fixed", fixed=[1, 0, 0]), "peft_e0_logits"),
    ("peft_e1", dict(fixed=[0, 1, 0]), dict(routing="fixed", fixed=[0, 1, 0]), "peft_e1_logits"),
    ("peft_e2", dict(fixed=[0, 0, 1]), dict(routing="fixed", fixed=[0, 0, 1]), "peft_e2_logits"),
    ("learned", dict(routing="learned"), dict(routing="learned"), "learned_logits"),
    ("soft", dict(routing="soft"), dict(routing="soft"), "soft_logits"),
    ("uniform", dict(routing=lmx.Routing.UNIFORM), dict(routing="uniform"), "uniform_logits"),
    ("fixed", dict(fixed="file"), dict(routing="fixed", fixed="file"), "fixed_logits"),
    ("topk1", dict(routing="learned", top_k=1), dict(routing="learned", top_k=1), "learned_topk1_logits"),
    ("temp2", dict(routing="learned", temperature=2.0), dict(routing="learned", temperature=2.0),
     "learned_temp2_logits"),
]


class Case(FixtureCase):
    """Per model: the library objects, the oracle and the fixture's expectations."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.oracle = Oracle(self.folder)
        self.experts = [load_peft(self.folder / "adapters" / e, e) for e in EXPERTS]
        self.router = Router.load(self.folder / "router.safetensors", EXPERTS)
        self.context_router = Router.load(self.folder / "router_context.safetensors", EXPERTS)

    def oracle_run(self, settings: dict, router: Router = None):
        settings = dict(settings)
        if settings.get("fixed") == "file":
            settings["fixed"] = self.expected["fixed_weights"]
        return self.oracle.forward(self.tokens, self.experts, router=router or self.router, **settings)


case, teardown_module = case_cache(Case)


@pytest.mark.parametrize("model_name", F32_MODELS)
@pytest.mark.parametrize("label,settings,oracle_settings,key", CASES, ids=[c[0] for c in CASES])
def test_library_matches_numpy_oracle(model_name, label, settings, oracle_settings, key):
    c = case(model_name)
    logits, trace = c.run(settings)
    ref_logits, ref_ids, ref_gates = c.oracle_run(oracle_settings)
    assert logits.shape == (len(c.tokens), c.model.info.n_vocab) and logits.dtype == np.float32
    assert max_diff(logits, ref_logits) < TOL, f"{model_name} {label}: library vs numpy oracle"
    # The oracle itself agrees with the fixture (so it is a real second opinion).
    assert max_diff(ref_logits, c.expected[key]) < TOL, f"{model_name} {label}: numpy oracle vs fixture"
    # Routing trace: experts applied per token and layer, largest gate first.
    np.testing.assert_array_equal(trace.ids, ref_ids)
    np.testing.assert_allclose(trace.gates, ref_gates, atol=1e-5)
    np.testing.assert_array_equal(trace.tokens, c.tokens)


@pytest.mark.parametrize("model_name", F32_MODELS)
def test_context_router_matches_oracle(model_name):
    c = case(model_name)
    logits, trace = c.run({}, c.context_mixer)
    ref, ref_ids, ref_gates = c.oracle_run({"routing": "learned"}, router=c.context_router)
    assert max_diff(logits, ref) < TOL
    assert max_diff(ref, c.expected["context_logits"]) < TOL
    np.testing.assert_array_equal(trace.ids[:, :, :2], c.expected["context_ids"])
    np.testing.assert_allclose(trace.gates[:, :, :2], c.expected["context_gates"], atol=1e-5)
    np.testing.assert_array_equal(trace.ids, ref_ids)


@pytest.mark.parametrize("model_name", F32_MODELS + ("llama_bf16",))
@pytest.mark.parametrize("label,settings,_o,key", CASES, ids=[c[0] for c in CASES])
def test_library_matches_fixture(model_name, label, settings, _o, key):
    c = case(model_name)
    logits, _ = c.run(settings)
    assert max_diff(logits, c.expected[key]) < TOL, f"{model_name} {label}"


@pytest.mark.parametrize("model_name", F32_MODELS + ("llama_bf16",))
def test_fixture_learned_trace_and_context(model_name):
    c = case(model_name)
    _, trace = c.run({})
    np.testing.assert_array_equal(trace.ids[:, :, :2], c.expected["learned_ids"])
    np.testing.assert_allclose(trace.gates[:, :, :2], c.expected["learned_gates"], atol=1e-5)
    assert np.all(trace.ids[:, :, 2] == -1) and np.all(trace.gates[:, :, 2] == 0)
    logits, _ = c.run({}, c.context_mixer)
    assert max_diff(logits, c.expected["context_logits"]) < TOL


def test_sharded_model_base_logits():
    folder = fixture_dir("llama_sharded")
    exp = expected("llama_sharded")
    for mode in ("mmap", "copy"):
        with lmx.Model(folder, load_mode=mode) as model, lmx.Mixer(model) as mixer, mixer.session() as s:
            logits = s.eval(exp["tokens"], logits="all")
            assert max_diff(logits, exp["base_logits"]) < TOL


def test_copy_mode_equals_mmap(tokens, llama_expected):
    with lmx.Model(fixture_dir("llama_f32"), load_mode=lmx.LoadMode.COPY) as model:
        assert model.load_mode == lmx.LoadMode.COPY
        with build_mixer(model, "llama_f32") as mixer, mixer.session() as s:
            assert max_diff(s.eval(tokens, "all"), llama_expected["learned_logits"]) < TOL


@pytest.mark.parametrize("model_name", F32_MODELS)
def test_incremental_eval_equals_one_shot(model_name):
    """Prefill in chunks then decode one by one (KV cache, sliding window, router context)."""
    c = case(model_name)
    for mixer, key in ((c.mixer, "learned_logits"), (c.context_mixer, "context_logits")):
        with mixer.session() as s:
            rows = [s.eval(c.tokens[:5], "all")]
            rows += [s.eval(c.tokens[5:9], "all")]
            rows += [s.eval([t], "all") for t in c.tokens[9:]]
            assert s.n_past == len(c.tokens)
            logits = np.concatenate(rows)
            assert max_diff(logits, c.expected[key]) < TOL
            last = s.eval(c.tokens[:1], "last")
            assert last.shape == (c.model.info.n_vocab,)


def test_eval_last_and_none_and_out_buffer(llama_mixer, tokens, llama_expected):
    with llama_mixer.session() as s:
        assert s.eval(tokens[:4], logits="none") is None
        buf = np.full(128, np.nan, dtype=np.float32)
        got = s.eval(tokens[4:], logits=lmx.Logits.LAST, out=buf)
        assert got is buf  # written in place, no copy
        assert max_diff(buf, llama_expected["learned_logits"][-1]) < TOL
