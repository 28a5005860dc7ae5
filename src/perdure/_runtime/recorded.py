"""What a run records for itself, with no answer to wait for: patch markers,
side effects' values, state, stream writes and search attributes. A mixin of WorkflowInstance
(which holds the state it uses). No I/O; imports the history model, the
converter, search attributes' rules, perdure's errors and the runtime's endings.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from perdure import _history as h
from perdure._attributes import merged
from perdure._converter import DataConverter
from perdure._runtime.endings import _TurnAborted
from perdure.errors import PayloadCodecError

__all__ = ["NEWER_BUILD", "RecordedValues"]

# The patch marker's prefix under which newer_build records what it saw
# (a marker of the same kind as patched's: skipped by code that no longer asks).
NEWER_BUILD = "perdure.newer_build:"


class RecordedValues:
    """WorkflowInstance's patches, side effects, state, streams and search attributes."""

    # Set by WorkflowInstance.__init__ (and activate, for _expected):
    converter: DataConverter
    state: dict[str, Any]
    # The streams this run closed (a write after its close is refused, in
    # replay as when first run).
    closed_streams: set[str]
    search_attributes: dict[str, Any]  # as the run's turns have left them
    _expected: deque[h.Event] | None
    _patches: dict[str, bool]
    # Set by the worker before each turn: the build this run's workflow id
    # would start on now, if not the build the run is pinned to (None: none).
    newer_build: str | None

    if TYPE_CHECKING:  # WorkflowInstance's

        def next_ref(self) -> int: ...

        def issue(self, command: h.Command) -> h.Event | None: ...

        def unreadable(self, exc: PayloadCodecError) -> NoReturn: ...

    def patched(self, patch_id: str) -> bool:
        """True on new code paths and for histories that recorded the patch."""
        if patch_id in self._patches:
            return self._patches[patch_id]
        if self._expected is None:
            self.issue(h.RecordPatch(patch_id))
            value = True
        else:
            head = self._expected[0] if self._expected else None
            value = isinstance(head, h.PatchRecorded) and head.patch_id == patch_id
            if value:
                self._expected.popleft()
        self._patches[patch_id] = value
        return value

    def newer_build_seen(self) -> str | None:
        """``workflow.newer_build()``: what the worker says (``newer_build``),
        recorded as a patch marker when it names a build; when replaying,
        the recorded marker's build, or None where none was recorded."""
        if self._expected is None:
            value = self.newer_build
            if value is not None:
                self.issue(h.RecordPatch(NEWER_BUILD + value))
            return value
        head = self._expected[0] if self._expected else None
        if isinstance(head, h.PatchRecorded) and head.patch_id.startswith(NEWER_BUILD):
            self._expected.popleft()
            return head.patch_id[len(NEWER_BUILD) :]
        return None

    def side_effect(self, compute: Callable[[], Any]) -> Any:
        """Run ``compute`` once and record its JSON value; replay returns the record."""
        ref = self.next_ref()
        # Lambdas (the usual argument) have no return hint: skip the per-function
        # hint lookup, which would otherwise run for every new lambda object.
        typed = "return" in getattr(compute, "__annotations__", {})
        if self._expected is None:
            raw = compute()
            value = (
                self.converter.encode_result(compute, raw)
                if typed
                else self.converter.to_json(raw, where="side effect")
            )
            self.issue(h.RecordSideEffect(ref=ref, value=value))
        else:
            while self._expected and isinstance(self._expected[0], h.PatchRecorded):
                self._expected.popleft()
            head = self._expected[0] if self._expected else None
            if not (isinstance(head, h.SideEffectRecorded) and head.ref == ref):
                self.issue(h.RecordSideEffect(ref=ref, value=None))  # reports the mismatch
                raise _TurnAborted()
            self._expected.popleft()
            value = head.value
        try:
            if typed:
                return self.converter.decode_result(compute, value)
            return self.converter.from_json(value, where="side effect")
        except PayloadCodecError as exc:
            self.unreadable(exc)

    def set_state(self, key: str, value: Any) -> None:
        if type(key) is not str:  # (JSON keeps only strings as keys: 5 came back as "5")
            raise TypeError(f"a state key must be a string, not {type(key).__name__} {key!r}")
        encoded = self.converter.to_json(value, where=f"state {key!r}")
        self.state[key] = encoded
        self.issue(h.SetState(key=key, value=encoded))

    def write_stream(self, key: str, value: Any) -> None:
        if key in self.closed_streams:
            raise ValueError(
                f"stream {key!r} was closed by this run (workflow.close_stream):"
                " it takes no more values"
            )
        encoded = self.converter.to_json(value, where=f"stream {key!r}")
        self.issue(h.WriteStream(key=key, value=encoded))

    def close_stream(self, key: str) -> None:
        if key in self.closed_streams:
            return  # (closed already: closing again changes nothing)
        self.closed_streams.add(key)
        self.issue(h.CloseStream(key=key))

    def set_search_attributes(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` (checked: None removes a name) and record them."""
        self.search_attributes = merged(self.search_attributes, changes)
        self.issue(h.SetSearchAttributes(attributes=changes))
