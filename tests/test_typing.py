"""What a type checker sees of workflow code (``mypy --strict``, as the
project's own code is checked): awaiting an activity, a plain ``def`` one
through ``workflow.execute_activity``, type-checks with the activity's
result type, and wrong arguments or a wrong result type are errors; a
transactional activity's arguments are those after its connection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEADER = """
import sqlite3

from perdure import activity, workflow
from perdure.transactions import AppDatabase

shop = AppDatabase("sqlite:///shop.db")

@shop.transaction(name="reserve")
def reserve(conn: sqlite3.Connection, sku: str, qty: int) -> int:  # conn: not an argument
    return qty

@activity.defn
async def charge(order: str, cents: int) -> str:
    return order

@activity.defn
def label(order: str) -> str:  # a plain def: it runs in a thread
    return order

@activity.defn
def notify(order: str) -> None:
    pass
"""

GOOD = """
@workflow.defn
async def checkout(order: str) -> str:
    charge_id: str = await charge(order, 100)
    same: str = await workflow.execute_activity(charge, order, 100)
    parcel: str = await workflow.execute_activity(label, order)
    moved: str = await workflow.execute_activity(label.options(task_queue="labels"), order)
    await workflow.execute_activity(notify, order)
    direct: str = label(order)  # (outside workflow code: the function's own result)
    left: int = await workflow.execute_activity(reserve, order, 2)
    return charge_id + same + parcel + moved + direct + str(left)
"""

BAD = """
@workflow.defn
async def wrong(order: str) -> None:
    await workflow.execute_activity(label, 3)
    count: int = await workflow.execute_activity(label, order)
    await workflow.execute_activity(charge, order)
    await workflow.execute_activity(reserve, order)
"""


def _mypy(tmp_path: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / f"{name}.py").write_text(HEADER + source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".cache"),
         f"{name}.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def test_awaiting_activities_type_checks(tmp_path: Path) -> None:
    done = _mypy(tmp_path, "good", GOOD)
    assert done.returncode == 0, done.stdout + done.stderr


def test_wrong_arguments_and_results_are_type_errors(tmp_path: Path) -> None:
    done = _mypy(tmp_path, "bad", BAD)
    lines = HEADER.count("\n") + 3
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert [int(e.split(":")[1]) - lines for e in errors] == [1, 2, 3, 4], done.stdout
