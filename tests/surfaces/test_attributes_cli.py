"""Search attributes through the real entry point (``python -m perdure``), on
SQLite, with a real worker process: ``start --attr`` (typed
values), ``list --attr`` (every term must match, as text), what ``show``,
``history`` and ``list --json`` print, and bad terms: exit 2, nothing written.

Set-up and waiting go through an in-process SyncClient; independent commands
run side by side (``cli_all``). The commands add no SQL of their own: the
Client's listing and starts are tested on both databases in
tests/e2e/test_search_attributes.py, and the HTTP API's in
test_attributes_api.py (on both); here one database keeps the suite short.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attribute_workflows as aw
import pytest
from surface_helpers import (
    Proc,
    cli_all,
    migrated_sqlite,
    sync_client,
    wait_for,
    worker_serving,
)

import perdure
from perdure.cli._control_cmd import typed_value


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("attributes-cli"))


@pytest.fixture(scope="module")
def client(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


@pytest.fixture(scope="module")
def worker(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    yield from worker_serving(aw.__file__, db, tmp_path_factory.mktemp("attributes-worker"))


def listed(done: Any) -> list[str]:
    assert done.returncode == 0, (done.args, done.stderr)
    return [item["id"] for item in json.loads(done.stdout)["items"]]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("120", 120),
        ("-3", -3),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("true", True),
        ("false", False),
        ('"1001"', "1001"),  # (JSON quotes: a string of digits stored as one)
        ('""', ""),
        ("c-42", "c-42"),
        ("007", "007"),  # not JSON: a string
        ("New York", "New York"),
        ("", ""),
        ("null", "null"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("1e999", "1e999"),  # (would be an infinite float)
        (" 7", " 7"),  # (its space kept: not the number)
        ("[1]", "[1]"),
        ('{"a": 1}', '{"a": 1}'),
        ("True", "True"),
    ],
)
def test_a_typed_value_is_a_json_scalar_or_the_text(text: str, value: object) -> None:
    typed = typed_value(text)
    assert typed == value and type(typed) is type(value), (text, typed)


def test_start_stores_typed_attributes_and_show_prints_them(
    db: str, client: perdure.SyncClient
) -> None:
    attrs = [
        *("--attr", "customer=c-42", "--attr", "amount=120", "--attr", "ratio=0.5"),
        *("--attr", "vip=true", "--attr", "city=New York", "--attr", 'order="1001"'),
    ]
    (started, plain) = cli_all(
        ("start", "double", "--arg", "2", "--id", "cli-attr-1", *attrs, "--json", "--db", db),
        ("start", "double", "--arg", "3", "--id", "cli-attr-plain", "--db", db),
    )
    assert started.returncode == 0 and plain.returncode == 0, (started.stderr, plain.stderr)
    assert json.loads(started.stdout)["id"] == "cli-attr-1"
    stored = client.get_handle("cli-attr-1").describe().search_attributes
    assert stored == {
        "customer": "c-42",
        "amount": 120,
        "ratio": 0.5,
        "vip": True,
        "city": "New York",
        "order": "1001",
    }
    assert [type(stored[k]) for k in ("amount", "ratio", "vip", "order")] == [int, float, bool, str]

    shown, as_json, bare, helped = cli_all(
        ("show", "cli-attr-1", "--db", db),
        ("show", "cli-attr-1", "--json", "--db", db),
        ("show", "cli-attr-plain", "--db", db),
        ("start", "--help"),
    )
    assert shown.returncode == 0, shown.stderr
    block = shown.stdout.split("Search attributes\n", 1)[1].splitlines()[:6]
    assert block == [
        "  amount = 120",
        '  city = "New York"',
        '  customer = "c-42"',
        '  order = "1001"',
        "  ratio = 0.5",
        "  vip = true",
    ]
    assert json.loads(as_json.stdout)["search_attributes"] == stored
    assert bare.returncode == 0 and "Search attributes" not in bare.stdout
    assert "amount=120" in helped.stdout and "stores the int 120" in " ".join(helped.stdout.split())


def test_list_finds_the_runs_with_every_attribute_as_text(
    db: str, client: perdure.SyncClient
) -> None:
    runs: dict[str, dict[str, Any]] = {
        "l-1": {"shop": "s-1", "total": 120, "rush": True},
        "l-2": {"shop": "s-1", "total": "120"},
        "l-3": {"shop": "s-1", "total": 120.0},
        "l-4": {"shop": "s-2", "total": 120, "rush": True},
        "l-5": {"shop": "s-1", "total": 7},
        "l-6": {},
    }
    for ident, attributes in runs.items():
        client.start("double", 1, id=ident, search_attributes=attributes)
    one, both, as_text, text_and, none, table, page, plain = cli_all(
        ("list", "--attr", "shop=s-1", "--json", "--db", db),
        ("list", "--attr", "shop=s-1", "--attr", "rush=true", "--json", "--db", db),
        ("list", "--attr", "total=120", "--json", "--db", db),
        ("list", "--attr", "total=120", "--attr", "shop=s-2", "--json", "--db", db),
        ("list", "--attr", "shop=s-3", "--db", db),
        ("list", "--attr", "shop=s-1", "--attr", "total=7", "--db", db),
        ("list", "--attr", "shop=s-1", "--limit", "2", "--json", "--db", db),
        ("list", "--search", "l-6", "--json", "--db", db),
    )
    assert listed(one) == ["l-5", "l-3", "l-2", "l-1"]
    assert listed(both) == ["l-1"]
    assert listed(as_text) == ["l-4", "l-3", "l-2", "l-1"]
    assert listed(text_and) == ["l-4"]
    assert none.returncode == 0 and "No workflow runs match." in none.stdout
    assert table.returncode == 0 and "l-5" in table.stdout and "l-1" not in table.stdout
    first = json.loads(page.stdout)
    assert [item["id"] for item in first["items"]] == ["l-5", "l-3"]
    rows = {item["id"]: item for item in first["items"]}
    assert rows["l-3"]["search_attributes"] == {"shop": "s-1", "total": 120.0}
    (rest,) = cli_all(
        ("list", "--attr", "shop=s-1", "--limit", "2", "--cursor", first["next_cursor"],
         "--json", "--db", db),
    )  # fmt: skip
    assert listed(rest) == ["l-2", "l-1"]
    assert json.loads(plain.stdout)["items"][0]["search_attributes"] == {}


def test_list_finds_the_runs_in_a_range(db: str, client: perdure.SyncClient) -> None:
    """``--attr NAME>=VALUE`` (``>``, ``<=``, ``<``): a number compares the
    runs' numbers, other text their strings (by code point), a quoted one
    is a string; a name's two bounds make one range; with a value too."""
    # (Names of their own: the module's runs share one database.)
    runs: dict[str, dict[str, Any]] = {
        "r-1": {"price": 50, "due": "2026-11-30", "postcode": "10000"},
        "r-2": {"price": 120.5, "due": "2026-12-01", "postcode": "9"},
        "r-3": {"price": "120", "due": "2026-12-24", "outlet": "o-1"},
        "r-4": {"price": 999, "due": "2027-01-01", "outlet": "o-1"},
        "r-5": {"price": True, "due": 20261224},
    }
    for ident, attributes in runs.items():
        client.start("double", 1, id=ident, search_attributes=attributes)
    numbers, below, days, zips, with_value, a_page, helped = cli_all(
        ("list", "--attr", "price>=100", "--json", "--db", db),
        ("list", "--attr", "price>50", "--attr", "price<=999", "--json", "--db", db),
        ("list", "--attr", "due>=2026-12-01", "--attr", "due<2027-01-01", "--json", "--db", db),
        ("list", "--attr", 'postcode<"5"', "--json", "--db", db),
        ("list", "--attr", "price>100", "--attr", "outlet=o-1", "--json", "--db", db),
        ("list", "--attr", "price>=0", "--limit", "1", "--json", "--db", db),
        ("list", "--help"),
    )
    assert listed(numbers) == ["r-4", "r-2"]  # (not "120", a string, nor True)
    assert listed(below) == ["r-4", "r-2"]
    assert listed(days) == ["r-3", "r-2"]  # (not 20261224, a number)
    assert listed(zips) == ["r-1"]  # "10000" < "5" < "9" as text
    assert listed(with_value) == ["r-4"]
    assert [item["id"] for item in json.loads(a_page.stdout)["items"]] == ["r-4"]
    assert "NAME>=VALUE" in " ".join(helped.stdout.split())
    client.get_handle("r-2").terminate()
    counted, as_json, none, bad = cli_all(
        ("count", "--attr", "price>=100", "--db", db),
        ("count", "--attr", "price>=100", "--json", "--db", db),
        ("count", "--attr", "price>=100000", "--db", db),
        ("count", "--status", "done", "--db", db),
    )
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.split() == ["2", "runs", "match:", "running", "1,", "terminated", "1"]
    assert json.loads(as_json.stdout)["count"] == 2
    assert json.loads(as_json.stdout)["by_status"]["terminated"] == 1
    assert none.stdout.strip() == "0 runs match"
    assert bad.returncode == 2 and "status must be one of" in " ".join(bad.stderr.split())


