"""The chaos driver's operator who stops attempts awaiting completion: now
and then, instead of answering a ``hand_off`` attempt, it pauses its
activity (by id) or resets it, hears of it at the attempt's heartbeat (by
its task token, as the process completing it would), reports the
cancellation, and unpauses what it paused. The attempt is handed back,
not counted; the next one logs a new token, which the driver answers in
turn. Workers die meanwhile, so the attempt's worker may be gone, and a
next attempt may be claimed by another.

What must hold (``stop``): the heartbeat says the attempt is to stop, with
the reason the operator gave (or "paused" when another operator,
chaos_pauses, holds the activity paused: a reset keeps that pause), and the
report answers with the same reason. Every other guarantee is checked as
for any run: the step completes once, with the attempt whose token the
driver completed it with. A reset counts attempts from 1 again, so it is
given only to first attempts, and both only to attempts that await
completion (an attempt number then names one execution among those not
stopped: the checks' rule).
"""

from __future__ import annotations

import random
from typing import Any

import chaos_checks as checks

import perdure
from perdure.errors import AsyncActivityCancelledError

STOP_CHANCE = 0.15  # of the attempts the driver answers, those it stops instead


def stop(client: perdure.SyncClient, rng: random.Random, record: dict[str, Any]) -> str | None:
    """Stop ``record``'s attempt (a ``hand_off`` log line) by a pause or a
    reset of its activity; the reason its heartbeat and its report gave,
    or None if the attempt could no longer end (lost, or answered)."""
    by_id = client.get_async_activity_handle(
        workflow_id=record["wf"], activity_id=record["ref"], run_id=record["run"]
    )
    described = client.get_handle(record["wf"], record["run"]).describe()
    pending = [a for a in described.pending_activities if a.activity_id == record["ref"]]
    # Only an attempt that awaits completion, as this record's: no worker
    # holds it, so none can die with it (a lost attempt would be run again
    # under the same number, after a pause's hand-back or a reset's count).
    if not pending or not pending[0].awaiting_completion:
        return None
    if pending[0].attempt != record["attempt"]:
        return None  # (its token is stale)
    # (A reset keeps a pause another operator made: keep_paused.)
    how = "reset" if record["attempt"] == 1 and rng.random() < 0.5 else "pause"
    if how == "pause" and pending[0].paused:
        return None  # (another operator's: not ours to unpause)
    try:
        if how == "pause":
            by_id.pause()
        else:
            by_id.reset(keep_paused=True)
        told = _told(client, record["token"])
        if told is None:
            return None
        expected = {"paused"} if how == "pause" or pending[0].paused else {"paused", "reset"}
        if told not in expected:
            raise checks.InvariantError(
                f"{record['wf']}: activity {record['ref']} attempt {record['attempt']}, after "
                f"a {how}: its heartbeat said {told!r}"
            )
        reported = client.get_async_activity_handle(record["token"]).report_cancellation()
        if reported != told:
            raise checks.InvariantError(
                f"{record['wf']}: activity {record['ref']} attempt {record['attempt']}: its "
                f"heartbeat said {told!r}, its report {reported!r}"
            )
        return told
    except perdure.AsyncActivityNotFoundError:
        return None  # (the activity ended meanwhile)
    finally:
        if how == "pause":
            try:
                by_id.unpause()
            except perdure.AsyncActivityNotFoundError:
                pass


def _told(client: perdure.SyncClient, token: str) -> str | None:
    """What the attempt's heartbeat says (None: it can no longer end)."""
    try:
        client.get_async_activity_handle(token).heartbeat({"heard": "stop"})
    except AsyncActivityCancelledError as exc:
        return exc.reason
    except perdure.AsyncActivityNotFoundError:
        return None
    raise checks.InvariantError(f"a heartbeat after a pause or a reset said nothing ({token})")
