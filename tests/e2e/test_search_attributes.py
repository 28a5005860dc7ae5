"""Search attributes: the values a run is found by. Given at the start,
set and removed by workflow code (recorded in the history, written with the
turn's commit), found by Client.list (every name given must match, as
text), kept by a run that continues as new and by a reset (as they were at
its point), replayed deterministically; bad ones refused with what is
wrong, and nothing written."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow
from perdure.testing import Replayer, WorkflowEnvironment


@activity.defn
async def charge(amount: int) -> str:
    return f"ch-{amount}"


@workflow.defn
async def payment(customer: str, amount: int) -> str:
    workflow.set_search_attributes({"customer": customer, "stage": "charging"})
    receipt = await charge(amount)
    workflow.set_search_attributes({"stage": "charged", "amount": amount, "retry": None})
    await workflow.wait_signal("ship", timeout=timedelta(hours=1))
    workflow.set_search_attributes({"stage": "shipped"})
    return receipt


@workflow.defn(name="payment")
async def payment_changed(customer: str, amount: int) -> str:
    """payment, but its first turn sets other names."""
    workflow.set_search_attributes({"client": customer})
    return await charge(amount)


async def _ids(client: perdure.Client, **filters: object) -> list[str]:
    return sorted(r.id for r in await client.list(search_attributes=filters))


async def test_runs_are_found_by_their_attributes(client: perdure.Client) -> None:
    async with fast_worker(client, [payment], [charge]):
        handles = [
            await client.start(
                payment,
                f"c-{n % 3}",
                100 + n,
                id=f"pay-{n}",
                search_attributes={"region": "eu" if n % 2 else "us", "retry": True},
            )
            for n in range(6)
        ]
        # Every run reaches "charged" (its second turn's commit wrote it).
        for handle in handles:
            await _until_stage(handle, "charged")

        assert await _ids(client, customer="c-1") == ["pay-1", "pay-4"]
        assert await _ids(client, customer="c-1", region="eu") == ["pay-1"]
        assert await _ids(client, region="eu", customer="c-1") == ["pay-1"]
        assert await _ids(client, region="eu", customer="c-1", amount=101) == ["pay-1"]
        assert await _ids(client, region="eu", customer="c-1", amount=102) == []
        assert await _ids(client, region="us") == ["pay-0", "pay-2", "pay-4"]
        assert await _ids(client, stage="charging") == []
        assert await _ids(client, retry=True) == []  # removed by the second turn
        # Values match as text: an int finds its float and its string.
        assert await _ids(client, amount=103) == ["pay-3"]
        assert await _ids(client, amount=103.0) == ["pay-3"]
        assert await _ids(client, amount="103") == ["pay-3"]
        assert await _ids(client, amount="x") == []
        assert await _ids(client, nothing="c-1") == []

        described = await handles[4].describe()
        assert described.search_attributes == {
            "region": "us",
            "customer": "c-1",
            "stage": "charged",
            "amount": 104,
        }
        listed = await client.list(search_attributes={"customer": "c-1", "region": "us"})
        assert [r.search_attributes for r in listed] == [described.search_attributes]

        # With the other filters, newest first, and paged by cursor.
        await handles[1].signal("ship", None)
        assert await handles[1].result(timeout=30) == "ch-101"
        assert [
            r.id
            for r in await client.list(status="completed", search_attributes={"customer": "c-1"})
        ] == ["pay-1"]
        assert [
            r.id for r in await client.list(status="running", search_attributes={"customer": "c-1"})
        ] == ["pay-4"]
        assert await _ids(client, stage="shipped") == ["pay-1"]
        newest = await client.list(search_attributes={"region": "us"}, limit=2)
        assert [r.id for r in newest] == ["pay-4", "pay-2"]
        rest = await client.list(search_attributes={"region": "us"}, after=newest[-1].cursor)
        assert [r.id for r in rest] == ["pay-0"]
        skipped = await client.list(search_attributes={"region": "us"}, offset=1, limit=1)
        assert [r.id for r in skipped] == ["pay-2"]
        assert [
            r.id for r in await client.list(search_attributes={"region": "us"}, search="y-2")
        ] == ["pay-2"]
        for handle in handles[:1] + handles[2:]:
            await handle.terminate()
    # The history records each change.
    events = await handles[1].history()
    started = next(e for e in events if e["type"] == "WorkflowStarted")
    assert started["search_attributes"] == {"region": "eu", "retry": True}
    assert [e["attributes"] for e in events if e["type"] == "SearchAttributesSet"] == [
        {"customer": "c-1", "stage": "charging"},
        {"stage": "charged", "amount": 101, "retry": None},
        {"stage": "shipped"},
    ]
    # ... and replays; code that sets other names does not.
    assert Replayer([payment]).replay(events).ok
    changed = Replayer([payment_changed]).replay(events)
    assert changed.error_type == "NonDeterminismError"
    assert "SetSearchAttributes ['client']" in (changed.error or "")


async def _until_stage(handle: perdure.WorkflowHandle[Any], stage: str) -> None:
    deadline = time.monotonic() + 30
    while (await handle.describe()).search_attributes.get("stage") != stage:
        assert time.monotonic() < deadline, f"{handle.id} never reached {stage!r}"
        await asyncio.sleep(0.02)


@workflow.defn
async def rolling(n: int) -> dict[str, object]:
    if n == 0:
        workflow.set_search_attributes({"tenant": "t-9", "round": 0})
    workflow.set_search_attributes({"round": n})
    if n < 2:
        workflow.continue_as_new(n + 1)
    return workflow.info().search_attributes


async def test_starts_grouped_in_one_commit_index_each_runs_attributes(
    client: perdure.Client,
) -> None:
    """Starts made together (one group commit: the store's start plans, no
    body of their own) keep and index each run's attributes as a lone start
    does; then a worker's first turns add theirs."""
    await asyncio.gather(
        *(
            client.start(
                payment, f"c-{n}", n, id=f"grouped-{n}", search_attributes={"batch": "g", "n": n}
            )
            for n in range(40)
        )
    )
    assert len(await _ids(client, batch="g")) == 40
    assert await _ids(client, n=7) == ["grouped-7"]
    assert await _ids(client, batch="g", n=39) == ["grouped-39"]
    seven = await client.get_handle("grouped-7").describe()
    assert seven.search_attributes == {"batch": "g", "n": 7}
    async with fast_worker(client, [payment], [charge]):

        async def charged() -> bool:
            return len(await _ids(client, batch="g", stage="charged")) == 40

        await wait_until(charged, what="every first turn", timeout=30)
    assert await _ids(client, customer="c-7", n=7) == ["grouped-7"]


