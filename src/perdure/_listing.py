"""A listing's filters (``Client.list``'s and ``Client.count``'s arguments),
checked and made into the store's ``RunFilter``: a misspelt status, an
empty workflow name, a negative offset or a ``since`` after its ``until`` is
refused here, saying which, rather than matching nothing; and what a count
says (``WorkflowCount``). Imports the public checks, the search attributes'
rules, the store's records and the client's views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from perdure._attrfilters import AttributeFilter, checked_filter
from perdure._checks import check_build, check_name
from perdure._store.base import STATUSES, RunFilter
from perdure._views import WorkflowExecution, _timestamp

__all__ = ["WorkflowCount", "run_filter"]


@dataclass(frozen=True)
class WorkflowCount:
    """What ``Client.count`` found: how many runs match, and how many of
    each status (every status, 0 for none: ``by_status["failed"]``)."""

    count: int
    by_status: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, found: Mapping[str, int]) -> WorkflowCount:
        """From the store's counts by status (a status none has left out)."""
        by_status = {status: found.get(status, 0) for status in STATUSES}
        return cls(count=sum(by_status.values()), by_status=by_status)

    def to_json(self) -> dict[str, Any]:
        """As JSON (``perdure count --json``, ``GET /api/workflow-count``)."""
        return {"count": self.count, "by_status": dict(self.by_status)}


def run_filter(
    status: str | None,
    workflow: str | None,
    limit: int,
    *,
    since: datetime | None,
    until: datetime | None,
    search: str | None,
    after: str | None,
    offset: int,
    retrying: bool,
    latest: bool,
    search_attributes: Mapping[str, AttributeFilter] | None,
    build_id: str | None = None,
) -> RunFilter:
    """The store's filter for ``Client.list``'s arguments (see there);
    ValueError for one that is not a filter."""
    if status is not None and status not in STATUSES:
        # (A misspelt status had matched nothing: an empty list, not an error.)
        raise ValueError(f"status must be one of {', '.join(STATUSES)} (or None), not {status!r}")
    check_name("workflow", workflow, none_means="every type")
    check_name("search", search or None, none_means="no search")
    check_build("build_id", build_id, none_means="any build")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    if offset < 0:
        raise ValueError(f"offset must not be negative, not {offset}")
    # (Past a 64-bit integer the drivers raise OverflowError: no more runs anyway.)
    limit, offset = min(limit, 2**62), min(offset, 2**62)
    since_ts, until_ts = _timestamp(since), _timestamp(until)
    if since_ts is not None and until_ts is not None and since_ts > until_ts:
        raise ValueError(f"since ({since}) is after until ({until})")
    wanted = () if search_attributes is None else checked_filter(search_attributes)
    keyset = None if after is None else WorkflowExecution.parse_cursor(after)
    return RunFilter(
        status=status,
        workflow_type=workflow,
        since=since_ts,
        until=until_ts,
        id_contains=search or None,
        retrying=bool(retrying),
        latest=bool(latest),
        search_attributes=tuple(dict(wanted).items()),
        build_id=build_id,
        after=keyset,
        offset=offset,
        limit=limit,
    )
