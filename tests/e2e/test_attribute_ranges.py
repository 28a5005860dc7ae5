"""Range filters on search attributes (``perdure.AttributeRange``): a
listing finds the runs whose number, or string, lies in a range, on both
databases, exactly as a model in Python does (numbers as 64-bit floats,
strings by code point, a bool in no range), whichever index the listing
walks (the range's rows, a value's, or the runs themselves: forced here by
the count it judges by), newest first and paged without gaps; and the rows
written before the ranges (schema SQLite 26 / PostgreSQL 27) are typed by
the upgrade's backfill."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import perdure
from perdure import AttributeRange, workflow
from perdure._attributes import attribute_kind, attribute_text
from perdure._store import sqlattrs, sqlite_schema

# Values of "a" (numbers, and what no number range may match) and of "b"
# (strings in code point order that no collation would keep: "B" < "a" <
# "z" < "é" < "Ω" < "😀"; ISO dates; digits as text).
NUMBERS = [-(10**40), -3, -2.5, 0, 1, 7, 7.0, 7.5, 100, 2**53 + 1, 10**399, 1e300]
OTHERS = ["7", "120", True, False, ""]
STRINGS = ["", "B", "a", "a ", "ab", "z", "é", "Ω", "😀", "2026-12-01", "2026-12-31T23:00"]
STRINGS += ["2027-01-02", "120", "7", "10"]


@workflow.defn
async def held() -> None:
    """Never run (no worker): only its runs' attributes matter here."""
    await workflow.wait_signal("go")


def _number(value: Any) -> float:
    return attribute_kind(value)[1]  # type: ignore[return-value]


def matches(value: Any, wanted: Any) -> bool:
    """The model: whether a run's value matches a filter's."""
    if not isinstance(wanted, AttributeRange):
        return attribute_text(value) == attribute_text(wanted)
    if isinstance(value, bool) or isinstance(value, str) == wanted.numeric:
        return False
    key = _number if wanted.numeric else str
    low, high = wanted.lower, wanted.upper
    if low is not None and not (key(value) >= key(low[0]) if low[1] else key(value) > key(low[0])):
        return False
    return high is None or (key(value) <= key(high[0]) if high[1] else key(value) < key(high[0]))


def started(client: perdure.SyncClient, count: int, seed: int) -> dict[str, dict[str, Any]]:
    """``count`` runs of random attributes ("a", "b", either or none), by id."""
    rng = random.Random(seed)
    runs: dict[str, dict[str, Any]] = {}
    for n in range(count):
        attributes: dict[str, Any] = {}
        if rng.random() < 0.85:
            attributes["a"] = rng.choice(NUMBERS + OTHERS)
        if rng.random() < 0.85:
            attributes["b"] = rng.choice([*STRINGS, 5, 5.5, True])
        client.start(held, id=f"r-{n:03}", search_attributes=attributes)
        runs[f"r-{n:03}"] = attributes
    return runs


@pytest.fixture
def sync_client(db_url: str) -> Iterator[perdure.SyncClient]:
    client = perdure.SyncClient.connect(db_url)
    yield client
    client.close()


def listed(client: perdure.SyncClient, filters: dict[str, Any], limit: int = 1000) -> list[str]:
    return [r.id for r in client.list(limit=limit, search_attributes=filters)]


def expected(runs: dict[str, dict[str, Any]], filters: dict[str, Any]) -> list[str]:
    """The model's answer, newest first (the ids were started in order)."""
    found = [
        run_id
        for run_id, attributes in runs.items()
        if all(name in attributes and matches(attributes[name], w) for name, w in filters.items())
    ]
    return sorted(found, reverse=True)


def _range(kind: str) -> st.SearchStrategy[AttributeRange]:
    more: list[Any] = [-100, 2, 7.25, 10**400] if kind == "n" else ["A", "b", "ä", "2026"]
    pool = [*(NUMBERS if kind == "n" else STRINGS), *more]
    bound = st.sampled_from(pool)
    low = st.one_of(st.none(), st.tuples(st.sampled_from(["gt", "ge"]), bound))
    high = st.one_of(st.none(), st.tuples(st.sampled_from(["lt", "le"]), bound))

    def made(parts: tuple[Any, Any]) -> AttributeRange | None:
        given = dict(p for p in parts if p is not None)
        try:
            return AttributeRange(**given)
        except ValueError:  # (none given, or bounds that cross)
            return None

    return st.tuples(low, high).map(made).filter(lambda r: r is not None)  # type: ignore[return-value]


