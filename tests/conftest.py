"""Settings for the whole suite.

Hypothesis: no per-example deadline (the machines that run this suite are
shared and noisy; a slow example is not a bug), and in CI (``CI=true``) a
derandomized run, so that CI's verdict is reproducible. Runs elsewhere explore
new random examples every time; a failure they find prints the example to pin
with ``@example``.

PostgreSQL: one database per test process (``pg_database``), shared by every
folder's tests, each test in a fresh schema of it (tests/postgres/pg_testdb.py).
One, not one per folder: dropping a database makes the server write out every
dirty page it holds (a checkpoint), seconds on a busy machine, at the end of
each test process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("perdure", deadline=None, print_blob=True)
settings.register_profile("perdure-ci", parent=settings.get_profile("perdure"), derandomize=True)
settings.load_profile("perdure-ci" if os.environ.get("CI") == "true" else "perdure")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Any]:
    """The test process's PostgreSQL database (a pg_testdb.TestDatabase)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "postgres"))
    import pg_testdb

    yield from pg_testdb.session_database()
