"""Tokenizer: a Hugging Face tokenizer (``tokenizer.json``, or a GGUF file's), chat templates and a
streaming decoder (``lmx_tokenizer``, ``lmx_text_stream``)."""

from __future__ import annotations

import ctypes
import os
from ctypes import byref, c_size_t, c_void_p
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import capi
from ._handle import OwnedHandle
from .errors import InvalidArgumentError, LoraMixerIOError, ShapeError

if TYPE_CHECKING:
    from .model import Model

__all__ = ["Tokenizer", "TextStream"]

PathLike = Union[str, "os.PathLike[str]"]
Message = Union[Mapping[str, str], Tuple[str, str]]


def _read_bytes(fill: Callable[[Any, int, Any], Any], size: int = 256) -> bytes:
    """Runs an output-string call ``fill(buf, capacity, needed_ptr)`` with a buffer large enough and
    returns exactly ``*needed`` bytes (text may contain a NUL byte, so ``.value`` would cut it)."""
    needed = c_size_t(0)
    for _ in range(4):
        buffer = ctypes.create_string_buffer(size)
        fill(buffer, size, byref(needed))
        if needed.value < size:
            return ctypes.string_at(buffer, needed.value)
        size = needed.value + 1
    return ctypes.string_at(buffer, min(needed.value, size - 1))


