"""Debounced starts on the operator surfaces (docs/workflows.md, "Debouncing"):
the HTTP start body's ``debounce`` (on SQLite and PostgreSQL) and ``perdure
start --debounce-key/--debounce/--debounce-max`` (through the real entry
point, on SQLite). Two starts with one key are one run, pending, holding the
second start's arguments; another key (or workflow) is another run. A bad
value or combination (an id with a debounce, a delay that is not positive,
an empty key) is a 422 or exit 2 saying what is wrong, and starts nothing; a
read token gets 403.

No worker serves these runs: their delays are long (an hour), and what a
debounced run does once due is tested in tests/e2e/test_debounce.py; here,
only that each surface carries the values to Client.debounce.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from api_both import ADMIN, READ
from surface_helpers import cli, cli_all, migrated_sqlite, said, sync_client
from test_schedule_api import http

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app

HOUR = 3600.0
QUEUE = "debounced"  # (no worker serves it: the runs stay pending)


# ---------------------------------------------------------------- the HTTP API


def debounced(workflow: str, args: list[Any], **debounce: Any) -> dict[str, Any]:
    """A start body debounced by ``debounce`` (key, delay_seconds, ...)."""
    return {"workflow": workflow, "args": args, "task_queue": QUEUE, "debounce": debounce}


@pytest.mark.both_databases
async def test_a_burst_of_starts_is_one_run_with_the_last_arguments(
    client: perdure.Client,
) -> None:
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    async with http(app, ADMIN) as api, http(app, READ) as reader:
        refused = await reader.post("/api/workflows", json=debounced("double", [0], key="k"))
        assert refused.status_code == 403, refused.text

        first_body = debounced("double", [1], key="k-a", delay_seconds=HOUR)
        first = await api.post(
            "/api/workflows", json={**first_body, "priority": 2, "search_attributes": {"t": 1}}
        )
        assert first.status_code == 201, first.text
        assert set(first.json()) == {"id", "run_id"}
        second = await api.post(
            "/api/workflows", json=debounced("double", [2], key="k-a", delay_seconds=HOUR)
        )
        assert second.status_code == 201, second.text
        assert second.json() == first.json()  # the same run: the pending one of the key

        handle = client.get_handle(first.json()["id"])
        described = await handle.describe()
        assert described.run_id == first.json()["run_id"] and described.status == "running"
        assert described.input == {"args": [2], "kwargs": {}}  # the last start's arguments
        assert described.starts_at is not None and described.task_queue == QUEUE
        # The run's other options are its first start's.
        assert described.priority == 2 and described.search_attributes == {"t": 1}
        assert await handle.history() == []  # not begun
        shown = (await reader.get(f"/api/workflows/{described.id}")).json()
        assert shown["starts_at"] is not None and shown["input"]["args"] == [2]
        assert shown["debounce_key"] == described.debounce_key == "k-a"

        # Another key, or another workflow with the key, is another run.
        other_key = await api.post(
            "/api/workflows", json=debounced("double", [3], key="k-b", delay_seconds=HOUR)
        )
        other_type = await api.post(
            "/api/workflows", json=debounced("countdown", [3], key="k-a", delay_seconds=HOUR)
        )
        assert other_key.status_code == other_type.status_code == 201
        ids = {r.json()["id"] for r in (first, other_key, other_type)}
        assert len(ids) == 3
        listed = (await reader.get("/api/workflows")).json()["items"]
        assert sorted(item["id"] for item in listed) == sorted(ids)


@pytest.mark.both_databases
async def test_max_delay_bounds_the_start(client: perdure.Client, api: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    body = debounced("double", [1], key="k-max", delay_seconds=HOUR, max_delay_seconds=60)
    started = await api.post("/api/workflows", json=body)
    after = datetime.now(UTC)
    assert started.status_code == 201, started.text
    described = await client.get_handle(started.json()["id"]).describe()
    assert described.starts_at is not None
    # A minute from the request, not an hour. (Bounded by the time after the
    # answer too: a request took 1.5 s on a slow machine.)
    slack = timedelta(milliseconds=1)
    minute = timedelta(seconds=60)
    assert before + minute - slack <= described.starts_at <= after + minute + slack


@pytest.mark.both_databases
async def test_a_bad_debounce_is_422_and_starts_nothing(api: httpx.AsyncClient) -> None:
    ok = {"key": "k", "delay_seconds": 30}
    generated = "cannot be given with debounce: a debounced run's id is generated"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"id": "d-1", "debounce": ok}, f"body: id {generated}"),
        ({"id_conflict": "use_existing", "debounce": ok}, f"body: id_conflict {generated}"),
        ({"id_conflict": "fail", "debounce": ok}, f"body: id_conflict {generated}"),
        (
            {"id": "d-2", "id_conflict": "fail", "debounce": ok},
            f"body: id and id_conflict {generated}",
        ),
        (
            {"debounce": {**ok, "delay_seconds": 0}},
            "body.debounce.delay_seconds: Input should be greater than 0",
        ),
        (
            {"debounce": {**ok, "delay_seconds": -5}},
            "body.debounce.delay_seconds: Input should be greater than 0",
        ),
        (
            {"debounce": {**ok, "delay_seconds": 1e-9}},
            "body.debounce.delay_seconds: Input should be at least 0.000001",
        ),
        (
            {"debounce": {**ok, "delay_seconds": 1e12}},
            "body.debounce.delay_seconds: Input should be less than or equal to",
        ),
        (
            {"debounce": {**ok, "delay_seconds": True}},
            "body.debounce.delay_seconds: Input should be a valid number",
        ),
        (
            {"debounce": {**ok, "delay_seconds": "30"}},
            "body.debounce.delay_seconds: Input should be a valid number",
        ),
        ({"debounce": {"key": "k"}}, "body.debounce.delay_seconds: Field required"),
        (
            {"debounce": {**ok, "key": ""}},
            "body.debounce.key: String should have at least 1 character",
        ),
        ({"debounce": {"delay_seconds": 30}}, "body.debounce.key: Field required"),
        (
            {"debounce": {**ok, "max_delay_seconds": 0}},
            "body.debounce.max_delay_seconds: Input should be greater than 0",
        ),
        (
            {"debounce": {**ok, "max_delay_seconds": -1}},
            "body.debounce.max_delay_seconds: Input should be greater than 0",
        ),
        ({"debounce": {**ok, "delay": 30}}, "body.debounce.delay: Extra inputs are not permitted"),
        ({"debounce": "k"}, "body.debounce: Input should be a valid dictionary"),
    ]
    for fields, message in cases:
        refused = await api.post("/api/workflows", json={"workflow": "double", **fields})
        assert refused.status_code == 422, (fields, refused.text)
        assert refused.json()["message"].startswith(message), (fields, refused.json())
    # A key the Client refuses (PostgreSQL's text cannot hold NUL): 422 too.
    nul = await api.post(
        "/api/workflows", json={"workflow": "double", "debounce": {**ok, "key": "a\x00b"}}
    )
    assert nul.status_code == 422 and "key must not hold the NUL character" in nul.json()["detail"]
    assert (await api.get("/api/workflows")).json()["items"] == []
    assert (await api.get("/api/workflows/d-1")).status_code == 404


async def test_the_openapi_document_describes_debounce(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    body = spec["paths"]["/api/workflows"]["post"]["requestBody"]["content"]["application/json"]
    assert "$ref" not in json.dumps(body)  # (inline: "#/$defs/..." is no address in the document)
    field = body["schema"]["properties"]["debounce"]
    assert "docs/workflows.md" in field["description"] and "id_conflict" in field["description"]
    shape = next(kind for kind in field["anyOf"] if kind.get("type") == "object")
    assert set(shape["properties"]) == {"key", "delay_seconds", "max_delay_seconds"}
    assert sorted(shape["required"]) == ["delay_seconds", "key"]
    assert shape["additionalProperties"] is False
    assert shape["properties"]["delay_seconds"]["exclusiveMinimum"] == 0
    assert shape["properties"]["key"]["minLength"] == 1


# ---------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("debounce-cli"))


@pytest.fixture(scope="module")
def sync(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


def start(db: str, *args: str) -> tuple[str, ...]:
    return ("start", "double", "-q", QUEUE, "--db", db, *args)


def test_start_with_one_debounce_key_twice_is_one_run(db: str, sync: perdure.SyncClient) -> None:
    first = cli(*start(db, "--arg", "1", "--debounce-key", "c-a", "--debounce", "1h"))
    assert first.returncode == 0, first.stderr
    words = said(first)
    assert "Debounced double id " in words and "on task queue debounced" in words
    assert "it starts 1h after the last start with key 'c-a'" in words
    # (The second start needs the first's run; the other key's is independent of it.)
    again, other = cli_all(
        start(db, "--arg", "2", "--debounce-key", "c-a", "--debounce", "1h", "--json"),
        start(db, "--arg", "3", "--debounce-key", "c-b", "--debounce", "1h", "--json"),
    )
    assert again.returncode == other.returncode == 0, (again.stderr, other.stderr)
    ident = json.loads(again.stdout)["id"]
    run_id = json.loads(again.stdout)["run_id"]
    assert f"id {ident} (run {run_id})" in words  # the first start's run
    assert json.loads(other.stdout)["id"] != ident

    described = sync.get_handle(ident).describe()
    assert described.input == {"args": [2], "kwargs": {}} and described.starts_at is not None
    assert described.debounce_key == "c-a"
    assert sync.get_handle(ident).history() == []
    (shown,) = cli_all(("show", ident, "--db", db))
    assert "debounced  key 'c-a': a start with it moves the start" in shown.stdout, shown.stdout


def test_debounce_max_bounds_the_start(db: str, sync: perdure.SyncClient) -> None:
    before = datetime.now(UTC)
    done = cli(*start(db, "--debounce-key", "c-max", "--debounce", "1h", "--debounce-max", "1m"))
    assert done.returncode == 0, done.stderr
    assert "1h after the last start with key 'c-max' (at most 1m after the first)" in said(done)
    found = re.search(r" id (\S+) \(run ", done.stdout)
    assert found is not None, done.stdout
    described = sync.get_handle(found[1]).describe()
    assert described.starts_at is not None
    assert described.starts_at <= before + timedelta(seconds=61)


def test_a_bad_debounce_exits_2_and_starts_nothing(db: str, sync: perdure.SyncClient) -> None:
    generated = "cannot be given with --debounce-key: a debounced run's id is generated"
    cases: list[tuple[tuple[str, ...], str]] = [
        (("--debounce-key", "k"), "Invalid value for '--debounce-key': needs --debounce"),
        (("--debounce", "30s"), "Invalid value for '--debounce': needs --debounce-key"),
        (("--debounce-max", "1m"), "'--debounce-max': needs --debounce-key and --debounce"),
        (("--debounce-key", "k", "--debounce-max", "1m"), "'--debounce-key': needs --debounce"),
        (("--debounce-key", "k", "--debounce", "30s", "--id", "x"), f"'--id': {generated}"),
        (
            ("--debounce-key", "k", "--debounce", "1s", "--id-conflict", "fail"),
            f"'--id-conflict': {generated}",
        ),
        (("--debounce-key", "", "--debounce", "30s"), "'--debounce-key': must not be empty"),
        (("--debounce-key", "k", "--debounce", "0s"), "'--debounce': '0s': must be more than 0"),
        (("--debounce-key", "k", "--debounce", "40000d"), "at most 36525d"),
        (("--debounce-key", "k", "--debounce", "soon"), "'soon' is not a duration"),
        (
            ("--debounce-key", "k", "--debounce", "1s", "--debounce-max", "0"),
            "'--debounce-max': '0': must be more",
        ),
    ]
    # (Independent: each is refused before it connects.)
    results = cli_all(*(("start", "never_started", "--db", db, *args) for args, _ in cases))
    for (args, message), done in zip(cases, results, strict=True):
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in said(done), (args, said(done))
    assert sync.list(workflow="never_started") == []


def test_start_help_names_the_options() -> None:
    helped = said(cli("start", "--help"))
    for text in ("--debounce-key KEY", "--debounce DURATION", "--debounce-max DURATION"):
        assert text in helped, helped
