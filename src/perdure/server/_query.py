"""Operator queries shared by the CLI and the HTTP API: list filters and paging,
time parsing, and the JSON views of runs, descriptions, batches, rejected updates,
streams and worker builds.

Framework-free on purpose (no fastapi import): ``perdure list`` uses it without
the ``server`` extra. Imports the public Client API only.

Every filter, and the paging, is done by the store (``Client.list`` passes them
down as one indexed query); this module only checks a query and turns it into
pages: a cursor is the ``cursor`` of a page's last run (keyset paging, stable
while new runs arrive), a page number an offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from perdure.client import (
    STATUSES,
    ActivityBatchResult,
    BatchResult,
    BuildInfo,
    Client,
    PendingActivityInfo,
    StreamEntry,
    StreamInfo,
    StreamPage,
    WorkflowCount,
    WorkflowDescription,
    WorkflowExecution,
)
from perdure.errors import UpdateRejectedError

__all__ = [
    "KNOWN_STATUSES",
    "MAX_LIMIT",
    "MAX_POSITION",
    "ListQuery",
    "Page",
    "activity_batch_json",
    "attempt_json",
    "batch_json",
    "build_json",
    "count_matching",
    "decode_cursor",
    "description_json",
    "encode_cursor",
    "execution_json",
    "final_description",
    "iso",
    "list_page",
    "outcome_json",
    "parse_when",
    "pending_activity_json",
    "rejected_update_json",
    "seconds",
    "stream_entry_json",
    "stream_info_json",
    "stream_page_json",
]

KNOWN_STATUSES = STATUSES
# The largest stream position asked for (JavaScript's largest exact integer):
# a larger one reads nothing anyway, and the databases' integers end near 2**63.
MAX_POSITION = 2**53 - 1
MAX_CHAIN = 10_000  # continue-as-new hops followed before giving up
MAX_LIMIT = 1000

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, *, now: datetime, naive_tz: tzinfo = UTC) -> datetime:
    """``"15m"``, ``"2h"``, ``"3d"``, ``"1w"`` (that long before ``now``) or an ISO 8601
    date/time; a time without an offset is read in ``naive_tz``. Raises ValueError."""
    match = _RELATIVE.match(text)
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use an ISO 8601 time (2024-05-01T12:00:00Z, "
            f"2024-05-01) or an age such as 30s, 15m, 2h, 3d, 1w"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=naive_tz)


def iso(when: datetime | None) -> str | None:
    """UTC ISO 8601 with a ``Z``, the one time format the API and ``--json`` speak."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def seconds(span: timedelta | None) -> float | None:
    """A span as the API and ``--json`` speak it: seconds (a number), or null."""
    return None if span is None else span.total_seconds()


def encode_cursor(execution: WorkflowExecution) -> str:
    """The cursor of the page that follows ``execution`` (a run ``Client.list`` gave)."""
    return execution.cursor


def decode_cursor(cursor: str) -> tuple[float, int]:
    """The place in the listing a cursor points after. Raises ValueError."""
    try:
        return WorkflowExecution.parse_cursor(cursor)
    except ValueError:
        raise ValueError(
            f"invalid cursor {cursor!r}: pass the next_cursor of a previous page"
        ) from None


@dataclass(frozen=True)
class ListQuery:
    """What to list. ``page`` (1-based) and ``cursor`` are two ways to page; not both.
    ``search_attributes``: a filter as ``perdure._attrfilters.parse_filter`` reads
    one (name -> text or AttributeRange; a run must match each); ``build_id``: only the runs
    pinned to that worker build (the Client checks it)."""

    status: str | None = None
    workflow_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None
    retrying: bool = False
    latest: bool = False
    limit: int = 50
    page: int | None = None
    cursor: str | None = None
    search_attributes: dict[str, Any] = field(default_factory=dict)
    build_id: str | None = None

    def keywords(self) -> dict[str, Any]:
        """Its filters but the status and the type, as ``Client.list`` and
        ``Client.count`` take them."""
        return {
            "since": self.since,
            "until": self.until,
            "search": self.search,
            "retrying": self.retrying,
            "latest": self.latest,
            "search_attributes": self.search_attributes or None,
            "build_id": self.build_id,
        }

    def check(self) -> None:
        """Raise ValueError naming what is wrong with the query."""
        if self.status is not None and self.status not in KNOWN_STATUSES:
            raise ValueError(
                f"status must be one of {', '.join(KNOWN_STATUSES)}, not {self.status!r}"
            )
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {self.limit}")
        if self.page is not None and self.page < 1:
            raise ValueError(f"page numbers start at 1, not {self.page}")
        if self.page is not None and self.cursor is not None:
            raise ValueError("pass either a page number or a cursor, not both")
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since ({iso(self.since)}) is after until ({iso(self.until)})")
        if self.cursor is not None:
            decode_cursor(self.cursor)


