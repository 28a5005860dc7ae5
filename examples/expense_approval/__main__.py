"""``python -m examples.expense_approval``: an expense waits for its manager.

A worker runs inside this program (the embedded mode). The expense is filed, the
manager is "emailed" (the message is printed), and the workflow waits up to three
days for the ``approval`` signal. Approve it from another terminal, with the
command the message shows — or let this program do it:

    python -m examples.expense_approval                   # you approve (CLI or HTTP)
    python -m examples.expense_approval --approve-via cli # runs `perdure signal ...`
    python -m examples.expense_approval --approve-via http  # `perdure server` + POST

Ctrl-C stops the program, not the expense: run it again with the same
``--folder`` and it picks up the waiting expense where it was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import perdure

from .workflow import Expense, escalate, expense_approval, notify_manager, reimburse

EXPENSE = Expense("exp-42", "ada", "grace", Decimal("129.90"), "train tickets to the conference")
APPROVAL = {"approved": True, "by": "grace"}
PERDURE = [sys.executable, "-m", "perdure"]


async def waiting_for_approval(handle: perdure.WorkflowHandle[object]) -> None:
    deadline = time.monotonic() + 30
    while (await handle.describe()).waiting_signals != ["approval"]:
        if time.monotonic() > deadline:
            raise SystemExit("the workflow never started waiting for its approval")
        await asyncio.sleep(0.05)


def approve_with_cli(url: str, workflow_id: str) -> None:
    command = [*PERDURE, "signal", workflow_id, "approval", "--payload", json.dumps(APPROVAL)]
    print("$ perdure signal", workflow_id, "approval --payload", repr(json.dumps(APPROVAL)))
    subprocess.run([*command, "--db", url], check=True)


def approve_with_http(url: str, workflow_id: str, folder: Path) -> None:
    """Start ``perdure server`` on a free port and POST the signal to it."""
    log = folder / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*PERDURE, "server", "--db", url, "--port", "0"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"http://127\.0\.0\.1:\d+/", log.read_text())):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"perdure server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        route = f"{found[0]}api/workflows/{workflow_id}/signals/approval"
        print(f"$ curl -X POST -d '{json.dumps(APPROVAL)}' {route}")
        request = urllib.request.Request(route, data=json.dumps(APPROVAL).encode(), method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as answer:
            print(f"HTTP {answer.status} {answer.read().decode()}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


async def story(folder: Path, approve_via: str | None) -> int:
    url = f"sqlite:///{folder / 'expenses.db'}"
    print(f"database: {url}")
    client = await perdure.Client.connect(url)
    try:
        worker = perdure.Worker(
            client, [expense_approval], [notify_manager, reimburse, escalate], poll_interval=0.05
        )
        async with worker:
            # use_existing: running the program again resumes the same expense.
            handle = await client.start(
                expense_approval, EXPENSE, id="expense-42", id_conflict="use_existing"
            )
            await waiting_for_approval(handle)
            print(f"\nemail to {EXPENSE.manager}:\n{await handle.state('message')}\n")
            if approve_via == "cli":
                await asyncio.to_thread(approve_with_cli, url, handle.id)
            elif approve_via == "http":
                await asyncio.to_thread(approve_with_http, url, handle.id, folder)
            else:
                print(f"(the database is {url}: add --db {url} to those commands)")
                print("waiting for the manager (Ctrl-C stops this program; the expense waits on)")
            outcome = await handle.result()
        print(f"outcome: {outcome}")
        return 0
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.expense_approval")
    parser.add_argument(
        "--folder", type=Path, help="where the database lives (default: a temp dir)"
    )
    parser.add_argument("--approve-via", choices=["cli", "http"], help="approve it automatically")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="perdure-expense-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.pop("PERDURE_DB", None)
    try:
        return asyncio.run(story(folder.resolve(), args.approve_via))
    except KeyboardInterrupt:
        print(f"\nstopped; the expense still waits in {folder}. Run again with --folder {folder}")
        return 130


if __name__ == "__main__":
    sys.exit(main())
