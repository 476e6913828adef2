"""(c) Every error path: each exception class raised by a real trigger, carrying the status and the
library's message; bad paths, bad shapes, token ids out of range, closed objects."""

from __future__ import annotations

import ctypes
import json
import shutil
import struct

import numpy as np
import pytest

import loramixer as lmx
from loramixer import capi
from conftest import EXPERTS, build_mixer, fixture_dir
from lmx_oracle import write_safetensors

ALL_CLASSES = {
    -1: lmx.InvalidArgumentError, -2: lmx.LoraMixerIOError, -3: lmx.FormatError, -4: lmx.ShapeError,
    -5: lmx.PluginError, -6: lmx.ABIError, -7: lmx.OutOfMemoryError, -8: lmx.StateError,
    -9: lmx.NotFoundError, -10: lmx.CancelledError,
}


def check(excinfo, cls, status, *fragments):
    error = excinfo.value
    assert type(error) is cls, f"{type(error).__name__} is not {cls.__name__}: {error}"
    assert isinstance(error, lmx.LoraMixerError)
    assert error.status == status
    assert error.message and str(error) == error.message
    for fragment in fragments:
        assert fragment in error.message, f"{fragment!r} not in {error.message!r}"


def test_class_per_status_and_status_strings():
    names = {-1: "invalid argument", -2: "i/o", -3: "format", -4: "shape", -5: "plugin", -6: "abi",
             -7: "out of memory", -8: "state", -9: "not found", -10: "cancelled"}
    for status, cls in ALL_CLASSES.items():
        assert lmx.error_class(status) is cls and cls.default_status == status
        assert issubclass(cls, lmx.LoraMixerError)
        assert names[status] in lmx.status_string(status).lower()
        assert cls("m").status == status
    assert lmx.status_string(0) == "ok"
    assert lmx.status_string(-999) == "unknown status"
    assert lmx.error_class(-999) is lmx.LoraMixerError
    # Built-in bases for Pythonic except clauses.
    assert issubclass(lmx.InvalidArgumentError, ValueError) and issubclass(lmx.ShapeError, ValueError)
    assert issubclass(lmx.LoraMixerIOError, OSError) and issubclass(lmx.NotFoundError, LookupError)
    assert issubclass(lmx.ClosedError, lmx.InvalidArgumentError)
    assert lmx.LoraMixerIOError("a b").message == "a b"  # OSError's 2-arg constructor not involved


