"""``perdure queue``: the task queues' activities (running, waiting, backing
off), their limits, shared by every worker, and their fairness weights
(perdure.queues): list, show, limit, unlimit, weight. And ``perdure
stats``: the engine at a glance (open and retrying runs, timers, each
queue's backlog and lag, live workers).

Imports the public API, typer, rich and the default priority (``perdure._history``:
the waiting by priority is shown when some wait at another); exit codes come
from ``_operator.run``.
"""

from __future__ import annotations

import shlex
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from perdure._history import DEFAULT_PRIORITY
from perdure._spans import span_text
from perdure.cli._app import DbOption, app
from perdure.cli._operator import EPILOG, EXIT_USAGE, JsonOption, fail, local_time, print_json, run
from perdure.cli._schedule_cmd import parse_span
from perdure.client import Client
from perdure.queues import QueueInfo

out = Console(highlight=False, soft_wrap=True)
queue_app = typer.Typer(
    help="Task queues: their activities, and limits on them shared by every worker.",
    epilog=EPILOG,
    no_args_is_help=True,
)
app.add_typer(queue_app, name="queue", rich_help_panel="Control")

QueueArg = typer.Argument(..., metavar="TASK_QUEUE", help="Task queue.")


def _limits(info: QueueInfo) -> str:
    return "none" if info.limits is None else str(info.limits)


@app.command("stats", epilog=EPILOG, rich_help_panel="Inspect")
def stats(db: Optional[str] = DbOption, as_json: bool = JsonOption) -> None:
    """Runs open and retrying, timers, and each queue's backlog and lag."""

    async def work(client: Client) -> None:
        s = await client.stats()
        if as_json:
            print_json(s.to_json())
            return
        out.print(f"runs open      {s.open_runs}   (retrying: {s.retrying_runs})")
        out.print(f"timers         {s.timers}   (the first is {s.timer_lag:.1f}s late)")
        workers = ", ".join(f"{escape(q)}: {n}" for q, n in s.workers.items()) or "none"
        out.print(f"live workers   {workers}")
        if not s.backlog:
            out.print("no tasks")
            return
        table = Table("QUEUE", "KIND", "DUE", "RUNNING", "LAG", "PAUSED")
        for b in s.backlog:
            paused = str(b.paused) if b.kind == "activity" else ""
            # (The turns of runs pinned to a worker build: a row for each build.)
            queue = b.task_queue + (f" (build {b.build_id})" if b.build_id else "")
            table.add_row(
                escape(queue), b.kind, str(b.due), str(b.running), f"{b.lag:.1f}s", paused
            )
        out.print(table)

    run(db, work)


@queue_app.command("list")
def list_(db: Optional[str] = DbOption, as_json: bool = JsonOption) -> None:
    """The task queues that have activity tasks or limits."""

    async def work(client: Client) -> None:
        found = await client.list_queues()
        if as_json:
            print_json([q.to_json() for q in found])
            return
        if not found:
            out.print("no activity tasks, and no queue has limits")
            return
        table = Table("QUEUE", "RUNNING", "WAITING", "BACKING OFF", "LIMITS", "HELD UNTIL")
        for q in found:
            # (The fairness keys with tasks waiting, when there are: served in turn.)
            keys = f" ({q.waiting_keys} key{'' if q.waiting_keys == 1 else 's'})"
            table.add_row(
                escape(q.task_queue),
                str(q.running),
                str(q.waiting) + (keys if q.waiting_keys else ""),
                str(q.backing_off),
                escape(_limits(q)),
                "" if q.held_until is None else local_time(q.held_until),
            )
        out.print(table)

    run(db, work)


@queue_app.command("show")
def show(
    task_queue: str = QueueArg, db: Optional[str] = DbOption, as_json: bool = JsonOption
) -> None:
    """A task queue's activities now, and its limits."""

    async def work(client: Client) -> None:
        try:
            q = await client.describe_queue(task_queue)
        except ValueError as exc:
            fail(EXIT_USAGE, str(exc))
        if as_json:
            print_json(q.to_json())
            return
        out.print(f"[bold]{escape(q.task_queue)}[/]")
        out.print(f"  limits       {escape(_limits(q))}")
        out.print(f"  running      {q.running}")
        out.print(f"  waiting      {q.waiting}{_by_priority(q)}")
        out.print(f"  backing off  {q.backing_off}   (a retry's wait)")
        if q.waiting_keys:
            out.print(f"  keys         {escape(_by_key(q))}")
        running_by_key = _running_by_key(q)
        if running_by_key:
            out.print(f"  running by key   {escape(running_by_key)}")
        started_by_key = _started_by_key(q)
        if started_by_key:
            out.print(f"  started by key   {escape(started_by_key)}")
        if q.fairness_weights:
            out.print(f"  weights      {escape(_weights(q))}")
        if q.paused:
            out.print(f"  paused       {q.paused}   (by an operator; unpause each with:)")
            for a in q.paused_activities:
                named = f"-w {shlex.quote(a.workflow_id)} -a {a.activity_id}"
                out.print(
                    f"    {escape(a.activity_type)} of {escape(a.workflow_id)}: "
                    f"perdure activity unpause {escape(named)}"
                )
            if q.paused > len(q.paused_activities):
                out.print(f"    [dim]... and {q.paused - len(q.paused_activities)} more[/]")
        if q.limits is not None and q.limits.per is not None:
            out.print(f"  started      {q.started} in the rate limit's window")
        if q.held_until is not None:
            out.print(f"  held until   {local_time(q.held_until)}   (by the rate limit)")

    run(db, work)


