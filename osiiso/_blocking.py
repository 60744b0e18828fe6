"""Queue: the blocking front end. `AsyncQueue`'s engine on an event loop in a background thread.

``Queue`` owns an `AsyncQueue` and a `Driver` (``_driver``): the driver starts the event loop thread
(`osiiso._loopthread.LoopThread`) when something first has to wait, and runs the
AsyncQueue's coroutine methods there while the caller blocks. Submission never waits for
the loop: `AsyncQueue.submit` builds the handle in the calling thread and, once the queue
has started, hands it to the loop with a thread-safe "call soon". Handles come back wrapped
as `SyncTaskHandle`, whose waits block (see ``_sync_handle``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, ClassVar, ParamSpec, TypeVar, overload

from ._atexit import finalize_first
from ._bound import BoundTask
from ._config import check_hook
from ._driver import Driver
from ._errors import QueueFullError
from ._group import TaskGroup
from ._handle import TaskHandle
from ._intake import NO_KWARGS
from ._loopthread import check_loop, check_not_in_event_loop
from ._options import TaskOptions, merge_options
from ._progress import ProgressSnapshot
from ._queue import AsyncQueue
from ._results import RunSummary, TaskResult
from ._shadow import refuse_shadowed
from ._sync_bound import SyncBoundTask, SyncTaskDecorator
from ._sync_handle import SyncTaskGroup, SyncTaskHandle, cancelling_on_interrupt, unwrap, unwrap_args

__all__ = ("Queue",)

T = TypeVar("T")
P = ParamSpec("P")


class Queue:
    """The blocking front end: `AsyncQueue`'s arguments and methods, blocking where it awaits.

    ``with Queue() as q:`` starts it; a clean exit drains all work, an exception (Ctrl-C
    included) forces a shutdown and propagates unchanged. Without ``with``, ``q.run()``
    starts the workers for the length of the run. The engine is the one of `AsyncQueue`,
    on an event loop in a background thread: ``loop="asyncio"`` (the default),
    ``"uvloop"`` or ``"trio"`` (coroutine tasks then run on that loop). Submission
    (``submit``, ``map``, ``group``, bound tasks) never waits for the loop and is safe from
    any thread; handles are `SyncTaskHandle` and groups `SyncTaskGroup`, whose waits block.
    A blocking call made from a thread that runs an event loop is a ``RuntimeError``: in
    async code use `AsyncQueue`.
    """

    #: ThreadQueue / ProcessQueue: submit() on a full queue waits for room, as in the original osiiso
    _wait_for_room: ClassVar[bool] = False

    def __init__(
        self, *, workers: int | None = None, threads: int | None = None, processes: int | None = None,
        size: int = 0, timeout: float | None = None, mode: str = "finite", fail_policy: str = "continue",
        on_timeout: str = "complete", rate: float | None = None, burst: int = 1,
        defaults: TaskOptions | None = None,
        on_start: Callable[[SyncTaskHandle[Any]], object] | None = None,
        on_complete: Callable[[TaskResult], object] | None = None,
        on_retry: Callable[[SyncTaskHandle[Any], BaseException], object] | None = None,
        initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = (),
        mp_context: Any = None, max_tasks_per_child: int | None = None, dask: Any = None,
        keep_results: bool | int = True, process_batching: bool = True, thread_batching: bool = True,
        loop: str = "asyncio",
    ) -> None:
        driver = self._driver = Driver(check_loop(loop))
        start_hook = check_hook("on_start", on_start)
        retry_hook = check_hook("on_retry", on_retry)
        self._aq = driver.aq = AsyncQueue(
            workers=workers, threads=threads, processes=processes, size=size, timeout=timeout, mode=mode,
            fail_policy=fail_policy, on_timeout=on_timeout, rate=rate, burst=burst, defaults=defaults,
            on_start=None if start_hook is None else (lambda h: start_hook(SyncTaskHandle(h, driver))),
            on_complete=on_complete,
            on_retry=None if retry_hook is None else (lambda h, e: retry_hook(SyncTaskHandle(h, driver), e)),
            initializer=initializer, initargs=initargs, mp_context=mp_context,
            max_tasks_per_child=max_tasks_per_child, dask=dask, keep_results=keep_results,
            process_batching=process_batching, thread_batching=thread_batching)
        finalize_first(self, driver.abandon)  # at exit, before the process pools are killed
        self._room_lock = threading.Lock()
        self._own_waiting = 0  # the queue's own tasks waiting for room in it (`_await_room`)

    # -- submission (never waits for the loop) ---------------------------------------------
    @overload
    def submit(self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any,
               opts: TaskOptions | None = None, **options: Any) -> SyncTaskHandle[T]: ...
    @overload
    def submit(self, fn: Callable[..., T], /, *args: Any,
               opts: TaskOptions | None = None, **options: Any) -> SyncTaskHandle[T]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, opts: TaskOptions | None = None,
               **options: Any) -> SyncTaskHandle[Any]:
        """Submit ``fn(*args)`` and return its handle. Keyword arguments are task options."""
        args = unwrap_args(args)  # blocking handles among the arguments (or in their containers): dependencies
        aq = self._aq
        if options:
            refuse_shadowed(fn, args, options, "submit()")
        try:  # AsyncQueue.submit's body, called without its argument packing (the per-task hot path)
            if opts is None:
                merged = aq._merged(options) if options else aq._defaults
            else:
                merged = merge_options(aq._defaults, opts, options, "submit()")
            return SyncTaskHandle(aq._enqueue(fn, args, NO_KWARGS, merged), self._driver)
        except QueueFullError:
            if not self._wait_for_room:
                raise
        return SyncTaskHandle(self._when_full(self._aq.submit, fn, *args, opts=opts, **options), self._driver)

    def put(self, fn: Callable[..., Any], /, *args: Any, opts: TaskOptions | None = None,
            **options: Any) -> SyncTaskHandle[Any]:
        """Like `submit`, but wait for room when the queue is at its ``size`` limit (Ctrl-C cancels the run)."""
        while True:
            self._await_room("Queue.put()")
            try:
                return self.submit(fn, *args, opts=opts, **options)
            except QueueFullError:
                continue  # another thread took the room first: wait again

    @overload
    def map(self, fn: Callable[..., Coroutine[Any, Any, T]], iterable: Iterable[Any], /, *,
            opts: TaskOptions | None = None, **options: Any) -> list[SyncTaskHandle[T]]: ...
    @overload
    def map(self, fn: Callable[..., T], iterable: Iterable[Any], /, *, opts: TaskOptions | None = None,
            **options: Any) -> list[SyncTaskHandle[T]]: ...

    def map(self, fn: Callable[..., Any], iterable: Iterable[Any], /, *, opts: TaskOptions | None = None,
            **options: Any) -> list[SyncTaskHandle[Any]]:
        """Submit ``fn`` once per element: a tuple is positional args, a dict keyword args."""
        aq, driver = self._aq, self._driver
        items = list(map(unwrap, iterable))
        mapped = self._fan_out(lambda part, _: TaskGroup(aq.map(fn, part, opts=opts, **options), None), items)
        return [SyncTaskHandle(h, driver) for h in mapped.handles]

    @overload
    def group(self, fn: Callable[..., Coroutine[Any, Any, T]], iterable: Iterable[Any], /, *,
              group_id: str | None = None, opts: TaskOptions | None = None, **options: Any) -> SyncTaskGroup[T]: ...
    @overload
    def group(self, fn: Callable[..., T], iterable: Iterable[Any], /, *, group_id: str | None = None,
              opts: TaskOptions | None = None, **options: Any) -> SyncTaskGroup[T]: ...
    @overload
    def group(self, fn: Iterable[tuple[Any, ...]], iterable: None = None, /, *, group_id: str | None = None,
              opts: TaskOptions | None = None, **options: Any) -> SyncTaskGroup[Any]: ...

    def group(self, fn: Any, iterable: Iterable[Any] | None = None, /, *, group_id: str | None = None,
              opts: TaskOptions | None = None, **options: Any) -> SyncTaskGroup[Any]:
        """Submit tasks as one `SyncTaskGroup`: ``group(fn, items)`` or ``group([(fn, *args), ...])``."""
        aq = self._aq
        if iterable is None:
            calls = [unwrap(call) for call in fn]
            group = self._fan_out(lambda part, gid: aq.group(part, group_id=gid, opts=opts, **options),
                                  calls, group_id)
        else:
            items = list(map(unwrap, iterable))
            group = self._fan_out(lambda part, gid: aq.group(fn, part, group_id=gid, opts=opts, **options),
                                  items, group_id)
        return SyncTaskGroup(group, self._driver)

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, T]], /, **options: Any) -> SyncBoundTask[P, T]: ...
    @overload
    def task(self, fn: Callable[P, T], /, **options: Any) -> SyncBoundTask[P, T]: ...
    @overload
    def task(self, opts: TaskOptions | None = None, /, **options: Any) -> SyncTaskDecorator: ...

    def task(self, opts: Any = None, /, **options: Any) -> Any:
        """Bind a function to this queue: calling the result submits a task (see bound tasks).

        Use as ``@q.task(**options)``, ``@q.task(opts)``, ``@q.task`` or ``q.task(fn, **options)``.
        """
        made = self._aq.task(opts, **options)
        if isinstance(made, BoundTask):
            return SyncBoundTask(self, made)

        def decorate(fn: Callable[..., Any]) -> Any:
            return SyncBoundTask(self, made(fn))

        return decorate

    def _fan_out(self, submit: Callable[[list[Any], str | None], TaskGroup[Any]], items: list[Any],
                 group_id: str | None = None) -> TaskGroup[Any]:
        """``submit(items, group_id)``: a task per item, all or none (`map`: a group without an id).

        A full ThreadQueue/ProcessQueue that cannot take them all now takes them one at a time,
        each waiting for room as ``submit()`` does, every one in the group the first was given.
        """
        try:
            return submit(items, group_id)
        except QueueFullError:
            if not self._wait_for_room:
                raise
        handles: list[TaskHandle[Any]] = []
        for item in items:
            part = self._when_full(submit, [item], group_id)
            group_id = part.group_id
            handles += part.handles
        return TaskGroup(handles, group_id)

    def _when_full(self, submit: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``submit(*args, **kwargs)``; on a full ThreadQueue/ProcessQueue, wait for room and retry."""
        while True:
            try:
                return submit(*args, **kwargs)
            except QueueFullError:
                if not self._wait_for_room:
                    raise
                self._await_room("submit() on a full queue")

    def _await_room(self, what: str) -> None:
        """Wait until the queue is below its ``size`` (starting the workers: room comes only from tasks
        that run); Ctrl-C cancels the run. From the queue's own tasks, refused when every unfinished
        task is one of them waiting so: the room could never come."""
        own = self._aq._runs_in_own_task()
        with self._room_lock:
            self._own_waiting += own
            stuck = own and self._own_waiting >= self._aq._unfinished
        try:
            if stuck:
                raise QueueFullError(f"{what} from one of the queue's own tasks would wait for ever: the queue is "
                                     "at its size limit with tasks that all wait for room themselves — raise size=, "
                                     "or submit from the code that runs the queue")
            driver = self._driver
            driver.ensure_serving()
            cancelling_on_interrupt((driver,), driver.call, what, self._aq._wait_for_room)
        finally:
            with self._room_lock:
                self._own_waiting -= own

    # -- life cycle (blocking) ---------------------------------------------------------------
    def start(self) -> Queue:
        """Start the workers; tasks submitted from now on begin at once. Returns the queue."""
        self._driver.call("Queue.start()", self._aq.start)
        return self

    def run(self, timeout: float | None = None, *, strict: bool = False, fail_policy: str | None = None,
            progress: bool | Callable[[ProgressSnapshot], object] = False) -> RunSummary:
        """Run until the work is done (``mode="finite"``) or until shutdown (``"infinite"``), blocking.

        Returns the `RunSummary` of the tasks that ended during this run; ``strict=True`` raises
        `ExecutionError` if any failed. Ctrl-C cancels the run: every task ends (cancelled) and
        ``KeyboardInterrupt`` propagates. ``progress`` is as for `AsyncQueue.run`: ``True`` draws
        it on standard error; a function receives each `ProgressSnapshot` in the queue's loop thread.
        """
        self._aq._refuse_in_own_task("Queue.run()")
        return self._driver.call("Queue.run()", self._aq.run, timeout, strict=strict, fail_policy=fail_policy,
                                 progress=progress)

    def join(self) -> None:
        """Block until every submitted task has ended (starting the workers if needed).

        Ctrl-C cancels the run, as in `run`.
        """
        driver = self._driver
        self._aq._refuse_in_own_task("Queue.join()")
        cancelling_on_interrupt((driver,), driver.call, "Queue.join()", self._aq.join)

    def shutdown(self, *, force: bool = False) -> None:
        """Stop accepting tasks, finish (or with ``force``, cancel) the rest, release the pools.

        The loop thread ends too. A Ctrl-C during a graceful shutdown turns it into a forced one.
        Called from a thread that runs an event loop, it is refused and changes nothing.
        """
        driver = self._driver
        check_not_in_event_loop("Queue.shutdown()")  # refused before the `finally` below stops the loop
        self._aq._refuse_in_own_task("Queue.shutdown()")
        try:
            driver.call("Queue.shutdown()", self._aq.shutdown, force=force)
        except BaseException as exc:
            if isinstance(exc, Exception):
                raise
            self._aq.cancel()  # interrupted (Ctrl-C): stop by force, then let the interrupt go on
            driver.call("Queue.shutdown()", self._aq.shutdown, force=True)
            raise
        finally:
            driver.close()

    def cancel(self) -> None:
        """Stop the queue at once, from any thread: it ends as after ``shutdown(force=True)``.

        Never waits; a ``run()`` in progress returns once the pools are released.
        """
        self._aq.cancel()

    def reset(self) -> None:
        """Forget results and reopen a shut-down queue; only when no task is unfinished."""
        self._aq.reset()

    def clear_results(self) -> None:
        """Drop the results kept in `results`, and those the current run has gathered so far."""
        self._aq.clear_results()

    def __enter__(self) -> Queue:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown(force=exc is not None)

    # -- state ----------------------------------------------------------------------------
    @property
    def loop(self) -> str:
        """The event loop the engine runs on: ``"asyncio"``, ``"uvloop"`` or ``"trio"``."""
        return self._driver.loop

    @property
    def active_count(self) -> int:
        """Tasks running now."""
        return self._aq.active_count

    @property
    def pending_count(self) -> int:
        """Tasks submitted and not yet running or ended (waiting, scheduled, ready, or being handed over)."""
        return self._aq.pending_count

    @property
    def closed(self) -> bool:
        """Whether the queue was shut down (or cancelled)."""
        return self._aq.closed

    @property
    def results(self) -> tuple[TaskResult, ...]:
        """Every result since the last ``clear_results()``/``reset()``, detached tasks included."""
        return self._aq.results

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Per backend: ``pending``, ``running``, ``done``, ``workers`` and the backend's own counts."""
        return self._aq.stats

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("running" if self._aq._serving else "idle")
        return (f"<{type(self).__name__} {state} loop={self.loop} running={self.active_count} "
                f"pending={self.pending_count}>")

