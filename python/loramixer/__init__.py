"""loramixer: routed multi-LoRA inference (LoRA-Mixer) from Python, over libloramixer's C API.

A pure-Python package: ctypes bindings (:mod:`loramixer.capi`) and a Pythonic layer. It also
trains routers and experts (:meth:`Mixer.train`).

>>> import loramixer as lmx
>>> with lmx.Model("Tests/Fixtures/llama_f32") as model, lmx.Mixer(model) as mixer:
...     for name in ("e0", "e1", "e2"):
...         mixer.add_peft(name, f"Tests/Fixtures/llama_f32/adapters/{name}")
...     mixer.load_router("Tests/Fixtures/llama_f32/router.safetensors")
...     with mixer.session() as session:
...         logits = session.eval([109, 9, 61], logits="all")      # numpy [3, 128]
...         tokens = session.generate(max_tokens=8)                  # greedy continuation
...         ids, gates, seen = session.trace()                       # routing per token/layer
...     mixer.train("train.jsonl", out="run", steps=100, batch_size=8)  # retrain the router

The library is found through ``$LORAMIXER_LIBRARY``, then ``loramixer/libloramixer.so``, then the
repository's ``.build/release`` and ``.build/debug`` (see :mod:`loramixer.capi`), and loaded on
first use; :func:`load_library` loads it explicitly.
"""

from __future__ import annotations

from . import capi
from .capi import HEADER_VERSION_NUMBER, library_path, load_library
from ._log import log_to_logging, set_log_callback
from .errors import (ABIError, CancelledError, ClosedError, FormatError, InvalidArgumentError,
                     LibraryNotFoundError, LoraMixerError, LoraMixerIOError, NotFoundError,
                     OutOfMemoryError, PluginError, ShapeError, StateError, error_class)
from .mixer import Mixer
from .model import Model
from .session import Session
from .tokenizer import TextStream, Tokenizer
from .types import (DType, LoadMode, Logits, ModelInfo, Module, ModuleShape, PluginInfo, Routing,
                    Trace, TrainProgress, TrainRegime, TrainRouting, from_bfloat16, to_bfloat16)

__version__ = "0.1.0"

__all__ = [
    "Model", "Mixer", "Session", "Tokenizer", "TextStream",
    "ModelInfo", "ModuleShape", "PluginInfo", "Trace", "TrainProgress",
    "Module", "Routing", "Logits", "LoadMode", "DType", "TrainRegime", "TrainRouting",
    "to_bfloat16", "from_bfloat16",
    "version", "version_number", "status_string", "last_error",
    "load_library", "library_path", "HEADER_VERSION_NUMBER", "set_log_callback", "log_to_logging",
    "LoraMixerError", "InvalidArgumentError", "LoraMixerIOError", "FormatError", "ShapeError",
    "PluginError", "ABIError", "OutOfMemoryError", "StateError", "NotFoundError", "CancelledError",
    "ClosedError", "LibraryNotFoundError", "error_class",
    "capi",
]


def version() -> str:
    """The library's version, "MAJOR.MINOR.PATCH" (``lmx_version``)."""
    return capi.lib().lmx_version().decode()


def version_number() -> int:
    """The library's version as MAJOR*10000 + MINOR*100 + PATCH (``lmx_version_number``)."""
    return int(capi.lib().lmx_version_number())


def status_string(status: int) -> str:
    """The library's English name of a status code (``lmx_status_string``)."""
    return capi.lib().lmx_status_string(int(status)).decode()


def last_error() -> str:
    """The library's message for the latest failure on this thread (``lmx_last_error``). The
    exceptions this package raises already carry it; this is for raw :mod:`capi` calls."""
    raw = capi.lib().lmx_last_error()
    return raw.decode("utf-8", "replace") if raw else ""
