"""Fairness keys on the operator surfaces: ``perdure start --fairness-key``
(through the real entry point, on SQLite), what ``show`` and ``show
--json`` print, and ``perdure queue show``'s keys; the HTTP API's start
body (``fairness_key``) and its description, on SQLite and PostgreSQL; the
workflow page's key (headless chromium, skipped without it as the other
browser tests are). A bad key is refused saying what is wrong, and nothing
is started.

How claims take turns by key is tested in tests/store/test_store_fairness.py
and tests/e2e/test_fairness.py; here, only that each surface carries the
key to the Client and shows what the run holds.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import surface_workflows as wf
from surface_helpers import cli_all, migrated_sqlite, sync_client

import perdure


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("fairness-cli"))


@pytest.fixture(scope="module")
def sync(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


def test_start_fairness_key_is_stored_and_shown(db: str, sync: perdure.SyncClient) -> None:
    keyed, plain = cli_all(
        ("start", "double", "--arg", "2", "--id", "cli-f-1", "--fairness-key", "acme", "--db", db),
        ("start", "double", "--arg", "2", "--id", "cli-f-plain", "--db", db),
    )
    for done in (keyed, plain):
        assert done.returncode == 0, (done.args, done.stderr)
    assert "on task queue default for key acme" in keyed.stdout
    assert "key" not in plain.stdout
    assert sync.get_handle("cli-f-1").describe().fairness_key == "acme"
    assert sync.get_handle("cli-f-plain").describe().fairness_key is None

    shown, shown_json, plain_shown, plain_json = cli_all(
        ("show", "cli-f-1", "--db", db),
        ("show", "cli-f-1", "--json", "--db", db),
        ("show", "cli-f-plain", "--db", db),
        ("show", "cli-f-plain", "--json", "--db", db),
    )
    assert "  fairness   key acme" in shown.stdout.splitlines(), shown.stdout
    assert json.loads(shown_json.stdout)["fairness_key"] == "acme"
    assert "fairness" not in plain_shown.stdout
    assert json.loads(plain_json.stdout)["fairness_key"] is None


def test_a_bad_fairness_key_starts_nothing(db: str, sync: perdure.SyncClient) -> None:
    (done,) = cli_all(("start", "double", "--id", "cli-f-bad", "--fairness-key=", "--db", db))
    assert done.returncode != 0, (done.stdout, done.stderr)
    said = " ".join(done.stderr.replace("│", " ").split())
    assert "fairness_key must be a non-empty string" in said, said
    with pytest.raises(perdure.WorkflowNotFoundError):
        sync.get_handle("cli-f-bad").describe()


UNSERVED = "nobody-serves-this-queue"


async def four_queued(db: str) -> None:
    """Four runs' first turns queue a step each on a queue no worker serves:
    two of key acme, one of globex, one unkeyed."""
    client = await perdure.Client.connect(db)
    async with client, perdure.Worker(client, [wf.waits_on_an_unserved_queue]):
        for n, key in enumerate(["acme", "acme", "globex", None]):
            await client.start(wf.waits_on_an_unserved_queue, f"n{n}", fairness_key=key)
        deadline = time.monotonic() + 15
        while (await client.describe_queue(UNSERVED)).waiting < 4:
            assert time.monotonic() < deadline, "the four steps never queued"
            await asyncio.sleep(0.02)


async def test_a_queues_waiting_is_shown_by_key(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'keys.db'}"
    unserved = UNSERVED
    await four_queued(db)
    shown, as_json, listed = cli_all(
        ("queue", "show", unserved, "--db", db),
        ("queue", "show", unserved, "--json", "--db", db),
        ("queue", "list", "--db", db),
    )
    row = next(line for line in listed.stdout.splitlines() if unserved in line)
    assert "4 (2 keys)" in row, listed.stdout
    said = shown.stdout.splitlines()
    assert "  keys         2 with tasks waiting, served in turn   (acme: 2, globex: 1)" in said
    answer = json.loads(as_json.stdout)
    assert (answer["waiting_keys"], answer["waiting_by_key"]) == (2, {"acme": 2, "globex": 1})


async def test_a_limit_per_key_is_set_and_shown(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'key-limits.db'}"
    await four_queued(db)
    [limited, refused] = cli_all(
        ("queue", "limit", UNSERVED, "--max-running-per-key", "1", "--db", db),
        ("queue", "limit", UNSERVED, "--max-running-per-key", "0", "--db", db),
    )
    assert limited.returncode == 0, limited.stderr
    assert f"Task queue {UNSERVED}: at most 1 running per fairness key" in limited.stdout
    assert refused.returncode == 2
    assert "max_running_per_key must be between 1 and 1,000,000, not 0" in refused.stderr
    # A worker's claim (of up to ten) starts one of each key: acme's second waits.
    client = await perdure.Client.connect(db)
    async with client:
        taken = await client.store.claim_activity_tasks([UNSERVED], "w", 600, 10)
    assert sorted(t.fairness_key for t in taken) == ["", "acme", "globex"]
    shown, as_json = cli_all(
        ("queue", "show", UNSERVED, "--db", db), ("queue", "show", UNSERVED, "--json", "--db", db)
    )
    said = shown.stdout.splitlines()
    assert "  limits       at most 1 running per fairness key" in said, shown.stdout
    assert "  running by key   acme: 1, globex: 1   (3 at the limit of 1)" in said, shown.stdout
    answer = json.loads(as_json.stdout)
    assert (answer["running"], answer["waiting"], answer["keys_at_limit"]) == (3, 1, 3)
    assert answer["running_by_key"] == {"acme": 1, "globex": 1}


async def test_a_rate_limit_per_key_is_set_and_shown(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'key-rates.db'}"
    await four_queued(db)
    [limited, refused] = cli_all(
        ("queue", "limit", UNSERVED, "--max-starts-per-key", "1", "--per", "1h", "--db", db),
        ("queue", "limit", UNSERVED, "--max-starts-per-key", "1", "--db", db),
    )
    assert limited.returncode == 0, limited.stderr
    said = f"Task queue {UNSERVED}: at most 1 of one fairness key started per 1h"
    assert said in limited.stdout, limited.stdout
    assert refused.returncode == 2
    assert "a rate limit needs both max_starts and per, or max_starts_per_key and per" in (
        refused.stderr
    )
    # A worker's claim starts one of each key; acme's second waits for the
    # window, though the first attempt ended.
    client = await perdure.Client.connect(db)
    async with client:
        taken = await client.store.claim_activity_tasks([UNSERVED], "w", 600, 10)
        assert sorted(t.fairness_key for t in taken) == ["", "acme", "globex"]
        error = {"type": "ConnectionError", "message": "down"}
        assert await client.store.retry_activity(taken[0], error, 3600)
    shown, as_json = cli_all(
        ("queue", "show", UNSERVED, "--db", db), ("queue", "show", UNSERVED, "--json", "--db", db)
    )
    said = shown.stdout.splitlines()
    assert "  limits       at most 1 of one fairness key started per 1h" in said, shown.stdout
    assert "  started      3 in the rate limit's window" in said, shown.stdout
    assert (
        "  started by key   (unkeyed): 1, acme: 1, globex: 1   (3 at the limit of 1 per 1h)" in said
    ), shown.stdout
    answer = json.loads(as_json.stdout)
    assert (answer["running"], answer["keys_at_limit"], answer["started"]) == (2, 3, 3)
    assert answer["started_by_key"] == {"": 1, "acme": 1, "globex": 1}
    assert answer["limits"]["max_starts_per_key"] == 1


def test_the_running_by_key_line_says_when_only_the_unkeyed_are_at_the_limit() -> None:
    from perdure.cli._queue_cmd import _running_by_key
    from perdure.queues import QueueInfo, QueueLimits

    def info(limits: QueueLimits | None, running: dict[str, int], at_limit: int) -> QueueInfo:
        return QueueInfo(
            "q", limits, 2, 3, 0, 0, None, running_by_key=running, keys_at_limit=at_limit
        )

    per_key = QueueLimits(max_running_per_key=2)
    assert (
        _running_by_key(info(per_key, {}, 1)) == "none keyed   (1 at the limit of 2: the unkeyed)"
    )
    assert _running_by_key(info(per_key, {"acme": 2}, 1)) == "acme: 2   (1 at the limit of 2)"
    assert _running_by_key(info(per_key, {}, 0)) == ""  # (no line)
    assert _running_by_key(info(None, {"acme": 2}, 0)) == "acme: 2"
    # With a rate limit per key too, a key at either limit counts.
    both = QueueLimits(max_running_per_key=2, max_starts_per_key=5, per=timedelta(minutes=1))
    assert _running_by_key(info(both, {"acme": 1}, 2)) == "acme: 1   (2 at a limit per key)"


def test_set_fairness_key_changes_an_open_runs_key(db: str, sync: perdure.SyncClient) -> None:
    (started,) = cli_all(
        ("start", "double", "--arg", "2", "--id", "cli-sk", "--fairness-key", "acme", "--db", db)
    )
    assert started.returncode == 0, started.stderr
    (moved,) = cli_all(("set-fairness-key", "cli-sk", "globex", "--db", db))
    assert moved.returncode == 0 and "now has fairness key 'globex'" in moved.stdout, moved.stderr
    assert sync.get_handle("cli-sk").describe().fairness_key == "globex"
    neither, both, empty, nobody = cli_all(
        ("set-fairness-key", "cli-sk", "--db", db),
        ("set-fairness-key", "cli-sk", "initech", "--no-key", "--db", db),
        ("set-fairness-key", "cli-sk", "", "--db", db),
        ("set-fairness-key", "cli-nobody", "acme", "--db", db),
    )
    for bad in (neither, both):
        said = " ".join(bad.stderr.replace("│", " ").split())
        assert bad.returncode == 2 and "give a KEY or --no-key" in said, said
    said = " ".join(empty.stderr.replace("│", " ").split())
    assert empty.returncode == 2 and "fairness_key must be a non-empty string" in said, said
    assert nobody.returncode == 3, nobody.stderr
    assert sync.get_handle("cli-sk").describe().fairness_key == "globex"
    (cleared,) = cli_all(("set-fairness-key", "cli-sk", "--no-key", "--db", db))
    assert cleared.returncode == 0 and "now has no fairness key" in cleared.stdout, cleared.stderr
    assert sync.get_handle("cli-sk").describe().fairness_key is None
    sync.get_handle("cli-sk").terminate("done")
    (ended,) = cli_all(("set-fairness-key", "cli-sk", "acme", "--db", db))
    assert ended.returncode == 5 and "terminated" in ended.stderr, ended.stderr


async def start(api: httpx.AsyncClient, ident: str, **fields: Any) -> httpx.Response:
    body = {"workflow": "double", "args": [1], "id": ident, **fields}
    return await api.post("/api/workflows", json=body)


@pytest.mark.both_databases
async def test_a_start_fairness_key_is_described(api: httpx.AsyncClient) -> None:
    for ident, fields in (
        ("api-f-acme", {"fairness_key": "acme"}),
        ("api-f-plain", {}),
        ("api-f-null", {"fairness_key": None}),
    ):
        started = await start(api, ident, **fields)
        assert started.status_code == 201, started.text
    described = {}
    for ident in ("api-f-acme", "api-f-plain", "api-f-null"):
        answer = await api.get(f"/api/workflows/{ident}")
        assert answer.status_code == 200, answer.text
        described[ident] = answer.json()["fairness_key"]
    assert described == {"api-f-acme": "acme", "api-f-plain": None, "api-f-null": None}


@pytest.mark.both_databases
async def test_set_fairness_key_over_http(api: httpx.AsyncClient) -> None:
    assert (await start(api, "api-sk", fairness_key="acme")).status_code == 201
    path = "/api/workflows/api-sk/fairness-key"

    async def key() -> Any:
        return (await api.get("/api/workflows/api-sk")).json()["fairness_key"]

    moved = await api.post(path, json={"fairness_key": "globex"})
    assert moved.status_code == 202, moved.text
    assert moved.json() == {"id": "api-sk", "action": "fairness key globex"}
    assert await key() == "globex"
    for body in ({"fairness_key": ""}, {"fairness_key": 7}, {"fairness_key": ["a"]}, {}, None):
        refused = await api.post(path, json=body)
        assert refused.status_code == 422, (body, refused.text)
    nul = await api.post(path, json={"fairness_key": "a\x00b"})
    assert nul.status_code == 422 and "must not hold the NUL character" in nul.text, nul.text
    assert await key() == "globex"
    cleared = await api.post(path, json={"fairness_key": None})
    assert cleared.status_code == 202 and cleared.json()["action"] == "no fairness key"
    assert await key() is None
    nobody = await api.post("/api/workflows/api-nobody/fairness-key", json={"fairness_key": "a"})
    assert nobody.status_code == 404
    assert (await api.post("/api/workflows/api-sk/terminate")).status_code == 200
    ended = await api.post(path, json={"fairness_key": "acme"})
    assert ended.status_code == 409, ended.text


@pytest.mark.both_databases
async def test_a_bad_fairness_key_is_refused_and_starts_nothing(api: httpx.AsyncClient) -> None:
    for n, (value, says) in enumerate(
        [
            ("", "fairness_key must be a non-empty string"),
            ("a\x00b", "fairness_key must not hold the NUL character"),
            (7, "body.fairness_key: Input should be a valid string"),
            (["acme"], "body.fairness_key: Input should be a valid string"),
        ]
    ):
        refused = await start(api, f"api-f-bad-{n}", fairness_key=value)
        assert refused.status_code == 422, (value, refused.text)
        assert says in refused.text, (value, refused.text)
        assert (await api.get(f"/api/workflows/api-f-bad-{n}")).status_code == 404


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, str]]:
    """A browser page maker, the open server's URL and the database (the
    browser tests' stack); skips the test without chromium, as they do."""
    import browser_support as bs  # (importing it skips without chromium)

    folder: Path = tmp_path_factory.mktemp("fairness-ui")
    for browser in bs.launch():
        for stack in bs.serve(folder, [wf.__file__], "a" * 24, "r" * 24):
            yield browser, stack.open_url, stack.db


