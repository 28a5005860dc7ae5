"""Worker builds (docs/versioning.md, "Pinning runs to a build"): a run of
a pinned workflow type stays on the build whose worker first ran it, so a
deploy whose code would not replay an older history leaves the older runs
to the older workers; the newest build takes the queue's new runs; an
operator moves a run, or goes back to an older build.

Each build's worker has a client of its own (as in its own process), and
the runs are started by a third, so that no worker takes a run because it
was started beside it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow
from perdure.errors import WorkflowClosedError
from perdure.server._metrics import prometheus_text

QUEUE = "orders"


@activity.defn
async def check_stock(order: str) -> str:
    return f"{order}:in-stock"


# The same workflow type in two releases. Build 2 checks the stock before it
# waits for the approval: a history that build 1 recorded (it waits first)
# does not replay on it.
@workflow.defn(name="approval")
async def approval_v1(order: str) -> str:
    decision = await workflow.wait_signal("decision")
    return f"v1 {order} {decision}"


@workflow.defn(name="approval")
async def approval_v2(order: str) -> str:
    stock = await check_stock(order)
    decision = await workflow.wait_signal("decision")
    return f"v2 {stock} {decision}"


@workflow.defn
async def two_decisions(order: str) -> str:
    first = await workflow.wait_signal("decision")
    second = await workflow.wait_signal("decision")
    return f"{order} {first} {second}"


@workflow.defn
async def parent(order: str) -> str:
    return await workflow.execute_child(two_decisions, order, id=f"{order}-child")


# A parent and its child in two releases: the child's result changed shape.
# (Each sleeps first: a child's first turn that ended it would never be
# computed before its parent's commit, see sqlstart.prepare_children.)
@workflow.defn(name="kid")
async def kid_v1(n: int) -> str:
    await workflow.sleep(0.01)
    return f"kid v1 {n}"


@workflow.defn(name="kid")
async def kid_v2(n: int) -> dict[str, int]:
    await workflow.sleep(0.01)
    return {"kid v2": n}


@workflow.defn(name="family")
async def family_v1(n: int) -> str:
    await workflow.wait_signal("go")
    return await workflow.execute_child(kid_v1, n, id=f"kid-{n}")


# An auto-upgrade type: its changes are patched, and its runs follow the
# current build.
@workflow.defn(name="ticket", versioning="auto_upgrade")
async def ticket_v1(n: int) -> str:
    await workflow.wait_signal("go")
    return f"v1 ticket {n}"


@workflow.defn(name="ticket", versioning="auto_upgrade")
async def ticket_v2(n: int) -> str:
    await workflow.wait_signal("go")
    if workflow.patched("ticket-v2"):
        return f"v2 ticket {n}"
    return f"v1 ticket {n}"


@asynccontextmanager
async def build_worker(
    db_url: str, build_id: str | None, workflows: list[Any], **options: Any
) -> AsyncIterator[perdure.Worker]:
    """A worker of ``build_id`` with a client of its own."""
    own = await perdure.Client.connect(db_url)
    try:
        options.setdefault("lease_timeout", 1.5)  # (it looks at the builds every 0.5 s)
        worker = fast_worker(
            own, workflows, [check_stock], task_queue=QUEUE, build_id=build_id, **options
        )
        async with worker:
            yield worker
    finally:
        await own.close()


def pinned_only(worker: perdure.Worker) -> Callable[[], Any]:
    """Whether ``worker`` has seen that another build is current."""

    async def check() -> bool:
        return QUEUE not in worker.turn_queues

    return check


async def pinned_to(handle: perdure.WorkflowHandle[Any], build_id: str | None) -> None:
    async def check() -> bool:
        return (await handle.describe()).build_id == build_id

    await wait_until(check, what=f"run {handle.id} pinned to {build_id!r}")


async def test_a_pinned_run_finishes_on_its_build_after_a_new_one_is_deployed(
    client: perdure.Client, db_url: str
) -> None:
    async with build_worker(db_url, "build-1", [approval_v1]) as one:
        old = await client.start(approval_v1, "A-1", id="old", task_queue=QUEUE)
        await pinned_to(old, "build-1")
        # Claimed first turns committed together (ClaimedPlans) pin their runs too.
        burst = await asyncio.gather(
            *(client.start(approval_v1, f"A-{i}", id=f"burst-{i}", task_queue=QUEUE)
              for i in range(20))
        )  # fmt: skip
        for handle in burst:
            await pinned_to(handle, "build-1")
            await handle.terminate("enough")
        async with build_worker(db_url, "build-2", [approval_v2]):
            # Build 2's first worker made it current: build 1 takes no new run.
            await wait_until(pinned_only(one), what="build 1 to see build 2 current")
            builds = await client.builds(QUEUE)
            assert [(b.build_id, b.current) for b in builds] == [
                ("build-2", True),
                ("build-1", False),
            ]
            new = await client.start(approval_v2, "B-2", id="new", task_queue=QUEUE)
            await pinned_to(new, "build-2")
            assert (await client.builds(QUEUE))[1].open_runs == 1
            # Each run's next turn goes to its own build's code.
            await old.signal("decision", "yes")
            await new.signal("decision", "no")
            assert await old.result(timeout=10) == "v1 A-1 yes"
            assert await new.result(timeout=10) == "v2 B-2:in-stock no"
            # Build 2's code never met build 1's history (it would not replay).
            assert (await old.describe()).last_error is None
            assert [b.open_runs for b in await client.builds(QUEUE)] == [0, 0]
    listed = await client.list(build_id="build-1", limit=50)
    assert {(r.id, r.build_id) for r in listed} == {
        ("old", "build-1"),
        *((f"burst-{i}", "build-1") for i in range(20)),
    }


async def test_a_run_whose_build_is_gone_waits_until_it_is_moved(
    client: perdure.Client, db_url: str
) -> None:
    async with build_worker(db_url, "build-1", [approval_v1]):
        stuck = await client.start(approval_v1, "A-1", id="stuck", task_queue=QUEUE)
        await pinned_to(stuck, "build-1")
    # Build 1's workers are gone. Neither a worker without a build nor
    # build 2's takes the run's turn: the history is build 1's.
    async with (
        build_worker(db_url, None, [approval_v1]),
        build_worker(db_url, "build-2", [approval_v1]),
    ):
        await stuck.signal("decision", "yes")

        async def waits_for_its_build() -> bool:
            return (await stuck.describe()).waiting_for_worker

        await wait_until(waits_for_its_build, what="the run to wait for a worker of build 1")
        described = await stuck.describe()
        assert described.status == "running" and described.build_id == "build-1"
        # The queue's backlog counts the turn apart, for the build it waits for.
        stats = await client.stats()
        [waiting] = [b for b in stats.backlog if b.build_id is not None]
        assert (waiting.task_queue, waiting.kind, waiting.build_id) == (
            QUEUE,
            "workflow",
            "build-1",
        )
        assert waiting.due == 1 and waiting.lag > 0
        metrics = prometheus_text(stats, await client.builds_by_queue())
        assert 'perdure_tasks_due{queue="orders",kind="workflow",build="build-1"} 1' in metrics
        # A build with open runs and no live worker: the gauges to alert on.
        for line in (
            'perdure_build_runs_open{queue="orders",build="build-1"} 1',
            'perdure_build_workers{queue="orders",build="build-1"} 0',
            'perdure_build_current{queue="orders",build="build-1"} 0',
            'perdure_build_current{queue="orders",build="build-2"} 1',
            'perdure_build_workers{queue="orders",build="build-2"} 1',
            'perdure_build_runs_open{queue="orders",build="build-2"} 0',
        ):
            assert line in metrics.splitlines(), (line, metrics)
        # Build 2 runs build 1's code for this workflow: move the run there.
        await stuck.set_build_id("build-2")
        assert await stuck.result(timeout=10) == "v1 A-1 yes"
        assert (await stuck.describe()).build_id == "build-2"
        with pytest.raises(WorkflowClosedError):
            await stuck.set_build_id("build-1")


async def test_an_unpinned_run_is_taken_and_pinned_by_the_current_build(
    client: perdure.Client, db_url: str
) -> None:
    async with build_worker(db_url, "build-1", [two_decisions]):
        run = await client.start(two_decisions, "A-1", id="moved", task_queue=QUEUE)
        await pinned_to(run, "build-1")
        await run.set_build_id(None)
        assert (await run.describe()).build_id is None
        # The current build (build 1, the only one) takes its next turn, and pins it again.
        await run.signal("decision", "ok")
        await pinned_to(run, "build-1")
        await run.signal("decision", "sure")
        assert await run.result(timeout=10) == "A-1 ok sure"


async def test_auto_upgrade_runs_follow_the_current_build(
    client: perdure.Client, db_url: str
) -> None:
    async with build_worker(db_url, "build-1", [ticket_v1]) as one:
        run = await client.start(ticket_v1, 7, id="t-7", task_queue=QUEUE)

        async def waiting() -> bool:
            return (await run.describe()).waiting_signals == ["go"]

        await wait_until(waiting, what="the ticket's first turn")
        assert (await run.describe()).build_id is None  # (auto-upgrade: never pinned)
        async with build_worker(db_url, "build-2", [ticket_v2]):
            await wait_until(pinned_only(one), what="build 1 to see build 2 current")
            await run.signal("go")
            assert await run.result(timeout=10) == "v2 ticket 7"


async def test_going_back_to_an_older_build(client: perdure.Client, db_url: str) -> None:
    async with (
        build_worker(db_url, "build-1", [approval_v1]) as one,
        build_worker(db_url, "build-2", [approval_v2]) as two,
    ):
        await wait_until(pinned_only(one), what="build 1 to see build 2 current")
        # Build 2 is bad: build 1 is made current again, and takes the new runs.
        await client.set_current_build(QUEUE, "build-1")
        await wait_until(pinned_only(two), what="build 2 to see build 1 current")

        async def current_again() -> bool:
            return QUEUE in one.turn_queues

        await wait_until(current_again, what="build 1 to see itself current again")
        run = await client.start(approval_v1, "C-3", id="after-rollback", task_queue=QUEUE)
        await pinned_to(run, "build-1")
        await run.signal("decision", "yes")
        assert await run.result(timeout=10) == "v1 C-3 yes"
        builds = await client.builds(QUEUE)
        assert [(b.build_id, b.current, b.workers) for b in builds] == [
            ("build-1", True, 1),
            ("build-2", False, 1),
        ]
        workers = {w.identity: w.build_id for w in await client.list_workers()}
        assert sorted(workers.values(), key=str) == ["build-1", "build-2"]


async def test_a_worker_without_a_build_pins_nothing(client: perdure.Client, db_url: str) -> None:
    async with build_worker(db_url, None, [approval_v1]):
        run = await client.start(approval_v1, "A-1", id="plain", task_queue=QUEUE)
        await run.signal("decision", "yes")
        assert await run.result(timeout=10) == "v1 A-1 yes"
    assert (await run.describe()).build_id is None
    assert await client.builds(QUEUE) == []


async def test_runs_started_beside_the_workers_go_to_the_current_build(
    client: perdure.Client,
) -> None:
    """In one process (the embedded mode), a run's first turn is computed by
    a worker there as the run is started, and written with its start; a
    child's first turn with its parent's turn: both pin their runs."""
    one = fast_worker(client, [approval_v1, parent, two_decisions], [], task_queue=QUEUE,
                      build_id="build-1", lease_timeout=1.5)  # fmt: skip
    async with one:
        first = await client.start(approval_v1, "A-1", id="first", task_queue=QUEUE)
        assert (await first.describe()).build_id == "build-1"  # (pinned by its start's commit)
        # A burst of starts: their first turns are written together (StartPlans).
        burst = await asyncio.gather(
            *(client.start(approval_v1, f"A-{i}", id=f"burst-{i}", task_queue=QUEUE)
              for i in range(20))
        )  # fmt: skip
        assert {(await h.describe()).build_id for h in burst} == {"build-1"}
        family = await client.start(parent, "F", id="family", task_queue=QUEUE)
        child = client.get_handle("F-child")
        await pinned_to(child, "build-1")
        await pinned_to(family, "build-1")
        two = fast_worker(client, [approval_v2], [check_stock], task_queue=QUEUE,
                          build_id="build-2", lease_timeout=1.5)  # fmt: skip
        async with two:
            await wait_until(pinned_only(one), what="build 1 to see build 2 current")
            second = await client.start(approval_v2, "B-2", id="second", task_queue=QUEUE)
            await pinned_to(second, "build-2")
            for handle in (first, second):
                await handle.signal("decision", "yes")
            await child.signal("decision", "a")
            await child.signal("decision", "b")
            assert await first.result(timeout=10) == "v1 A-1 yes"
            assert await second.result(timeout=10) == "v2 B-2:in-stock yes"
            assert await family.result(timeout=10) == "F a b"


async def test_a_schedules_workflow_follows_the_current_build(
    client: perdure.Client, db_url: str
) -> None:
    """perdure's own schedule workflow is auto-upgrade: a schedule's run
    lives as long as the schedule, and must not keep an old build alive."""
    async with build_worker(db_url, "build-1", [two_decisions]):
        schedule = await client.create_schedule(
            "hourly", two_decisions, "s", every=timedelta(hours=1), task_queue=QUEUE
        )
        runner = schedule.workflow_handle

        async def sleeping() -> bool:
            return bool((await runner.describe()).pending_timers)

        await wait_until(sleeping, what="the schedule's workflow to wait for its next time")
        assert (await runner.describe()).build_id is None


@pytest.mark.parametrize("one_process", [False, True])
async def test_a_pinned_parents_child_stays_on_its_build(
    client: perdure.Client, db_url: str, one_process: bool
) -> None:
    """A child that a run pinned to build 1 starts on its own queue starts
    pinned to build 1 too, though build 2 is current: the parent expects the
    child's result as build 1 made it. With both workers in one process
    (and the client), the child's first turn is not computed by the worker
    of build 2, which takes the new runs started there."""
    if one_process:
        one = fast_worker(client, [family_v1, kid_v1], [], task_queue=QUEUE,
                          build_id="build-1", lease_timeout=1.5)  # fmt: skip
        two = fast_worker(client, [kid_v2], [], task_queue=QUEUE, build_id="build-2",
                          lease_timeout=1.5)  # fmt: skip
    async with one if one_process else build_worker(db_url, "build-1", [family_v1, kid_v1]) as one:
        family = await client.start(family_v1, 3, id="family-3", task_queue=QUEUE)
        await pinned_to(family, "build-1")
        async with two if one_process else build_worker(db_url, "build-2", [kid_v2]):
            await wait_until(pinned_only(one), what="build 1 to see build 2 current")
            await family.signal("go")
            assert await family.result(timeout=10) == "kid v1 3"
            assert (await client.get_handle("kid-3").describe()).build_id == "build-1"


async def test_a_type_only_an_old_build_registers_is_reported_not_handed_back(
    client: perdure.Client, db_url: str
) -> None:
    """A new run of a type the current build dropped: a worker of the
    current build claims its turn and cannot run it. Handing it back
    would wait for build 1's worker, which takes no new runs: the turn
    fails instead, saying why, for an operator to see."""
    async with (
        build_worker(db_url, "build-1", [approval_v1, two_decisions]) as one,
        build_worker(db_url, "build-2", [approval_v2]),
    ):
        await wait_until(pinned_only(one), what="build 1 to see build 2 current")
        run = await client.start(two_decisions, "x", id="dropped", task_queue=QUEUE)

        async def reported() -> bool:
            return "not registered" in ((await run.describe()).last_error or "")

        await wait_until(reported, what="the turn to fail as not registered")
        assert (await run.describe()).build_id is None


async def test_an_activity_worker_of_a_newer_build_takes_no_runs_over(
    client: perdure.Client, db_url: str
) -> None:
    """Activity workers deployed before the workflows' of the same release
    (a separate pool on the queue) do not make their build current: the
    workflows' build goes on taking new runs."""
    async with build_worker(db_url, "build-1", [approval_v1]) as one:
        own = await perdure.Client.connect(db_url)
        try:
            async with fast_worker(own, [], [check_stock], task_queue=QUEUE, build_id="build-2"):
                run = await client.start(approval_v1, "A-1", id="still-one", task_queue=QUEUE)
                await pinned_to(run, "build-1")
                assert [b.build_id for b in await client.builds(QUEUE)] == ["build-1"]
                assert QUEUE in one.turn_queues
                workers = {w.build_id for w in await client.list_workers()}
                assert workers == {"build-1", "build-2"}
        finally:
            await own.close()