@dataclass(frozen=True)
class Page:
    items: list[WorkflowExecution]
    next_cursor: str | None


async def list_page(client: Client, query: ListQuery) -> Page:
    """One page of runs matching ``query``, newest first."""
    query.check()
    rows = await client.list(
        query.status,
        query.workflow_type,
        query.limit + 1,  # one more than the page tells whether a next page exists
        after=query.cursor,
        offset=(query.page - 1) * query.limit if query.page is not None else 0,
        **query.keywords(),
    )
    chosen = rows[: query.limit]
    more = len(rows) > query.limit
    return Page(chosen, encode_cursor(chosen[-1]) if more and chosen else None)


async def count_matching(client: Client, query: ListQuery) -> WorkflowCount:
    """How many runs match ``query`` (its page, limit and cursor apart)."""
    query.check()
    return await client.count(query.status, query.workflow_type, **query.keywords())


def execution_json(e: WorkflowExecution) -> dict[str, Any]:
    return {
        "id": e.id,
        "run_id": e.run_id,
        "workflow_type": e.workflow_type,
        "task_queue": e.task_queue,
        "status": e.status,
        "created_at": iso(e.created_at),
        "closed_at": iso(e.closed_at),
        "last_error": e.last_error,
        "search_attributes": e.search_attributes,
        "priority": e.priority,
        "build_id": e.build_id,
    }


def build_json(b: BuildInfo) -> dict[str, Any]:
    """One of a task queue's worker builds (``perdure build list --json``,
    ``GET /api/queues/{queue}/builds``): ``promoted_at`` null for a build
    never current, ``ramp`` (percent) null for one that does not ramp."""
    return {
        "build_id": b.build_id,
        "current": b.current,
        "promoted_at": iso(b.promoted_at),
        "open_runs": b.open_runs,
        "workers": b.workers,
        "ramp": b.ramp,
    }


def batch_json(result: BatchResult) -> dict[str, Any]:
    """What a batch chose and did (``perdure cancel ... --json``, ``POST
    /api/batch/{action}``): its runs as the listing shows them."""
    return {
        "action": result.action,
        "dry_run": result.dry_run,
        "matched": [execution_json(e) for e in result.matched],
        "done": dict(result.done),
        "skipped": dict(result.skipped),
        "failed": dict(result.failed),
    }


def pending_activity_json(a: PendingActivityInfo) -> dict[str, Any]:
    """A pending activity as ``describe`` shows it (and an activity batch its
    matches)."""
    return {
        "activity_id": a.activity_id,
        "activity_type": a.activity_type,
        "attempt": a.attempt,
        "running": a.running,
        "next_attempt_at": iso(a.next_attempt_at),
        "last_failure": a.last_failure,
        "started_at": iso(a.started_at),
        "attempts": [attempt_json(r) for r in a.attempts],
        "task_queue": a.task_queue,
        "waiting_for_worker": a.waiting_for_worker,
        "held_by_limits": a.held_by_limits,
        "in_backlog": a.in_backlog,
        "ahead": a.ahead,
        "awaiting_completion": a.awaiting_completion,
        "completion_deadline": iso(a.completion_deadline),
        "heartbeat_details": a.heartbeat_details,
        "paused": a.paused,
        "retry_policy": None if a.retry_policy is None else a.retry_policy.to_dict(),
        "start_to_close_timeout": seconds(a.start_to_close_timeout),
        "schedule_to_close_timeout": seconds(a.schedule_to_close_timeout),
        "heartbeat_timeout": seconds(a.heartbeat_timeout),
        "deadline": iso(a.deadline),
        "reset_requested": a.reset_requested,
        "cancel_requested": a.cancel_requested,
    }


def activity_batch_json(result: ActivityBatchResult) -> dict[str, Any]:
    """What an activity batch chose and did (``perdure activity pause ...
    --json``, ``POST /api/batch/activities/{action}``): each activity with its
    workflow id and run id, as ``describe`` shows it."""

    def named(key: tuple[str, int]) -> dict[str, Any]:
        return {"workflow_id": key[0], "activity_id": key[1]}

    return {
        "action": result.action,
        "dry_run": result.dry_run,
        "matched": [
            {"workflow_id": m.workflow_id, "run_id": m.run_id, **pending_activity_json(m.activity)}
            for m in result.matched
        ],
        "done": [named(key) for key in result.done],
        "skipped": [{**named(key), "why": why} for key, why in result.skipped.items()],
        "failed": [{**named(key), "error": error} for key, error in result.failed.items()],
    }


