"""Fixtures for in-process end-to-end tests on a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

import perdure


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'e2e.db'}"


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[perdure.Client]:
    c = await perdure.Client.connect(db_url)
    c.poll_interval = 0.02
    yield c
    await c.close()


def fast_worker(
    client: perdure.Client, workflows: list[object], activities: list[object], **options: object
) -> perdure.Worker:
    options.setdefault("poll_interval", 0.02)
    options.setdefault("lease_timeout", 5.0)
    return perdure.Worker(client, workflows, activities, **options)  # type: ignore[arg-type]


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll an async predicate until it holds; fail with ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