FILTERS = st.dictionaries(
    st.sampled_from(["a", "b"]),
    st.one_of(
        _range("n"),
        _range("s"),
        st.sampled_from([7, "7", "a", True, 1e300, ""]),
    ),
    min_size=1,
)


def plans(monkeypatch: pytest.MonkeyPatch, cap: int, window: int) -> None:
    """Make the listing choose its plan by these numbers: the count of a
    filter's rows it judges by, and the first rows of an ordered walk it
    checks before it walks a range (sqlattrs.list_by_attributes)."""
    monkeypatch.setattr(sqlattrs, "_COUNT_UP_TO", cap)
    monkeypatch.setattr(sqlattrs, "_WINDOW_LEAST", window)
    monkeypatch.setattr(sqlattrs, "_WINDOW_PER_RUN", 0)


def test_a_listing_by_ranges_finds_what_the_model_finds(
    sync_client: perdure.SyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random filters of values and ranges over 60 runs of random values,
    on each database, listed with each plan (the count a listing judges by
    capped at 1, 3 or 1,000 rows: a range is walked under the cap; above
    it the first 1 or 5 rows of a value's walk, or the runs', then a range
    if they do not fill the page): the same runs as the model, newest
    first, a whole listing and its first page of five; and as many counted."""
    runs = started(sync_client, 60, seed=20261208)

    @settings(max_examples=100, deadline=None, database=None)
    @given(filters=FILTERS, cap=st.sampled_from([1, 3, 1000]), window=st.sampled_from([1, 5]))
    def check(filters: dict[str, Any], cap: int, window: int) -> None:
        plans(monkeypatch, cap, window)
        assert listed(sync_client, filters) == expected(runs, filters), filters
        wanted = expected(runs, filters)[:5]
        assert listed(sync_client, filters, limit=5) == wanted, filters
        counted = sync_client.count(search_attributes=filters)
        assert (counted.count, counted.by_status["running"]) == (len(expected(runs, filters)),) * 2

    check()


@pytest.mark.parametrize(("cap", "window"), [(1, 2), (1, 1000), (1000, 2)])
def test_pages_of_a_range_have_no_gaps_or_repeats(
    sync_client: perdure.SyncClient, monkeypatch: pytest.MonkeyPatch, cap: int, window: int
) -> None:
    """Paged by cursor and by offset, four at a time, with a range alone and
    with a value: the pages join into the whole listing, newest first,
    whether the range's rows, the value's or the runs are walked."""
    plans(monkeypatch, cap, window)
    for n in range(30):
        attributes = {"total": n * 10, "region": "eu" if n % 3 else "us"}
        sync_client.start(held, id=f"p-{n:02}", search_attributes=attributes)
    for filters, want in (
        ({"total": AttributeRange(ge=50, lt=250)}, [f"p-{n:02}" for n in range(24, 4, -1)]),
        (
            {"total": AttributeRange(gt=50), "region": "eu"},
            [f"p-{n:02}" for n in range(29, 5, -1) if n % 3],
        ),
    ):
        assert listed(sync_client, filters) == want
        pages: list[str] = []
        after = None
        while True:
            page = sync_client.list(limit=4, after=after, search_attributes=filters)
            if not page:
                break
            pages += [r.id for r in page]
            after = page[-1].cursor
        assert pages == want
        by_offset = [
            r.id
            for offset in range(0, len(want) + 4, 4)
            for r in sync_client.list(limit=4, offset=offset, search_attributes=filters)
        ]
        assert by_offset == want


def test_a_range_with_the_other_filters(sync_client: perdure.SyncClient) -> None:
    """A range holds beside the status, type, id and time filters, and
    chooses a batch's runs (a dry run names exactly them)."""
    for n in range(6):
        sync_client.start(held, id=f"o-{n}", search_attributes={"total": n})
    sync_client.get_handle("o-4").terminate()
    ranged = {"total": AttributeRange(ge=2)}
    open_ids = [r.id for r in sync_client.list(status="running", search_attributes=ranged)]
    assert open_ids == ["o-5", "o-3", "o-2"]
    assert [r.id for r in sync_client.list(search="o-3", search_attributes=ranged)] == ["o-3"]
    assert [r.id for r in sync_client.list(workflow="other", search_attributes=ranged)] == []
    result = sync_client.batch("terminate", search_attributes=ranged, dry_run=True)
    assert [r.id for r in result.matched] == ["o-5", "o-3", "o-2"]


def test_bad_ranges_are_refused_with_what_is_wrong(sync_client: perdure.SyncClient) -> None:
    for make, error, message in (
        (lambda: AttributeRange(), ValueError, "an AttributeRange needs a bound"),
        (lambda: AttributeRange(ge=1, gt=0), ValueError, "takes gt= or ge=, not both"),
        (lambda: AttributeRange(lt=1, le=0), ValueError, "takes lt= or le=, not both"),
        (lambda: AttributeRange(ge=True), TypeError, "ge must be a number or a string, not bool"),
        (lambda: AttributeRange(le=[1]), TypeError, "le must be a number or a string, not list"),
        (lambda: AttributeRange(gt=float("nan")), ValueError, "gt must be a finite number"),
        (lambda: AttributeRange(lt="a\x00"), ValueError, "lt must not hold the NUL character"),
        (lambda: AttributeRange(ge=1, lt="z"), TypeError, "all numbers or all strings"),
        (lambda: AttributeRange(ge=5, lt=5), ValueError, "AttributeRange(ge=5, lt=5) matches"),
        (lambda: AttributeRange(gt="b", le="a"), ValueError, "matches nothing"),
    ):
        with pytest.raises(error, match=None) as raised:
            make()
        assert message in str(raised.value), raised.value
    assert AttributeRange(ge=5, le=5).numeric  # (one number: equal bounds, both inclusive)
    with pytest.raises(TypeError, match="a search attribute's name must be a str"):
        sync_client.list(search_attributes={1: AttributeRange(ge=1)})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="a search attribute's name is at most 100"):
        sync_client.list(search_attributes={"n" * 101: AttributeRange(ge=1)})


