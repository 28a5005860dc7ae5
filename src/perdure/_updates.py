"""An update called from a client (``WorkflowHandle.update``,
``Client.update_with_start``): its request
goes into the run's inbox as a signal (``perdure._history.updates``), then
the run's new events are read until its ``UpdateReplied`` comes, following
the run into the runs it continues as new in. Talks to the client's store only.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from perdure import _history as h
from perdure._checks import check_name, check_text
from perdure._store.base import OPEN, NewRun, RunRecord
from perdure._waiting import EndWatch
from perdure.errors import UpdateRejectedError, WorkflowClosedError, WorkflowNotFoundError

if TYPE_CHECKING:
    from perdure._handle import WorkflowHandle

__all__ = ["call_update"]

POLL_FIRST = 0.002  # seconds: the first pause between reads (it doubles each time)


async def call_update(
    handle: WorkflowHandle[Any],
    name: str,
    payload: Any,
    update_id: str | None,
    timeout: float,
    start: NewRun | None = None,
) -> Any:
    """See ``WorkflowHandle.update``; with ``start``, ``Client.update_with_start``
    (the request goes to the open run of the id, or to this new run)."""
    client = handle.client
    if not isinstance(name, str):
        raise TypeError(f"an update's name must be a str, not {type(name).__name__} {name!r}")
    check_text("an update's name", name)
    check_name("update_id", update_id, none_means="a new random id")
    retried = update_id is not None
    update_id = update_id or uuid.uuid4().hex
    signal = h.update_signal_name(name)
    encoded = client.converter.to_json(
        h.update_request(update_id, payload), where=f"payload of update {name!r}"
    )
    event = h.SignalReceived(name=signal, payload=encoded)
    problem = h.field_problem(event)
    if problem is not None:
        raise TypeError(problem)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    if retried:
        # A request with this id may have been answered already: its answer
        # is in the history (the run's, from its start).
        try:
            latest = await handle._run()
        except WorkflowNotFoundError:
            if start is None:
                raise
        else:
            answer = await _answer_in(handle, latest.run_id, 0, update_id)
            if answer is not None:
                return _outcome(handle, name, answer)
    if start is None:
        run = await _deliver(handle, event)
    else:
        run = await client.store.signal_with_start(start, event)
    run_id, after = run.run_id, 0 if retried else run.last_seq
    # A worker of this process that commits the answer wakes this call (as
    # it wakes result() waiters when a run ends); other processes' answers
    # are read at the next look, every 2 ms at first, then less often.
    watch = EndWatch(client.store)
    try:
        return await _wait_for_answer(
            handle, name, update_id, run_id, after, (deadline, timeout), watch
        )
    finally:
        watch.close()


async def _wait_for_answer(
    handle: WorkflowHandle[Any],
    name: str,
    update_id: str,
    run_id: str,
    after: int,
    until: tuple[float, float],
    watch: EndWatch,
) -> Any:
    """The answer, read from the run's events after ``after``; ``until``:
    the deadline on the loop's clock, and the timeout it came from."""
    client = handle.client
    loop = asyncio.get_running_loop()
    deadline, timeout = until
    pause = POLL_FIRST
    while True:
        if watch.run_id != run_id:
            watch.listen(run_id)
        watch.changed.clear()  # (before reading: an answer between the two is not missed)
        run = await handle._run(run_id)
        if run.last_seq > after:
            events = await client.store.history(run_id, after)
            for e in events:
                if isinstance(e, h.UpdateReplied) and e.update_id == update_id:
                    return _outcome(handle, name, e)
            if events:
                after = events[-1].seq
        if run.continued_to is not None:
            run_id, after = run.continued_to, 0  # (it handed the request on)
            continue
        if run.status != OPEN and after >= run.last_seq:
            raise WorkflowClosedError(
                f"run {run.run_id} of workflow {handle.id!r} ended {run.status} without "
                f"answering update {name!r} ({update_id})"
            )
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(
                f"workflow {handle.id!r} did not answer update {name!r} ({update_id}) within "
                f"{timeout:g}s; the request stays queued: call again with "
                f"update_id={update_id!r} for its answer"
            )
        await watch.wait(min(pause, left))
        pause = min(pause * 2, max(POLL_FIRST, client.poll_interval))


async def _deliver(handle: WorkflowHandle[Any], event: h.SignalReceived) -> RunRecord:
    """Into the handle's run, or, if that run has continued as new, the run
    it continued in (a handle from ``start()`` names the first run of a
    session that may have rolled over many times)."""
    run_id = handle.run_id
    while True:
        try:
            return await handle.client.store.deliver(handle.id, run_id, event)
        except WorkflowClosedError:
            if run_id is None:
                raise
            run_id = (await handle._run(run_id)).continued_to
            if run_id is None:
                raise


async def _answer_in(
    handle: WorkflowHandle[Any], run_id: str, after: int, update_id: str
) -> h.UpdateReplied | None:
    for e in await handle.client.store.history(run_id, after):
        if isinstance(e, h.UpdateReplied) and e.update_id == update_id:
            return e
    return None


def _outcome(handle: WorkflowHandle[Any], name: str, answer: h.UpdateReplied) -> Any:
    if answer.failure is not None:
        raise UpdateRejectedError(
            f"workflow {handle.id!r} rejected update {name!r}: {answer.failure}",
            update_id=answer.update_id,
        )
    return handle.client.converter.from_json(answer.result, where=f"the reply to update {name!r}")
