"""The activity routes. ``/api/activities/...``: give the outcome of an
activity attempt that awaits completion (its function called
``activity.raise_complete_async()``), named by its task token: ``complete``
with a result, ``fail`` with an ApplicationError, ``report-cancellation``
once a heartbeat said it is to stop; or say it is alive with ``heartbeat``.
``/api/workflows/{id}/activities/{activity_id}/complete|fail``: end a
run's pending activity now, by id, whatever it waits for (an operator
settling a step by hand, as Temporal's complete and fail by id);
``.../heartbeat|report-cancellation`` by id, for an attempt awaiting
completion; ``.../pause|unpause``: hold its attempts back, and let them go;
``.../reset``: count its attempts from 1 again, the next one due now;
``.../options``: change its timeouts, retry policy or task queue in flight.
They need the ``admin`` role, as a signal does: a webhook that ends a step
is what a signal's webhook is to a run.

Imports fastapi, the public Client API and errors, and ``_deps``. A token
that is not one is a 422 saying why; what can no longer end
(``AsyncActivityNotFoundError``) a 404 with its message; a heartbeat of an
attempt that is to stop (``AsyncActivityCancelledError``: its workflow
cancelled it, an operator paused or reset its activity) a 409, as
is an unpause that cannot count attempts from 1 again under a running one;
options that change nothing, make no retry policy or allow no more attempts
(update_options' ValueError) a 422.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from perdure.client import AsyncActivityHandle, Client
from perdure.errors import (
    ApplicationError,
    AsyncActivityCancelledError,
    AsyncActivityNotFoundError,
    PerdureError,
)
from perdure.server import _activity_models as am
from perdure.server import _models as m
from perdure.server._deps import (
    RunId,
    WorkflowId,
    activity_failure_request,
    body_doc,
    client_of,
    complete_activity_request,
    error_responses,
    fail_activity_request,
    heartbeat_activity_request,
    optional_body,
    require_admin,
    task_token_request,
)

__all__ = ["reset_router", "router"]

router = APIRouter(prefix="/api")
# The reset by id, asked before the run routes (app.py): the run's own reset,
# ``/workflows/{workflow_id:path}/reset``, would take ".../activities/2/reset"
# as the reset of a run "ID/activities/2". Its activity_id is digits only, so
# that a signal or update named "reset" (".../activities/signals/reset") still
# reaches its route, as every other path does.
reset_router = APIRouter(prefix="/api")

ClientDep = Annotated[Client, Depends(client_of)]
Admin = [Depends(require_admin)]
ERRORS: dict[int | str, dict[str, Any]] = {
    **error_responses(401, 403, 422, 503),
    404: {
        "model": m.ErrorBody,
        "description": "The token names no attempt that can still end: it ended already, a "
        "timeout passed and it was retried with a new token, or its run ended",
    },
}


def _handle(client: Client, task_token: str) -> AsyncActivityHandle:
    try:
        return client.get_async_activity_handle(task_token)
    except (TypeError, ValueError) as exc:
        raise HTTPException(422, f"task_token: {exc}") from None


async def _ended(outcome: Awaitable[object]) -> dict[str, bool]:
    """Await one of a handle's calls: 404 if the attempt can no longer end."""
    try:
        await outcome
    except AsyncActivityNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"ok": True}


async def _reported(outcome: Awaitable[str | None]) -> dict[str, Any]:
    """Await report_cancellation: what it did (404 as _ended)."""
    try:
        stopped = await outcome
    except AsyncActivityNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"ok": True, "stopped": stopped}


@router.post(
    "/activities/complete",
    response_model=am.ActivityDone,
    dependencies=Admin,
    responses=ERRORS,
    openapi_extra=body_doc(am.CompleteActivityRequest),
)
async def complete_activity(
    client: ClientDep,
    body: Annotated[am.CompleteActivityRequest, Depends(complete_activity_request)],
) -> Any:
    """Record the result of the attempt the token names; the workflow's
    await returns it. The first outcome wins: 404 for any later one."""
    return await _ended(_handle(client, body.task_token).complete(body.result))


