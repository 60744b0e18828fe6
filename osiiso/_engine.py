"""The engine: where every task waits, runs, retries and ends, for every backend.

One engine serves all backends (``docs/internals.md`` draws it). Per backend a
`osiiso._lanes.Lane` holds ready tasks and runs up to ``backend.capacity``
worker coroutines, all of them under the queue-wide ``workers`` cap. A worker pops
the most urgent ready task, runs one attempt through ``backend.run`` inside its own
cancel scope (whose deadline is the attempt's timeout), then records a success, a
failure, a retry (back to the timers or the lane) or an interruption.

Invariants (checked by ``osiiso._invariants.check_invariants`` in the tests):

* every unfinished task is in exactly one place — waiting on dependencies,
  scheduled on the timer heap, ready in a lane, or running in a worker;
* every task is recorded exactly once, by `Engine.finish`.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._deps import dependency_done, wait_for
from ._errors import TaskCancelledError
from ._handle import DONE, READY, RUNNING, SCHEDULED, WAITING, TaskHandle
from ._hooks import await_hook, call_hook, spawn_hook
from ._lanes import Lane, Timers
from ._ratelimit import RateLimiter
from ._results import TaskResult, TaskStatus
from ._worker import Slot, run_worker
from .backends import backend_class
from .backends.base import Backend, BackendConfig

if TYPE_CHECKING:
    from ._loopcall import LoopCaller

__all__ = ("Engine",)

logger = logging.getLogger("osiiso")
Hook = Callable[..., object]


_ki_protected = False
#: a lane opening with many ready tasks starts this many workers, then lets them run
_START_BATCH = 32


def _order(handle: TaskHandle[Any]) -> tuple[int, int]:
    """A ready task's place in the queue-wide order: lower priority first, then earlier submission."""
    return handle._options.priority, handle._seq


def _protect_from_ki_on_trio() -> None:
    """On trio, keep Ctrl-C out of the engine's tasks so it reaches the main task.

    trio raises KeyboardInterrupt in whatever task runs when the signal lands; in a worker
    it would look like the running task's own failure and the run would go on. Marked code
    is protected, so trio delivers it to the main task, where ``run()`` cancels the work.
    """
    global _ki_protected
    if _ki_protected:
        return
    try:
        import asyncio

        asyncio.get_running_loop()
        return  # asyncio turns Ctrl-C into a cancel of the main task by itself
    except RuntimeError:
        pass
    import trio

    from . import _worker

    for fn in (_worker.run_worker, _worker._serve_lane, _worker._interrupted, _worker._failed,
               Engine.serve, Engine._timer_loop, Engine._open_lane, Engine.complete):
        trio.lowlevel.enable_ki_protection(fn)
    _ki_protected = True


