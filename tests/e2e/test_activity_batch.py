"""An operator pauses, then unpauses, every pending activity a filter names
(``Client.batch_activities``), as after a payment API goes down: the
activities of that type in the open runs the run filters match are chosen
first, then each is paused or unpaused by id. A pause takes those not
paused, an unpause the paused ones (with ``reset_attempts``, counted from 1
again); activities of other types, and runs the filters leave out, are not
touched; an activity that ended after it was chosen is skipped; running the
batch again acts on what still matches. Both backends.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import RetryPolicy, activity, workflow
from perdure.client import ActivityBatchResult, MatchedActivity

calls: Counter[str] = Counter()
seen_attempts: defaultdict[str, list[int]] = defaultdict(list)
healthy: set[str] = set()

FAST = RetryPolicy(initial_interval=timedelta(milliseconds=20), backoff=1.0)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    calls.clear()
    seen_attempts.clear()
    healthy.clear()


@activity.defn(retry=FAST)
async def charge(tag: str) -> str:
    """Fails every 20 ms until the payment API (``healthy``) is back."""
    calls[tag] += 1
    seen_attempts[tag].append(activity.info().attempt)
    if "payments" not in healthy:
        raise RuntimeError("the payment API is down")
    return f"charged {tag}"


@activity.defn(retry=FAST)
async def ship(tag: str) -> str:
    """Fails every 20 ms until the shipping API is back."""
    calls[tag] += 1
    if "shipping" not in healthy:
        raise RuntimeError("the shipping API is down")
    return f"shipped {tag}"


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(hours=1)))
async def charge_later(tag: str) -> str:
    calls[tag] += 1
    raise RuntimeError("the payment API is down: the next try is in an hour")


@workflow.defn
async def payment_later(tag: str) -> str:
    return await charge_later(tag)


@workflow.defn
async def payment(tag: str) -> str:
    return await charge(tag)


@workflow.defn
async def delivery(tag: str) -> str:
    return await ship(tag)


def keys(result: ActivityBatchResult) -> set[tuple[str, int]]:
    return {m.key for m in result.matched}


async def paused_count(client: perdure.Client, workflow_id: str) -> list[bool]:
    described = await client.get_handle(workflow_id).describe()
    return [a.paused for a in described.pending_activities]


async def test_pause_then_unpause_every_pending_activity_of_a_type(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [payment, delivery], [charge, ship]):
        for i in range(3):
            await client.start(payment, f"p{i}", id=f"pay-{i}")
        await client.start(delivery, "d0", id="ship-0")

        async def all_failing() -> bool:
            return all(calls[t] >= 2 for t in ("p0", "p1", "p2", "d0"))

        await wait_until(all_failing, what="every activity to fail twice")

        looked = await client.batch_activities("pause", activity_type="charge", dry_run=True)
        assert looked.dry_run and not looked.done
        assert keys(looked) == {("pay-0", 1), ("pay-1", 1), ("pay-2", 1)}
        assert all(isinstance(m, MatchedActivity) for m in looked.matched)
        assert {m.activity.activity_type for m in looked.matched} == {"charge"}
        assert [await paused_count(client, f"pay-{i}") for i in range(3)] == [[False]] * 3

        paused = await client.batch_activities("pause", activity_type="charge")
        assert sorted(paused.done) == [("pay-0", 1), ("pay-1", 1), ("pay-2", 1)]
        assert not paused.skipped and not paused.failed
        assert [await paused_count(client, f"pay-{i}") for i in range(3)] == [[True]] * 3
        assert await paused_count(client, "ship-0") == [False]  # (another type: left alone)

        # Paused: no new attempt of any of them starts, while the other type's go on.
        async def idle() -> bool:
            described = [await client.get_handle(f"pay-{i}").describe() for i in range(3)]
            return not any(a.running for d in described for a in d.pending_activities)

        await wait_until(idle, what="the running attempts to end")
        before = {t: calls[t] for t in ("p0", "p1", "p2")}
        shipped = calls["d0"]
        await wait_until(
            now_true(lambda: calls["d0"] >= shipped + 5), what="the other type's attempts to go on"
        )
        assert {t: calls[t] for t in ("p0", "p1", "p2")} == before

        # A second pause finds nothing left to pause.
        again = await client.batch_activities("pause", activity_type="charge")
        assert again.matched == [] and again.done == []

        healthy.add("payments")
        unpaused = await client.batch_activities(
            "unpause", activity_type="charge", reset_attempts=True
        )
        assert sorted(unpaused.done) == [("pay-0", 1), ("pay-1", 1), ("pay-2", 1)]
        for i in range(3):
            assert await client.get_handle(f"pay-{i}").result() == f"charged p{i}"
            # (counted from 1 again: the attempt that succeeded is attempt 1)
            assert seen_attempts[f"p{i}"][-1] == 1
        assert (await client.get_handle("ship-0").describe()).status == "running"


def now_true(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """``check`` as wait_until's predicate: asked again at each look."""

    async def holds() -> bool:
        return check()

    return holds


