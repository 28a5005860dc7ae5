"""The expense-approval workflow, tested in both branches in milliseconds.

Three days of waiting pass in virtual time: the test environment's clock jumps
to the next timer whenever the test waits for a result and nothing else can
run. The payment activity is replaced by a test double; the workflow code is
the one that runs in production.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

import perdure
from perdure.server.app import create_app
from perdure.testing import WorkflowEnvironment

from .workflow import (
    APPROVAL_TIMEOUT,
    Expense,
    Outcome,
    escalate,
    expense_approval,
    notify_manager,
    reimburse,
)

PERDURE = [sys.executable, "-m", "perdure"]
REPO_ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PERDURE_")}
EXPENSE = Expense("exp-42", "ada", "grace", Decimal("129.90"), "train tickets")


@pytest.fixture
def payments() -> list[Expense]:
    return []


@pytest.fixture
async def env(payments: list[Expense]) -> AsyncIterator[WorkflowEnvironment]:
    def fake_reimburse(expense: Expense) -> str:  # the payment provider is not called
        payments.append(expense)
        return f"fake-payment-{len(payments)}"

    async with WorkflowEnvironment(
        workflows=[expense_approval],
        activities=[notify_manager, reimburse, escalate],
        activity_overrides={"reimburse": fake_reimburse},
    ) as env:
        yield env


async def test_approved_within_three_days_is_reimbursed(
    env: WorkflowEnvironment, payments: list[Expense]
) -> None:
    start = env.now()
    handle = await env.start(expense_approval, EXPENSE, id="expense-42")

    await env.sleep(timedelta(days=2))  # the manager takes two days to answer
    assert await handle.state("status") == "awaiting approval"
    await handle.signal("approval", {"approved": True, "by": "grace"})

    outcome = await handle.result()
    assert outcome == Outcome("reimbursed", decided_by="grace", payment_id="fake-payment-1")
    assert payments == [EXPENSE]  # paid once, with the amount as a Decimal
    assert timedelta(days=2) <= env.now() - start < APPROVAL_TIMEOUT


async def test_no_answer_in_three_days_is_escalated(
    env: WorkflowEnvironment, payments: list[Expense]
) -> None:
    start = env.now()
    outcome = await env.execute(expense_approval, EXPENSE, id="expense-43")

    assert outcome == Outcome("escalated", ticket_id="ticket-exp-42")
    assert env.now() - start >= APPROVAL_TIMEOUT  # three virtual days, milliseconds of wall time
    assert payments == []


async def test_rejected_is_not_paid(env: WorkflowEnvironment, payments: list[Expense]) -> None:
    handle = await env.start(expense_approval, EXPENSE, id="expense-44")
    await handle.signal("approval", {"approved": False, "by": "grace"})

    assert await handle.result() == Outcome("rejected", decided_by="grace")
    assert await handle.state("status") == "rejected"
    assert payments == []


@pytest.mark.perdure(workflows=[expense_approval], activities=[notify_manager, reimburse, escalate])
async def test_with_the_pytest_fixture(perdure_env: WorkflowEnvironment) -> None:
    outcome = await perdure_env.execute(expense_approval, EXPENSE)
    assert outcome.status == "escalated"


# ---------------------------------------------------------------- approving for real
# A real worker on a SQLite file and the real clock: the manager answers at once.


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'expenses.db'}"


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[perdure.Client]:
    c = await perdure.Client.connect(db_url)
    c.poll_interval = 0.02
    worker = perdure.Worker(
        c, [expense_approval], [notify_manager, reimburse, escalate], poll_interval=0.02
    )
    async with worker:
        yield c
    await c.close()


async def started_and_waiting(
    client: perdure.Client, workflow_id: str
) -> perdure.WorkflowHandle[Outcome]:
    handle = await client.start(expense_approval, EXPENSE, id=workflow_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (await handle.describe()).waiting_signals != ["approval"]:
        assert loop.time() < deadline, await handle.describe()
        await asyncio.sleep(0.02)
    message = await handle.state("message")
    assert f"perdure signal {workflow_id} approval" in message
    assert f"/api/workflows/{workflow_id}/signals/approval" in message
    return handle


async def test_approve_through_the_cli(client: perdure.Client, db_url: str) -> None:
    handle = await started_and_waiting(client, "expense-cli")
    payload = json.dumps({"approved": True, "by": "grace"})
    done = await asyncio.to_thread(
        subprocess.run,
        [*PERDURE, "signal", "expense-cli", "approval", "--payload", payload, "--db", db_url],
        capture_output=True,
        text=True,
        timeout=60,
        env=SUBPROCESS_ENV,
    )
    assert done.returncode == 0, done.stderr
    outcome = await handle.result(timeout=10)
    assert outcome == Outcome("reimbursed", decided_by="grace", payment_id="pay-exp-42")


async def test_approve_through_the_http_api(client: perdure.Client) -> None:
    handle = await started_and_waiting(client, "expense-http")
    transport = httpx.ASGITransport(app=create_app(client))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as api:
        # Like `curl -d`: no JSON content type, the body is read as JSON anyway.
        answer = await api.post(
            "/api/workflows/expense-http/signals/approval",
            content=b'{"approved": false, "by": "grace"}',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 202, answer.text
        outcome = (await api.get("/api/workflows/expense-http/result?timeout=10")).json()
    assert outcome["status"] == "completed"
    assert outcome["result"] == {
        "status": "rejected",
        "decided_by": "grace",
        "payment_id": None,
        "ticket_id": None,
    }
    assert await handle.state("status") == "rejected"


@pytest.mark.slow
@pytest.mark.parametrize("via", ["cli", "http"])
def test_the_story_program(tmp_path: Path, via: str) -> None:
    """``python -m examples.expense_approval --approve-via cli|http``, end to end
    (``http`` runs a real ``perdure server`` and POSTs to it)."""
    command = ["-m", "examples.expense_approval", "--approve-via", via, "--folder", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=REPO_ROOT,
        env=SUBPROCESS_ENV,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "outcome: Outcome(status='reimbursed', decided_by='grace'" in done.stdout
    if via == "http":
        assert "HTTP 202" in done.stdout