def test_the_workflow_page_shows_the_key(ui: tuple[Any, str, str]) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, db = ui
    with perdure.SyncClient.connect(db) as client:
        client.start("double", 1, id="ui-f-acme", fairness_key="acme").result(timeout=20)
        client.start("double", 1, id="ui-f-plain").result(timeout=20)
    for page in bs.new_page(browser):
        page.goto(f"{url}#/workflows/ui-f-acme")
        expect(page.locator("#wf-fairness")).to_have_text("key acme")
        page.goto(f"{url}#/workflows/ui-f-plain")
        expect(page.locator("#wf-priority")).to_have_text("priority 3")
        expect(page.locator("#wf-fairness")).to_have_count(0)


def test_an_admin_changes_an_open_runs_key_from_its_page(ui: tuple[Any, str, str]) -> None:
    import browser_support as bs
    from playwright.sync_api import Route, expect

    browser, url, db = ui
    with perdure.SyncClient.connect(db) as client:
        waiting = client.start("awaits_an_event", "x", id="ui-f-move", fairness_key="acme")
        plain = client.start("awaits_an_event", "y", id="ui-f-unkeyed")
        try:
            for page in bs.new_page(browser):
                page.goto(f"{url}#/workflows/ui-f-move")
                chip = page.locator("#wf-fairness")
                expect(chip).to_contain_text("key acme")
                page.locator("#key-button").click()
                expect(page.locator("#key-input")).to_have_value("acme")
                page.locator("#key-input").fill("  ")
                page.locator("#key-set").click()
                expect(page.locator("#key-error")).to_contain_text("non-empty")
                page.locator("#key-input").fill("globex")
                page.locator("#key-set").click()
                expect(page.locator(".toast")).to_contain_text("Key globex")
                expect(chip).to_contain_text("key globex")
                assert waiting.describe().fairness_key == "globex"
                page.locator("#key-button").click()
                page.locator("#key-remove").click()
                expect(chip).to_contain_text("no key")
                assert waiting.describe().fairness_key is None
                # An unkeyed open run: the admin may give it one.
                page.goto(f"{url}#/workflows/ui-f-unkeyed")
                expect(page.locator("#wf-fairness")).to_contain_text("no key")
                page.locator("#key-button").click()
                expect(page.locator("#key-remove")).to_be_hidden()
                page.locator("#key-input").fill("initech")
                page.locator("#key-set").click()
                expect(page.locator("#wf-fairness")).to_contain_text("key initech")
            assert plain.describe().fairness_key == "initech"
            for page in bs.new_page(browser):  # a read-only viewer: the key, no button

                def read_only(route: Route) -> None:
                    route.fulfill(json={"role": "read", "auth_required": True})

                page.route(re.compile(r".*/api/whoami$"), read_only)
                page.goto(f"{url}#/workflows/ui-f-unkeyed")
                expect(page.locator("#token-button")).to_have_text("Token: read")
                expect(page.locator("#wf-fairness")).to_have_text("key initech")
                expect(page.locator("#key-button")).to_have_count(0)
            changed = [
                e["fairness_key"] for e in waiting.history() if e["type"] == "FairnessKeyChanged"
            ]
            deadline = time.monotonic() + 15  # (the worker takes both changes in)
            while len(changed) < 2:
                assert time.monotonic() < deadline, f"FairnessKeyChanged recorded {changed}"
                time.sleep(0.05)
                changed = [
                    e["fairness_key"]
                    for e in waiting.history()
                    if e["type"] == "FairnessKeyChanged"
                ]
            assert changed == ["globex", ""]
        finally:
            waiting.terminate("done")
            plain.terminate("done")


