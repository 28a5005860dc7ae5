"""``perdure demo``: start an order, SIGKILL its worker mid-way, finish it on a second
worker, and show from the database and the outside world that the card was charged
exactly once. Owns the storytelling (rich output) and the worker subprocesses; the
workflow itself lives in :mod:`perdure.demo.order`. Imports the public API and rich;
``--ui`` then serves :mod:`perdure.server` over the demo's database (imported lazily).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from perdure.client import Client, WorkflowDescription, WorkflowHandle
from perdure.demo.order import ACTIVITY_NAMES, DEMO_DIR_ENV, Order, fulfil_order
from perdure.errors import PerdureError

__all__ = ["run_demo"]

LEASE_TIMEOUT = 2.0  # how long a dead worker's claimed activity stays claimed
POLL = 0.05  # how often the narrator looks at the database and the world folder
CRASH_DEADLINE = 30.0  # generous: the crash point is normally reached in ~2 s
RESULT_TIMEOUT = 60.0
DRAIN_TIMEOUT = 15.0


class DemoError(Exception):
    """The story did not go as scripted; the message says what happened instead."""


@dataclass
class WorkerProcess:
    """One ``perdure worker`` subprocess; its output goes to a log file, not the story."""

    number: int
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def spawn_worker(number: int, url: str, folder: Path) -> WorkerProcess:
    log = folder / f"worker-{number}.log"
    env = {**os.environ, DEMO_DIR_ENV: str(folder)}
    command = [
        sys.executable, "-m", "perdure", "worker", "perdure.demo.order", "--db", url,
        "--lease-timeout", str(LEASE_TIMEOUT), "--poll-interval", "0.05",
        "--log-level", "WARNING",
    ]  # fmt: skip
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    return WorkerProcess(number, proc, log)


@dataclass
class Execution:
    """One line of ``executions.jsonl``: an activity attempt that started."""

    activity: str
    attempt: int
    pid: int


@dataclass
class Narrator:
    """Watches the run's history and the world folder and prints what happens, as it happens."""

    console: Console
    handle: WorkflowHandle[Any]
    folder: Path
    started: float = field(default_factory=time.monotonic)
    workers: dict[int, int] = field(default_factory=dict)  # pid -> worker number
    killed: set[int] = field(default_factory=set)  # pids
    executions: list[Execution] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # activity ref -> name
    completed: dict[str, int] = field(default_factory=dict)  # activity name -> attempt
    reported: set[tuple[str, int]] = field(default_factory=set)  # attempts whose end we told
    offset: int = 0  # bytes of executions.jsonl already read
    failures: dict[tuple[str, int], str] = field(default_factory=dict)  # attempt -> why
    status: str = "running"
    failure: dict[str, Any] | None = None

    def say(self, text: str, more: str | None = None) -> None:
        """One line of the story, stamped with the time since the order started;
        ``more`` goes on an indented, dimmed second line."""
        self.console.print(f"[dim]{time.monotonic() - self.started:6.2f}s[/]  {text}")
        if more:
            self.console.print(f"           [dim]{more}[/]")

    def worker_of(self, pid: int) -> str:
        return f"worker #{self.workers[pid]}" if pid in self.workers else f"pid {pid}"

    async def poll(self) -> None:
        await self._read_history()
        self._read_executions()
        await self._read_failures()

    def _read_executions(self) -> None:
        path = self.folder / "executions.jsonl"
        if not path.exists():
            return
        with path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written waits for next time
        self.offset += len(complete)
        prefix = f"{self.handle.id}/"
        for line in complete.decode("utf-8").splitlines():
            record = json.loads(line)
            if not str(record["key"]).startswith(prefix):
                continue  # an earlier demo run in the same folder
            ex = Execution(record["activity"], record["attempt"], record["pid"])
            previous = [e for e in self.executions if e.activity == ex.activity]
            self.executions.append(ex)
            if previous and (ex.activity, previous[-1].attempt) not in self.reported:
                self._ended_unseen(previous[-1])
            self.say(f"▶ {ex.activity} attempt {ex.attempt} started on {self.worker_of(ex.pid)}")

    def _ended_unseen(self, ex: Execution) -> None:
        self.reported.add((ex.activity, ex.attempt))
        if ex.pid in self.killed:
            self.say(
                f"[yellow]↻ {ex.activity} attempt {ex.attempt} was lost with "
                f"{self.worker_of(ex.pid)}[/]",
                "its claim lapsed, so the activity runs again (at-least-once)",
            )
        else:
            self.say(f"[red]✗ {ex.activity} attempt {ex.attempt} failed[/]")

    async def _read_history(self) -> None:
        events = await self.handle.history()
        for event in events[len(self.history) :]:
            kind = event["type"]
            if kind == "ActivityScheduled":
                self.names[event["ref"]] = event["name"]
            elif kind == "ActivityCompleted":
                name = self.names.get(event["ref"], "?")
                self.completed[name] = event["attempt"]
                self.reported.add((name, event["attempt"]))
                self.say(f"[green]✓ {name} completed[/] → {event['result']!r}")
            elif kind == "StateSet":
                self.say(f"[cyan]stage: {event['value']}[/]")
            elif kind == "WorkflowCompleted":
                self.say("[bold green]✓ workflow completed[/]")
        self.history = events

    async def _read_failures(self) -> None:
        # A failed attempt leaves no history event (only the final outcome does):
        # the pending activity's last_failure, while it waits to retry, tells us.
        desc = await self.handle.describe()
        self.status, self.failure = desc.status, desc.failure
        for act in desc.pending_activities:
            key = (act.activity_type, act.attempt)
            if act.running or act.last_failure is None or key in self.reported:
                continue
            self.reported.add(key)
            wait = ""
            if act.next_attempt_at is not None:
                left = max(0.0, act.next_attempt_at.timestamp() - time.time())
                wait = f"; retry in {left:.1f}s"
            failure = act.last_failure
            self.failures[key] = str(failure.get("message"))
            self.say(
                f"[red]✗ {act.activity_type} attempt {act.attempt} failed: "
                f"{failure.get('type')}[/]",
                f"{failure.get('message')}{wait}",
            )

    def crash_point(self, worker: WorkerProcess) -> bool:
        """charge_card is done and the label API has failed once: a retry is in flight."""
        return "charge_card" in self.completed and any(
            e.activity == "create_shipping_label" and e.attempt >= 2 and e.pid == worker.proc.pid
            for e in self.executions
        )


