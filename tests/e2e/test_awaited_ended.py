"""The result watch's question (perdure._waiting.awaited_ended), against a
store that only answers: which runs it asks about, given what the store's
feed of ended runs says."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from perdure._waiting import awaited_ended


class Answers:
    """The four store methods the question uses, and a record of the ids it asked about."""

    def __init__(
        self, feed: tuple[int | None, list[str] | None], ended: set[str], listened: list[str]
    ) -> None:
        self.feed = feed
        self.ended = ended
        self.listened = listened
        self.asked: list[list[str]] = []
        self.during_feed: Callable[[], None] = lambda: None

    async def runs_ended_after(self, position: int | None) -> tuple[int | None, list[str] | None]:
        self.during_feed()
        return self.feed

    def listened_runs(self) -> list[str]:
        return list(self.listened)

    async def ended_runs(self, run_ids: Sequence[str]) -> dict[str, Any]:
        self.asked.append(list(run_ids))
        return {run_id: None for run_id in run_ids if run_id in self.ended}


async def test_only_the_runs_the_feed_names_are_asked_about() -> None:
    store = Answers((12, ["b", "x"]), {"b"}, ["a", "b", "c"])
    assert await awaited_ended(store, 9, everything=False) == (12, {"b": None})  # type: ignore[arg-type]
    assert store.asked == [["b"]]


async def test_nothing_is_asked_when_no_run_waited_on_ended() -> None:
    store = Answers((12, ["x"]), set(), ["a", "b"])
    assert await awaited_ended(store, 9, everything=False) == (12, {})  # type: ignore[arg-type]
    assert store.asked == []


async def test_every_run_is_asked_about_without_a_feed_or_on_the_safety_net() -> None:
    for feed, everything in [((12, None), False), ((None, None), False), ((12, ["b"]), True)]:
        store = Answers(feed, {"b"}, ["a", "b", "c"])
        position, ended = await awaited_ended(store, 9, everything)  # type: ignore[arg-type]
        assert (position, ended) == (feed[0], {"b": None})
        assert store.asked == [["a", "b", "c"]]


async def test_the_runs_waited_on_are_taken_after_the_feed_answers() -> None:
    # A waiter that began listening while the feed was read: its run's end,
    # in the feed's answer, is not missed.
    store = Answers((12, ["d"]), {"d"}, ["a"])
    store.during_feed = lambda: store.listened.append("d")
    assert await awaited_ended(store, 9, everything=False) == (12, {"d": None})  # type: ignore[arg-type]