def attempt_json(record: dict[str, Any]) -> dict[str, Any]:
    """An activity attempt record with its times in ISO 8601 (history events
    keep epoch seconds, as every event time)."""

    def when(value: Any) -> str | None:
        if not isinstance(value, (int, float)):
            return None
        return iso(datetime.fromtimestamp(value, tz=UTC))

    return {
        "attempt": record.get("attempt"),
        "started_at": when(record.get("started_at")),
        "ended_at": when(record.get("ended_at")),
        "error": record.get("error"),
    }


def description_json(d: WorkflowDescription) -> dict[str, Any]:
    """Everything ``describe()`` says, JSON-ready (times in UTC ISO 8601)."""
    return {
        "id": d.id,
        "run_id": d.run_id,
        "workflow_type": d.workflow_type,
        "task_queue": d.task_queue,
        "status": d.status,
        "input": d.input,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
        "closed_at": iso(d.closed_at),
        "state": d.state,
        "result": d.result,
        "failure": d.failure,
        "last_error": d.last_error,
        "search_attributes": d.search_attributes,
        "priority": d.priority,
        "fairness_key": d.fairness_key,
        "build_id": d.build_id,
        "headers": d.headers,
        "history_length": d.history_length,
        "pending_activities": [pending_activity_json(a) for a in d.pending_activities],
        "pending_timers": [
            {"timer_id": t.timer_id, "fire_at": iso(t.fire_at)} for t in d.pending_timers
        ],
        "pending_children": [
            {"workflow_id": c.workflow_id, "run_id": c.run_id, "workflow_type": c.workflow_type}
            for c in d.pending_children
        ],
        "waiting_signals": list(d.waiting_signals),
        "waiting_updates": list(d.waiting_updates),
        "waiting_conditions": d.waiting_conditions,
        "waiting_for_worker": d.waiting_for_worker,
        "in_backlog": d.in_backlog,
        "ahead": d.ahead,
        "parent_run_id": d.parent_run_id,
        "continued_to": d.continued_to,
        "starts_at": iso(d.starts_at),
        "debounce_key": d.debounce_key,
        "awaiting_nothing": d.awaiting_nothing,
    }


async def final_description(
    client: Client, workflow_id: str, run_id: str | None
) -> WorkflowDescription:
    """The run's description, following continue-as-new to the run that carries on
    (``handle.result()`` follows the same chain)."""
    d = await client.get_handle(workflow_id, run_id).describe()
    for _ in range(MAX_CHAIN):
        if d.continued_to is None:
            break
        d = await client.get_handle(workflow_id, d.continued_to).describe()
    return d


def outcome_json(d: WorkflowDescription) -> dict[str, Any]:
    """What ``result`` answers: the status, and the result or the failure."""
    return {
        "id": d.id,
        "run_id": d.run_id,
        "status": d.status,
        "done": d.closed_at is not None,
        "result": d.result,
        "failure": d.failure,
    }


def rejected_update_json(workflow_id: str, exc: UpdateRejectedError) -> dict[str, Any]:
    """What a rejected update answers (``perdure update --json``; the HTTP API's
    409 adds ``detail``, the error's whole text): ``message`` is what the
    workflow gave ``request.reject()``."""
    return {"id": workflow_id, "update_id": exc.update_id, "rejected": True, "message": exc.reason}


def stream_info_json(info: StreamInfo) -> dict[str, Any]:
    """One of a run's streams (``perdure show``, ``GET .../streams``)."""
    return {"key": info.key, "length": info.length, "closed": info.closed}


def stream_entry_json(entry: StreamEntry) -> dict[str, Any]:
    """One value of a stream with its position, time and writer (``source``:
    null for the workflow, else the activity attempt)."""
    return {
        "position": entry.position,
        "value": entry.value,
        "time": iso(entry.time),
        "source": entry.source,
    }


def stream_page_json(page: StreamPage) -> dict[str, Any]:
    """Part of a stream (``GET .../streams/{key}``): ``next_start`` is the
    position to ask for next; ``finished``, that no value will follow these."""
    return {
        "run_id": page.run_id,
        "entries": [stream_entry_json(e) for e in page.entries],
        "next_start": page.next_start,
        "finished": page.finished,
    }