@router.post(
    "/activities/fail",
    response_model=am.ActivityDone,
    dependencies=Admin,
    responses=ERRORS,
    openapi_extra=body_doc(am.FailActivityRequest),
)
async def fail_activity(
    client: ClientDep,
    body: Annotated[am.FailActivityRequest, Depends(fail_activity_request)],
) -> Any:
    """Fail the attempt the token names with an ApplicationError: retried
    per the activity's retry policy (with a new token) unless
    ``non_retryable``; then the workflow's await raises ActivityError."""
    handle = _handle(client, body.task_token)
    error = ApplicationError(body.message, type=body.type, non_retryable=body.non_retryable)
    return await _ended(handle.fail(error))


@router.post(
    "/activities/heartbeat",
    response_model=am.ActivityDone,
    dependencies=Admin,
    responses={
        **ERRORS,
        409: {
            "model": m.ErrorBody,
            "description": "The attempt is to stop (its workflow cancelled it, or an "
            "operator paused or reset its activity; the message says which): stop its work "
            "and POST /api/activities/report-cancellation",
        },
    },
    openapi_extra=body_doc(am.HeartbeatActivityRequest),
)
async def heartbeat_activity(
    client: ClientDep,
    body: Annotated[am.HeartbeatActivityRequest, Depends(heartbeat_activity_request)],
) -> Any:
    """Say the attempt the token names is alive, with progress ``details``
    (a retry reads them as ``activity.info().heartbeat_details``): with a
    heartbeat_timeout, its deadline moves to that long from now. 409 if it
    is to stop: its workflow cancelled it, or an operator paused or reset
    its activity."""
    try:
        return await _ended(_handle(client, body.task_token).heartbeat(body.details))
    except AsyncActivityCancelledError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post(
    "/activities/report-cancellation",
    response_model=am.CancellationReported,
    dependencies=Admin,
    responses=ERRORS,
    openapi_extra=body_doc(am.TaskTokenRequest),
)
async def report_activity_cancellation(
    client: ClientDep,
    body: Annotated[am.TaskTokenRequest, Depends(task_token_request)],
) -> Any:
    """Record that the attempt the token names stopped, as it was asked to
    (what to send after a heartbeat's 409): cancelled by its workflow, it
    ends as cancelled; stopped by an operator's pause or reset, it is
    handed back, not counted, and the next attempt starts once the activity
    is unpaused (after a reset, at once, as attempt 1)."""
    return await _reported(_handle(client, body.task_token).report_cancellation())


# ------------------------------------------------------------ by id

BY_ID_ERRORS: dict[int | str, dict[str, Any]] = {
    **error_responses(401, 403, 422, 503),
    404: {
        "model": m.ErrorBody,
        "description": "No such run, its run has ended, or the activity is not pending in it",
    },
}
ActivityId = Annotated[
    int, Path(ge=1, le=2**31 - 1, description="The activity's id in the run (activity_id).")
]


def _by_id(
    client: Client, workflow_id: str, activity_id: int, run_id: str | None
) -> AsyncActivityHandle:
    return client.get_async_activity_handle(
        workflow_id=workflow_id, activity_id=activity_id, run_id=run_id
    )


@router.post(
    "/workflows/{workflow_id:path}/activities/{activity_id}/complete",
    response_model=am.ActivityDone,
    dependencies=Admin,
    responses=BY_ID_ERRORS,
    openapi_extra=body_doc(am.ActivityResultRequest, required=False),
)
async def complete_activity_by_id(
    request: Request,
    client: ClientDep,
    workflow_id: WorkflowId,
    activity_id: ActivityId,
    run_id: RunId = None,
) -> Any:
    """End the run's pending activity now with ``result`` (as Temporal's
    complete by id), whatever it waits for: its next attempt, a worker, an
    attempt running on a worker (whose own result is then refused), or a
    completion by token. The workflow's await returns it. An empty body:
    null."""
    body = await optional_body(request, am.ActivityResultRequest)
    return await _ended(_by_id(client, workflow_id, activity_id, run_id).complete(body.result))


