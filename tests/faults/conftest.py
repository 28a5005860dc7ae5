"""Fault-test fixtures: a fresh PostgreSQL database per test (see tests/chaos/pg_support.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "chaos"))

from pg_support import fresh_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database("perdure_faults") as url:
        yield url
