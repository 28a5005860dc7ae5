"""The ``/api/schedules`` routes (perdure.schedules): list, describe, create,
pause, unpause, trigger, delete. Reading needs the ``read`` role, the rest
``admin``. A schedule's own workflow (``schedule:<id>``) is also reachable
through ``/api/workflows``.

Imports fastapi, the public Client API and ``_deps``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from perdure.client import Client
from perdure.server import _models as m
from perdure.server import _schedule_models as sm
from perdure.server._deps import (
    READ_ERRORS,
    WRITE_ERRORS,
    backfill_request,
    body_doc,
    client_of,
    error_responses,
    optional_body,
    require_admin,
    require_read,
    schedule_request,
    update_request,
)
from perdure.server._query import MAX_LIMIT

__all__ = ["router"]

router = APIRouter(prefix="/api/schedules")

ClientDep = Annotated[Client, Depends(client_of)]
Reader = [Depends(require_read)]
Admin = [Depends(require_admin)]
ScheduleId = Annotated[str, Path(description="The schedule id (may contain '/').")]
NOTE_BODY = body_doc(sm.NoteRequest, "Optional: why (shown with the schedule).", required=False)


@router.get(
    "",
    response_model=sm.ScheduleList,
    dependencies=Reader,
    responses=error_responses(401, 403, 422, 503),
)
async def list_schedules(
    client: ClientDep, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100
) -> Any:
    """The schedules there are (not deleted), newest first."""
    return {"items": [d.to_json() for d in await client.list_schedules(limit)]}


@router.post(
    "",
    status_code=201,
    response_model=sm.Schedule,
    dependencies=Admin,
    responses=error_responses(401, 403, 409, 422, 503),
    openapi_extra=body_doc(sm.ScheduleRequest),
)
async def create_schedule(
    client: ClientDep, body: Annotated[sm.ScheduleRequest, Depends(schedule_request)]
) -> Any:
    """Create a schedule: start ``workflow`` at each time of ``cron`` (or every
    ``every_seconds``). 409 if a schedule with this id exists; 422 for a bad
    expression, interval or time zone (the message says which)."""
    try:
        handle = await client.create_schedule(
            body.schedule_id,
            body.workflow,
            *body.args,
            cron=body.cron,
            every=None if body.every_seconds is None else timedelta(seconds=body.every_seconds),
            timezone=body.timezone,
            task_queue=body.task_queue,
            overlap=body.overlap,
            catchup_window=timedelta(seconds=body.catchup_window_seconds),
            jitter=timedelta(seconds=body.jitter_seconds),
            priority=body.priority,
            fairness_key=body.fairness_key,
            paused=body.paused,
            note=body.note,
            if_exists=body.if_exists,
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return (await handle.describe()).to_json()


async def _command(client: Client, schedule_id: str, request: Request, op: str) -> Any:
    handle = client.get_schedule(schedule_id)
    if op == "trigger":
        await handle.trigger()
    else:
        note = (await optional_body(request, sm.NoteRequest)).note
        await (handle.pause if op == "pause" else handle.unpause)(note)
    return {"id": schedule_id, "action": op}


@router.post(
    "/{schedule_id:path}/pause",
    status_code=202,
    response_model=m.Accepted,
    dependencies=Admin,
    responses=WRITE_ERRORS,
    openapi_extra=NOTE_BODY,
)
async def pause_schedule(client: ClientDep, schedule_id: ScheduleId, request: Request) -> Any:
    """Stop starting runs (at the schedule's next turn in a worker). 409 if deleted."""
    return await _command(client, schedule_id, request, "pause")


@router.post(
    "/{schedule_id:path}/unpause",
    status_code=202,
    response_model=m.Accepted,
    dependencies=Admin,
    responses=WRITE_ERRORS,
    openapi_extra=NOTE_BODY,
)
async def unpause_schedule(client: ClientDep, schedule_id: ScheduleId, request: Request) -> Any:
    """Start runs again, from the next time on (the paused times are not caught up)."""
    return await _command(client, schedule_id, request, "unpause")


@router.post(
    "/{schedule_id:path}/trigger",
    status_code=202,
    response_model=m.Accepted,
    dependencies=Admin,
    responses=WRITE_ERRORS,
)
async def trigger_schedule(client: ClientDep, schedule_id: ScheduleId, request: Request) -> Any:
    """Start a run now, beside the schedule's times (its overlap policy applies)."""
    return await _command(client, schedule_id, request, "trigger")


@router.post(
    "/{schedule_id:path}/update",
    status_code=202,
    response_model=m.Accepted,
    dependencies=Admin,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(sm.ScheduleUpdate),
)
async def update_schedule(
    client: ClientDep,
    schedule_id: ScheduleId,
    body: Annotated[sm.ScheduleUpdate, Depends(update_request)],
) -> Any:
    """Change what the schedule starts or when (from its next time on; applied
    at its next turn in a worker). 422 for a bad expression, interval or time
    zone; 409 if it was deleted."""

    def span(seconds: float | None) -> timedelta | None:
        return None if seconds is None else timedelta(seconds=seconds)

    try:
        await client.get_schedule(schedule_id).update(
            workflow=body.workflow,
            args=body.args,
            cron=body.cron,
            every=span(body.every_seconds),
            timezone=body.timezone,
            overlap=body.overlap,
            catchup_window=span(body.catchup_window_seconds),
            jitter=span(body.jitter_seconds),
            priority=body.priority,
            fairness_key=body.fairness_key,
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"id": schedule_id, "action": "update"}


@router.post(
    "/{schedule_id:path}/backfill",
    response_model=sm.Backfilled,
    dependencies=Admin,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(sm.BackfillRequest),
)
async def backfill_schedule(
    client: ClientDep,
    schedule_id: ScheduleId,
    body: Annotated[sm.BackfillRequest, Depends(backfill_request)],
) -> Any:
    """Start the runs of the schedule's times from ``start`` to ``end``, each
    time once (a time that has its run keeps it). 422 for a range of more than
    a thousand times; 409 if the schedule was deleted."""
    try:
        runs = await client.get_schedule(schedule_id).backfill(body.start, body.end)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"runs": [r.to_json() for r in runs]}


@router.get(
    "/{schedule_id:path}", response_model=sm.Schedule, dependencies=Reader, responses=READ_ERRORS
)
async def describe_schedule(client: ClientDep, schedule_id: ScheduleId) -> Any:
    """When it runs, its next time, the latest times it came due and their runs."""
    return (await client.get_schedule(schedule_id).describe()).to_json()


@router.delete(
    "/{schedule_id:path}", response_model=m.Accepted, dependencies=Admin, responses=WRITE_ERRORS
)
async def delete_schedule(client: ClientDep, schedule_id: ScheduleId) -> Any:
    """End the schedule at once; the runs it started go on. 409 if already deleted."""
    await client.get_schedule(schedule_id).delete()
    return {"id": schedule_id, "action": "delete"}
