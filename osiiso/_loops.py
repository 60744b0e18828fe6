"""The one module that tells asyncio from trio: everything else in osiiso is loop-neutral.

It owns the four things anyio does not cover the same way on both loops: calling a function
on the loop from any thread (`LoopCaller`), parking a coroutine until a pool wakes it
(`waiter_for_running_loop`), a detached background task that outlives its caller
(`spawn_detached`), and keeping Ctrl-C out of the engine's own tasks on trio
(`protect_from_ki`). asyncio and uvloop take the asyncio branch; trio the other.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio

from ._events import osiiso_logger

__all__ = ("LoopCaller", "Waiter", "current_loop_caller", "is_cancellation", "protect_from_ki", "spawn_detached",
           "waiter_for_running_loop")

logger = osiiso_logger


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio (or uvloop) loop running in this thread, or ``None`` under trio."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is asyncio's or trio's cancellation exception (asked in plain loop callbacks
    too, where anyio cannot tell which loop runs)."""
    if isinstance(exc, asyncio.CancelledError):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(exc, trio.Cancelled)


# -- calling the loop from any thread ------------------------------------------------------------
class LoopCaller:
    """Call functions on one event loop from any thread, without blocking.

    ``call(fn, *args)`` runs ``fn(*args)`` on the loop's thread soon. It returns
    ``False`` (and does nothing) once the loop has closed, so late reports from
    worker threads are dropped instead of raising in a thread nobody watches.
    """

    __slots__ = ("_closed_errors", "_local_soon", "_soon", "loop", "thread_id")

    def __init__(self, soon: Callable[..., Any], closed_errors: tuple[type[BaseException], ...],
                 loop: object, local_soon: Callable[..., Any] | None = None) -> None:
        self._soon = soon
        self._local_soon = local_soon or soon
        self._closed_errors = closed_errors
        self.thread_id = threading.get_ident()
        #: the asyncio loop or trio token this caller reaches (identifies the event loop)
        self.loop = loop

    def in_loop_thread(self) -> bool:
        """Whether the calling thread is the loop's own thread."""
        return threading.get_ident() == self.thread_id

    def call_local(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` soon, from the loop's own thread (cheaper: no wake-up write)."""
        self._local_soon(fn, *args)

    def call(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Schedule ``fn(*args)`` on the loop; ``False`` if the loop is gone."""
        try:
            self._soon(fn, *args)
        except self._closed_errors:
            return False
        return True


def current_loop_caller() -> LoopCaller:
    """Return a `LoopCaller` for the event loop running in this thread."""
    loop = _running_asyncio_loop()
    if loop is None:
        import trio  # no asyncio loop here: anyio only runs on asyncio or trio

        token = trio.lowlevel.current_trio_token()
        return LoopCaller(token.run_sync_soon, (trio.RunFinishedError,), token)
    return LoopCaller(loop.call_soon_threadsafe, (RuntimeError,), loop, loop.call_soon)


# -- parking a coroutine until a pool says its job is done ----------------------------------------
class _FutureWaiter:
    """asyncio/uvloop: the job's waiter is a future of the running loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._create_future = loop.create_future

    def prepare(self, job: Any) -> None:
        job.waiter = self._create_future()

    async def wait(self, job: Any) -> None:
        await job.waiter

    @staticmethod
    def wake(job: Any) -> None:
        future = job.waiter
        if not future.done():
            future.set_result(None)


class _TrioWaiter:
    """trio: the job's waiter is the parked task, rescheduled when the job ends."""

    def __init__(self) -> None:
        import trio

        self._lowlevel = trio.lowlevel

    def prepare(self, job: Any) -> None:
        job.waiter = None

    async def wait(self, job: Any) -> None:
        lowlevel = self._lowlevel
        job.waiter = lowlevel.current_task()

        def abort(_: object) -> Any:
            job.waiter = None
            return lowlevel.Abort.SUCCEEDED

        await lowlevel.wait_task_rescheduled(abort)

    def wake(self, job: Any) -> None:
        task, job.waiter = job.waiter, None
        if task is not None:
            self._lowlevel.reschedule(task)


Waiter = _FutureWaiter | _TrioWaiter


def waiter_for_running_loop() -> Waiter:
    """The waiter kind for the event loop running in this thread.

    A pool parks the coroutine awaiting a job with ``prepare(job)`` then ``await wait(job)``,
    and ``wake(job)`` (on the loop's thread) resumes it. Both kinds are cancelled by an anyio
    cancel scope like any other await, and cost less than an ``anyio.Event`` per job. A job
    object only needs a ``waiter`` attribute.
    """
    loop = _running_asyncio_loop()
    return _TrioWaiter() if loop is None else _FutureWaiter(loop)


# -- a detached background task -----------------------------------------------------------------
_running_tasks: set[Any] = set()


def spawn_detached(fn: Callable[[], Awaitable[Any]], finished: Callable[[], object], name: str) -> None:
    """Run ``fn()`` as a task of the current loop that no caller awaits; call ``finished()`` after.

    An asyncio task (kept referenced until it ends), or a trio system task. ``fn`` must not
    raise: anything it lets through, other than its cancellation, is logged.
    """

    async def detached() -> None:
        try:
            await fn()
        except anyio.get_cancelled_exc_class():
            if loop is not None:
                raise  # an asyncio task ends cancelled; a trio system task must not raise it
        except BaseException:  # pragma: no cover - the engine records its own failures
            logger.exception("osiiso: the background task %r failed", name)
        finally:
            finished()

    loop = _running_asyncio_loop()
    if loop is None:
        import trio

        trio.lowlevel.spawn_system_task(detached, name=name)
        return
    task = loop.create_task(detached(), name=name)
    _running_tasks.add(task)
    task.add_done_callback(_running_tasks.discard)


# -- Ctrl-C on trio --------------------------------------------------------------------------------
_ki_protected: set[Any] = set()


def protect_from_ki(functions: Iterable[Callable[..., Any]]) -> None:
    """On trio, keep Ctrl-C out of ``functions`` so that it reaches the main task.

    trio raises KeyboardInterrupt in whatever task runs when the signal lands; in a worker
    it would look like the running task's own failure and the run would go on. Protected
    code makes trio deliver it to the main task, where ``run()`` cancels the work. asyncio
    turns Ctrl-C into a cancel of the main task by itself, so there this does nothing.
    """
    if _running_asyncio_loop() is not None:
        return
    import trio

    for fn in functions:
        if fn not in _ki_protected:
            trio.lowlevel.enable_ki_protection(fn)
            _ki_protected.add(fn)
