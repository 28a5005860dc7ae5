"""Answers remembered per object, by identity: for objects that compare
equal but must not share an answer (``Union[A, B] == Union[B, A]``, yet a
union tries its members in order), or whose comparison would cost more than
the answer (an activity's options dict, the same object at every call).
Imports nothing from perdure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def by_identity(build: Callable[[Any], T], size: int = 4096) -> Callable[[Any], T]:
    """``build``, remembering its answer for each object it was asked about.
    Each remembered object is kept alive, so its id is never reused while
    its answer is remembered; past ``size`` of them, all are forgotten at
    once. Meant for long-lived objects (a function's annotations, an
    activity's options). The memo is the function's ``known`` attribute."""
    known: dict[int, tuple[Any, T]] = {}

    def cached(obj: Any) -> T:
        entry = known.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        answer = build(obj)
        if len(known) >= size:
            known.clear()
        known[id(obj)] = (obj, answer)
        return answer

    setattr(cached, "known", known)  # noqa: B010  (for tests: its size)
    return cached
