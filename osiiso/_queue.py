"""AsyncQueue: the public front end. Its public methods, runs and the life cycle; the engine does the rest.

How a task gets in (routes, handles, the ``size`` limit, the hand-over from other threads)
is `osiiso._intake.Intake`, the base class; a checkpointed fan-out is `osiiso._resume`.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

import anyio
import anyio.lowlevel

from ._bound import BoundTask, TaskDecorator, make_bound
from ._checkpoint import Checkpoint
from ._config import check_run_arguments, settings_from
from ._dropped import release_backends
from ._engine import Engine, Run
from ._engine.hooks import outside_hooks
from ._engine.run import cancel_interrupted
from ._errors import ClosedError, QueueFullError
from ._group import GroupIds, TaskGroup
from ._handle import TaskHandle
from ._intake import NO_KWARGS, Call, Intake, arguments_of
from ._loops import spawn_detached
from ._options import TaskOptions, merge_options
from ._progress import ProgressSnapshot
from ._results import RunSummary, TaskResult
from ._resume import submit_checkpointed
from ._shadow import refuse_shadowed

__all__ = ("AsyncQueue",)

T = TypeVar("T")
P = ParamSpec("P")


class AsyncQueue(Intake):
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
        keep_results: bool | int = True, process_batching: bool = True, thread_batching: bool = True,
    ) -> None:
        s = settings_from(
            workers=workers, threads=threads, processes=processes, size=size, timeout=timeout, mode=mode,
            fail_policy=fail_policy, on_timeout=on_timeout, rate=rate, burst=burst, defaults=defaults,
            on_start=on_start, on_complete=on_complete, on_retry=on_retry, initializer=initializer,
            initargs=initargs, mp_context=mp_context, max_tasks_per_child=max_tasks_per_child, dask=dask,
            keep_results=keep_results, process_batching=process_batching,
            thread_batching=thread_batching)
        super().__init__(s, Engine(s.backend, rate=s.rate, burst=s.burst, on_start=s.on_start,
                                   on_retry=s.on_retry, on_complete=s.on_complete, keep_results=s.keep_results))
        # a queue dropped without shutdown() still lets its pool threads and processes go, and
        # says how many of its tasks never ended
        weakref.finalize(self, release_backends, self._engine, self._handovers)
        self._group_ids = GroupIds()
        self._run_active = False
        self._forced_stop: anyio.Event | None = None  # set once the shutdown cancel() began has ended

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
        if options:
            refuse_shadowed(fn, args, options, "submit()")
        if opts is None:
            merged = self._merged(options) if options else self._defaults
        else:
            merged = merge_options(self._defaults, opts, options, "submit()")
        return self._enqueue(fn, args, NO_KWARGS, merged)

    async def put(self, fn: Callable[..., Any], /, *args: Any, opts: TaskOptions | None = None,
                  **options: Any) -> TaskHandle[Any]:
        """Like `submit`, but wait for room when the queue is at its ``size`` limit."""
        if options:
            refuse_shadowed(fn, args, options, "put()")
        merged = merge_options(self._defaults, opts, options, "put()") if (options or opts) else self._defaults
        while True:
            await self._wait_for_room()
            try:
                return self._enqueue(fn, args, NO_KWARGS, merged)
            except QueueFullError:
                continue  # a submit from another thread took the room first: wait again

    @overload
    def map(self, fn: Callable[..., Coroutine[Any, Any, T]], iterable: Iterable[Any], /, *,
            opts: TaskOptions | None = None, checkpoint: Checkpoint | None = None,
            key: Callable[[Any], str | bytes] | None = None, namespace: str | None = None,
            **options: Any) -> list[TaskHandle[T]]: ...
    @overload
    def map(self, fn: Callable[..., T], iterable: Iterable[Any], /, *, opts: TaskOptions | None = None,
            checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
            namespace: str | None = None, **options: Any) -> list[TaskHandle[T]]: ...

    def map(self, fn: Callable[..., Any], iterable: Iterable[Any], /, *, opts: TaskOptions | None = None,
            checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
            namespace: str | None = None, **options: Any) -> list[TaskHandle[Any]]:
        """Submit ``fn`` once per element: a tuple is positional args, a dict keyword args.

        With ``checkpoint=``, elements whose values it holds are restored instead of run
        (see the checkpoint guide); ``key`` and ``namespace`` say where the values are kept.
        """
        merged = merge_options(self._defaults, opts, options, "map()")
        if checkpoint is None and key is None and namespace is None:
            return self._enqueue_each(fn, iterable, merged)
        items = list(iterable)
        return submit_checkpointed(self, items, None, merged, checkpoint, key, namespace, "map()", fn=fn,
                                   split=arguments_of)

    @overload
    def group(self, fn: Callable[..., Coroutine[Any, Any, T]], iterable: Iterable[Any], /, *,
              group_id: str | None = None, opts: TaskOptions | None = None, checkpoint: Checkpoint | None = None,
              key: Callable[[Any], str | bytes] | None = None, namespace: str | None = None,
              **options: Any) -> TaskGroup[T]: ...
    @overload
    def group(self, fn: Callable[..., T], iterable: Iterable[Any], /, *,
              group_id: str | None = None, opts: TaskOptions | None = None, checkpoint: Checkpoint | None = None,
              key: Callable[[Any], str | bytes] | None = None, namespace: str | None = None,
              **options: Any) -> TaskGroup[T]: ...
    @overload
    def group(self, fn: Iterable[tuple[Any, ...]], iterable: None = None, /, *,
              group_id: str | None = None, opts: TaskOptions | None = None, checkpoint: Checkpoint | None = None,
              key: Callable[[Any], str | bytes] | None = None, namespace: str | None = None,
              **options: Any) -> TaskGroup[Any]: ...

    def group(self, fn: Any, iterable: Iterable[Any] | None = None, /, *, group_id: str | None = None,
              opts: TaskOptions | None = None, checkpoint: Checkpoint | None = None,
              key: Callable[[Any], str | bytes] | None = None, namespace: str | None = None,
              **options: Any) -> TaskGroup[Any]:
        """Submit tasks as one `TaskGroup`.

        ``group(fn, items)`` calls ``fn`` per item (as `map`); ``group([(fn, *args), ...])``
        submits a list of calls. Every task gets the group's ``group_id``. ``checkpoint``,
        ``key`` and ``namespace`` work as in `map`.
        """
        with self._group_ids.lease(group_id, opts) as (group_id, named):
            merged = merge_options(self._defaults, opts, {**options, "group_id": group_id}, "group()")
            checkpointed = checkpoint is not None or key is not None or namespace is not None
            if checkpointed and iterable is not None:
                handles = submit_checkpointed(self, list(iterable), None, merged, checkpoint, key, namespace,
                                              "group()", fn=fn, split=arguments_of)
                return TaskGroup(handles, group_id)
            calls: list[Call]
            if iterable is None:
                items = list(fn)
                calls = []
                for call in items:
                    if not isinstance(call, tuple) or not call:
                        raise TypeError(f"group() without an iterable takes (fn, *args) tuples, got {call!r}")
                    calls.append((call[0], call[1:], {}))
                if checkpointed:
                    handles = submit_checkpointed(self, items, calls, merged, checkpoint, key, namespace, "group()",
                                                  group_id=named)
                    return TaskGroup(handles, group_id)
                return TaskGroup(self._enqueue_all(calls, merged), group_id)
            return TaskGroup(self._enqueue_each(fn, iterable, merged), group_id)

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

    # -- life cycle -------------------------------------------------------------------------
    @property
    def _serving(self) -> bool:
        return self._engine.service.running

    async def start(self) -> None:
        """Start the workers; tasks submitted from now on begin at once."""
        if self._closed:
            raise ClosedError("the queue is shut down — create a new queue or call reset()")
        await self._engine.service.start()

    async def _ensure_service(self) -> None:
        """Start the service if it is not running (also on a closed queue with work left)."""
        await self._engine.service.start()

    async def run(self, timeout: float | None = None, *, strict: bool = False, fail_policy: str | None = None,
                  progress: bool | Callable[[ProgressSnapshot], object] = False) -> RunSummary:
        """Run until the work is done (``mode="finite"``) or until shutdown (``"infinite"``).

        Returns the `RunSummary` of the tasks that ended during this run.
        ``strict=True`` raises `ExecutionError` if any failed. ``progress=True`` shows the run's
        progress on standard error (a live table per backend on a terminal, a line every few
        seconds elsewhere); ``progress=fn`` calls ``fn`` with a `ProgressSnapshot` ten times a
        second on the event loop (it must not block), and once more, ``final=True``, at the end.
        """
        timeout, policy = check_run_arguments(timeout, strict, fail_policy, progress, self._settings.fail_policy)
        if self._run_active:
            raise RuntimeError("run() is already in progress on this queue — await that run (or join())")
        if self._closed and not self._engine.outstanding:
            raise ClosedError("the queue is shut down — create a new queue or call reset()")
        settings = self._settings
        run = Run(self._engine, timeout=timeout if timeout is not None else settings.timeout,
                  fail_first=policy == "fail_first", finite=settings.mode == "finite",
                  spare_on_timeout=settings.on_timeout == "complete")
        self._run_active = True
        try:
            summary = await run(progress=progress)
        finally:
            self._run_active = False
        if self._forced_stop is not None:  # cancel() was called: return once the pools are released
            await self._forced_stop.wait()
        if strict:
            summary.raise_for_errors()
        return summary

    def _refuse_in_own_task(self, what: str) -> None:
        """``RuntimeError`` when one of this queue's thread tasks calls ``what``, which waits for every task."""
        if self._runs_in_own_task():
            raise RuntimeError(f"{what} cannot be called from one of the queue's own tasks: it waits for every task to "
                               "end, this one too — call it from the code that runs the queue, or q.cancel() to stop")

    def _runs_in_own_task(self) -> bool:
        """Whether the calling thread runs one of this queue's thread tasks."""
        lane = self._engine.lanes.get("thread")
        return lane is not None and bool(getattr(lane.backend, "runs_here", bool)())

    async def _cancel_interrupted(self) -> None:
        """A blocking wait for this queue's tasks was interrupted (Ctrl-C): end them as an interrupted run does."""
        await cancel_interrupted(self._engine)

    async def join(self) -> None:
        """Wait until every submitted task has ended (starting the workers if needed)."""
        self._engine.refuse_in_own_hook("join()")
        if self._engine.outstanding:
            await self._engine.service.start()
            await self._engine.wait_idle()

    async def shutdown(self, *, force: bool = False) -> None:
        """Stop accepting tasks, finish (or with ``force``, cancel) the rest, release the pools."""
        self._engine.refuse_in_own_hook("shutdown()")
        await self._shutdown(force)
        if self._forced_stop is not None:  # the shutdown a cancel() started is still releasing the pools
            await self._forced_stop.wait()

    async def _shutdown(self, force: bool) -> None:
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
            if engine.outstanding or engine.hooks_running:  # the hooks of tasks cancel() just ended too
                await engine.service.start()
                await engine.wait_idle()
        self._handovers_open = False
        await engine.service.stop()
        with anyio.CancelScope(shield=True):
            for lane in list(engine.lanes.values()):
                await lane.backend.aclose(force=force)

    def cancel(self) -> None:
        """Stop the queue at once, from any thread: it ends as after ``shutdown(force=True)``.

        Every unfinished task is cancelled (``must_complete`` ones too), the current run ends,
        the queue is closed (``submit`` raises `ClosedError`; ``reset()`` reopens it once idle)
        and its pools are released. ``cancel()`` itself never waits: a run in progress, and
        ``shutdown()``, return once the pools are released.
        """
        self._closed = True
        caller = self._engine.caller
        if caller is None:
            self._cancel_unserved()
        elif caller.in_loop_thread():
            self._cancel_now()
        elif not caller.call(self._cancel_now):
            self._cancel_unserved()

    def _cancel_now(self) -> None:
        """``cancel()`` on the loop's thread: cancel everything, end the run, shut down in the background."""
        self._closed = True
        self._engine.stop_all("cancelled: queue.cancel() was called")
        if self._forced_stop is None:
            self._forced_stop = stopped = anyio.Event()
            # a cancel() from a hook: the shutdown waits for the hooks, so it must not count as one
            outside_hooks(spawn_detached, functools.partial(self._shutdown, True), stopped.set, "osiiso-cancel")

    def _cancel_unserved(self) -> None:
        """``cancel()`` with no service running: nothing runs, so cancel and release right here."""
        self._handovers_open = False
        self._engine.cancel_all("cancelled: queue.cancel() was called", spare_must_complete=False)
        release_backends(self._engine)

    def reset(self) -> None:
        """Forget results and reopen a shut-down queue; only when no task is unfinished."""
        forced = self._forced_stop
        if self._run_active or self._engine.outstanding or (forced is not None and not forced.is_set()):
            raise RuntimeError("reset() needs an idle queue: wait for the run (or join(), or shutdown()) first")
        self._forced_stop = None
        if self._closed:
            self._engine.forget_lanes()
            self._routes.clear()
        self._closed = False
        self._handovers_open = True
        self.clear_results()

    def clear_results(self) -> None:
        """Drop the results kept in `results`, and those the current run has gathered so far.

        A long-running (``mode="infinite"``) queue calls this now and then to keep memory flat
        (or is made with ``keep_results=n`` to keep only the newest ``n``); the run's summary
        then holds and counts only the results recorded after the last call.
        """
        engine = self._engine
        engine.results.clear()
        if engine.run is not None:
            engine.run.clear_results()

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
        return self._engine.active

    @property
    def pending_count(self) -> int:
        """Tasks submitted and not yet running or ended (waiting, scheduled, ready, or being handed over)."""
        return self._unfinished - self._engine.active

    @property
    def closed(self) -> bool:
        """Whether the queue was shut down."""
        return self._closed

    @property
    def results(self) -> tuple[TaskResult, ...]:
        """Every result since the last ``clear_results()``/``reset()``, detached tasks included."""
        return tuple(self._engine.results)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Per backend: ``pending``, ``running``, ``done``, ``workers`` and the backend's own counts."""
        return {
            name: {"pending": lane.queued, "running": lane.running + lane.held, "done": lane.done,
                   "workers": lane.workers, **lane.backend.stats()}
            for name, lane in list(self._engine.lanes.items())
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._serving else "idle")
        return (f"<AsyncQueue {state} workers={self._settings.backend.workers} "
                f"running={self.active_count} pending={self.pending_count}>")
