"""The ``/api`` routes: each one is a few calls on the Client and a JSON view.

Imports fastapi, the public Client API, ``_deps`` (state, roles, bodies) and the
framework-free ``_query``. (The listing and the count: ``_listing_routes``.)
Auth: every route needs the ``read`` role except ``/api/health`` and
``/api/whoami``; start, signal, update, cancel, priority, build, terminate and
reset need ``admin``
(so do ``_batch_routes``' batches, and ``_activity_routes``' outcomes). Errors map
to status codes in ``app.py`` (not found 404, closed or id taken 409, bad input 422);
an update's rejection (409) and its timeout (404, as the state long-poll's) are
answered here, each with the request's ``update_id``.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import PlainTextResponse

from perdure._checks import MAX_NAME_BYTES
from perdure.client import Client
from perdure.errors import (
    PayloadCodecError,
    UpdateRejectedError,
    UpdateTimeoutError,
    WorkflowCancelledError,
    WorkflowClosedError,
    WorkflowFailedError,
    WorkflowTerminatedError,
)
from perdure.server import _build_models as builds
from perdure.server import _models as m
from perdure.server._auth import Role
from perdure.server._deps import (
    BUILD_BODY,
    FAIRNESS_KEY_BODY,
    PRIORITY_BODY,
    READ_ERRORS,
    REASON_BODY,
    START_BODY,
    UPDATE_ERRORS,
    WRITE_ERRORS,
    RunId,
    WorkflowId,
    body_doc,
    client_of,
    error_response,
    error_responses,
    fairness_key_request,
    json_body,
    optional_body,
    priority_request,
    reason_of,
    require_admin,
    require_read,
    role_of,
    run_build_request,
    start_request,
    state_of,
)
from perdure.server._metrics import CONTENT_TYPE, prometheus_text
from perdure.server._query import (
    description_json,
    final_description,
    outcome_json,
    rejected_update_json,
)

__all__ = ["MAX_RESULT_WAIT", "router"]

MAX_RESULT_WAIT = 60.0  # seconds a result long-poll may hold a request

router = APIRouter(prefix="/api")


ClientDep = Annotated[Client, Depends(client_of)]
Reader = [Depends(require_read)]
Admin = [Depends(require_admin)]


# ------------------------------------------------------------------ open routes


@router.get(
    "/health",
    response_model=m.Health,
    summary="Is the database reachable?",
    responses=error_responses(403, 503),
)
async def health(client: ClientDep) -> dict[str, Any]:
    await client.list(limit=1)
    return {"status": "ok"}


@router.get(
    "/whoami",
    response_model=m.WhoAmI,
    summary="The role of the sent token",
    responses=error_responses(401, 403),
    openapi_extra={"security": [{}]},  # the token is optional here
)
async def whoami(request: Request, role: Annotated[Optional[Role], Depends(role_of)]) -> Any:
    return {"role": role, "auth_required": state_of(request).auth.enabled}


@router.get(
    "/metrics",
    dependencies=Reader,
    summary="Prometheus metrics",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(401, 403, 503),
    },
)
async def metrics(client: ClientDep) -> Any:
    """The engine's gauges in Prometheus's text format: open and retrying
    runs, timers and the first one's lag, each queue's due and running tasks
    and its lag, live workers, and each worker build's open runs, live
    workers, ramp and whether it is current (see docs/operations.md#monitoring)."""
    text = prometheus_text(await client.stats(), await client.builds_by_queue())
    return PlainTextResponse(text, media_type=CONTENT_TYPE)


# ------------------------------------------------------------------ workflows


@router.post(
    "/workflows",
    status_code=201,
    response_model=m.StartResponse,
    dependencies=Admin,
    responses=error_responses(401, 403, 409, 422, 503),
    openapi_extra=START_BODY,
)
async def start_workflow(
    client: ClientDep, body: Annotated[m.StartRequest, Depends(start_request)]
) -> Any:
    """Start a workflow by type name with JSON arguments (409 if the id is taken);
    with ``debounce``, a burst of starts with one key makes one run, with the
    last start's arguments (Client.debounce)."""
    if body.debounce is not None:
        delay, max_delay = body.debounce.spans()
        handle = await client.debounce(
            body.workflow,
            *body.args,
            key=body.debounce.key,
            delay=delay,
            max_delay=max_delay,
            task_queue=body.task_queue,
            search_attributes=body.search_attributes,
            priority=body.priority,
            fairness_key=body.fairness_key,
        )
        return {"id": handle.id, "run_id": handle.run_id}
    handle = await client.start(
        body.workflow,
        *body.args,
        id=body.id,
        task_queue=body.task_queue,
        id_conflict=body.id_conflict,
        search_attributes=body.search_attributes,
        priority=body.priority,
        fairness_key=body.fairness_key,
    )
    return {"id": handle.id, "run_id": handle.run_id}


@router.get(
    "/workflows/{workflow_id:path}/history",
    response_model=list[dict[str, Any]],
    dependencies=Reader,
    responses=READ_ERRORS,
)
async def workflow_history(
    client: ClientDep,
    workflow_id: WorkflowId,
    run_id: RunId = None,
    after_seq: Annotated[int, Query(ge=0, description="Only events after this seq")] = 0,
    opened: Annotated[
        bool,
        Query(
            description="Open the payloads stored through codecs, for reading (the "
            "server's converter); false: the history as stored"
        ),
    ] = False,
) -> Any:
    """The event history exactly as ``handle.history()`` returns it (``perdure replay``
    reads this array); with ``opened``, its payloads opened for people to read."""
    events = await client.get_handle(workflow_id, run_id).history(after_seq=after_seq)
    if opened:
        return [client.converter.display(event, depth=3) for event in events]
    return events


@router.get(
    "/workflows/{workflow_id:path}/reset-points",
    response_model=m.ResetPointsOut,
    dependencies=Reader,
    responses=READ_ERRORS,
)
async def workflow_reset_points(
    client: ClientDep, workflow_id: WorkflowId, run_id: RunId = None
) -> Any:
    """The events a reset of the run may go back to (the first of each turn where
    nothing it had started was outstanding), and the one it goes back to by default."""
    found = await client.get_handle(workflow_id, run_id).reset_points()
    return {"points": found.points, "default": found.default}


@router.get(
    "/workflows/{workflow_id:path}/result",
    response_model=m.WorkflowResult,
    dependencies=Reader,
    responses=READ_ERRORS,
)
async def workflow_result(
    client: ClientDep,
    workflow_id: WorkflowId,
    run_id: RunId = None,
    timeout: Annotated[
        float, Query(ge=0, le=MAX_RESULT_WAIT, description="Seconds to wait for the end")
    ] = 0.0,
) -> Any:
    """The outcome (of the run it continued as new into, if it did); with ``timeout``, a
    long-poll that answers as soon as the run ends."""
    try:
        await client.get_handle(workflow_id, run_id).result(timeout=timeout)
    except (TimeoutError, WorkflowFailedError, WorkflowCancelledError, WorkflowTerminatedError):
        pass  # the description below says which
    return outcome_json(await final_description(client, workflow_id, run_id))


@router.get(
    "/workflows/{workflow_id:path}/state/{key}",
    response_model=m.StateValue,
    dependencies=Reader,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def workflow_state(
    client: ClientDep,
    workflow_id: WorkflowId,
    key: Annotated[str, Path(min_length=1, max_length=512)],
    run_id: RunId = None,
    timeout: Annotated[
        float, Query(ge=0, le=MAX_RESULT_WAIT, description="Seconds to wait for the key")
    ] = 0.0,
) -> Any:
    """What the run published under ``key`` (in it, or the runs it continued
    as new in); with ``timeout``, a long-poll that answers as soon as it is
    published (``handle.wait_state``). 404 if it is not there (yet), 409 if
    the run ended without it."""
    try:
        await client.get_handle(workflow_id, run_id).wait_state(key, timeout)
    except TimeoutError:
        raise HTTPException(
            404, f"workflow {workflow_id!r} has not published state {key!r}"
        ) from None
    except WorkflowClosedError as exc:
        raise HTTPException(409, str(exc)) from None
    except PayloadCodecError:
        pass  # (there, but sealed with keys the server lacks: shown as stored)
    # As a description shows it (a sealed value opened if the server can);
    # the id's latest run if the key came in a run this one continued into.
    for handle in (client.get_handle(workflow_id, run_id), client.get_handle(workflow_id)):
        state = (await handle.describe()).state
        if isinstance(state, dict) and key in state:
            return {"id": workflow_id, "key": key, "value": state[key]}
    raise HTTPException(404, f"workflow {workflow_id!r} has not published state {key!r}")


@router.post(
    "/workflows/{workflow_id:path}/signals/{name}",
    status_code=202,
    response_model=m.Accepted,
    dependencies=Admin,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(
        None, "The signal's payload: any JSON value (empty body: null).", required=False
    ),
)
async def signal_workflow(
    request: Request,
    client: ClientDep,
    workflow_id: WorkflowId,
    name: Annotated[str, Path(min_length=1, max_length=512)],
    run_id: RunId = None,
) -> Any:
    """Deliver a signal; the request body (any JSON) is its payload. 409 if closed."""
    payload = await json_body(request)
    try:
        await client.get_handle(workflow_id, run_id).signal(name, payload)
    except ValueError as exc:  # (a name the client refuses: perdure.update:..., say)
        raise HTTPException(422, str(exc)) from None
    return {"id": workflow_id, "action": f"signal {name}"}


@router.post(
    "/workflows/{workflow_id:path}/updates/{name}",
    response_model=m.UpdateAnswer,
    dependencies=Admin,
    responses=UPDATE_ERRORS,
    openapi_extra=body_doc(
        None, "The update's payload: any JSON value (empty body: null).", required=False
    ),
)
async def update_workflow(
    request: Request,
    client: ClientDep,
    workflow_id: WorkflowId,
    name: Annotated[str, Path(min_length=1, max_length=512)],
    run_id: RunId = None,
    update_id: Annotated[
        Optional[str],
        Query(
            min_length=1,
            max_length=MAX_NAME_BYTES,
            description="The request's id; send it again with the same one after a timeout "
            "for its answer (it is not delivered twice). Default: a new one.",
        ),
    ] = None,
    timeout: Annotated[
        float, Query(ge=0, le=MAX_RESULT_WAIT, description="Seconds to wait for the answer")
    ] = MAX_RESULT_WAIT,
) -> Any:
    """Send an update (``handle.update``); the request body (any JSON) is its
    payload. Answers with what the workflow gave ``request.reply()``; 409 with
    ``rejected`` and its ``message`` if it called ``request.reject()``; 404
    with ``timed_out`` if no answer came within ``timeout`` (the request stays
    queued: send it again with its ``update_id``); 409 if the run has ended,
    or ends without answering."""
    payload = await json_body(request)
    handle = client.get_handle(workflow_id, run_id)
    try:
        sent = await handle.start_update(name, payload, update_id=update_id)
        answer = await sent.result(timeout)
    except UpdateRejectedError as exc:
        rejected = rejected_update_json(workflow_id, exc)
        return error_response({"detail": str(exc), **rejected}, 409)
    except UpdateTimeoutError as exc:
        detail = (
            f"workflow {workflow_id!r} did not answer update {name!r} within {timeout:g}s; "
            f"the request stays queued: send it again with update_id={exc.update_id} for its "
            f"answer"
        )
        body = {"detail": detail, "id": workflow_id, "update_id": exc.update_id, "timed_out": True}
        return error_response(body, 404)
    return {"id": workflow_id, "update_id": sent.id, "result": answer}


@router.post(
    "/workflows/{workflow_id:path}/cancel",
    status_code=202,
    response_model=m.Accepted,
    dependencies=Admin,
    responses=WRITE_ERRORS,
    openapi_extra=REASON_BODY,
)
async def cancel_workflow(
    client: ClientDep,
    workflow_id: WorkflowId,
    request: Request,
    run_id: RunId = None,
) -> Any:
    """Ask the run to cancel (it may compensate first). 409 if closed."""
    await client.get_handle(workflow_id, run_id).cancel(await reason_of(request))
    return {"id": workflow_id, "action": "cancel"}


@router.post(
    "/workflows/{workflow_id:path}/priority",
    status_code=202,
    response_model=m.Accepted,
    dependencies=Admin,
    responses=WRITE_ERRORS,
    openapi_extra=PRIORITY_BODY,
)
async def set_workflow_priority(
    client: ClientDep,
    workflow_id: WorkflowId,
    body: Annotated[m.PriorityRequest, Depends(priority_request)],
    run_id: RunId = None,
) -> Any:
    """Change the open run's priority: its queued tasks move in their queues'
    backlogs, and what it starts next inherits it. 409 if closed."""
    await client.get_handle(workflow_id, run_id).set_priority(body.priority)
    return {"id": workflow_id, "action": f"priority {body.priority}"}


@router.post(
    "/workflows/{workflow_id:path}/fairness-key",
    status_code=202,
    response_model=m.Accepted,
    dependencies=Admin,
    responses=WRITE_ERRORS,
    openapi_extra=FAIRNESS_KEY_BODY,
)
async def set_workflow_fairness_key(
    client: ClientDep,
    workflow_id: WorkflowId,
    body: Annotated[m.FairnessKeyRequest, Depends(fairness_key_request)],
    run_id: RunId = None,
) -> Any:
    """Change whose work the open run is (``fairness_key``; ``null``: no
    key): its queued tasks take the new key's turn in their queues, and
    what it starts next inherits it. 409 if closed."""
    key = body.fairness_key
    await client.get_handle(workflow_id, run_id).set_fairness_key(key)
    return {
        "id": workflow_id,
        "action": "no fairness key" if key is None else f"fairness key {key}",
    }


@router.post(
    "/workflows/{workflow_id:path}/build",
    status_code=202,
    response_model=m.Accepted,
    dependencies=Admin,
    responses=WRITE_ERRORS,
    openapi_extra=BUILD_BODY,
)
async def set_workflow_build(
    client: ClientDep,
    workflow_id: WorkflowId,
    body: Annotated[builds.RunBuildRequest, Depends(run_build_request)],
    run_id: RunId = None,
) -> Any:
    """Pin the open run to a worker build (``build_id``), or unpin it
    (``null``): its next turns go to that build's workers only, a turn in
    flight elsewhere is run again there. Follows continue-as-new, as a
    signal does. 409 if closed."""
    await client.get_handle(workflow_id, run_id).set_build_id(body.build_id)
    action = "unpin" if body.build_id is None else f"build {body.build_id}"
    return {"id": workflow_id, "action": action}


@router.post(
    "/workflows/{workflow_id:path}/terminate",
    response_model=m.Accepted,
    dependencies=Admin,
    responses=WRITE_ERRORS,
    openapi_extra=REASON_BODY,
)
async def terminate_workflow(
    client: ClientDep,
    workflow_id: WorkflowId,
    request: Request,
    run_id: RunId = None,
) -> Any:
    """End the run at once, running no more workflow code. 409 if closed."""
    await client.get_handle(workflow_id, run_id).terminate(await reason_of(request))
    return {"id": workflow_id, "action": "terminate"}


@router.post(
    "/workflows/{workflow_id:path}/reset",
    response_model=m.ResetDone,
    dependencies=Admin,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(
        m.ResetRequest, "Optional: the point to go back to, and why.", required=False
    ),
)
async def reset_workflow(
    client: ClientDep,
    workflow_id: WorkflowId,
    request: Request,
    run_id: RunId = None,
) -> Any:
    """Run the workflow again from a point of its latest run, in a new run that keeps
    the events before it (their steps are not run again). 409 if that point cannot
    be used (the message names the nearest that can), or the run is not the latest."""
    body = await optional_body(request, m.ResetRequest)
    handle, at_seq = await client.get_handle(workflow_id, run_id)._reset(body.to_event, body.reason)
    return {"id": handle.id, "run_id": handle.run_id, "at_seq": at_seq}


@router.get(
    "/workflows/{workflow_id:path}",
    response_model=m.WorkflowDescription,
    dependencies=Reader,
    responses=READ_ERRORS,
)
async def describe_workflow(
    client: ClientDep, workflow_id: WorkflowId, run_id: RunId = None
) -> Any:
    """Status, input, result or failure, published state and pending work."""
    return description_json(await client.get_handle(workflow_id, run_id).describe())
