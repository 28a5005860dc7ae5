"""What the ``/api`` routes depend on: the server's state (client and tokens), the
caller's role, lenient JSON bodies, times, and the documented error answers.

Imports fastapi, pydantic, the public Client API and
``_auth``/``_query``/``_models``/``_activity_models``/``_batch_models``/
``_build_models``/``_queue_models``/``_schedule_models``/``_sse``.
A role check raises 401 (no or unknown token) or 403 (read token, admin route).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Optional, TypeVar

from fastapi import Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from perdure.client import Client
from perdure.server import _activity_models as am
from perdure.server import _batch_models as bm
from perdure.server import _build_models as builds
from perdure.server import _models as m
from perdure.server import _schedule_models as sm
from perdure.server._auth import AuthConfig, Role
from perdure.server._query import parse_when
from perdure.server._queue_models import FairnessWeightBody, QueueLimitsBody
from perdure.server._sse import Feeds

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "BUILD_BODY",
    "CURRENT_BUILD_BODY",
    "FAIRNESS_KEY_BODY",
    "PRIORITY_BODY",
    "RAMPING_BUILD_BODY",
    "READ_ERRORS",
    "REASON_BODY",
    "START_BODY",
    "UPDATE_ERRORS",
    "WRITE_ERRORS",
    "RunId",
    "ServerState",
    "WorkflowId",
    "activity_batch_request",
    "activity_failure_request",
    "activity_options_batch_request",
    "backfill_request",
    "batch_options_request",
    "batch_request",
    "body_doc",
    "client_of",
    "complete_activity_request",
    "current_build_request",
    "error_response",
    "error_responses",
    "fail_activity_request",
    "fairness_key_request",
    "heartbeat_activity_request",
    "json_body",
    "optional_body",
    "parse_time",
    "priority_request",
    "ramping_build_request",
    "reason_of",
    "require_admin",
    "require_read",
    "role_of",
    "run_build_request",
    "schedule_request",
    "start_request",
    "state_of",
    "task_token_request",
    "update_request",
]

_bearer = HTTPBearer(auto_error=False, description="A read or admin token.")


@dataclass
class ServerState:
    client: Client
    auth: AuthConfig
    feeds: Feeds = field(default_factory=Feeds)  # the open event streams


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.perdure
    return state


def client_of(request: Request) -> Client:
    return state_of(request).client


def role_of(
    request: Request,
    credentials: Annotated[Optional[HTTPAuthorizationCredentials], Depends(_bearer)],
) -> Optional[Role]:
    """The caller's role; None if auth is on and no token was sent. A wrong token is 401."""
    auth = state_of(request).auth
    if not auth.enabled:
        return "admin"  # open API: loopback only, enforced at bind and on the Host header
    if credentials is None:
        return None
    role = auth.role_of(credentials.credentials)
    if role is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    return role


def require_read(role: Annotated[Optional[Role], Depends(role_of)]) -> Role:
    if role is None:
        raise HTTPException(
            401,
            "missing token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return role


def require_admin(role: Annotated[Role, Depends(require_read)]) -> Role:
    if role != "admin":
        raise HTTPException(403, "this token is read-only: this action needs an admin token")
    return role


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer with."""
    what = {
        401: "No token, or an invalid one",
        403: "A read-only token on a write route, or a cross-origin write",
        404: "No workflow with this id",
        409: "The run is closed, or the workflow id is already used",
        422: "Malformed body or query",
        503: "The database is unavailable",
    }
    return {c: {"model": m.ErrorBody, "description": what[c]} for c in codes}


READ_ERRORS = error_responses(401, 403, 404, 422, 503)
WorkflowId = Annotated[str, Path(description="The workflow id (may contain '/').")]
RunId = Annotated[
    Optional[str], Query(min_length=1, description="A run of the workflow; default: latest.")
]
WRITE_ERRORS = error_responses(401, 403, 404, 409, 422, 503)
UPDATE_ERRORS = {
    **WRITE_ERRORS,
    404: {
        "model": m.UpdateError,
        "description": "No workflow with this id; or (timed_out) no answer within the timeout: "
        "the request stays queued, send it again with its update_id",
    },
    409: {
        "model": m.UpdateError,
        "description": "The workflow rejected the update (rejected, message); or the run is "
        "closed, or ended without answering",
    },
}


def error_response(body: dict[str, Any], status: int) -> Response:
    """An error's JSON, ASCII only: the input it quotes may hold a lone
    surrogate, which UTF-8 cannot carry (rendering it had raised, and the
    caller got a 500 for its own bad input)."""
    text = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    return Response(text, status_code=status, media_type="application/json")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(raw: bytes) -> Any:
    """A body as JSON whatever its Content-Type (``curl -d`` says form-urlencoded,
    webhooks vary): empty is null, anything else must parse (ValueError if not)."""
    if not raw.strip():
        return None
    return json.loads(raw, parse_constant=_no_constant)


async def json_body(request: Request) -> Any:
    """The body as JSON (see ``_loads``); 422 if it does not parse."""
    try:
        return _loads(await request.body())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise HTTPException(422, f"the request body is not valid JSON: {exc}") from None


def required_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency reading a route's required body as ``model``: JSON whatever
    its Content-Type, as the signal route's is (``curl -d '{"workflow": ...}'``
    had been told its object was not "a valid dictionary"); errors as FastAPI
    reports a body's."""

    async def read(request: Request) -> M:
        try:
            body = _loads(await request.body())
        except ValueError as exc:
            error = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}
            raise RequestValidationError([{**error, "ctx": {"error": str(exc)}}]) from None
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            located = [{**e, "loc": ("body", *e["loc"])} for e in errors]
            raise RequestValidationError(located) from None

    return read


