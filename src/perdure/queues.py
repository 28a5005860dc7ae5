"""Limits on a task queue's activities, shared by every worker
(``Client.set_queue_limits``): at most so many attempts running at once, and
at most so many started in any window of a given length. What an outside
service (a model provider, a payment API) allows, held across all the
machines that call it.

The limits are data in the database: set them once (at deploy, or when the
service's quota changes) and every worker of the queue obeys them at its
next claim. They count activity attempts, each retry included, not
workflows. See docs/queues.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from perdure._checks import check_name, check_queue
from perdure._spans import span_text
from perdure._store.base import QueueLimitsRecord, QueueRecord

__all__ = [
    "MAX_LIMIT",
    "MAX_PER",
    "MIN_PER",
    "PausedActivity",
    "QueueInfo",
    "QueueLimits",
    "make_limits",
]

MAX_LIMIT = 1_000_000  # the largest max_running or max_starts
MAX_WEIGHT = 1_000  # the largest fairness weight
MIN_PER = timedelta(milliseconds=1)
MAX_PER = timedelta(days=31)


@dataclass(frozen=True)
class QueueLimits:
    """A task queue's limits: at most ``max_running`` of its activity
    attempts running at once (0: the queue is paused, none starts); at
    most ``max_starts`` started in any window of ``per``; at most
    ``max_running_per_key`` of one fairness key's running at once, and at
    most ``max_starts_per_key`` of one key's started in any window of
    ``per`` (the unkeyed ones are one key). None: no such limit."""

    max_running: int | None = None
    max_starts: int | None = None
    per: timedelta | None = None
    max_running_per_key: int | None = None
    max_starts_per_key: int | None = None

    @classmethod
    def from_record(cls, record: QueueLimitsRecord) -> QueueLimits:
        per = None if record.per is None else timedelta(seconds=record.per)
        return cls(
            record.max_running,
            record.max_starts,
            per,
            record.max_running_per_key,
            record.max_starts_per_key,
        )

    def to_record(self) -> QueueLimitsRecord:
        per = None if self.per is None else self.per.total_seconds()
        return QueueLimitsRecord(
            self.max_running,
            self.max_starts,
            per,
            self.max_running_per_key,
            self.max_starts_per_key,
        )

    def to_json(self) -> dict[str, Any]:
        """As JSON (``perdure queue show --json``, the HTTP API): ``per`` in
        seconds."""
        return {
            "max_running": self.max_running,
            "max_starts": self.max_starts,
            "per_seconds": None if self.per is None else self.per.total_seconds(),
            "max_running_per_key": self.max_running_per_key,
            "max_starts_per_key": self.max_starts_per_key,
        }

    @property
    def paused(self) -> bool:
        """``max_running`` is 0: no attempt of the queue's activities starts."""
        return self.max_running == 0

    def __str__(self) -> str:
        parts = []
        if self.paused:
            parts.append("paused (max_running 0: no attempt starts)")
        elif self.max_running is not None:
            parts.append(f"at most {self.max_running} running")
        if self.max_starts is not None and self.per is not None:
            parts.append(f"at most {self.max_starts} started per {span_text(self.per)}")
        if self.max_running_per_key is not None and not self.paused:
            parts.append(f"at most {self.max_running_per_key} running per fairness key")
        if self.max_starts_per_key is not None and self.per is not None and not self.paused:
            parts.append(
                f"at most {self.max_starts_per_key} of one fairness key started per"
                f" {span_text(self.per)}"
            )
        return ", ".join(parts)


@dataclass(frozen=True)
class PausedActivity:
    """An activity an operator paused, as ``QueueInfo.paused_activities``
    lists it: ``AsyncActivityHandle`` by these ids unpauses it."""

    workflow_id: str
    run_id: str
    activity_id: int
    activity_type: str

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "activity_id": self.activity_id,
            "activity_type": self.activity_type,
        }


