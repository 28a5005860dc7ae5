"""What the in-process HTTP API tests share beside conftest's ``api``
fixture: its base URL, the tokens of the auth tests, and ``eventually``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
BASE = "http://127.0.0.1:8765"
ADMIN, READ = "a" * 24, "r" * 24


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 15) -> T:
    """``check()``'s first true value, read every 20 ms; fails after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.02)