def test_an_admin_changes_the_matching_runs_options_from_the_list(
    ui: tuple[Any, str, str],
) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, db = ui
    with perdure.SyncClient.connect(db) as client:
        runs = [
            client.start("awaits_an_event", f"b{n}", id=f"ui-fb-{n}", fairness_key="acme")
            for n in range(2)
        ]
        try:
            for page in bs.new_page(browser):
                page.goto(f"{url}#/?status=running&search=ui-fb-")
                expect(page.locator("tbody tr")).to_have_count(2)
                page.click("#batch-button")
                page.select_option("#batch-action", "update-options")
                expect(page.locator("#batch-reason-label")).to_be_hidden()
                page.click("#batch-check")  # (nothing chosen: said in the dialog)
                expect(page.locator("#batch-error")).to_contain_text("Choose a priority")
                page.select_option("#batch-priority", "1")
                page.fill("#batch-key", "acme-gold")
                page.check("#batch-no-key")
                page.click("#batch-check")
                expect(page.locator("#batch-error")).to_contain_text("not both")
                page.uncheck("#batch-no-key")
                page.click("#batch-check")  # a dry run: says which, changes nothing
                expect(page.locator("#batch-preview")).to_have_text(
                    "2 runs match (first ones: ui-fb-1, ui-fb-0)."
                )
                expect(page.locator("#batch-confirm")).to_have_text("Update 2 runs")
                assert {(r.describe().priority, r.describe().fairness_key) for r in runs} == {
                    (3, "acme")
                }
                page.click("#batch-confirm")
                expect(page.locator("#batch-summary")).to_have_text(
                    "Updated the options of 2 of 2 runs matched: 0 skipped, 0 failed."
                )
            assert {(r.describe().priority, r.describe().fairness_key) for r in runs} == {
                (1, "acme-gold")
            }
        finally:
            for handle in runs:
                handle.terminate("done")


