"""The bodies of the batch routes (``_batch_routes``): the runs' (cancel,
terminate or reset every run a filter matches, or change the priority or
fairness key of every open one) and the activities' (pause,
unpause, reset or change the options of every pending activity of the open
runs a filter matches), with the filters of the runs they share. Imports
pydantic, ``_models`` (the strict base, and the listing's and describe's
models the answers reuse) and ``_activity_models`` (the options to change,
and an unpause's or reset's jitter, as the route of one activity takes
them); the field names match
``_query``'s ``batch_json`` and ``activity_batch_json``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

from perdure.server._activity_models import ActivityOptionsRequest, jitter_field, max_attempts
from perdure.server._models import PendingActivity, Strict, WorkflowSummary

__all__ = [
    "ActivityBatchOut",
    "ActivityBatchRequest",
    "ActivityFailedOut",
    "ActivityFilters",
    "ActivityNamed",
    "ActivityOptionsBatchOut",
    "ActivityOptionsBatchRequest",
    "ActivityRun",
    "ActivitySkippedOut",
    "BatchOptionsRequest",
    "BatchOut",
    "BatchRequest",
    "MatchedActivityOut",
    "RunFilters",
    "RunOptions",
]

MAX_LIMIT = 1_000_000
# Every activity batch's limit and dry_run (the options' batch has no
# pause's or reset's flags, so it cannot take them by inheritance).
ActivityLimit = Annotated[
    Optional[StrictInt],
    Field(
        ge=1, le=MAX_LIMIT, description="At most this many activities, of the newest runs first."
    ),
]
ActivityDryRun = Annotated[
    StrictBool, Field(description="Only say which activities match (matched); act on none.")
]


class RunFilters(Strict):
    """The runs a batch looks at: each workflow id's latest run that the
    filters match, as ``GET /api/workflows`` reads them (an empty text is
    no filter, as there)."""

    type: Optional[str] = Field(None, max_length=512, description="Workflow type.")
    since: Optional[str] = Field(
        None, max_length=64, description="Started at or after: ISO time or an age (2h, 3d)."
    )
    until: Optional[str] = Field(
        None, max_length=64, description="Started at or before: ISO time or an age."
    )
    search: Optional[str] = Field(None, max_length=512, description="Text the id contains.")
    attr: Optional[list[StrictStr]] = Field(
        None,
        max_length=100,
        description="NAME=VALUE terms: only runs whose search attribute NAME has VALUE, "
        "matched as text, or bounds NAME>=VALUE, NAME>VALUE, NAME<=VALUE, NAME<VALUE (as "
        "?attr= of the listing); a run must match each.",
    )
    retrying: StrictBool = Field(
        False, description="Only runs whose latest workflow task failed and is retried."
    )
    build_id: Optional[str] = Field(
        None,
        max_length=512,
        description="Only runs pinned to this worker build, as ?build_id= of the listing "
        "(after a bad deploy: the runs the bad build holds).",
    )


class BatchRequest(RunFilters):
    """Which runs a batch acts on (at least one filter; cancel and
    terminate: open runs only), and how."""

    status: Optional[str] = Field(
        None,
        max_length=64,
        description="Only runs in this status; cancel and terminate: running (the default).",
    )
    reason: Optional[str] = Field(
        None, max_length=10_000, description="Recorded in each run's history."
    )
    limit: Optional[StrictInt] = Field(
        None, ge=1, le=MAX_LIMIT, description="At most this many runs, newest first."
    )
    dry_run: StrictBool = Field(
        False, description="Only say which runs match (matched); act on none."
    )


class RunOptions(Strict):
    """A run's options to change: those given (at least one). A
    ``fairness_key`` of null takes the key away."""

    priority: Optional[StrictInt] = Field(None, description="1 (first) to 5 (last).")
    fairness_key: Optional[StrictStr] = Field(
        None, description="The new fairness key; null: no key."
    )

    def given(self) -> dict[str, object]:
        """The options the body gave, as ``Client.batch``'s new_options."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class BatchOptionsRequest(RunFilters):
    """Which open runs to change (at least one filter), and the options."""

    status: Optional[str] = Field(
        None, max_length=64, description="Only open runs: running (the default)."
    )
    new_options: RunOptions = Field(description="The options to change, at least one.")
    limit: Optional[StrictInt] = Field(
        None, ge=1, le=MAX_LIMIT, description="At most this many runs, newest first."
    )
    dry_run: StrictBool = Field(
        False, description="Only say which runs match (matched); change none."
    )


