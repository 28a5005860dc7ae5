"""Pausing, unpausing or resetting every pending activity a filter matches
(``Client.batch_activities``), as an operator does when a service the
activities call goes down ("pause every charge_card while the payment API
is out") and comes back ("unpause them, their attempts counted from 1", or
"reset them: try each again now, with a fresh set of attempts").

The activities are chosen first: the open runs the run filters match (each
workflow id's latest, as ``Client.batch`` chooses them), then, of each, the
pending activities of the type given that the action would change (a pause
takes those not paused, an unpause the paused ones, a reset every one), as
``describe()`` shows them. Then each is acted on by its run id and activity id, a few at a
time: one that ended meanwhile (or whose run did) is skipped, not looked
for elsewhere. Running the same batch again acts on what still matches.
Imports the public client API's pieces and errors only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from perdure._batch import AT_ONCE, PAGE
from perdure._checks import check_name
from perdure._schedule_spec import SCHEDULE_WORKFLOW
from perdure._views import PendingActivityInfo
from perdure.errors import AsyncActivityNotFoundError, WorkflowNotFoundError

if TYPE_CHECKING:
    from perdure.client import Client

__all__ = [
    "ACTIVITY_ACTIONS",
    "ActivityBatchAction",
    "ActivityBatchResult",
    "MatchedActivity",
    "activity_batch_filters",
    "run_activity_batch",
]

ActivityBatchAction = Literal["pause", "unpause", "reset"]
ACTIVITY_ACTIONS: tuple[ActivityBatchAction, ...] = ("pause", "unpause", "reset")
# The options of each action (the keyword arguments of the handle's method).
_OPTIONS = {
    "pause": (),
    "unpause": ("reset_attempts",),
    "reset": ("keep_paused", "clear_heartbeat_details"),
}


@dataclass(frozen=True)
class MatchedActivity:
    """A pending activity a batch chose: its run, and the activity as
    ``describe()`` showed it then."""

    workflow_id: str
    run_id: str
    activity: PendingActivityInfo

    @property
    def key(self) -> tuple[str, int]:
        """(workflow id, activity id): how the result's maps name it."""
        return (self.workflow_id, self.activity.activity_id)


@dataclass(frozen=True)
class ActivityBatchResult:
    """What ``Client.batch_activities`` did: the activities it chose (their
    runs newest first) and, for each, whether it was acted on."""

    action: str
    matched: list[MatchedActivity]
    """The pending activities the filters matched that the action changes."""
    dry_run: bool = False
    """Nothing was done: ``matched`` is what would have been."""
    done: list[tuple[str, int]] = field(default_factory=list)
    """(workflow id, activity id) of each activity acted on."""
    skipped: dict[tuple[str, int], str] = field(default_factory=dict)
    """(workflow id, activity id) -> why it was not acted on: since it was
    chosen, it ended, or its run did."""
    failed: dict[tuple[str, int], str] = field(default_factory=dict)
    """(workflow id, activity id) -> the error its action raised (an
    unpause with ``reset_attempts`` of an activity whose attempt runs: it
    stays paused)."""


def activity_batch_filters(
    action: str,
    activity_type: str | None,
    workflow: str | None,
    since: datetime | None,
    until: datetime | None,
    search: str | None,
    search_attributes: Mapping[str, Any] | None,
    retrying: bool,
) -> dict[str, Any]:
    """The filters of an activity batch, checked: the open runs' (as
    ``Client.list`` takes them) and the activity type. Something must be
    named: an activity type, or a filter of the runs."""
    if action not in ACTIVITY_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIVITY_ACTIONS)}, not {action!r}")
    if activity_type:
        check_name("activity_type", activity_type)
    activity_type, workflow, search = activity_type or None, workflow or None, search or None
    named = (activity_type, workflow, since, until, search, search_attributes or None)
    if all(f is None for f in named) and not retrying:
        raise ValueError(
            f"name which activities to {action}: give activity_type, or a filter of their runs"
            " (workflow, since, until, search, search_attributes, retrying)"
        )
    return {
        "activity_type": activity_type,
        "status": "running",  # (only an open run has pending activities)
        "workflow": workflow,
        "since": since,
        "until": until,
        "search": search,
        "search_attributes": search_attributes,
        "retrying": retrying,
    }


async def run_activity_batch(
    client: Client,
    action: ActivityBatchAction,
    filters: dict[str, Any],
    options: dict[str, bool],
    limit: int | None,
    dry_run: bool,
) -> ActivityBatchResult:
    """Client.batch_activities (its filters checked there): choose, then act
    with those of ``options`` that are the action's (any other given: an
    error)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int (or None for every match), not {limit!r}")
    for name, value in options.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, not {value!r}")
        if value and name not in _OPTIONS[action]:
            takes = [n for n, actions in _OPTIONS.items() if name in actions]
            raise ValueError(f"{name} goes with {' and '.join(takes)}, not {action}")
    given = {name: options[name] for name in _OPTIONS[action]}
    filters = dict(filters)
    activity_type = filters.pop("activity_type")
    matched = await _choose(client, action, activity_type, filters, limit)
    if dry_run:
        return ActivityBatchResult(action, matched, dry_run=True)
    result = ActivityBatchResult(action, matched)
    room = asyncio.Semaphore(AT_ONCE)

    async def act(chosen: MatchedActivity) -> None:
        handle = client.get_async_activity_handle(
            workflow_id=chosen.workflow_id,
            activity_id=chosen.activity.activity_id,
            run_id=chosen.run_id,
        )
        async with room:
            try:
                await getattr(handle, action)(**given)
                result.done.append(chosen.key)
            except AsyncActivityNotFoundError:
                result.skipped[chosen.key] = "it has ended, or its run has"
            except Exception as exc:  # (each activity's own error, reported; the rest go on)
                result.failed[chosen.key] = f"{type(exc).__name__}: {exc}"

    await asyncio.gather(*(act(chosen) for chosen in matched))
    return result


async def _choose(
    client: Client,
    action: ActivityBatchAction,
    activity_type: str | None,
    filters: dict[str, Any],
    limit: int | None,
) -> list[MatchedActivity]:
    """The pending activities the action would change, of the open runs the
    filters match (newest first; a run's by activity id), at most ``limit``."""
    # (A pause takes those not paused, an unpause the paused, a reset all.)
    wanted = {"pause": (False,), "unpause": (True,), "reset": (False, True)}[action]
    matched: list[MatchedActivity] = []
    cursor: str | None = None
    room = asyncio.Semaphore(AT_ONCE)

    async def pending(workflow_id: str, run_id: str) -> list[MatchedActivity]:
        async with room:
            try:
                described = await client.get_handle(workflow_id, run_id).describe()
            except WorkflowNotFoundError:  # (deleted since it was listed)
                return []
        return [
            MatchedActivity(workflow_id, run_id, a)
            for a in described.pending_activities
            if a.paused in wanted and (activity_type is None or a.activity_type == activity_type)
        ]

    while limit is None or len(matched) < limit:
        page = await client.list(limit=PAGE, after=cursor, latest=True, **filters)
        # (A schedule's own workflow runs no activities: not described.)
        runs = [r for r in page if r.workflow_type != SCHEDULE_WORKFLOW]
        for found in await asyncio.gather(*(pending(r.id, r.run_id) for r in runs)):
            matched.extend(found)
        if len(page) < PAGE:
            break
        cursor = page[-1].cursor
    return matched if limit is None else matched[:limit]