start_request = required_body(m.StartRequest)
priority_request = required_body(m.PriorityRequest)
fairness_key_request = required_body(m.FairnessKeyRequest)
run_build_request = required_body(builds.RunBuildRequest)
current_build_request = required_body(builds.CurrentBuildRequest)
ramping_build_request = required_body(builds.RampingBuildRequest)
schedule_request = required_body(sm.ScheduleRequest)
update_request = required_body(sm.ScheduleUpdate)
backfill_request = required_body(sm.BackfillRequest)
limits_request = required_body(QueueLimitsBody)
weight_request = required_body(FairnessWeightBody)
batch_request = required_body(bm.BatchRequest)
batch_options_request = required_body(bm.BatchOptionsRequest)
activity_batch_request = required_body(bm.ActivityBatchRequest)
activity_options_batch_request = required_body(bm.ActivityOptionsBatchRequest)
complete_activity_request = required_body(am.CompleteActivityRequest)
fail_activity_request = required_body(am.FailActivityRequest)
heartbeat_activity_request = required_body(am.HeartbeatActivityRequest)
activity_failure_request = required_body(am.ActivityFailureRequest)
task_token_request = required_body(am.TaskTokenRequest)


async def optional_body(request: Request, model: type[M]) -> M:
    """An optional JSON body (empty: ``{}``) read as ``model``; 422 saying
    which field is wrong (or that ``null`` or ``[]`` is not an object)."""
    raw = await request.body()
    try:
        return model.model_validate(await json_body(request) if raw.strip() else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("body", *first["loc"]))
        raise HTTPException(422, f"{where}: {first['msg']}") from None


async def reason_of(request: Request) -> Optional[str]:
    """The optional ``{"reason": ...}`` body of cancel and terminate."""
    return (await optional_body(request, m.ReasonRequest)).reason


def body_doc(
    schema: type[BaseModel] | None, description: str | None = None, *, required: bool = True
) -> dict[str, Any]:
    """A route's ``openapi_extra`` for a body FastAPI does not read itself (the
    routes read it as JSON whatever its Content-Type): ``schema`` None is any
    JSON value."""
    body: dict[str, Any] = {
        "required": required,
        "content": {
            "application/json": {"schema": {} if schema is None else schema.model_json_schema()}
        },
    }
    if description is not None:
        body["description"] = description
    return {"requestBody": body}


REASON_BODY = body_doc(
    m.ReasonRequest, "Optional; the reason is recorded in the history.", required=False
)
START_BODY = body_doc(m.StartRequest)
PRIORITY_BODY = body_doc(m.PriorityRequest)
FAIRNESS_KEY_BODY = body_doc(m.FairnessKeyRequest)
BUILD_BODY = body_doc(builds.RunBuildRequest)
CURRENT_BUILD_BODY = body_doc(builds.CurrentBuildRequest)
RAMPING_BUILD_BODY = body_doc(builds.RampingBuildRequest)


def parse_time(text: Optional[str], name: str) -> Optional[datetime]:
    if text is None:
        return None
    try:
        return parse_when(text, now=datetime.now(UTC))
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None
