"""Which claimed attempts wait out their retry policy's backoff because the
attempts before them were lost (``_worker.outcomes.lost_backoff``): only
after two losses in a row, counted back from the last record until one that
is not a lost lease (a failure, or an asynchronous completion that timed
out), the backoff growing with the losses and measured from the last one;
and which claimed workflow tasks wait because their turns were lost (lost_turn_wait)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from perdure import RetryPolicy
from perdure._store.base import ActivityTask
from perdure._worker.outcomes import lost_backoff
from perdure._worker.turns import lost_turn_wait

NOW = 1_000.0
LOST = {"type": "LeaseExpired", "message": "lease expired"}


def record(attempt: int, ended_at: float, error: dict[str, Any] | None) -> dict[str, Any]:
    return {"attempt": attempt, "started_at": ended_at - 1, "ended_at": ended_at, "error": error}


def task(*records: dict[str, Any], policy: RetryPolicy | None = None) -> ActivityTask:
    retry = (policy or RetryPolicy()).to_dict()
    return ActivityTask(
        1, "t", "run", "wf", "type", 1, "charge", "q", [], {}, {"retry": retry},
        attempt=len(records) + 1, scheduled_at=0.0, attempts=list(records),
    )  # fmt: skip


@pytest.mark.parametrize(
    "records",
    [
        (),
        (record(1, NOW - 0.1, LOST),),  # one loss: taken again at once
        (record(1, NOW - 0.5, LOST), record(2, NOW - 0.1, {"type": "ValueError"})),
        # A failure between resets the count: one loss in a row.
        (record(1, NOW - 9, LOST), record(2, NOW - 5, {"type": "X"}), record(3, NOW, LOST)),
        # An asynchronous completion that timed out is not a lost worker.
        (record(1, NOW, {"type": "ActivityTimeoutError"}), record(2, NOW, LOST)),
    ],
)
def test_fewer_than_two_losses_in_a_row_run_at_once(records: tuple[dict[str, Any], ...]) -> None:
    assert lost_backoff(task(*records), NOW) is None


def test_the_backoff_grows_with_the_losses_and_counts_from_the_last() -> None:
    policy = RetryPolicy(initial_interval=timedelta(seconds=2))
    two = task(record(1, NOW - 3, LOST), record(2, NOW - 0.5, LOST), policy=policy)
    wait, failure = lost_backoff(two, NOW) or (None, None)
    assert wait == pytest.approx(1.5)  # 2 s after the second loss
    assert failure is not None and failure["type"] == "LeaseExpired"
    assert failure["message"] == (
        "attempts 1 to 2 of activity 'charge' were lost in a row (their workers stopped, "
        "or they stalled past their lease, while running them): attempt 3 waits 1.5s, "
        "its retry policy's backoff"
    )
    three = task(record(1, NOW - 9, LOST), record(2, NOW - 5, LOST), record(3, NOW, LOST))
    assert (lost_backoff(three, NOW) or (None,))[0] == pytest.approx(2.0)  # 1 s, doubled
    # Once the backoff has passed, the attempt runs.
    assert lost_backoff(two, NOW + 1.5) is None


def test_a_turn_waits_after_two_lost_attempts_and_runs_after_its_wait() -> None:
    """lost_turn_wait: a workflow task's attempts count its claims since its
    last commit; a lost one records nothing on the run, a failed one its
    error (which backs off already), a wait its own attempt number."""
    assert lost_turn_wait(1, None) is None and lost_turn_wait(2, None) is None
    delay, said = lost_turn_wait(3, None) or (None, "")
    assert delay == 2.0 and said.startswith("turn attempt 3 waits 2s: the attempts before")
    assert lost_turn_wait(4, said) is None  # the claim after the wait runs the turn
    assert (lost_turn_wait(5, said) or (None,))[0] == 8.0  # ... and if it is lost, waits again
    assert (lost_turn_wait(11, said) or (None,))[0] == 60.0  # (at most a minute)
    assert lost_turn_wait(5, "NonDeterminismError: ...") is None  # failed: backs off already