@router.post(
    "/workflows/{workflow_id:path}/activities/{activity_id}/fail",
    response_model=am.ActivityDone,
    dependencies=Admin,
    responses=BY_ID_ERRORS,
    openapi_extra=body_doc(am.ActivityFailureRequest),
)
async def fail_activity_by_id(
    client: ClientDep,
    workflow_id: WorkflowId,
    activity_id: ActivityId,
    body: Annotated[am.ActivityFailureRequest, Depends(activity_failure_request)],
    run_id: RunId = None,
) -> Any:
    """End the run's pending activity now with an ApplicationError, not
    retried, whatever it waits for; the workflow's await raises
    ActivityError."""
    error = ApplicationError(body.message, type=body.type, non_retryable=True)
    return await _ended(_by_id(client, workflow_id, activity_id, run_id).fail(error))


@router.post(
    "/workflows/{workflow_id:path}/activities/{activity_id}/heartbeat",
    response_model=am.ActivityDone,
    dependencies=Admin,
    responses={
        **BY_ID_ERRORS,
        404: {
            "model": m.ErrorBody,
            "description": "No such run, its run has ended, or no attempt of the activity "
            "awaits completion (one running on a worker heartbeats itself)",
        },
        409: {
            "model": m.ErrorBody,
            "description": "The attempt is to stop (its workflow cancelled it, or an "
            "operator paused or reset its activity): stop its work and POST "
            ".../report-cancellation",
        },
    },
    openapi_extra=body_doc(am.HeartbeatDetailsRequest, required=False),
)
async def heartbeat_activity_by_id(
    request: Request,
    client: ClientDep,
    workflow_id: WorkflowId,
    activity_id: ActivityId,
    run_id: RunId = None,
) -> Any:
    """Say the run's activity attempt that awaits completion is alive, by
    id (for a system that knows the ids rather than the task token), with
    progress ``details``; as ``POST /api/activities/heartbeat``. 409 if it
    is to stop (cancelled, paused or reset). An empty body: null details."""
    body = await optional_body(request, am.HeartbeatDetailsRequest)
    handle = _by_id(client, workflow_id, activity_id, run_id)
    try:
        return await _ended(handle.heartbeat(body.details))
    except AsyncActivityCancelledError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post(
    "/workflows/{workflow_id:path}/activities/{activity_id}/report-cancellation",
    response_model=am.CancellationReported,
    dependencies=Admin,
    responses=BY_ID_ERRORS,
)
async def report_activity_cancellation_by_id(
    client: ClientDep,
    workflow_id: WorkflowId,
    activity_id: ActivityId,
    run_id: RunId = None,
) -> Any:
    """Record that the run's activity attempt that awaits completion
    stopped, as it was asked to, by id (what to send after a heartbeat's
    409); as ``POST /api/activities/report-cancellation``."""
    return await _reported(_by_id(client, workflow_id, activity_id, run_id).report_cancellation())


@router.post(
    "/workflows/{workflow_id:path}/activities/{activity_id}/pause",
    response_model=am.ActivityDone,
    dependencies=Admin,
    responses=BY_ID_ERRORS,
)
async def pause_activity_by_id(
    client: ClientDep,
    workflow_id: WorkflowId,
    activity_id: ActivityId,
    run_id: RunId = None,
) -> Any:
    """Pause the run's pending activity (as Temporal's activity pause): no
    attempt of it starts until it is unpaused. An attempt running now runs
    on (its result is delivered, a failure not retried; one that heartbeats
    stops at its next heartbeat). Its timeouts still run. Idempotent."""
    return await _ended(_by_id(client, workflow_id, activity_id, run_id).pause())


