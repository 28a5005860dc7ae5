"""Workers of one task queue that do not register the same workflows and
activities, as during a rolling deploy that adds one.

A worker that claimed a task it cannot run had counted the claim as an
attempt, and backed off: an activity with ``max_attempts=2`` claimed twice
by a worker without it failed for good without ever running (14 of 20 runs
in the probe), and a new workflow type's turns waited up to a minute (p50
31.7 s in the probe) while the old workers kept claiming them. Now the task
goes back to the queue, its claim not counted: at once if another live
worker registers it, else after a pause, with why on the run."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
import perdure._worker.activities as activities_module
from perdure import RetryPolicy, activity, workflow

TWICE = RetryPolicy(max_attempts=2)


@activity.defn(name="charge", retry=TWICE)
async def charge(n: int) -> str:
    return f"charged {n}"


@workflow.defn
async def pays(n: int) -> str:
    return await charge(n)


@workflow.defn
async def older(n: int) -> int:
    return n


def _count_hand_backs(client: perdure.Client, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    handed: list[Any] = []
    original = client.store.hand_back

    async def recorded(task: Any, retry_in: float, failure: Any = None) -> bool:
        handed.append((task, retry_in, failure))
        return await original(task, retry_in, failure)

    monkeypatch.setattr(client.store, "hand_back", recorded)
    return handed


async def test_an_activity_claimed_by_workers_without_it_still_gets_its_attempts(
    client: perdure.Client, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activities_module, "UNKNOWN_ACTIVITY_RETRY", 0.05)
    handed = _count_hand_backs(client, monkeypatch)
    # A worker with the workflow but not the activity, and nobody else.
    async with fast_worker(client, [pays], [], identity="without-charge"):
        handle = await client.start(pays, 7)

        async def claimed_often() -> bool:
            return len(handed) >= 4  # twice its max_attempts

        await wait_until(claimed_often, what="the activity to be claimed and handed back")
        [pending] = (await handle.describe()).pending_activities
        assert pending.last_failure is not None
        assert pending.last_failure["type"] == "ActivityNotRegistered"
        assert "not registered on this worker" in pending.last_failure["message"]
        assert pending.attempts == []  # no attempt was spent: it never ran
    other = await perdure.Client.connect(db_url)
    async with other, fast_worker(other, [pays], [charge], identity="with-charge"):
        assert await handle.result(timeout=30) == "charged 7"


async def test_a_task_another_live_worker_serves_goes_back_to_the_queue(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a live worker of the queue registers the type, a worker without
    it hands the task back: no failure on the run, no backoff of the run's
    own, only a growing pause for a task that keeps coming back."""
    handed = _count_hand_backs(client, monkeypatch)
    # The registry row of a live worker that serves both (not running here:
    # the worker below is the only one that claims).
    await client.store.register_worker(
        "serves-both",
        host="elsewhere",
        pid=1,
        task_queue="default",
        workflows=["older", "pays"],
        activities=["charge"],
        lease_timeout=60.0,
    )
    async with fast_worker(client, [older], [], identity="old-code"):
        handle = await client.start(pays, 1)

        async def handed_thrice() -> bool:
            return len(handed) >= 3

        await wait_until(handed_thrice, what="the turn to be handed back")
        assert all(failure is None for _, _, failure in handed)
        # The first time at once (0.2 s), then twice as long each time the
        # same task comes back: a busy queue is not churned.
        assert [retry_in for _, retry_in, _ in handed[:3]] == [0.2, 0.4, 0.8]
        description = await handle.describe()
        assert description.last_error is None and description.status == "running"
    # Its start still waits in the run's inbox, for a worker that has the type.
    assert await handle.history() == []