def _text_bytes(text: Any, what: str) -> bytes:
    """A str as UTF-8 (NUL characters allowed: lengths are passed)."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:  # lone surrogates
        raise InvalidArgumentError(f"{what} is not valid Unicode text: {error}") from None


def _ids(ids: Any) -> np.ndarray:
    if isinstance(ids, (str, bytes, bytearray)):
        raise TypeError(f"ids must be a sequence of ints, not {type(ids).__name__}")
    array = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
    if array.size == 0:
        return np.zeros(0, dtype=np.int32)
    if array.ndim != 1 or array.dtype.kind not in "iu" or array.dtype == np.bool_:
        raise InvalidArgumentError(f"ids must be a one-dimensional sequence of ints, got {array.dtype} {array.shape}")
    if ((array < -(2**31)) | (array >= 2**31)).any():
        raise InvalidArgumentError("ids must fit in int32")
    return np.ascontiguousarray(array, dtype=np.int32)


def _id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"a token id must be an int, not {type(value).__name__}")
    if not -(2**31) <= int(value) < 2**31:
        raise InvalidArgumentError(f"token id {value} does not fit in int32")
    return int(value)


class Tokenizer(OwnedHandle):
    """A tokenizer (``lmx_tokenizer``): immutable, shareable by any number of threads.

    ``Tokenizer(path)`` reads a model folder (``tokenizer.json`` with the special tokens and chat
    template of ``tokenizer_config.json``, ``special_tokens_map.json`` and
    ``generation_config.json``) or a ``.gguf`` file; :meth:`from_model` (or ``model.tokenizer()``)
    gives a model's own. Ids and texts are those of Hugging Face ``tokenizers``.

    Raises:
        LoraMixerIOError: a missing folder or file. FormatError: a tokenizer this library does not
        support (the component is named). NotFoundError (from_model): the model has no tokenizer.
    """

    _kind = "Tokenizer"

    def __init__(self, path: PathLike) -> None:
        super().__init__()
        lib = capi.lib()
        out = c_void_p()
        raw = capi.encode_path(path, "Tokenizer")
        if raw and not os.path.exists(raw):
            raise LoraMixerIOError(f"Tokenizer: {os.fsdecode(raw)} does not exist")
        lib.lmx_tokenizer_load(raw, byref(out))
        self._setup(out.value)
        self.path: Optional[str] = os.fspath(path)

    @classmethod
    def from_model(cls, model: "Model") -> "Tokenizer":
        """The model folder's own tokenizer (``lmx_model_tokenizer``; shared by every handle to it).
        Raises NotFoundError when the folder has no ``tokenizer.json``, ShapeError when its ids do
        not fit the model's vocabulary."""
        from .model import Model
        if not isinstance(model, Model):
            raise TypeError(f"from_model needs a loramixer.Model, not {type(model).__name__}")
        out = c_void_p()
        capi.lib().lmx_model_tokenizer(model._require(), byref(out))
        self = cls.__new__(cls)
        OwnedHandle.__init__(self)
        self._setup(out.value)
        self.path = model.path
        return self

    def _setup(self, handle: int) -> None:
        lib = capi.lib()
        self._own(handle, lib.lmx_tokenizer_free)
        info = capi.lmx_tokenizer_info()
        info.struct_size = ctypes.sizeof(capi.lmx_tokenizer_info)
        lib.lmx_tokenizer_get_info(handle, byref(info))
        self._info = info
        n = c_size_t(0)
        lib.lmx_tokenizer_end_of_turn(handle, None, 0, byref(n))
        ids = (ctypes.c_int32 * max(n.value, 1))()
        lib.lmx_tokenizer_end_of_turn(handle, ids, n.value, byref(n))
        self._end_of_turn = [int(ids[i]) for i in range(n.value)]

    # ------------------------------------------------------------------------ properties
    @staticmethod
    def _optional(value: int) -> Optional[int]:
        return None if value < 0 else int(value)

    @property
    def vocab_size(self) -> int:
        """Distinct ids: the vocabulary and the added tokens."""
        self._require()
        return int(self._info.n_vocab)

    @property
    def max_id(self) -> Optional[int]:
        """The largest id the tokenizer produces (None for an empty vocabulary)."""
        self._require()
        return self._optional(self._info.max_id)

    @property
    def bos_id(self) -> Optional[int]:
        """Beginning-of-sequence id, or None."""
        self._require()
        return self._optional(self._info.bos_id)

    @property
    def eos_id(self) -> Optional[int]:
        """End-of-sequence id, or None."""
        self._require()
        return self._optional(self._info.eos_id)

    @property
    def pad_id(self) -> Optional[int]:
        """Padding id, or None."""
        self._require()
        return self._optional(self._info.pad_id)

    @property
    def unk_id(self) -> Optional[int]:
        """Unknown-token id, or None."""
        self._require()
        return self._optional(self._info.unk_id)

    @property
    def end_of_turn_ids(self) -> List[int]:
        """The ids text generation stops at by default (EOS, generation_config.json's
        eos_token_id, end-of-turn tokens such as ``<|eot_id|>``)."""
        self._require()
        return list(self._end_of_turn)

    @property
    def has_chat_template(self) -> bool:
        """Whether :meth:`apply_chat_template` can be used."""
        self._require()
        return bool(self._info.has_chat_template)

    # ------------------------------------------------------------------------ text
    def encode(self, text: str, add_special: bool = False, parse_special: bool = False) -> List[int]:
        """The ids of ``text`` (``lmx_tokenize``). Like the C API nothing is implicit:
        ``add_special=True`` applies the tokenizer's template (BOS/EOS, as ``tokenizers``'
        ``add_special_tokens``); ``parse_special=True`` turns special tokens written in the text
        (``"<|eot_id|>"``) into their ids — off by default, so that user text cannot forge control
        tokens (``tokenizers`` parses them; pass True to match it)."""
        raw = _text_bytes(text, "text")
        handle = self._require()
        lib = capi.lib()
        n = c_size_t(0)
        lib.lmx_tokenize(handle, raw, len(raw), int(bool(add_special)), int(bool(parse_special)), None, 0, byref(n))
        ids = np.zeros(max(n.value, 1), dtype=np.int32)
        lib.lmx_tokenize(handle, raw, len(raw), int(bool(add_special)), int(bool(parse_special)), ids.ctypes.data,
                         ids.size, byref(n))
        return [int(i) for i in ids[: n.value]]

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """The text of ``ids`` (``lmx_detokenize``), as ``tokenizers`` decodes: a character cut
        between tokens becomes U+FFFD, unknown ids are skipped, special tokens too when
        ``skip_special``."""
        array = _ids(ids)
        handle = self._require()
        lib = capi.lib()
        data = array.ctypes.data if array.size else None
        raw = _read_bytes(lambda buf, cap, needed: lib.lmx_detokenize(handle, data, array.size, int(bool(skip_special)),
                                                                      buf, cap, needed))
        return raw.decode("utf-8", "replace")

    def token_to_bytes(self, id: int) -> bytes:
        """The bytes token ``id`` stands for (``lmx_token_to_piece``; possibly part of a UTF-8
        character). InvalidArgumentError for an id the tokenizer does not have."""
        token = _id(id)
        handle = self._require()
        lib = capi.lib()
        return _read_bytes(lambda buf, cap, needed: lib.lmx_token_to_piece(handle, token, buf, cap, needed), 64)

    def apply_chat_template(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        """Render the chat template (``lmx_chat_apply_template``) for ``messages``: dicts with
        ``"role"`` and ``"content"`` strings (or ``(role, content)`` pairs). Encode the result with
        ``add_special=False, parse_special=True`` (the template writes BOS itself). StateError when
        the tokenizer has no chat template."""
        if isinstance(messages, (str, bytes, Mapping)):
            raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
        items = list(messages)
        array = (capi.lmx_chat_message * max(len(items), 1))()
        keep = []
        for i, message in enumerate(items):
            if isinstance(message, Mapping):
                if "role" not in message or "content" not in message:
                    raise InvalidArgumentError(f"messages[{i}] needs 'role' and 'content'")
                role, content = message["role"], message["content"]
            elif isinstance(message, tuple) and len(message) == 2:
                role, content = message
            else:
                raise TypeError(f"messages[{i}] must be a dict with 'role' and 'content', not {type(message).__name__}")
            role_b = capi.encode_text(role, f"messages[{i}]['role']")
            content_b = capi.encode_text(content, f"messages[{i}]['content']")
            keep += [role_b, content_b]
            array[i].role = role_b
            array[i].content = content_b
        handle = self._require()
        lib = capi.lib()
        raw = _read_bytes(lambda buf, cap, needed: lib.lmx_chat_apply_template(
            handle, array, len(items), int(bool(add_generation_prompt)), buf, cap, needed), 1024)
        del keep
        return raw.decode("utf-8", "replace")

    def stream(self, skip_special: bool = True) -> "TextStream":
        """A streaming decoder (``lmx_text_stream``): ``push(id)`` returns the text that is now
        whole UTF-8, ``finish()`` what was held back."""
        return TextStream(self, skip_special)

    def __repr__(self) -> str:
        if self.closed:
            return super().__repr__()
        return f"<loramixer.Tokenizer {self._info.n_vocab} ids {self.path!r}>"


class TextStream(OwnedHandle):
    """Decodes ids one at a time into whole-UTF-8 text (``lmx_text_stream``); one thread at a time.

    ``"".join(push(i) for i in ids) + finish()`` equals ``tokenizer.decode(ids, skip_special)``.
    """

    _kind = "TextStream"

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = True) -> None:
        super().__init__()
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"TextStream needs a loramixer.Tokenizer, not {type(tokenizer).__name__}")
        lib = capi.lib()
        out = c_void_p()
        lib.lmx_text_stream_create(tokenizer._require(), int(bool(skip_special)), byref(out))
        self._own(out.value, lib.lmx_text_stream_free)

    def _call(self, call: Callable[[Any, int, Any], Any]) -> str:
        # LMX_ERR_SHAPE leaves the stream unchanged: retry with the size it reported.
        size = 64
        needed = c_size_t(0)
        for _ in range(4):
            buffer = ctypes.create_string_buffer(size)
            try:
                call(buffer, size, byref(needed))
            except ShapeError:
                size = needed.value + 1
                continue
            return ctypes.string_at(buffer, needed.value).decode("utf-8", "replace")
        raise ShapeError("the text stream's text did not fit")  # pragma: no cover

    def push(self, id: int) -> str:
        """The text ``id`` completes (often its own text; "" while a character is cut)."""
        token = _id(id)
        handle = self._require()
        lib = capi.lib()
        return self._call(lambda buf, cap, needed: lib.lmx_text_stream_push(handle, token, buf, cap, needed))

    def finish(self) -> str:
        """What was held back (a cut character as U+FFFD); the stream is then empty again."""
        handle = self._require()
        lib = capi.lib()
        return self._call(lambda buf, cap, needed: lib.lmx_text_stream_finish(handle, buf, cap, needed))