async def test_builds_refuse_bad_input(client: perdure.Client) -> None:
    with pytest.raises(ValueError, match="build_id must be a non-empty string"):
        perdure.Worker(client, [approval_v1], build_id="")
    with pytest.raises(ValueError, match="build_id must be at most 200 bytes"):
        perdure.Worker(client, [approval_v1], build_id="x" * 201)
    with pytest.raises(ValueError, match="must not hold the control character U\\+001F"):
        perdure.Worker(client, [approval_v1], task_queue="orders\x1fbuild-1")
    with pytest.raises(ValueError, match="must not hold the control character U\\+001F"):
        await client.start(approval_v1, "x", task_queue="orders\x1fbuild-1")
    with pytest.raises(ValueError, match="versioning must be one of 'pinned', 'auto_upgrade'"):
        workflow.defn(versioning="sometimes")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="build_id must be a non-empty string"):
        await client.list(build_id="")
    with pytest.raises(ValueError, match="build_id must be a non-empty string"):
        await client.set_current_build(QUEUE, "")
    handle = client.get_handle("nobody")
    with pytest.raises(ValueError, match="build_id must be a non-empty string"):
        await handle.set_build_id("")
    with pytest.raises(perdure.WorkflowNotFoundError):
        await handle.set_build_id("build-1")


