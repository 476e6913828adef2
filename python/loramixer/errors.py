"""Exceptions raised by the loramixer package.

Every failing library call becomes an instance of one subclass of :class:`LoraMixerError`, chosen
by the call's ``lmx_status`` code, carrying that code (``.status``) and the library's message
(``.message``, read from ``lmx_last_error()`` on the calling thread right after the failing call).

The classes also derive from the closest built-in exception where that helps ``except`` clauses
(``ValueError`` for bad arguments and shapes, ``OSError`` for missing files, ``LookupError`` for
unknown names, ``MemoryError``, ``RuntimeError`` for state errors).
"""

from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "LMX_OK",
    "LMX_ERR_INVALID_ARGUMENT",
    "LMX_ERR_IO",
    "LMX_ERR_FORMAT",
    "LMX_ERR_SHAPE",
    "LMX_ERR_PLUGIN",
    "LMX_ERR_ABI",
    "LMX_ERR_OUT_OF_MEMORY",
    "LMX_ERR_STATE",
    "LMX_ERR_NOT_FOUND",
    "LMX_ERR_CANCELLED",
    "LoraMixerError",
    "InvalidArgumentError",
    "LoraMixerIOError",
    "FormatError",
    "ShapeError",
    "PluginError",
    "ABIError",
    "OutOfMemoryError",
    "StateError",
    "NotFoundError",
    "CancelledError",
    "ClosedError",
    "LibraryNotFoundError",
    "error_class",
    "error_for_status",
]

# Status codes (include/loramixer_common.h); fixed forever.
LMX_OK = 0
LMX_ERR_INVALID_ARGUMENT = -1
LMX_ERR_IO = -2
LMX_ERR_FORMAT = -3
LMX_ERR_SHAPE = -4
LMX_ERR_PLUGIN = -5
LMX_ERR_ABI = -6
LMX_ERR_OUT_OF_MEMORY = -7
LMX_ERR_STATE = -8
LMX_ERR_NOT_FOUND = -9
LMX_ERR_CANCELLED = -10


class LoraMixerError(Exception):
    """Base class of every error this package raises.

    Attributes:
        status: the ``lmx_status`` code (a negative int), or ``None`` for an error found on the
            Python side that has no library status (e.g. the library could not be found).
        message: the library's ``lmx_last_error()`` text (or the Python-side description).
    """

    #: The status code this class stands for (``None`` on the base class).
    default_status: Optional[int] = None

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message: str = message
        self.status: Optional[int] = self.default_status if status is None else status

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # keeps (message, status) through pickling
        return (type(self), (self.message, self.status))


class InvalidArgumentError(LoraMixerError, ValueError):
    """``LMX_ERR_INVALID_ARGUMENT``: a NULL pointer, empty or out-of-range value, or bad handle."""

    default_status = LMX_ERR_INVALID_ARGUMENT


class LoraMixerIOError(LoraMixerError, OSError):
    """``LMX_ERR_IO``: a file is missing or unreadable. (Named so as not to shadow ``IOError``.)"""

    default_status = LMX_ERR_IO

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        # OSError's own constructor would read a 2-argument call as (errno, strerror).
        LoraMixerError.__init__(self, message, status)


class FormatError(LoraMixerError, ValueError):
    """``LMX_ERR_FORMAT``: a file is corrupt or not of the expected format."""

    default_status = LMX_ERR_FORMAT


class ShapeError(LoraMixerError, ValueError):
    """``LMX_ERR_SHAPE``: a tensor or buffer does not have the expected shape or size."""

    default_status = LMX_ERR_SHAPE


class PluginError(LoraMixerError):
    """``LMX_ERR_PLUGIN``: a plugin, or a custom expert's callback, failed."""

    default_status = LMX_ERR_PLUGIN


class ABIError(LoraMixerError):
    """``LMX_ERR_ABI``: a struct or plugin of an incompatible ABI version (also raised when the
    library's major version differs from the one this package was written for)."""

    default_status = LMX_ERR_ABI


class OutOfMemoryError(LoraMixerError, MemoryError):
    """``LMX_ERR_OUT_OF_MEMORY``: an allocation failed or a size would overflow."""

    default_status = LMX_ERR_OUT_OF_MEMORY


class StateError(LoraMixerError, RuntimeError):
    """``LMX_ERR_STATE``: the object is not in a state that allows the call (context full, a
    routing mode without what it needs, a session busy in another call)."""

    default_status = LMX_ERR_STATE


class NotFoundError(LoraMixerError, LookupError):
    """``LMX_ERR_NOT_FOUND``: a named expert, tensor, module or plugin does not exist."""

    default_status = LMX_ERR_NOT_FOUND


class CancelledError(LoraMixerError):
    """``LMX_ERR_CANCELLED``: the host cancelled the operation. (Not ``asyncio.CancelledError``.)"""

    default_status = LMX_ERR_CANCELLED


class ClosedError(InvalidArgumentError):
    """A method was called on a Model, Mixer or Session after ``close()``. Raised on the Python
    side, before any freed handle could reach the library (status ``LMX_ERR_INVALID_ARGUMENT``,
    which is what the library itself answers for a freed handle)."""


class LibraryNotFoundError(LoraMixerError, ImportError):
    """``libloramixer.so`` could not be found or loaded; the message lists every place tried."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        LoraMixerError.__init__(self, message, status)


_BY_STATUS: Dict[int, Type[LoraMixerError]] = {
    cls.default_status: cls  # type: ignore[misc]
    for cls in (
        InvalidArgumentError,
        LoraMixerIOError,
        FormatError,
        ShapeError,
        PluginError,
        ABIError,
        OutOfMemoryError,
        StateError,
        NotFoundError,
        CancelledError,
    )
}


def error_class(status: int) -> Type[LoraMixerError]:
    """The exception class for a (negative) status code; ``LoraMixerError`` for an unknown one."""
    return _BY_STATUS.get(status, LoraMixerError)


def error_for_status(status: int, message: str) -> LoraMixerError:
    """An exception instance for ``status`` with ``message``."""
    return error_class(status)(message, status)
