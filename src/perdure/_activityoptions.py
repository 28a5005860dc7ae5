"""Changing a pending activity's options in flight (an operator's
``AsyncActivityHandle.update_options``, Temporal's ``activity update-options``):
the change asked for, checked where it is made, and what it makes of the
options and the due time the store read, in the store's transaction. Pure:
no I/O, no clock (the store gives the time).
Imports the retry policy, the name checks and errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from perdure._checks import check_queue
from perdure.retry import RetryPolicy

__all__ = ["UPDATE_OPTIONS", "OptionsChange", "jitter_seconds", "planned"]

TIMEOUTS = ("start_to_close_timeout", "schedule_to_close_timeout", "heartbeat_timeout")
# The keyword arguments of update_options (and OptionsChange.of), in order.
UPDATE_OPTIONS = (
    *TIMEOUTS,
    "retry_initial_interval",
    "retry_backoff",
    "retry_max_interval",
    "retry_max_attempts",
    "task_queue",
)
# The longest span a change may give: a deadline or a retry's due time past
# the year 9999 could not be described (datetime's range).
MAX_SPAN = timedelta(days=36_525)  # 100 years


@dataclass(frozen=True)
class OptionsChange:
    """What to change; None leaves an option as it is. Seconds, as the
    recorded options hold them. ``max_attempts`` 0: no limit."""

    start_to_close_timeout: float | None = None
    schedule_to_close_timeout: float | None = None
    heartbeat_timeout: float | None = None
    initial_interval: float | None = None
    backoff: float | None = None
    max_interval: float | None = None
    max_attempts: int | None = None
    task_queue: str | None = None

    @classmethod
    def of(
        cls,
        *,
        start_to_close_timeout: object = None,
        schedule_to_close_timeout: object = None,
        heartbeat_timeout: object = None,
        retry_initial_interval: object = None,
        retry_backoff: object = None,
        retry_max_interval: object = None,
        retry_max_attempts: object = None,
        task_queue: object = None,
    ) -> OptionsChange:
        """The change an operator asked for, each value checked (TypeError or
        ValueError saying which is wrong); ValueError if it changes nothing."""
        backoff = retry_backoff
        if backoff is not None:
            if isinstance(backoff, bool) or not isinstance(backoff, (int, float)):
                raise TypeError(
                    f"retry_backoff must be a number, not {type(backoff).__name__} {backoff!r}"
                )
            if not math.isfinite(backoff) or backoff < 1.0:
                raise ValueError(f"retry_backoff must be a finite number >= 1.0, not {backoff!r}")
        attempts = retry_max_attempts
        if attempts is not None:
            if isinstance(attempts, bool) or not isinstance(attempts, int):
                raise TypeError(
                    f"retry_max_attempts must be an int (0: no limit), "
                    f"not {type(attempts).__name__} {attempts!r}"
                )
            if attempts < 0:
                raise ValueError(f"retry_max_attempts must be >= 0 (0: no limit), not {attempts}")
        if task_queue is not None:
            check_queue("task_queue", task_queue)
        change = cls(
            start_to_close_timeout=_seconds("start_to_close_timeout", start_to_close_timeout),
            schedule_to_close_timeout=_seconds(
                "schedule_to_close_timeout", schedule_to_close_timeout
            ),
            heartbeat_timeout=_seconds("heartbeat_timeout", heartbeat_timeout),
            initial_interval=_seconds("retry_initial_interval", retry_initial_interval),
            backoff=None if backoff is None else float(backoff),
            max_interval=_seconds("retry_max_interval", retry_max_interval),
            max_attempts=attempts,
            task_queue=task_queue,  # type: ignore[arg-type]
        )
        if change == cls():
            raise ValueError(
                "update_options changes nothing: give at least one of start_to_close_timeout, "
                "schedule_to_close_timeout, heartbeat_timeout, retry_initial_interval, "
                "retry_backoff, retry_max_interval, retry_max_attempts, task_queue"
            )
        first, most = change.initial_interval, change.max_interval
        if first is not None and most is not None and most < first:
            # (Refused here, whatever the activity's policy: a batch refuses it
            # before choosing anything, not once per activity.)
            raise ValueError(
                f"retry_max_interval ({most:g}s) must be at least retry_initial_interval "
                f"({first:g}s)"
            )
        return change

    def retry_changed(self) -> bool:
        return any(
            v is not None
            for v in (self.initial_interval, self.backoff, self.max_interval, self.max_attempts)
        )

    def applied(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` (an ActivityScheduled's, as the task holds them) with
        this change made; ValueError if the retry policy it makes is not
        one (a max_interval below the initial_interval)."""
        new = dict(options)
        for name in TIMEOUTS:
            value = getattr(self, name)
            if value is not None:
                new[name] = value
        if self.retry_changed():
            retry = dict(options["retry"])
            if self.initial_interval is not None:
                retry["initial_interval"] = self.initial_interval
            if self.backoff is not None:
                retry["backoff"] = self.backoff
            if self.max_interval is not None:
                retry["max_interval"] = self.max_interval
            if self.max_attempts is not None:
                retry["max_attempts"] = self.max_attempts or None
            if self.max_interval is None and retry["initial_interval"] > retry["max_interval"]:
                raise ValueError(
                    f"retry_initial_interval {retry['initial_interval']:g}s is above the "
                    f"policy's max_interval of {retry['max_interval']:g}s: give "
                    f"retry_max_interval too"
                )
            try:
                RetryPolicy.from_dict(retry)
            except ValueError as exc:
                raise ValueError(
                    f"the retry policy this change makes is not valid: {exc}"
                ) from None
            new["retry"] = retry
        return new