async def test_a_batch_by_build_id_acts_on_the_runs_pinned_to_it_only(
    client: perdure.Client,
) -> None:
    """After a bad deploy: a build id alone names runs (a filter), and a
    batch by it acts on the runs pinned to that build, no other. (Pinned by
    hand: no worker is needed to choose or to terminate.)"""
    pins = {"bad-1": "build-bad", "bad-2": "build-bad", "good-1": "build-good", "none-1": None}
    for ident, build in pins.items():
        handle = await client.start(approval_v1, ident, id=ident, task_queue=QUEUE)
        if build is not None:
            await handle.set_build_id(build)
    with pytest.raises(ValueError, match="name which runs to terminate: give a filter"):
        await client.batch("terminate", build_id="")  # (empty: no filter, as the others)
    with pytest.raises(ValueError, match="build_id must be at most 200 bytes"):
        await client.batch("terminate", build_id="x" * 201)

    found = await client.batch("terminate", build_id="build-bad", dry_run=True)
    assert [e.id for e in found.matched] == ["bad-2", "bad-1"] and found.done == {}
    done = await client.batch("terminate", build_id="build-bad", reason="bad deploy")
    assert sorted(done.done) == ["bad-1", "bad-2"] and done.failed == done.skipped == {}
    statuses = {i: (await client.get_handle(i).describe()).status for i in pins}
    assert statuses == {
        "bad-1": "terminated",
        "bad-2": "terminated",
        "good-1": "running",
        "none-1": "running",
    }
    # It names the activities of a batch too: those of its open runs (none left).
    nothing = await client.batch_activities("pause", build_id="build-bad", dry_run=True)
    assert nothing.matched == []
