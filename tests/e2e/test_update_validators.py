"""workflow.wait_update(name, validate=fn): a request whose payload the
validator refuses is rejected with the validator's message (the caller's
UpdateRejectedError) and the wait goes on for the next one, within the same
timeout; the validator may read the workflow's state; replay takes the same
path. On every backend, and in the time-skipping environment."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import workflow
from perdure.testing import Replayer, WorkflowEnvironment


@workflow.defn
async def seats(capacity: int) -> list[str]:
    """Books seats by name until full; a name already booked, or not a
    name, is refused by the validator, before the workflow's code sees it."""
    booked: list[str] = []

    def check(payload: Any) -> None:
        if not isinstance(payload, str) or not payload:
            raise ValueError(f"a booking is a name, not {payload!r}")
        if payload in booked:
            raise ValueError(f"{payload} already has a seat")

    while len(booked) < capacity:
        request = await workflow.wait_update("book", validate=check)
        booked.append(request.payload)
        request.reply(f"seat {len(booked)} of {capacity}")
    return booked


async def test_refused_requests_are_rejected_and_the_wait_goes_on(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [seats], []):
        handle = await client.start(seats, 2, id="flight-1")
        assert await handle.update("book", "ada") == "seat 1 of 2"
        with pytest.raises(perdure.UpdateRejectedError, match="ada already has a seat"):
            await handle.update("book", "ada")
        with pytest.raises(perdure.UpdateRejectedError, match="a booking is a name, not 7"):
            await handle.update("book", 7)
        assert await handle.update("book", "grace") == "seat 2 of 2"
        assert await handle.result(timeout=10) == ["ada", "grace"]
    events = await handle.history()
    replies = [(e["result"], e["failure"]) for e in events if e["type"] == "UpdateReplied"]
    assert replies == [
        ("seat 1 of 2", None),
        (None, "ada already has a seat"),
        (None, "a booking is a name, not 7"),
        ("seat 2 of 2", None),
    ]
    assert Replayer([seats]).replay(events).ok


@workflow.defn
async def picky(minutes: float) -> str:
    def only_yes(payload: Any) -> None:
        if payload != "yes":
            raise ValueError("say yes")

    try:
        await workflow.wait_update("answer", timeout=timedelta(minutes=minutes), validate=only_yes)
    except TimeoutError as exc:
        return str(exc)
    return "yes"


async def test_the_timeout_covers_the_refused_requests_too() -> None:
    async with WorkflowEnvironment(workflows=[picky, not_a_function]) as env:
        handle = await env.client.start(picky, 10.0)
        with pytest.raises(perdure.UpdateRejectedError, match="say yes"):
            await handle.update("answer", "no")
        # Ten minutes from the start, not from the refused request.
        assert (
            await handle.result()
            == "no update 'answer' arrived within 600s (1 refused by validate)"
        )
        with pytest.raises(TypeError, match="validate must be a function"):
            await workflow_misuse(env)


@workflow.defn
async def not_a_function() -> None:
    await workflow.wait_update("x", validate="yes")  # type: ignore[arg-type]


async def workflow_misuse(env: WorkflowEnvironment) -> None:
    try:
        await env.execute(not_a_function)
    except perdure.WorkflowFailedError as exc:
        raise TypeError(str(exc)) from exc