async def wait_until(
    narrator: Narrator,
    done: Callable[[], bool],
    deadline: float,
    worker: WorkerProcess,
    what: str,
) -> None:
    """Poll until ``done()``; a deadline instead of sleep-and-hope."""
    limit = time.monotonic() + deadline
    while True:
        await narrator.poll()
        if done():
            return
        if narrator.status != "running":
            reason = (narrator.failure or {}).get("message", "")
            raise DemoError(f"the workflow ended ({narrator.status}) before {what}: {reason}")
        if worker.proc.poll() is not None:
            raise DemoError(
                f"worker #{worker.number} exited early (code {worker.proc.returncode})"
                f" before {what}; its log:\n{worker.tail()}"
            )
        if time.monotonic() > limit:
            raise DemoError(
                f"timed out after {deadline:g}s waiting for {what}; "
                f"worker #{worker.number} log:\n{worker.tail()}"
            )
        await asyncio.sleep(POLL)


def show_database(
    console: Console, narrator: Narrator, desc: WorkflowDescription
) -> tuple[str, int] | None:
    """Print what the database holds right after the crash; return the attempt in flight."""
    table = Table(title="What demo.db says right now", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("status", desc.status)
    table.add_row("stage", str(desc.state.get("stage")))
    table.add_row("completed steps", ", ".join(narrator.completed) or "none")
    in_flight = None
    for act in desc.pending_activities:
        table.add_row("pending activity", f"{act.activity_type}, attempt {act.attempt}")
        if act.running:
            in_flight = (act.activity_type, act.attempt)
            table.add_row(
                "claimed by", f"worker #1, now dead: its claim lapses within {LEASE_TIMEOUT:g} s"
            )
        elif act.next_attempt_at is not None:
            table.add_row("next attempt", f"{act.next_attempt_at:%H:%M:%S.%f}"[:-3] + " UTC")
        if act.last_failure:
            failure = act.last_failure
            table.add_row("last failure", f"{failure.get('type')}: {failure.get('message')}")
    table.add_row("history", f"{desc.history_length} events")
    console.print(table)
    return in_flight


def detail(event: dict[str, Any], names: dict[int, str]) -> str:
    kind = event["type"]
    if kind == "WorkflowStarted":
        return f"{event['workflow_type']} id={event['workflow_id']}"
    if kind == "ActivityScheduled":
        return f"{event['name']} (ref {event['ref']})"
    if kind == "ActivityCompleted":
        name = names.get(event["ref"], "?")
        return f"{name} (attempt {event['attempt']}) → {event['result']}"
    if kind == "ActivityFailed":
        return f"{names.get(event['ref'], '?')}: {event['failure'].get('message')}"
    if kind == "StateSet":
        return f"{event['key']} = {event['value']!r}"
    if kind == "WorkflowCompleted":
        return "receipt returned"
    return ""


def history_table(narrator: Narrator, killed_at: float) -> Table:
    table = Table(title="Event history (from demo.db)", title_justify="left")
    for name in ("seq", "+s", "type", "detail"):
        table.add_column(name, justify="right" if name in ("seq", "+s") else "left")
    first = narrator.history[0]["time"] if narrator.history else 0.0
    marked = False
    for event in narrator.history:
        if not marked and event["time"] > killed_at:
            marked = True
            table.add_row(
                "", "", "[bold red]💥 kill -9[/]", "[red]worker #1 dies; worker #2 resumes[/]"
            )
        style = "dim" if event["type"] == "TurnStarted" else None
        table.add_row(
            str(event["seq"]),
            f"{event['time'] - first:.2f}",
            event["type"],
            detail(event, narrator.names),
            style=style,
        )
    return table


def executions_table(
    narrator: Narrator, in_flight: tuple[str, int] | None
) -> tuple[Table, list[str]]:
    table = Table(
        title="Activity executions (from executions.jsonl)",
        title_justify="left",
        caption="w1/w2: worker #1/#2. A failed attempt is retried with backoff; an attempt\n"
        "lost with its worker runs again once its lease lapses (at-least-once).",
        caption_justify="left",
    )
    table.add_column("activity")
    table.add_column("runs", justify="right")
    table.add_column("attempts")
    repeated = []
    for name in ACTIVITY_NAMES:
        runs = [e for e in narrator.executions if e.activity == name]
        lines = []
        for e in runs:
            where = f"#{e.attempt} w{narrator.workers.get(e.pid, '?')}"
            if narrator.completed.get(name) == e.attempt:
                lines.append(f"{where} ✓ completed")
            elif in_flight == (name, e.attempt):
                lines.append(f"{where} 💥 in flight at the kill → re-run")
            else:
                why = narrator.failures.get((name, e.attempt), "")
                lines.append(f"{where} ✗ failed: {why}".rstrip(": "))
        if len(runs) > 1:
            repeated.append(name)
        style = None if len(runs) > 1 else "dim"
        table.add_row(name, str(len(runs)), "\n".join(lines), style=style)
    return table, repeated


def charges_for(folder: Path, order_id: str) -> list[dict[str, Any]]:
    path = folder / "charges.jsonl"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [c for c in map(json.loads, lines) if str(c["key"]).startswith(f"{order_id}/")]


def stop(worker: WorkerProcess, console: Console) -> None:
    """SIGTERM asks for a graceful drain: finish in-flight work, then exit."""
    worker.proc.send_signal(signal.SIGTERM)
    try:
        code = worker.proc.wait(timeout=DRAIN_TIMEOUT)
        console.print(f"Worker #{worker.number} got SIGTERM, drained and exited (code {code}).")
    except subprocess.TimeoutExpired:
        worker.proc.kill()
        worker.proc.wait()
        console.print(
            f"[yellow]Worker #{worker.number} did not drain within "
            f"{DRAIN_TIMEOUT:g}s after SIGTERM; killed it.[/]"
        )


async def run_until_crash(narrator: Narrator, url: str, workers: list[WorkerProcess]) -> float:
    """Run worker #1 until the label API has failed once, then SIGKILL it; the kill time."""
    workers.append(spawn_worker(1, url, narrator.folder))
    first = workers[0]
    narrator.workers[first.proc.pid] = 1
    narrator.say(f"Started worker #1 (pid {first.proc.pid}).")
    await wait_until(
        narrator,
        lambda: narrator.crash_point(first),
        CRASH_DEADLINE,
        first,
        "charge_card to complete and the label API to fail once",
    )
    os.kill(first.proc.pid, signal.SIGKILL)
    killed_at = time.time()
    first.proc.wait()
    narrator.killed.add(first.proc.pid)
    narrator.say(
        f"[bold red]💥 kill -9 worker #1 (pid {first.proc.pid}): no cleanup, no goodbye[/]"
    )
    return killed_at


async def recover(
    narrator: Narrator, url: str, workers: list[WorkerProcess], in_flight: tuple[str, int] | None
) -> dict[str, str]:
    """Start worker #2, wait for the result, then stop worker #2 gracefully."""
    workers.append(spawn_worker(2, url, narrator.folder))
    second = workers[1]
    narrator.workers[second.proc.pid] = 2
    narrator.say(
        f"Started worker #2 (pid {second.proc.pid}).",
        f"{in_flight[0]} resumes here when worker #1's lease lapses." if in_flight else None,
    )
    result = asyncio.create_task(narrator.handle.result(timeout=RESULT_TIMEOUT))
    while not result.done():
        await narrator.poll()
        await asyncio.wait({result}, timeout=POLL)
    receipt: dict[str, str] = result.result()
    await narrator.poll()
    stop(second, narrator.console)
    return receipt


def report(
    narrator: Narrator,
    receipt: dict[str, str],
    killed_at: float,
    in_flight: tuple[str, int] | None,
) -> int:
    """The evidence: history, receipt, executions, and the one-charge check (exit code)."""
    console, folder, order_id = narrator.console, narrator.folder, narrator.handle.id
    console.print()
    console.print(history_table(narrator, killed_at))
    receipt_table = Table(
        title="Receipt (the workflow's result)", show_header=False, title_justify="left"
    )
    for key, value in receipt.items():
        receipt_table.add_row(key, value)
    console.print(receipt_table)
    table, repeated = executions_table(narrator, in_flight)
    console.print(table)

    charges = charges_for(folder, order_id)
    if len(charges) != 1 or charges[0]["charge_id"] != receipt["charge_id"]:
        console.print(
            Panel(
                f"[bold red]✗ expected exactly one charge ({receipt['charge_id']}) for "
                f"{order_id} in {folder / 'charges.jsonl'}, found {len(charges)}:[/]\n{charges}",
                title="the card was not charged exactly once",
                border_style="red",
            )
        )
        return 1
    workers = len({e.pid for e in narrator.executions})
    story = (
        f"[bold green]✓ {order_id} was fulfilled although its worker was killed mid-way.[/]\n"
        f"✓ The card was charged exactly once: {charges[0]['charge_id']}, "
        f"${charges[0]['cents'] / 100:.2f}.\n"
        f"✓ {workers} worker processes shared the work; no completed step ran again.\n"
        f"  Ran more than once: {', '.join(repeated) or 'nothing'} (at-least-once).\n"
        f"  An idempotency key makes such re-runs harmless, as charge_card shows.\n"
        f"[dim]Look around: {folder}[/]"
    )
    console.print(Panel(story, title="perdure demo: done", border_style="green"))
    return 0


async def tell_story(console: Console, folder: Path, workers: list[WorkerProcess]) -> int:
    url = f"sqlite:///{folder / 'demo.db'}"
    async with await Client.connect(url) as client:
        # A folder reused from an earlier demo keeps its orders: take the next number.
        n = 1001 + len(await client.list(workflow="fulfil_order", limit=100_000))
        items = ["perdure mug", "sticker pack"]
        order = Order(f"order-{n}", "Ada Lovelace", "4242 4242 4242 4242", items, 2599)
        handle = await client.start(fulfil_order, order, id=order.order_id)
        console.print(
            f"Started workflow [bold]fulfil_order[/] (id [bold]{handle.id}[/]) for "
            f"{order.customer}:\n{', '.join(order.items)}, ${order.cents / 100:.2f}. "
            f"Database: {folder / 'demo.db'}\n"
        )
        narrator = Narrator(console, handle, folder)
        killed_at = await run_until_crash(narrator, url, workers)
        console.print()
        in_flight = show_database(console, narrator, await handle.describe())
        console.print(
            "\nNothing is lost: the run, its finished steps and its pending work are rows\n"
            "in demo.db. Start a fresh worker:\n"
        )
        receipt = await recover(narrator, url, workers, in_flight)
    return report(narrator, receipt, killed_at, in_flight)


def run_demo(folder: str | os.PathLike[str] | None, ui_port: int | None = None) -> int:
    """Run the crash demo in ``folder`` (default: a fresh temporary one); the exit code.
    With ``ui_port``, then serve the web UI on 127.0.0.1 over the demo's database
    until Ctrl-C (another port if that one is busy)."""
    console = Console()
    path = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="perdure-demo-"))
    path = path.resolve()
    code = _run_story(console, path)
    if ui_port is not None and (path / "demo.db").exists():
        serve_ui(console, path, ui_port)
    return code


