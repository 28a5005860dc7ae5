"""Fixtures for the crash tests (the harness itself lives in ``crash_harness.py``).

``cluster`` gives each test a fresh SQLite file and side-file folder; its teardown
stops every worker process the test started, even when the test failed, and then
prints every worker's output if the test did not pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crash_harness import Cluster


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        try:
            call = request.node.stash.get(_REPORTS, {}).get("call")
            if call is None or not call.passed:
                # Gathered before close(), while the workers and client still exist.
                print(f"\n===== crash-test diagnostics ({tmp_path}) =====\n{c.diagnostics()}")
        finally:
            c.close()
