"""(e) Garbage-collection safety: objects closed or collected in any order, twice, in cycles, at
interpreter exit; children keep working after their parents are closed; handles really freed."""

from __future__ import annotations

import ctypes
import gc
import itertools
import subprocess
import sys
import textwrap

import pytest

import loramixer as lmx
from loramixer import _callbacks, capi
from conftest import PYTHON_DIR, build_mixer, fixture_dir, max_diff

NAMES = ("model", "mixer", "session")


def make_objects(with_custom: bool = True):
    model = lmx.Model(fixture_dir("llama_f32"))
    mixer = build_mixer(model, "llama_f32", router=None)
    if with_custom:
        mixer.add_custom("py", lambda layer, module, x, out: out.__iadd__(0.01), ["o_proj"])
    session = mixer.session()
    session.set_routing("uniform")
    return {"model": model, "mixer": mixer, "session": session}


def handle_is_live(kind: str, handle: int) -> bool:
    """Ask the library whether a raw handle is still registered (it refuses freed ones)."""
    lib = capi.lib()
    try:
        if kind == "model":
            lib.lmx_model_module_shape(handle, 0, ctypes.byref(ctypes.c_uint32()), ctypes.byref(ctypes.c_uint32()))
        elif kind == "mixer":
            lib.lmx_mixer_expert_count(handle, ctypes.byref(ctypes.c_size_t()))
        else:
            lib.lmx_session_n_past(handle, ctypes.byref(ctypes.c_size_t()))
        return True
    except lmx.InvalidArgumentError as error:
        assert "not a live" in error.message
        return False


@pytest.mark.parametrize("order", list(itertools.permutations(NAMES)), ids="-".join)
def test_del_and_collect_in_any_order(order, tokens):
    before = _callbacks.registered_count()
    objects = make_objects()
    handles = {name: obj._handle for name, obj in objects.items()}
    reference = objects["session"].eval(tokens, "all")
    deleted = set()
    for name in order:
        del objects[name]
        deleted.add(name)
        gc.collect()
        for kind in NAMES:
            # A Python object is collected once it and every child (which refers to it) are gone.
            gone = set(NAMES[NAMES.index(kind):]) <= deleted
            assert handle_is_live(kind, handles[kind]) == (not gone), (kind, deleted)
        if "session" in objects:  # a live session keeps working whatever went before it
            objects["session"].reset()
            assert max_diff(objects["session"].eval(tokens, "all"), reference) == 0
        if "mixer" in objects:
            with objects["mixer"].session() as s:
                s.routing = "uniform"
                assert max_diff(s.eval(tokens, "all"), reference) == 0
            del s
    assert _callbacks.registered_count() == before


@pytest.mark.parametrize("order", list(itertools.permutations(NAMES)), ids="-".join)
def test_close_in_any_order_twice(order, tokens):
    objects = make_objects()
    handles = {name: obj._handle for name, obj in objects.items()}
    for name in order:
        objects[name].close()
        objects[name].close()
        assert objects[name].closed
        assert not handle_is_live(name, handles[name])
    for obj in objects.values():
        obj.close()
    del objects
    gc.collect()


def test_children_work_after_parents_are_closed(tokens, llama_expected):
    model = lmx.Model(fixture_dir("llama_f32"))
    mixer = build_mixer(model, "llama_f32")
    model.close()
    assert mixer.experts == ["e0", "e1", "e2"]
    session = mixer.session()  # the mixer still holds the model
    mixer.close()
    logits = session.eval(tokens, "all")
    assert max_diff(logits, llama_expected["learned_logits"]) < 1e-4
    assert session.mixer is mixer  # the Python parent is kept while the session is open
    assert len(session.generate(max_tokens=3)) == 3
    session.close()


def test_python_children_keep_python_parents(tokens):
    model = lmx.Model(fixture_dir("llama_f32"))
    mixer = lmx.Mixer(model)
    session = mixer.session()
    model_handle, mixer_handle = model._handle, mixer._handle
    del model, mixer
    gc.collect()
    # Not collected: the session refers to its mixer, the mixer to its model.
    assert handle_is_live("model", model_handle) and handle_is_live("mixer", mixer_handle)
    assert session.eval(tokens[:2]).shape == (128,)
    del session
    gc.collect()
    assert not handle_is_live("model", model_handle) and not handle_is_live("mixer", mixer_handle)


def test_reference_cycles_are_collected(tokens):
    before = _callbacks.registered_count()
    for _ in range(3):
        objects = make_objects()
        box = [objects]
        objects["cycle"] = box                          # a reference cycle through everything
        objects["session"].note = objects               # attribute cycle too
        handles = {name: objects[name]._handle for name in NAMES}
        objects["session"].eval(tokens[:3], logits="none")
        del objects, box
        gc.collect()
        for name in NAMES:
            assert not handle_is_live(name, handles[name])
    assert _callbacks.registered_count() == before


def test_with_blocks_close_and_reject_closed(tokens):
    with lmx.Model(fixture_dir("llama_f32")) as model:
        with lmx.Mixer(model) as mixer:
            with mixer.session() as session:
                session.eval(tokens[:2], logits="none")
            assert session.closed and not mixer.closed
        assert mixer.closed
    assert model.closed
    with pytest.raises(lmx.ClosedError):
        with model:
            pass


def test_many_cycles_release_everything(tokens):
    before = _callbacks.registered_count()
    model = lmx.Model(fixture_dir("llama_f32"))
    for i in range(30):
        mixer = lmx.Mixer(model)
        mixer.add_peft("e0", fixture_dir("llama_f32") / "adapters" / "e0")
        mixer.add_custom("py", lambda layer, module, x, out: None, ["q_proj"])
        sessions = [mixer.session() for _ in range(3)]
        for session in sessions:
            session.set_fixed_weights([1.0, 1.0])
            session.eval(tokens[:2], logits="none")
        del session
        if i % 2:
            del mixer, sessions
        else:
            for session in reversed(sessions):
                session.close()
            mixer.close()
    gc.collect()
    assert _callbacks.registered_count() == before
    model.close()


EXIT_SCRIPT = """
import sys
sys.path.insert(0, {python_dir!r})
import loramixer as lmx
folder = {folder!r}
model = lmx.Model(folder)
mixer = lmx.Mixer(model)
mixer.add_peft("e0", folder + "/adapters/e0")
calls = []
mixer.add_custom("py", lambda layer, module, x, out: calls.append(layer), ["q_proj"])
session = mixer.session()
session.set_fixed_weights([1.0, 1.0])
session.eval([1, 2, 3], logits="none")
other = mixer.session()
{order}
cycle = [globals().get(name) for name in ("model", "mixer", "session", "other")]
cycle.append(cycle)
print("ok", len(calls))
"""


@pytest.mark.parametrize("order", ["", "del model", "mixer.close(); del mixer", "session.close(); model.close()"])
def test_interpreter_exit_with_live_objects(order):
    """Finalizers at exit free whatever is left, in whatever order, without a crash or noise."""
    script = EXIT_SCRIPT.format(python_dir=str(PYTHON_DIR), folder=str(fixture_dir("llama_f32")), order=order)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok 2"
    assert result.stderr == ""