def test_what_workflow_code_sets_is_shown_and_found(
    db: str, client: perdure.SyncClient, worker: Proc
) -> None:
    (started,) = cli_all(
        ("start", "tagged_order", "--arg", '"o-9"', "--id", "cli-tagged-1",
         "--attr", "region=eu", "--attr", "draft=true", "--db", db),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    handle = client.get_handle("cli-tagged-1")
    wait_for(lambda: handle.describe().state.get("stage") == "paid", 20, "the run to be paid")
    paid, drafts = cli_all(
        ("list", "--attr", "stage=paid", "--attr", "region=eu", "--json", "--db", db),
        ("list", "--attr", "draft=true", "--json", "--db", db),
    )
    assert listed(paid) == ["cli-tagged-1"] and listed(drafts) == []
    handle.signal("ship")
    assert handle.result(timeout=20) == "o-9 shipped"
    shown, history, shipped, in_eu = cli_all(
        ("show", "cli-tagged-1", "--db", db),
        ("history", "cli-tagged-1", "--db", db),
        ("list", "--attr", "stage=shipped", "--json", "--db", db),
        ("list", "--attr", "region=eu", "--json", "--db", db),
    )
    assert '  stage = "shipped"' in shown.stdout and "region" not in shown.stdout
    lines = [line for line in history.stdout.splitlines() if "SearchAttributesSet" in line]
    assert len(lines) == 2, history.stdout
    assert lines[0].endswith('stage="paid", draft=null')
    assert lines[1].endswith('stage="shipped", region=null')
    assert listed(shipped) == ["cli-tagged-1"] and listed(in_eu) == []


def test_a_bad_term_exits_2_with_the_message_and_writes_nothing(
    db: str, client: perdure.SyncClient
) -> None:
    too_many = [arg for i in range(33) for arg in ("--attr", f"k{i}={i}")]
    cases: dict[tuple[str, ...], str] = {
        ("list", "--attr", "shop"): "--attr takes NAME=VALUE (a search attribute and its value)",
        ("list", "--attr", "=s-1"): "--attr takes NAME=VALUE (a search attribute and its value)",
        ("list", "--attr", "n" * 101 + "=1"): "a search attribute's name is at most 100",
        ("list", "--attr", "total>=x", "--attr", "total<9"): "all numbers or all strings",
        ("list", "--attr", "total>9", "--attr", "total<=9"): "matches nothing",
        ("list", "--attr", "total>=1", "--attr", "total>2"): "gives 'total' two lower bounds",
        ("list", "--attr", "vip<=false"): "needs a number or a string after '<='",
        ("list", "--attr", "shop=s-1", "--attr", "shop<t"): "gives 'shop' a value and a bound",
        ("start", "double", "--id", "cli-bad-1", "--attr", "shop"): "--attr takes NAME=VALUE",
        ("start", "double", "--id", "cli-bad-2", "--attr", "note=" + "x" * 401): (
            "search attribute 'note' is a string of 401 characters"
        ),
        ("start", "double", "--id", "cli-bad-3", "--attr", 'nul="\\u0000"'): (
            "search attribute 'nul' must not hold the NUL character"
        ),
        ("start", "double", "--id", "cli-bad-4", *too_many): (
            "a run has at most 32 search attributes, not 33"
        ),
    }  # fmt: skip
    results = cli_all(*((*args, "--db", db) for args in cases))
    for (args, message), done in zip(cases.items(), results, strict=True):
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in " ".join(done.stderr.replace("│", " ").split()), (args, done.stderr)
    for ident in ("cli-bad-1", "cli-bad-2", "cli-bad-3", "cli-bad-4"):
        with pytest.raises(perdure.WorkflowNotFoundError):
            client.get_handle(ident).describe()
