"""``jitter_seconds`` over HTTP, in process (httpx over ASGI), on SQLite and
PostgreSQL: the bodies of ``POST /api/workflows/{id}/activities/{n}/unpause``
and ``.../reset`` and of ``POST /api/batch/activities/{action}`` (unpause
and reset; not pause, nor update-options), as ``AsyncActivityHandle``'s
``jitter``: the next attempt is due at a random moment within that span.

Each test first lets a worker of tests/surfaces/async_workflows.py fail
``keeps_retrying``'s activity twice, makes its retries an hour apart and
pauses it; then the worker stops, so that no attempt is claimed and the due
time the test reads is the one the jitter drew. The draws are the real
ones, recorded on their way (``draws``): a due time is checked against the
span (between now and an hour from now) and against its own draw.
(The engine's side: the handle's own tests.)
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import async_workflows as aw
import httpx
import pytest
from api_both import eventually

import perdure
from perdure import _asyncactivity
from perdure.server._activity_models import MAX_SECONDS

pytestmark = pytest.mark.both_databases

HOUR = timedelta(hours=1)
SPAN = 3600.0  # the jitter every test gives, in seconds
# Between this machine's clock and the store's: PostgreSQL's is the server's,
# read through an estimated offset (the same machine here, off by far less).
SLACK = 1.0
BATCH = "/api/batch/activities"


class Draws:
    """``random`` as ``perdure._asyncactivity`` sees it: each ``uniform``
    is the real draw, recorded as (low, high, drawn)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float, float]] = []

    def uniform(self, low: float, high: float) -> float:
        drawn = random.uniform(low, high)
        self.seen.append((low, high, drawn))
        return drawn

    def jitters(self) -> list[float]:
        """What was drawn within a span (an unpause or a reset without
        jitter draws within 0 seconds too)."""
        return [drawn for low, high, drawn in self.seen if (low, high) == (0.0, SPAN)]


@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch) -> Draws:
    recorder = Draws()
    monkeypatch.setattr(_asyncactivity, "random", recorder)
    return recorder


def one_route(ident: str, action: str) -> str:
    return f"/api/workflows/{ident}/activities/1/{action}"


async def pending(api: httpx.AsyncClient, ident: str) -> dict[str, Any]:
    """The run's one pending activity, as GET /api/workflows/{id} shows it."""
    [activity] = (await api.get(f"/api/workflows/{ident}")).json()["pending_activities"]
    return activity  # type: ignore[no-any-return]


async def held(client: perdure.Client, idents: Iterable[str]) -> None:
    """Start keeps_retrying as each id, with a worker: once each activity
    has failed twice, its retries are made an hour apart, and, once it waits
    for the next, it is paused. The worker then stops: nothing runs it."""
    idents = list(idents)
    worker = perdure.Worker(
        client, aw.WORKFLOWS, aw.ACTIVITIES, poll_interval=0.02, lease_timeout=5.0
    )
    async with worker:
        for ident in idents:
            await client.start(aw.keeps_retrying, ident, id=ident)

        async def each(holds: Any) -> bool:
            for ident in idents:
                found = (await client.get_handle(ident).describe()).pending_activities
                if not found or not holds(found[0]):
                    return False
            return True

        await eventually(lambda: each(lambda a: a.attempt >= 2), f"{idents} to be retried")
        for ident in idents:
            handle = client.get_async_activity_handle(workflow_id=ident, activity_id=1)
            await handle.update_options(retry_initial_interval=HOUR, retry_max_interval=HOUR)

        def an_hour_off(a: Any) -> bool:
            later = datetime.now().astimezone() + HOUR / 2
            return not a.running and a.next_attempt_at is not None and a.next_attempt_at > later

        await eventually(lambda: each(an_hour_off), f"{idents} to wait an hour")
        for ident in idents:
            await client.get_async_activity_handle(workflow_id=ident, activity_id=1).pause()


def due(activity: dict[str, Any]) -> float:
    """Its next attempt's due time, in seconds since the epoch."""
    return datetime.fromisoformat(activity["next_attempt_at"]).timestamp()


def within_the_span(when: float, since: float, until: float) -> bool:
    """Between the request's start and an hour after its answer was read."""
    return since - SLACK <= when <= until + SPAN + SLACK


async def test_an_unpause_with_jitter_makes_it_due_within_the_span(
    client: perdure.Client, api: httpx.AsyncClient, draws: Draws
) -> None:
    await held(client, ["jit/one"])
    before = await pending(api, "jit%2Fone")
    assert (before["paused"], before["next_attempt_at"]) == (True, None)
    since = time.time()
    answer = await api.post(one_route("jit%2Fone", "unpause"), json={"jitter_seconds": SPAN})
    assert (answer.status_code, answer.json()) == (200, {"ok": True}), answer.text
    after = await pending(api, "jit%2Fone")
    until = time.time()
    assert (after["paused"], after["running"]) == (False, False)
    assert (after["attempt"], after["attempts"]) == (before["attempt"], before["attempts"])
    assert within_the_span(due(after), since, until), (since, after, until)
    # Its own draw: due that long after the unpause.
    [drawn] = draws.jitters()
    assert since + drawn - SLACK <= due(after) <= until + drawn + SLACK