def test_cancelled_from_a_training_progress_callback(tmp_path, llama_mixer):
    """LMX_ERR_CANCELLED: a progress callback of lmx_mixer_train asking to stop (Mixer.train's
    progress returning False). test_training.py covers the rest of cancelling."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(f'{{"prompt_tokens": [3, {10 + i}], "completion_tokens": [40, 41]}}\n' for i in range(8)))
    with lmx.Mixer(llama_mixer.model) as mixer:
        mixer.add_peft("e0", fixture_dir("llama_f32") / "adapters" / "e0")
        with pytest.raises(lmx.CancelledError) as excinfo:
            mixer.train(data, steps=3, batch_size=4, n_threads=1, progress=lambda p: False)
        check(excinfo, lmx.CancelledError, -10, "cancelled", "step 1 of 3")
    # The mapping, through the same errcheck path the library's statuses take.
    errcheck = capi._make_errcheck(lambda: b"lmx_x: cancelled by the host")
    with pytest.raises(lmx.CancelledError) as excinfo:
        errcheck(-10, capi.lib().lmx_session_eval, ())
    check(excinfo, lmx.CancelledError, -10, "cancelled by the host")


# ---------------------------------------------------------------------------------------- IO
def test_io_errors(tmp_path, llama_mixer):
    with pytest.raises(lmx.LoraMixerIOError) as excinfo:
        lmx.Model(tmp_path / "no-such-model")
    check(excinfo, lmx.LoraMixerIOError, -2, "no-such-model", "does not exist")
    assert "config.json" not in excinfo.value.message  # says the folder is missing, not what it lacks (as lmx)
    assert isinstance(excinfo.value, OSError)
    (tmp_path / "only-config").mkdir()
    shutil.copy(fixture_dir("llama_f32") / "config.json", tmp_path / "only-config")
    with pytest.raises(lmx.LoraMixerIOError) as excinfo:
        lmx.Model(tmp_path / "only-config")
    check(excinfo, lmx.LoraMixerIOError, -2, "model.safetensors")
    with lmx.Mixer(llama_mixer.model) as mixer:
        with pytest.raises(lmx.LoraMixerIOError) as excinfo:
            mixer.add_peft("x", tmp_path / "no-adapter")
        check(excinfo, lmx.LoraMixerIOError, -2, "no-adapter", "does not exist")
        assert "adapter_config.json" not in excinfo.value.message
        with pytest.raises(lmx.LoraMixerIOError, match="no-router.safetensors does not exist"):
            mixer.load_router(tmp_path / "no-router.safetensors")
        with pytest.raises(lmx.LoraMixerIOError, match="no-data.jsonl does not exist"):
            mixer.train(tmp_path / "no-data.jsonl")
        with pytest.raises(lmx.LoraMixerIOError):
            mixer.load_plugin(tmp_path / "no-plugin.so")
        assert mixer.experts == []


# ---------------------------------------------------------------------------------------- format
def _model_folder(tmp_path, name, config_edit=None, weights_bytes=None):
    folder = tmp_path / name
    folder.mkdir()
    config = json.loads((fixture_dir("llama_f32") / "config.json").read_text())
    if config_edit:
        config_edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    if weights_bytes is None:
        shutil.copy(fixture_dir("llama_f32") / "model.safetensors", folder)
    else:
        (folder / "model.safetensors").write_bytes(weights_bytes)
    return folder


def test_format_errors(tmp_path, llama_mixer):
    garbage = _model_folder(tmp_path, "garbage", weights_bytes=struct.pack("<Q", 12) + b"{not json!!}")
    with pytest.raises(lmx.FormatError) as excinfo:
        lmx.Model(garbage)
    check(excinfo, lmx.FormatError, -3, "model.safetensors")
    truncated = _model_folder(tmp_path, "truncated", weights_bytes=b"\x01\x02\x03")
    with pytest.raises(lmx.FormatError):
        lmx.Model(truncated)
    unknown = _model_folder(tmp_path, "unknown", lambda c: c.update(architectures=["GPT2LMHeadModel"],
                                                                    model_type="gpt2"))
    with pytest.raises(lmx.FormatError) as excinfo:
        lmx.Model(unknown)
    check(excinfo, lmx.FormatError, -3, "GPT2")
    (tmp_path / "bad-json").mkdir()
    (tmp_path / "bad-json" / "config.json").write_text("{")
    with pytest.raises(lmx.FormatError):
        lmx.Model(tmp_path / "bad-json")
    # A safetensors file that is not a router.
    with lmx.Mixer(llama_mixer.model) as mixer:
        for e in EXPERTS:
            mixer.add_peft(e, fixture_dir("llama_f32") / "adapters" / e)
        with pytest.raises(lmx.FormatError) as excinfo:
            mixer.load_router(fixture_dir("llama_f32") / "model.safetensors")
        check(excinfo, lmx.FormatError, -3, "model.safetensors")


# ---------------------------------------------------------------------------------------- shape
def test_shape_errors(tmp_path, llama_model):
    wrong = _model_folder(tmp_path, "wrong-shape", lambda c: c.update(hidden_size=48))
    with pytest.raises(lmx.ShapeError) as excinfo:
        lmx.Model(wrong)
    check(excinfo, lmx.ShapeError, -4)
    with lmx.Mixer(llama_model) as mixer:
        # An adapter made for another model (mistral: k/v out 16 features, here 48).
        with pytest.raises(lmx.ShapeError) as excinfo:
            mixer.add_peft("m0", fixture_dir("mistral_f32") / "adapters" / "e0")
        check(excinfo, lmx.ShapeError, -4, "proj")
        # Tensors from memory whose features do not match the model (q_proj is 64 -> 96).
        a, b = np.zeros((4, 65), np.float32), np.zeros((96, 4), np.float32)
        with pytest.raises(lmx.ShapeError) as excinfo:
            mixer.add_lora("bad", {(0, "q_proj"): (a, b)}, alpha=4)
        check(excinfo, lmx.ShapeError, -4, "65")
        # Ranks that disagree are refused on the Python side, before the library reads anything.
        with pytest.raises(lmx.ShapeError, match="rank"):
            mixer.add_lora("bad", {(0, "q_proj"): (np.zeros((4, 64), np.float32), np.zeros((96, 3), np.float32))})
        with pytest.raises(lmx.ShapeError, match="2-D"):
            mixer.add_lora("bad", {(0, "q_proj"): (np.zeros(64, np.float32), np.zeros((96, 4), np.float32))})
        # A custom expert declared with features the model does not have.
        with pytest.raises(lmx.ShapeError) as excinfo:
            mixer.add_custom("c", lambda *a: None, ["o_proj"], features={"o_proj": (64, 64)})
        check(excinfo, lmx.ShapeError, -4, "o_proj")
        with pytest.raises(lmx.ShapeError):
            mixer.add_custom("c", lambda *a: None, ["o_proj"], layers=[7])
        assert mixer.experts == []
        with mixer.session() as s:
            with pytest.raises(lmx.ShapeError, match="expected"):
                s.eval([1, 2], logits="all", out=np.zeros(128, np.float32))
            assert s.n_past == 0


def test_shape_error_from_the_library_buffer_check(llama_mixer):
    """The library's own capacity check (a raw call with too small a buffer)."""
    with llama_mixer.session() as s:
        tokens = np.array([1, 2, 3], np.int32)
        small = np.zeros(10, np.float32)
        with pytest.raises(lmx.ShapeError) as excinfo:
            capi.lib().lmx_session_eval(s._handle, tokens.ctypes.data, 3, capi.LMX_LOGITS_ALL, small.ctypes.data, 10)
        check(excinfo, lmx.ShapeError, -4, "384")
        assert s.n_past == 0


