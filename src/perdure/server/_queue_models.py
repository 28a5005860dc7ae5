"""The bodies of the task queues' routes (docs/http-api.md, "Task queues"):
a queue's limits as set (``PUT /api/queues/{queue}/limits``) and shown, a
fairness key's weight (``PUT /api/queues/{queue}/weights``), and a queue's
activities now (``GET /api/queues``, ``GET /api/queues/{queue}``).
Imports pydantic and ``_models`` (``Strict``); the field names match
``QueueLimits.to_json`` and ``QueueInfo.to_json``.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field, StrictInt

from perdure.server._models import Strict

__all__ = [
    "FairnessWeightBody",
    "FairnessWeightOut",
    "FairnessWeightsOut",
    "PausedActivityOut",
    "Queue",
    "QueueLimitsBody",
    "QueueLimitsOut",
    "QueueList",
]


class QueueLimitsBody(Strict):
    """A task queue's limits (they replace its old ones): at most
    ``max_running`` attempts running at once; at most ``max_starts`` started
    in any window of ``per_seconds``; at most ``max_running_per_key`` of one
    fairness key running at once; at most ``max_starts_per_key`` of one key
    started in any window of ``per_seconds``. Null or left out: no such
    limit."""

    max_running: Optional[StrictInt] = Field(
        None, ge=0, le=1_000_000, description="0 pauses the queue: no attempt starts."
    )
    max_starts: Optional[StrictInt] = Field(None, ge=1, le=1_000_000)
    per_seconds: Optional[float] = Field(None, ge=0.001, le=31 * 86_400.0)
    max_running_per_key: Optional[StrictInt] = Field(
        None,
        ge=1,
        le=1_000_000,
        description="At most this many attempts of one fairness key running at once "
        "(the unkeyed ones: one key).",
    )
    max_starts_per_key: Optional[StrictInt] = Field(
        None,
        ge=1,
        le=1_000_000,
        description="At most this many attempts of one fairness key started in any window "
        "of per_seconds (the unkeyed ones: one key).",
    )


class QueueLimitsOut(BaseModel):
    max_running: Optional[int]
    max_starts: Optional[int]
    per_seconds: Optional[float]
    max_running_per_key: Optional[int] = None
    max_starts_per_key: Optional[int] = None


class PausedActivityOut(BaseModel):
    workflow_id: str
    run_id: str
    activity_id: int
    activity_type: str


class Queue(BaseModel):
    task_queue: str
    limits: Optional[QueueLimitsOut] = Field(description="Null: the queue has no limits.")
    running: int = Field(description="Attempts running (leased to a worker).")
    waiting: int = Field(description="Tasks due, waiting to start.")
    backing_off: int = Field(description="Tasks waiting for a retry's time.")
    started: int = Field(description="Attempts started within the rate limits' window.")
    held_until: Optional[str] = Field(
        description="While the rate limit holds starts back: when it lets the next one."
    )
    waiting_by_priority: dict[str, int] = Field(
        description="The waiting tasks by priority ('1' first to '5' last; none: left out)."
    )
    paused: int = Field(
        0,
        description="Activities an operator paused that no attempt runs (neither waiting "
        "nor backing_off counts them): POST .../activities/{activity_id}/unpause lets one go.",
    )
    paused_activities: list[PausedActivityOut] = Field(
        default_factory=list,
        description="The first 20 of the paused, oldest first, by their ids.",
    )
    waiting_keys: int = Field(
        0, description="How many fairness keys have tasks waiting (unkeyed tasks: none)."
    )
    waiting_by_key: dict[str, int] = Field(
        default_factory=dict,
        description="The waiting tasks of the ten fairness keys with the most, by key.",
    )
    running_by_key: dict[str, int] = Field(
        default_factory=dict,
        description="The attempts running of the ten fairness keys with the most, by key.",
    )
    keys_at_limit: int = Field(
        0,
        description="How many keys are at a limit per key: max_running_per_key attempts "
        "running, or max_starts_per_key started in the window (the unkeyed tasks: one "
        "key, ''); 0 without those limits.",
    )
    fairness_weights: dict[str, int] = Field(
        default_factory=dict,
        description="The fairness keys given a weight other than 1, by key.",
    )
    started_by_key: dict[str, int] = Field(
        default_factory=dict,
        description="With max_starts_per_key: the starts within the window of the ten keys "
        "with the most, by key (the unkeyed: '').",
    )


class FairnessWeightBody(Strict):
    """A fairness key's weight on the queue: in its turn, it takes up to
    ``weight`` tasks for each one a key of weight 1 takes."""

    fairness_key: str = Field(min_length=1, description="The fairness key.")
    weight: StrictInt = Field(
        ge=1, le=1_000, description="1 to 1,000; 1 (the default) removes the key's weight."
    )


class FairnessWeightsOut(BaseModel):
    fairness_weights: dict[str, int] = Field(
        description="The fairness keys given a weight other than 1, by key."
    )


class FairnessWeightOut(BaseModel):
    fairness_key: str
    weight: int
    weight_before: int = Field(description="The key's weight before (1: it had none).")


class QueueList(BaseModel):
    items: list[Queue]
