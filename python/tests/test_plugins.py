"""(g) Plugins: tiny plugins compiled here (when a C compiler exists) for every load path, error and
policy; and the repository's example plugins when built (examples-c/build/plugins/*.so)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import loramixer as lmx
from conftest import EXAMPLE_PLUGINS, EXPERTS, compile_shared, fixture_dir, max_diff
from lmx_oracle import Expert, load_peft

TOL = 1e-4

PLUGIN_SOURCE = r"""
#include <loramixer_plugin.h>
#include <stdio.h>
#include <string.h>
#ifndef PLUGIN_ABI
#define PLUGIN_ABI LMX_PLUGIN_ABI_VERSION
#endif
#ifndef DESCRIPTOR_SIZE
#define DESCRIPTOR_SIZE sizeof(lmx_plugin_descriptor)
#endif
static char marker[2048];

/* echo: adds 0.1 * x[j % in] to output j of o_proj (any in/out). */
static lmx_status forward(void *user, uint32_t layer, uint32_t module, const float *x, float *y, size_t n,
                          size_t in, size_t out) {
    (void)user; (void)layer; (void)module;
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < out; j++) y[r * out + j] += 0.1f * x[r * in + j % in];
    return LMX_OK;
}

static void plugin_shutdown(void) {
    FILE *f = marker[0] ? fopen(marker, "a") : NULL;
    if (f) { fputs("shutdown\n", f); fclose(f); }
}

/* config: "PEFT_DIR|MARKER_PATH" */
static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    char dir[2048];
    const char *bar = strchr(config, '|');
    if (!bar || (size_t)(bar - config) >= sizeof dir) {
        host->set_error(reg, "pytest plugin: config must be DIR|MARKER");
        return LMX_ERR_INVALID_ARGUMENT;
    }
    memcpy(dir, config, (size_t)(bar - config));
    dir[bar - config] = 0;
    snprintf(marker, sizeof marker, "%s", bar + 1);
    uint32_t in, out, modules[] = {LMX_MODULE_O_PROJ};
    lmx_status st = host->module_shape(reg, LMX_MODULE_O_PROJ, &in, &out);
    if (st != LMX_OK) return st;
#ifdef BAD_SHAPE
    in += 1;
#endif
    lmx_custom_expert_desc desc = {.struct_size = sizeof desc, .modules = modules, .in_features = &in,
                                   .out_features = &out, .n_modules = 1, .forward = forward};
    st = host->register_custom(reg, "echo", &desc);
    if (st != LMX_OK) return st;
#ifdef FAIL_INIT
    host->set_error(reg, "pytest: init refused on purpose");
    return LMX_ERR_INVALID_ARGUMENT;
#endif
    return host->register_peft(reg, "p_peft", dir);
}

static const lmx_plugin_descriptor descriptor = {PLUGIN_ABI, DESCRIPTOR_SIZE, PLUGIN_ID, "1.2.3",
    "pytest plugin: an echo expert and a PEFT folder", "MIT", init, plugin_shutdown};
LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }
"""

VARIANTS = {
    "good": ['-DPLUGIN_ID="org.loramixer.pytest.good"'],
    "minor": ['-DPLUGIN_ID="org.loramixer.pytest.minor"', "-DPLUGIN_ABI=((1u<<16)|7u)"],
    "bad_abi": ['-DPLUGIN_ID="org.loramixer.pytest.badabi"', "-DPLUGIN_ABI=((2u<<16)|0u)"],
    "small": ['-DPLUGIN_ID="org.loramixer.pytest.small"', "-DDESCRIPTOR_SIZE=8"],
    "fail_init": ['-DPLUGIN_ID="org.loramixer.pytest.fail"', "-DFAIL_INIT"],
    "bad_shape": ['-DPLUGIN_ID="org.loramixer.pytest.shape"', "-DBAD_SHAPE"],
}


@pytest.fixture(scope="module")
def plugins(cc, tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugins")
    os.chmod(folder, 0o755)
    built = {name: compile_shared(cc, PLUGIN_SOURCE, folder / f"{name}.so", flags) for name, flags in VARIANTS.items()}
    built["no_entry"] = compile_shared(cc, "int lmx_not_the_entry(void) { return 1; }\n", folder / "no_entry.so")
    built["text"] = folder / "text.so"
    built["text"].write_text("this is not a shared library\n")
    os.chmod(built["text"], 0o755)
    return built


def echo(layer, module, u):
    if module != "o_proj":
        return None
    return 0.1 * u[:, np.arange(64) % u.shape[1]]


def config_for(tmp_path, name="e0"):
    return f"{fixture_dir('llama_f32') / 'adapters' / name}|{tmp_path / 'marker.txt'}"


def test_load_evaluate_unload(plugins, llama_model, llama_oracle, tokens, tmp_path):
    marker = tmp_path / "marker.txt"
    mixer = lmx.Mixer(llama_model)
    info = mixer.load_plugin(plugins["good"], config=config_for(tmp_path))
    assert info == lmx.PluginInfo(index=0, id="org.loramixer.pytest.good", version="1.2.3",
                                  description="pytest plugin: an echo expert and a PEFT folder", license="MIT",
                                  path=str(plugins["good"]), experts=("echo", "p_peft"))
    assert mixer.plugins == [info] and mixer.plugin_count == 1
    assert mixer.experts == ["echo", "p_peft"]
    session = mixer.session()
    session.fixed_weights = [0.7, 0.5]
    logits = session.eval(tokens, "all")
    experts = [Expert("echo", fn=echo), load_peft(fixture_dir("llama_f32") / "adapters" / "e0")]
    ref, _, _ = llama_oracle.forward(tokens, experts, routing="fixed", fixed=[0.7, 0.5])
    assert max_diff(logits, ref) < TOL
    # Unload: the experts leave the mixer; the session made before keeps using them.
    mixer.unload_plugin(info.id)
    assert mixer.experts == [] and mixer.plugins == []
    session.reset()
    np.testing.assert_array_equal(session.eval(tokens, "all"), logits)
    assert not marker.exists(), "shutdown ran while a session still used the plugin's experts"
    session.close()
    assert marker.read_text() == "shutdown\n"
    with pytest.raises(lmx.NotFoundError):
        mixer.unload_plugin(info)
    mixer.close()


def test_plugin_with_a_router_learned_routing(plugins, llama_model, tokens, tmp_path):
    """The mixer's own experts plus a plugin's: a router listing all of them works."""
    with lmx.Mixer(llama_model) as mixer:
        mixer.load_plugin(plugins["good"], config=config_for(tmp_path, "e1"))
        assert mixer.experts == ["echo", "p_peft"]
        with mixer.session() as s:
            s.routing = "uniform"
            uniform = s.eval(tokens, "all")
        assert np.all(np.isfinite(uniform))


def test_newer_minor_abi_is_accepted(plugins, llama_model, tmp_path):
    with lmx.Mixer(llama_model) as mixer:
        assert mixer.load_plugin(plugins["minor"], config=config_for(tmp_path)).id == "org.loramixer.pytest.minor"


@pytest.mark.parametrize("variant,cls,fragment", [
    ("bad_abi", lmx.ABIError, "2."),
    ("small", lmx.ABIError, "descriptor"),
    ("fail_init", lmx.PluginError, "pytest: init refused on purpose"),
    ("bad_shape", lmx.ShapeError, "echo"),
    ("no_entry", lmx.PluginError, "lmx_plugin_entry"),
    ("text", lmx.PluginError, "text.so"),
])
def test_plugin_errors(plugins, llama_model, tmp_path, variant, cls, fragment):
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_peft("own", fixture_dir("llama_f32") / "adapters" / "e2")
        with pytest.raises(cls) as excinfo:
            mixer.load_plugin(plugins[variant], config=config_for(tmp_path))
        assert type(excinfo.value) is cls and excinfo.value.status == cls.default_status
        assert fragment in excinfo.value.message, excinfo.value.message
        # Staged: nothing of the failed plugin is visible; the mixer keeps working.
        assert mixer.experts == ["own"] and mixer.plugins == []
        with mixer.session() as s:
            s.fixed_weights = [1.0]
            assert s.eval([1, 2, 3]).shape == (128,)


def test_bad_config_message_reaches_python(plugins, llama_model):
    with lmx.Mixer(llama_model) as mixer:
        with pytest.raises(lmx.LoraMixerError, match="config must be DIR|MARKER") as excinfo:
            mixer.load_plugin(plugins["good"], config="no separator")
        assert excinfo.value.status in (-1, -5)


def test_name_clash_is_refused(plugins, llama_model, tmp_path):
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_custom("echo", lambda *a: None, ["q_proj"])
        with pytest.raises(lmx.LoraMixerError, match="echo"):
            mixer.load_plugin(plugins["good"], config=config_for(tmp_path))
        assert mixer.experts == ["echo"]


def test_sha256_policy(plugins, llama_model, tmp_path):
    digest = hashlib.sha256(plugins["good"].read_bytes()).hexdigest()
    with lmx.Mixer(llama_model) as mixer:
        with pytest.raises(lmx.PluginError, match="SHA-256|sha256|sha-256"):
            mixer.load_plugin(plugins["good"], config=config_for(tmp_path), allowed_sha256=["0" * 64])
        assert mixer.plugins == []
        info = mixer.load_plugin(plugins["good"], config=config_for(tmp_path), allowed_sha256=["0" * 64, digest])
        assert info.experts == ("echo", "p_peft")


def test_writable_policy(plugins, llama_model, tmp_path):
    folder = tmp_path / "w"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    copy = folder / "writable.so"
    shutil.copy(plugins["minor"], copy)
    os.chmod(copy, 0o777)
    with lmx.Mixer(llama_model) as mixer:
        with pytest.raises(lmx.PluginError, match="writable"):
            mixer.load_plugin(copy, config=config_for(tmp_path))
        assert mixer.load_plugin(copy, config=config_for(tmp_path), allow_writable=True).experts == ("echo", "p_peft")
    os.chmod(copy, 0o755)
    os.chmod(folder, 0o777)  # now the folder is writable by others
    try:
        with lmx.Mixer(llama_model) as mixer:
            with pytest.raises(lmx.PluginError, match="writable"):
                mixer.load_plugin(copy, config=config_for(tmp_path))
    finally:
        os.chmod(folder, 0o755)


# ------------------------------------------------------------------------------ the example plugins
def example_plugins_dir() -> Path:
    return Path(os.environ.get("LORAMIXER_EXAMPLE_PLUGINS", EXAMPLE_PLUGINS))


def example(name: str) -> Path:
    path = example_plugins_dir() / f"{name}.so"
    if not path.exists():
        pytest.skip(f"{path} is not built: run `make -C examples-c plugins` first "
                    "(after `swift build -c release`)")
    return path


def test_every_example_plugin_loads_or_fails_cleanly(llama_model):
    found = sorted(example_plugins_dir().glob("*.so"))
    if not found:
        pytest.skip(f"no example plugins in {example_plugins_dir()}: run `make -C examples-c plugins` first")
    for path in found:
        with lmx.Mixer(llama_model) as mixer:
            try:
                info = mixer.load_plugin(path)
            except lmx.LoraMixerError as error:  # e.g. a plugin that needs a config
                assert error.message and error.status is not None
                assert mixer.plugins == [] and mixer.experts == []
            else:
                assert info.id and info.version and info.license and info.path == str(path)
                assert list(info.experts) == mixer.experts
                mixer.unload_plugin(info.id)
                assert mixer.experts == []


def test_example_peft_folders_equals_the_fixture(llama_model, tokens, llama_expected):
    path = example("peft_folders")
    folder = fixture_dir("llama_f32")
    config = ";".join(f"{e}={folder / 'adapters' / e}" for e in EXPERTS) + f";router={folder / 'router.safetensors'}"
    with lmx.Mixer(llama_model) as mixer:
        info = mixer.load_plugin(path, config=config)
        assert info.id == "org.loramixer.example.peft-folders" and info.experts == EXPERTS
        with mixer.session() as s:
            assert max_diff(s.eval(tokens, "all"), llama_expected["learned_logits"]) < TOL
            mixer.unload_plugin(info.id)
            assert mixer.experts == []
            s.reset()
            assert max_diff(s.eval(tokens, "all"), llama_expected["learned_logits"]) < TOL
        with pytest.raises(lmx.LoraMixerError, match="="):
            mixer.load_plugin(path, config="no-equals-sign")


def test_example_custom_scaler_matches_its_documented_formula(llama_model, llama_oracle, tokens):
    path = example("custom_scaler")
    scale = 0.25

    def scaler(layer, module, u):
        if layer != 1:
            return None
        n_in = u.shape[1]
        if module == "o_proj":
            out = np.zeros((u.shape[0], 64))
            k = min(n_in, 64)
            out[:, :k] = scale * u[:, :k]
            return out
        if module == "down_proj":
            uu = (np.array([(7 * j) % 13 for j in range(64)]) - 6) / 6.0
            vv = (np.array([(5 * i) % 11 for i in range(n_in)]) - 5) / (5.0 * n_in)
            return scale * (u @ vv)[:, None] * uu[None, :]
        return None

    with lmx.Mixer(llama_model) as mixer:
        info = mixer.load_plugin(path, config=f"scale={scale};layers=1")
        assert info.experts == ("scaler",)
        with mixer.session() as s:
            s.fixed_weights = [0.8]
            logits = s.eval(tokens, "all")
    ref, _, _ = llama_oracle.forward(tokens, [Expert("scaler", fn=scaler)], routing="fixed", fixed=[0.8])
    assert max_diff(logits, ref) < TOL


def test_example_memory_lora_releases_borrowed_buffers(llama_model, tokens, tmp_path):
    path = example("memory_lora")
    log = tmp_path / "release.log"
    mixer = lmx.Mixer(llama_model)
    info = mixer.load_plugin(path, config=f"seed=3;rank=2;alpha=4;release_log={log}")
    assert set(info.experts) == {"mem-copied", "mem-borrowed"}
    session = mixer.session()
    session.set_routing("uniform")
    mixed = session.eval(tokens, "all")
    with mixer.session() as base:
        assert max_diff(mixed, base.eval(tokens, "all")) > 1e-3  # the experts change the logits
    mixer.unload_plugin(info.id)
    mixer.close()
    assert not log.exists() or "mem-borrowed" not in log.read_text()
    session.close()
    assert log.read_text().count("released mem-borrowed") == 1