@dataclass(frozen=True)
class QueueInfo:
    """One task queue's activities now (``Client.describe_queue``): its
    limits (None: none), the attempts ``running`` (leased to a worker whose
    lease has not run out), the tasks ``waiting`` to start (due), those
    ``backing_off`` (a retry's wait), the attempts ``started`` within the
    rate limit's window, and, while the rate limit holds starts back, when
    it lets the next one, ``held_until`` (None: it does not; a queue whose
    ``running`` is its ``max_running`` starts the next when one ends);
    ``waiting_by_priority``: the waiting by priority (1 first, 5 last; the
    priorities none waits at left out); ``paused``: the activities an
    operator paused (``AsyncActivityHandle.pause``) that no attempt runs,
    which neither ``waiting`` nor ``backing_off`` counts, and the first 20
    of them, oldest first, in ``paused_activities``; ``waiting_keys``: how
    many fairness keys have tasks waiting (docs/queues.md, "Fairness"), and
    ``waiting_by_key`` the waiting of the ten with the most (unkeyed tasks
    are in neither); ``running_by_key``: the attempts running of the ten
    keys with the most; ``keys_at_limit``: how many keys are at a limit per
    key (``max_running_per_key`` attempts running, or
    ``max_starts_per_key`` started in the window; the unkeyed tasks counted
    as one key, ''; 0 without those limits); ``fairness_weights``: the keys
    given a weight other than 1 (``Client.set_fairness_weight``), by key;
    ``started_by_key``: with ``max_starts_per_key``, the starts within the
    window of the ten keys with the most."""

    task_queue: str
    limits: QueueLimits | None
    running: int
    waiting: int
    backing_off: int
    started: int
    held_until: datetime | None
    waiting_by_priority: dict[int, int] = field(default_factory=dict)
    paused: int = 0
    paused_activities: list[PausedActivity] = field(default_factory=list)
    waiting_by_key: dict[str, int] = field(default_factory=dict)
    waiting_keys: int = 0
    running_by_key: dict[str, int] = field(default_factory=dict)
    keys_at_limit: int = 0
    fairness_weights: dict[str, int] = field(default_factory=dict)
    started_by_key: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """As JSON (``perdure queue show --json``, the HTTP API)."""
        held = self.held_until
        return {
            "task_queue": self.task_queue,
            "limits": None if self.limits is None else self.limits.to_json(),
            "running": self.running,
            "waiting": self.waiting,
            "backing_off": self.backing_off,
            "started": self.started,
            "held_until": None if held is None else held.isoformat(),
            "waiting_by_priority": {str(p): n for p, n in self.waiting_by_priority.items()},
            "paused": self.paused,
            "paused_activities": [a.to_json() for a in self.paused_activities],
            "waiting_keys": self.waiting_keys,
            "waiting_by_key": dict(self.waiting_by_key),
            "running_by_key": dict(self.running_by_key),
            "keys_at_limit": self.keys_at_limit,
            "fairness_weights": dict(self.fairness_weights),
            "started_by_key": dict(self.started_by_key),
        }

    @classmethod
    def from_record(cls, record: QueueRecord) -> QueueInfo:
        limits = None if record.limits is None else QueueLimits.from_record(record.limits)
        held = record.held_until
        return cls(
            record.queue,
            limits,
            record.running,
            record.waiting,
            record.backing_off,
            record.started,
            None if held is None else datetime.fromtimestamp(held, tz=UTC),
            dict(record.waiting_by_priority),
            record.paused,
            [PausedActivity(*a) for a in record.paused_activities],
            dict(record.waiting_by_key),
            record.waiting_keys,
            dict(record.running_by_key),
            record.keys_at_limit,
            dict(record.fairness_weights),
            dict(record.started_by_key),
        )


def check_weight(task_queue: str, fairness_key: str, weight: int) -> None:
    """A fairness weight asked for, checked: a clear ValueError or
    TypeError saying what is wrong."""
    check_queue("task_queue", task_queue)
    check_name("fairness_key", fairness_key)
    if type(weight) is not int:
        raise TypeError(f"weight must be an int, not {type(weight).__name__}")
    if not 1 <= weight <= MAX_WEIGHT:
        raise ValueError(
            f"weight must be between 1 and {MAX_WEIGHT:,} (1: the default), not {weight}"
        )


def make_limits(
    task_queue: str,
    max_running: int | None,
    max_starts: int | None,
    per: timedelta | None,
    max_running_per_key: int | None = None,
    max_starts_per_key: int | None = None,
) -> QueueLimits:
    """The limits asked for, checked: a clear ValueError or TypeError
    saying what is wrong."""
    check_queue("task_queue", task_queue)
    # (max_running 0 pauses the queue: no attempt starts until it is raised;
    # a limit per key of 0 would pause it too, by other means: refused)
    for what, value, least in (
        ("max_running", max_running, 0),
        ("max_starts", max_starts, 1),
        ("max_running_per_key", max_running_per_key, 1),
        ("max_starts_per_key", max_starts_per_key, 1),
    ):
        if value is None:
            continue
        if type(value) is not int:
            raise TypeError(f"{what} must be an int or None, not {type(value).__name__}")
        if not least <= value <= MAX_LIMIT:
            raise ValueError(f"{what} must be between {least} and {MAX_LIMIT:,}, not {value}")
    if per is not None and not isinstance(per, timedelta):
        raise TypeError(f"per must be a datetime.timedelta, not {type(per).__name__}")
    rated = max_starts is not None or max_starts_per_key is not None
    if rated != (per is not None):
        raise ValueError(
            "a rate limit needs both max_starts and per, or max_starts_per_key and per "
            "(at most max_starts attempts, or max_starts_per_key of one fairness key's, "
            "started in any window of per)"
        )
    if per is not None and not MIN_PER <= per <= MAX_PER:
        raise ValueError(f"per must be between {MIN_PER} and {MAX_PER.days} days, not {per}")
    if max_running is None and not rated and max_running_per_key is None:
        raise ValueError(
            "give max_running, or max_starts and per, or max_running_per_key, or "
            "max_starts_per_key and per, or several of them (remove_queue_limits removes "
            "a queue's limits)"
        )
    return QueueLimits(max_running, max_starts, per, max_running_per_key, max_starts_per_key)
