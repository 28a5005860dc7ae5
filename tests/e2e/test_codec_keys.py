"""A deploy that adds an encryption key: new clients and workers write with
the new key while old workers, which lack it, still run.

An old worker that met a payload it could not decrypt failed what it was
doing for good: the workflow (its arguments unreadable) or the activity (not
retried), though nothing was wrong with the run and a worker with the key
was coming. Now the workflow's turn fails and is retried, and the activity
goes back to the queue without using an attempt; the run completes once
workers with the key take it, and the card is charged once."""

from __future__ import annotations

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
import perdure._worker.activities as activities_module
from perdure import DataConverter, RetryPolicy, activity, workflow
from perdure import _history as h
from perdure.codecs import AesGcmCodec

pytest.importorskip("cryptography")

K1, K2 = bytes(range(32)), bytes(range(32, 64))
OLD = DataConverter([AesGcmCodec({"k1": K1}, active="k1")])
NEW = DataConverter([AesGcmCodec({"k1": K1, "k2": K2}, active="k2")])

charged: list[str] = []


@activity.defn(task_queue="payments", retry=RetryPolicy(max_attempts=1))
async def charge_card(card: str) -> str:
    charged.append(card)
    return f"receipt-{card}"


@workflow.defn
async def checkout(card: str) -> str:
    return await charge_card(card)


async def test_workers_without_a_new_key_leave_the_run_to_workers_with_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activities_module, "UNKNOWN_ACTIVITY_RETRY", 0.05)
    charged.clear()
    old = await perdure.Client.connect(db_url, converter=OLD)
    new = await perdure.Client.connect(db_url, converter=NEW)
    try:
        handle = await new.start(checkout, "4111", id="order")  # its argument under k2

        # An old workflow worker cannot read the argument: the turn fails, the run waits.
        async with fast_worker(old, [checkout], []):

            async def turn_failed() -> bool:
                return "key id 'k2', which is not configured" in (
                    (await handle.describe()).last_error or ""
                )

            await wait_until(turn_failed, what="the old worker's turn failure")
        described = await handle.describe()
        assert described.status == "running", described
        assert "argument 'card' of checkout" in (described.last_error or "")
        assert "the turn is tried again" in (described.last_error or "")

        # A new workflow worker takes it; an old activity worker cannot read the
        # charge's argument: it goes back to the queue, no attempt used.
        async with (
            fast_worker(new, [checkout], []),
            fast_worker(old, [], [charge_card], task_queue="payments"),
        ):

            async def handed_back() -> bool:
                pending = (await handle.describe()).pending_activities
                failure = pending[0].last_failure if pending else None
                return failure is not None and failure.get("type") == "PayloadCodecError"

            await wait_until(handed_back, what="the old activity worker's hand-back")
            [pending] = (await handle.describe()).pending_activities
            assert pending.attempts == [] and charged == []  # no attempt was spent: none ran
            assert "not run on this worker" in (pending.last_failure or {}).get("message", "")

            # A new activity worker joins (the old one still claims, and hands back).
            async with fast_worker(new, [], [charge_card], task_queue="payments"):
                assert await handle.result(timeout=20) == "receipt-4111"
        assert charged == ["4111"]
        completed = [e for e in await handle.history() if e["type"] == h.ActivityCompleted.TYPE]
        assert [e["attempt"] for e in completed] == [1]
    finally:
        await old.close()
        await new.close()
