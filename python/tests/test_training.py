"""(h) Training from Python: Mixer.add_untrained_lora and Mixer.train (lmx_mixer_train) on the tiny
llama_f32 fixture (vocab 128, 2 layers): defaults, the router and joint regimes, the progress
callback (steps, loads, cancelling, exceptions, Ctrl-C), cancel + resume = an uninterrupted run,
the files written, and every kind of bad argument with the library's message."""

from __future__ import annotations

import inspect
import json
import os
import signal
import threading
from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest

import loramixer as lmx
from loramixer import capi
from conftest import EXPERTS, build_mixer, fixture_dir, max_diff

EVAL_TOKENS = [3, 10, 20, 40, 41, 42]  # a prompt and completion of task e0's pattern (see write_data)
Q_AND_V = ["q_proj", "v_proj"]


def write_data(path: Path, tasks, per_task: int) -> Path:
    """JSON Lines of token ids (vocab 128), as Tests/C/train_test.c writes them: for task t and
    example i, prompt [3+t, 10+i, 20+(7i mod 30)] and completion [40+20t+(i mod 10), +1, +2]; every
    fourth example in the {"tokens": [...]} form."""
    lines = []
    for i in range(per_task):
        for t, task in enumerate(tasks):
            prompt = [3 + t, 10 + i, 20 + (7 * i) % 30]
            c0 = 40 + 20 * t + i % 10
            completion = [c0, c0 + 1, c0 + 2]
            if i % 4 == 3:
                lines.append({"tokens": prompt + completion, "task": task})
            else:
                lines.append({"prompt_tokens": prompt, "completion_tokens": completion, "task": task})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture()
def data(tmp_path) -> Path:
    """12 examples (3 batches of 4) for the fixture experts e0, e1, e2."""
    return write_data(tmp_path / "train.jsonl", EXPERTS, 4)


def logits(mixer: lmx.Mixer, weights=None) -> np.ndarray:
    """EVAL_TOKENS' logits in a new session (its default routing, or fixed weights)."""
    with mixer.session(trace=False, n_threads=1) as session:
        if weights is not None:
            session.fixed_weights = weights
        return session.eval(EVAL_TOKENS, "all")


class Recorder:
    """A progress callable keeping every TrainProgress; returns `answer(step)` (None: go on)."""

    def __init__(self, answer=None) -> None:
        self.seen: List[lmx.TrainProgress] = []
        self.answer = answer

    def __call__(self, progress: lmx.TrainProgress):
        self.seen.append(progress)
        return self.answer(progress) if self.answer else None

    @property
    def steps(self) -> List[int]:
        return [p.step for p in self.seen]


def small(**overrides) -> dict:
    """Small, fast settings (Tests/C/train_test.c's small_params)."""
    settings = dict(batch_size=4, learning_rate=1e-2, n_threads=1)
    settings.update(overrides)
    return settings


def check_error(excinfo, cls, *fragments, library: bool = True) -> None:
    """The exception is exactly `cls`, with its status; a library error carries lmx_last_error()."""
    error = excinfo.value
    assert type(error) is cls, f"{type(error).__name__} is not {cls.__name__}: {error}"
    assert error.status == cls.default_status
    if library:
        assert error.message == lmx.last_error() != ""
    for fragment in fragments:
        assert fragment in error.message, f"{fragment!r} not in {error.message!r}"


# ----------------------------------------------------------------------------------- defaults
def test_defaults_are_the_librarys():
    defaults = capi.lib().lmx_train_params_default()
    assert defaults.struct_size == __import__("ctypes").sizeof(capi.lmx_train_params)
    parameters = inspect.signature(lmx.Mixer.train).parameters
    c_fields = [name for name, _ in capi.lmx_train_params._fields_ if name != "struct_size"]
    python_names = {"lambda": "lambda_"}
    for field in c_fields:
        name = python_names.get(field, field)
        assert name in parameters, f"Mixer.train lacks a keyword for lmx_train_params.{field}"
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        default, c_value = parameters[name].default, getattr(defaults, field)
        if field == "regime":
            default = int(lmx.TrainRegime.of(default))
        elif field == "routing":
            default = int(lmx.TrainRouting.of(default))
        elif isinstance(default, bool):
            default = int(default)
        if isinstance(c_value, float):
            assert np.float32(default) == np.float32(c_value), (field, default, c_value)
        else:
            assert default == c_value, (field, default, c_value)
    assert lmx.TrainRegime.ROUTER == capi.LMX_TRAIN_ROUTER == 0 and lmx.TrainRegime.of("joint") == 1
    assert [int(lmx.TrainRouting.of(r)) for r in ("topk", "soft", "label")] == [0, 1, 2]