# ---------------------------------------------------------------------------------------- invalid argument
def test_invalid_arguments(llama_mixer, llama_model, tokens):
    with llama_mixer.session() as s:
        with pytest.raises(lmx.InvalidArgumentError) as excinfo:
            s.eval([1, 2, 128])
        check(excinfo, lmx.InvalidArgumentError, -1, "128", "vocab")
        with pytest.raises(lmx.InvalidArgumentError):
            s.eval([-1])
        with pytest.raises(lmx.InvalidArgumentError) as excinfo:
            s.eval([])
        check(excinfo, lmx.InvalidArgumentError, -1, "tokens")
        with pytest.raises(lmx.InvalidArgumentError, match="int32"):
            s.eval([2**40])
        with pytest.raises(lmx.InvalidArgumentError, match="integers"):
            s.eval([1.5])
        with pytest.raises(lmx.InvalidArgumentError):
            s.eval([1], logits="some")
        assert s.n_past == 0
        with pytest.raises(lmx.InvalidArgumentError, match="top_k"):
            s.top_k = 4
        with pytest.raises(lmx.InvalidArgumentError):
            s.set_temperature(-1.0)
        with pytest.raises(lmx.InvalidArgumentError):
            s.set_temperature(float("nan"))
        with pytest.raises(lmx.InvalidArgumentError):
            s.set_fixed_weights([1.0, 0.0])
        with pytest.raises(lmx.InvalidArgumentError):
            s.set_fixed_weights([1.0, float("inf"), 0.0])
        with pytest.raises(lmx.InvalidArgumentError):
            s.set_routing("sideways")
        with pytest.raises(lmx.InvalidArgumentError):
            s.set_routing(17)
        with pytest.raises(lmx.InvalidArgumentError, match="128"):
            s.generate([5, 128], max_tokens=2)
        with pytest.raises(lmx.InvalidArgumentError):
            s.generate(tokens[:2], max_tokens=-1)
        with pytest.raises(lmx.InvalidArgumentError, match="temperature"):
            s.generate(tokens[:2], max_tokens=2, temperature=-1.0)
        with pytest.raises(lmx.InvalidArgumentError, match="top_p"):
            s.generate(tokens[:2], max_tokens=2, temperature=1.0, top_p=0.0)
        assert s.n_past == 0
        # Still fine after all that.
        assert s.eval(tokens).shape == (128,)
    with pytest.raises(lmx.InvalidArgumentError) as excinfo:
        lmx.Session(llama_mixer, n_ctx=65)
    check(excinfo, lmx.InvalidArgumentError, -1, "n_ctx")
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_peft("a", fixture_dir("llama_f32") / "adapters" / "e0")
        with pytest.raises(lmx.InvalidArgumentError) as excinfo:
            mixer.add_peft("a", fixture_dir("llama_f32") / "adapters" / "e1")
        check(excinfo, lmx.InvalidArgumentError, -1, "'a'")
        with pytest.raises(lmx.InvalidArgumentError):
            mixer.add_peft("", fixture_dir("llama_f32") / "adapters" / "e1")
        with pytest.raises(lmx.InvalidArgumentError, match="NUL"):
            mixer.add_peft("x\0y", fixture_dir("llama_f32") / "adapters" / "e1")
        with pytest.raises(lmx.InvalidArgumentError):
            mixer.add_lora("none", {})
        with pytest.raises(lmx.InvalidArgumentError):
            mixer.add_custom("c", lambda *a: None, ["qq_proj"])
        with pytest.raises(lmx.InvalidArgumentError):
            mixer.add_custom("c", lambda *a: None, [])
        with pytest.raises(TypeError):
            mixer.add_custom("c", "not callable", ["q_proj"])
        assert mixer.experts == ["a"]
    with pytest.raises(lmx.InvalidArgumentError):
        lmx.Model(fixture_dir("llama_f32"), load_mode="swap")
    with pytest.raises(lmx.InvalidArgumentError, match="NUL"):
        lmx.Model("bad\0path")
    with pytest.raises(lmx.InvalidArgumentError):
        llama_model.module_shape("conv1d")