class BatchOut(BaseModel):
    action: Literal["cancel", "terminate", "reset", "update_options"]
    dry_run: bool = Field(description="Nothing was done: matched is what would have been.")
    matched: list[WorkflowSummary] = Field(
        description="The runs the filters matched (each id's latest), newest first."
    )
    done: dict[str, str] = Field(
        description="Workflow id -> the run acted on (for a reset: the new run)."
    )
    skipped: dict[str, str] = Field(
        description="Workflow id -> why it was not acted on: it ended, or is gone, since "
        "it was chosen."
    )
    failed: dict[str, str] = Field(description="Workflow id -> the error its action raised.")


class ActivityFilters(RunFilters):
    """The pending activities an activity batch looks at: those of
    ``activity_type`` (left out: any) in the open runs the filters match."""

    activity_type: Optional[str] = Field(
        None, max_length=512, description="Only activities of this type (their function's name)."
    )


class ActivityBatchRequest(ActivityFilters):
    """Which pending activities a batch pauses, unpauses or resets: those
    of ``activity_type`` (left out: any) in the open runs the filters match,
    that the action changes (a pause takes those not paused, an unpause the
    paused, a reset every one). An activity type or a filter of the runs is
    required. An action's option given to another action: 422."""

    reset_attempts: StrictBool = Field(
        False,
        description="Unpause only: count each one's attempts from 1 again (a fresh "
        "max_attempts); one whose attempt runs is failed, and stays paused.",
    )
    keep_paused: StrictBool = Field(
        False,
        description="Reset only: a paused one stays paused, its attempts counted from 1 "
        "once it is unpaused (left out: it is unpaused too).",
    )
    clear_heartbeat_details: StrictBool = Field(
        False, description="Reset only: drop each one's heartbeat details (left out: kept)."
    )
    jitter_seconds: Optional[float] = jitter_field("Unpause and reset only: each one's")
    limit: ActivityLimit = None
    dry_run: ActivityDryRun = False


class ActivityOptionsBatchRequest(ActivityOptionsRequest, ActivityFilters):
    """Which pending activities a batch changes the options of (every one,
    paused or not, of ``activity_type`` (left out: any) in the open runs
    the filters match; an activity type or a filter of the runs is
    required), and the options to change, as the route of one activity
    takes them: at least one; null or left out: unchanged. Not recorded in
    the history."""

    retry_max_attempts: Optional[StrictInt] = max_attempts(
        "An activity it allows no attempt after those made while none runs is failed (and "
        "unchanged); the others go on."
    )
    limit: ActivityLimit = None
    dry_run: ActivityDryRun = False


class ActivityRun(BaseModel):
    workflow_id: str
    run_id: str = Field(description="The activity's run, the one acted on.")


class MatchedActivityOut(PendingActivity, ActivityRun):
    """A pending activity a batch chose, as describe() showed it then, after
    its run's ids (a base later in the MRO: its fields come first)."""


class ActivityNamed(BaseModel):
    workflow_id: str
    activity_id: int


class ActivitySkippedOut(ActivityNamed):
    why: str = Field(description="It ended, or its run did, since it was chosen.")


class ActivityFailedOut(ActivityNamed):
    error: str = Field(description="The error its action raised.")


class ActivityBatchOut(BaseModel):
    action: Literal["pause", "unpause", "reset"]
    dry_run: bool = Field(description="Nothing was done: matched is what would have been.")
    matched: list[MatchedActivityOut] = Field(
        description="The activities chosen: their runs newest first, a run's by activity id."
    )
    done: list[ActivityNamed] = Field(description="Each activity paused, unpaused or reset.")
    skipped: list[ActivitySkippedOut] = Field(
        description="Each activity not acted on, and why: nothing left to do."
    )
    failed: list[ActivityFailedOut] = Field(
        description="Each activity whose action raised, with its error; the others went on."
    )


class ActivityOptionsBatchOut(BaseModel):
    action: Literal["update_options"]
    dry_run: bool = Field(description="Nothing was done: matched is what would have been.")
    matched: list[MatchedActivityOut] = Field(
        description="The activities chosen, with their options before the change: their "
        "runs newest first, a run's by activity id."
    )
    done: list[ActivityNamed] = Field(description="Each activity whose options were changed.")
    skipped: list[ActivitySkippedOut] = Field(
        description="Each activity not changed, and why: nothing left to change."
    )
    failed: list[ActivityFailedOut] = Field(
        description="Each activity whose change was refused, with the error (it is unchanged); "
        "the others went on."
    )