def serve_ui(console: Console, folder: Path, port: int) -> None:
    """Serve the HTTP API and web UI over the demo database until Ctrl-C."""
    try:
        from perdure.server import _serve
        from perdure.server._auth import AuthConfig
    except ImportError as exc:
        console.print(
            f"[red]The web UI needs the server extra ({exc.name or exc} is missing):[/] "
            "pip install 'perdure\\[server]'"
        )
        return
    try:
        sock = _serve.bind("127.0.0.1", port)
    except OSError:
        sock = _serve.bind("127.0.0.1", 0)  # the port is busy: any free one will do

    def ready(url: str) -> None:
        console.print(
            Panel(
                f"Open [bold]{url}[/] in a browser to see the order's\n"
                f"timeline, its retries and its full event history.\n"
                f"Ctrl-C stops the server.",
                title="perdure web UI",
                border_style="cyan",
            )
        )

    _serve.serve(sock, f"sqlite:///{folder / 'demo.db'}", AuthConfig(), on_ready=ready)


def _run_story(console: Console, path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    console.print(
        Panel(
            "An order goes through six activities. Half-way, its worker is killed\n"
            "with SIGKILL. A second worker picks the order up where the database\n"
            "says it stopped, and the card is charged exactly once.",
            title="[bold]perdure demo[/]: an order that survives a crash",
            border_style="cyan",
        )
    )
    workers: list[WorkerProcess] = []
    try:
        return asyncio.run(tell_story(console, path, workers))
    except (DemoError, PerdureError, TimeoutError) as exc:
        console.print(
            Panel(
                f"[red]{exc}[/]\n[dim]Database and worker logs: {path}[/]",
                title="demo failed",
                border_style="red",
            )
        )
        return 1
    finally:
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()