async def test_a_run_that_continues_as_new_keeps_its_attributes(client: perdure.Client) -> None:
    async with fast_worker(client, [rolling], []):
        first = await client.start(rolling, 0, id="roll-1", search_attributes={"plan": "gold"})
        final = await client.get_handle("roll-1").result(timeout=30)
    assert final == {"plan": "gold", "tenant": "t-9", "round": 2}
    runs = await client.list(search_attributes={"tenant": "t-9"})
    assert [(r.status, r.search_attributes["round"]) for r in runs] == [
        ("completed", 2),
        ("continued_as_new", 1),
        ("continued_as_new", 0),
    ]
    assert runs[-1].run_id == first.run_id
    assert [
        r.status for r in await client.list(search_attributes={"round": 2, "plan": "gold"})
    ] == ["completed"]


@activity.defn(retry=perdure.RetryPolicy(max_attempts=1))
async def flaky_step(step: str) -> str:
    if broken.pop(step, False):
        raise RuntimeError(f"{step} is down")
    return step


broken: dict[str, bool] = {}


@workflow.defn
async def staged() -> str:
    workflow.set_search_attributes({"stage": "one"})
    await flaky_step("one")
    workflow.set_search_attributes({"stage": "two", "extra": 1})
    await flaky_step("two")
    workflow.set_search_attributes({"stage": "three", "extra": None})
    return "done"


async def test_a_reset_run_has_the_attributes_of_its_point(client: perdure.Client) -> None:
    broken["two"] = True
    async with fast_worker(client, [staged], [flaky_step]):
        old = await client.start(staged, id="staged-1", search_attributes={"batch": "b-1"})
        with pytest.raises(perdure.WorkflowFailedError):
            await old.result(timeout=30)
        assert (await old.describe()).search_attributes == {
            "batch": "b-1",
            "stage": "two",
            "extra": 1,
        }
        events = await old.history()
        two = next(e for e in events if e["type"] == "ActivityScheduled" and e["args"] == ["two"])
        # Reset to the turn that scheduled step two: the new run starts with
        # the attributes the turns before it left, then goes on.
        new = await old.reset(to_event=two["seq"])
        assert await new.result(timeout=30) == "done"
    assert (await new.describe()).search_attributes == {"batch": "b-1", "stage": "three"}
    assert [
        (r.run_id, r.status) for r in await client.list(search_attributes={"batch": "b-1"})
    ] == [
        (new.run_id, "completed"),
        (old.run_id, "failed"),
    ]
    assert await _ids(client, extra=1) == ["staged-1"]  # the old run only
    assert [r.run_id for r in await client.list(search_attributes={"extra": 1})] == [old.run_id]


