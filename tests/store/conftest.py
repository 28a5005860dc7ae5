"""Store fixtures. Every test in this folder runs against every backend; the
PostgreSQL backend joins the ``BACKENDS`` list when it lands."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from store_helpers import FakeClock

from perdure._store import store_for_url
from perdure._store.base import Store

BACKENDS = ["sqlite"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
async def open_store(store_url: str, clock: FakeClock) -> AsyncIterator[Callable[[], object]]:
    """A factory: each call opens another connection (another 'process') to the same database."""
    opened: list[Store] = []

    async def make() -> Store:
        store = store_for_url(store_url, clock=clock)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