def test_raw_calls_with_bad_handles(llama_mixer):
    """The library refuses NULL and wrong-kind handles (what ClosedError keeps Python from sending)."""
    lib = capi.lib()
    n = ctypes.c_size_t()
    with pytest.raises(lmx.InvalidArgumentError, match="NULL"):
        lib.lmx_mixer_expert_count(None, ctypes.byref(n))
    with pytest.raises(lmx.InvalidArgumentError, match="lmx_mixer"):
        lib.lmx_session_n_past(llama_mixer._handle, ctypes.byref(n))
    assert "lmx_session_n_past" in lmx.last_error()


# ---------------------------------------------------------------------------------------- ABI, OOM
def test_abi_error_from_struct_size(llama_model):
    info = capi.lmx_model_info()
    info.struct_size = 2  # smaller than struct_size itself
    with pytest.raises(lmx.ABIError) as excinfo:
        capi.lib().lmx_model_get_info(llama_model._handle, ctypes.byref(info))
    check(excinfo, lmx.ABIError, -6, "struct_size")
    params = capi.lib().lmx_session_params_default()
    params.struct_size = 4
    out = ctypes.c_void_p()
    with lmx.Mixer(llama_model) as mixer:
        with pytest.raises(lmx.ABIError):
            capi.lib().lmx_session_create(mixer._handle, ctypes.byref(params), ctypes.byref(out))
    assert out.value is None


def test_out_of_memory_from_overflowing_shape(tmp_path):
    header = json.dumps({"model.embed_tokens.weight": {"dtype": "F32", "shape": [2**40, 2**40],
                                                       "data_offsets": [0, 16]}}).encode()
    folder = _model_folder(tmp_path, "huge", weights_bytes=struct.pack("<Q", len(header)) + header + bytes(16))
    with pytest.raises(lmx.OutOfMemoryError) as excinfo:
        lmx.Model(folder)
    check(excinfo, lmx.OutOfMemoryError, -7, "overflows")
    assert isinstance(excinfo.value, MemoryError)