async def test_a_reset_with_jitter_makes_it_due_within_the_span(
    client: perdure.Client, api: httpx.AsyncClient, draws: Draws
) -> None:
    await held(client, ["jit-reset"])
    # Kept paused, it has no due time: the jitter is the unpause's business then.
    kept = await api.post(
        one_route("jit-reset", "reset"), json={"keep_paused": True, "jitter_seconds": SPAN}
    )
    assert kept.status_code == 200, kept.text
    shown = await pending(api, "jit-reset")
    assert (shown["paused"], shown["attempt"], shown["next_attempt_at"]) == (True, 0, None)
    since = time.time()
    body = {"jitter_seconds": SPAN, "clear_heartbeat_details": True}
    answer = await api.post(one_route("jit-reset", "reset"), json=body)
    assert answer.status_code == 200, answer.text
    after = await pending(api, "jit-reset")
    until = time.time()
    assert (after["paused"], after["running"], after["attempt"]) == (False, False, 0)
    assert within_the_span(due(after), since, until), (since, after, until)
    drawn = draws.jitters()[-1]
    assert since + drawn - SLACK <= due(after) <= until + drawn + SLACK


async def test_a_batch_unpause_with_jitter_spreads_the_activities_over_the_span(
    client: perdure.Client, api: httpx.AsyncClient, draws: Draws
) -> None:
    idents = [f"jit-batch-{n}" for n in range(10)]
    await held(client, idents)
    since = time.time()
    answer = await api.post(
        f"{BATCH}/unpause",
        json={"activity_type": "down_for_ever", "search": "jit-batch-", "jitter_seconds": SPAN},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert sorted(row["workflow_id"] for row in result["done"]) == idents
    assert result["skipped"] == result["failed"] == []
    shown = [await pending(api, ident) for ident in idents]
    until = time.time()
    assert not any(a["paused"] or a["running"] for a in shown)
    dues = sorted(due(a) for a in shown)
    assert all(within_the_span(when, since, until) for when in dues), (since, dues, until)
    assert len(set(dues)) > 1  # (not all at once)
    # One draw each; the k-th soonest due is the k-th smallest draw after the batch began.
    jitters = sorted(draws.jitters())
    assert len(jitters) == len(idents)
    for when, drawn in zip(dues, jitters, strict=True):
        assert since + drawn - SLACK <= when <= until + drawn + SLACK, (when, drawn)


async def test_a_batch_reset_with_jitter_is_drawn_for_each(
    client: perdure.Client, api: httpx.AsyncClient, draws: Draws
) -> None:
    idents = ["jit-br-1", "jit-br-2"]
    await held(client, idents)
    since = time.time()
    answer = await api.post(f"{BATCH}/reset", json={"search": "jit-br-", "jitter_seconds": SPAN})
    assert answer.status_code == 200, answer.text
    assert sorted(row["workflow_id"] for row in answer.json()["done"]) == idents
    shown = [await pending(api, ident) for ident in idents]
    until = time.time()
    assert [(a["paused"], a["attempt"]) for a in shown] == [(False, 0), (False, 0)]
    assert all(within_the_span(due(a), since, until) for a in shown), shown
    assert len(draws.jitters()) == 2


BAD: list[tuple[Any, str]] = [
    (-1, "body.jitter_seconds: Input should be greater than or equal to 0"),
    (MAX_SECONDS + 1, "body.jitter_seconds: Input should be less than or equal to 3155760000"),
    ("60", "body.jitter_seconds: Input should be a valid number"),
    (True, "body.jitter_seconds: Input should be a valid number"),
]


async def test_bad_jitter_is_422_and_changes_nothing(
    client: perdure.Client, api: httpx.AsyncClient, draws: Draws
) -> None:
    await held(client, ["jit-bad"])
    before = await pending(api, "jit-bad")
    for value, message in BAD:
        for action in ("unpause", "reset"):
            answer = await api.post(one_route("jit-bad", action), json={"jitter_seconds": value})
            assert answer.status_code == 422, (action, value, answer.text)
            assert answer.json()["detail"] == message, (action, value, answer.json())
        for action in ("unpause", "reset"):
            body = {"search": "jit-bad", "jitter_seconds": value}
            answer = await api.post(f"{BATCH}/{action}", json=body)
            assert answer.status_code == 422, (action, value, answer.text)
            assert answer.json()["message"].startswith(message), (action, value, answer.json())
    # A pause takes none (the Client's word for it); the options' batch has no such field.
    paused = await api.post(f"{BATCH}/pause", json={"search": "jit-bad", "jitter_seconds": 60})
    assert paused.status_code == 422, paused.text
    assert paused.json()["detail"] == "jitter goes with unpause and reset, not pause"
    options = {"search": "jit-bad", "retry_backoff": 3.0, "jitter_seconds": 60}
    refused = await api.post(f"{BATCH}/update-options", json=options)
    assert refused.status_code == 422, refused.text
    assert refused.json()["message"].startswith("body.jitter_seconds: Extra inputs are not")
    # Nothing changed: still paused, the same attempts and options; nothing drawn.
    assert await pending(api, "jit-bad") == before
    assert draws.jitters() == []


async def test_the_openapi_document_describes_it(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()

    def body_of(path: str) -> dict[str, Any]:
        post = spec["paths"][path]["post"]
        schema: dict[str, Any] = post["requestBody"]["content"]["application/json"]["schema"]
        return schema["properties"]  # type: ignore[no-any-return]

    one = "/api/workflows/{workflow_id}/activities/{activity_id}"
    for path in (f"{one}/unpause", f"{one}/reset", "/api/batch/activities/{action}"):
        number, null = body_of(path)["jitter_seconds"]["anyOf"]
        assert number == {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}, path
        assert null == {"type": "null"}, path
    assert "jitter_seconds" not in body_of("/api/batch/activities/update-options")
    batch = body_of("/api/batch/activities/{action}")["jitter_seconds"]["description"]
    assert batch.startswith("Unpause and reset only: each one's next attempt")
