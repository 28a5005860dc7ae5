"""What ``@workflow.defn`` and ``@activity.defn`` accept, and the clear
TypeError for what they cannot run: a generator function as an activity
(its generator could never be recorded: each attempt failed at its end
with a PayloadError, and was retried), a partial or an object with no
``__name__`` (an AttributeError), a bound method as a workflow (an
AttributeError). An object whose ``__call__`` is an ``async def`` runs as
an async activity (it had been run in a thread, returning a coroutine)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow


def _numbers(n: int) -> Iterator[int]:
    yield from range(n)


async def _async_numbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def _add(a: int, b: int) -> int:
    return a + b


class _Doubler:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    async def __call__(self, x: int) -> int:
        return x * self.factor

    async def method(self, x: int) -> int:
        return x


doubler = activity.defn(name="doubler")(_Doubler(2))
add_one = activity.defn(name="add_one")(functools.partial(_add, 1))


@workflow.defn
async def uses_objects(x: int) -> list[int]:
    return [await doubler(x), await add_one(x)]


@pytest.mark.parametrize("fn", [_numbers, _async_numbers])
def test_a_generator_function_is_not_an_activity(fn: object) -> None:
    with pytest.raises(TypeError, match=r"not a generator function .* return a list instead"):
        activity.defn(fn)


@pytest.mark.parametrize("fn", [functools.partial(_add, 1), _Doubler(2)])
def test_an_activity_with_no_name_to_go_by_asks_for_one(fn: object) -> None:
    with pytest.raises(
        TypeError, match=r"no __name__ to name the activity by.*defn\(name=\.\.\.\)"
    ):
        activity.defn(fn)


def test_a_bound_method_is_not_a_workflow() -> None:
    with pytest.raises(TypeError, match=r"needs a plain 'async def' function .* not method"):
        workflow.defn(_Doubler(2).method)


@pytest.mark.sqlite_only
async def test_an_async_callable_object_and_a_partial_run_as_activities(
    client: perdure.Client,
) -> None:
    assert doubler.is_async and add_one.is_async
    async with fast_worker(client, [uses_objects], [doubler, add_one]):
        assert await client.execute(uses_objects, 5) == [10, 6]