async def test_run_filters_choose_the_runs_and_limit_caps_the_activities(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [payment, delivery], [charge, ship]):
        for i in range(2):
            await client.start(payment, f"p{i}", id=f"pay-{i}")
            await client.start(delivery, f"d{i}", id=f"ship-{i}")

        async def all_failing() -> bool:
            return all(calls[t] >= 1 for t in ("p0", "p1", "d0", "d1"))

        await wait_until(all_failing, what="every activity to fail")

        # No activity type: every pending activity of the runs the filter names.
        by_type = await client.batch_activities("pause", workflow="delivery", dry_run=True)
        assert keys(by_type) == {("ship-0", 1), ("ship-1", 1)}
        by_search = await client.batch_activities("pause", search="pay-1", dry_run=True)
        assert keys(by_search) == {("pay-1", 1)}
        # Both: the type of the activities and the runs' filter.
        none = await client.batch_activities(
            "pause", activity_type="charge", workflow="delivery", dry_run=True
        )
        assert none.matched == []

        capped = await client.batch_activities("pause", workflow="payment", limit=1)
        assert len(capped.matched) == 1 and len(capped.done) == 1
        rest = await client.batch_activities("pause", workflow="payment")
        assert len(rest.done) == 1 and set(rest.done) | set(capped.done) == {
            ("pay-0", 1),
            ("pay-1", 1),
        }
        # An unpause takes the paused ones only.
        back = await client.batch_activities("unpause", search="pay-", dry_run=True)
        assert keys(back) == {("pay-0", 1), ("pay-1", 1)}