@router.post(
    "/workflows/{workflow_id:path}/activities/{activity_id}/unpause",
    response_model=am.ActivityDone,
    dependencies=Admin,
    responses={
        **BY_ID_ERRORS,
        409: {
            "model": m.ErrorBody,
            "description": "reset_attempts while an attempt of it runs: it stays paused",
        },
    },
    openapi_extra=body_doc(am.UnpauseActivityRequest, required=False),
)
async def unpause_activity_by_id(
    request: Request,
    client: ClientDep,
    workflow_id: WorkflowId,
    activity_id: ActivityId,
    run_id: RunId = None,
) -> Any:
    """Unpause the run's pending activity: its next attempt is due now (with
    ``jitter_seconds``, at a random moment within that span from now), its
    backoff dropped (``reset_attempts``: counted from 1 again). Unpausing
    one that is not paused does nothing. An empty body: no reset, due now."""
    body = await optional_body(request, am.UnpauseActivityRequest)
    handle = _by_id(client, workflow_id, activity_id, run_id)
    unpause = handle.unpause(
        reset_attempts=body.reset_attempts, jitter=am.jitter(body.jitter_seconds)
    )
    try:
        return await _ended(unpause)
    except PerdureError as exc:
        raise HTTPException(409, str(exc)) from None


@reset_router.post(
    "/workflows/{workflow_id:path}/activities/{activity_id:int}/reset",
    response_model=am.ActivityDone,
    dependencies=Admin,
    responses=BY_ID_ERRORS,
    openapi_extra=body_doc(am.ResetActivityRequest, required=False),
)
async def reset_activity_by_id(
    request: Request,
    client: ClientDep,
    workflow_id: WorkflowId,
    activity_id: ActivityId,
    run_id: RunId = None,
) -> Any:
    """Reset the run's pending activity (as Temporal's activity reset): its
    attempts are counted from 1 again and its backoff dropped, so a waiting
    one's next attempt is due now (with ``jitter_seconds``, at a random
    moment within that span from now); a paused one is unpaused too, unless
    ``keep_paused``. An attempt running now is stopped at its next
    heartbeat; one that does not heartbeat runs on, and if it fails or is
    lost, the next attempt starts at once as attempt 1 (the description's
    ``reset_requested`` until then). Heartbeat details are kept unless
    ``clear_heartbeat_details``. Not recorded in the history. An empty
    body: neither, due now."""
    body = await optional_body(request, am.ResetActivityRequest)
    handle = _by_id(client, workflow_id, activity_id, run_id)
    reset = handle.reset(
        keep_paused=body.keep_paused,
        clear_heartbeat_details=body.clear_heartbeat_details,
        jitter=am.jitter(body.jitter_seconds),
    )
    return await _ended(reset)


@router.post(
    "/workflows/{workflow_id:path}/activities/{activity_id}/options",
    response_model=am.ActivityDone,
    dependencies=Admin,
    responses={
        **BY_ID_ERRORS,
        422: {
            "model": m.ErrorBody,
            "description": "A body that is not as documented, or one that changes nothing; a "
            "retry policy the change makes that is not one (max interval below the initial "
            "interval); a retry_max_attempts that allows no attempt after those made while "
            "none runs. Nothing is changed",
        },
    },
    openapi_extra=body_doc(am.ActivityOptionsRequest),
)
async def update_activity_options_by_id(
    request: Request,
    client: ClientDep,
    workflow_id: WorkflowId,
    activity_id: ActivityId,
    run_id: RunId = None,
) -> Any:
    """Change the run's pending activity's options in flight (as Temporal's
    activity update-options): only those given; the description shows them
    as they stand. A retry waiting out its backoff waits the new policy's
    delay; an attempt running now keeps its timeouts, and its failure is
    retried, or not, by the new policy. Not recorded in the history."""
    body = await optional_body(request, am.ActivityOptionsRequest)
    handle = _by_id(client, workflow_id, activity_id, run_id)
    change = handle.update_options(**body.update_options_args())
    try:
        return await _ended(change)
    except ValueError as exc:  # (nothing to change, or what it makes is refused: unchanged)
        raise HTTPException(422, str(exc)) from None


@router.get("/activities/complete", include_in_schema=False)
@router.get("/activities/fail", include_in_schema=False)
@router.get("/activities/heartbeat", include_in_schema=False)
@router.get("/activities/report-cancellation", include_in_schema=False)
async def post_only() -> Any:
    """A GET (or HEAD) of a POST route: 405, naming the method it takes. (No
    other route has the path, so the web UI's static files, mounted at
    ``/``, would answer 404 as for a file that is not there.)"""
    raise HTTPException(405, "this route takes POST only", headers={"Allow": "POST"})
