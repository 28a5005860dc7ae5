"""Run priorities on the operator surfaces: ``perdure start --priority``
(through the real entry point, on SQLite), what ``show``, ``show --json``
and ``list --json`` print; the HTTP API's start body (``priority``, strict:
``true`` is not 1 nor ``"2"`` 2) and its description and list rows, on
SQLite and PostgreSQL; the workflow page's priority (headless chromium,
skipped without it as the other browser tests are). A bad priority is exit
2 or a 422 saying what is wrong, and nothing is started.

How a claim orders a queue's backlog by priority is tested in
tests/e2e/test_priorities.py and tests/store; here, only that each surface
carries the value to the Client and shows what the run holds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import surface_workflows as wf
from surface_helpers import cli_all, migrated_sqlite, sync_client

import perdure
from perdure._history import DEFAULT_PRIORITY, PRIORITIES

# ---------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("priority-cli"))


@pytest.fixture(scope="module")
def sync(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


def test_start_priority_is_stored_and_shown(db: str, sync: perdure.SyncClient) -> None:
    first, plain, last = cli_all(
        ("start", "double", "--arg", "2", "--id", "cli-p-1", "--priority", "1", "--db", db),
        ("start", "double", "--arg", "2", "--id", "cli-p-plain", "--db", db),
        ("start", "double", "--arg", "2", "--id", "cli-p-5", "--priority=5", "--json", "--db", db),
    )
    for done in (first, plain, last):
        assert done.returncode == 0, (done.args, done.stderr)
    assert "on task queue default at priority 1" in first.stdout
    assert "priority" not in plain.stdout  # (the default is not announced)
    assert json.loads(last.stdout)["id"] == "cli-p-5"
    held = {
        i: sync.get_handle(i).describe().priority for i in ("cli-p-1", "cli-p-plain", "cli-p-5")
    }
    assert held == {"cli-p-1": 1, "cli-p-plain": DEFAULT_PRIORITY, "cli-p-5": 5}

    shown, shown_json, plain_json, listed, helped = cli_all(
        ("show", "cli-p-1", "--db", db),
        ("show", "cli-p-1", "--json", "--db", db),
        ("show", "cli-p-plain", "--json", "--db", db),
        ("list", "--search", "cli-p-", "--json", "--db", db),
        ("start", "--help"),
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    queue = next(i for i, line in enumerate(lines) if line.startswith("  task queue"))
    assert lines[queue + 1] == "  priority   1 (1 first, 5 last)", shown.stdout
    assert json.loads(shown_json.stdout)["priority"] == 1
    assert json.loads(plain_json.stdout)["priority"] == DEFAULT_PRIORITY
    rows = {item["id"]: item["priority"] for item in json.loads(listed.stdout)["items"]}
    assert rows == held
    said = " ".join(helped.stdout.replace("│", " ").split())
    assert "--priority 1-5" in said and "1 (first) to 5 (last); default 3" in said


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be from 1 (first) to 5 (last), 3 being the default; not 0"),
        ("6", "must be from 1 (first) to 5 (last), 3 being the default; not 6"),
        ("-1", "not -1"),
        ("true", "valid integer"),
        ("2.5", "valid integer"),
        ("", "valid integer"),
    ],
    ids=["0", "6", "-1", "true", "2.5", "empty"],
)
def test_a_bad_priority_exits_2_and_starts_nothing(
    db: str, sync: perdure.SyncClient, value: str, message: str
) -> None:
    ident = f"cli-p-bad-{value or 'empty'}"
    (done,) = cli_all(("start", "double", "--id", ident, f"--priority={value}", "--db", db))
    assert done.returncode == 2, (done.stdout, done.stderr)
    said = " ".join(done.stderr.replace("│", " ").split())
    assert "Invalid value for '--priority'" in said and message in said, said
    with pytest.raises(perdure.WorkflowNotFoundError):
        sync.get_handle(ident).describe()


def test_set_priority_moves_an_open_run(db: str, sync: perdure.SyncClient) -> None:
    (started,) = cli_all(("start", "double", "--arg", "2", "--id", "cli-sp", "--db", db))
    assert started.returncode == 0, started.stderr
    moved, bad, nobody = cli_all(
        ("set-priority", "cli-sp", "1", "--db", db),
        ("set-priority", "cli-sp", "0", "--db", db),
        ("set-priority", "cli-nobody", "2", "--db", db),
    )
    assert moved.returncode == 0 and "moved to priority 1" in moved.stdout, moved.stderr
    assert sync.get_handle("cli-sp").describe().priority == 1
    said = " ".join(bad.stderr.replace("│", " ").split())
    assert bad.returncode == 2 and "must be from 1 (first) to 5 (last)" in said, said
    assert nobody.returncode == 3, nobody.stderr
    sync.get_handle("cli-sp").terminate("done")
    (ended,) = cli_all(("set-priority", "cli-sp", "2", "--db", db))
    assert ended.returncode == 5 and "terminated" in ended.stderr, ended.stderr
    assert sync.get_handle("cli-sp").describe().priority == 1


async def test_a_queues_backlog_is_shown_by_priority(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'backlog.db'}"
    unserved = "nobody-serves-this-queue"
    client = await perdure.Client.connect(db)
    # The runs' first turns queue a step each on a queue no worker serves.
    async with client, perdure.Worker(client, [wf.waits_on_an_unserved_queue]):
        for n, priority in enumerate([5, 1, 5]):
            await client.start(wf.waits_on_an_unserved_queue, f"n{n}", priority=priority)
        deadline = time.monotonic() + 15
        while (await client.describe_queue(unserved)).waiting < 3:
            assert time.monotonic() < deadline, "the three steps never queued"
            await asyncio.sleep(0.02)
    shown, as_json = cli_all(
        ("queue", "show", unserved, "--db", db),
        ("queue", "show", unserved, "--json", "--db", db),
    )
    assert "waiting      3   (priority 1: 1, priority 5: 2)" in shown.stdout, shown.stdout
    assert json.loads(as_json.stdout)["waiting_by_priority"] == {"1": 1, "5": 2}


# ---------------------------------------------------------------- the HTTP API


async def start(api: httpx.AsyncClient, ident: str, **fields: Any) -> httpx.Response:
    body = {"workflow": "double", "args": [1], "id": ident, **fields}
    return await api.post("/api/workflows", json=body)


@pytest.mark.both_databases
async def test_a_start_priority_is_described_and_listed(api: httpx.AsyncClient) -> None:
    for ident, fields in (
        ("api-p-2", {"priority": 2}),
        ("api-p-plain", {}),
        ("api-p-null", {"priority": None}),
        ("api-p-5", {"priority": 5}),
    ):
        started = await start(api, ident, **fields)
        assert started.status_code == 201, started.text
    described = {}
    for ident in ("api-p-2", "api-p-plain", "api-p-null", "api-p-5"):
        answer = await api.get(f"/api/workflows/{ident}")
        assert answer.status_code == 200, answer.text
        described[ident] = answer.json()["priority"]
    assert described == {"api-p-2": 2, "api-p-plain": 3, "api-p-null": 3, "api-p-5": 5}
    page = (await api.get("/api/workflows", params={"search": "api-p-"})).json()
    assert {item["id"]: item["priority"] for item in page["items"]} == described


@pytest.mark.both_databases
async def test_a_bad_priority_is_422_and_starts_nothing(api: httpx.AsyncClient) -> None:
    cases: list[tuple[Any, str]] = [
        (0, "greater than or equal to 1"),
        (6, "less than or equal to 5"),
        (-3, "greater than or equal to 1"),
        (True, "valid integer"),  # (strict: a boolean is not 1)
        (False, "valid integer"),
        ("2", "valid integer"),  # (nor a string of digits 2)
        (2.0, "valid integer"),
        (1.5, "valid integer"),
        ([2], "valid integer"),
        ({"priority": 2}, "valid integer"),
    ]
    for n, (value, says) in enumerate(cases):
        refused = await start(api, f"api-p-bad-{n}", priority=value)
        assert refused.status_code == 422, (value, refused.text)
        body = refused.json()
        assert body["message"].startswith("body.priority: "), (value, body)
        assert says in body["message"], (value, body)
        assert (await api.get(f"/api/workflows/api-p-bad-{n}")).status_code == 404
    assert (await api.get("/api/workflows")).json()["items"] == []


@pytest.mark.both_databases
async def test_set_priority_over_http(api: httpx.AsyncClient) -> None:
    assert (await start(api, "api-sp")).status_code == 201
    moved = await api.post("/api/workflows/api-sp/priority", json={"priority": 1})
    assert moved.status_code == 202, moved.text
    assert moved.json() == {"id": "api-sp", "action": "priority 1"}
    assert (await api.get("/api/workflows/api-sp")).json()["priority"] == 1
    for body in ({"priority": 0}, {"priority": True}, {"priority": "2"}, {}, None):
        refused = await api.post("/api/workflows/api-sp/priority", json=body)
        assert refused.status_code == 422, (body, refused.text)
    assert (await api.get("/api/workflows/api-sp")).json()["priority"] == 1
    nobody = await api.post("/api/workflows/api-nobody/priority", json={"priority": 2})
    assert nobody.status_code == 404
    assert (await api.post("/api/workflows/api-sp/terminate")).status_code == 200
    ended = await api.post("/api/workflows/api-sp/priority", json={"priority": 2})
    assert ended.status_code == 409, ended.text


async def test_the_openapi_document_describes_it(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    body = spec["paths"]["/api/workflows"]["post"]["requestBody"]["content"]
    field = body["application/json"]["schema"]["properties"]["priority"]
    number = next(kind for kind in field["anyOf"] if kind.get("type") == "integer")
    assert (number["minimum"], number["maximum"]) == (PRIORITIES[0], PRIORITIES[-1])
    assert "1 (first) to 5 (last)" in field["description"]
    schemas = spec["components"]["schemas"]
    page = spec["paths"]["/api/workflows"]["get"]["responses"]["200"]["content"]
    listed = page["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    row = schemas[listed]["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[1]
    for model in (row, "WorkflowDescription"):
        assert schemas[model]["properties"]["priority"]["type"] == "integer", model
        assert "priority" in schemas[model]["required"], model


# ---------------------------------------------------------------- the web UI


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, str]]:
    """A browser page maker, the open server's URL and the database (the
    browser tests' stack); skips the test without chromium, as they do."""
    import browser_support as bs  # (importing it skips without chromium)

    folder: Path = tmp_path_factory.mktemp("priority-ui")
    for browser in bs.launch():
        for stack in bs.serve(folder, [wf.__file__], "a" * 24, "r" * 24):
            yield browser, stack.open_url, stack.db


