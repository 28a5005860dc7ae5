"""Invariant checks for the chaos fuzzer, over stored histories and execution side files.

Pure functions of what the run left behind (no processes, no database): each raises
:class:`InvariantError` naming the run and what broke, or returns counts for the report.
Imports perdure's history model only (to cut histories into turns).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from perdure import _history as h


class InvariantError(AssertionError):
    """A guarantee did not hold; the message says which run and how."""


@dataclass(frozen=True)
class Execution:
    """One activity execution, as a worker logged it before running it."""

    pid: int
    wf: str
    run: str
    ref: int
    attempt: int
    key: str
    tag: str
    fails: bool
    at: float = 0.0  # when it began (time.time(), in its worker)


@dataclass
class Counts:
    runs: int = 0
    events: int = 0
    activities: int = 0
    executions: int = 0
    re_executions: int = 0  # executions of a step beyond its first, all by killed processes
    planned_failures: int = 0
    timers_fired: int = 0
    signals: int = 0
    stream_values: int = 0
    by_status: Counter[str] = field(default_factory=Counter)


def check_history_shape(run_id: str, history: list[dict[str, Any]]) -> list[h.Event]:
    """Every event decodes, ``seq`` runs 1..n without a gap, and the history cuts into turns."""
    events = [h.event_from_dict(e) for e in history]
    seqs = [e.seq for e in events]
    if seqs != list(range(1, len(seqs) + 1)):
        raise InvariantError(f"run {run_id}: event seqs are not 1..{len(seqs)}: {seqs}")
    h.split_turns(events)
    closing = [e for e in events if isinstance(e, h.CLOSING_EVENTS)]
    if len(closing) > 1:
        raise InvariantError(f"run {run_id}: closed twice: {[e.TYPE for e in closing]}")
    return events


def check_activities(run_id: str, events: list[h.Event], closed: bool) -> dict[int, int]:
    """Each scheduled activity completed at most once (exactly once in a closed run),
    but one its workflow cancelled and waited for (a canceller's hold), which ends
    once, cancelled, after its cancel; returns ref -> the attempt that completed it."""
    scheduled = {e.ref for e in events if isinstance(e, h.ActivityScheduled)}
    waited = {e.ref: e.seq for e in events if isinstance(e, h.ActivityCancelled) and e.wait}
    ended: set[int] = set()
    done: dict[int, int] = {}
    for e in events:
        if isinstance(e, h.ActivityFailed) and e.ref in waited and e.seq > waited[e.ref]:
            if e.failure.get("type") != "CancelledError" or e.ref in ended:
                raise InvariantError(
                    f"run {run_id}: activity ref {e.ref} ended twice, or not cancelled: {e}"
                )
            ended.add(e.ref)
            continue
        if isinstance(e, h.ActivityFailed):
            raise InvariantError(f"run {run_id}: activity ref {e.ref} failed for good: {e}")
        if isinstance(e, h.ActivityCompleted):
            if e.ref in done:
                raise InvariantError(f"run {run_id}: activity ref {e.ref} completed twice")
            if e.ref not in scheduled:
                raise InvariantError(f"run {run_id}: completion of unscheduled ref {e.ref}")
            done[e.ref] = e.attempt
    if closed and set(done) | ended != scheduled:
        missing = sorted(scheduled - set(done) - ended)
        raise InvariantError(f"run {run_id}: closed with activities not completed: {missing}")
    return done


def check_timers(run_id: str, events: list[h.Event], closed: bool) -> int:
    """Every timer fired at most once, never before its due time, and in a closed run
    every timer that was not cancelled fired exactly once. Returns the number fired."""
    started = {e.ref: e.fire_at for e in events if isinstance(e, h.TimerStarted)}
    cancelled = {e.ref for e in events if isinstance(e, h.TimerCancelled)}
    fired = Counter(e.ref for e in events if isinstance(e, h.TimerFired))
    for e in events:
        if isinstance(e, h.TimerFired):
            if e.ref not in started:
                raise InvariantError(f"run {run_id}: timer ref {e.ref} fired but never started")
            if e.time < started[e.ref] - 1e-6:
                raise InvariantError(
                    f"run {run_id}: timer ref {e.ref} fired at {e.time}, before its due "
                    f"time {started[e.ref]}"
                )
    twice = {ref: n for ref, n in fired.items() if n > 1}
    if twice:
        raise InvariantError(f"run {run_id}: timers fired more than once: {twice}")
    if closed:
        silent = sorted(set(started) - cancelled - set(fired))
        if silent:
            raise InvariantError(f"run {run_id}: closed with timers that never fired: {silent}")
    return sum(fired.values())


def check_signals(run_id: str, events: list[h.Event], accepted: list[Any]) -> None:
    """The accepted signals were delivered exactly once each, in acceptance order."""
    delivered = [e.payload for e in events if isinstance(e, h.SignalReceived)]
    if delivered != accepted:
        raise InvariantError(
            f"run {run_id}: signals delivered {delivered}, but accepted (in order) {accepted}"
        )


def check_updates(run_id: str, events: list[h.Event], answered: list[Any]) -> None:
    """Each update answered once, in the order the driver had them answered,
    each with every payload taken up to it (however often it was retried)."""
    replies = [(e.update_id, e.result) for e in events if isinstance(e, h.UpdateReplied)]
    ids = [update_id for update_id, _ in replies]
    if len(set(ids)) != len(ids) or [r for _, r in replies] != [
        answered[: n + 1] for n in range(len(answered))
    ]:
        raise InvariantError(f"run {run_id}: updates answered {replies}, but taken {answered}")


def recorded_attributes(events: list[h.Event]) -> dict[str, Any]:
    """A run's search attributes as its history says: the start's, then each
    SearchAttributesSet applied in order (None removes a name)."""
    found: dict[str, Any] = {}
    for e in events:
        if isinstance(e, h.WorkflowStarted):
            found = dict(e.search_attributes)
        elif isinstance(e, h.SearchAttributesSet):
            for name, value in e.attributes.items():
                if value is None:
                    found.pop(name, None)
                else:
                    found[name] = value
    return found


def check_search_attributes(run_id: str, events: list[h.Event], kept: dict[str, Any]) -> None:
    """The attributes the store keeps for the run (``kept``: its row's, as
    describe() shows them) are those its history recorded."""
    recorded = recorded_attributes(events)
    if kept != recorded:
        raise InvariantError(
            f"run {run_id}: search attributes {kept}, but its history recorded {recorded}"
        )


def check_priority(run_id: str, events: list[h.Event], status: str, kept: int) -> None:
    """A run that completed or continued as new has the priority its history
    ends with (its start's, or the last PriorityChanged): a change cannot be
    left in the inbox of a run that closed by itself (its close waits for
    an empty inbox)."""
    if status not in ("completed", "continued_as_new"):
        return
    started = next(e for e in events if isinstance(e, h.WorkflowStarted))
    recorded = started.priority or h.DEFAULT_PRIORITY
    for event in events:
        if isinstance(event, h.PriorityChanged):
            recorded = event.priority
    if kept != recorded:
        raise InvariantError(f"run {run_id}: priority {kept}, but its history says {recorded}")


def check_fairness_key(run_id: str, events: list[h.Event], status: str, kept: str | None) -> None:
    """As check_priority, of the run's fairness key (its start's, or the
    last FairnessKeyChanged)."""
    if status not in ("completed", "continued_as_new"):
        return
    started = next(e for e in events if isinstance(e, h.WorkflowStarted))
    recorded = started.fairness_key
    for event in events:
        if isinstance(event, h.FairnessKeyChanged):
            recorded = event.fairness_key
    if (kept or "") != recorded:
        raise InvariantError(
            f"run {run_id}: fairness key {kept!r}, but its history says {recorded!r}"
        )


def check_streams(
    run_id: str,
    events: list[h.Event],
    completed: dict[int, int],
    streams: dict[str, list[tuple[int, Any, str | None]]],
) -> int:
    """A run's streams (key -> its (position, value, source) entries) agree
    with its history: positions run 0..n-1; the workflow's own values
    (source None) are its StreamWritten events' values, each once, in order;
    every attempt of ``work`` that completed wrote its tag before its outcome
    was recorded (at least once), and every value an activity wrote names an
    attempt of a ``work`` step of this run with that step's tag. Returns the
    number of values."""
    for key, entries in streams.items():
        if [p for p, _, _ in entries] != list(range(len(entries))):
            raise InvariantError(f"run {run_id}: stream {key!r} has positions {entries}")
    recorded: dict[str, list[Any]] = defaultdict(list)
    tags: dict[int, Any] = {}  # ref -> the tag of a work step
    for e in events:
        if isinstance(e, h.StreamWritten):
            recorded[e.key].append(e.value)
        elif isinstance(e, h.ActivityScheduled) and e.name == "work":
            tags[e.ref] = e.args[0]
    for key in set(streams) | set(recorded):
        own = [value for _, value, source in streams.get(key, []) if source is None]
        if own != recorded.get(key, []):
            raise InvariantError(
                f"run {run_id}: stream {key!r} holds the workflow's values {own}, "
                f"but its history wrote {recorded.get(key, [])}"
            )
    written = {source: value for _, value, source in streams.get("work", []) if source is not None}
    for source, value in written.items():
        found = re.fullmatch(r"work \(ref (\d+)\) attempt \d+", source)
        if found is None or value != tags.get(int(found.group(1))):
            raise InvariantError(f"run {run_id}: stream value {value!r} from {source!r}")
    for ref, attempt in completed.items():
        source = f"work (ref {ref}) attempt {attempt}"
        if ref in tags and source not in written:
            raise InvariantError(
                f"run {run_id}: {source} completed, but its stream value is missing: {written}"
            )
    return sum(len(entries) for entries in streams.values())


def check_executions(
    executions: Iterable[Execution],
    completed: dict[str, dict[int, int]],
    killed_pids: set[int],
    counts: Counts,
) -> None:
    """At least once, and never again after completion.

    For each (run, ref) the history completed by attempt ``a``: exactly one execution
    is attempt ``a``, every other one is an earlier attempt that either failed on
    purpose or ran in a process that was SIGKILLed; the idempotency key never changes.
    An execution of a step no run recorded is a phantom and fails the check too.
    """
    by_step: dict[tuple[str, int], list[Execution]] = defaultdict(list)
    for e in executions:
        by_step[(e.run, e.ref)].append(e)
        counts.executions += 1
        counts.planned_failures += e.fails
    for (run, ref), execs in sorted(by_step.items()):
        if run not in completed:
            raise InvariantError(f"executions of a run that was never checked: {execs}")
        attempt = completed[run].get(ref)
        if attempt is None:
            raise InvariantError(f"run {run}: activity ref {ref} ran but never completed: {execs}")
        if len({e.key for e in execs}) != 1:
            raise InvariantError(f"run {run} ref {ref}: idempotency key changed: {execs}")
        winners = [e for e in execs if e.attempt == attempt]
        if len(winners) != 1 or winners[0].fails:
            raise InvariantError(
                f"run {run} ref {ref}: completed by attempt {attempt}, but executions were {execs}"
            )
        for e in execs:
            if e is winners[0]:
                continue
            if e.attempt > attempt:
                raise InvariantError(
                    f"run {run} ref {ref} ran again after it completed (attempt {attempt}): {e}"
                )
            if e.fails:
                continue
            if e.pid not in killed_pids:
                raise InvariantError(
                    f"run {run} ref {ref}: attempt {e.attempt} (pid {e.pid}) neither failed "
                    f"nor was killed, yet attempt {attempt} ran too: {execs}"
                )
            counts.re_executions += 1
    for run, refs in completed.items():
        for ref in refs:
            if (run, ref) not in by_step:
                raise InvariantError(f"run {run}: activity ref {ref} completed but never ran")


def check_holds(
    records: list[dict[str, Any]], executions: Iterable[Execution], killed_pids: set[int]
) -> int:
    """A canceller waits for the hold it gave up on to end before its undoing
    step (cancellation_type "wait_cancellation_completed"): every attempt of
    the hold began before that step first began, and released its hold
    before then too, unless its process was SIGKILLed. ``records``: the
    ``hold`` log's lines (a "begin" and a "release" per attempt, paired in
    each process by their order). Returns how many attempts released."""
    undo_began: dict[str, float] = {}
    for e in executions:
        if e.tag.endswith(":undo"):
            undo_began[e.run] = min(e.at, undo_began.get(e.run, e.at))
    open_ones: dict[tuple[int, str, int], dict[str, Any]] = {}
    released = 0
    for r in sorted(records, key=lambda r: (r["pid"], r["at"])):
        key = (r["pid"], r["run"], r["ref"])
        began = undo_began.get(r["run"])
        if began is None:
            raise InvariantError(f"run {r['run']}: its hold ran, its undoing step never: {r}")
        if r["event"] == "begin":
            if r["at"] >= began:
                raise InvariantError(f"run {r['run']}: a hold began after its undoing step: {r}")
            open_ones[key] = r
            continue
        if open_ones.pop(key, None) is None:
            raise InvariantError(f"run {r['run']}: a hold released that never began: {r}")
        if r["at"] >= began:
            raise InvariantError(
                f"run {r['run']}: its undoing step began at {began:.3f}, before its hold "
                f"was released: {r}"
            )
        released += 1
    for r in open_ones.values():
        if r["pid"] not in killed_pids:
            raise InvariantError(f"run {r['run']}: a hold never released, its process alive: {r}")
    return released


def check_ledger(
    run_id: str,
    args: list[Any],
    result: Any,
    rows: list[tuple[int, str]],
    posts: list[dict[str, Any]],
    events: list[h.Event],
) -> tuple[int, int]:
    """A ledger's posts were written once (``perdure.transactions``): the
    application's table holds one row per post, the entry the run's result
    names for it; the post function's run that wrote it is in ``posts``
    (its side file). Returns how many posts were answered by a later
    attempt from the record an earlier one committed (its worker killed
    between the commit and the record of the completion), and how many runs
    of the function were rolled back (killed mid-transaction, or the second
    of two attempts at once)."""
    tag, count = args
    if not (isinstance(result, list) and len(result) == count):
        raise InvariantError(f"run {run_id}: ledger {tag} returned {result!r}")
    if sorted(rows) != sorted(enumerate(result)):
        raise InvariantError(
            f"run {run_id}: ledger {tag}'s table holds {sorted(rows)}, its run returned {result}"
        )
    completed = {e.result: e.attempt for e in events if isinstance(e, h.ActivityCompleted)}
    answered = rolled_back = 0
    runs = [p for p in posts if p["tag"] == tag]
    for i, entry in enumerate(result):
        wrote = [p for p in runs if p["i"] == i and p["entry"] == entry]
        if len(wrote) != 1:
            raise InvariantError(f"run {run_id}: ledger {tag} post {i}: written by {wrote}")
        answered += wrote[0]["attempt"] < completed[entry]
        rolled_back += sum(p["i"] == i and p["entry"] != entry for p in runs)
    return answered, rolled_back
