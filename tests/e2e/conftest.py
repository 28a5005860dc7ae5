"""Fixtures for in-process end-to-end tests on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
