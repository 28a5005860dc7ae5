"""WorkflowLoop: the asyncio event loop one workflow run executes on.

It never blocks and never touches the real clock: ``time()`` is the current
turn's recorded time, ``call_later``/``call_at`` become durable timers, and the
ready queue is a plain FIFO, so the order in which coroutines resume is a pure
function of the history. Anything that would do I/O raises
:class:`WorkflowIOError` naming the rule.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perdure._runtime.instance import WorkflowInstance


class WorkflowIOError(RuntimeError):
    """Workflow code tried to do I/O or use threads: move it into an activity."""


class DurableTimerHandle(asyncio.TimerHandle):
    """A TimerHandle that knows the ``ref`` of its StartTimer command."""

    __slots__ = ("ref",)


class WorkflowLoop(asyncio.AbstractEventLoop):
    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self.ready: deque[asyncio.Handle] = deque()
        self._closed = False
        self._exception_handler: Any = None
        self._task_factory: Any = None
        self.tasks: set[asyncio.Task[Any]] = set()

    # -- time and scheduling -------------------------------------------------

    def time(self) -> float:
        return self._instance.now_ts

    def call_soon(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self.ready.append(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        when = self.time() + delay
        handle = DurableTimerHandle(when, callback, args, self, context)
        if delay <= 0:
            # Due now: no durable timer, just run it in this turn.
            self.ready.append(handle)
            return handle
        self._instance.start_timer(handle, when)
        return handle

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_later(when - self.time(), callback, *args, context=context)

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        assert isinstance(handle, DurableTimerHandle)
        self._instance.cancel_timer(handle)

    # -- futures and tasks ---------------------------------------------------

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        if context is not None:
            task: asyncio.Task[Any] = asyncio.Task(coro, loop=self, name=name, context=context)
        else:
            task = asyncio.Task(coro, loop=self, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def set_task_factory(self, factory: Any) -> None:
        self._task_factory = factory

    def get_task_factory(self) -> Any:
        return self._task_factory

    # -- state ---------------------------------------------------------------

    def is_running(self) -> bool:
        return self._instance.activating

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self._instance.on_loop_exception(context)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self._instance.on_loop_exception(context)

    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
        self._exception_handler = handler

    async def shutdown_asyncgens(self) -> None:
        pass

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        pass

    def run_forever(self) -> None:
        raise WorkflowIOError("a workflow loop is driven by perdure, not run directly")

    def run_until_complete(self, future: Any) -> Any:
        raise WorkflowIOError("a workflow loop is driven by perdure, not run directly")


def _forbidden(name: str) -> Callable[..., Any]:
    def method(self: WorkflowLoop, *args: Any, **kwargs: Any) -> Any:
        raise WorkflowIOError(
            f"workflow code called loop.{name}(): workflows must be deterministic and do "
            f"no I/O, threads or subprocesses; do that work in an activity instead"
        )

    method.__name__ = name
    return method


for _name in (
    "run_in_executor",
    "set_default_executor",
    "call_soon_threadsafe",
    "getaddrinfo",
    "getnameinfo",
    "create_connection",
    "create_server",
    "create_unix_connection",
    "create_unix_server",
    "create_datagram_endpoint",
    "connect_accepted_socket",
    "connect_read_pipe",
    "connect_write_pipe",
    "subprocess_exec",
    "subprocess_shell",
    "add_reader",
    "remove_reader",
    "add_writer",
    "remove_writer",
    "sock_recv",
    "sock_recv_into",
    "sock_sendall",
    "sock_connect",
    "sock_accept",
    "sock_sendfile",
    "sendfile",
    "start_tls",
    "add_signal_handler",
    "remove_signal_handler",
):
    setattr(WorkflowLoop, _name, _forbidden(_name))