def test_a_schedules_key_through_the_cli(tmp_path: Path) -> None:
    db = migrated_sqlite(tmp_path)
    made, plain = cli_all(
        ("schedule", "create", "acme-nightly", "double", "--every", "1h", "--fairness-key",
         "acme", "--db", db),
        ("schedule", "create", "plain", "double", "--every", "1h", "--db", db),
    )  # fmt: skip
    assert made.returncode == 0 and plain.returncode == 0, (made.stderr, plain.stderr)
    shown, shown_json, plain_shown, bad = cli_all(
        ("schedule", "show", "acme-nightly", "--db", db),
        ("schedule", "show", "acme-nightly", "--json", "--db", db),
        ("schedule", "show", "plain", "--db", db),
        ("schedule", "create", "bad", "double", "--every", "1h", "--fairness-key=", "--db", db),
    )
    assert "on task queue default at priority 3, key acme" in shown.stdout, shown.stdout
    assert json.loads(shown_json.stdout)["fairness_key"] == "acme"
    assert "key" not in plain_shown.stdout
    assert bad.returncode == 2 and "fairness_key must be a non-empty string" in bad.stderr


def test_the_queues_page_shows_the_keys_waiting_weighted_and_at_their_limit(
    ui: tuple[Any, str, str],
) -> None:
    import browser_support as bs
    from playwright.sync_api import expect

    browser, url, db = ui
    unserved = "nobody-serves-this-queue"

    async def queue_them() -> None:
        client = await perdure.Client.connect(db)
        async with client, perdure.Worker(client, [wf.waits_on_an_unserved_queue]):
            for n, key in enumerate(["acme", "acme", "globex"]):
                await client.start(wf.waits_on_an_unserved_queue, f"ui-k{n}", fairness_key=key)
            deadline = time.monotonic() + 15
            while (await client.describe_queue(unserved)).waiting < 3:
                assert time.monotonic() < deadline, "the three steps never queued"
                await asyncio.sleep(0.02)
            # One of each key at most: a claim starts acme's first and globex's.
            await client.set_queue_limits(unserved, max_running_per_key=1)
            await client.set_fairness_weight(unserved, "globex", 3)
            assert len(await client.store.claim_activity_tasks([unserved], "w", 600, 10)) == 2

    # (In a thread of its own: the browser's driver runs an event loop here.)
    queuing = threading.Thread(target=asyncio.run, args=(queue_them(),))
    queuing.start()
    queuing.join(timeout=30)
    assert not queuing.is_alive()
    for page in bs.new_page(browser):
        page.goto(f"{url}#/queues")
        keys = page.locator(f'tr[data-queue="{unserved}"] .waiting-keys')
        expect(keys).to_have_text("1 key")
        assert "acme: 1" in (keys.get_attribute("title") or "")
        row = page.locator(f'tr[data-queue="{unserved}"]')
        expect(row).to_contain_text("at most 1 running per key")
        at_limit = row.locator(".keys-at-limit")
        expect(at_limit).to_have_text("2 keys at the limit")
        assert at_limit.get_attribute("title") == "Running, by key: acme: 1, globex: 1"
        weights = row.locator(".weighted-keys")
        expect(weights).to_have_text("1 key weighted")
        assert weights.get_attribute("title") == "Tasks per turn (the other keys: 1): globex: 3"