@workflow.defn
async def misuses(what: str) -> str:
    try:
        if what == "type":
            workflow.set_search_attributes({"when": timedelta(1)})  # type: ignore[dict-item]
        elif what == "too many":
            workflow.set_search_attributes({f"a{n}": n for n in range(33)})
        elif what == "long":
            workflow.set_search_attributes({"note": "x" * 401})
        elif what == "not a dict":
            workflow.set_search_attributes([("a", 1)])  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        kind = "TypeError" if isinstance(exc, TypeError) else "ValueError"
        return f"{kind}: {exc}"
    return "accepted"


async def test_bad_attributes_are_refused_with_what_is_wrong(client: perdure.Client) -> None:
    bad: list[tuple[object, type[Exception], str]] = [
        ({"when": timedelta(1)}, TypeError, "must be a str, int, float or bool, not timedelta"),
        ({"": 1}, ValueError, "name must be a non-empty string"),
        ({1: "x"}, TypeError, "name must be a str, not int"),
        ({"n" * 101: 1}, ValueError, "at most 100 characters"),
        ({"note": "x" * 401}, ValueError, "at most 400 are indexed"),
        ({"big": 10**400}, ValueError, "'big' is an integer of 401 digits; at most 400"),
        ({"note": "a\x00b"}, ValueError, "NUL"),
        ({"gone": None}, TypeError, "must be a str, int, float or bool, not NoneType"),
        ({"ratio": float("nan")}, ValueError, "'ratio' is nan"),
        ({f"a{n}": n for n in range(33)}, ValueError, "at most 32 search attributes, not 33"),
        ([("a", 1)], TypeError, "must be a dict of names to values"),
    ]
    for attributes, error, message in bad:
        with pytest.raises(error, match=message):
            await client.start(misuses, "x", id="never", search_attributes=attributes)  # type: ignore[arg-type]
        with pytest.raises(error, match=message):
            await client.list(search_attributes=attributes)  # type: ignore[arg-type]
    assert await client.list() == []  # nothing was started

    async with fast_worker(client, [misuses], []):
        results = {
            what: await client.execute(misuses, what, id=f"misuse-{what}")
            for what in ("type", "too many", "long", "not a dict")
        }
    assert results == {
        "type": "TypeError: search attribute 'when' must be a str, int, float or bool"
        " (or None to remove it), not timedelta datetime.timedelta(days=1)",
        "too many": "ValueError: a run has at most 32 search attributes, not 33",
        "long": "ValueError: search attribute 'note' is a string of 401 characters;"
        " at most 400 are indexed",
        "not a dict": "TypeError: attributes must be a dict of names to values, not list"
        " [('a', 1)]",
    }
    # None of them recorded anything.
    for what in results:
        events = await client.get_handle(f"misuse-{what}").history()
        assert not [e for e in events if e["type"] == "SearchAttributesSet"]


@workflow.defn
async def grows() -> int:
    for n in range(40):
        try:
            workflow.set_search_attributes({f"k{n}": n})
        except ValueError:
            return n
    return -1


async def test_a_run_keeps_at_most_32_attributes(client: perdure.Client) -> None:
    async with fast_worker(client, [grows], []):
        assert await client.execute(grows, id="grows", search_attributes={"start": 1}) == 31
    assert len((await client.get_handle("grows").describe()).search_attributes) == 32


async def test_attributes_in_the_time_skipping_environment() -> None:
    async with WorkflowEnvironment(workflows=[payment], activities=[charge]) as env:
        handle = await env.start(payment, "c-7", 70, id="env-pay", search_attributes={"x": 1})
        await env.sleep(timedelta(minutes=1))
        assert [r.id for r in await env.client.list(search_attributes={"customer": "c-7"})] == [
            "env-pay"
        ]
        await handle.signal("ship", None)
        assert await handle.result() == "ch-70"
        assert (await handle.describe()).search_attributes == {
            "x": 1,
            "customer": "c-7",
            "stage": "shipped",
            "amount": 70,
        }


