"""Updates inside a run: ``workflow.wait_update`` takes the next request of
an update (a signal under a reserved name, ``perdure._history.updates``),
skipping one whose id this run already took, and the request it returns
records the answer (``ReplyUpdate``). A mixin of WorkflowInstance. No I/O;
imports the history model, the converter and the runtime's signals.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from perdure import _history as h
from perdure._converter import DataConverter
from perdure._runtime.signals import Signals

if TYPE_CHECKING:
    from perdure._runtime.loop import WorkflowLoop

__all__ = ["UpdateRequest", "Updates"]

logger = logging.getLogger("perdure.workflow")


class UpdateRequest:
    """One request of an update, as ``workflow.wait_update`` returns it:
    answer it once, with :meth:`reply` or :meth:`reject`; the caller of
    ``handle.update()`` gets the answer. ``id`` is the caller's update id
    (a retry with the same id is not delivered again in this run)."""

    __slots__ = ("_answered", "_owner", "id", "name", "payload")

    def __init__(self, owner: Updates, update_id: str, name: str, payload: Any) -> None:
        self._owner = owner
        self._answered = False
        self.id = update_id
        self.name = name
        self.payload = payload

    def reply(self, value: Any = None) -> None:
        """Answer the update with ``value`` (JSON-encodable, or a type the
        converter knows): recorded with this turn, returned to the caller."""
        self._answer(value, None)

    def reject(self, message: str) -> None:
        """Refuse the update: the caller's ``handle.update()`` raises
        ``UpdateRejectedError`` with ``message``. (The request stays in the
        history, unlike a Temporal validator's refusal.)"""
        if not isinstance(message, str) or not message:
            raise TypeError(f"a rejection's message is a non-empty str, not {message!r}")
        self._answer(None, message)

    def _answer(self, value: Any, failure: str | None) -> None:
        from perdure._runtime.instance import current_instance

        if current_instance() is not self._owner:
            raise RuntimeError(
                f"update {self.name!r} ({self.id}) can only be answered by the workflow code "
                f"of the run that received it"
            )
        if self._answered:
            raise RuntimeError(f"update {self.name!r} ({self.id}) was already answered")
        encoded = (
            None
            if failure is not None
            else self._owner.converter.to_json(value, where=f"the reply to update {self.name!r}")
        )
        self._answered = True
        self._owner._unanswered.pop(self.id, None)
        self._owner.replied = True
        self._owner.issue(h.ReplyUpdate(self.id, self.name, encoded, failure))

    def __repr__(self) -> str:
        return f"<UpdateRequest {self.name!r} {self.id}>"


class Updates:
    """WorkflowInstance's updates: the ids this run took."""

    # Set by WorkflowInstance.__init__:
    converter: DataConverter
    loop: WorkflowLoop
    _signals: Signals
    _update_ids: set[str]
    # The requests this run took and has not answered, in the order taken:
    # their signal as recorded. A run that continues as new hands them on.
    _unanswered: dict[str, tuple[str, h.JSON]]
    # This turn answered an update: once it is committed, the worker wakes
    # the callers waiting in this process (and clears it).
    replied: bool

    if TYPE_CHECKING:  # WorkflowInstance's

        def issue(self, command: h.Command) -> h.Event | None: ...

    async def wait_update(self, name: str, timeout: float | None) -> UpdateRequest:
        signal = h.update_signal_name(name)
        deadline = None if timeout is None else self.loop.time() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - self.loop.time())
            try:
                recorded, value = await self._signals.wait_recorded(self.loop, signal, left)
            except TimeoutError:
                raise TimeoutError(f"no update {name!r} arrived within {timeout:g}s") from None
            parsed = h.parse_update_request(value)
            if parsed is None:
                # (What it held is not logged: payloads stay out of logs.)
                logger.warning("update %r: a request that is not one was dropped", name)
                continue
            update_id, payload = parsed
            if update_id in self._update_ids:
                continue  # (a caller's retry of a request this run took)
            self._update_ids.add(update_id)
            self._unanswered[update_id] = (signal, recorded)
            return UpdateRequest(self, update_id, name, payload)

    def handed_on(self) -> tuple[tuple[str, h.JSON], ...]:
        """What a run that continues as new hands to the next: the requests
        it took and did not answer (the next run takes them again), then the
        signals no wait took, each in the order it came, but for requests
        whose id this run took (a caller's retries: the next run would not
        know to skip them)."""
        untaken = [
            (name, recorded)
            for name, recorded, value in self._signals.untaken()
            if not self._taken(name, value)
        ]
        return (*self._unanswered.values(), *untaken)

    def _taken(self, name: str, value: Any) -> bool:
        if not name.startswith(h.UPDATE_SIGNAL_PREFIX):
            return False
        parsed = h.parse_update_request(value)
        return parsed is not None and parsed[0] in self._update_ids
