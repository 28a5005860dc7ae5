"""``POST /api/batch/{action}``: cancel, terminate or reset every run a
filter matches (``Client.batch``), or, with ``dry_run``, only say which.
Needs the ``admin`` role, dry run or not: it names runs to act on.

Imports fastapi, the public Client API, ``_deps``, the framework-free
``_query`` (its JSON view) and the search attributes' rules
(``perdure._attributes``: the ``attr`` terms, read as the listing reads them).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path

from perdure._attributes import parse_filter
from perdure.client import Client
from perdure.server import _models as m
from perdure.server._deps import (
    batch_request,
    body_doc,
    client_of,
    error_responses,
    parse_time,
    require_admin,
)
from perdure.server._query import ListQuery, batch_json

__all__ = ["router"]

router = APIRouter(prefix="/api/batch")

ClientDep = Annotated[Client, Depends(client_of)]
Action = Annotated[
    Literal["cancel", "terminate", "reset"],
    Path(description="What to do to each run: cancel, terminate or reset (another: 422)."),
]
BATCH_BODY = body_doc(
    m.BatchRequest,
    "The filters (at least one), the reason recorded in each run's history, a limit, "
    "and dry_run to act on none.",
)


@router.post(
    "/{action}",
    response_model=m.BatchOut,
    summary="Cancel, terminate or reset every run a filter matches",
    dependencies=[Depends(require_admin)],
    responses=error_responses(401, 403, 422, 503),
    openapi_extra=BATCH_BODY,
)
async def batch(
    client: ClientDep,
    action: Action,
    body: Annotated[m.BatchRequest, Depends(batch_request)],
) -> Any:
    """Act on every run the filters match: each workflow id's latest run
    (cancel, terminate: open runs only), chosen first, then acted on a few at
    a time by run id. A run that ended or is gone meanwhile is ``skipped``;
    one whose action raised is ``failed`` with its error, and the others go
    on (still a 200). ``dry_run``: only ``matched``. 422 for no filter, a
    status other than running for cancel or terminate, or a bad filter."""
    chosen = _filters(action, body)
    try:
        result = await client.batch(
            action,
            status=chosen.status,
            workflow=chosen.workflow_type,
            since=chosen.since,
            until=chosen.until,
            search=chosen.search,
            search_attributes=chosen.search_attributes or None,
            retrying=chosen.retrying,
            reason=body.reason,
            limit=body.limit,
            dry_run=body.dry_run,
        )
    except (TypeError, ValueError) as exc:  # (an argument the Client refused: a bad reason)
        raise HTTPException(422, str(exc)) from None
    return batch_json(result)


def _filters(action: str, body: m.BatchRequest) -> ListQuery:
    """The body's filters, checked as the listing checks its query, and in
    this API's words: at least one (an empty text is none, as in the
    listing); cancel and terminate act on open runs only. 422 if not."""
    try:
        chosen = ListQuery(
            status=body.status or None,
            workflow_type=body.type or None,
            since=parse_time(body.since or None, "since"),
            until=parse_time(body.until or None, "until"),
            search=body.search or None,
            retrying=body.retrying,
            search_attributes=parse_filter(body.attr or [], "attr"),
        )
        chosen.check()
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    named = (chosen.status, chosen.workflow_type, chosen.since, chosen.until, chosen.search)
    if all(f is None for f in named) and not chosen.retrying and not chosen.search_attributes:
        raise HTTPException(
            422,
            f"name which runs to {action}: give a filter (status, type, since, until, search, "
            'attr, retrying); {"status": "running"} names every open run',
        )
    if action in ("cancel", "terminate") and chosen.status not in (None, "running"):
        ended = "cancelled" if action == "cancel" else "terminated"
        raise HTTPException(
            422,
            f'only open runs can be {ended}: status must be "running" (or left out), '
            f"not {chosen.status!r}",
        )
    return chosen