class Engine:
    """Task bookkeeping and execution, shared by every backend of one queue."""

    def __init__(self, config: BackendConfig, *, rate: float | None, burst: int,
                 on_start: Hook | None, on_retry: Hook | None, on_complete: Hook | None) -> None:
        self.config = config
        self.workers = config.workers
        self.lanes: dict[str, Lane] = {}
        # the same lanes as a tuple, replaced (never changed) when a lane is added: the loop
        # thread iterates it while other threads may add lanes (iterating the dict would fail)
        self.lane_list: tuple[Lane, ...] = ()
        self._lane_lock = threading.Lock()
        self.timers = Timers()
        self.limiter = RateLimiter(rate, burst) if rate else None
        self.on_start, self.on_retry, self.on_complete = on_start, on_retry, on_complete
        self.running = 0
        self.outstanding = 0
        self.results: list[TaskResult] = []
        self.run_results: list[TaskResult] | None = None
        self.waiting: set[TaskHandle[Any]] = set()
        self.slots: set[Slot] = set()
        self.idle_waiters: list[anyio.Event] = []
        self.hooks_running = 0  # on_complete hooks being awaited (by workers, or spawned)
        self.hook_outcomes: set[Any] = set()  # what spawned async hooks returned, until awaited
        self.room_waiters: list[anyio.Event] = []
        self.failure_listener: Callable[[TaskHandle[Any]], None] | None = None
        self.task_group: anyio.abc.TaskGroup | None = None
        self.caller: LoopCaller | None = None
        self.spawns: deque[tuple[Callable[..., Coroutine[Any, Any, Any]], tuple[Any, ...]]] = deque()
        self.wanted: deque[Lane] = deque()  # lanes that asked the timer loop for one more worker
        self.extras = 0  # tasks of the service besides workers and the timer loop (hooks, progress)
        self.stopping = False
        self.serving: anyio.Event | None = None

    # -- lanes and backends --------------------------------------------------------------
    def lane(self, name: str) -> Lane:
        """The lane of backend ``name``, created (and its workers started) on first use.

        Any thread may be first: creation holds a lock, so when several threads submit their
        first task of a backend at once, one lane is made and every thread gets it.
        """
        lane = self.lanes.get(name)
        if lane is not None:
            return lane
        with self._lane_lock:
            lane = self.lanes.get(name)
            if lane is None:
                backend: Backend = backend_class(name)(self.config)
                lane = Lane(backend)
                self.lanes[name] = lane
                self.lane_list = (*self.lane_list, lane)
                if self.task_group is not None:
                    self.spawn(self._open_lane, lane)
        return lane

    def forget_lanes(self) -> None:
        """Drop every lane (a reset queue makes new ones on first use)."""
        with self._lane_lock:
            self.lanes.clear()  # in place: the queue's finalizer holds this dict
            self.lane_list = ()

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Start ``fn(*args)`` in the service's task group, from any thread or callback.

        The timer loop, a task of the service, does the starting: a plain loop callback
        (a hand-over from another thread) cannot start anyio tasks itself.
        """
        self.spawns.append((fn, args))
        caller = self.caller
        if caller is not None and not caller.in_loop_thread():
            caller.call(self.timers.poke)
        else:
            self.timers.poke()

    def spawn_awaitable(self, hook: Hook, outcome: Any) -> None:
        """Await an async hook's ``outcome`` in the service; runs wait for it (``hooks_running``)."""
        self.hooks_running += 1
        self.hook_outcomes.add(outcome)
        self.spawn(self._await_hook, hook, outcome)

    async def _await_hook(self, hook: Hook, outcome: Any) -> None:
        try:
            await await_hook(hook, outcome)
        finally:
            self.hook_outcomes.discard(outcome)
            self.hooks_running -= 1
            self._check_idle()

    async def _open_lane(self, lane: Lane) -> None:
        if lane.started:
            return
        lane.started = True
        try:
            await lane.backend.start()
        except Exception:
            # e.g. an initializer that cannot be pickled: the workers still start, and each
            # attempt fails with the backend's error instead of the run waiting forever
            logger.exception("osiiso: the %r backend failed to start", lane.backend.name)
        lane.cap = min(lane.backend.capacity, self.workers)
        # workers start as tasks become ready (see `make_ready`): as many as are ready now,
        # a batch at a time, so the first ones are at work while the rest are being started
        count = min(lane.cap, lane.size)
        lane.workers += count
        lane.active += count
        lane.coming += count
        tg = self.task_group
        assert tg is not None
        for started in range(count):
            if started and not started % _START_BATCH:
                await anyio.lowlevel.checkpoint()
            tg.start_soon(run_worker, self, lane)

    def _grow(self, lane: Lane) -> None:
        """Ask the timer loop for one more worker in ``lane`` (loop thread)."""
        lane.workers += 1
        lane.active += 1
        lane.coming += 1
        self.wanted.append(lane)
        self.timers.poke()

    # -- admission -----------------------------------------------------------------------
    def admit(self, handle: TaskHandle[Any], lane: Lane) -> None:
        """Place a new task: waiting on dependencies, on the timer heap, or ready."""
        self.outstanding += 1
        lane.queued += 1
        if TaskHandle in map(type, handle._args) or (
                handle._kwargs and TaskHandle in map(type, handle._kwargs.values())):
            deps = [a for a in (*handle._args, *handle._kwargs.values()) if isinstance(a, TaskHandle)]
            wait_for(self, handle, deps)
            return
        options = handle._options
        if options.delay is None and options.run_at is None:
            self.make_ready(handle, lane)
        else:
            self.schedule_or_ready(handle, lane)

    def schedule_or_ready(self, handle: TaskHandle[Any], lane: Lane) -> None:
        options = handle._options
        if options.delay is not None or options.run_at is not None:
            start = options.delay if options.delay is not None else options.run_at - time.time()  # type: ignore[operator]
            if start > 0:
                self.timers.schedule(handle, time.monotonic() + start)
                return
        self.make_ready(handle, lane)

    def make_ready(self, handle: TaskHandle[Any], lane: Lane) -> None:
        """Put ``handle`` in its lane; wake an idle worker, or start one if none is idle."""
        lane.push(handle)
        if lane.idle:
            if self.running < self.workers:
                lane.wake_one()
        elif lane.workers < lane.cap:
            self._grow(lane)

    # -- the service: timers and workers ---------------------------------------------------
    async def serve(self) -> None:
        """Run the timer loop and every lane's workers until cancelled."""
        _protect_from_ki_on_trio()
        try:
            async with anyio.create_task_group() as tg:
                self.task_group = tg
                if self.serving is not None:
                    self.serving.set()
                for lane in self.lane_list:
                    tg.start_soon(self._open_lane, lane)
                await self._timer_loop(tg)
        finally:
            self.task_group = None
            self.wanted.clear()
            self.spawns.clear()
            self.extras = 0
            # hooks the service stopped before awaiting (a forced stop): close, not leak, them
            for outcome in self.hook_outcomes:
                if inspect.iscoroutine(outcome):
                    outcome.close()
            self.hooks_running -= len(self.hook_outcomes)
            self.hook_outcomes.clear()
            for lane in self.lane_list:
                lane.started = False
                lane.workers = lane.active = lane.coming = lane.cap = 0
                lane.idle.clear()

    async def wait_serving(self) -> None:
        """Wait until `serve` has its task group (called right after spawning it)."""
        if self.task_group is None:
            self.serving = anyio.Event()
            await self.serving.wait()
            self.serving = None

    def stop_serving(self) -> None:
        """Stop the workers and the timer loop (unfinished tasks stay where they are).

        When every worker is parked idle and nothing else runs in the service (the usual
        end of a run), they are woken to return on their own; otherwise the service's
        task group is cancelled. Returning is much cheaper than cancellation for
        hundreds of workers.
        """
        self.stopping = True
        tg = self.task_group
        if tg is None:
            return
        if self.extras or self.spawns or any(lane.active for lane in self.lane_list):
            tg.cancel_scope.cancel()
            return
        for lane in self.lane_list:
            while lane.wake_one():
                pass
        self.timers.poke()

    async def _timer_loop(self, tg: anyio.abc.TaskGroup) -> None:
        timers = self.timers
        spawns = self.spawns
        wanted = self.wanted
        while not self.stopping:  # stopping: start nothing more (see `stop_serving`)
            for handle in timers.pop_due(time.monotonic()):
                self.make_ready(handle, self.lanes[handle._backend])
            while wanted:
                tg.start_soon(run_worker, self, wanted.popleft())
            while spawns:
                fn, args = spawns.popleft()
                self.extras += 1
                tg.start_soon(self._extra, fn, args)
            await timers.wait_next()

    async def _extra(self, fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]) -> None:
        try:
            await fn(*args)
        finally:
            self.extras -= 1

    def release(self, lane: Lane) -> None:
        """A task leaves the running state: free its slot under the ``workers`` cap.

        With several lanes, the freed slot goes to the most urgent ready task of any lane
        that can start one (see `urgent_lane`); that lane gets workers to take it.
        """
        self.running -= 1
        lane.running -= 1
        if len(self.lane_list) > 1:
            self.hand_over(lane)

    def urgent_lane(self) -> Lane | None:
        """Among lanes with a ready task and room to run it, the one whose next task comes first.

        "First" is the queue-wide order (`_order`): lower ``priority``, then earlier
        submission, so that, say, the parse step of an early item does not wait behind the
        fetches of every later one.
        """
        best: Lane | None = None
        best_key: tuple[int, int] | None = None
        for lane in self.lane_list:
            if not lane.size or lane.running >= lane.cap > 0:  # cap 0: opening, its workers are coming
                continue
            head = lane.peek()
            if head is None:
                continue
            key = _order(head)
            if best_key is None or key < best_key:
                best, best_key = lane, key
        return best

    def summon(self, lane: Lane) -> None:
        """Have as many workers of ``lane`` on their way as it has ready tasks for the free slots.

        Workers already on their way count; then idle ones are woken, then new ones started.
        """
        want = min(lane.size, self.workers - self.running) - lane.coming
        while want > 0:
            if lane.idle:
                lane.wake_one()
            elif lane.workers < lane.cap:
                self._grow(lane)
            else:
                return
            want -= 1

    def yields_slot(self, lane: Lane) -> bool:
        """Whether a worker of ``lane`` should leave the free slots to more urgent tasks elsewhere.

        True when the tasks of other lanes that come before ``lane``'s next one, and whose
        workers are already on their way (woken or started, not yet looking for a task; or
        starting with their lane), would take every free slot.
        """
        head = lane.peek()
        if head is None:
            return False
        key = _order(head)
        free = self.workers - self.running
        ahead = 0
        for other in self.lane_list:
            if other is lane or not other.size:
                continue
            first = other.peek()
            if first is None or _order(first) > key:
                continue
            # an open lane brings the workers on their way; one still opening, as many as it may have
            coming = other.coming if other.cap else min(other.backend.capacity, self.workers)
            ahead += min(other.size, coming)
            if ahead >= free:
                return True
        return False

    def hand_over(self, lane: Lane) -> None:
        """A slot of ``lane`` is free (released, or its worker parks): serve the most urgent other lane."""
        target = self.urgent_lane()
        if target is not None and target is not lane:
            self.summon(target)

    # -- outcomes ------------------------------------------------------------------------
    def finish(self, handle: TaskHandle[Any], status: TaskStatus, value: Any,
               exc: BaseException | None, message: str | None, *, call_hook: bool = True) -> TaskResult | None:
        """Record the one result of ``handle`` (loop thread). Later calls do nothing.

        ``call_hook=False`` leaves ``on_complete`` to the caller (a worker awaits it).
        """
        if handle._result is not None:
            return None
        lane = self.lanes[handle._backend]
        if handle._where is RUNNING:
            self.release(lane)
        else:
            lane.queued -= 1
        now = time.time()
        started = handle._started_at
        options = handle._options
        if message is None:
            if status is TaskStatus.SUCCEEDED:
                message = "succeeded" if handle._attempts == 1 else f"succeeded on attempt {handle._attempts}"
            else:
                message = str(exc)
        result = TaskResult(
            f"task-{handle._seq}", handle._name, status, value, exc, handle._attempts, handle._backend,
            options.priority, options.group_id, options.metadata, options.detached,
            options.must_complete, message, handle._created_at, started, now,
            now - started if started is not None else 0.0,
        )
        lane.done += 1
        self.outstanding -= 1
        if not options.detached:
            self.results.append(result)
            if self.run_results is not None:
                self.run_results.append(result)
        handle._finish(result)
        dependents = handle._dependents
        if dependents:
            handle._dependents = None
            for dependent in dependents:
                dependency_done(handle, dependent)
        if call_hook and self.on_complete is not None:
            spawn_hook(self, self.on_complete, (result,))
        if self.room_waiters:
            self.room_waiters.pop(0).set()
        if not self.outstanding:
            self._check_idle()
        return result

    def restore(self, handle: TaskHandle[Any], value: Any, message: str) -> TaskResult:
        """Record a new ``handle`` as restored from a checkpoint: succeeded, without running.

        The handle was never admitted: no lane, counter, results list or hook sees it (a
        restored input is not work done). Safe from any thread, since nobody holds the
        handle yet. With `finish`, the only place that creates a `TaskResult`.
        """
        options = handle._options
        created = handle._created_at
        result = TaskResult(
            f"task-{handle._seq}", handle._name, TaskStatus.SUCCEEDED, value, None, 0, handle._backend,
            options.priority, options.group_id, options.metadata, options.detached, options.must_complete,
            message, created, None, created, 0.0, True,
        )
        handle._finish(result)
        return result

    async def complete(self, handle: TaskHandle[Any], status: TaskStatus, value: Any,
                       exc: BaseException | None, message: str | None) -> TaskResult | None:
        """Record the result, then await ``on_complete``; the queue is idle only after the hook."""
        hook = self.on_complete
        if hook is None:
            return self.finish(handle, status, value, exc, message)
        self.hooks_running += 1
        try:
            result = self.finish(handle, status, value, exc, message, call_hook=False)
            if result is not None:
                await call_hook(hook, result)
        finally:
            self.hooks_running -= 1
            self._check_idle()
        return result

    def _check_idle(self) -> None:
        # waiters re-check what they wait for (`wait_idle` may or may not wait for hooks)
        if self.outstanding == 0 and self.idle_waiters:
            waiters, self.idle_waiters = self.idle_waiters, []
            for event in waiters:
                event.set()

    # -- cancellation ----------------------------------------------------------------------
    def request_cancel(self, handle: TaskHandle[Any], reason: str) -> None:
        """Cancel ``handle`` from any thread."""
        caller = self.caller
        if caller is not None and not caller.in_loop_thread():
            caller.call(self.cancel, handle, reason)
        else:
            self.cancel(handle, reason)

    def cancel(self, handle: TaskHandle[Any], reason: str) -> None:
        """Cancel ``handle`` (loop thread): at once if it waits, by interruption if it runs."""
        where = handle._where
        if where is DONE:
            return
        if not reason.startswith("cancelled"):
            reason = f"cancelled: {reason}"
        handle._cancel_reason = reason
        if where is RUNNING:
            slot = handle._slot
            if slot is not None and slot.scope is not None:
                slot.scope.cancel()
            return
        if where is READY:
            self.lanes[handle._backend].discard(handle)
        elif where is SCHEDULED:
            self.timers.discard(handle)
        elif where is WAITING:
            self.waiting.discard(handle)
        self.finish_cancelled(handle, reason)

    def finish_cancelled(self, handle: TaskHandle[Any], reason: str, cause: BaseException | None = None) -> None:
        """Record ``handle`` as cancelled for ``reason`` (``cause``: what its attempt did meanwhile)."""
        error = TaskCancelledError(reason)
        error.__cause__ = cause
        self.finish(handle, TaskStatus.CANCELLED, None, error, reason)

    def unfinished(self) -> list[TaskHandle[Any]]:
        """Every task without a result (for cancel-all), in no particular order."""
        found: list[TaskHandle[Any]] = [s.current for s in self.slots if s.current is not None]
        found.extend(self.waiting)
        found.extend(h for _, _, h in self.timers.heap if h._where is SCHEDULED)
        for lane in self.lane_list:
            found.extend(lane.ready())
        return found

    def cancel_all(self, reason: str, *, spare_must_complete: bool) -> int:
        """Cancel every unfinished task (optionally sparing ``must_complete`` ones)."""
        count = 0
        for handle in self.unfinished():
            if spare_must_complete and handle._options.must_complete:
                continue
            if handle._where is not DONE:
                self.cancel(handle, reason)
                count += 1
        return count

    # -- waiting -----------------------------------------------------------------------------
    async def wait_idle(self, *, hooks: bool = True) -> None:
        """Wait until no task is unfinished (and, with ``hooks``, no on_complete hook runs)."""
        while self.outstanding or (hooks and self.hooks_running):
            event = anyio.Event()
            self.idle_waiters.append(event)
            await event.wait()
