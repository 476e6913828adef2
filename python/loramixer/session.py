"""Session: a KV cache, routing settings and a routing trace over one mixer."""

from __future__ import annotations

import contextlib
import ctypes
import threading
from ctypes import byref, c_float, c_size_t, c_uint32, c_void_p
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _callbacks, capi
from ._handle import OwnedHandle
from .errors import LMX_ERR_CANCELLED, LMX_ERR_PLUGIN, InvalidArgumentError, LoraMixerError, ShapeError, StateError
from .mixer import Mixer
from .types import Logits, Routing, Trace

__all__ = ["Session"]

TokensLike = Union[Sequence[int], np.ndarray, int]


def _tokens(tokens: TokensLike, what: str = "tokens") -> np.ndarray:
    """Token ids as a C-contiguous int32 array (refusing non-integers and values outside int32).

    Text is refused with a TypeError that says what to pass: loramixer has no tokenizer, and the ids
    of a byte-level model are the text's UTF-8 bytes.
    """
    if isinstance(tokens, (str, bytes, bytearray, memoryview)):
        example = tokens if isinstance(tokens, str) else bytes(tokens).decode("utf-8", "replace")
        shown = repr(example if len(example) <= 20 else example[:20] + "...")
        kind = "a str" if isinstance(tokens, str) else f"a {type(tokens).__name__} object"
        raise TypeError(
            f"{what} must be token ids (a sequence of ints or an integer numpy array), not {kind}: "
            f"loramixer does not tokenize text. For a byte-level model (such as the bundled models/tiny-llama) "
            f"pass the UTF-8 bytes as ids: list({shown}.encode()); otherwise tokenize with the model's own tokenizer")
    if isinstance(tokens, (int, np.integer)) and not isinstance(tokens, bool):
        tokens = [int(tokens)]
    array = np.asarray(tokens)
    if array.ndim != 1:
        raise InvalidArgumentError(f"{what} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int32)
    if array.dtype.kind not in "iu" or array.dtype == np.bool_:
        raise InvalidArgumentError(f"{what} must be integers, got {array.dtype}")
    outside = np.flatnonzero((array < -(2**31)) | (array >= 2**31))
    if outside.size:
        bad = int(outside[0])
        raise InvalidArgumentError(f"{what}: token id {int(array[bad])} at position {bad} (0-based) does not fit in int32")
    return np.ascontiguousarray(array, dtype=np.int32)


def _positive_int(value: Any, what: str, allow_zero: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{what} must be an int, got {value!r}")
    if value < (0 if allow_zero else 1) or value >= 2**32:
        raise InvalidArgumentError(f"{what} {value} is out of range")
    return int(value)


class Session(OwnedHandle):
    """One sequence evaluated over a snapshot of a :class:`Mixer` (``lmx_session``).

    A session sees the experts and router its mixer had when it was created, and keeps them (and
    the model) alive itself. Use it from one thread at a time: a second concurrent call (another
    thread, or a custom expert calling back into its own session) raises :class:`StateError`.
    Sessions of one mixer on different threads run in parallel.

    Args:
        mixer: the mixer to evaluate.
        n_ctx: tokens it can hold (prompt + generated); 0 means the model's ``max_positions``.
        trace: record the routing trace (see :meth:`trace`).
        n_threads: threads for this session's evaluations; 0 means the cores available.
    """

    _kind = "Session"

    def __init__(self, mixer: Mixer, n_ctx: int = 0, trace: bool = True, n_threads: int = 0) -> None:
        super().__init__()
        if not isinstance(mixer, Mixer):
            raise TypeError(f"Session needs a loramixer.Mixer, not {type(mixer).__name__}")
        lib = capi.lib()
        params = lib.lmx_session_params_default()
        params.n_ctx = _positive_int(n_ctx, "n_ctx")
        params.trace = 1 if trace else 0
        params.n_threads = _positive_int(n_threads, "n_threads")
        out = c_void_p()
        with mixer._lock:
            lib.lmx_session_create(mixer._require(), byref(params), byref(out))
        self._own(out.value, lib.lmx_session_free)
        self._mixer = mixer
        self._n_vocab = mixer._info.n_vocab
        self._busy = threading.Lock()
        self._routing: Optional[Routing] = None
        self._fixed_weights: Optional[np.ndarray] = None
        self._top_k: Optional[int] = None
        self._temperature: Optional[float] = None
        self._abort: Any = None

    @property
    def mixer(self) -> Mixer:
        """The Python :class:`Mixer` this session was made from (ClosedError once closed)."""
        self._require()
        return self._mixer  # type: ignore[return-value]

    def _drop_parents(self) -> None:
        self._mixer = None

    @contextlib.contextmanager
    def _use(self) -> Iterator[int]:
        """The live handle, held for one call: refuses a second concurrent call (StateError)."""
        self._require()
        if not self._busy.acquire(blocking=False):
            raise StateError("this Session is in use by another call (a session is used by one thread at a "
                             "time; give each thread its own session)")
        try:
            yield self._require()
        finally:
            self._busy.release()

    def close(self) -> None:
        """Free the session (its KV cache and trace). A no-op when already closed.
        Raises StateError if another thread is evaluating it right now."""
        if self._handle is None:
            return
        if not self._busy.acquire(blocking=False):
            raise StateError("cannot close this Session while another call is using it")
        try:
            super().close()
        finally:
            self._busy.release()

    # -------------------------------------------------------------------------------- routing
    def set_routing(self, mode: Union[Routing, str, int]) -> None:
        """Set the routing mode for tokens evaluated from now on: ``"none"``, ``"learned"``,
        ``"soft"``, ``"fixed"`` or ``"uniform"`` (or a :class:`Routing`). learned and soft need a
        router; fixed needs weights set first (else StateError); uniform needs an expert."""
        routing = Routing.of(mode)
        with self._use() as handle:
            capi.lib().lmx_session_set_routing(handle, int(routing))
        self._routing = routing  # type: ignore[assignment]

    @property
    def routing(self) -> Optional[Routing]:
        """The mode last set through this object (``None``: the default, learned with a router,
        else none). Assign a mode or its name to set it."""
        return self._routing

    @routing.setter
    def routing(self, mode: Union[Routing, str, int]) -> None:
        self.set_routing(mode)

    def set_fixed_weights(self, weights: Sequence[float]) -> None:
        """Use fixed routing with one weight per expert (mixer index order), as given for every
        token: one-hot selects one adapter, weights summing to 1 make a static merge."""
        array = np.ascontiguousarray(np.asarray(weights, dtype=np.float32).reshape(-1))
        with self._use() as handle:
            capi.lib().lmx_session_set_fixed_weights(handle, array.ctypes.data if array.size else None, array.size)
        self._fixed_weights = array.copy()
        self._routing = Routing.FIXED  # type: ignore[assignment]

    @property
    def fixed_weights(self) -> Optional[np.ndarray]:
        """The fixed weights last set through this object (a copy), or ``None``."""
        return None if self._fixed_weights is None else self._fixed_weights.copy()

    @fixed_weights.setter
    def fixed_weights(self, weights: Sequence[float]) -> None:
        self.set_fixed_weights(weights)

    def set_top_k(self, top_k: Optional[int]) -> None:
        """Experts the learned router selects per token (1 .. expert count); ``None`` (or 0)
        restores the router file's top_k."""
        value = 0 if top_k is None else _positive_int(top_k, "top_k")
        with self._use() as handle:
            capi.lib().lmx_session_set_top_k(handle, value)
        self._top_k = value or None

    @property
    def top_k(self) -> Optional[int]:
        """The router top-K override set through this object (``None``: the router file's)."""
        return self._top_k

    @top_k.setter
    def top_k(self, value: Optional[int]) -> None:
        self.set_top_k(value)

    def set_temperature(self, temperature: Optional[float]) -> None:
        """Router softmax temperature (finite, > 0); ``None`` (or 0) restores the router file's."""
        value = 0.0 if temperature is None else float(temperature)
        with self._use() as handle:
            capi.lib().lmx_session_set_temperature(handle, value)
        self._temperature = value or None

    @property
    def temperature(self) -> Optional[float]:
        """The router temperature override set through this object (``None``: the file's)."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: Optional[float]) -> None:
        self.set_temperature(value)

    # -------------------------------------------------------------------------------- evaluation
    @staticmethod
    def _raise_with_callback_error(error: LoraMixerError) -> None:
        """Re-raise what a Python custom expert raised during the failed call, chained from the
        library's error; else the library's error."""
        original = _callbacks.take_pending()
        if original is not None and error.status in (LMX_ERR_PLUGIN, LMX_ERR_CANCELLED):
            raise original.with_traceback(original.__traceback__) from error
        raise error

    def eval(self, tokens: TokensLike, logits: Union[Logits, str, int] = "last",
             out: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """Process ``tokens`` after those already in the session; return logits.

        ``logits="last"`` returns the last position's logits, float32 ``[n_vocab]``; ``"all"``
        every position's, ``[n_tokens, n_vocab]``; ``"none"`` returns ``None`` (fills the KV cache
        only). The library writes straight into the returned array (no copy); pass ``out`` (a
        writable C-contiguous float32 array of that shape) to reuse a buffer.

        ``tokens`` are ids, never text: a ``str`` (or ``bytes``) raises TypeError. For a
        byte-level model the ids of a text are its UTF-8 bytes, ``list("12+30=".encode())``.

        Raises InvalidArgumentError (no tokens, an id outside 0 .. n_vocab-1), StateError (the
        context is full), the exception a Python custom expert raised (chained from PluginError).
        On failure the session is unchanged.
        """
        which = Logits.of(logits)
        ids = _tokens(tokens)
        n = ids.size
        result: Optional[np.ndarray] = None
        if which == Logits.LAST:
            shape = (self._n_vocab,)
        elif which == Logits.ALL:
            shape = (n, self._n_vocab)
        else:
            shape = None
        if shape is not None:
            if out is None:
                result = np.empty(shape, dtype=np.float32)
            else:
                if (not isinstance(out, np.ndarray) or out.dtype != np.float32 or not out.flags.c_contiguous
                        or not out.flags.writeable):
                    raise InvalidArgumentError("out must be a writable C-contiguous float32 numpy array")
                if out.shape != shape:
                    raise ShapeError(f"out has shape {out.shape}, expected {shape}")
                result = out
        with self._use() as handle:
            _callbacks.clear_pending()
            try:
                capi.lib().lmx_session_eval(handle, ids.ctypes.data if n else None, n, int(which),
                                            result.ctypes.data if result is not None else None,
                                            result.size if result is not None else 0)
            except LoraMixerError as error:
                self._raise_with_callback_error(error)
        return result

    def generate(self, prompt: TokensLike = (), max_tokens: int = 32, *, temperature: float = 0.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0, stop: Sequence[int] = (),
                 on_token: Optional[Callable[[int], Any]] = None) -> List[int]:
        """Evaluate ``prompt`` (may be empty when the session already holds tokens), then generate
        up to ``max_tokens`` tokens; returns the generated ids.

        Args:
            temperature: 0 = greedy; > 0 samples.
            top_k: keep the k most likely tokens before sampling (0 = all).
            top_p: nucleus sampling threshold (1 = all).
            seed: sampling seed; equal seeds give equal samples.
            stop: token ids that end generation (the stop token is not returned).
            on_token: called with each generated token; a truthy return stops after that token.
                An exception raised in it stops generation and is re-raised here.

        Generation ends at ``max_tokens``, a stop token, ``on_token`` asking to stop, or a full
        context (not an error). Errors as :meth:`eval`.
        """
        ids = _tokens(prompt, "prompt")
        stops = _tokens(stop if isinstance(stop, (np.ndarray, str, bytes, bytearray)) else list(stop), "stop")
        count = _positive_int(max_tokens, "max_tokens")
        if seed < 0 or seed >= 2**64:
            raise InvalidArgumentError(f"seed {seed} must be in 0 .. 2**64-1")
        lib = capi.lib()
        params = lib.lmx_generate_params_default()
        params.max_tokens = count
        params.temperature = float(temperature)
        params.top_k = _positive_int(top_k, "top_k")
        params.top_p = float(top_p)
        params.seed = int(seed)
        if stops.size:
            params.stop_tokens = ctypes.cast(stops.ctypes.data, ctypes.POINTER(ctypes.c_int32))
            params.n_stop_tokens = stops.size
        callback = None
        if on_token is not None:
            if not callable(on_token):
                raise TypeError("on_token must be callable as on_token(token) -> truthy to stop")
            callback = _callbacks.TokenCallback(on_token)
            params.on_token = callback.c_function
        produced = np.zeros(max(count, 1), dtype=np.int32)
        n_out = c_size_t(0)
        with self._use() as handle:
            _callbacks.clear_pending()
            try:
                lib.lmx_session_generate(handle, ids.ctypes.data if ids.size else None, ids.size, byref(params),
                                         produced.ctypes.data, count, byref(n_out))
            except LoraMixerError as error:
                self._raise_with_callback_error(error)
        if callback is not None and callback.error is not None:
            raise callback.error
        return [int(t) for t in produced[: n_out.value]]

    # -------------------------------------------------------------------------------- getters
    # Read from the library (lmx_session_get_*): the settings in effect, whoever set them.
    @property
    def routing_in_effect(self) -> Routing:
        """The routing mode in effect (``lmx_session_get_routing``)."""
        mode = c_uint32()
        capi.lib().lmx_session_get_routing(self._require(), byref(mode))
        return Routing(mode.value)

    @property
    def top_k_in_effect(self) -> int:
        """The top-K in effect: the value set, else the router file's, else the expert count."""
        value = c_uint32()
        capi.lib().lmx_session_get_top_k(self._require(), byref(value))
        return int(value.value)

    @property
    def temperature_in_effect(self) -> float:
        """The router temperature in effect: the value set, else the router file's, else 1."""
        value = c_float()
        capi.lib().lmx_session_get_temperature(self._require(), byref(value))
        return float(value.value)

    def fixed_weights_in_effect(self) -> Optional[np.ndarray]:
        """The weights last given for fixed routing, as the library holds them (``None`` if none)."""
        handle = self._require()
        n = c_size_t()
        capi.lib().lmx_session_get_fixed_weights(handle, None, 0, byref(n))
        if n.value == 0:
            return None
        weights = np.empty(n.value, dtype=np.float32)
        capi.lib().lmx_session_get_fixed_weights(handle, weights.ctypes.data, weights.size, byref(n))
        return weights

    @property
    def n_ctx(self) -> int:
        """Tokens the session can hold (the model's max_positions when created with 0)."""
        return int(self._params().n_ctx)

    @property
    def n_threads(self) -> int:
        """Threads the session's evaluations use (the cores available when created with 0)."""
        return int(self._params().n_threads)

    @property
    def traced(self) -> bool:
        """Whether the session records the routing trace."""
        return bool(self._params().trace)

    def _params(self) -> "capi.lmx_session_params":
        params = capi.lmx_session_params()
        params.struct_size = ctypes.sizeof(params)
        capi.lib().lmx_session_get_params(self._require(), byref(params))
        return params

    # -------------------------------------------------------------------------------- abort
    def set_abort_callback(self, fn: Optional[Callable[[], Any]]) -> None:
        """Ask ``fn()`` before each layer of every evaluation (eval, generate); a true answer
        aborts the call with CancelledError and leaves the session as it was before the call.
        ``None`` removes it. An exception raised by ``fn`` aborts too (and is chained)."""
        with self._use() as handle:
            if fn is None:
                capi.lib().lmx_session_set_abort_callback(handle, capi.lmx_abort_callback(), None)
                self._abort = None
                return
            if not callable(fn):
                raise TypeError("the abort callback must be callable or None")

            def call(_user: Optional[int]) -> int:
                try:
                    return 1 if fn() else 0
                except BaseException as error:  # noqa: BLE001 - reported after the call
                    _callbacks._record(error)
                    return 1

            callback = capi.lmx_abort_callback(call)
            capi.lib().lmx_session_set_abort_callback(handle, callback, None)
            self._abort = callback  # keep the trampoline alive while the library holds it

    # -------------------------------------------------------------------------------- state
    @property
    def n_past(self) -> int:
        """Tokens processed since creation or the last :meth:`reset`."""
        value = c_size_t()
        capi.lib().lmx_session_n_past(self._require(), byref(value))
        return value.value

    def reset(self) -> None:
        """Forget all processed tokens (KV cache, router context, trace); routing settings stay."""
        with self._use() as handle:
            capi.lib().lmx_session_reset(handle)

    def trace_size(self) -> Tuple[int, int, int]:
        """``(n_tokens, n_layers, width)`` of the routing trace (width = the session's expert count)."""
        t, l, w = c_size_t(), c_size_t(), c_size_t()
        capi.lib().lmx_session_trace_size(self._require(), byref(t), byref(l), byref(w))
        return t.value, l.value, w.value

    def trace(self) -> Trace:
        """The routing trace as numpy arrays: ``ids`` int32 ``[T, L, W]``, ``gates`` float32
        ``[T, L, W]`` (per token and layer the experts applied, largest gate first, then -1 / 0.0),
        ``tokens`` int32 ``[T]``. StateError if the session was created with ``trace=False``."""
        with self._use() as handle:
            n_tokens, n_layers, width = self.trace_size()
            ids = np.empty((n_tokens, n_layers, width), dtype=np.int32)
            gates = np.empty((n_tokens, n_layers, width), dtype=np.float32)
            tokens = np.empty(n_tokens, dtype=np.int32)
            capi.lib().lmx_session_trace_copy(handle, ids.ctypes.data, gates.ctypes.data, ids.size,
                                              tokens.ctypes.data, tokens.size)
        return Trace(ids, gates, tokens)

    def __repr__(self) -> str:
        if self.closed:
            return super().__repr__()
        return f"<loramixer.Session n_past={self.n_past}>"
