"""Acting on every run a filter matches (``Client.batch``): cancel,
terminate or reset them at once, as an operator does after an incident
("reset every payment that failed since the bad deploy"), or change their
priority or fairness key ("move every open run of acme to priority 1").

The runs are chosen first (each workflow id's latest run that matches, as
``Client.list(latest=True)`` pages through them), then acted on, a few at a
time. Each action names the run it chose: a run that ended or was replaced
meanwhile is reported, not acted on in its successor's place. Running the
same batch again acts on what still matches, so a batch cut short (its
process killed) is finished by running it again. Imports the public client
API's pieces and errors only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from perdure import _history as h
from perdure._checks import check_name
from perdure._schedule_spec import SCHEDULE_WORKFLOW
from perdure._views import WorkflowExecution
from perdure.errors import WorkflowClosedError, WorkflowNotFoundError, WorkflowResetError

if TYPE_CHECKING:
    from perdure.client import Client

__all__ = [
    "ACTIONS",
    "RUN_OPTIONS",
    "BatchAction",
    "BatchResult",
    "batch_filters",
    "checked_options",
    "checked_run_options",
    "run_batch",
]

BatchAction = Literal["cancel", "terminate", "reset", "update_options"]
ACTIONS: tuple[BatchAction, ...] = ("cancel", "terminate", "reset", "update_options")
# What update_options changes (its new_options' keys): a run's inherited
# options, as WorkflowHandle.set_priority and set_fairness_key do.
RUN_OPTIONS = ("priority", "fairness_key")

PAGE = 500  # runs read per page while choosing
AT_ONCE = 8  # actions in flight


@dataclass(frozen=True)
class BatchResult:
    """What ``Client.batch`` did: the runs it chose, newest first, and for
    each workflow id whether it was acted on."""

    action: str
    matched: list[WorkflowExecution]
    """The runs the filter matched (each id's latest), newest first."""
    dry_run: bool = False
    """Nothing was done: ``matched`` is what would have been."""
    done: dict[str, str] = field(default_factory=dict)
    """Workflow id -> the run acted on (for a reset: the new run's id)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Workflow id -> why it was not acted on: since it was chosen, its run
    ended (cancel, terminate), was replaced by another (reset), or is gone."""
    failed: dict[str, str] = field(default_factory=dict)
    """Workflow id -> the error its action raised (a reset with no point
    to go back to, a history that cannot be read)."""


async def run_batch(
    client: Client,
    action: BatchAction,
    filters: dict[str, Any],
    reason: str | None,
    limit: int | None,
    dry_run: bool,
    new_options: dict[str, Any] | None = None,
) -> BatchResult:
    """Client.batch (its arguments checked there): choose, then act
    (update_options: with ``new_options``, checked_run_options')."""
    matched: list[WorkflowExecution] = []
    cursor: str | None = None
    # A schedule's own workflow is left alone unless its type is named: a
    # batch of "every open run" must not delete every schedule.
    schedules = filters["workflow"] == SCHEDULE_WORKFLOW
    while limit is None or len(matched) < limit:
        size = PAGE if limit is None else min(PAGE, limit - len(matched))
        page = await client.list(limit=size, after=cursor, latest=True, **filters)
        matched.extend(r for r in page if schedules or r.workflow_type != SCHEDULE_WORKFLOW)
        if len(page) < size:
            break
        cursor = page[-1].cursor
    if dry_run:
        return BatchResult(action, matched, dry_run=True)
    result = BatchResult(action, matched)
    room = asyncio.Semaphore(AT_ONCE)

    async def act(run: WorkflowExecution) -> None:
        handle = client.get_handle(run.id, run.run_id)
        async with room:
            try:
                if action == "cancel":
                    await handle.cancel(reason)
                    result.done[run.id] = run.run_id
                elif action == "terminate":
                    await handle.terminate(reason)
                    result.done[run.id] = run.run_id
                elif action == "update_options":
                    assert new_options is not None
                    if "priority" in new_options:
                        await handle.set_priority(new_options["priority"])
                    if "fairness_key" in new_options:
                        await handle.set_fairness_key(new_options["fairness_key"])
                    result.done[run.id] = run.run_id
                else:
                    new = await handle.reset(reason=reason)
                    result.done[run.id] = new.run_id or ""
            except WorkflowClosedError:
                result.skipped[run.id] = "it has ended"
            except WorkflowNotFoundError:
                result.skipped[run.id] = "it is gone"
            except WorkflowResetError as exc:
                latest = await _latest(client, run.id)
                if latest is not None and latest != run.run_id:
                    result.skipped[run.id] = f"it was replaced by run {latest}"
                else:
                    result.failed[run.id] = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # (each run's own error, reported; the rest go on)
                result.failed[run.id] = f"{type(exc).__name__}: {exc}"

    await asyncio.gather(*(act(run) for run in matched))
    return result


async def _latest(client: Client, workflow_id: str) -> str | None:
    """The run id of ``workflow_id``'s latest run (None: it has none)."""
    try:
        return (await client.get_handle(workflow_id).describe()).run_id
    except WorkflowNotFoundError:
        return None


def batch_filters(
    action: str,
    status: str | None,
    workflow: str | None,
    since: datetime | None,
    until: datetime | None,
    search: str | None,
    search_attributes: Mapping[str, Any] | None,
    retrying: bool,
    limit: int | None,
    build_id: str | None = None,
) -> dict[str, Any]:
    """The listing filters of a batch, checked: a batch names which runs it
    acts on (no filter at all is refused: ``status="running"`` says every
    open run; an empty string or dict is no filter); cancel, terminate and
    update_options act on open runs only."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int (or None for every match), not {limit!r}")
    # (An empty text filters nothing, as in list(): it names no runs.)
    status, workflow, search = status or None, workflow or None, search or None
    build_id = build_id or None
    named = (status, workflow, since, until, search, search_attributes or None, build_id)
    if all(f is None for f in named) and not retrying:
        raise ValueError(
            f"name which runs to {action}: give a filter (status, workflow, since, until,"
            " search, search_attributes, retrying, build_id); status='running' for every"
            " open run"
        )
    if action in ("cancel", "terminate", "update_options"):
        if status not in (None, "running"):
            done = {"cancel": "cancelled", "terminate": "terminated"}.get(action, "changed")
            raise ValueError(f"only open runs can be {done}: status must be 'running' (or None)")
        status = "running"
    return {
        "status": status,
        "workflow": workflow,
        "since": since,
        "until": until,
        "search": search,
        "search_attributes": search_attributes,
        "retrying": retrying,
        "build_id": build_id,
    }


def checked_options(
    new_options: Mapping[str, object] | None, known: tuple[str, ...]
) -> dict[str, Any]:
    """A batch's update_options' ``new_options`` as a dict: a mapping of at
    least one of the ``known`` options' names (a ValueError saying what is
    wrong); their values are the caller's to check."""
    if new_options is None or not isinstance(new_options, Mapping) or not new_options:
        raise ValueError(
            "update_options needs new_options: a mapping of the options to change "
            f"({', '.join(known)}), not {new_options!r}"
        )
    unknown = sorted(str(name) for name in new_options if name not in known)
    if unknown:
        raise ValueError(
            f"new_options names no option {', '.join(unknown)}: it takes {', '.join(known)}"
        )
    return {str(name): value for name, value in new_options.items()}


def checked_run_options(new_options: Mapping[str, object] | None) -> dict[str, Any]:
    """update_options' ``new_options``, checked: a mapping of at least one of
    RUN_OPTIONS, ``priority`` an int from 1 to 5, ``fairness_key`` a name or
    None (no key). A clear ValueError or TypeError saying what is wrong."""
    given = checked_options(new_options, RUN_OPTIONS)
    if "priority" in given:
        option = "new_options['priority']"
        if h.check_priority(option, given["priority"]) is None:
            raise TypeError(f"{option} must be an int from 1 (first) to 5 (last), not None")
    if "fairness_key" in given:
        check_name("new_options['fairness_key']", given["fairness_key"], none_means="no key")
    return given
