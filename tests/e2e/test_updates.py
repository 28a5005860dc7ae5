"""Updates: handle.update() sends a request that workflow.wait_update() takes;
the workflow's reply (or rejection) comes back to the caller. Requests queue
and are delivered once each; a retry with the same update id gets the first
answer and is not delivered again; the request travels as a signal (so
continue-as-new hands it on) and the answer is an UpdateReplied event (so
replay checks it); a run that ends without answering, or has ended, says so."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
import perdure._updates
from perdure import activity, workflow
from perdure.cli._summaries import summarize
from perdure.testing import Replayer, WorkflowEnvironment


@dataclass
class Line:
    sku: str
    quantity: int


@activity.defn
async def price_of(line: Line) -> int:
    return {"apple": 3, "pear": 5}.get(line.sku, 0) * line.quantity


@workflow.defn
async def cart(customer: str) -> dict[str, int]:
    """Takes 'add' updates (priced by an activity, so answered in a later
    turn than the request came in) until 'checkout'."""
    lines: dict[str, int] = {}
    total = 0
    while True:
        request = await workflow.wait_update("edit", timeout=timedelta(days=7))
        change = request.payload
        if change == "checkout":
            request.reply({"total": total, "lines": len(lines)})
            return {"total": total, **lines}
        if not isinstance(change, dict) or change.get("quantity", 0) <= 0:
            request.reject(f"an edit needs a sku and a quantity above 0, not {change!r}")
            continue
        line = Line(change["sku"], change["quantity"])
        total += await price_of(line)
        lines[line.sku] = lines.get(line.sku, 0) + line.quantity
        request.reply({"total": total, "lines": len(lines)})


async def test_updates_are_answered_in_turn_and_rejected_with_a_reason(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [cart], [price_of]):
        handle = await client.start(cart, "c-1", id="cart-1")
        first = await handle.update("edit", Line("apple", 2))
        second = await handle.update("edit", {"sku": "pear", "quantity": 1})
        with pytest.raises(perdure.UpdateRejectedError, match="a quantity above 0, not 'lots'"):
            await handle.update("edit", "lots")
        done = await handle.update("edit", "checkout")
        assert await handle.result(timeout=10) == {"total": 11, "apple": 2, "pear": 1}
    assert first == {"total": 6, "lines": 1}
    assert second == {"total": 11, "lines": 2}
    assert done == {"total": 11, "lines": 2}
    events = await handle.history()
    replies = [e for e in events if e["type"] == "UpdateReplied"]
    assert [(e["result"], e["failure"]) for e in replies] == [
        ({"total": 6, "lines": 1}, None),
        ({"total": 11, "lines": 2}, None),
        (None, "an edit needs a sku and a quantity above 0, not 'lots'"),
        ({"total": 11, "lines": 2}, None),
    ]
    # perdure history says what each was; the history replays.
    requests = [e for e in events if e["type"] == "SignalReceived"]
    first_id = requests[0]["payload"]["update_id"]
    assert summarize(requests[0]) == f'update edit ({first_id}) {{"sku": "apple", "quantity": 2}}'
    assert summarize(replies[0]) == f'edit ({first_id}) -> {{"total": 6, "lines": 1}}'
    assert summarize(replies[2]).endswith(
        "rejected: an edit needs a sku and a quantity above 0, not 'lots'"
    )
    assert Replayer([cart]).replay(events).ok
    # (The store reads the answers alone, as a caller does.)
    assert handle.run_id is not None
    answers = await client.store.history(handle.run_id, 0, "UpdateReplied")
    assert [e.seq for e in answers] == [e["seq"] for e in replies]
    later = await client.store.history(handle.run_id, replies[1]["seq"], "UpdateReplied")
    assert [e.seq for e in later] == [e["seq"] for e in replies[2:]]


async def test_replay_checks_which_update_was_answered(client: perdure.Client) -> None:
    async with fast_worker(client, [cart], [price_of]):
        handle = await client.start(cart, "c-2", id="cart-2")
        await handle.update("edit", {"sku": "apple", "quantity": 1}, update_id="first")
        await handle.update("edit", "checkout", update_id="second")
        await handle.result(timeout=10)
    events = await handle.history()
    assert Replayer([cart]).replay(events).ok
    # A history in which the first reply answered another update than the
    # request the code took (so the code's ReplyUpdate names another id).
    changed = [{**e} for e in events]
    for e in changed:
        if e["type"] == "UpdateReplied" and e["update_id"] == "first":
            e["update_id"] = "other"
    mismatch = Replayer([cart]).replay(changed)
    assert mismatch.error_type == "NonDeterminismError"
    assert "ReplyUpdate 'edit' (first)" in (mismatch.error or "")


@workflow.defn
async def gated_counter() -> int:
    """Takes no update before the 'open' signal; then counts the requests
    of 'bump' it takes until 'stop'."""
    await workflow.wait_signal("open")
    taken = 0
    while True:
        request = await workflow.wait_update("bump")
        if request.payload == "stop":
            request.reply(taken)
            return taken
        taken += 1
        request.reply(taken)


async def test_a_retry_with_the_same_update_id_is_answered_once(client: perdure.Client) -> None:
    async with fast_worker(client, [gated_counter], []):
        handle = await client.start(gated_counter, id="gate-1")
        # The caller gives up before the run takes the request, and retries:
        # both requests are queued, the run takes the id once.
        with pytest.raises(TimeoutError, match="update_id='b-1'"):
            await handle.update("bump", None, update_id="b-1", timeout=0.2)
        retry = asyncio.ensure_future(handle.update("bump", None, update_id="b-1", timeout=10))

        async def queued_twice() -> bool:
            return await _requests(handle, "bump") == 2 and not retry.done()

        await wait_until(queued_twice, what="the retry to be queued")
        await handle.signal("open")
        assert await retry == 1
        # Asked again once answered: the answer is read from the history.
        assert await handle.update("bump", None, update_id="b-1", timeout=10) == 1
        assert await handle.update("bump", None, update_id="b-2") == 2
        assert await handle.update("bump", "stop") == 2
        assert await handle.result(timeout=10) == 2
    events = await handle.history()
    requests = [
        e["payload"]["update_id"]
        for e in events
        if e["type"] == "SignalReceived" and e["name"] == "perdure.update:bump"
    ]
    assert requests[:2] == ["b-1", "b-1"]  # (two requests; one taken)
    assert [e["update_id"] for e in events if e["type"] == "UpdateReplied"][:2] == ["b-1", "b-2"]


async def test_an_update_to_an_ended_run_or_one_it_never_answers_fails(
    client: perdure.Client,
) -> None:
    @workflow.defn(name="leaver")
    async def leaver() -> str:
        await workflow.wait_update("ask")  # taken, never answered
        return "gone"

    async with fast_worker(client, [leaver], []):
        handle = await client.start(leaver, id="leaver-1")
        with pytest.raises(perdure.WorkflowClosedError, match="ended completed without answering"):
            await handle.update("ask", 1, timeout=10)
        with pytest.raises(perdure.WorkflowClosedError):
            await handle.update("ask", 2)
    with pytest.raises(perdure.WorkflowNotFoundError):
        await client.get_handle("no-such-run").update("ask")
    # Two requests were sent, and one delivered: the second found the run ended.
    events = await handle.history()
    assert [e["type"] for e in events].count("SignalReceived") == 1


@workflow.defn
async def relay(rounds: int) -> str:
    """Answers one update per run, then continues as new, until rounds run out."""
    request = await workflow.wait_update("hop")
    request.reply(f"run {rounds}: {request.payload}")
    if rounds > 1:
        await workflow.wait_signal("next")
        workflow.continue_as_new(rounds - 1)
    return "done"


async def test_a_request_queued_at_continue_as_new_is_answered_by_the_next_run(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [relay], []):
        handle = await client.start(relay, 2, id="relay-1")
        assert await handle.update("hop", "a") == "run 2: a"
        # The run waits for 'next': this request is queued in it, then handed on.
        pending = asyncio.ensure_future(handle.update("hop", "b", timeout=10))
        first = (await handle.describe()).run_id

        async def queued() -> bool:
            return await _requests(handle, "hop") == 2 and not pending.done()

        await wait_until(queued, what="the request to be queued")
        await handle.signal("next")
        assert await pending == "run 1: b"
        assert await handle.result(timeout=10) == "done"
    assert (await client.get_handle("relay-1").describe()).run_id != first


@workflow.defn
async def handover(first: bool) -> str:
    """The first run takes a request and continues as new without answering
    it; the next run takes it again and answers."""
    request = await workflow.wait_update("job")
    if first:
        workflow.continue_as_new(False)
    request.reply(f"done by the next run: {request.payload}")
    return "ok"


async def test_a_request_taken_but_not_answered_goes_on_to_the_next_run(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [handover], []):
        handle = await client.start(handover, True, id="handover-1")
        assert await handle.update("job", 7, update_id="j-7") == "done by the next run: 7"
        assert await handle.result(timeout=10) == "ok"
    latest = client.get_handle("handover-1")
    assert (await latest.describe()).run_id != handle.run_id
    taken = [e for e in await latest.history() if e["type"] == "SignalReceived"]
    assert [e["payload"]["update_id"] for e in taken] == ["j-7"]


@workflow.defn
async def one_per_run(n: int) -> int:
    """Answers one update per run, once told to go, then continues as new."""
    request = await workflow.wait_update("job")
    await workflow.wait_signal("go")
    request.reply(n)
    if n < 2:
        workflow.continue_as_new(n + 1)
    return n


async def test_a_retry_queued_behind_its_answer_is_not_handed_to_the_next_run(
    client: perdure.Client,
) -> None:
    """The caller gives up and retries while the run is still on the request;
    the run answers it and continues as new: the retry's copy, queued in it,
    must not go on to the next run (which would answer it again). And the
    handle start() gave, which names the first run, sends to the run it
    continued in."""
    async with fast_worker(client, [one_per_run], []):
        handle = await client.start(one_per_run, 1, id="once-1")
        with pytest.raises(TimeoutError):
            await handle.update("job", update_id="r", timeout=0.1)
        retry = asyncio.ensure_future(handle.update("job", update_id="r", timeout=10))
        await wait_until(lambda: _is(_requests(handle, "job"), 2), what="the retry's copy")
        await handle.signal("go")
        assert await retry == 1
        latest = client.get_handle("once-1")

        async def settled() -> bool:
            d = await latest.describe()
            return d.run_id != handle.run_id and bool(d.waiting_updates or d.waiting_signals)

        await wait_until(settled, what="the next run to wait")
        d = await latest.describe()
        assert (d.waiting_updates, d.waiting_signals) == (["job"], [])  # (not 'go': not r again)
        answer = asyncio.ensure_future(handle.update("job", update_id="s", timeout=10))
        await wait_until(lambda: _is(_requests(latest, "job"), 1), what="the request in run 2")
        await latest.signal("go")
        assert await answer == 2
        assert await latest.result(timeout=10) == 2


async def _is(count: Awaitable[int], wanted: int) -> bool:
    return await count == wanted


async def _requests(handle: perdure.WorkflowHandle[object], name: str) -> int:
    """How many requests of update ``name`` the run has taken into its history."""
    events = await handle.history()
    return sum(
        e["type"] == "SignalReceived" and e["name"] == f"perdure.update:{name}" for e in events
    )


async def test_bad_updates_are_refused_and_send_nothing(client: perdure.Client) -> None:
    async with fast_worker(client, [gated_counter], []):
        handle = await client.start(gated_counter, id="gate-2")
        with pytest.raises(TypeError, match="an update's name must be a str"):
            await handle.update(5)  # type: ignore[arg-type]
        with pytest.raises(perdure.PayloadError):
            await handle.update("bump", object())
        with pytest.raises(ValueError, match="update_id"):
            await handle.update("bump", update_id="")
        with pytest.raises(ValueError, match="timeout"):
            await handle.update("bump", timeout=-1)
        # An update's signals are its own: no signal may pose as one.
        with pytest.raises(ValueError, match="kept for updates"):
            await handle.signal("perdure.update:bump", {"update_id": "x", "payload": 1})
        await handle.signal("open")
        assert await handle.update("bump", "stop") == 0
        await handle.result(timeout=10)
    requests = [e for e in await handle.history() if e["type"] == "SignalReceived"]
    assert [e["name"] for e in requests] == ["open", "perdure.update:bump"]


async def test_workflow_code_misusing_an_update_is_told_what_is_wrong(
    client: perdure.Client,
) -> None:
    outcomes: list[str] = []

    @workflow.defn(name="misuser")
    async def misuser() -> list[str]:
        request = await workflow.wait_update("ask")
        for bad in (
            lambda: request.reject(""),
            lambda: request.reply(object()),
        ):
            try:
                bad()
            except (TypeError, ValueError, perdure.PayloadError) as exc:
                outcomes.append(type(exc).__name__)
        request.reply("fine")
        try:
            request.reply("again")
        except RuntimeError as exc:
            outcomes.append(str(exc))
        for bad_wait in (
            workflow.wait_update(5),  # type: ignore[arg-type]
            workflow.wait_signal("perdure.update:ask"),
        ):
            try:
                await bad_wait
            except (TypeError, ValueError) as exc:
                outcomes.append(type(exc).__name__ if type(exc) is TypeError else "ValueError")
        try:
            await workflow.wait_update("ask", timeout=timedelta(seconds=0.05))
        except TimeoutError as exc:
            outcomes.append(str(exc))
        return outcomes

    async with fast_worker(client, [misuser], []):
        handle = await client.start(misuser, id="misuser-1")
        assert await handle.update("ask", update_id="a-1") == "fine"
        result = await handle.result(timeout=10)
    assert result == [
        "TypeError",
        "PayloadError",
        "update 'ask' (a-1) was already answered",
        "TypeError",
        "ValueError",
        "no update 'ask' arrived within 0.05s",
    ]
    replies = [e for e in await handle.history() if e["type"] == "UpdateReplied"]
    assert [e["result"] for e in replies] == ["fine"]


async def test_describe_names_the_updates_a_run_waits_for(client: perdure.Client) -> None:
    async with fast_worker(client, [gated_counter], []):
        handle = await client.start(gated_counter, id="gate-3")

        async def waits_for(signals: list[str], updates: list[str]) -> bool:
            d = await handle.describe()
            return d.waiting_signals == signals and d.waiting_updates == updates

        await wait_until(lambda: waits_for(["open"], []), what="the wait for 'open'")
        await handle.signal("open")
        await wait_until(lambda: waits_for([], ["bump"]), what="the wait for 'bump'")
        await handle.update("bump", "stop")


async def test_the_test_environment_skips_time_while_an_update_waits() -> None:
    @workflow.defn(name="slow_answer")
    async def slow_answer() -> None:
        request = await workflow.wait_update("ask")
        await workflow.sleep(timedelta(days=2))
        request.reply(f"after two days: {request.payload}")

    async with WorkflowEnvironment(workflows=[slow_answer]) as env:
        handle = await env.start(slow_answer)
        assert await handle.update("ask", "hi", timeout=10) == "after two days: hi"
        await handle.result()


async def test_the_sync_client_sends_updates(db_url: str, client: perdure.Client) -> None:
    async with fast_worker(client, [gated_counter], []):
        handle = await client.start(gated_counter, id="gate-4")
        await handle.signal("open")
        assert await handle.update("bump", None, update_id="s-1") == 1
        await handle.update("bump", "stop")

    def asked_again() -> object:  # (no worker now: the answer is read from the history)
        with perdure.SyncClient.connect(db_url) as sync:
            return sync.get_handle("gate-4").update("bump", None, update_id="s-1")

    assert await asyncio.to_thread(asked_again) == 1


async def test_update_with_start_creates_the_run_or_updates_the_open_one(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [cart], [price_of]):
        first = await client.update_with_start(
            cart, "c-9", id="cart-9", update="edit", update_payload=Line("apple", 1)
        )
        again = await client.update_with_start(
            cart,
            "c-9",
            id="cart-9",
            update="edit",
            update_payload={"sku": "pear", "quantity": 1},
            update_id="pear-1",
        )
        # A retry of an answered id: the answer, nothing sent, no new run.
        retried = await client.update_with_start(
            cart, "c-9", id="cart-9", update="edit", update_payload="ignored", update_id="pear-1"
        )
        await client.get_handle("cart-9").update("edit", "checkout")
        assert await client.get_handle("cart-9").result(timeout=10) == {
            "total": 8,
            "apple": 1,
            "pear": 1,
        }
    assert (first, again, retried) == (
        {"total": 3, "lines": 1},
        {"total": 8, "lines": 2},
        {"total": 8, "lines": 2},
    )
    assert len(await client.list(workflow="cart")) == 1
    taken = [
        e for e in await client.get_handle("cart-9").history() if e["type"] == "SignalReceived"
    ]
    assert len(taken) == 3  # (the two edits and the checkout)


async def test_update_with_start_in_the_test_environment_skips_time() -> None:
    @workflow.defn(name="slow_cart")
    async def slow_cart() -> int:
        request = await workflow.wait_update("add")
        await workflow.sleep(timedelta(hours=5))
        request.reply(request.payload * 2)
        return 0

    async with WorkflowEnvironment(workflows=[slow_cart]) as env:
        answer = await env.client.update_with_start(
            slow_cart, id="slow-1", update="add", update_payload=21, timeout=10
        )
        assert answer == 42


async def test_a_worker_of_the_callers_process_wakes_it_with_the_answer(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's looks are 30 s apart here (and its deadline 20 s away):
    only the wake from the commit that answered brings the answer sooner."""
    monkeypatch.setattr(perdure._updates, "POLL_FIRST", 30.0)
    loop = asyncio.get_running_loop()
    async with fast_worker(client, [cart], [price_of]):
        handle = await client.start(cart, "c-3", id="cart-3")
        began = loop.time()
        # (Answered in the turn after the activity's, so after the first look.)
        answer = await handle.update("edit", Line("pear", 2), timeout=20)
        assert loop.time() - began < 10, "the caller was not woken by the answer"
        assert answer == {"total": 10, "lines": 1}
        await handle.update("edit", "checkout", timeout=20)