def test_training_with_every_default(llama_model, tmp_path):
    """No settings: batch 16, one epoch: one step over 6 examples, out=None writes nothing."""
    data = write_data(tmp_path / "six.jsonl", EXPERTS, 2)
    with build_mixer(llama_model, "llama_f32") as mixer:
        recorder = Recorder()
        assert mixer.train(str(data), progress=recorder) is None
        assert [(p.step, p.total_steps, p.epoch) for p in recorder.seen] == [(1, 1, 0)]
        assert recorder.seen[0].learning_rate == pytest.approx(1e-3)
    assert os.listdir(tmp_path) == ["six.jsonl"]


# ----------------------------------------------------------------------------------- router regime
def test_router_regime(llama_model, data, tmp_path):
    evaluation = tmp_path / "eval.jsonl"
    evaluation.write_text('{"prompt_tokens": [3, 10, 20], "completion_tokens": [40, 41], "task": "e0"}\n\n'
                          '{"prompt_tokens": [4, 11, 27], "completion_tokens": [61, 62], "task": "e1"}\n')
    out = tmp_path / "run" / "router"  # created by the library
    with build_mixer(llama_model, "llama_f32") as mixer:
        old = mixer.session(trace=False, n_threads=1)
        before = old.eval(EVAL_TOKENS, "all").copy()
        recorder = Recorder()
        mixer.train(data, eval=evaluation, out=out, steps=4, eval_max_tokens=2, progress=recorder,
                    **small(n_threads=2))

        # Progress: steps 1..4 of 4 (3 batches per epoch), a cosine from 1e-2, loads summing to 1.
        assert recorder.steps == [1, 2, 3, 4]
        assert [p.total_steps for p in recorder.seen] == [4] * 4
        assert [p.epoch for p in recorder.seen] == [0, 0, 0, 1]
        rates = [p.learning_rate for p in recorder.seen]
        assert rates[0] == float(np.float32(1e-2)) and rates[0] > rates[1] > rates[2] > rates[3] > 0
        for p in recorder.seen:
            assert isinstance(p, lmx.TrainProgress)
            assert p.expert_load.dtype == np.float32 and p.expert_load.shape == (3,)
            assert not p.expert_load.flags.writeable and not p.layer_entropy.flags.writeable
            assert abs(float(p.expert_load.sum()) - 1.0) <= 1e-5
            assert np.all((p.expert_load >= 0) & (p.expert_load <= 1))
            assert p.layer_entropy.shape == (2,) and np.all(np.isfinite(p.layer_entropy) & (p.layer_entropy >= 0))
            terms = p.cross_entropy + p.balance + p.entropy_term + p.preserve
            assert np.isfinite(p.loss) and p.loss == pytest.approx(terms, rel=1e-9)
            assert p.balance > 0 and p.preserve == 0 and p.entropy_term == 0  # alpha 0.01, lambda 0, beta 0
            for value in (p.grad_norm, p.tokens_per_s, p.elapsed_s, p.eta_s):
                assert np.isfinite(value) and value >= 0
        assert recorder.seen[-1].eta_s == 0
        # The copies outlive the call: the library's arrays are gone, these are intact.
        assert all(abs(float(p.expert_load.sum()) - 1) <= 1e-5 for p in recorder.seen)

        # Files.
        for name in ("router.safetensors", "report.json", "checkpoint/state.safetensors"):
            assert (out / name).is_file() and (out / name).stat().st_size > 0, name
        assert not (out / "experts").exists()  # experts are frozen in the router regime
        report = json.loads((out / "report.json").read_text())
        assert report["format"] == "loramixer.training_report"
        assert report["completed_steps"] == report["total_steps"] == 4
        assert sorted(e["task"] for e in report["evaluation"]) == ["e0", "e1"]

        # The mixer adopted the router: new sessions differ, the earlier one kept its snapshot.
        after = logits(mixer)
        assert max_diff(after, before) > 1e-4
        old.reset()
        assert max_diff(old.eval(EVAL_TOKENS, "all"), before) == 0
        old.close()

    # The written router is the adopted one.
    with build_mixer(llama_model, "llama_f32", router="") as fresh:
        fresh.load_router(out / "router.safetensors")
        assert max_diff(logits(fresh), after) <= 1e-6


