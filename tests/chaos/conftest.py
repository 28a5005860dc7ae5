"""Chaos fixtures: the ``chaos_long`` marker, and a fresh PostgreSQL database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pg_support import fresh_database


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos_long: the long chaos run (PERDURE_CHAOS_SECONDS=300 ... -m chaos_long)"
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database("perdure_chaos") as url:
        yield url
