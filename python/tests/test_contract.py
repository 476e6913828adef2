"""The header's newer promises from Python: session getters, the abort callback (rolled back,
session usable after), the log callback (plugin messages into a Python function or logging), and
the ctypes declarations of the 0.x integer rule."""

import ctypes
import logging
import os

import numpy as np
import pytest

import loramixer as lmx
from loramixer import capi
from conftest import build_mixer, compile_shared, fixture_dir

LOGGING_PLUGIN = r"""
#include <loramixer_plugin.h>
static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    host->log(reg, LMX_LOG_WARNING, "pytest-log: hello from init");
    return host->register_peft(reg, "logged", config);
}
static const lmx_plugin_descriptor descriptor = {LMX_PLUGIN_ABI_VERSION, sizeof(lmx_plugin_descriptor),
    "org.loramixer.pytest.log", "1.0.0", "logs one line", "MIT", init, NULL};
LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }
"""


@pytest.fixture(scope="module")
def router_mixer():
    model = lmx.Model(fixture_dir("llama_f32"))
    mixer = build_mixer(model, "llama_f32")
    yield mixer
    mixer.close()
    model.close()


def test_getters_read_back(router_mixer):
    with router_mixer.session(n_ctx=32, n_threads=1) as s:
        assert s.routing_in_effect == lmx.Routing.LEARNED
        assert s.top_k_in_effect == 2
        file_temperature = s.temperature_in_effect
        assert file_temperature > 0
        assert s.fixed_weights_in_effect() is None
        assert (s.n_ctx, s.n_threads, s.traced) == (32, 1, True)
        s.set_top_k(1)
        s.set_temperature(2.5)
        s.set_fixed_weights([0.25, 0.5, 0.25])
        s.set_routing("soft")
        assert s.routing_in_effect == lmx.Routing.SOFT
        assert (s.top_k_in_effect, s.temperature_in_effect) == (1, 2.5)
        np.testing.assert_array_equal(s.fixed_weights_in_effect(), np.array([0.25, 0.5, 0.25], dtype=np.float32))
        s.set_top_k(None)
        s.set_temperature(None)
        assert (s.top_k_in_effect, s.temperature_in_effect) == (2, file_temperature)


def test_abort_rolls_back_and_session_stays_usable(router_mixer):
    prompt, nxt = [11, 12, 13, 14], [15]
    with router_mixer.session() as s, router_mixer.session() as ref:
        calls = []
        s.set_abort_callback(lambda: calls.append(1) and False)
        s.eval(prompt, logits="none")
        ref.eval(prompt, logits="none")
        assert len(calls) == 2  # once per layer of the 2-layer fixture
        s.set_abort_callback(lambda: len(calls.append(1) or calls) >= 4)
        with pytest.raises(lmx.CancelledError, match="abort"):
            s.eval(nxt)
        assert s.n_past == 4 and s.trace_size()[0] == 4
        with pytest.raises(lmx.CancelledError):
            s.generate(max_tokens=4)
        assert s.n_past == 4
        s.set_abort_callback(None)
        np.testing.assert_array_equal(s.eval(nxt), ref.eval(nxt))
        assert s.generate(max_tokens=4) == ref.generate(max_tokens=4)


def test_abort_callback_exception_is_chained(router_mixer):
    with router_mixer.session() as s:
        def boom():
            raise RuntimeError("stop here")
        s.set_abort_callback(boom)
        with pytest.raises(RuntimeError, match="stop here"):
            s.eval([1, 2])
        s.set_abort_callback(None)
        assert s.n_past == 0
        s.eval([1, 2])


def test_log_callback_and_logging_bridge(cc, tmp_path, caplog):
    folder = tmp_path / "p"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    so = compile_shared(cc, LOGGING_PLUGIN, folder / "logging_plugin.so")
    peft = str(fixture_dir("llama_f32") / "adapters" / "e0")
    seen = []
    with lmx.Model(fixture_dir("llama_f32")) as model:
        try:
            lmx.set_log_callback(lambda level, source, message: seen.append((level, source, message)))
            with lmx.Mixer(model) as mixer:
                mixer.load_plugin(so, config=peft)
            assert seen == [(2, "org.loramixer.pytest.log", "pytest-log: hello from init")]
            lmx.log_to_logging()
            with caplog.at_level(logging.DEBUG, logger="loramixer.plugin"), lmx.Mixer(model) as mixer:
                mixer.load_plugin(so, config=peft)
            records = [r for r in caplog.records if r.name == "loramixer.plugin.org.loramixer.pytest.log"]
            assert [(r.levelno, r.getMessage()) for r in records] == [(logging.WARNING, "pytest-log: hello from init")]
        finally:
            lmx.set_log_callback(None)
        with lmx.Mixer(model) as mixer:
            mixer.load_plugin(so, config=peft)  # back on stderr
        assert len(seen) == 1


def test_ctypes_follow_the_integer_rule():
    restype, args = capi.FUNCTIONS["lmx_mixer_add_peft"]
    assert args[-1]._type_ is ctypes.c_size_t  # indices are size_t
    fields = dict(capi.lmx_train_params._fields_)
    assert fields["resume"] is ctypes.c_uint32 and fields["steps"] is ctypes.c_uint32  # booleans, counts uint32_t
    assert capi.lmx_token_callback._restype_ is ctypes.c_uint32
    assert capi.lmx_train_progress_fn._restype_ is ctypes.c_uint32