@queue_app.command("limit")
def limit(
    task_queue: str = QueueArg,
    max_running: Optional[int] = typer.Option(
        None,
        "--max-running",
        help="At most this many attempts running at once; 0 pauses the queue (none starts).",
    ),
    max_starts: Optional[int] = typer.Option(
        None, "--max-starts", help="At most this many attempts started per --per."
    ),
    per: Optional[str] = typer.Option(None, "--per", help="The rate limit's window: 1s, 1m, 1h."),
    max_running_per_key: Optional[int] = typer.Option(
        None,
        "--max-running-per-key",
        help="At most this many attempts of one fairness key running at once.",
    ),
    max_starts_per_key: Optional[int] = typer.Option(
        None,
        "--max-starts-per-key",
        help="At most this many attempts of one fairness key started per --per.",
    ),
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Set a task queue's limits (replacing its old ones); every worker obeys them."""
    window = None if per is None else parse_span(per, "--per")

    async def work(client: Client) -> None:
        try:
            limits = await client.set_queue_limits(
                task_queue,
                max_running=max_running,
                max_starts=max_starts,
                per=window,
                max_running_per_key=max_running_per_key,
                max_starts_per_key=max_starts_per_key,
            )
        except (TypeError, ValueError) as exc:
            fail(EXIT_USAGE, str(exc))
        if as_json:
            print_json(limits.to_json())
            return
        out.print(f"Task queue {escape(task_queue)}: {escape(str(limits))}")

    run(db, work)


@queue_app.command("weight")
def weight(
    task_queue: str = QueueArg,
    fairness_key: str = typer.Argument(..., metavar="FAIRNESS_KEY", help="Fairness key."),
    weight: int = typer.Argument(
        ..., metavar="WEIGHT", help="1 to 1,000: its tasks per turn (1, the default, removes it)."
    ),
    db: Optional[str] = DbOption,
) -> None:
    """Give a fairness key a weight on a task queue: in its turn, it takes
    WEIGHT tasks for each one a key of weight 1 takes."""

    async def work(client: Client) -> None:
        try:
            before = await client.set_fairness_weight(task_queue, fairness_key, weight)
        except (TypeError, ValueError) as exc:
            fail(EXIT_USAGE, str(exc))
        out.print(
            f"Task queue {escape(task_queue)}: key {escape(fairness_key)} weighs {weight}"
            f" (it weighed {before})"
        )

    run(db, work)


@queue_app.command("unlimit")
def unlimit(task_queue: str = QueueArg, db: Optional[str] = DbOption) -> None:
    """Lift a task queue's limits."""

    async def work(client: Client) -> None:
        try:
            had = await client.remove_queue_limits(task_queue)
        except ValueError as exc:
            fail(EXIT_USAGE, str(exc))
        out.print(
            f"Task queue {escape(task_queue)}: " + ("limits lifted" if had else "had no limits")
        )

    run(db, work)


def _by_key(q: QueueInfo) -> str:
    """The fairness keys with tasks waiting: how many, and the first ones."""
    listed = ", ".join(f"{key}: {n}" for key, n in q.waiting_by_key.items())
    more = q.waiting_keys - len(q.waiting_by_key)
    return (
        f"{q.waiting_keys} with tasks waiting, served in turn   ({listed}"
        + (f", and {more} more" if more else "")
        + ")"
    )


def _weights(q: QueueInfo) -> str:
    """The keys given a weight, the first ten by name (the others weigh 1)."""
    listed = list(q.fairness_weights.items())
    shown = ", ".join(f"{key}: {w}" for key, w in listed[:10])
    more = f", and {len(listed) - 10} more" if len(listed) > 10 else ""
    return f"{shown}{more}   (the other keys: 1)"


def _running_by_key(q: QueueInfo) -> str:
    """The keys with the most attempts running, and how many keys are at
    the limit per key (if the queue has one); "" when there is nothing to
    say (no keyed attempt runs, and no key is at a limit)."""
    listed = ", ".join(f"{key}: {n}" for key, n in q.running_by_key.items())
    limits = q.limits
    if limits is None or limits.max_running_per_key is None:
        return listed
    return _with_at_limit(q, listed, limits.max_running_per_key, "")


def _started_by_key(q: QueueInfo) -> str:
    """With a rate limit per key: the keys with the most starts in its
    window, and (without a limit per key of attempts running, whose line
    says it) how many keys are at a limit; "" when there is nothing to say."""
    limits = q.limits
    if limits is None or limits.max_starts_per_key is None or limits.per is None:
        return ""
    listed = ", ".join(f"{key or '(unkeyed)'}: {n}" for key, n in q.started_by_key.items())
    if limits.max_running_per_key is not None:
        return listed
    per = span_text(limits.per)
    return _with_at_limit(q, listed, limits.max_starts_per_key, f" per {per}")


def _with_at_limit(q: QueueInfo, listed: str, most: int, per: str) -> str:
    """``listed`` keys, then how many keys are at a limit per key (both
    limits per key: at either)."""
    if not (listed or q.keys_at_limit):
        return listed
    limits = q.limits
    both = limits is not None and None not in (
        limits.max_running_per_key,
        limits.max_starts_per_key,
    )
    limit = "a limit per key" if both else f"the limit of {most}{per}"
    at_limit = f"{q.keys_at_limit} at {limit}"
    return f"{listed}   ({at_limit})" if listed else f"none keyed   ({at_limit}: the unkeyed)"


def _by_priority(q: QueueInfo) -> str:
    """The waiting by priority, when some wait at another than the default."""
    found = q.waiting_by_priority
    if not found or set(found) == {DEFAULT_PRIORITY}:
        return ""
    return "   (" + ", ".join(f"priority {p}: {n}" for p, n in sorted(found.items())) + ")"
