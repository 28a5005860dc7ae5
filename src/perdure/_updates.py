"""An update sent from a client (``WorkflowHandle.start_update`` / ``update``,
``Client.update_with_start``): its request goes into the run's inbox as a
signal (``perdure._history.updates``); its ``UpdateHandle`` then reads the
run's new events until the ``UpdateReplied`` comes, following the run into
the runs it continues as new in. Talks to the client's store only.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from perdure import _history as h
from perdure._checks import check_name, check_text, timeout_seconds
from perdure._store.base import OPEN, NewRun
from perdure._waiting import EndWatch
from perdure.errors import (
    UpdateRejectedError,
    UpdateTimeoutError,
    WorkflowClosedError,
    WorkflowNotFoundError,
)

if TYPE_CHECKING:
    from perdure._handle import WorkflowHandle

__all__ = ["UpdateHandle", "send_update"]

POLL_FIRST = 0.002  # seconds: the first pause between reads (it doubles each time)
REPLIED = h.UpdateReplied.TYPE


class UpdateHandle:
    """An update that was sent (``WorkflowHandle.start_update``): its ``id``,
    and ``await result(timeout=60)`` for the workflow's answer (again and
    again if need be: a timeout leaves the request queued)."""

    def __init__(
        self,
        handle: WorkflowHandle[Any],
        name: str,
        update_id: str,
        at: tuple[str, int],
    ) -> None:
        self._handle = handle
        self._run_id, self._after = at  # where to read on from
        self._answer: h.UpdateReplied | None = None
        self.name = name
        self.id = update_id
        self.workflow_id = handle.id

    async def result(self, timeout: float = 60.0) -> Any:
        """The workflow's answer (``request.reply(value)``'s value, decoded as
        JSON); raises ``UpdateRejectedError`` for ``request.reject(message)``,
        ``UpdateTimeoutError`` (a ``TimeoutError``) after ``timeout`` seconds,
        ``WorkflowClosedError`` if the run ends without answering."""
        timeout = timeout_seconds(timeout)
        if self._answer is None:
            self._answer = await self._handle._awaiting(self._wait(timeout))
        return _outcome(self._handle, self.name, self._answer)

    async def _wait(self, timeout: float) -> h.UpdateReplied:
        # A worker of this process that commits the answer wakes this wait (as
        # it wakes result() waiters when a run ends); other processes' answers
        # are read at the next look, every 2 ms at first, then less often.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        store = self._handle.client.store
        watch = EndWatch(store)
        pause = POLL_FIRST
        try:
            while True:
                if watch.run_id != self._run_id:
                    watch.listen(self._run_id)
                watch.changed.clear()  # (before reading: an answer between is not missed)
                run = await self._handle._run(self._run_id)
                if run.last_seq > self._after:
                    # (The answers only: no other event is decoded.)
                    events = await store.history(self._run_id, self._after, REPLIED)
                    found = _reply_in(events, self.id)
                    if found is not None:
                        return found
                    self._after = max(run.last_seq, events[-1].seq if events else 0)
                if run.continued_to is not None:
                    self._run_id, self._after = run.continued_to, 0  # (it handed the request on)
                    continue
                if run.status != OPEN and self._after >= run.last_seq:
                    raise WorkflowClosedError(
                        f"run {run.run_id} of workflow {self.workflow_id!r} ended {run.status} "
                        f"without answering update {self.name!r} ({self.id})"
                    )
                left = deadline - loop.time()
                if left <= 0:
                    raise UpdateTimeoutError(
                        f"workflow {self.workflow_id!r} did not answer update {self.name!r} "
                        f"({self.id}) within {timeout:g}s; the request stays queued: wait again "
                        f"(UpdateHandle.result), or call again with update_id={self.id!r}",
                        update_id=self.id,
                    )
                await watch.wait(min(pause, left))
                pause = min(pause * 2, max(POLL_FIRST, self._handle.client.poll_interval))
        finally:
            watch.close()

    def __repr__(self) -> str:
        return f"<UpdateHandle {self.name!r} {self.id} of {self.workflow_id!r}>"


async def send_update(
    handle: WorkflowHandle[Any],
    name: str,
    payload: Any,
    update_id: str | None,
    start: NewRun | None = None,
) -> UpdateHandle:
    """See ``WorkflowHandle.start_update``; with ``start``,
    ``Client.update_with_start`` (the request goes to the open run of the
    id, or to this new run)."""
    client = handle.client
    if not isinstance(name, str):
        raise TypeError(f"an update's name must be a str, not {type(name).__name__} {name!r}")
    check_text("an update's name", name)
    check_name("update_id", update_id, none_means="a new random id")
    retried = update_id is not None
    update_id = update_id or uuid.uuid4().hex
    encoded = client.converter.to_json(
        h.update_request(update_id, payload), where=f"payload of update {name!r}"
    )
    event = h.SignalReceived(name=h.update_signal_name(name), payload=encoded)
    problem = h.field_problem(event)
    if problem is not None:
        raise TypeError(problem)
    if retried:
        # A request with this id may have been answered already: its answer
        # is in the history (the latest run's, or the one it continued from).
        answered = await _answered(handle, update_id, start is not None)
        if answered is not None:
            return UpdateHandle(handle, name, update_id, answered)
    try:
        if start is None:
            run = await handle._deliver(event)
        else:
            run = await client.store.signal_with_start(start, event)
    except WorkflowClosedError:
        # (The run answered this id and ended between the look and the send.)
        answered = await _answered(handle, update_id, False) if retried else None
        if answered is None:
            raise
        return UpdateHandle(handle, name, update_id, answered)
    at = (run.run_id, 0 if retried else run.last_seq)
    return UpdateHandle(handle, name, update_id, at)


async def _answered(
    handle: WorkflowHandle[Any], update_id: str, may_not_exist: bool
) -> tuple[str, int] | None:
    """Where the answer to ``update_id`` is recorded, as (run id, the seq
    before it), if the handle's run or the run it continued from has it."""
    try:
        run = await handle._run()
    except WorkflowNotFoundError:
        if may_not_exist:
            return None
        raise
    store = handle.client.store
    found = _reply_in(await store.history(run.run_id, 0, REPLIED), update_id)
    if found is not None:
        return run.run_id, found.seq - 1
    before = await store.run_before(handle.id, run.run_id)
    if before is not None and before.continued_to == run.run_id:
        found = _reply_in(await store.history(before.run_id, 0, REPLIED), update_id)
        if found is not None:
            return before.run_id, found.seq - 1
    return None


def _reply_in(events: list[h.Event], update_id: str) -> h.UpdateReplied | None:
    for e in events:
        if isinstance(e, h.UpdateReplied) and e.update_id == update_id:
            return e
    return None


def _outcome(handle: WorkflowHandle[Any], name: str, answer: h.UpdateReplied) -> Any:
    if answer.failure is not None:
        raise UpdateRejectedError(
            f"workflow {handle.id!r} rejected update {name!r}: {answer.failure}",
            update_id=answer.update_id,
            reason=answer.failure,
        )
    return handle.client.converter.from_json(answer.result, where=f"the reply to update {name!r}")
