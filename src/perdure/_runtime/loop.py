"""WorkflowLoop: the asyncio event loop one workflow run executes on.

It never blocks and never touches the real clock: ``time()`` is the current
turn's recorded time, ``call_later``/``call_at`` become durable timers, and the
ready queue is a plain FIFO, so the order in which coroutines resume is a pure
function of the history. Anything that would do I/O raises
:class:`WorkflowIOError` naming the rule.
"""

# mypy: disable-error-code="override"

from __future__ import annotations

import asyncio
import contextvars
import math
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perdure._runtime.instance import WorkflowInstance


class WorkflowIOError(RuntimeError):
    """Workflow code tried to do I/O or use threads: move it into an activity."""


# The latest time a durable timer may fall due: the last second a datetime
# holds, 9999-12-31T23:59:59Z (its description and the UI show it as one).
_LATEST = 253_402_300_799.0


class DurableTimerHandle(asyncio.TimerHandle):
    """A TimerHandle that knows the ``ref`` of its StartTimer command."""

    __slots__ = ("ref",)
    ref: int
    _scheduled: bool


class _Evicted:
    """What an evicted instance's loop points to: a stopped clock, and silence
    about the dead tasks' leftovers (the instance was discarding them anyway)."""

    now_ts = 0.0

    def on_loop_exception(self, context: dict[str, Any]) -> None:
        pass

    def forbidden(self, error: Exception) -> None:
        pass


_EVICTED: Any = _Evicted()


class WorkflowLoop(asyncio.AbstractEventLoop):
    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self.ready: deque[asyncio.Handle] = deque()
        self._closed = False
        self._exception_handler: Any = None
        self._task_factory: Any = None
        self.tasks: set[asyncio.Task[Any]] = set()
        # Callbacks run in the current turn (activate resets it): a worker's
        # watchdog tells code that does not await from a turn that is long
        # because it runs many callbacks (a large fan-out).
        self.ran = 0

    def run_one(self) -> bool:
        """Run the next ready callback (skipping a cancelled one); False if none is left."""
        if not self.ready:
            return False
        handle = self.ready.popleft()
        if not handle._cancelled:
            handle._run()
            self.ran += 1
        return True

    def detach(self) -> None:
        """Forget the evicted instance (a reference cycle otherwise): a closed
        loop never runs again, and its clock reads zero."""
        self._instance = _EVICTED

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
        if not math.isfinite(delay):  # (a durable timer is a time to store)
            raise ValueError(
                f"a workflow's timer needs a finite number of seconds, not {delay!r} (to wait "
                f"with no limit, await workflow.wait_signal() without a timeout)"
            )
        when = self.time() + delay
        if when > _LATEST:
            raise ValueError(
                f"a workflow's timer must fall due by the end of the year 9999, not in "
                f"{delay!r} seconds"
            )
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
        # (asyncio calls this for every cancel. Only a handle that holds a
        # durable timer is _scheduled: not one that was due at once, with no
        # StartTimer, nor one whose timer fired.)
        assert isinstance(handle, DurableTimerHandle)
        if handle._scheduled:
            self._instance.cancel_timer(handle)

    # -- futures and tasks ---------------------------------------------------

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        if context is not None:  # Python 3.11+
            task: asyncio.Task[Any] = asyncio.Task(
                coro,
                loop=self,
                name=name,
                context=context,  # type: ignore[call-arg,unused-ignore]
            )
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

    def stop(self) -> None:
        pass

    def run_forever(self) -> None:
        raise WorkflowIOError("a workflow loop is driven by perdure, not run directly")

    def run_until_complete(self, future: Any) -> Any:
        raise WorkflowIOError("a workflow loop is driven by perdure, not run directly")

    # -- everything that would do I/O or use threads is refused ---------------

    def run_in_executor(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("run_in_executor")

    def set_default_executor(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("set_default_executor")

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("call_soon_threadsafe")

    def getaddrinfo(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("getaddrinfo")

    def getnameinfo(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("getnameinfo")

    def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("create_connection")

    def create_server(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("create_server")

    def create_unix_connection(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("create_unix_connection")

    def create_unix_server(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("create_unix_server")

    def create_datagram_endpoint(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("create_datagram_endpoint")

    def connect_accepted_socket(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("connect_accepted_socket")

    def connect_read_pipe(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("connect_read_pipe")

    def connect_write_pipe(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("connect_write_pipe")

    def subprocess_exec(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("subprocess_exec")

    def subprocess_shell(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("subprocess_shell")

    def add_reader(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("add_reader")

    def remove_reader(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("remove_reader")

    def add_writer(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("add_writer")

    def remove_writer(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("remove_writer")

    def sock_recv(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("sock_recv")

    def sock_recv_into(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("sock_recv_into")

    def sock_sendall(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("sock_sendall")

    def sock_recvfrom(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("sock_recvfrom")

    def sock_recvfrom_into(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("sock_recvfrom_into")

    def sock_sendto(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("sock_sendto")

    def sock_connect(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("sock_connect")

    def sock_accept(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("sock_accept")

    def sock_sendfile(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("sock_sendfile")

    def sendfile(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("sendfile")

    def start_tls(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("start_tls")

    def add_signal_handler(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("add_signal_handler")

    def remove_signal_handler(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("remove_signal_handler")

    def _forbidden(self, name: str) -> WorkflowIOError:
        """The error for a call workflow code may not make; the instance also
        records it as the turn's failure (see WorkflowInstance.forbidden)."""
        error = WorkflowIOError(
            f"workflow code called loop.{name}(): workflows must be deterministic and do "
            f"no I/O, threads or subprocesses; do that work in an activity instead"
        )
        self._instance.forbidden(error)
        return error