# ---------------------------------------------------------------------------------------- state
def test_state_errors(llama_model, llama_mixer, tokens):
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_peft("e0", fixture_dir("llama_f32") / "adapters" / "e0")
        with mixer.session() as s:
            with pytest.raises(lmx.StateError) as excinfo:
                s.set_routing("fixed")  # no weights yet
            check(excinfo, lmx.StateError, -8, "fixed")
            with pytest.raises(lmx.StateError) as excinfo:
                s.routing = "learned"  # no router
            check(excinfo, lmx.StateError, -8, "router")
            assert isinstance(excinfo.value, RuntimeError)
    with pytest.raises(lmx.StateError, match="before loading the router") as excinfo:
        llama_mixer.add_peft("late", fixture_dir("llama_f32") / "adapters" / "e0")
    check(excinfo, lmx.StateError, -8, "late")
    assert llama_mixer.experts == list(EXPERTS)
    with lmx.Mixer(llama_model) as empty, empty.session() as s:
        with pytest.raises(lmx.StateError):
            s.set_routing("uniform")
    with llama_mixer.session(n_ctx=4) as s:
        with pytest.raises(lmx.StateError) as excinfo:
            s.eval(tokens[:5])
        check(excinfo, lmx.StateError, -8, "context full")
        s.eval(tokens[:4], logits="none")
        with pytest.raises(lmx.StateError):
            s.eval(tokens[:1])
        assert s.n_past == 4
        s.reset()
        assert s.n_past == 0
    with llama_mixer.session(trace=False) as s:
        s.eval(tokens[:3], logits="none")
        with pytest.raises(lmx.StateError) as excinfo:
            s.trace()
        check(excinfo, lmx.StateError, -8, "trac")


def test_session_busy_is_a_state_error(llama_model):
    """A custom expert calling back into the session it is evaluating is refused, not deadlocked."""
    seen = []
    session_box = []

    def reentrant(layer, module, x, out):
        session_box[0].eval([1])  # the same session, re-entered from inside its own eval

    with lmx.Mixer(llama_model) as mixer:
        mixer.add_custom("r", reentrant, ["q_proj"])
        with mixer.session() as s:
            s.set_fixed_weights([1.0])
            session_box.append(s)
            with pytest.raises(lmx.StateError, match="in use") as excinfo:
                s.eval([1, 2])
            assert isinstance(excinfo.value.__cause__, lmx.PluginError)
            seen.append(s.n_past)
    assert seen == [0]


# ---------------------------------------------------------------------------------------- not found
def test_not_found_errors(llama_model, llama_mixer):
    with pytest.raises(lmx.NotFoundError) as excinfo:
        llama_mixer.expert_name(3)
    check(excinfo, lmx.NotFoundError, -9, "3")
    with pytest.raises(lmx.NotFoundError):
        llama_mixer.unload_plugin("org.example.not-loaded")
    with pytest.raises(lmx.NotFoundError):
        llama_mixer.plugin_string(0, capi.LMX_PLUGIN_ID)
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_peft("e0", fixture_dir("llama_f32") / "adapters" / "e0")
        mixer.add_peft("e1", fixture_dir("llama_f32") / "adapters" / "e1")
        with pytest.raises(lmx.NotFoundError) as excinfo:
            mixer.load_router(fixture_dir("llama_f32") / "router.safetensors")  # names e2 too
        check(excinfo, lmx.NotFoundError, -9, "e2")
        mixer.add_peft("e2", fixture_dir("llama_f32") / "adapters" / "e2")
        mixer.add_peft("e3", fixture_dir("llama_f32") / "adapters" / "e0")
        with pytest.raises(lmx.NotFoundError) as excinfo:
            mixer.load_router(fixture_dir("llama_f32") / "router.safetensors")  # does not list e3
        check(excinfo, lmx.NotFoundError, -9, "e3")