def test_progress_return_values(llama_model, data):
    """None and truthy values go on; False (or another falsy value) cancels; on the last step
    cancelling changes nothing."""
    with build_mixer(llama_model, "llama_f32") as mixer:
        for answer in (lambda p: None, lambda p: True, lambda p: 1, lambda p: "go on"):
            recorder = Recorder(answer)
            mixer.train(data, steps=3, progress=recorder, **small())
            assert recorder.steps == [1, 2, 3]
        for falsy in (False, 0):
            recorder = Recorder(lambda p, falsy=falsy: falsy)
            with pytest.raises(lmx.CancelledError) as excinfo:
                mixer.train(data, steps=3, progress=recorder, **small())
            check_error(excinfo, lmx.CancelledError, "cancelled", "step 1 of 3")
            assert "checkpoint" not in excinfo.value.message.lower()  # no out: nothing was saved
            assert recorder.steps == [1]
        before = logits(mixer)
        recorder = Recorder(lambda p: p.step < p.total_steps)  # False on the last step only
        mixer.train(data, steps=2, progress=recorder, **small())
        assert recorder.steps == [1, 2]
        assert max_diff(logits(mixer), before) > 1e-4  # completed and adopted


# ----------------------------------------------------------------------------------- cancel, resume
def test_cancel_then_resume_equals_an_uninterrupted_run(llama_model, data, tmp_path):
    out, straight = tmp_path / "cancelled", tmp_path / "straight"
    with build_mixer(llama_model, "llama_f32") as mixer:
        before = logits(mixer)
        recorder = Recorder(lambda p: p.step != 2)
        with pytest.raises(lmx.CancelledError) as excinfo:
            mixer.train(data, out=out, steps=6, progress=recorder, **small())
        check_error(excinfo, lmx.CancelledError, "cancelled", "step 2 of 6", "checkpoint", str(out))
        assert recorder.steps == [1, 2]
        assert (out / "checkpoint" / "state.safetensors").is_file()
        assert max_diff(logits(mixer), before) == 0  # the mixer is unchanged

        recorder = Recorder()
        mixer.train(data, out=out, steps=6, resume=True, progress=recorder, **small())
        assert recorder.steps == [3, 4, 5, 6]
        resumed = logits(mixer)
        assert max_diff(resumed, before) > 1e-4

    with build_mixer(llama_model, "llama_f32") as other:
        other.train(data, out=straight, steps=6, **small())
        assert max_diff(logits(other), resumed) <= 1e-6
    assert (out / "router.safetensors").read_bytes() == (straight / "router.safetensors").read_bytes()
    resumed_report = json.loads((out / "report.json").read_text())
    assert resumed_report["resumed_from_step"] == 2 and resumed_report["completed_steps"] == 6


def test_resume_from_another_run_is_refused(llama_model, data, tmp_path):
    with build_mixer(llama_model, "llama_f32") as mixer:
        mixer.train(data, out=tmp_path / "a", steps=2, resume=True, **small())  # no checkpoint yet: starts over
        with pytest.raises(lmx.StateError) as excinfo:
            mixer.train(data, out=tmp_path / "a", steps=2, resume=True, **small(learning_rate=5e-3))
        check_error(excinfo, lmx.StateError, "different run", "state.safetensors")


# ----------------------------------------------------------------------------------- exceptions, Ctrl-C
class Boom(Exception):
    pass