async def test_an_update_sent_then_awaited_and_awaited_again(client: perdure.Client) -> None:
    async with fast_worker(client, [gated_counter], []):
        handle = await client.start(gated_counter, id="gate-5")
        sent = await handle.start_update("bump", None, update_id="w-1")
        assert sent.id == "w-1" and sent.workflow_id == "gate-5"
        with pytest.raises(perdure.UpdateTimeoutError) as timed_out:
            await sent.result(timeout=0.1)  # (the run takes no update before 'open')
        assert isinstance(timed_out.value, TimeoutError)
        assert timed_out.value.update_id == "w-1"
        await handle.signal("open")
        assert await sent.result(timeout=10) == 1
        assert await sent.result(timeout=10) == 1  # (kept)
        fresh = await handle.start_update("bump", "stop")
        assert len(fresh.id) == 32  # (a new random id)
        assert await fresh.result() == 1


async def test_a_rejection_carries_the_workflows_own_reason(client: perdure.Client) -> None:
    async with fast_worker(client, [cart], [price_of]):
        handle = await client.start(cart, "c-4", id="cart-4")
        with pytest.raises(perdure.UpdateRejectedError) as rejected:
            await handle.update("edit", "lots", update_id="bad-1")
        await handle.update("edit", "checkout")
    assert rejected.value.reason == "an edit needs a sku and a quantity above 0, not 'lots'"
    assert rejected.value.update_id == "bad-1"


