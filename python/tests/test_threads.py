"""(f) Threads: sessions on one shared model + mixer, each on its own Python thread, give the same
results as sequential runs; errors stay with the thread that made them."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import loramixer as lmx
from conftest import build_mixer, fixture_dir

ITERATIONS = 6


def run_threads(target, n_threads=2):
    barrier = threading.Barrier(n_threads)
    results, errors = [None] * n_threads, []

    def worker(index):
        try:
            barrier.wait(timeout=30)
            results[index] = target(index)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def workload(mixer, tokens):
    """eval (all logits) and greedy + seeded generation on a fresh session, repeatedly."""
    out = []
    with mixer.session() as s:
        for _ in range(ITERATIONS):
            s.reset()
            logits = s.eval(tokens, "all")
            greedy = s.generate(max_tokens=6)
            s.reset()
            sampled = s.generate(tokens[:4], max_tokens=6, temperature=0.8, seed=7)
            out.append((logits, greedy, sampled, s.trace().ids.copy()))
    return out


def same(a, b):
    for (la, ga, sa, ta), (lb, gb, sb, tb) in zip(a, b):
        np.testing.assert_array_equal(la, lb)  # bit-identical
        assert ga == gb and sa == sb
        np.testing.assert_array_equal(ta, tb)


def test_two_threads_equal_sequential(llama_mixer, tokens, llama_expected):
    sequential = workload(llama_mixer, tokens)
    assert np.max(np.abs(sequential[0][0] - llama_expected["learned_logits"])) < 1e-4
    for result in run_threads(lambda i: workload(llama_mixer, tokens)):
        same(result, sequential)


def test_threads_with_a_python_expert(llama_model, tokens):
    calls = {}
    lock = threading.Lock()

    def expert(layer, module, x, out):
        with lock:
            calls[threading.get_ident()] = calls.get(threading.get_ident(), 0) + 1
        out += 0.05 * np.tanh(x[:, : out.shape[1]])

    with build_mixer(llama_model, "llama_f32", router=None) as mixer:
        mixer.add_custom("py", expert, ["o_proj", "down_proj"])

        def job(_):
            with mixer.session() as s:
                s.set_fixed_weights([0.3, 0.0, 0.2, 1.0])
                results = []
                for _ in range(ITERATIONS):
                    s.reset()
                    results.append(s.eval(tokens, "all"))
                return results

        sequential = job(None)
        for result in run_threads(job):
            for a, b in zip(result, sequential):
                np.testing.assert_array_equal(a, b)
    assert len(calls) == 3  # the main thread and both workers called the expert themselves


def test_errors_stay_on_their_thread(llama_mixer, tokens):
    class Mine(Exception):
        pass

    def job(index):
        messages = []
        with llama_mixer.session() as s:
            for i in range(20):
                bad = 128 + index * 1000 + i
                with pytest.raises(lmx.InvalidArgumentError) as excinfo:
                    s.eval([1, bad])
                messages.append(str(bad) in excinfo.value.message)
                assert str(bad) in lmx.last_error()
                s.eval(tokens[:2], logits="none")
                s.reset()
        return all(messages)

    assert run_threads(job) == [True, True]


def test_each_thread_gets_its_own_callback_exception(llama_model, tokens):
    def failing(layer, module, x, out):
        raise RuntimeError(f"from {threading.current_thread().name}")

    with lmx.Mixer(llama_model) as mixer:
        mixer.add_custom("f", failing, ["q_proj"])

        def job(index):
            threading.current_thread().name = f"worker-{index}"
            seen = []
            with mixer.session() as s:
                s.set_fixed_weights([1.0])
                for _ in range(10):
                    with pytest.raises(RuntimeError) as excinfo:
                        s.eval(tokens[:3])
                    seen.append(str(excinfo.value))
            return set(seen)

        assert run_threads(job) == [{"from worker-0"}, {"from worker-1"}]


def test_shared_session_is_refused_not_corrupted(llama_mixer, tokens):
    """Two threads on ONE session: the second concurrent call gets StateError (never a race)."""
    started, release = threading.Event(), threading.Event()

    with lmx.Mixer(llama_mixer.model) as mixer:
        def slow(layer, module, x, out):
            started.set()
            release.wait(timeout=10)

        mixer.add_custom("slow", slow, ["q_proj"], layers=[0])
        with mixer.session() as s:
            s.set_fixed_weights([1.0])
            holder = threading.Thread(target=lambda: s.eval(tokens[:2]))
            holder.start()
            assert started.wait(timeout=10)
            with pytest.raises(lmx.StateError, match="in use"):
                s.eval(tokens[:2])
            with pytest.raises(lmx.StateError):
                s.close()
            release.set()
            holder.join(timeout=10)
            assert s.n_past == 2


def test_models_load_in_parallel(tokens, llama_expected):
    def job(index):
        with lmx.Model(fixture_dir("llama_f32"), load_mode="copy" if index else "mmap") as model:
            with build_mixer(model, "llama_f32") as mixer, mixer.session() as s:
                return s.eval(tokens, "all")

    a, b = run_threads(job)
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a - llama_expected["learned_logits"])) < 1e-4
