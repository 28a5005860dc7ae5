"""Runtime test fixtures: evict every instance a test drove, as a worker would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from runtime_driver import LIVE


@pytest.fixture(autouse=True)
def evict_instances() -> Iterator[None]:
    yield
    while LIVE:
        LIVE.pop().evict()
