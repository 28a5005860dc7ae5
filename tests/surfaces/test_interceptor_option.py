"""``perdure worker --interceptor MODULE:NAME``: what does not name an
Interceptor is a usage error that says why, before the worker starts (a
real worker running with one: tests/crash/test_tracing_sigkill.py)."""

from __future__ import annotations

from pathlib import Path

import sealed_workflows
from surface_helpers import cli

MODULE = sealed_workflows.__file__


def test_a_bad_interceptor_is_a_usage_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'bad.db'}"
    for spec, message in (
        ("nope", "--interceptor 'nope' is not MODULE:NAME"),
        (f"{MODULE}:missing", "has no 'missing'"),
        (f"{MODULE}:converter", "is a DataConverter, not a perdure.interceptors.Interceptor"),
        (f"{MODULE}:failing_converter", "failing_converter() raised KeyError"),
    ):
        served = cli("worker", MODULE, "--db", db, "--interceptor", spec)
        assert served.returncode == 2 and message in served.stderr, (spec, served.stderr)
