"""Where workflow code issued a command (the line a NonDeterminismError
names), and a short form of a command's arguments. The standard library only.
"""

from __future__ import annotations

import asyncio
import os
import sys
from types import CodeType
from typing import Any

__all__ = ["brief", "user_location"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__))


def user_location(driver: CodeType) -> str:
    """The innermost stack frame that belongs to workflow code, as 'file:line
    in fn'; none above ``driver`` (the runtime's code that runs a turn)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is driver:
            break  # reached the driver: the command came from a callback, not user code
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIR) and not path.startswith(_ASYNCIO_DIR):
            return f"{path}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown location>"


def brief(args: list[Any], kwargs: dict[str, Any]) -> str:
    """A command's arguments, in at most 120 characters."""
    text = repr((*args, *(f"{k}={v!r}" for k, v in kwargs.items())))
    return text if len(text) <= 120 else text[:117] + "..."
