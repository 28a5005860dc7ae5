"""Where workflow code issued a command (the line a NonDeterminismError
names), and a short form of a command's arguments. The standard library only.
"""

from __future__ import annotations

import asyncio
import os
import sys
from types import CodeType, FrameType
from typing import Any

__all__ = ["brief", "is_ours", "raised_at", "user_frames", "user_location"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__))
_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))


def is_ours(filename: str) -> bool:
    """Whether code of this file is perdure's or asyncio's, not the user's."""
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE_DIR) or path.startswith(_ASYNCIO_DIR)


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


def user_frames(frame: FrameType | None) -> list[FrameType]:
    """The frames of workflow code in a stack whose innermost frame is
    ``frame``, innermost first: those above the runtime's first frame (the
    code that runs a turn), outside perdure and asyncio. Empty if the stack
    is not in a turn."""
    found: list[FrameType] = []
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if path.startswith(_RUNTIME_DIR):
            return found
        if not path.startswith(_PACKAGE_DIR) and not path.startswith(_ASYNCIO_DIR):
            found.append(frame)
        frame = frame.f_back
    return []


def raised_at(exc: BaseException) -> str:
    """' at FILE:LINE' of the innermost frame of workflow code in ``exc``'s
    traceback ('' if none)."""
    at = ""
    tb = exc.__traceback__
    while tb is not None:
        path = os.path.abspath(tb.tb_frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIR) and not path.startswith(_ASYNCIO_DIR):
            at = f" at {path}:{tb.tb_lineno}"
        tb = tb.tb_next
    return at


def brief(args: list[Any], kwargs: dict[str, Any]) -> str:
    """A command's arguments, in at most 120 characters."""
    text = repr((*args, *(f"{k}={v!r}" for k, v in kwargs.items())))
    return text if len(text) <= 120 else text[:117] + "..."