def test_the_workflow_page_shows_the_priority(ui: tuple[Any, str, str]) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, db = ui
    with perdure.SyncClient.connect(db) as client:
        for handle in (
            client.start("double", 1, id="ui-p-2", priority=2),
            client.start("double", 1, id="ui-p-plain"),
        ):
            handle.result(timeout=20)  # (an ended run's priority is shown, not offered)
    for page in bs.new_page(browser):
        page.goto(f"{url}#/workflows/ui-p-2")
        expect(page.locator("#wf-priority")).to_have_text("priority 2")
        expect(page.locator(".wf-meta")).to_contain_text("task queue default")
        page.goto(f"{url}#/workflows/ui-p-plain")
        expect(page.locator("#wf-priority")).to_have_text("priority 3")


def test_an_admin_moves_an_open_run_from_its_page(ui: tuple[Any, str, str]) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, db = ui
    with perdure.SyncClient.connect(db) as client:
        waiting = client.start("awaits_an_event", "x", id="ui-p-move", priority=4)
        try:
            for page in bs.new_page(browser):
                page.goto(f"{url}#/workflows/ui-p-move")
                chooser = page.locator("#priority-select")
                expect(chooser).to_have_value("4")
                chooser.select_option("1")
                expect(page.locator(".toast")).to_contain_text("Priority 1")
                expect(chooser).to_have_value("1")
            assert waiting.describe().priority == 1
            deadline = time.monotonic() + 15  # (the worker takes the change in)
            while not [e for e in waiting.history() if e["type"] == "PriorityChanged"]:
                assert time.monotonic() < deadline, "PriorityChanged never recorded"
                time.sleep(0.05)
        finally:
            waiting.terminate("done")
