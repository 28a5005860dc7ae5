"""``POST /api/batch/{action}``: cancel, terminate or reset every run a
filter matches (``Client.batch``), and ``POST /api/batch/update-options``:
change the priority or fairness key of every open one; ``POST
/api/batch/activities/{action}``:
pause, unpause or reset every pending activity of the open runs a filter matches
(``Client.batch_activities``), and ``.../activities/update-options``: change
their options. With ``dry_run``, only say which. All need the ``admin`` role,
dry run or not: they name what to act on.

Imports fastapi, the public Client API, ``_deps``, ``_batch_models``,
``_activity_models`` (an unpause's or reset's jitter, as one activity's
route reads it), ``_models`` (the error body), the framework-free
``_query`` (the JSON views), the search attribute filters' terms
(``perdure._attrfilters``: the ``attr`` terms, read as the listing reads
them) and the build ids' (``perdure._checks``: ``build_id``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path

from perdure._attrfilters import parse_filter
from perdure._checks import build_problem
from perdure.client import Client
from perdure.server import _batch_models as bm
from perdure.server import _models as m
from perdure.server._activity_models import jitter
from perdure.server._deps import (
    activity_batch_request,
    activity_options_batch_request,
    batch_options_request,
    batch_request,
    body_doc,
    client_of,
    error_responses,
    parse_time,
    require_admin,
)
from perdure.server._query import ListQuery, activity_batch_json, batch_json

__all__ = ["router"]

router = APIRouter(prefix="/api/batch")

ClientDep = Annotated[Client, Depends(client_of)]
Action = Annotated[
    Literal["cancel", "terminate", "reset"],
    Path(description="What to do to each run: cancel, terminate or reset (another: 422)."),
]
ActivityAction = Annotated[
    Literal["pause", "unpause", "reset"],
    Path(description="What to do to each activity: pause, unpause or reset (another: 422)."),
]
BATCH_BODY = body_doc(
    bm.BatchRequest,
    "The filters (at least one), the reason recorded in each run's history, a limit, "
    "and dry_run to act on none.",
)
ACTIVITY_BATCH_BODY = body_doc(
    bm.ActivityBatchRequest,
    "The activity type and the filters of the open runs (at least one of them), "
    "reset_attempts (unpause only), keep_paused and clear_heartbeat_details (reset only), "
    "jitter_seconds (unpause and reset), a limit, and dry_run to act on none.",
)
ACTIVITY_OPTIONS_BATCH_BODY = body_doc(
    bm.ActivityOptionsBatchRequest,
    "The activity type and the filters of the open runs (at least one of them), the options "
    "to change (at least one; spans in seconds), a limit, and dry_run to act on none.",
)
OPTIONS_BATCH_BODY = body_doc(
    bm.BatchOptionsRequest,
    "The filters (at least one) of the open runs, the options to change (at least one), "
    "a limit, and dry_run to act on none.",
)
# (The routes' paths: "/{action}" takes one segment, so "/activities/pause"
# reaches the activities' route, whichever is declared first; but
# "/activities/{action}" takes "update-options" too, so the options' route,
# which has that path, is declared before it; as is "/update-options",
# before "/{action}".)


@router.post(
    "/update-options",
    response_model=bm.BatchOut,
    summary="Change the priority or fairness key of every open run a filter matches",
    dependencies=[Depends(require_admin)],
    responses=error_responses(401, 403, 422, 503),
    openapi_extra=OPTIONS_BATCH_BODY,
)
async def batch_options(
    client: ClientDep,
    body: Annotated[bm.BatchOptionsRequest, Depends(batch_options_request)],
) -> Any:
    """Change the options given in ``new_options`` (``priority``,
    ``fairness_key``: null takes the key away) of every open run the
    filters match (each workflow id's latest), as the routes of one run do:
    chosen first, then changed a few at a time by run id. A run that ended
    or is gone meanwhile is ``skipped``; one whose change raised is
    ``failed`` with its error, and the others go on (still a 200).
    ``dry_run``: only ``matched``. 422, before anything is chosen, for no
    filter, no option, an option's bad value, a status other than running,
    or a bad filter."""
    chosen = _named_runs(body, body.status or None, "change")
    try:
        result = await client.batch(
            "update_options",
            status=chosen.status,
            **_client_filters(chosen),
            new_options=body.new_options.given(),
            limit=body.limit,
            dry_run=body.dry_run,
        )
    except (TypeError, ValueError) as exc:  # (refused before choosing: an option, the status)
        raise HTTPException(422, str(exc)) from None
    return batch_json(result)


@router.post(
    "/{action}",
    response_model=bm.BatchOut,
    summary="Cancel, terminate or reset every run a filter matches",
    dependencies=[Depends(require_admin)],
    responses=error_responses(401, 403, 422, 503),
    openapi_extra=BATCH_BODY,
)
async def batch(
    client: ClientDep,
    action: Action,
    body: Annotated[bm.BatchRequest, Depends(batch_request)],
) -> Any:
    """Act on every run the filters match: each workflow id's latest run
    (cancel, terminate: open runs only), chosen first, then acted on a few at
    a time by run id. A run that ended or is gone meanwhile is ``skipped``;
    one whose action raised is ``failed`` with its error, and the others go
    on (still a 200). ``dry_run``: only ``matched``. 422 for no filter, a
    status other than running for cancel or terminate, or a bad filter."""
    chosen = _named_runs(body, body.status or None, action)
    if action in ("cancel", "terminate") and chosen.status not in (None, "running"):
        ended = "cancelled" if action == "cancel" else "terminated"
        raise HTTPException(
            422,
            f'only open runs can be {ended}: status must be "running" (or left out), '
            f"not {chosen.status!r}",
        )
    try:
        result = await client.batch(
            action,
            status=chosen.status,
            **_client_filters(chosen),
            reason=body.reason,
            limit=body.limit,
            dry_run=body.dry_run,
        )
    except (TypeError, ValueError) as exc:  # (an argument the Client refused: a bad reason)
        raise HTTPException(422, str(exc)) from None
    return batch_json(result)


@router.post(
    "/activities/update-options",
    response_model=bm.ActivityOptionsBatchOut,
    summary="Change the options of every pending activity of the open runs a filter matches",
    dependencies=[Depends(require_admin)],
    responses={
        **error_responses(401, 403, 422, 503),
        422: {
            "model": m.ErrorBody,
            "description": "A body that is not as documented, names no activities or changes "
            "nothing, or an option no activity can take (a task_queue with NUL). Nothing is "
            "changed",
        },
    },
    openapi_extra=ACTIVITY_OPTIONS_BATCH_BODY,
)
async def batch_activity_options(
    client: ClientDep,
    body: Annotated[bm.ActivityOptionsBatchRequest, Depends(activity_options_batch_request)],
) -> Any:
    """Change the options of every pending activity of ``activity_type``
    (left out: any) of the open runs the filters match (each workflow id's
    latest), paused or not, as the route of one by id does: only those
    given. Chosen first, as describe() shows them, then changed a few at a
    time by run id and activity id. One that ended meanwhile, or whose run
    did, is ``skipped``; one whose change was refused is ``failed`` with its
    error (a ``retry_max_attempts`` that allows it no attempt after those
    made while none runs; a retry policy the change makes that is not one),
    and the others go on (still a 200). ``dry_run``: only ``matched``. 422,
    before anything is chosen, for neither an activity type nor a filter of
    the runs, no option, an option's bad value, or a bad filter."""
    chosen = _activities(body, "change the options of")
    try:
        result = await client.batch_activities(
            "update_options",
            activity_type=body.activity_type or None,
            **_client_filters(chosen),
            new_options=body.update_options_args(),
            limit=body.limit,
            dry_run=body.dry_run,
        )
    except (TypeError, ValueError) as exc:  # (refused before choosing: an option, the type)
        raise HTTPException(422, str(exc)) from None
    return activity_batch_json(result)


@router.get("/activities/update-options", include_in_schema=False)
async def post_only() -> Any:
    """A GET (or HEAD) of the options' batch: 405, naming the method it
    takes, as the activity routes' own (no other route has the path, so the
    web UI's static files, mounted at ``/``, would answer 404 as for a file
    that is not there)."""
    raise HTTPException(405, "this route takes POST only", headers={"Allow": "POST"})


@router.post(
    "/activities/{action}",
    response_model=bm.ActivityBatchOut,
    summary="Pause, unpause or reset every pending activity of the open runs a filter matches",
    dependencies=[Depends(require_admin)],
    responses=error_responses(401, 403, 422, 503),
    openapi_extra=ACTIVITY_BATCH_BODY,
)
async def batch_activities(
    client: ClientDep,
    action: ActivityAction,
    body: Annotated[bm.ActivityBatchRequest, Depends(activity_batch_request)],
) -> Any:
    """Pause (or unpause, or reset) every pending activity of
    ``activity_type`` (left out: any) of the open runs the filters match
    (each workflow id's latest) that is not paused (or is; a reset: every
    one): chosen first, as describe() shows them, then acted on a few at a
    time by run id and activity id, as the route of one by id does. One that
    ended meanwhile, or whose run did, is ``skipped``; one whose action
    raised is ``failed`` with its error (an unpause with ``reset_attempts``
    while an attempt of it runs), and the others go on (still a 200).
    ``jitter_seconds``: each one's next attempt is due at a random moment
    within that span from now, drawn for each, not all at once.
    ``dry_run``: only ``matched``. 422 for neither an activity type nor a
    filter of the runs, an option of another action (``reset_attempts`` with
    pause, ``keep_paused`` with unpause, ``jitter_seconds`` with pause), or
    a bad filter."""
    chosen = _activities(body, action)
    try:
        result = await client.batch_activities(
            action,
            activity_type=body.activity_type or None,
            **_client_filters(chosen),
            reset_attempts=body.reset_attempts,
            keep_paused=body.keep_paused,
            clear_heartbeat_details=body.clear_heartbeat_details,
            jitter=jitter(body.jitter_seconds),
            limit=body.limit,
            dry_run=body.dry_run,
        )
    except (TypeError, ValueError) as exc:  # (what the Client refused: an option of another action)
        raise HTTPException(422, str(exc)) from None
    return activity_batch_json(result)


def _runs(body: bm.RunFilters, status: str | None) -> ListQuery:
    """The body's filters of the runs, checked as the listing checks its
    query (an empty text is none, as there; a build id no build can have:
    over 200 bytes, a NUL, is checked before anything is chosen); 422 if
    one is bad."""
    try:
        problem = build_problem("build_id", body.build_id or None, none_means="any build")
        if problem is not None:
            raise ValueError(problem)
        chosen = ListQuery(
            status=status,
            workflow_type=body.type or None,
            since=parse_time(body.since or None, "since"),
            until=parse_time(body.until or None, "until"),
            search=body.search or None,
            retrying=body.retrying,
            search_attributes=parse_filter(body.attr or [], "attr"),
            build_id=body.build_id or None,
        )
        chosen.check()
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return chosen


def _named_runs(body: bm.RunFilters, status: str | None, to: str) -> ListQuery:
    """The body's filters of the runs, checked (see _runs); 422 if they name
    no runs (every run there is)."""
    chosen = _runs(body, status)
    if not _named(chosen):
        raise HTTPException(
            422,
            f"name which runs to {to}: give a filter (status, type, since, until, search, "
            'attr, retrying, build_id); {"status": "running"} names every open run',
        )
    return chosen


def _activities(body: bm.ActivityFilters, to: str) -> ListQuery:
    """The body's filters of the open runs (only an open run has pending
    activities), checked; 422 if one is bad, or if neither they nor the
    activity type name which activities ``to`` act on."""
    chosen = _runs(body, None)
    if not body.activity_type and not _named(chosen):
        raise HTTPException(
            422,
            f"name which activities to {to}: give activity_type, or a filter of their runs "
            "(type, since, until, search, attr, retrying, build_id)",
        )
    return chosen


def _client_filters(chosen: ListQuery) -> dict[str, Any]:
    """The filters of the runs (but the status) as ``Client.batch`` and
    ``Client.batch_activities`` take them."""
    return {
        "workflow": chosen.workflow_type,
        "since": chosen.since,
        "until": chosen.until,
        "search": chosen.search,
        "search_attributes": chosen.search_attributes or None,
        "retrying": chosen.retrying,
        "build_id": chosen.build_id,
    }


def _named(chosen: ListQuery) -> bool:
    """Does the query name some runs (not every run there is)?"""
    named = (
        chosen.status,
        chosen.workflow_type,
        chosen.since,
        chosen.until,
        chosen.search,
        chosen.build_id,
    )
    return any(f is not None for f in named) or chosen.retrying or bool(chosen.search_attributes)
