"""An inline step's next activity takes over the finished one's task row and
keeps that row's lease expiry while most of a lease is left
(TurnCommit.lease_kept), so that the take-over changes no index. Kept or
written anew, no lease may lapse while its attempt runs: here a second worker
polls all along and would take any task whose lease lapsed, and every
attempt runs exactly once. An attempt whose heartbeats set its row's expiry
(a ``heartbeat_timeout`` shorter than the lease) never hands that expiry on.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from e2e_helpers import fast_worker

import perdure
from perdure import _history as h
from perdure import activity, workflow
from perdure._store.base import ActivityTask, NewActivity, TurnCommit
from perdure._worker.inline import LEASE_KEPT_WHILE, kept_lease

attempts: list[tuple[str, int]] = []  # (emptied before each test: conftest)

LEASE = 4.0  # the workers' lease_timeout: renewed every 4/3 s
SLOW = 1.0  # longer than the heartbeat timeout below, shorter than a renewal's period


@activity.defn
async def quick(i: int) -> int:
    attempts.append(("quick", i))
    return i


@activity.defn
async def slow(i: int) -> int:
    attempts.append(("slow", i))
    await asyncio.sleep(SLOW)
    return i


@activity.defn(heartbeat_timeout=timedelta(seconds=0.2))
async def beating(i: int) -> int:
    # Its lease is its heartbeats': its row expires 0.2 s after the last one.
    attempts.append(("beating", i))
    activity.heartbeat(i)
    return i


@workflow.defn
async def chain(round_: int) -> int:
    for i in range(3):
        await quick(round_ * 10 + i)  # each takes over the last one's row, keeping its expiry
    await slow(round_ * 10)  # runs past no kept expiry: the worker renews it
    await beating(round_)
    await slow(round_ * 10 + 1)  # a new expiry, not the heartbeat's (0.2 s ahead)
    return round_


async def test_no_inline_attempt_outlives_its_lease(client: perdure.Client) -> None:
    workflows, activities = [chain], [quick, slow, beating]
    rounds = list(range(3))
    async with (
        fast_worker(client, workflows, activities, identity="w-1", lease_timeout=LEASE),
        fast_worker(client, workflows, activities, identity="w-2", lease_timeout=LEASE),
    ):
        assert await asyncio.gather(*(client.execute(chain, r) for r in rounds)) == rounds
    expected = sorted(
        [("quick", r * 10 + i) for r in rounds for i in range(3)]
        + [("slow", r * 10 + i) for r in rounds for i in range(2)]
        + [("beating", r) for r in rounds]
    )
    assert sorted(attempts) == expected  # each once: no lease lapsed, none was taken


def _done(lease_until: float, options: dict[str, Any] | None = None) -> ActivityTask:
    return ActivityTask(
        task_id=1, token="t1", run_id="r", workflow_id="w", workflow_type="wf", ref=1,
        name="quick", task_queue="q", args=[], kwargs={}, options=options or {},
        attempt=1, scheduled_at=0.0, lease_until=lease_until,
    )  # fmt: skip


def _commit(now: float, leased: bool = True) -> TurnCommit:
    heir = NewActivity(2, "quick", "q", [], {}, {}, ("w-1", "t2", 30.0) if leased else None)
    return TurnCommit(
        task=None,
        run_id="r",
        expected_version=3,
        events=[h.TurnStarted(seq=5, time=now)],
        consumed_inbox=[],
        activities=[heir],
    )


def test_the_expiry_is_kept_only_while_most_of_a_lease_is_left() -> None:
    now = 1000.0
    enough = now + 30.0 * LEASE_KEPT_WHILE
    assert kept_lease(_done(now + 30.0), _commit(now)) == now + 30.0  # written just now
    assert kept_lease(_done(enough), _commit(now)) == enough
    assert kept_lease(_done(enough - 0.01), _commit(now)) == 0.0  # too little left: a new one
    assert kept_lease(_done(now + 30.5), _commit(now)) == 0.0  # more than a lease: not ours to keep
    assert kept_lease(_done(0.0), _commit(now)) == 0.0  # not known (a claimed attempt)
    assert kept_lease(_done(now + 30.0), _commit(now, leased=False)) == 0.0  # no take-over here
    heartbeats = {"heartbeat_timeout": 5.0}
    assert kept_lease(_done(now + 30.0, heartbeats), _commit(now)) == 0.0