def test_the_index_matches_the_runs_after_every_change(tmp_path: Path) -> None:
    """Checked on the SQLite file itself: one index row per attribute of
    each run, holding the value's text, how it orders in a range (its kind,
    and a number's value) and the run's place in the listing order; none
    left behind by removed names."""
    path = f"{tmp_path}/index.db"

    async def run() -> None:
        client = await perdure.Client.connect(f"sqlite:///{path}")
        try:
            async with fast_worker(client, [payment], [charge]):
                for n in range(3):
                    handle = await client.start(
                        payment, f"c-{n}", n, id=f"ix-{n}", search_attributes={"retry": 1.0}
                    )
                    await _until_stage(handle, "charged")
                    await handle.signal("ship", None)
                    await handle.result(timeout=30)
        finally:
            await client.close()

    asyncio.run(run())
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT runs.workflow_id, a.name, a.value, a.kind, a.number,"
            " a.run_created = runs.created_at"
            " FROM run_attributes AS a JOIN runs ON runs.id = a.run_row ORDER BY 1, 2"
        ).fetchall()
        kept = conn.execute("SELECT workflow_id, search_attributes FROM runs ORDER BY 1").fetchall()
    assert rows == [
        (f"ix-{n}", name, *value, 1)
        for n in range(3)
        for name, value in sorted(
            {
                "amount": (str(n), "n", n),
                "customer": (f"c-{n}", "s", None),
                "stage": ("shipped", "s", None),
            }.items()
        )
    ]
    assert [(w, json.loads(t)) for w, t in kept] == [
        (f"ix-{n}", {"customer": f"c-{n}", "stage": "shipped", "amount": n}) for n in range(3)
    ]


@workflow.defn
async def tagger() -> str:
    workflow.set_search_attributes({"phase": "first"})
    await workflow.wait_signal("go", timeout=timedelta(hours=1))
    workflow.set_search_attributes({"phase": "signalled"})
    await workflow.sleep(timedelta(milliseconds=10))
    workflow.set_search_attributes({"slept": True})
    await workflow.wait_signal("end", timeout=timedelta(hours=1))
    workflow.set_search_attributes({"phase": "ended"})
    return "ok"


async def test_every_kind_of_turn_writes_the_attributes_it_sets(client: perdure.Client) -> None:
    """A run started without attributes sets them in its first turn (computed
    with its start), in a turn a signal brings, in a timer's turn (turns
    that leave it open) and in its closing turn: each commit writes them."""
    async with fast_worker(client, [tagger], []):
        handle = await client.start(tagger, id="tagger-1")
        await _until(client, {"phase": "first"}, ["tagger-1"])
        await handle.signal("go", None)
        await _until(client, {"phase": "signalled", "slept": True}, ["tagger-1"])
        assert await _ids(client, phase="first") == []
        await handle.signal("end", None)
        assert await handle.result(timeout=30) == "ok"
    assert await _ids(client, phase="ended") == ["tagger-1"]
    assert await _ids(client, phase="signalled") == []


async def _until(client: perdure.Client, attributes: dict[str, Any], ids: list[str]) -> None:
    deadline = time.monotonic() + 30
    while await _ids(client, **attributes) != ids:
        assert time.monotonic() < deadline, f"{attributes} never found {ids}"
        await asyncio.sleep(0.02)


@workflow.defn
async def shop_child(order: str) -> dict[str, Any]:
    return workflow.info().search_attributes


@workflow.defn
async def shop(orders: list[str]) -> list[dict[str, Any]]:
    workflow.set_search_attributes({"shop": "s-1"})
    results = []
    for order in orders:
        results.append(
            await workflow.execute_child(
                shop_child, order, id=f"child-{order}", search_attributes={"order": order}
            )
        )
    return results


async def test_a_child_gets_its_own_attributes_not_its_parents(client: perdure.Client) -> None:
    async with fast_worker(client, [shop, shop_child], []):
        results = await client.execute(shop, ["a", "b"], id="shop-1")
    assert results == [{"order": "a"}, {"order": "b"}]
    assert await _ids(client, order="b") == ["child-b"]
    assert await _ids(client, shop="s-1") == ["shop-1"]
    with pytest.raises(TypeError, match="must be a str, int, float or bool"):
        async with WorkflowEnvironment(workflows=[shop, shop_child]) as env:
            await env.client.list(search_attributes={"order": ["a"]})  # type: ignore[dict-item]


async def test_signal_with_start_gives_a_new_run_its_attributes(client: perdure.Client) -> None:
    async with fast_worker(client, [tagger], []):
        handle = await client.signal_with_start(
            tagger, signal="go", id="sws-1", search_attributes={"source": "webhook"}
        )
        await _until(client, {"source": "webhook", "slept": True}, ["sws-1"])
        # The id's run is open: the signal goes to it, the attributes are not applied.
        await client.signal_with_start(
            tagger, signal="end", id="sws-1", search_attributes={"source": "other"}
        )
        assert await handle.result(timeout=30) == "ok"
    assert (await handle.describe()).search_attributes == {
        "source": "webhook",
        "phase": "ended",
        "slept": True,
    }
