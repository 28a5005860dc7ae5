"""An exception raised in another thread of this process (CPython's
``PyThreadState_SetAsyncExc``), and one sent but not raised yet taken back.

The thread gets it at its next check of the interpreter's eval breaker (a
Python function's entry, a loop's jump back, a return from a C call): code
busy in Python stops at its next line, code blocked in a call as the call
returns.

An exception sent is never cancelled by sending NULL, as the C API offers:
on CPython 3.11 that leaves the interpreter's "asynchronous exception"
signal set for good, so every later check takes the slow path, and the
next function call made under a trace function (a debugger, coverage)
loops for ever at its first instruction. ``absorb`` lets it be raised
instead, in a call made for that, and drops it: raising is what clears
the signal. The standard library only.
"""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["AVAILABLE", "absorb", "send"]

try:
    _set_async_exc: Any = ctypes.pythonapi.PyThreadState_SetAsyncExc
except AttributeError:  # not CPython
    _set_async_exc = None

AVAILABLE = _set_async_exc is not None


def send(ident: int, exc_type: type[BaseException]) -> None:
    """Raise ``exc_type`` in thread ``ident`` at its next check."""
    _set_async_exc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))


def _check() -> None:
    """A function call: its entry is a check of the eval breaker."""


def absorb(exc_type: type[BaseException]) -> None:
    """In the thread an ``exc_type`` may have been sent to, once nothing
    sends it any more: if it was not raised yet, it is raised now, and
    dropped; anything else raised goes on."""
    try:
        _check()
    except exc_type:
        pass