def planned(
    change: OptionsChange,
    options: dict[str, Any],
    attempt: int,
    attempts: list[dict[str, Any]],
    idle: bool,
    paused: bool,
    due: float,
    now: float,
    where: str,
) -> tuple[dict[str, Any], float | None]:
    """The activity's new options and, if its next attempt's due time moves,
    that time (None: it stays). ``attempt``: the attempts begun so far;
    ``attempts``: the records of those that ended; ``idle``: no attempt holds
    it; ``paused``: an operator paused it; ``due``: its row's due time.
    A retry that waits out its backoff waits the new policy's delay after
    the last attempt ended (not less than now), as Temporal regenerates its
    retry timer. ValueError (``where`` names the activity) if the new
    max_attempts allows no attempt after those made while none runs: an
    activity that is to run no more is ended by hand, not by its options."""
    new = change.applied(options)
    limit = new["retry"].get("max_attempts")
    if change.max_attempts and limit is not None and idle and attempt >= limit:
        raise ValueError(
            f"{where} has made {attempt} attempt{'s' if attempt != 1 else ''} and none is "
            f"running: max_attempts {limit} would allow no more; to end it, fail it by id "
            f"(perdure activity fail)"
        )
    if not (change.retry_changed() and idle and not paused and attempt > 0 and due > now):
        return new, None
    last = attempts[-1] if attempts else None
    if last is None or last.get("attempt") != attempt or last.get("ended_at") is None:
        return new, None  # (not a retry's backoff: a hand-back's pause)
    delay = RetryPolicy.from_dict(new["retry"]).delay_after(attempt)
    return new, max(now, float(last["ended_at"]) + delay)


def jitter_seconds(jitter: object) -> float:
    """An unpause's or a reset's ``jitter`` (None: none) in seconds,
    checked: the next attempt is due at a random moment that many seconds
    from now at most, so that the activities of a batch do not all call a
    service just back at once."""
    if jitter is None:
        return 0.0
    if not isinstance(jitter, timedelta):
        raise TypeError(
            f"jitter must be a timedelta (or None: due now), not {type(jitter).__name__} {jitter!r}"
        )
    if jitter < timedelta(0) or jitter > MAX_SPAN:
        raise ValueError(f"jitter must be from 0 to 100 years (36525 days), not {jitter!r}")
    return jitter.total_seconds()


def _seconds(name: str, value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a timedelta (or None: unchanged), not {value!r}")
    if value <= timedelta(0):
        raise ValueError(f"{name} must be a positive timedelta, not {value!r}")
    if value > MAX_SPAN:
        raise ValueError(f"{name} must be at most 100 years (36525 days), not {value!r}")
    return value.total_seconds()
