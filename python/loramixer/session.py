"""Session: a KV cache, routing settings and a routing trace over one mixer."""

from __future__ import annotations

import contextlib
import ctypes
import threading
from ctypes import byref, c_float, c_size_t, c_uint32, c_void_p
import queue
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _callbacks, capi
from ._handle import OwnedHandle
from .errors import (LMX_ERR_CANCELLED, LMX_ERR_PLUGIN, InvalidArgumentError, LoraMixerError, NotFoundError,
                     ShapeError, StateError)
from .mixer import Mixer
from .types import Logits, Routing, Trace

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

__all__ = ["Session"]

#: lmx_session_generate_text's LMX_STOP_* values as Session.stop_reason reports them.
STOP_REASONS = {capi.LMX_STOP_END_OF_TURN: "end_of_turn", capi.LMX_STOP_MAX_TOKENS: "max_tokens",
                capi.LMX_STOP_CALLBACK: "callback", capi.LMX_STOP_CONTEXT_FULL: "context_full"}

TokensLike = Union[Sequence[int], np.ndarray, int]


def _tokens(tokens: TokensLike, what: str = "tokens") -> np.ndarray:
    """Token ids as a C-contiguous int32 array (refusing non-integers and values outside int32).

    Text is refused with a TypeError that says what to pass: ``generate(text=...)`` /
    ``generate_text`` for text, or ids (a byte-level model's are the text's UTF-8 bytes).
    """
    if isinstance(tokens, (str, bytes, bytearray, memoryview)):
        example = tokens if isinstance(tokens, str) else bytes(tokens).decode("utf-8", "replace")
        shown = repr(example if len(example) <= 20 else example[:20] + "...")
        kind = "a str" if isinstance(tokens, str) else f"a {type(tokens).__name__} object"
        raise TypeError(
            f"{what} must be token ids (a sequence of ints or an integer numpy array), not {kind}. For text, "
            f"session.generate(text={shown}) and session.generate_text / stream_text tokenize with the model's "
            f"tokenizer (or model.tokenizer().encode(...)); a byte-level model (such as the bundled models/tiny-llama) "
            f"also takes the UTF-8 bytes as ids: list({shown}.encode())")
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


