"""A NOTIFY names what its commits changed, so another process wakes only
what it concerns: the waiters of the runs that ended, without the one query
over every awaited run that an unnamed "something changed" costs (a web
application waiting on thousands of runs that its workers, elsewhere, end)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import perdure
from perdure import activity, workflow
from perdure._store.base import CLOSED, WORK
from perdure._store.postgres_listen import MAX_PAYLOAD, parse_payload, payload
from perdure._store.sqlite import SqliteStore


@activity.defn
async def double(x: int) -> int:
    return 2 * x


@workflow.defn
async def doubled(x: int) -> int:
    return await double(x)


def test_a_payload_names_its_topics_and_falls_back_when_too_many_runs_ended() -> None:
    topics = {WORK, f"{CLOSED}:run-1", f"{CLOSED}:run-2"}
    sender, got = parse_payload(payload("store-a", topics, CLOSED))
    assert sender == "store-a" and set(got) == topics
    many = {f"{CLOSED}:{'r' * 30}{i}" for i in range(400)} | {WORK}
    text = payload("store-a", many, CLOSED)
    assert len(text) < MAX_PAYLOAD
    assert set(parse_payload(text)[1]) == {WORK, CLOSED}
    assert parse_payload("store-a") == ("store-a", [])  # as earlier versions sent it


def test_named_ends_wake_their_own_waiters_and_nothing_else() -> None:
    store = SqliteStore(":memory:")
    woken: list[str] = []
    store.add_run_watcher(lambda: woken.append("watcher"))
    store.add_run_listener("run-1", lambda: woken.append("run-1"))
    store.add_run_listener("run-2", lambda: woken.append("run-2"))
    store.notify_elsewhere([f"{CLOSED}:run-1"])
    assert woken == ["run-1"]
    woken.clear()
    store.notify_elsewhere([WORK])
    assert woken == []
    for unnamed in ([], [CLOSED], [WORK, CLOSED]):  # the watcher checks every waited run
        woken.clear()
        store.notify_elsewhere(unnamed)
        assert woken == ["watcher"], unnamed


async def test_results_of_runs_ended_elsewhere_need_no_check_of_every_waited_run(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    starter = await perdure.Client.connect(pg_url)
    starter.poll_interval = 30.0  # keep the safety net out of the way
    runner = await perdure.Client.connect(pg_url)
    checks: list[int] = []
    ended_runs = starter.store.ended_runs

    async def counted(run_ids: Any) -> Any:
        checks.append(len(run_ids))
        return await ended_runs(run_ids)

    monkeypatch.setattr(starter.store, "ended_runs", counted)
    try:
        async with perdure.Worker(runner, [doubled], [double], poll_interval=0.05):
            handles = [await starter.start(doubled, x) for x in range(20)]
            t0 = time.monotonic()
            results = await asyncio.gather(*(h.result(timeout=20) for h in handles))
            assert results == [2 * x for x in range(20)]
            assert time.monotonic() - t0 < 10  # woken by the NOTIFYs, not by polls
        # The waiters' shared first look asked about all 20 (see
        # perdure._waiting). After it, the NOTIFYs named the runs that ended:
        # only their waiters woke and asked, each about its own run (together
        # when woken together; not at all if the first look found it ended),
        # never about all the runs waited on.
        assert checks[0] == 20, checks
        assert sum(checks[1:]) <= 20, checks
    finally:
        await starter.close()
        await runner.close()
