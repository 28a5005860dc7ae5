"""The framework-free pieces the CLI and the server share: time parsing, list
filters and paging (``server._query``), tokens and the loopback rule (``server._auth``)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import perdure
from perdure.server._auth import (
    AuthConfig,
    AuthSetupError,
    check_bind,
    host_header_is_loopback,
    is_loopback,
    load_auth,
    parse_token_file,
)
from perdure.server._query import ListQuery, decode_cursor, encode_cursor, list_page, parse_when

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TOKEN = "t" * 20


def test_parse_when_reads_ages_and_iso_times() -> None:
    assert parse_when("15m", now=NOW) == NOW - timedelta(minutes=15)
    assert parse_when("1.5h", now=NOW) == NOW - timedelta(minutes=90)
    assert parse_when("2w", now=NOW) == NOW - timedelta(days=14)
    assert parse_when("2024-04-30T10:00:00Z", now=NOW) == datetime(2024, 4, 30, 10, tzinfo=UTC)
    plus2 = timezone(timedelta(hours=2))
    assert parse_when("2024-04-30", now=NOW, naive_tz=plus2) == datetime(2024, 4, 30, tzinfo=plus2)
    with pytest.raises(ValueError, match=r"ISO 8601 .* 30s, 15m"):
        parse_when("last tuesday", now=NOW)


async def test_cursors_round_trip_and_bad_ones_are_refused(client: perdure.Client) -> None:
    await client.start("double", 1, id="cursor-1")
    [run] = await client.list(search="cursor-1")
    created, row_id = decode_cursor(encode_cursor(run))
    assert abs(created - run.created_at.timestamp()) < 1e-6 and row_id > 0
    assert await client.list(after=run.cursor) == []
    # A cursor from before the store paged (run id, time) still reads: strictly older.
    legacy = base64.urlsafe_b64encode(json.dumps(["run-1", NOW.timestamp()]).encode())
    assert decode_cursor(legacy.decode()) == (NOW.timestamp(), -1)
    for bad in ("", "!!", "bm90IGpzb24", "WzEsMl0"):  # empty, not base64, not JSON, [1,2]
        with pytest.raises(ValueError, match="invalid cursor"):
            decode_cursor(bad)
        with pytest.raises(ValueError, match="invalid cursor"):
            await client.list(after=bad)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (ListQuery(limit=0), "limit must be between 1 and 1000"),
        (ListQuery(page=0), "page numbers start at 1"),
        (ListQuery(page=2, cursor="x"), "not both"),
        (ListQuery(since=NOW, until=NOW - timedelta(1)), "is after until"),
    ],
)
def test_list_queries_are_checked(query: ListQuery, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        query.check()


async def test_paging_walks_every_match_once(client: perdure.Client) -> None:
    for i in range(30):
        await client.start("double", i, id=f"{'keep' if i % 3 else 'skip'}-{i:02}")
    seen: list[str] = []
    cursor = None
    while True:
        page = await list_page(client, ListQuery(search="keep", limit=7, cursor=cursor))
        seen += [e.id for e in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = [f"keep-{i:02}" for i in reversed(range(30)) if i % 3]
    assert seen == expected
    by_page = await list_page(client, ListQuery(search="keep", limit=7, page=3))
    assert [e.id for e in by_page.items] == expected[14:21]
    later = await list_page(client, ListQuery(since=datetime.now(UTC) + timedelta(1)))
    assert later.items == [] and later.next_cursor is None


def test_token_files_and_environment(tmp_path: Path) -> None:
    text = f"# the ops team\n\nadmin {TOKEN}\n  read   {'r' * 16}  \n"
    assert parse_token_file(text, "f") == {TOKEN: "admin", "r" * 16: "read"}
    for bad, message in (
        (f"root {TOKEN}", "line 1: expected 'admin TOKEN' or 'read TOKEN'"),
        (f"admin {TOKEN} extra", "line 1: expected"),
        ("admin short", "at least 16 characters"),
    ):
        with pytest.raises(AuthSetupError, match=message):
            parse_token_file(bad, "f")
    env = {"PERDURE_TOKEN": "r" * 16, "PERDURE_ADMIN_TOKEN": TOKEN}
    auth = load_auth(env)
    assert auth.role_of(TOKEN) == "admin" and auth.role_of("r" * 16) == "read"
    assert auth.role_of("x" * 16) is None and auth.enabled
    assert not load_auth({}).enabled
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(AuthSetupError, match="holds no token"):
        load_auth({}, tmp_path / "empty")
    with pytest.raises(AuthSetupError, match="cannot read token file"):
        load_auth({}, tmp_path / "missing")


def test_only_loopback_may_be_open() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "10.0.0.5", "example.com", "localhost.evil.com"):
        assert not is_loopback(host), host
    for header in ("127.0.0.1:8765", "localhost", "[::1]:80", "localhost:1"):
        assert host_header_is_loopback(header), header
    for header in ("evil.example", "evil.example:8765", "127.0.0.1.nip.io", ""):
        assert not host_header_is_loopback(header), header
    check_bind("127.0.0.1", AuthConfig())
    check_bind("0.0.0.0", AuthConfig({TOKEN: "read"}))
    with pytest.raises(AuthSetupError, match=r"refusing to serve on '0\.0\.0\.0' without a token"):
        check_bind("0.0.0.0", AuthConfig())
