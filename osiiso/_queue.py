"""AsyncQueue: the public front end. Submission, runs and shutdown; the engine does the rest."""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

import anyio
import anyio.lowlevel

from ._bound import BoundTask, TaskDecorator, make_bound
from ._config import check_run_arguments, settings_from
from ._engine import Engine, Run
from ._engine.deps import dependencies_of
from ._errors import ClosedError, QueueFullError
from ._group import TaskGroup
from ._handle import TaskHandle
from ._options import TaskOptions, merge_options
from ._results import RunSummary, TaskResult
from .backends.coroutine import is_async_callable

__all__ = ("AsyncQueue",)

T = TypeVar("T")
P = ParamSpec("P")
#: the keyword arguments of a task submitted without any (never mutated: dependencies make a new dict)
_NO_KWARGS: dict[str, Any] = {}


class AsyncQueue:
    """One queue for coroutines, thread tasks and process tasks, chosen per task.

    ``async with AsyncQueue() as q:`` starts it; a clean exit drains all work, an
    exception forces a shutdown and propagates unchanged. Without ``async with``,
    ``await q.run()`` starts the workers for the length of the run.
    """

    def __init__(
        self, *, workers: int | None = None, threads: int | None = None, processes: int | None = None,
        size: int = 0, timeout: float | None = None, mode: str = "finite", fail_policy: str = "continue",
        on_timeout: str = "complete", rate: float | None = None, burst: int = 1,
        defaults: TaskOptions | None = None,
        on_start: Callable[[TaskHandle[Any]], object] | None = None,
        on_complete: Callable[[TaskResult], object] | None = None,
        on_retry: Callable[[TaskHandle[Any], BaseException], object] | None = None,
        initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = (),
        mp_context: Any = None, max_tasks_per_child: int | None = None, dask: Any = None,
    ) -> None:
        s = self._settings = settings_from(
            workers=workers, threads=threads, processes=processes, size=size, timeout=timeout, mode=mode,
            fail_policy=fail_policy, on_timeout=on_timeout, rate=rate, burst=burst, defaults=defaults,
            on_start=on_start, on_complete=on_complete, on_retry=on_retry, initializer=initializer,
            initargs=initargs, mp_context=mp_context, max_tasks_per_child=max_tasks_per_child, dask=dask)
        self._engine = Engine(s.backend, rate=s.rate, burst=s.burst, on_start=s.on_start,
                              on_retry=s.on_retry, on_complete=s.on_complete)
        # a queue dropped without shutdown() still lets its pool threads and processes go
        weakref.finalize(self, _release_backends, self._engine.lanes)
        self._defaults = s.defaults
        self._seq = itertools.count(1)
        self._group_seq = itertools.count(1)
        self._routes: dict[tuple[Any, str], tuple[Any, str]] = {}
        self._options_cache: dict[tuple[tuple[str, Any], ...], TaskOptions] = {}
        self._closed = False
        self._inbound = 0
        self._inbound_lock = threading.Lock()
        self._run_active = False
        self._handovers_open = True

    # -- submission ------------------------------------------------------------------------
    @overload
    def submit(self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any,
               opts: TaskOptions | None = None, **options: Any) -> TaskHandle[T]: ...
    @overload
    def submit(self, fn: Callable[..., T], /, *args: Any,
               opts: TaskOptions | None = None, **options: Any) -> TaskHandle[T]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any,
               opts: TaskOptions | None = None, **options: Any) -> TaskHandle[Any]:
        """Submit ``fn(*args)`` and return its handle. Keyword arguments are task options."""
        if opts is None:
            merged = self._merged(options) if options else self._defaults
        else:
            merged = merge_options(self._defaults, opts, options, "submit()")
        return self._enqueue(fn, args, _NO_KWARGS, merged)

    def _merged(self, options: dict[str, Any]) -> TaskOptions:
        """The queue defaults with keyword ``options`` on top, cached for repeated calls."""
        try:
            key = tuple(options.items())
            return self._options_cache[key]
        except KeyError:
            merged = merge_options(self._defaults, None, options, "submit()")
            if len(self._options_cache) >= 256:
                self._options_cache.clear()
            self._options_cache[key] = merged
            return merged
        except TypeError:  # an unhashable value (metadata={...}): merged each time
            return merge_options(self._defaults, None, options, "submit()")

    async def put(self, fn: Callable[..., Any], /, *args: Any, opts: TaskOptions | None = None,
                  **options: Any) -> TaskHandle[Any]:
        """Like `submit`, but wait for room when the queue is at its ``size`` limit."""
        merged = merge_options(self._defaults, opts, options, "put()") if (options or opts) else self._defaults
        size = self._settings.size
        if size and self._engine.outstanding >= size:
            await self._engine.wait_room(size, lambda: self._closed)
        return self._enqueue(fn, args, {}, merged)

    def map(self, fn: Callable[..., Any], iterable: Iterable[Any], /, *, opts: TaskOptions | None = None,
            **options: Any) -> list[TaskHandle[Any]]:
        """Submit ``fn`` once per element: a tuple is positional args, a dict keyword args."""
        merged = merge_options(self._defaults, opts, options, "map()")
        return self._enqueue_all([(fn, *_split(item)) for item in iterable], merged)

    def group(self, fn: Any, iterable: Iterable[Any] | None = None, /, *, group_id: str | None = None,
              opts: TaskOptions | None = None, **options: Any) -> TaskGroup[Any]:
        """Submit tasks as one `TaskGroup`.

        ``group(fn, items)`` calls ``fn`` per item (as `map`); ``group([(fn, *args), ...])``
        submits a list of calls. Every task gets the group's ``group_id``.
        """
        if group_id is None:
            group_id = f"group-{next(self._group_seq)}"
        merged = merge_options(self._defaults, opts, {**options, "group_id": group_id}, "group()")
        calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]
        if iterable is None:
            calls = []
            for call in fn:
                if not isinstance(call, tuple) or not call:
                    raise TypeError(f"group() without an iterable takes (fn, *args) tuples, got {call!r}")
                calls.append((call[0], call[1:], {}))
        else:
            calls = [(fn, *_split(item)) for item in iterable]
        return TaskGroup(self._enqueue_all(calls, merged), group_id)

    def _enqueue_all(self, calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]],
                     options: TaskOptions) -> list[TaskHandle[Any]]:
        """Submit every call or none: each is checked, and the size limit too, before any is queued."""
        for fn, args, kwargs in calls:
            self._lane_for(fn, args, kwargs, options)
        size = self._settings.size
        if size and self._engine.outstanding + self._inbound + len(calls) > size:
            raise QueueFullError(f"{len(calls)} tasks do not fit: the queue holds {self._engine.outstanding} "
                                 f"unfinished tasks and its size limit is {size} — submit fewer, or raise size=")
        return [self._enqueue(fn, args, kwargs, options) for fn, args, kwargs in calls]

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, T]], /, **options: Any) -> BoundTask[P, T]: ...
    @overload
    def task(self, fn: Callable[P, T], /, **options: Any) -> BoundTask[P, T]: ...
    @overload
    def task(self, opts: TaskOptions | None = None, /, **options: Any) -> TaskDecorator: ...

    def task(self, opts: Any = None, /, **options: Any) -> Any:
        """Bind a function to this queue: calling the result submits a task (see bound tasks).

        Use as ``@q.task(**options)``, ``@q.task(opts)``, ``@q.task`` or ``q.task(fn, **options)``.
        """
        if callable(opts) and not isinstance(opts, TaskOptions):
            merge_options(self._defaults, None, options, "task()")
            return make_bound(self, opts, None, options)
        if opts is not None and not isinstance(opts, TaskOptions):
            raise TypeError(f"task() takes a TaskOptions or keyword options, got {opts!r}")
        merge_options(self._defaults, opts, options, "task()")  # validate now, at decoration

        def decorate(fn: Callable[..., Any]) -> Any:
            return make_bound(self, fn, opts, options)

        return decorate

    def _enqueue(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 options: TaskOptions) -> TaskHandle[Any]:
        if self._closed:
            raise ClosedError("the queue is shut down and accepts no new task — create a new AsyncQueue "
                              "(or call reset() once it is idle)")
        lane, fn_name = self._lane_for(fn, args, kwargs, options)
        engine = self._engine
        size = self._settings.size
        caller = engine.caller
        foreign = caller is not None and not caller.in_loop_thread()
        if size and engine.outstanding + self._inbound >= size:
            raise QueueFullError(f"the queue holds {size} unfinished tasks, its size limit — "
                                 "await q.put(...) to wait for room, or raise size=")
        handle: TaskHandle[Any] = TaskHandle(engine, next(self._seq), fn, args, kwargs, options,
                                             lane.backend.name, options.name or fn_name, time.time())
        if not foreign:
            engine.admit(handle, lane)
            return handle
        dependencies_of(handle)  # refuse a handle of another queue here, in the caller's thread
        with self._inbound_lock:
            self._inbound += 1
        if not caller.call(self._admit_foreign, handle, lane):  # type: ignore[union-attr]
            with self._inbound_lock:
                self._inbound -= 1
            raise ClosedError("the queue's event loop has stopped; nothing more can be submitted")
        return handle

    def _lane_for(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                  options: TaskOptions) -> tuple[Any, str]:
        """The lane and default name for ``fn``: from the cache, else resolved and checked."""
        try:
            return self._routes[fn, options.backend]
        except (KeyError, TypeError):
            return self._route(fn, args, kwargs, options)

    def _route(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
               options: TaskOptions) -> tuple[Any, str]:
        """Resolve and check the backend for ``fn`` (cached per callable)."""
        backend = options.backend
        awaitable = inspect.isawaitable(fn)
        if backend == "auto":
            backend = "async" if awaitable or is_async_callable(fn) else "thread"
        if awaitable:
            if args or kwargs:
                raise TypeError(f"{fn!r} is an awaitable; it takes no arguments — pass the coroutine "
                                "function and its arguments instead")
            if options.retries:
                raise ValueError(f"retries need a coroutine function: {fn!r} is a coroutine object, which "
                                 "can run only once — submit the function and its arguments instead")
        elif not callable(fn):
            raise TypeError(f"a task must be a callable or an awaitable, got {fn!r}")
        lane = self._engine.lane(backend)
        lane.backend.check(fn)
        name = getattr(fn, "__name__", None) or type(fn).__name__
        if not awaitable:
            if len(self._routes) > 1024:
                self._routes.clear()
            try:
                self._routes[fn, options.backend] = (lane, name)
            except TypeError:  # an unhashable callable: resolved again next time
                pass
        return lane, name

    def _admit_foreign(self, handle: TaskHandle[Any], lane: Any) -> None:
        with self._inbound_lock:
            self._inbound -= 1
        self._engine.admit(handle, lane)
        if self._closed and not self._handovers_open:  # shutdown() had drained when it arrived
            self._engine.cancel(handle, "cancelled: the queue shut down before this task, submitted "
                                        "from another thread, reached it")

    # -- life cycle -------------------------------------------------------------------------
    @property
    def _serving(self) -> bool:
        return self._engine.service.running

    async def start(self) -> None:
        """Start the workers; tasks submitted from now on begin at once."""
        if self._closed:
            raise ClosedError("the queue is shut down — create a new AsyncQueue or call reset()")
        await self._engine.service.start()

    async def run(self, timeout: float | None = None, *, strict: bool = False, fail_policy: str | None = None,
                  progress: bool = False) -> RunSummary:
        """Run until the work is done (``mode="finite"``) or until shutdown (``"infinite"``).

        Returns the `RunSummary` of the tasks that ended during this run.
        ``strict=True`` raises `ExecutionError` if any failed.
        """
        timeout, policy = check_run_arguments(timeout, strict, fail_policy, progress, self._settings.fail_policy)
        if self._run_active:
            raise RuntimeError("run() is already in progress on this queue — await that run (or join())")
        if self._closed and not self._engine.outstanding:
            raise ClosedError("the queue is shut down — create a new AsyncQueue or call reset()")
        settings = self._settings
        run = Run(self._engine, timeout=timeout if timeout is not None else settings.timeout,
                  fail_first=policy == "fail_first", finite=settings.mode == "finite",
                  spare_on_timeout=settings.on_timeout == "complete")
        self._run_active = True
        try:
            summary = await run(progress=progress)
        finally:
            self._run_active = False
        if strict:
            summary.raise_for_errors()
        return summary

    async def join(self) -> None:
        """Wait until every submitted task has ended (starting the workers if needed)."""
        self._engine.refuse_in_own_hook("join()")
        if self._engine.outstanding:
            await self._engine.service.start()
            await self._engine.wait_idle()

    async def shutdown(self, *, force: bool = False) -> None:
        """Stop accepting tasks, finish (or with ``force``, cancel) the rest, release the pools."""
        self._engine.refuse_in_own_hook("shutdown()")
        self._closed = True
        engine = self._engine
        for event in engine.room_waiters:
            event.set()
        if engine.run is not None:
            engine.run.end()
        with anyio.CancelScope(shield=force):
            while self._inbound:  # tasks handed over by other threads before the close: let them in
                await anyio.lowlevel.checkpoint()
            if force:
                engine.cancel_all("cancelled: the queue was shut down (force=True)", spare_must_complete=False)
            if engine.outstanding:
                await engine.service.start()
                await engine.wait_idle()
        self._handovers_open = False
        await engine.service.stop()
        with anyio.CancelScope(shield=True):
            for lane in list(engine.lanes.values()):
                await lane.backend.aclose(force=force)

    def cancel(self) -> None:
        """Cancel every unfinished task and end the current run; safe from any thread."""
        caller = self._engine.caller
        if caller is not None and not caller.in_loop_thread():
            caller.call(self._cancel_now)
        else:
            self._cancel_now()

    def _cancel_now(self) -> None:
        self._engine.stop_all("cancelled: queue.cancel() was called")

    def reset(self) -> None:
        """Forget results and reopen a shut-down queue; only when no task is unfinished."""
        if self._run_active or self._engine.outstanding:
            raise RuntimeError("reset() needs an idle queue: wait for the run (or join()) first")
        if self._closed:
            self._engine.forget_lanes()
            self._routes.clear()
        self._closed = False
        self._handovers_open = True
        self.clear_results()

    def clear_results(self) -> None:
        """Drop the results kept in `results`, and those the current run has gathered so far.

        A long-running (``mode="infinite"``) queue calls this now and then to keep memory flat;
        the run's summary then holds only the results recorded after the last call.
        """
        engine = self._engine
        engine.results.clear()
        if engine.run is not None:
            engine.run.results.clear()

    async def __aenter__(self) -> AsyncQueue:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.shutdown(force=exc is not None)

    # -- state ----------------------------------------------------------------------------
    @property
    def active_count(self) -> int:
        """Tasks running now."""
        return self._engine.running

    @property
    def pending_count(self) -> int:
        """Tasks submitted and not yet running or ended (waiting, scheduled or ready)."""
        return self._engine.outstanding - self._engine.running

    @property
    def closed(self) -> bool:
        """Whether the queue was shut down."""
        return self._closed

    @property
    def results(self) -> tuple[TaskResult, ...]:
        """Every result since the last ``clear_results()``/``reset()`` (detached tasks left out)."""
        return tuple(self._engine.results)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Per backend: ``pending``, ``running``, ``done``, ``workers`` and the backend's own counts."""
        return {
            name: {"pending": lane.queued, "running": lane.running, "done": lane.done,
                   "workers": lane.workers, **lane.backend.stats()}
            for name, lane in list(self._engine.lanes.items())
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._serving else "idle")
        return (f"<AsyncQueue {state} workers={self._settings.backend.workers} "
                f"running={self.active_count} pending={self.pending_count}>")


def _release_backends(lanes: dict[str, Any]) -> None:
    for lane in list(lanes.values()):
        try:
            lane.backend.close_now()
        except Exception:  # a finalizer must not raise
            logging.getLogger("osiiso").exception("osiiso: could not release the %r backend", lane.backend.name)


def _split(item: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(item, tuple):
        return item, {}
    if isinstance(item, dict):
        return (), item
    return (item,), {}
