"""Fixtures for the semantics tests (the harness is in ``semantics_harness.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from semantics_harness import SemanticsCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SemanticsCluster]:
    c = SemanticsCluster(tmp_path)
    try:
        yield c
    finally:
        c.close()
