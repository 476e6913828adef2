"""Python callables called by the library: custom experts, per-token generation callbacks and
training progress callbacks.

Custom experts go through two module-level ctypes trampolines (one forward, one destroy) that live
as long as the module, so no CFUNCTYPE object can be collected while the library may still call it.
Each registered expert gets an integer key, passed to the library as ``user_data``; the registry
entry for that key holds the Python callable and is removed by ``destroy``, which the library runs
exactly once when no mixer or session uses the expert any more.

An exception raised inside a callback never crosses into C: the trampoline catches it, records it
for the current thread and returns ``LMX_ERR_PLUGIN``, so the evaluation fails; the Python call
that started the evaluation (``Session.eval``/``generate``) then re-raises the original exception,
chained from the library's :class:`PluginError`. The library calls a custom expert on the thread
that evaluates the session, so a thread-local record reaches the right caller.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import threading
import traceback
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import numpy as np

from . import capi
from .errors import LMX_ERR_PLUGIN, LMX_OK
from .types import Module, TrainProgress

__all__ = ["ExpertFn", "ProgressFn", "register", "unregister", "registered_count", "take_pending",
           "clear_pending", "TokenCallback", "TrainCallback"]

#: fn(layer, module, x, out): add the expert's ungated delta for the rows of x into out.
ExpertFn = Callable[[int, Module, np.ndarray, np.ndarray], Any]
#: progress(step) after every training step: None or truthy to go on, False (falsy) to cancel.
ProgressFn = Callable[[TrainProgress], Any]


class _Entry:
    __slots__ = ("name", "fn", "__weakref__")

    def __init__(self, name: str, fn: ExpertFn) -> None:
        self.name = name
        self.fn = fn


_REGISTRY: Dict[int, _Entry] = {}
_KEYS = itertools.count(1)
_LOCK = threading.Lock()
_LOCAL = threading.local()
_MODULES = tuple(Module)


class _BufferView:
    """Exposes a foreign float32 buffer to numpy through the array interface (no copy)."""

    __slots__ = ("__array_interface__",)

    def __init__(self, address: int, shape: Tuple[int, int], readonly: bool) -> None:
        self.__array_interface__ = {
            "version": 3,
            "shape": shape,
            "typestr": "<f4",
            "data": (address, readonly),
        }


def _view(address: Optional[int], rows: int, cols: int, readonly: bool) -> np.ndarray:
    if not address or rows == 0 or cols == 0:
        array = np.zeros((rows, cols), dtype=np.float32)
        array.flags.writeable = not readonly
        return array
    return np.asarray(_BufferView(address, (rows, cols), readonly))


def _record(error: BaseException) -> None:
    """Keep the first exception of the current evaluation on this thread."""
    if getattr(_LOCAL, "pending", None) is None:
        _LOCAL.pending = error


def clear_pending() -> None:
    """Forget a recorded exception (called before each evaluation)."""
    _LOCAL.pending = None


def take_pending() -> Optional[BaseException]:
    """The exception a callback raised during the last evaluation on this thread (and forget it)."""
    error = getattr(_LOCAL, "pending", None)
    _LOCAL.pending = None
    return error


def _call(user: Optional[int], layer: int, module: int, x_address: Optional[int],
          out_address: Optional[int], n_rows: int, in_features: int, out_features: int) -> None:
    entry = _REGISTRY.get(user or 0)
    if entry is None:
        raise RuntimeError(f"loramixer: custom expert key {user} is not registered (already destroyed)")
    x = _view(x_address, n_rows, in_features, readonly=True)
    out = _view(out_address, n_rows, out_features, readonly=False)
    entry.fn(layer, _MODULES[module] if module < len(_MODULES) else module, x, out)


def _forward(user: Optional[int], layer: int, module: int, x_address: Optional[int],
             out_address: Optional[int], n_rows: int, in_features: int, out_features: int) -> int:
    try:
        _call(user, layer, module, x_address, out_address, n_rows, in_features, out_features)
        return LMX_OK
    except BaseException as error:  # noqa: BLE001 - nothing may unwind into C
        try:
            # The traceback's frames hold the views x and out, whose memory the library frees
            # after this call: clear their locals so no later inspection reads freed memory.
            traceback.clear_frames(error.__traceback__)
            _record(error)
        except BaseException:  # noqa: BLE001
            pass
        return LMX_ERR_PLUGIN


def _destroy(user: Optional[int]) -> None:
    try:
        with _LOCK:
            _REGISTRY.pop(user or 0, None)
    except BaseException:  # noqa: BLE001 - nothing may unwind into C
        pass


#: The trampolines handed to the library (module globals: alive as long as the module).
FORWARD = capi.lmx_expert_forward_fn(_forward)
DESTROY = capi.lmx_destroy_fn(_destroy)


def register(name: str, fn: ExpertFn) -> int:
    """Keep ``fn`` alive under a new key (the expert's user_data); returns the key."""
    with _LOCK:
        key = next(_KEYS)
        _REGISTRY[key] = _Entry(name, fn)
    return key


def unregister(key: int) -> None:
    """Drop a registration the library never took (its add call failed: destroy will not run)."""
    _destroy(key)


def registered_count() -> int:
    """How many custom experts the library may still call (for tests and leak checks)."""
    return len(_REGISTRY)


class TokenCallback:
    """Wraps ``on_token(token) -> truthy to stop`` for one generate call; keeps the first
    exception it raised (which also stops generation)."""

    def __init__(self, fn: Callable[[int], Any]) -> None:
        self.fn = fn
        self.error: Optional[BaseException] = None
        self.c_function = capi.lmx_token_callback(self._call)

    def _call(self, token: int, user: Optional[int]) -> int:
        try:
            return 1 if self.fn(int(token)) else 0
        except BaseException as error:  # noqa: BLE001 - nothing may unwind into C
            if self.error is None:
                self.error = error
            return 1


def _float_array(pointer: Any, n: int) -> np.ndarray:
    """A read-only float32 copy of ``n`` floats at a ctypes ``float *`` (empty for NULL or 0)."""
    array = np.ctypeslib.as_array(pointer, shape=(n,)).copy() if n and pointer else np.zeros(0, dtype=np.float32)
    array.flags.writeable = False
    return array


def train_progress(p: "capi.lmx_train_progress") -> TrainProgress:
    """A :class:`TrainProgress` copied out of the library's ``lmx_train_progress`` (whose arrays
    are valid only during the callback)."""
    return TrainProgress(
        step=int(p.step), total_steps=int(p.total_steps), epoch=int(p.epoch), loss=float(p.loss),
        cross_entropy=float(p.cross_entropy), balance=float(p.balance), entropy_term=float(p.entropy_term),
        preserve=float(p.preserve), learning_rate=float(p.learning_rate), grad_norm=float(p.grad_norm),
        tokens_per_s=float(p.tokens_per_s), elapsed_s=float(p.elapsed_s), eta_s=float(p.eta_s),
        expert_load=_float_array(p.expert_load, int(p.n_experts)),
        layer_entropy=_float_array(p.layer_entropy, int(p.n_layers)))


class TrainCallback:
    """The progress callback of one ``Mixer.train`` call (kept alive by the caller for the call).

    Calls ``fn(TrainProgress)`` after every step (when ``fn`` is given) and asks the library to
    cancel when ``fn`` returns a falsy value other than ``None``, when it raises (the first
    exception is kept in ``error``), or when :meth:`sigint_cancels` saw Ctrl-C (``interrupted``).
    The library calls it on the thread that called ``lmx_mixer_train``.
    """

    def __init__(self, fn: Optional[ProgressFn]) -> None:
        self.fn = fn
        self.error: Optional[BaseException] = None
        self.interrupted = False
        self.c_function = capi.lmx_train_progress_fn(self._call)

    def _call(self, pointer: Any, user: Optional[int]) -> int:
        try:
            if self.error is not None or self.interrupted:
                return 1
            if self.fn is not None:
                step = train_progress(pointer.contents)
                del pointer  # the struct dies with this call: keep it out of a traceback's frames
                result = self.fn(step)
                if result is not None and not result:
                    return 1
            return 1 if self.interrupted else 0
        except BaseException as error:  # noqa: BLE001 - nothing may unwind into C
            if self.error is None:
                self.error = error
            return 1

    @contextlib.contextmanager
    def sigint_cancels(self) -> Iterator[None]:
        """While training, make Ctrl-C (SIGINT) cancel the run at the end of the current step
        (saving a checkpoint when there is an output folder) instead of being held back until the
        library returns. Only on the main thread and only while Python's default SIGINT handler
        is installed; a host's own handler is left alone."""
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            yield
            return

        def on_sigint(signum: int, frame: Any) -> None:
            self.interrupted = True

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