def test_exception_in_progress_cancels_and_propagates(llama_model, data, tmp_path):
    with build_mixer(llama_model, "llama_f32") as mixer:
        before = logits(mixer)
        calls = []

        def progress(p):
            calls.append(p.step)
            if p.step == 2:
                raise Boom("from the callback")

        with pytest.raises(Boom, match="from the callback") as excinfo:
            mixer.train(data, out=tmp_path / "out", steps=6, progress=progress, **small())
        assert calls == [1, 2]  # not called again after raising
        cause = excinfo.value.__cause__
        assert type(cause) is lmx.CancelledError and "step 2 of 6" in cause.message
        assert any(frame.name == "progress" for frame in __import__("traceback").extract_tb(excinfo.tb))
        assert (tmp_path / "out" / "checkpoint" / "state.safetensors").is_file()
        assert max_diff(logits(mixer), before) == 0

        # Raised on the last step: the run has completed (and is adopted); the exception still surfaces.
        def last(p):
            if p.step == p.total_steps:
                raise Boom("last step")

        with pytest.raises(Boom, match="last step") as excinfo:
            mixer.train(data, steps=2, progress=last, **small())
        assert excinfo.value.__cause__ is None
        assert max_diff(logits(mixer), before) > 1e-4

        # BaseExceptions too (a KeyboardInterrupt raised by the callback itself).
        def interrupt(p):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt) as excinfo:
            mixer.train(data, steps=3, progress=interrupt, **small())
        assert type(excinfo.value.__cause__) is lmx.CancelledError


def needs_main_thread():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT handling applies on the main thread")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("a non-default SIGINT handler is installed; train() leaves it alone")


def test_ctrl_c_cancels_at_the_end_of_the_step(llama_model, data, tmp_path):
    needs_main_thread()
    with build_mixer(llama_model, "llama_f32") as mixer:
        before = logits(mixer)
        recorder = Recorder(lambda p: signal.raise_signal(signal.SIGINT) if p.step == 2 else None)
        with pytest.raises(KeyboardInterrupt) as excinfo:
            mixer.train(data, out=tmp_path / "out", steps=6, progress=recorder, **small())
        assert recorder.steps == [1, 2]
        assert type(excinfo.value.__cause__) is lmx.CancelledError
        assert "step 2 of 6" in str(excinfo.value) and "checkpoint" in str(excinfo.value)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        assert max_diff(logits(mixer), before) == 0
        # The checkpoint resumes.
        recorder = Recorder()
        mixer.train(data, out=tmp_path / "out", steps=6, resume=True, progress=recorder, **small())
        assert recorder.steps == [3, 4, 5, 6]


