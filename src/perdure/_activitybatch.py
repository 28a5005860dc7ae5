"""Pausing, unpausing, resetting or changing the options of every pending
activity a filter matches (``Client.batch_activities``), as an operator does
when a service the activities call goes down ("pause every charge_card while
the payment API is out"), comes back ("unpause them, their attempts counted
from 1", or "reset them: try each again now, with a fresh set of
attempts"), or turns out slower than the activities were told ("give every
charge_card two minutes, not thirty seconds").

The activities are chosen first: the open runs the run filters match (each
workflow id's latest, as ``Client.batch`` chooses them), then, of each, the
pending activities of the type given that the action would change (a pause
takes those not paused, an unpause the paused ones, a reset and a change
of options every one), as
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

from perdure._activityoptions import UPDATE_OPTIONS, OptionsChange, jitter_seconds
from perdure._batch import AT_ONCE, PAGE, checked_options
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

ActivityBatchAction = Literal["pause", "unpause", "reset", "update_options"]
ACTIVITY_ACTIONS: tuple[ActivityBatchAction, ...] = ("pause", "unpause", "reset", "update_options")
# The options of each action (keyword arguments of the handle's method);
# update_options takes its new options as new_options instead.
_OPTIONS = {
    "pause": (),
    "unpause": ("reset_attempts", "jitter"),
    "reset": ("keep_paused", "clear_heartbeat_details", "jitter"),
    "update_options": (),
}
_FLAGS = ("reset_attempts", "keep_paused", "clear_heartbeat_details")
# Which activities each action changes, by whether they are paused: a pause
# takes those not paused, an unpause the paused, the others all.
_WANTED = {
    "pause": (False,),
    "unpause": (True,),
    "reset": (False, True),
    "update_options": (False, True),
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
    stays paused; new options refused for it, such as a
    ``retry_max_attempts`` its attempts have used up)."""


def activity_batch_filters(
    action: str,
    activity_type: str | None,
    workflow: str | None,
    since: datetime | None,
    until: datetime | None,
    search: str | None,
    search_attributes: Mapping[str, Any] | None,
    retrying: bool,
    build_id: str | None = None,
) -> dict[str, Any]:
    """The filters of an activity batch, checked: the open runs' (as
    ``Client.list`` takes them) and the activity type. Something must be
    named: an activity type, or a filter of the runs."""
    if action not in ACTIVITY_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIVITY_ACTIONS)}, not {action!r}")
    if activity_type:
        check_name("activity_type", activity_type)
    activity_type, workflow, search = activity_type or None, workflow or None, search or None
    build_id = build_id or None
    named = (activity_type, workflow, since, until, search, search_attributes or None, build_id)
    if all(f is None for f in named) and not retrying:
        raise ValueError(
            f"name which activities to {action}: give activity_type, or a filter of their runs"
            " (workflow, since, until, search, search_attributes, retrying, build_id)"
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
        "build_id": build_id,
    }


async def run_activity_batch(
    client: Client,
    action: ActivityBatchAction,
    filters: dict[str, Any],
    options: dict[str, Any],
    new_options: Mapping[str, object] | None,
    limit: int | None,
    dry_run: bool,
) -> ActivityBatchResult:
    """Client.batch_activities (its filters checked there): choose, then act
    with those of ``options`` that are the action's (any other given: an
    error), or, for update_options, with ``new_options``. A ``jitter``
    is drawn by each activity's own unpause or reset."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int (or None for every match), not {limit!r}")
    for name, value in options.items():
        if name in _FLAGS and not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, not {value!r}")
        if name == "jitter":
            jitter_seconds(value)  # (TypeError or ValueError, before anything is chosen)
        if value and name not in _OPTIONS[action]:
            takes = [n for n, actions in _OPTIONS.items() if name in actions]
            raise ValueError(f"{name} goes with {' and '.join(takes)}, not {action}")
    given: dict[str, object] = {name: options[name] for name in _OPTIONS[action]}
    if action == "update_options":
        given = checked_new_options(new_options)
    elif new_options is not None:
        raise ValueError(f"new_options goes with update_options, not {action}")
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
    wanted = _WANTED[action]
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


def checked_new_options(new_options: Mapping[str, object] | None) -> dict[str, object]:
    """The options a batch's update_options gives each activity, as
    ``AsyncActivityHandle.update_options`` takes them, checked as it checks
    them (TypeError or ValueError naming what is wrong) before anything is
    chosen; a name it does not take, or none at all, is refused."""
    given = checked_options(new_options, UPDATE_OPTIONS)
    OptionsChange.of(**given)  # (raises what update_options would, for each activity)
    return given
