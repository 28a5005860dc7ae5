"""The Client and WorkflowHandle a WorkflowEnvironment hands out.

They are a real :class:`perdure.Client` and :class:`perdure.WorkflowHandle`
with two differences: ``task_queue`` defaults to the environment's queue, and
``handle.result()`` lets the environment skip time (and check determinism)
while it waits. Imports the public client API only; the environment is
reached through the small :class:`ResultWaiter` protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from perdure._converter import DataConverter
from perdure._store.base import Store
from perdure.client import Client, WorkflowHandle
from perdure.interceptors import Interceptor

__all__ = ["EnvClient", "EnvHandle", "ResultWaiter"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class ResultWaiter(Protocol):
    task_queue: str

    async def wait_for_result(
        self, handle: WorkflowHandle[Any], waiting: Coroutine[Any, Any, T]
    ) -> T: ...


class EnvHandle(WorkflowHandle[R]):
    """A :class:`WorkflowHandle` whose ``result()`` drives the environment's clock."""

    def __init__(
        self,
        client: EnvClient,
        id: str,
        run_id: str | None,
        fn: Callable[..., Any] | None,
    ) -> None:
        super().__init__(client, id, run_id, fn)
        self._waiter = client.waiter

    async def result(self, timeout: float | None = None) -> R:
        """Wait for the run to end, skipping time while nothing else can happen
        (in a time-skipping environment). ``timeout`` is in real seconds.
        Then replay the run's history to check determinism (unless disabled)."""
        return await self._waiter.wait_for_result(self, super().result(timeout))

    async def wait_state(self, key: str, timeout: float = 60.0) -> Any:
        """Wait until the run publishes ``key`` and return its value (see
        :meth:`WorkflowHandle.wait_state`), skipping time while nothing else
        can happen. ``timeout`` is in real seconds."""
        return await self._waiter.wait_for_result(self, super().wait_state(key, timeout))

    async def _awaiting(self, waiting: Coroutine[Any, Any, T]) -> T:
        """Skip time while the run is waited for (an update's answer)."""
        return await self._waiter.wait_for_result(self, waiting)


class EnvClient(Client):
    """A real :class:`perdure.Client` bound to one test environment."""

    def __init__(
        self,
        store: Store,
        converter: DataConverter | None,
        waiter: ResultWaiter,
        interceptors: Iterable[Interceptor] | None = None,
    ) -> None:
        super().__init__(store, converter, interceptors)
        self.waiter = waiter

    def _wrap(self, handle: WorkflowHandle[R]) -> EnvHandle[R]:
        return EnvHandle(self, handle.id, handle.run_id, handle._fn)

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        if options.get("task_queue") is None:
            options["task_queue"] = self.waiter.task_queue
        return options

    @overload
    async def start(
        self, workflow: Callable[P, Coroutine[Any, Any, R]], *args: Any, **options: Any
    ) -> EnvHandle[R]: ...
    @overload
    async def start(self, workflow: str, *args: Any, **options: Any) -> EnvHandle[Any]: ...
    async def start(self, workflow: Any, *args: Any, **options: Any) -> EnvHandle[Any]:
        """:meth:`Client.start` (same options), on the environment's task queue
        unless ``task_queue`` says otherwise."""
        handle = await super().start(workflow, *args, **self._options(options))
        return self._wrap(handle)

    async def execute(self, workflow: Any, *args: Any, **options: Any) -> Any:
        """Start a run and wait for its result (skipping time while waiting)."""
        timeout = options.pop("timeout", None)
        handle = await self.start(workflow, *args, **options)
        return await handle.result(timeout=timeout)

    async def signal_with_start(self, workflow: Any, *args: Any, **options: Any) -> EnvHandle[Any]:
        """:meth:`Client.signal_with_start`, returning a time-skipping handle."""
        handle = await super().signal_with_start(workflow, *args, **self._options(options))
        return self._wrap(handle)

    async def debounce(self, workflow: Any, *args: Any, **options: Any) -> EnvHandle[Any]:
        """:meth:`Client.debounce`, on the environment's task queue unless
        ``task_queue`` says otherwise, returning a time-skipping handle."""
        handle = await super().debounce(workflow, *args, **self._options(options))
        return self._wrap(handle)

    async def update_with_start(self, workflow: Any, *args: Any, **options: Any) -> Any:
        """:meth:`Client.update_with_start`, on the environment's task queue
        unless ``task_queue`` says otherwise (time skips while it waits)."""
        return await super().update_with_start(workflow, *args, **self._options(options))

    def get_handle(self, id: str, run_id: str | None = None) -> EnvHandle[Any]:
        return EnvHandle(self, id, run_id, None)
