"""A turn's time. An inline step's turn (the activity ran in this worker and
its outcome went straight to the cached workflow) is stamped with the moment
the attempt ended, as its attempt record gives it: the same moment, and one
time to write for both. Workflow time never goes backwards."""

from __future__ import annotations

from typing import Any

from e2e_helpers import fast_worker

import perdure
from perdure import _history as h
from perdure import activity, workflow


@activity.defn
async def tick(i: int) -> int:
    return i


@workflow.defn
async def ticks(k: int) -> list[float]:
    seen = [workflow.now().timestamp()]
    for i in range(k):
        await tick(i)
        seen.append(workflow.now().timestamp())
    return seen


async def test_an_inline_turn_is_stamped_with_its_attempt_s_end(client: perdure.Client) -> None:
    async with fast_worker(client, [ticks], [tick]):
        handle = await client.start(ticks, 5)
        seen = await handle.result(timeout=20)
    history: list[dict[str, Any]] = await handle.history()
    times = [event["time"] for event in history]
    assert times == sorted(times)  # never backwards
    completed = [event for event in history if event["type"] == "ActivityCompleted"]
    assert len(completed) == 5
    for event in completed:
        [record] = event["attempts"]
        assert record["started_at"] <= record["ended_at"]
        assert event["time"] == record["ended_at"]  # the attempt's end, exactly
    # No markers: the first turn begins with its WorkflowStarted, each later
    # one with its ActivityCompleted, right after the ActivityScheduled before it.
    assert "TurnStarted" not in [event["type"] for event in history]
    turn_times = [turn.time for turn in h.split_turns([h.event_from_dict(e) for e in history])]
    assert turn_times[1:] == [event["time"] for event in completed]
    # What the workflow saw as now, turn by turn: its turns' times (a
    # datetime: to the microsecond).
    assert len(seen) == len(turn_times)
    assert all(abs(a - b) < 2e-6 for a, b in zip(seen, turn_times, strict=True))


async def test_a_replaying_worker_writes_the_history_a_caching_one_does(
    client: perdure.Client,
) -> None:
    """With no cache every turn replays the history first; it must still see
    that the history ends in a command, and write the same events (no
    marker) as the worker that kept the run in memory."""
    histories = []
    for cache_size in (10, 0):
        async with fast_worker(client, [ticks], [tick], cache_size=cache_size) as worker:
            handle = await client.start(ticks, 3)
            await handle.result(timeout=20)
        histories.append([event["type"] for event in await handle.history()])
        assert worker.turns.replays == (1 if cache_size else 4)  # the first turn: from its start
    assert histories[0] == histories[1]
    assert histories[0][0] == "WorkflowStarted" and "TurnStarted" not in histories[0]