def test_router_with_wrong_shapes(tmp_path, llama_model):
    tensors = {f"router.layers.{i}.weight": np.zeros((3, 32), np.float32) for i in range(2)}
    write_safetensors(tmp_path / "r.safetensors", tensors, {
        "format": "loramixer.router", "version": "1", "experts": json.dumps(list(EXPERTS)), "top_k": "2",
        "scope": "layer", "temperature": "1.0"})
    with build_mixer(llama_model, "llama_f32", router=None) as mixer:
        with pytest.raises(lmx.ShapeError) as excinfo:
            mixer.load_router(tmp_path / "r.safetensors")
        check(excinfo, lmx.ShapeError, -4, "64")


# ---------------------------------------------------------------------------------------- closed
def test_closed_objects_raise(tokens):
    model = lmx.Model(fixture_dir("llama_f32"))
    mixer = build_mixer(model, "llama_f32")
    session = mixer.session()
    session.close()
    session.close()  # twice: a no-op
    for call in (lambda: session.eval(tokens), lambda: session.generate(tokens), lambda: session.n_past,
                 lambda: session.trace(), lambda: session.reset(), lambda: session.set_routing("none"),
                 lambda: session.__enter__()):
        with pytest.raises(lmx.ClosedError, match="Session is closed") as excinfo:
            call()
        assert excinfo.value.status == -1 and isinstance(excinfo.value, ValueError)
    mixer.close()
    for call in (lambda: mixer.experts, lambda: mixer.add_peft("x", "y"), lambda: mixer.session(),
                 lambda: mixer.load_router("r"), lambda: mixer.plugins, lambda: mixer.add_custom("c", print, ["q_proj"])):
        with pytest.raises(lmx.ClosedError, match="Mixer is closed"):
            call()
    model.close()
    model.close()
    with pytest.raises(lmx.ClosedError, match="Model is closed"):
        model.info
    with pytest.raises(lmx.ClosedError):
        model.module_shape("q_proj")
    with pytest.raises(lmx.ClosedError):
        lmx.Mixer(model)
    assert "closed" in repr(model) and "closed" in repr(mixer) and "closed" in repr(session)


# ---------------------------------------------------------------------------------------- plugin
def test_plugin_error_without_a_compiler(tmp_path, llama_model):
    """Not a shared library: PluginError naming the file (test_plugins.py covers the rest)."""
    bogus = tmp_path / "bogus.so"
    bogus.write_text("not an ELF file\n")
    bogus.chmod(0o755)
    with lmx.Mixer(llama_model) as mixer:
        with pytest.raises(lmx.PluginError) as excinfo:
            mixer.load_plugin(bogus)
        check(excinfo, lmx.PluginError, -5, "bogus.so")
        assert mixer.plugins == []


def test_text_prompt_is_a_type_error_that_says_what_to_pass(llama_mixer):
    with llama_mixer.session() as s:
        for call in (lambda: s.eval("12+30="), lambda: s.generate("12+30=", max_tokens=1),
                     lambda: s.generate([1], max_tokens=1, stop="\n"), lambda: s.eval(b"12+30=")):
            with pytest.raises(TypeError) as excinfo:
                call()
            message = str(excinfo.value)
            assert "token ids" in message and ".encode())" in message and "tokenize" in message, message
        with pytest.raises(TypeError, match=r"list\('12\+30='\.encode\(\)\)"):
            s.eval("12+30=")
        assert s.n_past == 0
        # What the message suggests works (a byte-level prompt on a model whose vocabulary has 128 ids).
        s.eval(list("12+30=".encode()))
        assert s.n_past == 6


def test_positions_are_0_based_like_the_cli(llama_mixer):
    """The library's message (the C API's lmx_last_error) and the package's own count positions
    from 0 and say so, as `lmx` does (Tests/cli/test_consistency.py)."""
    with llama_mixer.session() as s:
        with pytest.raises(lmx.InvalidArgumentError, match=r"token id 128 at position 2 \(0-based\) is out of range"):
            s.eval([1, 2, 128])
        with pytest.raises(lmx.InvalidArgumentError, match=r"token id 4294967296 at position 1 \(0-based\)"):
            s.eval([1, 2**32])
