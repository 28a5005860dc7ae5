"""What cancelling a workflow's await of an activity does, by the activity's
``cancellation_type`` (Temporal's ActivityCancellationType), on both
backends. The saga: a charge is running when the workflow gives up on it
(``asyncio.wait_for``) and refunds.

- "try_cancel" (the default): the charge is told to stop at its next
  heartbeat, and the workflow goes on at once: the refund may come before
  the charge has voided its hold.
- "wait_cancellation_completed": the workflow's await raises only once the
  charge has ended (stopped at its heartbeat, its cleanup done): the refund
  comes after the void. A charge that no attempt holds (not started yet)
  ends at once, with the cancel's own commit.
- "abandon": the charge is not told; it runs on, and its result is ignored.

The histories replay (``perdure.testing.Replayer``), and one recorded by
code that did not wait replays, without waiting, under code that waits."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import RetryPolicy, activity, workflow
from perdure.testing import Replayer

log: list[str] = []
released: set[str] = set()
reasons: list[str | None] = []
# Replaying with other code: the cancellation type pay uses, whatever it was given.
forced: dict[str, str] = {}

QUICK = RetryPolicy(initial_interval=timedelta(milliseconds=20), backoff=1.0)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    log.clear()
    released.clear()
    reasons.clear()
    forced.clear()


@activity.defn(heartbeat_timeout=timedelta(seconds=10), retry=QUICK)
async def charge(tag: str) -> str:
    log.append(f"charge {tag}")
    try:
        while tag not in released:
            activity.heartbeat()
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        reasons.append(activity.cancellation_reason())
        # (Asks the card network to void the hold.) A workflow that does not
        # wait refunds meanwhile: "t"'s void waits for that refund (for at
        # most 10 s, so that one that wrongly waited is seen waiting).
        deadline = time.monotonic() + (10.0 if tag == "t" else 0.2)
        while time.monotonic() < deadline and not (tag == "t" and f"refund {tag}" in log):
            await asyncio.sleep(0.01)
        log.append(f"void {tag}")
        raise
    log.append(f"charged {tag}")
    return f"charged {tag}"


@activity.defn(retry=QUICK)
async def declined(tag: str) -> str:
    """Sends no heartbeat, and fails (it would be retried) after a while."""
    log.append(f"charge {tag}")
    await asyncio.sleep(0.6)
    log.append(f"declined {tag}")
    raise RuntimeError("card declined")


@activity.defn
async def refund(tag: str) -> str:
    log.append(f"refund {tag}")
    return f"refunded {tag}"


@workflow.defn
async def pay(tag: str, how: str, queue: str | None = None) -> str:
    step = charge.options(cancellation_type=forced.get("how", how), task_queue=queue)  # type: ignore[arg-type]
    try:
        return await asyncio.wait_for(step(tag), timeout=0.3)
    except TimeoutError:
        result = await refund(tag)
    await workflow.wait_signal("finish")  # (the run stays open: see the abandon test)
    return result


@workflow.defn
async def pay_declined(tag: str) -> str:
    step = declined.options(cancellation_type="wait_cancellation_completed")
    try:
        return await asyncio.wait_for(step(tag), timeout=0.3)
    except TimeoutError:
        return await refund(tag)


def _worker(client: perdure.Client) -> perdure.Worker:
    return fast_worker(client, [pay, pay_declined], [charge, declined, refund])


async def _finish(handle: Any) -> str:
    await handle.signal("finish", None)
    return str(await handle.result(timeout=10))


async def test_try_cancel_goes_on_at_once(client: perdure.Client) -> None:
    async with _worker(client):
        handle = await client.start(pay, "t", "try_cancel", id="try-cancel")
        await wait_until(lambda: asyncio.sleep(0, "void t" in log), what="the void")
        assert await _finish(handle) == "refunded t"
    # The refund came as soon as the workflow gave up: before the void.
    assert log == ["charge t", "refund t", "void t"]
    assert reasons == ["cancelled"]


async def test_wait_cancellation_completed_waits_for_the_void(client: perdure.Client) -> None:
    async with _worker(client):
        handle = await client.start(pay, "w", "wait_cancellation_completed", id="waits")
        await wait_until(lambda: asyncio.sleep(0, "refund w" in log), what="the refund")
        assert await _finish(handle) == "refunded w"
    assert log == ["charge w", "void w", "refund w"]
    assert reasons == ["cancelled"]
    history = await handle.history()
    [cancelled] = [e for e in history if e["type"] == "ActivityCancelled"]
    assert cancelled["wait"] is True
    [failed] = [e for e in history if e["type"] == "ActivityFailed"]
    assert failed["failure"]["type"] == "CancelledError" and failed["seq"] > cancelled["seq"]
    assert Replayer([pay]).replay(history).ok


async def test_an_activity_no_attempt_holds_ends_with_the_cancel(client: perdure.Client) -> None:
    """On a queue no worker serves: the cancel's commit ends it (there is no
    attempt to wait for), and the workflow goes on."""
    async with _worker(client):
        handle = await client.start(
            pay, "n", "wait_cancellation_completed", "nobody-serves-this", id="never-started"
        )
        assert await _finish(handle) == "refunded n"
    assert log == ["refund n"]
    history = await handle.history()
    [failed] = [e for e in history if e["type"] == "ActivityFailed"]
    assert (failed["failure"]["type"], failed["attempt"]) == ("CancelledError", 0)
    assert not (await handle.describe()).pending_activities
    assert Replayer([pay]).replay(history).ok


async def test_an_attempt_that_fails_after_the_cancel_ends_the_wait(
    client: perdure.Client,
) -> None:
    """It hears nothing (no heartbeat) and fails on its own: no retry (its
    activity is cancelled), and the workflow, which waited, goes on."""
    async with _worker(client):
        handle = await client.start(pay_declined, "d", id="declined")
        assert await handle.result(timeout=10) == "refunded d"
    assert log == ["charge d", "declined d", "refund d"]
    [failed] = [e for e in await handle.history() if e["type"] == "ActivityFailed"]
    assert failed["failure"]["type"] == "CancelledError"
    assert [a["error"]["message"] for a in failed["attempts"]] == ["card declined"]


async def test_abandon_does_not_tell_the_activity(client: perdure.Client) -> None:
    async with _worker(client):
        handle = await client.start(pay, "a", "abandon", id="abandons")
        await wait_until(lambda: asyncio.sleep(0, "refund a" in log), what="the refund")
        released.add("a")  # (it ran on meanwhile, heartbeating, never told)
        await wait_until(lambda: asyncio.sleep(0, "charged a" in log), what="the charge")
        assert await _finish(handle) == "refunded a"
    assert log == ["charge a", "refund a", "charged a"]
    assert reasons == []
    history = await handle.history()
    assert not [e for e in history if e["type"] == "ActivityCancelled"]
    assert Replayer([pay]).replay(history).ok


async def test_a_history_that_did_not_wait_replays_under_code_that_waits(
    client: perdure.Client,
) -> None:
    async with _worker(client):
        handle = await client.start(pay, "r", "try_cancel", id="replayed")
        await wait_until(lambda: asyncio.sleep(0, "refund r" in log), what="the refund")
        assert await _finish(handle) == "refunded r"
    history = await handle.history()
    forced["how"] = "wait_cancellation_completed"
    replayed = Replayer([pay]).replay(history)
    assert replayed.ok, replayed


def test_a_cancellation_type_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="cancellation_type must be one of 'try_cancel'"):
        charge.options(cancellation_type="wait")  # type: ignore[arg-type]
