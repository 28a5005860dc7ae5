"""Property-based requests generated from the OpenAPI document (schemathesis):
no route answers 5xx, and answers match the document. Kept small for CI.

The schema is read at import from the app's OpenAPI document (no database
needed); the requests go to an app over a real client that a module fixture
creates. ``schemathesis.pytest.from_fixture`` would be the natural way, but it
does not work with pytest 9 (``node._nodeid``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import allow_header_conformance, positive_data_acceptance

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app

ADMIN = "fuzz-admin-token-0123456789"
AUTH = AuthConfig({ADMIN: "admin"})


class Deferred:
    """An ASGI app that forwards to the one the fixture builds."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "the served fixture did not run"
        await self.app(scope, receive, send)


def without_security(document: dict[str, Any]) -> dict[str, Any]:
    """The document with no operation's security requirement: every request
    here carries the admin token (see the test), so a case generated
    "without its token" to be refused would be valid as sent, and the
    negative-data check would fail on it (which cases are drawn depends on
    the test's source, derandomized: an edit anywhere in it could draw one).
    Tokens and roles are tested in test_security.py and each API's tests."""
    for operations in document["paths"].values():
        for operation in operations.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    return document


served_app = Deferred()
schema = schemathesis.openapi.from_dict(
    without_security(create_app(db_url="unused", auth=AUTH).openapi())
)
schema.app = served_app


@schemathesis.hook
def before_call(context: Any, case: Case, kwargs: dict[str, Any]) -> None:
    """An event stream is fuzzed with timeout=0: no worker writes to or ends the
    seeded open runs, and their streams would be followed for ever; with it, the
    feed sends what is there and ends. (Its events are tested in
    test_streams_api.py.)"""
    if case.operation.path == "/api/workflows/{workflow_id}/streams/{key}/events":
        case.query = {**(case.query or {}), "timeout": 0}


@pytest.fixture(scope="module", autouse=True)
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    client = asyncio.run(perdure.Client.connect(f"sqlite:///{path}"))
    try:
        # A few real runs, so that generated ids sometimes hit one (and a closed one: 409),
        # with search attributes of each kind, for ?attr= filters and the rows' schema.
        attributes: dict[str, dict[str, Any]] = {
            "0": {"0": "0", "a": 0},
            "a": {"a": "a", "n": 1.5, "b": True},
            "x": {},
        }
        for ident, found_by in attributes.items():
            asyncio.run(client.start("double", 1, id=ident, search_attributes=found_by))
        asyncio.run(client.get_handle("x").terminate("closed, for 409s"))
        served_app.app = create_app(client, auth=AUTH)
        yield
    finally:
        asyncio.run(client.close())


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_route_answers_5xx(case: Case) -> None:
    batches = (
        "/api/batch/{action}",
        "/api/batch/activities/{action}",
        "/api/batch/activities/update-options",
    )
    if case.operation.path in batches and isinstance(case.body, dict):
        # A batch is fuzzed as a dry run: a generated filter may match every seeded
        # run, and terminating or resetting them (each test's order decides which
        # first) would change what the other routes answer from run to run. Every
        # argument is read and checked before the dry run stops: what is left out
        # is the acting, whose errors are reported per run (test_batch_api.py) or
        # per activity (test_activity_batch_http.py).
        case.body = {**case.body, "dry_run": True}
    if case.operation.path == "/api/workflows/{workflow_id}/updates/{name}":
        # An update is fuzzed with timeout=0: no worker answers one here, so any
        # other timeout would only hold the request that long (60 s by default).
        # Its answers are tested in test_updates_api.py.
        case.query = {**(case.query or {}), "timeout": 0}
    case.call_and_validate(
        headers={"Authorization": f"Bearer {ADMIN}"},
        excluded_checks=[
            # A query the document cannot fully describe is refused with a 422: a cursor
            # from another listing, or both a page and a cursor.
            positive_data_acceptance,
            # Routes under /api/workflows/{id:path} overlap (ids may contain '/'), so a
            # 405 for an unknown method lists the methods of the catch-all route.
            allow_header_conformance,
        ],
    )
