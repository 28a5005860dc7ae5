"""``activity.logger`` names the running attempt in each record, as
``workflow.logger`` names the run: in an ``async def`` activity and in a
plain ``def`` one's thread, a retry's record saying its attempt; outside an
activity it logs as a plain logger."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import RetryPolicy, activity, workflow

QUICK = RetryPolicy(initial_interval=timedelta(milliseconds=10))
tries: list[int] = []


@activity.defn(retry=QUICK)
async def charge(order: str) -> str:
    activity.logger.info("charging %s", order)
    tries.append(1)
    if len(tries) == 1:
        raise ConnectionError("hung up")
    return "ch-1"


@activity.defn
def label(order: str) -> str:
    activity.logger.warning("printing the label of %s", order)
    return "parcel"


@workflow.defn
async def order_flow(order: str) -> str:
    return await charge(order) + " " + await workflow.execute_activity(label, order)


async def test_each_record_names_its_attempt(
    client: perdure.Client, caplog: pytest.LogCaptureFixture
) -> None:
    tries.clear()
    caplog.set_level(logging.INFO, logger="perdure.activity")
    async with fast_worker(client, [order_flow], [charge, label]):
        handle = await client.start(order_flow, "o-9", id="logged")
        assert await handle.result(timeout=10) == "ch-1 parcel"
    records = [r for r in caplog.records if r.name == "perdure.activity"]
    assert [r.getMessage() for r in records] == [
        "[charge logged #1 attempt 1] charging o-9",
        "[charge logged #1 attempt 2] charging o-9",
        "[label logged #2 attempt 1] printing the label of o-9",
    ]
    first = records[0]
    assert (first.workflow_id, first.run_id, first.activity_type) == (  # type: ignore[attr-defined]
        "logged",
        handle.run_id,
        "charge",
    )
    assert [(r.activity_id, r.attempt) for r in records] == [  # type: ignore[attr-defined]
        ("1", 1),
        ("1", 2),
        ("2", 1),
    ]


def test_outside_an_activity_it_is_a_plain_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="perdure.activity")
    activity.logger.info("in a unit test")
    assert [r.getMessage() for r in caplog.records] == ["in a unit test"]