def _prompt_text(prompt: Any) -> bytes:
    """A text prompt as UTF-8 bytes (NUL characters allowed: the length is passed)."""
    if not isinstance(prompt, str):
        raise TypeError(f"the prompt must be a str, not {type(prompt).__name__} (token ids go to generate())")
    try:
        return prompt.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidArgumentError(f"the prompt is not valid Unicode text: {error}") from None


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
        self._tokenizer: Optional["Tokenizer"] = None
        #: Why the last text generation ended: "end_of_turn" (a stop token), "max_tokens",
        #: "callback" (on_text/on_token asked to stop, or a stream_text consumer stopped) or
        #: "context_full"; None before any.
        self.stop_reason: Optional[str] = None

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

    def _generate_params(self, max_tokens: int, temperature: float, top_k: int, top_p: float, seed: int,
                         stop: Sequence[int], on_token: Optional[Callable[[int], Any]]) -> Tuple[Any, Tuple[Any, Any]]:
        """lmx_generate_params for generate and generate_text, and what must stay alive during the
        call (the stop array, the token callback)."""
        stops = _tokens(stop if isinstance(stop, (np.ndarray, str, bytes, bytearray)) else list(stop), "stop")
        count = _positive_int(max_tokens, "max_tokens")
        if seed < 0 or seed >= 2**64:
            raise InvalidArgumentError(f"seed {seed} must be in 0 .. 2**64-1")
        params = capi.lib().lmx_generate_params_default()
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
        return params, (stops, callback)

    def generate(self, prompt: TokensLike = (), max_tokens: int = 32, *, temperature: float = 0.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0, stop: Sequence[int] = (),
                 on_token: Optional[Callable[[int], Any]] = None, text: Optional[str] = None,
                 **text_options: Any) -> Any:
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

        With ``text="..."`` (instead of ``prompt``), or a ``str`` prompt on a model that has a
        tokenizer, this is :meth:`generate_text`: the text is tokenized, the answer returned as a
        str, and ``text_options`` (``tokenizer``, ``chat``, ``on_text``, ...) are passed on. A
        ``str`` prompt on a model without a tokenizer raises TypeError saying what to pass.
        """
        if isinstance(prompt, str) and text is None:
            if "tokenizer" not in text_options:
                try:
                    self.tokenizer()
                except NotFoundError:
                    _tokens(prompt, "prompt")  # raises the TypeError that says what to pass
            text, prompt = prompt, ()
        if text is not None:
            if not (isinstance(prompt, (tuple, list)) and len(prompt) == 0):
                raise InvalidArgumentError("pass either prompt (token ids) or text, not both")
            return self.generate_text(text, max_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                      seed=seed, stop=stop, on_token=on_token, **text_options)
        if text_options:
            raise TypeError(f"generate() got unexpected keyword arguments {sorted(text_options)} "
                            "(text options need text=...)")
        ids = _tokens(prompt, "prompt")
        count = _positive_int(max_tokens, "max_tokens")
        params, keep = self._generate_params(max_tokens, temperature, top_k, top_p, seed, stop, on_token)
        callback = keep[1]
        lib = capi.lib()
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

    # -------------------------------------------------------------------------------- text
    def tokenizer(self) -> "Tokenizer":
        """The tokenizer text generation uses by default: the model's own (``model.tokenizer()``),
        read on first use and kept. NotFoundError when the model folder has none."""
        if self._tokenizer is None or self._tokenizer.closed:
            self._require()
            mixer = self._mixer
            model = mixer._model if mixer is not None else None
            if model is None:
                raise StateError("the session's mixer is closed: pass tokenizer= explicitly")
            self._tokenizer = model.tokenizer()
        return self._tokenizer

    def generate_text(self, prompt: str = "", max_tokens: int = 32, *, tokenizer: Optional["Tokenizer"] = None,
                      chat: bool = False, parse_special: bool = False, add_bos: bool = True,
                      show_special: bool = False, stop_at_end_of_turn: bool = True, temperature: float = 0.0,
                      top_k: int = 0, top_p: float = 1.0, seed: int = 0, stop: Sequence[int] = (),
                      on_token: Optional[Callable[[int], Any]] = None,
                      on_text: Optional[Callable[[str], Any]] = None) -> str:
        """Generate text (``lmx_session_generate_text``): tokenize ``prompt`` ("" continues the
        session), generate, and return the new text; :attr:`stop_reason` says why it ended.

        Args:
            tokenizer: a :class:`Tokenizer` (default: the model's own, :meth:`tokenizer`).
            chat: the prompt is a user message: the chat template is applied with the generation
                prompt (StateError when the tokenizer has none).
            parse_special: special tokens written in a plain prompt become their ids (off: user
                text cannot forge control tokens).
            add_bos: a plain prompt given to an empty session gets the tokenizer's BOS/EOS
                template (False: never).
            show_special: special tokens' text is part of the output (hidden by default).
            stop_at_end_of_turn: stop at the tokenizer's end-of-turn ids (EOS, eot tokens); the
                stop token is neither evaluated nor returned.
            on_text: called with each piece of text as soon as it is whole UTF-8; a truthy return
                stops after the current token. An exception raised in it stops generation and is
                re-raised here (the tokens generated until then stay in the session).
            the rest: as :meth:`generate` (``stop`` ids and ``on_token`` still apply).

        Raises InvalidArgumentError (a prompt that is not text, a surrogate), ShapeError (a
        tokenizer with more ids than the model), StateError (chat without a template; context
        full), and as :meth:`eval`. On failure the session is unchanged.
        """
        raw = _prompt_text(prompt)
        if tokenizer is None:
            tokenizer = self.tokenizer()
        from .tokenizer import Tokenizer
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a loramixer.Tokenizer, not {type(tokenizer).__name__}")
        params, keep = self._generate_params(max_tokens, temperature, top_k, top_p, seed, stop, on_token)
        lib = capi.lib()
        text_params = lib.lmx_text_params_default()
        flags = 0
        if chat:
            flags |= capi.LMX_TEXT_CHAT
        if parse_special:
            flags |= capi.LMX_TEXT_PARSE_SPECIAL
        if not add_bos:
            flags |= capi.LMX_TEXT_NO_BOS
        if show_special:
            flags |= capi.LMX_TEXT_SHOW_SPECIAL
        if not stop_at_end_of_turn:
            flags |= capi.LMX_TEXT_IGNORE_END_OF_TURN
        text_params.flags = flags
        if on_text is not None and not callable(on_text):
            raise TypeError("on_text must be callable as on_text(text) -> truthy to stop")
        pieces: List[str] = []
        errors: List[BaseException] = []

        def deliver(address: Optional[int], length: int, _user: Optional[int]) -> int:
            try:
                piece = ctypes.string_at(address, length).decode("utf-8", "replace") if length else ""
                pieces.append(piece)
                return 1 if on_text is not None and on_text(piece) else 0
            except BaseException as error:  # noqa: BLE001 - nothing may unwind into C
                if not errors:
                    errors.append(error)
                return 1

        callback = capi.lmx_text_callback(deliver)
        text_params.on_text = callback
        needed = c_size_t(0)
        reason = c_uint32(0)
        token_callback = keep[1]
        with self._use() as handle:
            _callbacks.clear_pending()
            try:
                lib.lmx_session_generate_text(handle, tokenizer._require(), raw, len(raw), byref(params),
                                              byref(text_params), None, 0, byref(needed), byref(reason))
            except LoraMixerError as error:
                self._raise_with_callback_error(error)
        self.stop_reason = STOP_REASONS.get(reason.value, str(reason.value))
        if errors:
            raise errors[0]
        if token_callback is not None and token_callback.error is not None:
            raise token_callback.error
        return "".join(pieces)

    def stream_text(self, prompt: str = "", max_tokens: int = 32, **options: Any) -> Iterator[str]:
        """Like :meth:`generate_text`, but yields the text in pieces as it is generated (each whole
        UTF-8); ``"".join(stream_text(...))`` equals what :meth:`generate_text` returns.

        Generation runs on a helper thread that waits for the consumer after each piece, so it
        never runs ahead. Stopping early — ``break``, an exception in the loop, ``close()`` or
        garbage collection of the iterator — stops generation after the last piece handed out
        (:attr:`stop_reason` "callback"); the tokens generated until then stay in the session,
        which remains usable. While the iterator is open the session is busy (other calls on it
        raise StateError). Errors of the call are raised from the iteration.
        """
        if "on_text" in options:
            raise TypeError("stream_text yields the text itself; on_text is not accepted")
        chunks: "queue.Queue[Tuple[str, Any]]" = queue.Queue()
        answers: "queue.Queue[bool]" = queue.Queue()
        stopping = threading.Event()

        def on_text(piece: str) -> bool:
            if stopping.is_set():
                return True
            chunks.put(("text", piece))
            return answers.get()

        def run() -> None:
            try:
                self.generate_text(prompt, max_tokens, on_text=on_text, **options)
                chunks.put(("done", None))
            except BaseException as error:  # noqa: BLE001 - handed to the consumer
                chunks.put(("error", error))

        return self._stream(run, chunks, answers, stopping)

    @staticmethod
    def _stream(run: Callable[[], None], chunks: "queue.Queue[Tuple[str, Any]]", answers: "queue.Queue[bool]",
                stopping: threading.Event) -> Iterator[str]:
        worker = threading.Thread(target=run, name="loramixer-stream_text", daemon=True)
        worker.start()
        pending = False  # the worker waits for an answer to the piece it handed out
        finished = False
        try:
            while True:
                kind, value = chunks.get()
                if kind == "text":
                    pending = True
                    yield value
                    pending = False
                    answers.put(False)
                elif kind == "error":
                    finished = True
                    raise value
                else:
                    finished = True
                    return
        finally:
            if not finished:
                stopping.set()
                if pending:
                    answers.put(True)
                while True:  # drain until the worker is done (a piece handed out meanwhile is refused)
                    kind, _ = chunks.get()
                    if kind == "text":
                        answers.put(True)
                        continue
                    break
            worker.join()

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
