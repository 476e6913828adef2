"""The library's log callback (``lmx_set_log_callback``): plugin messages into Python.

:func:`set_log_callback` installs any ``fn(level, source, message)``; :func:`log_to_logging` routes
messages to the standard :mod:`logging` module (logger ``loramixer.plugin.<plugin id>``). ``None``
restores the library's default (stderr).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from . import capi

__all__ = ["set_log_callback", "log_to_logging", "LEVELS"]

#: LMX_LOG_* -> logging level
LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}

_lock = threading.Lock()
_installed: Any = None  # the ctypes trampoline the library holds; kept alive here


def set_log_callback(fn: Optional[Callable[[int, str, str], Any]]) -> None:
    """Send every plugin log message to ``fn(level, source, message)`` (level an LMX_LOG_* value,
    source the plugin's id); ``None`` restores stderr. ``fn`` may be called from any thread that
    loads a plugin; exceptions it raises are swallowed (a log call cannot fail)."""
    global _installed
    with _lock:
        if fn is None:
            capi.lib().lmx_set_log_callback(capi.lmx_log_callback(), None)
            _installed = None
            return
        if not callable(fn):
            raise TypeError("the log callback must be callable or None")

        def call(level: int, source: Optional[bytes], message: Optional[bytes], _user: Optional[int]) -> None:
            try:
                fn(int(level), (source or b"").decode("utf-8", "replace"), (message or b"").decode("utf-8", "replace"))
            except BaseException:  # noqa: BLE001 - never propagate into the library
                pass

        callback = capi.lmx_log_callback(call)
        capi.lib().lmx_set_log_callback(callback, None)
        _installed = callback


def log_to_logging(base: str = "loramixer.plugin") -> None:
    """Route plugin messages to :mod:`logging`: logger ``<base>.<plugin id>``, level mapped from
    LMX_LOG_*."""
    def emit(level: int, source: str, message: str) -> None:
        logging.getLogger(f"{base}.{source}" if source else base).log(LEVELS.get(level, logging.INFO), message)
    set_log_callback(emit)
