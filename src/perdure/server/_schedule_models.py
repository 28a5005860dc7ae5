"""The bodies of the schedule routes (docs/schedules.md): a schedule to
create, the changes to one, a backfill and its runs, a note, and a
schedule as the API shows it. Imports pydantic and ``_models`` (``Strict``,
``MAX_SPAN``); the field names match ``_query``'s schedule JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

from perdure.server._models import MAX_SPAN, Strict

__all__ = [
    "BackfillRequest",
    "Backfilled",
    "NoteRequest",
    "Schedule",
    "ScheduleList",
    "ScheduleRequest",
    "ScheduleUpdate",
    "ScheduledRun",
]


class ScheduleRequest(Strict):
    schedule_id: str = Field(min_length=1, max_length=512)
    workflow: str = Field(min_length=1, description="The workflow's type name.")
    args: list[Any] = Field(default_factory=list, description="Positional arguments (JSON).")
    cron: Optional[str] = Field(None, description="Five fields, or @daily etc.")
    every_seconds: Optional[float] = Field(
        None, ge=1, le=MAX_SPAN, description="An interval instead of a cron."
    )
    timezone: str = Field("UTC", description="The cron's time zone (IANA).")
    task_queue: str = Field("default", min_length=1)
    overlap: Literal["skip", "allow"] = "skip"
    catchup_window_seconds: float = Field(86_400.0, ge=10, le=MAX_SPAN)
    jitter_seconds: float = Field(
        0.0,
        ge=0,
        le=86_400,
        strict=True,  # (a number: true is not 1 second)
        description="Each run starts up to this much after its time.",
    )
    priority: Optional[StrictInt] = Field(
        None, ge=1, le=5, description="Its runs' priority: 1 (first) to 5 (last); null: 3."
    )
    fairness_key: Optional[StrictStr] = Field(
        None, description="Its runs' fairness key (whose work they are); null: none."
    )
    paused: StrictBool = False
    note: Optional[str] = Field(None, max_length=10_000)
    if_exists: Literal["fail", "keep", "update"] = Field(
        "fail", description="If it exists: fail (409), keep it, or update it to this."
    )


class ScheduleUpdate(Strict):
    """The changes to a schedule: what is left out (or null) stays."""

    workflow: Optional[str] = Field(None, min_length=1, description="Start this workflow.")
    args: Optional[list[Any]] = Field(None, description="New positional arguments (all).")
    cron: Optional[str] = Field(None, description="A new cron (replaces an interval).")
    every_seconds: Optional[float] = Field(None, ge=1, le=MAX_SPAN)
    timezone: Optional[str] = None
    overlap: Optional[Literal["skip", "allow"]] = None
    catchup_window_seconds: Optional[float] = Field(None, ge=10, le=MAX_SPAN)
    jitter_seconds: Optional[float] = Field(None, ge=0, le=86_400, strict=True)
    priority: Optional[StrictInt] = Field(None, ge=1, le=5, description="Its runs' priority.")
    fairness_key: Optional[StrictStr] = Field(
        None, description="Its runs' fairness key; an empty string: none."
    )


class BackfillRequest(Strict):
    start: datetime = Field(description="The first time (ISO 8601; naive: UTC).")
    end: datetime = Field(description="The last time, included.")


class Backfilled(BaseModel):
    runs: list[ScheduledRun] = Field(description="Each time's run (skipped: it had one).")


class NoteRequest(Strict):
    note: Optional[str] = Field(None, max_length=10_000)


class ScheduledRun(BaseModel):
    scheduled_at: float
    scheduled_time: str
    workflow_id: str
    run_id: Optional[str]
    skipped: Optional[str] = Field(description="Why no run was started for the time.")
    trigger: bool


class Schedule(BaseModel):
    schedule_id: str
    workflow: str
    task_queue: str
    cron: Optional[str]
    every_seconds: Optional[float]
    timezone: str
    overlap: str
    catchup_window_seconds: float
    jitter_seconds: float = Field(description="Each run starts up to this much after its time.")
    priority: int = Field(description="The priority of the runs it starts: 1 (first) to 5 (last).")
    fairness_key: Optional[str] = Field(None, description="The runs' fairness key; null: none.")
    status: str = Field(description="The schedule's own run: running, or terminated (deleted).")
    paused: bool
    note: Optional[str]
    next_run_at: Optional[str]
    recent: list[ScheduledRun] = Field(description="The latest times it came due, newest last.")
    runs_started: int
    runs_skipped: int
    times_missed: int


class ScheduleList(BaseModel):
    items: list[Schedule]