async def test_an_activity_that_ended_after_it_was_chosen_is_skipped(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fast_worker(client, [payment], [charge]):
        await client.start(payment, "p0", id="pay-0")
        await client.start(payment, "p1", id="pay-1")
        await wait_until(
            now_true(lambda: calls["p0"] >= 1 and calls["p1"] >= 1), what="both to fail"
        )
        # Chosen while pending; pay-0's activity is settled by hand before the pause.
        original = perdure.AsyncActivityHandle.pause

        async def settled_first(self: perdure.AsyncActivityHandle) -> None:
            if self.workflow_id == "pay-0":
                await self.complete("settled by hand")
            await original(self)

        monkeypatch.setattr(perdure.AsyncActivityHandle, "pause", settled_first)
        result = await client.batch_activities("pause", activity_type="charge")
        assert result.done == [("pay-1", 1)]
        assert list(result.skipped) == [("pay-0", 1)]
        assert "ended" in result.skipped[("pay-0", 1)]
        assert await client.get_handle("pay-0").result() == "settled by hand"


async def test_an_unpause_that_cannot_count_from_1_under_a_running_attempt_fails_alone(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fast_worker(client, [payment], [charge]):
        await client.start(payment, "p0", id="pay-0")
        await client.start(payment, "p1", id="pay-1")
        await wait_until(
            now_true(lambda: calls["p0"] >= 1 and calls["p1"] >= 1), what="both to fail"
        )
        await client.batch_activities("pause", activity_type="charge")

        async def parked() -> bool:  # (an attempt in flight at the pause ends first)
            for ident in ("pay-0", "pay-1"):
                pending = (await client.get_handle(ident).describe()).pending_activities
                if not pending or pending[0].running or not pending[0].paused:
                    return False
            return True

        await wait_until(parked, what="both parked, no attempt in flight")
        original = perdure.AsyncActivityHandle.unpause

        async def refused(self: perdure.AsyncActivityHandle, **kw: Any) -> None:
            if self.workflow_id == "pay-0":
                raise perdure.PerdureError("attempt 3 is running on a worker")
            await original(self, **kw)

        monkeypatch.setattr(perdure.AsyncActivityHandle, "unpause", refused)
        healthy.add("payments")
        result = await client.batch_activities(
            "unpause", activity_type="charge", reset_attempts=True
        )
        assert result.done == [("pay-1", 1)]
        assert result.failed == {("pay-0", 1): "PerdureError: attempt 3 is running on a worker"}
        assert await client.get_handle("pay-1").result() == "charged p1"
        assert await paused_count(client, "pay-0") == [True]


@pytest.mark.parametrize(
    ("action", "given", "message"),
    [
        ("stop", {"activity_type": "charge"}, "action must be one of pause, unpause"),
        ("pause", {}, "name which activities to pause"),
        ("pause", {"activity_type": ""}, "name which activities to pause"),
        ("pause", {"activity_type": "charge", "limit": 0}, "limit must be a positive int"),
        ("pause", {"activity_type": "charge", "reset_attempts": True}, "goes with unpause"),
        ("update_options", {"activity_type": "charge"}, "update_options needs new_options"),
        ("pause", {"activity_type": "charge", "jitter": timedelta(minutes=1)}, "goes with unpause"),
        (
            "unpause",
            {"activity_type": "charge", "jitter": timedelta(seconds=-1)},
            "jitter must be from 0 to 100 years",
        ),
        (
            "update_options",
            {"activity_type": "charge", "new_options": {}},
            "update_options needs new_options",
        ),
        (
            "pause",
            {"activity_type": "charge", "new_options": {"retry_max_attempts": 3}},
            "new_options goes with update_options, not pause",
        ),
        (
            "update_options",
            {"activity_type": "charge", "new_options": {"start_to_close": timedelta(seconds=1)}},
            "names no option start_to_close: it takes start_to_close_timeout",
        ),
        (
            "update_options",
            {"activity_type": "charge", "new_options": {"retry_backoff": 0.5}},
            "retry_backoff must be a finite number >= 1.0",
        ),
        (
            "update_options",
            {"activity_type": "charge", "new_options": {"task_queue": None}},
            "update_options changes nothing",
        ),
        (
            "update_options",
            {
                "activity_type": "charge",
                "new_options": {
                    "retry_initial_interval": timedelta(seconds=10),
                    "retry_max_interval": timedelta(seconds=1),
                },
            },
            "retry_max_interval \\(1s\\) must be at least retry_initial_interval \\(10s\\)",
        ),
    ],
)
async def test_bad_arguments_are_refused_and_nothing_is_done(
    client: perdure.Client, action: str, given: dict[str, Any], message: str
) -> None:
    async with fast_worker(client, [payment], [charge]):
        await client.start(payment, "p0", id="pay-0")
        await wait_until(now_true(lambda: calls["p0"] >= 1), what="its activity to fail")
        with pytest.raises(ValueError, match=message):
            await client.batch_activities(action, **given)  # type: ignore[arg-type]
        assert await paused_count(client, "pay-0") == [False]
        [info] = (await client.get_handle("pay-0").describe()).pending_activities
        assert info.retry_policy == FAST  # (nor were its options changed)


def test_the_blocking_client_pauses_and_unpauses_too(db_url: str) -> None:
    async def failed_once() -> None:
        async with await perdure.Client.connect(db_url) as client:
            client.poll_interval = 0.02
            async with fast_worker(client, [payment_later], [charge_later]):
                await client.start(payment_later, "s0", id="later-0")
                await wait_until(now_true(lambda: calls["s0"] == 1), what="its first attempt")
        # (the worker stopped once that attempt ended: it waits an hour now)

    asyncio.run(failed_once())
    with perdure.SyncClient.connect(db_url) as sync:
        result = sync.batch_activities("pause", activity_type="charge_later")
        assert isinstance(result, ActivityBatchResult) and result.done == [("later-0", 1)]
        [info] = sync.get_handle("later-0").describe().pending_activities
        assert info.paused and info.next_attempt_at is None
        back = sync.batch_activities("unpause", workflow="payment_later")
        assert back.done == [("later-0", 1)]
        [info] = sync.get_handle("later-0").describe().pending_activities
        assert not info.paused and info.next_attempt_at is not None
        longer = {"start_to_close_timeout": timedelta(minutes=5)}
        changed = sync.batch_activities(
            "update_options", workflow="payment_later", new_options=longer
        )
        assert changed.done == [("later-0", 1)]
        [info] = sync.get_handle("later-0").describe().pending_activities
        assert info.start_to_close_timeout == timedelta(minutes=5)


async def test_reset_tries_every_waiting_activity_again_now(client: perdure.Client) -> None:
    async with fast_worker(client, [payment_later, payment], [charge_later, charge]):
        for i in range(2):
            await client.start(payment_later, f"l{i}", id=f"later-{i}")
        await wait_until(
            now_true(lambda: calls["l0"] == 1 and calls["l1"] == 1), what="both to fail once"
        )
        # (each now waits an hour for its next attempt)
        with pytest.raises(ValueError, match="keep_paused goes with reset, not unpause"):
            await client.batch_activities("unpause", workflow="payment_later", keep_paused=True)
        looked = await client.batch_activities("reset", workflow="payment_later", dry_run=True)
        assert keys(looked) == {("later-0", 1), ("later-1", 1)}
        done = await client.batch_activities(
            "reset", activity_type="charge_later", clear_heartbeat_details=True
        )
        assert sorted(done.done) == [("later-0", 1), ("later-1", 1)]
        await wait_until(
            now_true(lambda: calls["l0"] == 2 and calls["l1"] == 2), what="both to run again"
        )


async def test_update_options_gives_every_matching_activity_the_new_policy(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [payment_later, delivery], [charge_later, ship]):
        for i in range(3):
            await client.start(payment_later, f"l{i}", id=f"later-{i}")
        await client.start(delivery, "d0", id="ship-0")
        await wait_until(
            now_true(lambda: all(calls[f"l{i}"] == 1 for i in range(3)) and calls["d0"] >= 1),
            what="each to fail once",
        )
        # (each charge_later now waits an hour for its next attempt; one is paused)
        paused = client.get_async_activity_handle(workflow_id="later-2", activity_id=1)
        await paused.pause()
        sooner = {
            "retry_initial_interval": timedelta(milliseconds=20),
            "retry_max_attempts": 3,
            "start_to_close_timeout": timedelta(minutes=2),
        }
        looked = await client.batch_activities(
            "update_options", activity_type="charge_later", new_options=sooner, dry_run=True
        )
        assert keys(looked) == {("later-0", 1), ("later-1", 1), ("later-2", 1)}
        assert calls["l0"] == 1  # (a dry run changes nothing)
        done = await client.batch_activities(
            "update_options", activity_type="charge_later", new_options=sooner
        )
        assert sorted(done.done) == [("later-0", 1), ("later-1", 1), ("later-2", 1)]
        assert not done.skipped and not done.failed
        # The backoff worked out again by the new policy: they run now, three
        # attempts in all, and fail for good; the paused one keeps waiting.
        for i in range(2):
            with pytest.raises(perdure.WorkflowFailedError, match="next try is in an hour"):
                await client.get_handle(f"later-{i}").result(timeout=20)
            assert calls[f"l{i}"] == 3
        [info] = (await client.get_handle("later-2").describe()).pending_activities
        assert info.paused and calls["l2"] == 1
        assert info.retry_policy is not None and info.retry_policy.max_attempts == 3
        assert info.retry_policy.initial_interval == timedelta(milliseconds=20)
        assert info.start_to_close_timeout == timedelta(minutes=2)
        # Another type's activity was not touched.
        [other] = (await client.get_handle("ship-0").describe()).pending_activities
        assert other.retry_policy == FAST and other.start_to_close_timeout is None


async def test_update_options_refused_for_one_activity_goes_on_with_the_rest(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [payment, payment_later], [charge, charge_later]):
        # (Chosen by their ids' common part: a since= from this clock may
        # miss a run the database's clock dated a little earlier.)
        await client.start(payment, "p0", id="refuse-pay-0")
        await client.start(payment_later, "l0", id="refuse-later-0")
        await wait_until(
            now_true(lambda: calls["p0"] >= 2 and calls["l0"] == 1), what="their attempts"
        )
        await client.batch_activities("pause", activity_type="charge")

        async def idle() -> bool:
            [a] = (await client.get_handle("refuse-pay-0").describe()).pending_activities
            return not a.running

        await wait_until(idle, what="its attempt to end")
        made = calls["p0"]  # (two or more attempts: a limit of 2 allows none after them)
        result = await client.batch_activities(
            "update_options", search="refuse-", new_options={"retry_max_attempts": 2}
        )
        assert result.done == [("refuse-later-0", 1)]
        assert list(result.failed) == [("refuse-pay-0", 1)]
        assert result.failed[("refuse-pay-0", 1)].startswith("ValueError: ")
        [kept] = (await client.get_handle("refuse-pay-0").describe()).pending_activities
        assert kept.retry_policy == FAST and kept.paused and calls["p0"] == made
        [changed] = (await client.get_handle("refuse-later-0").describe()).pending_activities
        assert changed.retry_policy is not None and changed.retry_policy.max_attempts == 2


async def test_a_jittered_unpause_spreads_the_next_attempts_over_the_span(
    client: perdure.Client,
) -> None:
    # After an outage, every retry at once would meet the service just back:
    # each unpaused activity is due at its own moment within the jitter.
    async with fast_worker(client, [payment_later], [charge_later]):
        for i in range(8):
            await client.start(payment_later, f"j{i}", id=f"jitter-{i}")
        await wait_until(
            now_true(lambda: all(calls[f"j{i}"] == 1 for i in range(8))), what="each to fail"
        )

        async def failures_recorded() -> bool:
            # (An attempt still running through the pause and the unpause is
            # never parked: its failure, recorded after them, schedules its
            # retry by the policy's backoff from its end, not by the jitter.)
            for i in range(8):
                [info] = (await client.get_handle(f"jitter-{i}").describe()).pending_activities
                if info.running:
                    return False
            return True

        await wait_until(failures_recorded, what="each attempt's failure to be recorded")
        await client.batch_activities("pause", activity_type="charge_later")
        before = datetime.now(UTC)
        back = await client.batch_activities(
            "unpause", activity_type="charge_later", jitter=timedelta(hours=1)
        )
        after = datetime.now(UTC)
        assert len(back.done) == 8
        due = []
        for i in range(8):
            [info] = (await client.get_handle(f"jitter-{i}").describe()).pending_activities
            assert not info.paused and info.next_attempt_at is not None
            assert before <= info.next_attempt_at <= after + timedelta(hours=1)
            due.append(info.next_attempt_at)
        assert len(set(due)) == 8  # (each drew its own moment)
        assert all(calls[f"j{i}"] == 1 for i in range(8))  # (none ran now)
        # A reset with a jitter of 0 is due now, as without one.
        await client.batch_activities(
            "reset", workflow="payment_later", limit=1, jitter=timedelta(0)
        )
        await wait_until(
            now_true(lambda: sum(calls[f"j{i}"] for i in range(8)) == 9), what="one to run now"
        )