async def test_a_retry_after_the_answering_run_continued_as_new_gets_its_answer(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [one_per_run], []):
        handle = await client.start(one_per_run, 1, id="once-2")
        sent = await handle.start_update("job", update_id="first")
        await handle.signal("go")
        assert await sent.result(timeout=10) == 1
        latest = client.get_handle("once-2")

        async def rolled_over() -> bool:
            return (await latest.describe()).run_id != handle.run_id

        await wait_until(rolled_over, what="the continue-as-new")
        # Asked again: answered from the run before; nothing sent to run 2.
        assert await latest.update("job", update_id="first", timeout=10) == 1
        assert await _requests(latest, "job") == 0
        await latest.start_update("job")
        await latest.signal("go")
        assert await latest.result(timeout=10) == 2


async def test_a_retry_whose_run_answered_and_ended_before_it_was_sent_gets_the_answer(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look for an earlier answer finds none; the run answers, ends;
    then the send finds it ended: the answer is looked for again."""
    async with fast_worker(client, [gated_counter], []):
        handle = await client.start(gated_counter, id="gate-6")
        await handle.signal("open")
        assert await handle.update("bump", "stop", update_id="last") == 0
        await handle.result(timeout=10)
    looks: list[str] = []
    real = perdure._updates._answered

    async def late(*args: object) -> object:
        looks.append("look")
        return None if len(looks) == 1 else await real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(perdure._updates, "_answered", late)
    assert await handle.update("bump", "stop", update_id="last") == 0
    assert looks == ["look", "look"]
    with pytest.raises(perdure.WorkflowClosedError):
        await handle.update("bump", "stop", update_id="never-sent")