def test_ctrl_c_without_a_progress_callable(llama_model, data, tmp_path):
    """SIGINT from another thread while the library trains (no Python progress): the run stops
    after the step in flight instead of running its 100000 steps."""
    needs_main_thread()
    sent = threading.Event()

    def interrupt_when_training():
        for _ in range(1000):  # wait (up to 10 s) for train() to install its handler
            if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
                os.kill(os.getpid(), signal.SIGINT)
                sent.set()
                return
            threading.Event().wait(0.01)

    thread = threading.Thread(target=interrupt_when_training)
    with build_mixer(llama_model, "llama_f32") as mixer:
        thread.start()
        with pytest.raises(KeyboardInterrupt) as excinfo:
            mixer.train(data, out=tmp_path / "out", steps=100000, **small())
        thread.join()
    assert sent.is_set()
    assert type(excinfo.value.__cause__) is lmx.CancelledError and "of 100000" in str(excinfo.value)
    assert (tmp_path / "out" / "checkpoint" / "state.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_mixer_is_locked_while_training(llama_model, data, tmp_path):
    """During train(), sessions can be created, on this thread or another (and see the old
    router); changing or closing the mixer, or a second train(), raises StateError."""
    with build_mixer(llama_model, "llama_f32") as mixer:
        before = logits(mixer)
        seen = {}
        other_done = threading.Event()

        def other_thread():
            seen["other thread"] = logits(mixer)
            other_done.set()

        thread = threading.Thread(target=other_thread)

        def progress(p):
            if p.step == 2:  # the other thread gets a session while the library trains
                thread.start()
                assert other_done.wait(10)
            if p.step != 1:
                return
            seen["logits"] = logits(mixer)
            for what, call in (("add_peft", lambda: mixer.add_peft("x", fixture_dir("llama_f32") / "adapters" / "e0")),
                               ("add_untrained_lora", lambda: mixer.add_untrained_lora("x")),
                               ("load_router", lambda: mixer.load_router(fixture_dir("llama_f32") / "router.safetensors")),
                               ("train", lambda: mixer.train(data)),
                               ("close", mixer.close)):
                try:
                    call()
                except lmx.StateError as error:
                    seen[what] = str(error)

        mixer.train(data, steps=3, progress=progress, **small())
        thread.join()
        assert max_diff(seen["logits"], before) == 0 and max_diff(seen["other thread"], before) == 0
        assert "training" in seen["add_peft"] and "training" in seen["add_untrained_lora"]
        assert "training" in seen["load_router"] and "already training" in seen["train"]
        assert "train() is running" in seen["close"]
        assert not mixer.closed and max_diff(logits(mixer), before) > 1e-4
        # Afterwards the mixer is usable again (here the library refuses: it has a router).
        with pytest.raises(lmx.StateError) as excinfo:
            mixer.add_untrained_lora("late")
        check_error(excinfo, lmx.StateError, "router", "late")


# ----------------------------------------------------------------------------------- joint regime
def test_joint_label_routing_on_untrained_experts(llama_model, tmp_path):
    data = write_data(tmp_path / "joint.jsonl", ["new0", "new1"], 8)
    out = tmp_path / "joint"
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_peft("e0", fixture_dir("llama_f32") / "adapters" / "e0")
        assert mixer.add_untrained_lora("new0", rank=4, lora_alpha=8.0, modules=Q_AND_V, seed=1) == 1
        assert mixer.add_untrained_lora("new1", 4, 8, (lmx.Module.Q_PROJ, 2), seed=2) == 2
        assert mixer.add_untrained_lora("unused") == 3  # defaults: rank 8, alpha 16, q/k/v/o
        assert mixer.experts == ["e0", "new0", "new1", "unused"]
        base = logits(mixer)
        for i in (1, 2, 3):  # B = 0: an untrained expert changes nothing
            assert max_diff(logits(mixer, np.eye(4)[i]), base) <= 1e-6
        e0_before = logits(mixer, np.eye(4)[0])

        recorder = Recorder()
        mixer.train(data, out=out, regime="joint", routing=lmx.TrainRouting.LABEL, steps=4, progress=recorder,
                    **small())
        assert recorder.steps == [1, 2, 3, 4]
        for p in recorder.seen:  # no router: no loads or entropies
            assert p.expert_load.shape == (0,) and p.layer_entropy.shape == (0,) and np.isfinite(p.loss)

        trained = [logits(mixer, np.eye(4)[i]) for i in (1, 2)]
        assert all(max_diff(t, base) > 1e-4 for t in trained)
        assert max_diff(logits(mixer, np.eye(4)[0]), e0_before) <= 1e-6  # no example was routed to e0
        assert max_diff(logits(mixer, np.eye(4)[3]), base) <= 1e-6
        assert not (out / "router.safetensors").exists()  # label routing without a router trains none

    for name in ("e0", "new0", "new1", "unused"):
        assert (out / "experts" / name / "adapter_model.safetensors").is_file(), name
    config = json.loads((out / "experts" / "new0" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8 and sorted(config["target_modules"]) == Q_AND_V
    config = json.loads((out / "experts" / "unused" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16
    assert sorted(config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]

    # The PEFT folders written load with Mixer.add_peft and give the trained experts' logits.
    with lmx.Mixer(llama_model) as fresh:
        for name in ("new0", "new1"):
            fresh.add_peft(name, out / "experts" / name)
        for i in range(2):
            assert max_diff(logits(fresh, np.eye(2)[i]), trained[i]) <= 1e-5


# ----------------------------------------------------------------------------------- bad arguments
def test_add_untrained_lora_bad_arguments(llama_model):
    with lmx.Mixer(llama_model) as mixer:
        mixer.add_peft("e0", fixture_dir("llama_f32") / "adapters" / "e0")
        for kwargs, cls, fragments, library in [
            (dict(rank=0), lmx.InvalidArgumentError, ("rank", "1...4096"), True),
            (dict(rank=4097), lmx.InvalidArgumentError, ("rank", "4097"), True),
            (dict(lora_alpha=0), lmx.InvalidArgumentError, ("alpha",), True),
            (dict(lora_alpha=float("nan")), lmx.InvalidArgumentError, ("alpha",), True),
            (dict(modules=["q_proj", "nope"]), lmx.InvalidArgumentError, ("'nope'", "Module", "'down_proj'"), False),
            (dict(modules=11), lmx.InvalidArgumentError, ("11", "Module"), False),
            (dict(modules="in_proj"), lmx.InvalidArgumentError, ("in_proj does not exist", "LlamaForCausalLM"), True),
            (dict(modules=[]), lmx.InvalidArgumentError, ("at least one",), False),
            (dict(rank=-1), lmx.InvalidArgumentError, ("rank", "-1"), False),
            (dict(rank=2.0), lmx.InvalidArgumentError, ("rank", "int"), False),
            (dict(seed=-1), lmx.InvalidArgumentError, ("seed",), False),
        ]:
            with pytest.raises(cls) as excinfo:
                mixer.add_untrained_lora("u", **kwargs)
            check_error(excinfo, cls, *fragments, library=library)
        with pytest.raises(lmx.InvalidArgumentError) as excinfo:
            mixer.add_untrained_lora("e0")
        check_error(excinfo, lmx.InvalidArgumentError, "e0", "already")
        with pytest.raises(TypeError):
            mixer.add_untrained_lora(b"u")
        assert mixer.experts == ["e0"]  # nothing was added
        assert mixer.add_untrained_lora("one", rank=2, lora_alpha=2, modules="k_proj") == 1
        assert mixer.add_untrained_lora("all", modules=list(mixer.model.module_shapes())) == 2
    with build_mixer(llama_model, "llama_f32") as mixer:
        with pytest.raises(lmx.StateError) as excinfo:
            mixer.add_untrained_lora("late")
        check_error(excinfo, lmx.StateError, "router", "late")


def test_train_bad_arguments(llama_model, data, tmp_path):
    lines = {
        "bad_json.jsonl": '{"tokens": [1, 2, 3]}\n{"tokens": [1, 2,\n',
        "range.jsonl": '{"tokens": [1, 2, 3]}\n\n{"prompt_tokens": [1, 2], "completion_tokens": [128]}\n',
        "text.jsonl": '{"text": "hello"}\n',
        "bad_task.jsonl": '{"tokens": [1, 2, 3], "task": "zzz"}\n',
    }
    for name, text in lines.items():
        (tmp_path / name).write_text(text)
    cases = [
        # (data, keywords, class, fragments, from the library)
        (tmp_path / "missing.jsonl", {}, lmx.LoraMixerIOError, ("missing.jsonl does not exist",), False),
        (data, dict(eval=tmp_path / "missing.jsonl"), lmx.LoraMixerIOError, ("missing.jsonl does not exist",), False),
        ("", {}, lmx.InvalidArgumentError, ("data_path", "empty"), True),
        (tmp_path / "bad_json.jsonl", {}, lmx.FormatError, ("bad_json.jsonl:2", "JSON"), True),
        (tmp_path / "range.jsonl", {}, lmx.InvalidArgumentError, ("range.jsonl:3", "128", "0..<128"), True),
        (tmp_path / "text.jsonl", {}, lmx.InvalidArgumentError, ("text.jsonl:1", "token ids"), True),
        (tmp_path / "bad_task.jsonl", dict(routing="label"), lmx.InvalidArgumentError, ("task", "zzz"), True),
        (data, dict(learning_rate=0), lmx.InvalidArgumentError, ("learning rate",), True),
        (data, dict(learning_rate=float("nan")), lmx.InvalidArgumentError, ("learning rate", "nan"), True),
        (data, dict(batch_size=0), lmx.InvalidArgumentError, ("batch size", "0"), True),
        (data, dict(steps=-1), lmx.InvalidArgumentError, ("steps", "-1"), True),
        (data, dict(steps=None, epochs=0), lmx.InvalidArgumentError, ("epochs", "0"), True),
        (data, dict(n_threads=-2), lmx.InvalidArgumentError, ("n_threads", "-2"), True),
        (data, dict(top_k=4), lmx.InvalidArgumentError, ("top_k", "4"), True),
        (data, dict(routing="soft", soft_steps=2), lmx.InvalidArgumentError, ("soft_steps",), True),
        (data, dict(beta=0.5), lmx.InvalidArgumentError, ("beta",), True),
        (data, dict(adam_beta1=1.0), lmx.InvalidArgumentError, ("Adam betas",), True),
        (data, dict(regime="joint", beta=0.5, sensitive=["e1", "nope"]), lmx.NotFoundError, ("sensitive", "nope"), True),
        (data, dict(regime="joint", beta=0.5, sensitive="e1,nope"), lmx.NotFoundError, ("nope",), True),
        # Found on the Python side (the C fields could not express them).
        (data, dict(regime="nope"), lmx.InvalidArgumentError, ("'nope'", "TrainRegime", "'joint'"), False),
        (data, dict(routing="top-k"), lmx.InvalidArgumentError, ("'top-k'", "TrainRouting"), False),
        (data, dict(regime=7), lmx.InvalidArgumentError, ("7", "TrainRegime"), False),
        (data, dict(batch_size=1.5), lmx.InvalidArgumentError, ("batch_size", "int"), False),
        (data, dict(steps=2**31), lmx.InvalidArgumentError, ("steps", "does not fit"), False),
        (data, dict(seed=-1), lmx.InvalidArgumentError, ("seed",), False),
        (data, dict(alpha="0.1"), lmx.InvalidArgumentError, ("alpha", "number"), False),
        (data, dict(sensitive=["a,b"]), lmx.InvalidArgumentError, ("comma",), False),
        ("a\0b", {}, lmx.InvalidArgumentError, ("NUL",), False),
    ]
    with build_mixer(llama_model, "llama_f32") as mixer:
        before = logits(mixer)
        for path, keywords, cls, fragments, library in cases:
            settings = small(steps=1, out=tmp_path / "out")
            settings.update(keywords)
            with pytest.raises(cls) as excinfo:
                mixer.train(path, **settings)
            check_error(excinfo, cls, *fragments, library=library)
        with pytest.raises(TypeError):
            mixer.train(data, progress="not callable")
        with pytest.raises(TypeError):
            mixer.train(data, sensitive=[1])
        with pytest.raises(TypeError):
            mixer.train(data, 1)  # everything after data is keyword-only
        assert max_diff(logits(mixer), before) == 0  # every refused call left the mixer as it was

        # A params struct too small for the library (ABI), through the raw binding.
        params = capi.lib().lmx_train_params_default()
        params.struct_size = 0
        with pytest.raises(lmx.ABIError) as excinfo:
            capi.lib().lmx_mixer_train(mixer._require(), os.fsencode(data), None, None, params,
                                       capi.lmx_train_progress_fn(), None)  # a NULL callback
        check_error(excinfo, lmx.ABIError, "struct_size", "sizeof(lmx_train_params)")

    # Mixers training cannot use.
    with lmx.Mixer(llama_model) as empty:
        with pytest.raises(lmx.StateError) as excinfo:
            empty.train(data, **small(steps=1))
        check_error(excinfo, lmx.StateError, "no experts")
    with lmx.Mixer(llama_model) as custom:
        custom.add_peft("e0", fixture_dir("llama_f32") / "adapters" / "e0")
        custom.add_custom("c", lambda layer, module, x, out: None, modules=["o_proj"])
        with pytest.raises(lmx.StateError) as excinfo:
            custom.train(data, **small(steps=1))
        check_error(excinfo, lmx.StateError, "custom", "'c'")
    mixer = build_mixer(llama_model, "llama_f32")
    mixer.close()
    with pytest.raises(lmx.ClosedError):
        mixer.train(data)
    with pytest.raises(lmx.ClosedError):
        mixer.add_untrained_lora("u")