def test_terms_read_as_ranges() -> None:
    """``--attr``/``attr=`` terms: a bound that reads as a number in JSON is
    a number, other text a string (in JSON quotes: the string inside); a
    name's two bounds make one range; AttributeRange.terms() writes them
    back so that they read the same."""
    from perdure._attrfilters import parse_filter

    read = parse_filter(
        ["total>=1000", "total<5e3", "day>2026-12-01", 'zip<="10000"', "customer=c-1", "x< 7"]
    )
    assert read == {
        "total": AttributeRange(ge=1000, lt=5000.0),
        "day": AttributeRange(gt="2026-12-01"),
        "zip": AttributeRange(le="10000"),
        "customer": "c-1",
        "x": AttributeRange(lt=" 7"),
    }
    for name, wanted in read.items():
        if isinstance(wanted, AttributeRange):
            assert parse_filter(wanted.terms(name))[name] == wanted
    assert AttributeRange(le="10000").terms("zip") == ['zip<="10000"']


def test_the_upgrade_types_the_rows_written_before(db_url: str) -> None:
    """The upgrade's backfill (SQLite's v27 / PostgreSQL's v28 migration):
    index rows as the schema before left them (every kind 's', no number)
    are typed from their runs' attributes kept whole, so a range finds
    them: ints, floats, an int past a float's range, bools, strings of
    digits."""
    client = perdure.SyncClient.connect(db_url)
    values = {"i": 7, "f": 7.5, "huge": 10**399, "neg": -(10**398), "t": True, "s": "7"}
    try:
        client.start(held, id="old", search_attributes=values)
    finally:
        client.close()
    dialect = "postgres" if db_url.startswith("postgres") else "sqlite"
    [backfill] = [
        sql
        for version, text in sqlite_schema.migrations(dialect)
        for sql in sqlite_schema.statements(text)
        if version == (27 if dialect == "sqlite" else 28) and sql.lstrip().startswith("UPDATE")
    ]
    untyped = "UPDATE run_attributes SET kind = 's', number = NULL"
    read = "SELECT name, kind, number FROM run_attributes ORDER BY name"
    if dialect == "sqlite":
        with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn, conn:
            conn.execute(untyped)
            conn.execute(backfill)
            rows = conn.execute(read).fetchall()
    else:
        import psycopg

        with psycopg.connect(db_url) as conn:
            conn.execute(untyped)
            conn.execute(backfill)
            rows = conn.execute(read).fetchall()
    assert rows == [
        ("f", "n", 7.5),
        ("huge", "n", float("inf")),
        ("i", "n", 7.0),
        ("neg", "n", float("-inf")),
        ("s", "s", None),
        ("t", "b", None),
    ]
