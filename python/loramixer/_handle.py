"""Lifetime of a library handle owned by a Python object."""

from __future__ import annotations

import weakref
from typing import Any, Callable, Optional, TypeVar

from .errors import ClosedError

__all__ = ["OwnedHandle"]

T = TypeVar("T", bound="OwnedHandle")


class OwnedHandle:
    """Base of Model, Mixer and Session: owns one library handle (an int address).

    The handle is released by ``close()``, by leaving a ``with`` block, or by a
    ``weakref.finalize`` when the object is garbage-collected (or at interpreter exit), whichever
    comes first; releasing twice is a no-op. The library keeps what a handle uses alive on its own
    (a mixer keeps its model, a session what it uses), so objects can be closed in any order; each
    Python child also keeps a reference to its Python parent. After ``close()`` every method raises
    :class:`ClosedError` instead of passing the freed handle on.
    """

    _kind = "object"

    def __init__(self) -> None:
        self._handle: Optional[int] = None
        self._finalizer: Optional[weakref.finalize] = None

    def _own(self, handle: int, free: Callable[[Any], None]) -> None:
        self._handle = handle
        # The finalizer must not reference self; it holds the free function and the address.
        self._finalizer = weakref.finalize(self, free, handle)

    def _require(self) -> int:
        """The live handle, or ClosedError."""
        handle = self._handle
        if handle is None:
            raise ClosedError(f"this {self._kind} is closed")
        return handle

    @property
    def closed(self) -> bool:
        """True after ``close()`` (or if construction failed)."""
        return self._handle is None

    def close(self) -> None:
        """Release the library handle now (and this object's references to its Python parents).
        Calling it again is a no-op."""
        self._handle = None
        finalizer = self._finalizer
        if finalizer is not None:
            finalizer()  # runs the free function at most once, even from several threads
        self._drop_parents()

    def _drop_parents(self) -> None:
        """Forget the Python parents once no handle needs them (overridden by children)."""

    def __enter__(self: T) -> T:
        self._require()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else f"handle=0x{self._handle:x}"
        return f"<loramixer.{type(self).__name__} {state}>"
